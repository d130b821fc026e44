//! The raw layer: one table of the parsed TOML document, with spans.
//!
//! toml's [`DeTable`] keeps the byte span of every key and value, which is
//! exactly what precise diagnostics need. A [`Section`] wraps one table and
//! offers typed getters that report a wrong type or a bad value at the value's
//! span and return `None`, so the caller can fall back to a default and keep
//! checking. Serde's derive would stop at the first problem instead.

use std::cell::RefCell;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::diagnostic::Diagnostics;

/// A spanned TOML value, as found in a [`DeTable`].
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// Why a string value was refused by a parse closure.
pub(crate) enum Invalid {
    /// The "expected …" part; the getter says what was found and where.
    Expected(String),
    /// A complete message, used as is: for values that may hold a secret
    /// (a database URL with a password) and so must not be echoed.
    Message(String),
}

/// One TOML table and where it sits in the file.
pub(crate) struct Section<'a, 'i> {
    table: &'a DeTable<'i>,
    /// Dotted path of the table, e.g. `queue.emails`; empty for the document.
    path: String,
    /// Where to point when something is missing from the table: its header,
    /// its inline braces, or the start of the file.
    span: Range<usize>,
    /// Every key a getter asked for, in the order first asked: the keys this
    /// table takes. [`Section::finish`] reports the others as unknown.
    asked: RefCell<Vec<String>>,
}

impl<'a, 'i> Section<'a, 'i> {
    /// The whole document.
    pub(crate) fn root(table: &'a DeTable<'i>) -> Self {
        Self::new(table, String::new(), 0..0)
    }

    fn new(table: &'a DeTable<'i>, path: String, span: Range<usize>) -> Self {
        Self {
            table,
            path,
            span,
            asked: RefCell::new(Vec::new()),
        }
    }

    /// Where this table is, for messages: `in [queue.emails]` or `at the top level`.
    pub(crate) fn place(&self) -> String {
        if self.path.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in [{}]", self.path)
        }
    }

    /// The span to point at when something is missing from this table.
    pub(crate) fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The value of `key`, if present. Asking makes `key` one this table takes: every
    /// getter asks through here, so the getters a validator calls are the definition
    /// of its table's keys.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.ask(key);
        self.table.get(key)
    }

    fn ask(&self, key: &str) {
        let mut asked = self.asked.borrow_mut();
        if !asked.iter().any(|k| k == key) {
            asked.push(key.to_owned());
        }
    }

    /// The span of `key` itself (not its value), if present.
    pub(crate) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.ask(key);
        self.table.get_key_value(key).map(|(key, _)| key.span())
    }

    /// Every key and value, in key order: for tables whose keys are names (`env`,
    /// `[queue]`'s queues), which [`Section::finish`] is not called on.
    pub(crate) fn entries(
        &self,
    ) -> impl Iterator<Item = (&'a Spanned<DeString<'i>>, &'a Value<'i>)> {
        self.table.iter()
    }

    /// The keys the getters asked for so far, in the order first asked.
    pub(crate) fn asked(&self) -> Vec<String> {
        self.asked.borrow().clone()
    }

    /// Reports every key of the table that no getter asked for, with the asked ones as
    /// what would be right. A validator calls it once it has asked for every key it
    /// takes, so that it must ask for each before it can give up on the table: else a
    /// valid key would be reported unknown, or a typo hidden behind another error.
    pub(crate) fn finish(&self, d: &mut Diagnostics<'_>) {
        let asked = self.asked();
        let expected: Vec<&str> = asked.iter().map(String::as_str).collect();
        for (key, _) in self.entries() {
            if !expected.contains(&key.get_ref().as_ref()) {
                self.unknown_key(key, &expected, d);
            }
        }
        if let Some(record) = d.keys.as_mut() {
            record.insert(self.path.clone(), asked);
        }
    }

    /// Reports `key` as unknown here, suggesting the closest expected key.
    pub(crate) fn unknown_key(
        &self,
        key: &Spanned<DeString<'i>>,
        expected: &[&str],
        d: &mut Diagnostics<'_>,
    ) {
        let name = key.get_ref().as_ref();
        let mut message = format!("unknown key `{name}` {}", self.place());
        match closest(name, expected) {
            Some(close) => message.push_str(&format!("; did you mean `{close}`? ")),
            None => message.push_str("; "),
        }
        message.push_str(&format!("expected one of: {}", expected.join(", ")));
        d.error(key.span(), message);
    }

    /// Reports that `key` holds a value of the wrong type.
    pub(crate) fn wrong_type(
        &self,
        key: &str,
        value: &Value<'i>,
        expected: &str,
        d: &mut Diagnostics<'_>,
    ) {
        d.error(
            value.span(),
            format!(
                "wrong type for `{key}` {}: found {}, expected {expected}",
                self.place(),
                with_article(value.get_ref().type_str()),
            ),
        );
    }

    /// The message for a value of the right type but the wrong content.
    pub(crate) fn invalid(&self, noun: &str, key: &str, shown: &str, expected: &str) -> String {
        format!(
            "invalid {noun} {shown} for `{key}` {}: {expected}",
            self.place()
        )
    }

    /// The table under `key`, or `None` when absent or not a table (reported).
    pub(crate) fn table(
        &self,
        key: &str,
        expected: &str,
        d: &mut Diagnostics<'_>,
    ) -> Option<Section<'a, 'i>> {
        let value = self.get(key)?;
        self.child(key, value, expected, d)
    }

    /// Each `[KIND.NAME]` table under this one (`kind` is `queue`, `service`, …), with its
    /// name checked (1 to 64 lowercase letters, digits, `_` or `-`); an entry that is not
    /// a table is reported and skipped. `example` names a typical table, e.g. `emails`.
    pub(crate) fn named_tables(
        &self,
        kind: &str,
        example: &str,
        d: &mut Diagnostics<'_>,
    ) -> Vec<(&'a str, Section<'a, 'i>)> {
        let mut out = Vec::new();
        for (key, value) in self.entries() {
            let name: &'a str = key.get_ref().as_ref();
            if !crate::validate::valid_queue_name(name) {
                d.error(
                    key.span(),
                    format!(
                        "invalid {kind} name `{name}`: expected 1 to 64 lowercase letters, digits, \
                         `_` or `-`, starting with a letter or digit, such as [{kind}.{example}]"
                    ),
                );
            }
            let expected = format!("a table such as [{kind}.{name}]");
            if let Some(table) = self.child(name, value, &expected, d) {
                out.push((name, table));
            }
        }
        out
    }

    /// `value`, found under `key` in this table, as a table of its own.
    pub(crate) fn child(
        &self,
        key: &str,
        value: &'a Value<'i>,
        expected: &str,
        d: &mut Diagnostics<'_>,
    ) -> Option<Section<'a, 'i>> {
        match value.get_ref() {
            DeValue::Table(table) => {
                let path = if self.path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{}.{key}", self.path)
                };
                Some(Section::new(table, path, value.span()))
            }
            _ => {
                self.wrong_type(key, value, expected, d);
                None
            }
        }
    }

    /// A string under `key`, checked by `parse`. `noun` names the kind of
    /// value in messages ("duration", "address", …).
    pub(crate) fn string<T>(
        &self,
        key: &str,
        noun: &str,
        d: &mut Diagnostics<'_>,
        parse: impl FnOnce(&str) -> Result<T, Invalid>,
    ) -> Option<T> {
        let value = self.get(key)?;
        let DeValue::String(text) = value.get_ref() else {
            self.wrong_type(key, value, "a string", d);
            return None;
        };
        match parse(text) {
            Ok(parsed) => Some(parsed),
            Err(Invalid::Expected(expected)) => {
                let message = self.invalid(noun, key, &format!("{text:?}"), &expected);
                d.error(value.span(), message);
                None
            }
            Err(Invalid::Message(message)) => {
                d.error(value.span(), message);
                None
            }
        }
    }

    /// `timezone`: an IANA zone name berth knows, `"UTC"` when absent (or refused).
    pub(crate) fn time_zone(&self, d: &mut Diagnostics<'_>) -> String {
        self.string("timezone", "time zone", d, |tz| {
            berth_cron::time_zone(tz)
                .map(|_| tz.to_owned())
                .map_err(|e| Invalid::Message(e.to_string()))
        })
        .unwrap_or_else(|| "UTC".to_owned())
    }

    /// A duration such as `"30s"` or `"1h 30m"` under `key`. Zero is refused
    /// unless `allow_zero`.
    pub(crate) fn duration(
        &self,
        key: &str,
        allow_zero: bool,
        d: &mut Diagnostics<'_>,
    ) -> Option<Duration> {
        const EXPECTED: &str = "expected a duration such as \"30s\", \"5m\" or \"1h 30m\"";
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(_) => self.string(key, "duration", d, |text| {
                match humantime::parse_duration(text) {
                    Ok(duration) if duration.is_zero() && !allow_zero => Err(Invalid::Expected(
                        "expected a duration greater than zero, such as \"30s\"".to_owned(),
                    )),
                    Ok(duration) => Ok(duration),
                    Err(_) => Err(Invalid::Expected(EXPECTED.to_owned())),
                }
            }),
            DeValue::Integer(_) | DeValue::Float(_) => {
                let shown = &d.source(value.span());
                let message = self.invalid(
                    "duration",
                    key,
                    shown,
                    "a bare number has no unit; expected a string such as \"30s\", \"5m\" or \"1h 30m\"",
                );
                d.error(value.span(), message);
                None
            }
            _ => {
                self.wrong_type(key, value, "a duration string such as \"30s\"", d);
                None
            }
        }
    }

    /// A non-empty path under `key`, resolved against the config file's directory
    /// `config_dir`. `example` shows a typical value, quoted.
    pub(crate) fn path(
        &self,
        key: &str,
        example: &str,
        config_dir: &Path,
        d: &mut Diagnostics<'_>,
    ) -> Option<PathBuf> {
        self.string(key, "path", d, |path| {
            if path.is_empty() {
                Err(Invalid::Expected(format!(
                    "expected a path such as {example}"
                )))
            } else {
                Ok(PathBuf::from(path))
            }
        })
        // `join` keeps an absolute path as it is.
        .map(|path| config_dir.join(path))
    }

    /// A size under `key`: a number of bytes, or a string with a unit such as `"10MiB"`.
    pub(crate) fn size(&self, key: &str, d: &mut Diagnostics<'_>) -> Option<u64> {
        const EXPECTED: &str = "expected a size greater than zero: a number of bytes, or a \
                                string such as \"10MiB\", \"500KB\" or \"1GiB\" (units B, KB, \
                                MB, GB, KiB, MiB, GiB)";
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Integer(integer) => {
                match u64::from_str_radix(integer.as_str(), integer.radix()) {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        let message = self.invalid("size", key, &d.source(value.span()), EXPECTED);
                        d.error(value.span(), message);
                        None
                    }
                }
            }
            DeValue::String(_) => self.string(key, "size", d, |text| {
                parse_size(text).ok_or_else(|| Invalid::Expected(EXPECTED.into()))
            }),
            _ => {
                self.wrong_type(
                    key,
                    value,
                    "a size such as \"10MiB\" or a number of bytes",
                    d,
                );
                None
            }
        }
    }

    /// A list of strings under `key`, each checked by `parse`; a single string counts
    /// as a list of one. `expected` describes one item.
    pub(crate) fn string_list<T>(
        &self,
        key: &str,
        noun: &str,
        expected: &str,
        d: &mut Diagnostics<'_>,
        mut parse: impl FnMut(&str) -> Result<T, Invalid>,
    ) -> Option<Vec<T>> {
        let value = self.get(key)?;
        let items: Vec<&Value<'i>> = match value.get_ref() {
            DeValue::String(_) => vec![value],
            DeValue::Array(items) => items.iter().collect(),
            _ => {
                self.wrong_type(key, value, &format!("{expected}, or an array of them"), d);
                return None;
            }
        };
        let mut out = Vec::new();
        for item in items {
            let DeValue::String(text) = item.get_ref() else {
                self.wrong_type(key, item, expected, d);
                continue;
            };
            match parse(text) {
                Ok(parsed) => out.push(parsed),
                Err(Invalid::Expected(what)) => {
                    let message = self.invalid(noun, key, &format!("{text:?}"), &what);
                    d.error(item.span(), message);
                }
                Err(Invalid::Message(message)) => d.error(item.span(), message),
            }
        }
        Some(out)
    }

    /// Each table of the array of tables under `key` (`[[KEY]]`), with its index.
    pub(crate) fn table_array(
        &self,
        key: &str,
        expected: &str,
        d: &mut Diagnostics<'_>,
    ) -> Vec<Section<'a, 'i>> {
        let Some(value) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(key, value, expected, d);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(table) => {
                    let path = if self.path.is_empty() {
                        format!("{key}#{}", i + 1)
                    } else {
                        format!("{}.{key}#{}", self.path, i + 1)
                    };
                    out.push(Section::new(table, path, item.span()));
                }
                _ => self.wrong_type(key, item, expected, d),
            }
        }
        out
    }

    /// `true` or `false` under `key`.
    pub(crate) fn boolean(&self, key: &str, d: &mut Diagnostics<'_>) -> Option<bool> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, value, "true or false", d);
                None
            }
        }
    }

    /// An integer within `range` under `key`.
    pub(crate) fn integer(
        &self,
        key: &str,
        range: RangeInclusive<i64>,
        d: &mut Diagnostics<'_>,
    ) -> Option<i64> {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        let value = self.get(key)?;
        let DeValue::Integer(integer) = value.get_ref() else {
            self.wrong_type(key, value, &expected, d);
            return None;
        };
        match i64::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(n) if range.contains(&n) => Some(n),
            // Either outside the range or too large for an i64 at all.
            _ => {
                let message = self.invalid(
                    "value",
                    key,
                    &d.source(value.span()),
                    &format!("expected {expected}"),
                );
                d.error(value.span(), message);
                None
            }
        }
    }

    /// A number (a float, or an integer written without a point) under `key`
    /// that passes `check`; `expected` describes what `check` accepts.
    pub(crate) fn number(
        &self,
        key: &str,
        expected: &str,
        check: impl FnOnce(f64) -> bool,
        d: &mut Diagnostics<'_>,
    ) -> Option<f64> {
        let value = self.get(key)?;
        let number = match value.get_ref() {
            DeValue::Float(float) => float.as_str().parse::<f64>().ok(),
            DeValue::Integer(integer) => i64::from_str_radix(integer.as_str(), integer.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.wrong_type(key, value, expected, d);
                return None;
            }
        };
        match number {
            Some(n) if check(n) => Some(n),
            _ => {
                let message = self.invalid(
                    "value",
                    key,
                    &d.source(value.span()),
                    &format!("expected {expected}"),
                );
                d.error(value.span(), message);
                None
            }
        }
    }
}

/// "unknown … `name` …; did you mean `close`? expected one of: a, b" — `what` is the
/// start of the message, `known` the names that would be right, `none` what to say when
/// there are none.
pub(crate) fn unknown_name(what: String, name: &str, known: &[&str], none: &str) -> String {
    let mut message = what;
    match closest(name, known) {
        Some(close) => message.push_str(&format!("; did you mean `{close}`? ")),
        None => message.push_str("; "),
    }
    if known.is_empty() {
        message.push_str(none);
    } else {
        message.push_str(&format!("expected one of: {}", known.join(", ")));
    }
    message
}

/// `"10MiB"` → 10485760; `None` for zero, an unknown unit or an overflow.
/// Units are case-insensitive; a space may separate them from the number.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier).filter(|&n| n > 0)
}

/// The expected key most like `key`, if any is close enough to be a likely typo.
pub(crate) fn closest<'e>(key: &str, expected: &[&'e str]) -> Option<&'e str> {
    expected
        .iter()
        .map(|candidate| (strsim::jaro_winkler(key, candidate), *candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// "a string", "an integer", … for a TOML type name.
fn with_article(type_name: &str) -> String {
    let article = if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {type_name}")
}

#[cfg(test)]
mod tests {
    use super::closest;

    const QUEUE_KEYS: &[&str] = &["concurrency", "handler", "max_attempts", "backoff"];

    #[test]
    fn suggests_only_close_keys() {
        assert_eq!(closest("concurency", QUEUE_KEYS), Some("concurrency"));
        assert_eq!(closest("max_attempt", QUEUE_KEYS), Some("max_attempts"));
        assert_eq!(closest("handlr", QUEUE_KEYS), Some("handler"));
        assert_eq!(closest("colour", QUEUE_KEYS), None);
        assert_eq!(closest("x", QUEUE_KEYS), None);
    }
}
