//! Next occurrence: a field-skipping search over wall-clock time, and the
//! rules that turn wall-clock matches into instants across DST changes.
//!
//! The schedule is defined as a set of firing instants (see the crate docs
//! for which instants a wall-clock match yields in a gap or a fold), and
//! `next_after` returns the smallest one after the given instant. Around a
//! transition, wall-clock order and instant order disagree, so the search
//! does not stop at the first wall-clock match: it scans the window of
//! wall-clock times that could still map to an earlier instant and keeps the
//! minimum. The window follows from the offsets in force nearby, so away
//! from transitions it holds exactly one match and the search costs nothing
//! extra.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::parse::Fields;

/// Every real offset change is at most a day long (Samoa skipped one whole
/// day in 2011); twice that leaves room for the transitions that matter.
const NEAR: SignedDuration = SignedDuration::from_hours(48);

/// How far ahead a schedule is looked for before it is declared dead; the
/// longest honest wait, February 29th across a skipped leap year
/// (2096 → 2104), is 8 years.
const SEARCH_YEARS: i64 = 10;

pub(crate) fn next_after(f: &Fields, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let near_start = after.checked_sub(NEAR).unwrap_or(Timestamp::MIN);
    let near_end = after.checked_add(NEAR).unwrap_or(Timestamp::MAX);
    let (lowest, _) = offset_bounds(tz, near_start, near_end);
    // No wall-clock time before this can map to an instant after `after`:
    // it covers the skipped times of a spring-forward just behind us and the
    // repeated times of a fall-back just ahead.
    let mut from = next_second(lowest.to_datetime(after))?;
    let mut until = from.saturating_add(SEARCH_YEARS.years());
    let mut best: Option<Timestamp> = None;
    while let Some(wall) = first_match(f, from, until) {
        if let Some(t) = instant(f, tz, wall, after).filter(|t| best.is_none_or(|b| *t < b)) {
            best = Some(t);
            // A wall-clock time at or past `t` read in the largest nearby
            // offset cannot name an instant before `t`.
            let best_end = t.checked_add(NEAR).unwrap_or(Timestamp::MAX);
            let (_, highest) = offset_bounds(tz, near_start, best_end);
            until = highest.to_datetime(t);
        }
        match next_second(wall) {
            Some(next) => from = next,
            None => break,
        }
    }
    best
}

/// The instant a wall-clock match fires at, if it fires after `after`.
fn instant(f: &Fields, tz: &TimeZone, wall: DateTime, after: Timestamp) -> Option<Timestamp> {
    let t = match tz.to_ambiguous_timestamp(wall).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(wall).ok()?,
        // A skipped time runs where it would have without the jump: read
        // in the offset before the gap ("compatible"), i.e. shifted later
        // by the gap's length.
        AmbiguousOffset::Gap { before, .. } => before.to_timestamp(wall).ok()?,
        AmbiguousOffset::Fold {
            before,
            after: later,
        } => {
            let first = before.to_timestamp(wall).ok()?;
            if first > after || !f.repeat_in_fold {
                first
            } else {
                // Interval schedules run in the second pass too.
                later.to_timestamp(wall).ok()?
            }
        }
    };
    (t > after).then_some(t)
}

/// The smallest and largest offsets in force at any instant in `[start, end]`.
fn offset_bounds(tz: &TimeZone, start: Timestamp, end: Timestamp) -> (Offset, Offset) {
    let first = tz.to_offset(start);
    let (mut lo, mut hi) = (first, first);
    for transition in tz.following(start) {
        if transition.timestamp() > end {
            break;
        }
        lo = lo.min(transition.offset());
        hi = hi.max(transition.offset());
    }
    (lo, hi)
}

/// The next whole second strictly after `dt`.
fn next_second(dt: DateTime) -> Option<DateTime> {
    let whole = dt.with().subsec_nanosecond(0).build().ok()?;
    whole.checked_add(SignedDuration::from_secs(1)).ok()
}

/// The first wall-clock time in `[from, until)` that the fields match,
/// jumping whole months, days, hours and minutes past values that cannot
/// match. `from` must be a whole second.
fn first_match(f: &Fields, from: DateTime, until: DateTime) -> Option<DateTime> {
    let end = key(until);
    let (mut y, mut mo, mut d) = (from.year(), from.month(), from.day());
    let (mut h, mut mi, mut s) = (from.hour(), from.minute(), from.second());
    loop {
        if (y, mo, d, h, mi, s) >= end {
            return None;
        }
        if mo > 12 {
            (y, mo) = (y.checked_add(1)?, 1);
        }
        match next_bit(f.months, mo) {
            Some(m) if m == mo => {}
            Some(m) => {
                (mo, d, h, mi, s) = (m, 1, 0, 0, 0);
                continue;
            }
            None => {
                (y, mo, d, h, mi, s) = (y.checked_add(1)?, 1, 1, 0, 0, 0);
                continue;
            }
        }
        if d > days_in_month(y, mo) {
            (mo, d, h, mi, s) = (mo + 1, 1, 0, 0, 0);
            continue;
        }
        let weekday = Date::new(y, mo, d).ok()?.weekday().to_sunday_zero_offset();
        if !f.day_matches(d, weekday) {
            (d, h, mi, s) = (d + 1, 0, 0, 0);
            continue;
        }
        match next_bit(f.hours, h) {
            Some(x) if x == h => {}
            Some(x) => {
                (h, mi, s) = (x, 0, 0);
                continue;
            }
            None => {
                (d, h, mi, s) = (d + 1, 0, 0, 0);
                continue;
            }
        }
        match next_bit(f.minutes, mi) {
            Some(x) if x == mi => {}
            Some(x) => {
                (mi, s) = (x, 0);
                continue;
            }
            None => {
                (h, mi, s) = (h + 1, 0, 0);
                continue;
            }
        }
        match next_bit(f.seconds, s) {
            Some(x) if x == s => {}
            Some(x) => {
                s = x;
                continue;
            }
            None => {
                (mi, s) = (mi + 1, 0);
                continue;
            }
        }
        return DateTime::new(y, mo, d, h, mi, s, 0).ok();
    }
}

fn key(dt: DateTime) -> (i16, i8, i8, i8, i8, i8) {
    (
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
    )
}

/// The smallest value in `bits` that is at least `v`.
fn next_bit(bits: u64, v: i8) -> Option<i8> {
    let v = u32::try_from(v).ok()?;
    let rest = bits.checked_shr(v)?.checked_shl(v)?;
    (rest != 0).then(|| rest.trailing_zeros() as i8)
}

fn days_in_month(y: i16, mo: i8) -> i8 {
    match mo {
        4 | 6 | 9 | 11 => 30,
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_fields;

    fn dt(s: &str) -> DateTime {
        s.parse().unwrap()
    }

    fn matches(expr: &str, from: &str, until: &str) -> Option<String> {
        let f = parse_fields(expr).unwrap();
        first_match(&f, dt(from), dt(until)).map(|d| d.to_string())
    }

    #[test]
    fn next_bit_finds_the_first_value_at_or_after() {
        assert_eq!(next_bit(0b1010, 0), Some(1));
        assert_eq!(next_bit(0b1010, 2), Some(3));
        assert_eq!(next_bit(0b1010, 4), None);
        assert_eq!(next_bit(u64::MAX, 63), Some(63));
        assert_eq!(next_bit(u64::MAX, 64), None);
    }

    #[test]
    fn days_in_month_knows_leap_years() {
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2026, 4), 30);
        assert_eq!(days_in_month(2026, 12), 31);
    }

    #[test]
    fn civil_search_carries_into_the_next_unit() {
        let far = "2100-01-01T00:00:00";
        assert_eq!(
            matches("59 23 31 12 *", "2026-01-01T00:00:00", far).as_deref(),
            Some("2026-12-31T23:59:00")
        );
        assert_eq!(
            matches("0 0 1 * *", "2026-12-31T23:59:59", far).as_deref(),
            Some("2027-01-01T00:00:00")
        );
        assert_eq!(
            matches("*/20 * * * * *", "2026-05-05T10:59:41", far).as_deref(),
            Some("2026-05-05T11:00:00")
        );
        assert_eq!(
            matches("0 0 31 * *", "2026-04-01T00:00:00", far).as_deref(),
            Some("2026-05-31T00:00:00")
        );
        // `from` itself is included.
        assert_eq!(
            matches("0 12 * * *", "2026-05-05T12:00:00", far).as_deref(),
            Some("2026-05-05T12:00:00")
        );
    }

    #[test]
    fn civil_search_stops_at_until() {
        assert_eq!(
            matches("0 12 * * *", "2026-05-05T12:00:01", "2026-05-06T12:00:00"),
            None
        );
        assert_eq!(
            matches("0 0 31 2 *", "2000-01-01T00:00:00", "9999-12-31T23:59:59"),
            None
        );
    }
}
