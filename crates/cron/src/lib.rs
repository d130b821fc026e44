//! Cron expressions for berth's schedules.
//!
//! - [`Cron::parse`] (in `parse.rs`) turns an expression into one set of
//!   allowed values per field, refusing bad input with an error that names
//!   the field, the bad part and what was expected, and refusing an
//!   expression that can never fire.
//! - [`Cron::next_after`] (in `next.rs`) finds the next run time in a time
//!   zone, with the daylight-saving rules below.
//! - [`time_zone`] looks up a zone by its IANA name, and [`CronError`]
//!   (in `error.rs`) is the one error type.
//!
//! ```
//! use berth_cron::{time_zone, Cron};
//!
//! let cron = Cron::parse("30 2 * * *")?;
//! let berlin = time_zone("Europe/Berlin")?;
//! let after: jiff::Timestamp = "2026-03-28T12:00:00+01:00".parse()?;
//! // 02:30 does not exist on 2026-03-29 in Berlin, so it runs an hour later.
//! let next = cron.next_after(after, &berlin).unwrap();
//! assert_eq!(next, "2026-03-29T03:30:00+02:00".parse()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Syntax
//!
//! Five fields `minute hour day-of-month month day-of-week`, or six with a
//! `second` field first, or one of the nicknames `@yearly` (`@annually`),
//! `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly`. A field is
//! a comma list of `*`, `n`, `a-b`, `*/s`, `a-b/s` or `a/s` (from `a` to the
//! end of the field). Months may be written `JAN`–`DEC` and weekdays
//! `SUN`–`SAT`, in any case; day-of-week 0 and 7 are both Sunday; `?` means
//! `*` in the two day fields.
//!
//! As in Vixie cron, when both day fields are restricted (neither starts
//! with `*` or `?`) a day matches if either one matches; otherwise both
//! must.
//!
//! # Time zones and daylight saving
//!
//! Fields match the wall-clock time of the zone given to
//! [`Cron::next_after`]. A schedule is the set of instants produced by its
//! wall-clock matches, and `next_after` returns the earliest of them
//! strictly after the instant asked about. So a run is never in the past,
//! feeding each result back in yields strictly increasing instants, and no
//! instant is returned twice. Two kinds of day need a rule:
//!
//! - **Spring forward (a gap).** A wall-clock time that does not exist that
//!   day runs at the instant it would have had without the jump, i.e. later
//!   by the gap's length: `30 2 * * *` runs at 03:30 when 02:00 jumps to
//!   03:00. An every-five-minutes schedule keeps running every five real
//!   minutes across the gap (01:55, 03:00, 03:05, …): a skipped time that
//!   lands on an instant already produced is produced once.
//! - **Fall back (a fold).** A wall-clock time that happens twice fires
//!   once, at its first occurrence, when the hour field names hours
//!   (`30 1 * * *`, `*/5 1 * * *`). When the hour field is `*` or `*/n`, an
//!   interval schedule, it fires at both occurrences, so `*/5 * * * *` runs
//!   every five real minutes through the repeated hour with no hour-long
//!   hole and no burst.
//!
//! A schedule that has no run within about ten years of the instant asked
//! about is treated as never firing.

mod error;
mod next;
mod parse;

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use error::CronError;

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Cron {
    expr: String,
    fields: parse::Fields,
}

impl Cron {
    /// Parses 5 fields (minute hour day-of-month month day-of-week) or 6
    /// fields (second first), or a nickname: @yearly @annually @monthly
    /// @weekly @daily @midnight @hourly.
    ///
    /// An expression that can never fire, such as `0 0 31 2 *`, is refused.
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        let expr = expr.trim();
        if expr.is_empty() {
            return Err(CronError::new(
                "the cron expression is empty; expected 5 fields (minute hour day-of-month \
                 month day-of-week), 6 with seconds first, or a nickname such as @daily",
            ));
        }
        let fields = parse::parse_fields(expr).map_err(|detail| {
            CronError::new(format!("invalid cron expression `{expr}`: {detail}"))
        })?;
        let cron = Cron {
            expr: expr.to_string(),
            fields,
        };
        // The day fields are the only ones that can rule out every run
        // (a day of month that none of the chosen months has); a decade
        // from a fixed date covers every month/day combination, leap days
        // included.
        let probe = Timestamp::constant(946_684_800, 0); // 2000-01-01T00:00:00Z
        if cron.next_after(probe, &TimeZone::UTC).is_none() {
            return Err(CronError::new(format!(
                "the expression `{expr}` never fires (no day matches): none of the chosen \
                 months has the chosen day of the month"
            )));
        }
        Ok(cron)
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The first time strictly after `after` at which the expression fires,
    /// in time zone `tz`, following the daylight-saving rules in the crate
    /// docs. None if it never fires within about 10 years from `after`
    /// (e.g. "0 0 31 2 *").
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        next::next_after(&self.fields, after, tz)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl FromStr for Cron {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cron::parse(s)
    }
}

/// Looks up a time zone by IANA name ("Europe/Berlin", "UTC"); the error
/// says what was wrong and gives an example.
pub fn time_zone(name: &str) -> Result<TimeZone, CronError> {
    if name.trim().is_empty() {
        return Err(CronError::new(
            "the time zone name is empty; expected an IANA time zone name such as \
             `Europe/Berlin`, `America/New_York` or `UTC`",
        ));
    }
    TimeZone::get(name).map_err(|_| {
        CronError::new(format!(
            "unknown time zone `{name}`: expected an IANA time zone name such as \
             `Europe/Berlin`, `America/New_York` or `UTC`"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_the_trimmed_text() {
        let cron = Cron::parse("  */5 * * * *\n").unwrap();
        assert_eq!(cron.as_str(), "*/5 * * * *");
        assert_eq!(cron.to_string(), "*/5 * * * *");
        assert_eq!("@daily".parse::<Cron>().unwrap().as_str(), "@daily");
    }

    #[test]
    fn errors_say_which_expression() {
        let err = Cron::parse("61 * * * *").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid cron expression `61 * * * *`: minute field `61`: 61 is out of range 0–59"
        );
        assert_eq!(err.message(), err.to_string());
        let err = Cron::parse("* * * *").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid cron expression `* * * *`: expected 5 fields (minute hour day-of-month \
             month day-of-week) or 6 (with seconds first), found 4"
        );
        let err: Box<dyn std::error::Error> = Box::new(err);
        assert!(err.to_string().ends_with("found 4"));
    }

    #[test]
    fn empty_expression() {
        let err = Cron::parse("   ").unwrap_err();
        assert!(err.to_string().starts_with("the cron expression is empty"));
    }

    #[test]
    fn never_firing_expressions_are_refused() {
        for expr in [
            "0 0 31 2 *",
            "0 0 30 2 *",
            "0 0 31 4,6,9,11 *",
            "0 0 31 2 ?",
        ] {
            let err = Cron::parse(expr).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "the expression `{expr}` never fires (no day matches): none of the chosen \
                     months has the chosen day of the month"
                )
            );
        }
        // Leap days and the OR of both day fields do fire.
        assert!(Cron::parse("0 0 29 2 *").is_ok());
        assert!(Cron::parse("0 0 31 2 MON").is_ok());
    }

    #[test]
    fn time_zone_by_name() {
        assert_eq!(time_zone("UTC").unwrap().iana_name(), Some("UTC"));
        assert!(time_zone("Europe/Berlin").is_ok());
        assert_eq!(
            time_zone("Mars/Olympus").unwrap_err().to_string(),
            "unknown time zone `Mars/Olympus`: expected an IANA time zone name such as \
             `Europe/Berlin`, `America/New_York` or `UTC`"
        );
        assert!(
            time_zone("")
                .unwrap_err()
                .to_string()
                .starts_with("the time zone name is empty")
        );
    }
}
