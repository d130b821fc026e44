//! Next run times through the public API, with exact instants written as
//! RFC 3339 local times so the DST cases read like a wall clock.

use berth_cron::{Cron, time_zone};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

fn zone(name: &str) -> TimeZone {
    time_zone(name).unwrap()
}

fn at(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap()
}

fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.display_with_offset(tz.to_offset(t)).to_string()
}

/// The next `n` runs after `from`, each found from the one before.
fn run_instants(expr: &str, tz: &TimeZone, from: &str, n: usize) -> Vec<Timestamp> {
    let cron = Cron::parse(expr).unwrap();
    let mut after = at(from);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let next = cron
            .next_after(after, tz)
            .unwrap_or_else(|| panic!("{expr} stopped after {after}"));
        assert!(next > after, "{expr}: {next} is not after {after}");
        out.push(next);
        after = next;
    }
    out
}

fn runs(expr: &str, tz: &TimeZone, from: &str, n: usize) -> Vec<String> {
    run_instants(expr, tz, from, n)
        .into_iter()
        .map(|t| local(t, tz))
        .collect()
}

fn gaps(instants: &[Timestamp]) -> Vec<SignedDuration> {
    instants
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .collect()
}

const FIVE_MINUTES: SignedDuration = SignedDuration::from_mins(5);

// ---- spring forward -------------------------------------------------------

#[test]
fn every_five_minutes_across_berlin_spring_forward() {
    let berlin = zone("Europe/Berlin");
    assert_eq!(
        runs("*/5 * * * *", &berlin, "2026-03-29T01:50:00+01:00", 4),
        [
            "2026-03-29T01:55:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T03:05:00+02:00",
            "2026-03-29T03:10:00+02:00",
        ]
    );
    let instants = run_instants("*/5 * * * *", &berlin, "2026-03-29T01:50:00+01:00", 4);
    assert!(gaps(&instants).iter().all(|g| *g == FIVE_MINUTES));
}

#[test]
fn skipped_time_runs_shifted_once_in_berlin() {
    let berlin = zone("Europe/Berlin");
    assert_eq!(
        runs("30 2 * * *", &berlin, "2026-03-28T12:00:00+01:00", 3),
        [
            "2026-03-29T03:30:00+02:00",
            "2026-03-30T02:30:00+02:00",
            "2026-03-31T02:30:00+02:00",
        ]
    );
}

#[test]
fn skipped_time_still_runs_when_asked_from_inside_the_shifted_hour() {
    // The 02:30 run that became 03:30 is the next run from anywhere between
    // the previous run and it, including from 03:10 after the jump.
    let berlin = zone("Europe/Berlin");
    let cron = Cron::parse("30 2 * * *").unwrap();
    for from in [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T01:59:59+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:10:00+02:00",
        "2026-03-29T03:29:59+02:00",
    ] {
        let next = cron.next_after(at(from), &berlin).unwrap();
        assert_eq!(
            local(next, &berlin),
            "2026-03-29T03:30:00+02:00",
            "from {from}"
        );
    }
}

#[test]
fn new_york_spring_forward() {
    let ny = zone("America/New_York");
    assert_eq!(
        runs("*/5 * * * *", &ny, "2026-03-08T01:50:00-05:00", 3),
        [
            "2026-03-08T01:55:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T03:05:00-04:00",
        ]
    );
    assert_eq!(
        runs("30 2 * * *", &ny, "2026-03-07T12:00:00-05:00", 2),
        ["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"]
    );
}

// ---- fall back ------------------------------------------------------------

#[test]
fn every_five_minutes_through_berlin_fall_back() {
    let berlin = zone("Europe/Berlin");
    let from = "2026-10-25T02:40:00+02:00";
    let instants = run_instants("*/5 * * * *", &berlin, from, 24);
    // Every five real minutes, no hole and no burst: 24 runs cover exactly
    // two hours, one of them the repeated hour.
    assert!(gaps(&instants).iter().all(|g| *g == FIVE_MINUTES));
    assert_eq!(
        instants[23].duration_since(at(from)),
        SignedDuration::from_hours(2)
    );
    let shown: Vec<String> = instants.iter().map(|t| local(*t, &berlin)).collect();
    assert_eq!(
        shown[..6],
        [
            "2026-10-25T02:45:00+02:00",
            "2026-10-25T02:50:00+02:00",
            "2026-10-25T02:55:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:05:00+01:00",
            "2026-10-25T02:10:00+01:00",
        ]
    );
    assert_eq!(shown[14], "2026-10-25T02:55:00+01:00");
    assert_eq!(shown[15], "2026-10-25T03:00:00+01:00");
    assert_eq!(shown[23], "2026-10-25T03:40:00+01:00");
}

#[test]
fn every_five_minutes_from_inside_the_repeated_hour() {
    let berlin = zone("Europe/Berlin");
    assert_eq!(
        runs("*/5 * * * *", &berlin, "2026-10-25T02:07:00+01:00", 2),
        ["2026-10-25T02:10:00+01:00", "2026-10-25T02:15:00+01:00"]
    );
    assert_eq!(
        runs("*/5 * * * *", &berlin, "2026-10-25T02:57:30+02:00", 1),
        ["2026-10-25T02:00:00+01:00"]
    );
}

#[test]
fn hourly_and_every_two_hours_repeat_in_the_fold() {
    let berlin = zone("Europe/Berlin");
    assert_eq!(
        runs("@hourly", &berlin, "2026-10-25T01:30:00+02:00", 3),
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ]
    );
    assert_eq!(
        runs("0 */2 * * *", &berlin, "2026-10-25T01:30:00+02:00", 3),
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T04:00:00+01:00",
        ]
    );
}

#[test]
fn fixed_hour_runs_once_in_berlin_fall_back() {
    let berlin = zone("Europe/Berlin");
    assert_eq!(
        runs("30 2 * * *", &berlin, "2026-10-24T12:00:00+02:00", 3),
        [
            "2026-10-25T02:30:00+02:00",
            "2026-10-26T02:30:00+01:00",
            "2026-10-27T02:30:00+01:00",
        ]
    );
    // Asked from the second pass, the repeated 02:30 has already run.
    assert_eq!(
        runs("30 2 * * *", &berlin, "2026-10-25T02:10:00+01:00", 1),
        ["2026-10-26T02:30:00+01:00"]
    );
}

#[test]
fn new_york_fall_back() {
    let ny = zone("America/New_York");
    assert_eq!(
        runs("*/5 * * * *", &ny, "2026-11-01T01:50:00-04:00", 4),
        [
            "2026-11-01T01:55:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:05:00-05:00",
            "2026-11-01T01:10:00-05:00",
        ]
    );
    assert_eq!(
        runs("30 1 * * *", &ny, "2026-10-31T12:00:00-04:00", 2),
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    );
    // A named hour with a minute step runs through the first pass only.
    let hour_one = runs("*/5 1 * * *", &ny, "2026-11-01T00:59:00-04:00", 13);
    assert_eq!(hour_one[0], "2026-11-01T01:00:00-04:00");
    assert_eq!(hour_one[11], "2026-11-01T01:55:00-04:00");
    assert_eq!(hour_one[12], "2026-11-02T01:00:00-05:00");
}

// ---- the schedule as a set of instants ------------------------------------

/// `*/5 * * * *` in a zone whose offsets are all multiples of five minutes
/// fires at exactly the instants that are multiples of five minutes, so the
/// answer from any instant is known without a calendar.
fn assert_every_five_minutes(tz_name: &str, start: &str, hours: i64) {
    let tz = zone(tz_name);
    let cron = Cron::parse("*/5 * * * *").unwrap();
    let start = at(start);
    // Every 50 seconds hits every offset within a five-minute slot.
    for i in 0..hours * 72 {
        let after = start + SignedDuration::from_secs(50 * i);
        let expected =
            Timestamp::from_second((after.as_second().div_euclid(300) + 1) * 300).unwrap();
        assert_eq!(
            cron.next_after(after, &tz),
            Some(expected),
            "{tz_name} from {}",
            local(after, &tz)
        );
    }
}

#[test]
fn every_five_minutes_is_every_five_real_minutes_around_transitions() {
    assert_every_five_minutes("Europe/Berlin", "2026-03-28T22:00:00Z", 8);
    assert_every_five_minutes("Europe/Berlin", "2026-10-24T22:00:00Z", 8);
    assert_every_five_minutes("America/New_York", "2026-03-08T03:00:00Z", 8);
    assert_every_five_minutes("America/New_York", "2026-11-01T02:00:00Z", 8);
    // Half-hour DST shifts.
    assert_every_five_minutes("Australia/Lord_Howe", "2026-04-04T12:00:00Z", 6);
    assert_every_five_minutes("Australia/Lord_Howe", "2026-10-03T13:00:00Z", 6);
}

#[test]
fn the_next_run_does_not_depend_on_where_between_runs_we_ask() {
    for (tz_name, expr, from) in [
        ("Europe/Berlin", "30 2 * * *", "2026-03-27T00:00:00+01:00"),
        ("Europe/Berlin", "30 2 * * *", "2026-10-23T00:00:00+02:00"),
        ("Europe/Berlin", "*/20 2 * * *", "2026-10-24T00:00:00+02:00"),
        (
            "America/New_York",
            "15,45 1,2 * * *",
            "2026-11-01T00:00:00-04:00",
        ),
        (
            "America/New_York",
            "10,50 2,3 * * *",
            "2026-03-07T00:00:00-05:00",
        ),
    ] {
        let tz = zone(tz_name);
        let cron = Cron::parse(expr).unwrap();
        let chain = run_instants(expr, &tz, from, 8);
        for pair in chain.windows(2) {
            let mut t = pair[0];
            while t < pair[1] {
                assert_eq!(
                    cron.next_after(t, &tz),
                    Some(pair[1]),
                    "{expr} in {tz_name} from {}",
                    local(t, &tz)
                );
                t += SignedDuration::from_secs(7 * 60 + 13);
            }
        }
    }
}

#[test]
fn a_skipped_day_collapses_into_one_run() {
    // Samoa moved across the date line by skipping 2011-12-30 entirely.
    let apia = zone("Pacific/Apia");
    assert_eq!(
        runs("0 12 * * *", &apia, "2011-12-29T00:00:00-10:00", 3),
        [
            "2011-12-29T12:00:00-10:00",
            "2011-12-31T12:00:00+14:00",
            "2012-01-01T12:00:00+14:00",
        ]
    );
}

// ---- plain calendar behaviour ----------------------------------------------

#[test]
fn six_fields_with_seconds() {
    let utc = zone("UTC");
    assert_eq!(
        runs("*/20 * * * * *", &utc, "2026-05-05T10:00:00Z", 4),
        [
            "2026-05-05T10:00:20+00:00",
            "2026-05-05T10:00:40+00:00",
            "2026-05-05T10:01:00+00:00",
            "2026-05-05T10:01:20+00:00",
        ]
    );
    assert_eq!(
        runs("15 30 9 * * *", &utc, "2026-05-05T10:00:00Z", 2),
        ["2026-05-06T09:30:15+00:00", "2026-05-07T09:30:15+00:00"]
    );
}

#[test]
fn leap_day() {
    let utc = zone("UTC");
    assert_eq!(
        runs("0 0 29 2 *", &utc, "2026-01-01T00:00:00Z", 2),
        ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]
    );
    // 2100 is not a leap year: the longest honest wait, eight years.
    assert_eq!(
        runs("0 0 29 2 *", &utc, "2096-03-01T00:00:00Z", 1),
        ["2104-02-29T00:00:00+00:00"]
    );
}

#[test]
fn day_of_month_or_day_of_week() {
    let utc = zone("UTC");
    // April 2026: the 13th is a Monday; Fridays are the 3rd, 10th, 17th, 24th.
    assert_eq!(
        runs("0 0 13 * 5", &utc, "2026-04-01T00:00:00Z", 6),
        [
            "2026-04-03T00:00:00+00:00",
            "2026-04-10T00:00:00+00:00",
            "2026-04-13T00:00:00+00:00",
            "2026-04-17T00:00:00+00:00",
            "2026-04-24T00:00:00+00:00",
            "2026-05-01T00:00:00+00:00",
        ]
    );
    assert_eq!(
        runs("0 0 13 * *", &utc, "2026-04-01T00:00:00Z", 1),
        ["2026-04-13T00:00:00+00:00"]
    );
    assert_eq!(
        runs("0 0 * * 5", &utc, "2026-04-01T00:00:00Z", 1),
        ["2026-04-03T00:00:00+00:00"]
    );
    // A day field starting with `*` is unrestricted (Vixie), so this is AND:
    // odd days that are Fridays.
    assert_eq!(
        runs("0 0 */2 * FRI", &utc, "2026-04-01T00:00:00Z", 3),
        [
            "2026-04-03T00:00:00+00:00",
            "2026-04-17T00:00:00+00:00",
            "2026-05-01T00:00:00+00:00",
        ]
    );
}

#[test]
fn month_and_weekday_names() {
    let utc = zone("UTC");
    assert_eq!(
        runs("0 9 * jan,JUL Mon-Fri", &utc, "2026-06-15T00:00:00Z", 3),
        [
            "2026-07-01T09:00:00+00:00",
            "2026-07-02T09:00:00+00:00",
            "2026-07-03T09:00:00+00:00",
        ]
    );
}

#[test]
fn zero_and_seven_are_sunday() {
    let utc = zone("UTC");
    for expr in ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN"] {
        assert_eq!(
            runs(expr, &utc, "2026-04-01T00:00:00Z", 2),
            ["2026-04-05T00:00:00+00:00", "2026-04-12T00:00:00+00:00"],
            "{expr}"
        );
    }
}

#[test]
fn nicknames_fire_when_expected() {
    let utc = zone("UTC");
    let from = "2026-04-01T10:30:00Z";
    assert_eq!(
        runs("@yearly", &utc, from, 1),
        ["2027-01-01T00:00:00+00:00"]
    );
    assert_eq!(
        runs("@monthly", &utc, from, 1),
        ["2026-05-01T00:00:00+00:00"]
    );
    assert_eq!(
        runs("@weekly", &utc, from, 1),
        ["2026-04-05T00:00:00+00:00"]
    );
    assert_eq!(runs("@daily", &utc, from, 1), ["2026-04-02T00:00:00+00:00"]);
    assert_eq!(
        runs("@hourly", &utc, from, 1),
        ["2026-04-01T11:00:00+00:00"]
    );
}

#[test]
fn strictly_after() {
    let utc = zone("UTC");
    let cron = Cron::parse("0 12 * * *").unwrap();
    let next = cron.next_after(at("2026-05-05T12:00:00Z"), &utc).unwrap();
    assert_eq!(next, at("2026-05-06T12:00:00Z"));
    let next = cron.next_after(at("2026-05-05T11:59:59.5Z"), &utc).unwrap();
    assert_eq!(next, at("2026-05-05T12:00:00Z"));
    let next = cron
        .next_after(at("2026-05-05T12:00:00.000000001Z"), &utc)
        .unwrap();
    assert_eq!(next, at("2026-05-06T12:00:00Z"));
}

#[test]
fn hourly_in_utc_ten_thousand_times() {
    let utc = zone("UTC");
    let instants = run_instants("0 * * * *", &utc, "2026-01-01T00:00:00Z", 10_000);
    assert!(
        gaps(&instants)
            .iter()
            .all(|g| *g == SignedDuration::from_hours(1))
    );
    assert_eq!(instants[9_999], at("2027-02-21T16:00:00Z"));
}

#[test]
fn hourly_in_berlin_over_a_year_keeps_real_hours() {
    let berlin = zone("Europe/Berlin");
    let instants = run_instants("0 * * * *", &berlin, "2026-01-01T00:00:00+01:00", 8_760);
    assert!(
        gaps(&instants)
            .iter()
            .all(|g| *g == SignedDuration::from_hours(1))
    );
}

#[test]
fn time_zone_errors() {
    assert!(time_zone("UTC").is_ok());
    let err = time_zone("Mars/Olympus").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown time zone `Mars/Olympus`: expected an IANA time zone name such as \
         `Europe/Berlin`, `America/New_York` or `UTC`"
    );
}
