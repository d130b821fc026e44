//! Expression text → the set of values each field allows.
//!
//! Each field becomes a bit set (bit `n` set when value `n` is allowed), so
//! the search in `next.rs` can ask "first allowed value at or after `v`" with
//! a shift and a `trailing_zeros`, no allocation.

/// The parsed form of an expression: one bit set per field, plus the two
/// facts about how the fields were written that change matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) seconds: u64,
    pub(crate) minutes: u64,
    pub(crate) hours: u64,
    /// Bits 1..=31.
    pub(crate) days: u64,
    /// Bits 1..=12.
    pub(crate) months: u64,
    /// Bits 0..=6, Sunday = 0 (a written 7 is folded onto 0).
    pub(crate) weekdays: u64,
    /// Vixie cron's rule: the day fields combine with OR only when both are
    /// restricted; a field is unrestricted when it starts with `*` (or `?`),
    /// exactly as Vixie/ISC cron decides it.
    pub(crate) days_or: bool,
    /// The hour field is `*` or `*/n`: an interval schedule, which keeps
    /// firing through both passes of a repeated (fall-back) hour.
    pub(crate) repeat_in_fold: bool,
}

impl Fields {
    /// Whether the calendar day matches, given its day of month and weekday
    /// (Sunday = 0).
    pub(crate) fn day_matches(&self, day: i8, weekday: i8) -> bool {
        let dom = self.days & (1u64 << day) != 0;
        let dow = self.weekdays & (1u64 << weekday) != 0;
        if self.days_or { dom || dow } else { dom && dow }
    }
}

/// How one field is written and checked.
struct Spec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Where `*` and `a/n` stop; differs from `max` only for day-of-week,
    /// where 7 is an alias of 0 and must not be added twice.
    open_max: u32,
    /// Three-letter names, the first standing for `names_from`.
    names: &'static [&'static str],
    names_from: u32,
    names_hint: &'static str,
    question_ok: bool,
}

const SECOND: Spec = Spec::numeric("second", 0, 59);
const MINUTE: Spec = Spec::numeric("minute", 0, 59);
const HOUR: Spec = Spec::numeric("hour", 0, 23);
const DAY_OF_MONTH: Spec = Spec {
    question_ok: true,
    ..Spec::numeric("day-of-month", 1, 31)
};
const MONTH: Spec = Spec {
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    names_from: 1,
    names_hint: " or a month name JAN–DEC",
    ..Spec::numeric("month", 1, 12)
};
const DAY_OF_WEEK: Spec = Spec {
    open_max: 6,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    names_from: 0,
    names_hint: " (0 and 7 are Sunday) or a weekday name SUN–SAT",
    question_ok: true,
    ..Spec::numeric("day-of-week", 0, 7)
};

impl Spec {
    const fn numeric(name: &'static str, min: u32, max: u32) -> Spec {
        Spec {
            name,
            min,
            max,
            open_max: max,
            names: &[],
            names_from: 0,
            names_hint: "",
            question_ok: false,
        }
    }
}

const NICKNAMES: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const SHAPE: &str = "expected 5 fields (minute hour day-of-month month day-of-week) \
                     or 6 (with seconds first)";

/// Parses a trimmed, non-empty expression. The error is the detail only;
/// the caller adds which expression it was about.
pub(crate) fn parse_fields(expr: &str) -> Result<Fields, String> {
    if expr.starts_with('@') {
        return parse_nickname(expr);
    }
    let parts: Vec<&str> = expr.split_whitespace().collect();
    let (second, rest) = match parts.len() {
        5 => ("0", &parts[..]),
        6 => (parts[0], &parts[1..]),
        n => return Err(format!("{SHAPE}, found {n}")),
    };
    let [minute, hour, dom, month, dow] = [rest[0], rest[1], rest[2], rest[3], rest[4]];
    let weekdays = parse_field(&DAY_OF_WEEK, dow)?;
    Ok(Fields {
        seconds: parse_field(&SECOND, second)?,
        minutes: parse_field(&MINUTE, minute)?,
        hours: parse_field(&HOUR, hour)?,
        days: parse_field(&DAY_OF_MONTH, dom)?,
        months: parse_field(&MONTH, month)?,
        // Sunday may be written 7; matching only knows 0.
        weekdays: (weekdays | (weekdays >> 7)) & 0x7f,
        days_or: !unrestricted(dom) && !unrestricted(dow),
        repeat_in_fold: hour.split(',').all(|item| item.starts_with('*')),
    })
}

fn unrestricted(field: &str) -> bool {
    field.starts_with('*') || field.starts_with('?')
}

fn parse_nickname(expr: &str) -> Result<Fields, String> {
    let mut words = expr.split_whitespace();
    let name = words.next().unwrap_or(expr);
    if let Some(extra) = words.next() {
        return Err(format!(
            "the nickname `{name}` stands alone, but `{extra}` follows it; \
             write either a nickname or the fields"
        ));
    }
    if name.eq_ignore_ascii_case("@reboot") {
        return Err(
            "`@reboot` is not supported: a schedule needs times to run at; \
             expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"
                .to_string(),
        );
    }
    match NICKNAMES
        .iter()
        .find(|(nick, _)| nick.eq_ignore_ascii_case(name))
    {
        Some((_, fields)) => parse_fields(fields),
        None => Err(format!(
            "unknown nickname `{name}`; expected one of \
             @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"
        )),
    }
}

fn parse_field(spec: &Spec, text: &str) -> Result<u64, String> {
    parse_items(spec, text).map_err(|detail| format!("{} field `{text}`: {detail}", spec.name))
}

fn parse_items(spec: &Spec, text: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(
                "the list has an empty item; separate values with single commas, as in `1,15,30`"
                    .to_string(),
            );
        }
        bits |= parse_item(spec, item)?;
    }
    Ok(bits)
}

/// One list item: `*`, `?`, `a`, `a-b`, each optionally followed by `/n`.
fn parse_item(spec: &Spec, item: &str) -> Result<u64, String> {
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(parse_step(item, step)?)),
        None => (item, None),
    };
    let (lo, hi) = if base == "*" {
        (spec.min, spec.open_max)
    } else if base == "?" {
        if !spec.question_ok {
            return Err(format!(
                "`?` is only allowed in the day-of-month and day-of-week fields; \
                 use `*` for any {}",
                spec.name
            ));
        }
        (spec.min, spec.open_max)
    } else if base.is_empty() {
        return Err(format!(
            "`{item}` has nothing before `/`; write `*/n` or `a/n` for a step"
        ));
    } else if let Some((a, b)) = base.split_once('-') {
        let lo = parse_value(spec, item, a)?;
        let hi = parse_value(spec, item, b)?;
        if lo > hi {
            return Err(format!(
                "the range `{base}` starts after it ends ({lo} > {hi}); \
                 ranges do not wrap around, write the smaller value first"
            ));
        }
        (lo, hi)
    } else {
        let lo = parse_value(spec, item, base)?;
        match step {
            // `a/n` means from a to the end of the field.
            Some(_) => (lo, spec.open_max.max(lo)),
            None => (lo, lo),
        }
    };
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = Some(lo);
    while let Some(value) = v.filter(|value| *value <= hi) {
        bits |= 1u64 << value;
        v = value.checked_add(step);
    }
    Ok(bits)
}

fn parse_step(item: &str, step: &str) -> Result<u32, String> {
    if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the step `{step}` in `{item}` is not a number; write a whole number after `/`, as in `*/5`"
        ));
    }
    // A step wider than the field just keeps the first value, as in Vixie
    // cron, so a huge one is no error either.
    match step.parse::<u32>().unwrap_or(u32::MAX) {
        0 => Err(format!("step 0 in `{item}`: a step must be at least 1")),
        n => Ok(n),
    }
}

fn parse_value(spec: &Spec, item: &str, text: &str) -> Result<u32, String> {
    let range = format!("{}–{}", spec.min, spec.max);
    if text.is_empty() {
        return Err(format!(
            "`{item}` is missing a value; expected a number {range}{} on each side of `-`",
            spec.names_hint
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
            _ => Err(format!("{text} is out of range {range}")),
        };
    }
    if let Some(i) = spec
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
    {
        return Ok(spec.names_from + i as u32);
    }
    Err(format!(
        "`{text}` is not a number; expected a number {range}{}, `*`, a range `a-b`, \
         a list `a,b` or a step `*/n`",
        spec.names_hint
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(values: impl IntoIterator<Item = u32>) -> u64 {
        values.into_iter().fold(0, |acc, v| acc | 1 << v)
    }

    fn fields(expr: &str) -> Fields {
        parse_fields(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn error(expr: &str) -> String {
        match parse_fields(expr) {
            Ok(f) => panic!("{expr} parsed as {f:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn star_number_range_list_and_steps() {
        let f = fields("* 5 1-3 1,6,12 *");
        assert_eq!(f.seconds, bits([0]));
        assert_eq!(f.minutes, bits(0..=59));
        assert_eq!(f.hours, bits([5]));
        assert_eq!(f.days, bits(1..=3));
        assert_eq!(f.months, bits([1, 6, 12]));
        assert_eq!(f.weekdays, bits(0..=6));

        let f = fields("*/15 0-12/4 10/7 */5 *");
        assert_eq!(f.minutes, bits([0, 15, 30, 45]));
        assert_eq!(f.hours, bits([0, 4, 8, 12]));
        assert_eq!(f.days, bits([10, 17, 24, 31]));
        assert_eq!(f.months, bits([1, 6, 11]));

        // A step wider than the field keeps only the first value.
        assert_eq!(fields("*/100 * * * *").minutes, bits([0]));
        assert_eq!(fields("0 0 * * * */4294967296").weekdays, bits([0]));

        let f = fields("1-5,*/20,58 * * * *");
        assert_eq!(f.minutes, bits([0, 1, 2, 3, 4, 5, 20, 40, 58]));
    }

    #[test]
    fn six_fields_put_seconds_first() {
        let f = fields("*/10 30 2 * * *");
        assert_eq!(f.seconds, bits([0, 10, 20, 30, 40, 50]));
        assert_eq!(f.minutes, bits([30]));
        assert_eq!(f.hours, bits([2]));
    }

    #[test]
    fn month_and_weekday_names_any_case() {
        let f = fields("0 0 * jan,Jun-aug MON-fri");
        assert_eq!(f.months, bits([1, 6, 7, 8]));
        assert_eq!(f.weekdays, bits(1..=5));
        let f = fields("0 0 * DEC sun,SAT");
        assert_eq!(f.months, bits([12]));
        assert_eq!(f.weekdays, bits([0, 6]));
    }

    #[test]
    fn zero_and_seven_are_both_sunday() {
        assert_eq!(fields("0 0 * * 0").weekdays, bits([0]));
        assert_eq!(fields("0 0 * * 7").weekdays, bits([0]));
        assert_eq!(fields("0 0 * * 5-7").weekdays, bits([0, 5, 6]));
        // `*` stops at 6 so a step does not reach Sunday a second time.
        assert_eq!(fields("0 0 * * */2").weekdays, bits([0, 2, 4, 6]));
        assert_eq!(fields("0 0 * * 1/2").weekdays, bits([1, 3, 5]));
    }

    #[test]
    fn question_mark_is_star_in_day_fields() {
        let q = fields("0 0 ? * MON");
        let s = fields("0 0 * * MON");
        assert_eq!(q, s);
        assert!(!q.days_or);
        assert_eq!(fields("0 0 1 * ?"), fields("0 0 1 * *"));
    }

    #[test]
    fn day_fields_or_only_when_both_restricted() {
        assert!(fields("0 0 13 * 5").days_or);
        assert!(!fields("0 0 13 * *").days_or);
        assert!(!fields("0 0 * * 5").days_or);
        // Vixie decides by the leading `*`, so a stepped star is unrestricted.
        assert!(!fields("0 0 */2 * 5").days_or);
    }

    #[test]
    fn interval_hours_repeat_in_fold() {
        assert!(fields("*/5 * * * *").repeat_in_fold);
        assert!(fields("0 */2 * * *").repeat_in_fold);
        assert!(!fields("30 1 * * *").repeat_in_fold);
        assert!(!fields("*/5 1 * * *").repeat_in_fold);
        assert!(!fields("0 0-23 * * *").repeat_in_fold);
    }

    #[test]
    fn nicknames() {
        assert_eq!(fields("@yearly"), fields("0 0 1 1 *"));
        assert_eq!(fields("@annually"), fields("0 0 1 1 *"));
        assert_eq!(fields("@monthly"), fields("0 0 1 * *"));
        assert_eq!(fields("@weekly"), fields("0 0 * * 0"));
        assert_eq!(fields("@daily"), fields("0 0 * * *"));
        assert_eq!(fields("@midnight"), fields("0 0 * * *"));
        assert_eq!(fields("@hourly"), fields("0 * * * *"));
        assert_eq!(fields("@Daily"), fields("0 0 * * *"));
    }

    #[test]
    fn errors_name_the_field_and_the_bad_part() {
        assert_eq!(
            error("61 * * * *"),
            "minute field `61`: 61 is out of range 0–59"
        );
        assert_eq!(
            error("0 24 * * *"),
            "hour field `24`: 24 is out of range 0–23"
        );
        assert_eq!(
            error("0 0 0 * *"),
            "day-of-month field `0`: 0 is out of range 1–31"
        );
        assert_eq!(
            error("0 0 * 13 *"),
            "month field `13`: 13 is out of range 1–12"
        );
        assert_eq!(
            error("0 0 * * 8"),
            "day-of-week field `8`: 8 is out of range 0–7"
        );
        assert_eq!(
            error("60 * * * * *"),
            "second field `60`: 60 is out of range 0–59"
        );
        assert_eq!(
            error("1,99999999999 * * * *"),
            "minute field `1,99999999999`: 99999999999 is out of range 0–59"
        );
    }

    #[test]
    fn field_count_error() {
        assert_eq!(
            error("* * * *"),
            "expected 5 fields (minute hour day-of-month month day-of-week) \
             or 6 (with seconds first), found 4"
        );
        assert!(error("* * * * * * *").ends_with("found 7"));
    }

    #[test]
    fn nickname_errors() {
        assert_eq!(
            error("@every"),
            "unknown nickname `@every`; expected one of \
             @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"
        );
        assert!(error("@reboot").contains("`@reboot` is not supported"));
        assert!(error("@daily 5").contains("stands alone, but `5` follows it"));
    }

    #[test]
    fn step_errors() {
        assert_eq!(
            error("*/0 * * * *"),
            "minute field `*/0`: step 0 in `*/0`: a step must be at least 1"
        );
        assert_eq!(
            error("*/x * * * *"),
            "minute field `*/x`: the step `x` in `*/x` is not a number; \
             write a whole number after `/`, as in `*/5`"
        );
        assert!(error("1-5/ * * * *").contains("the step `` in `1-5/` is not a number"));
        assert!(error("/5 * * * *").contains("`/5` has nothing before `/`"));
    }

    #[test]
    fn range_start_after_end() {
        assert_eq!(
            error("0 5-2 * * *"),
            "hour field `5-2`: the range `5-2` starts after it ends (5 > 2); \
             ranges do not wrap around, write the smaller value first"
        );
        assert!(
            error("0 0 * * FRI-MON").contains("the range `FRI-MON` starts after it ends (5 > 1)")
        );
        assert!(error("0 0 * 3- *").contains("month field `3-`: `3-` is missing a value"));
    }

    #[test]
    fn empty_list_items() {
        let want =
            "the list has an empty item; separate values with single commas, as in `1,15,30`";
        assert_eq!(
            error("1,,2 * * * *"),
            format!("minute field `1,,2`: {want}")
        );
        assert_eq!(error("0 1, * * *"), format!("hour field `1,`: {want}"));
        assert_eq!(
            error("0 0 ,1 * *"),
            format!("day-of-month field `,1`: {want}")
        );
    }

    #[test]
    fn garbage_characters() {
        assert_eq!(
            error("1x * * * *"),
            "minute field `1x`: `1x` is not a number; expected a number 0–59, `*`, \
             a range `a-b`, a list `a,b` or a step `*/n`"
        );
        assert!(
            error("0 0 * FOO *")
                .starts_with("month field `FOO`: `FOO` is not a number; expected a number 1–12 or a month name JAN–DEC")
        );
        assert!(error("0 0 * * MONDAY").starts_with(
            "day-of-week field `MONDAY`: `MONDAY` is not a number; expected a number 0–7 \
             (0 and 7 are Sunday) or a weekday name SUN–SAT"
        ));
        assert!(error("0 0 * * JAN").contains("`JAN` is not a number"));
        assert!(error("0 0 L * *").contains("`L` is not a number"));
        assert!(error("-1 * * * *").contains("`-1` is missing a value"));
        assert!(error("1-2-3 * * * *").contains("`2-3` is not a number"));
        assert_eq!(
            error("? * * * *"),
            "minute field `?`: `?` is only allowed in the day-of-month and day-of-week fields; \
             use `*` for any minute"
        );
    }
}
