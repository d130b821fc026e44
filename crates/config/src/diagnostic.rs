//! One located problem in a config file, and the collector that gathers them.
//!
//! Validation never stops at the first problem: every check reports into a
//! [`Diagnostics`] collector and carries on with a default, so one run of
//! `berth check` shows everything that needs fixing.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::ConfigError;

/// One problem found in a config file, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config file, as it was given to [`crate::load`] or [`crate::parse`].
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column number, counted in characters (not bytes).
    pub column: usize,
    /// What is wrong and what is expected instead.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Collects diagnostics for one config text, turning byte spans into
/// line and column as they arrive.
pub(crate) struct Diagnostics<'s> {
    file: &'s Path,
    text: &'s str,
    found: Vec<Diagnostic>,
    /// When set (by the docs check), the keys each finished table asked for, by its
    /// path (`queue.mail.backoff`, `gateway.route#2`; `""` for the top level).
    pub(crate) keys: Option<BTreeMap<String, Vec<String>>>,
}

impl<'s> Diagnostics<'s> {
    /// A collector for `text`, read from `file`.
    pub(crate) fn new(file: &'s Path, text: &'s str) -> Self {
        Self {
            file,
            text,
            found: Vec::new(),
            keys: None,
        }
    }

    /// Records a problem at the start of `span` (a byte range into the text).
    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_column(self.text, span.start);
        self.found.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }

    /// The text of `span` as written in the file, e.g. `0x10` for a number.
    pub(crate) fn source(&self, span: Range<usize>) -> String {
        self.text.get(span).unwrap_or_default().to_owned()
    }

    /// `Ok(value)` when nothing was reported, otherwise the error.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.found.is_empty() {
            Ok(value)
        } else {
            Err(self.into_error())
        }
    }

    /// Every diagnostic so far, in the order it appears in the file.
    pub(crate) fn into_error(self) -> ConfigError {
        let mut diagnostics = self.found;
        // Checks run table by table (and toml keeps keys sorted), so put the
        // report back into reading order. The sort is stable: two problems at
        // one spot keep the order in which they were found.
        diagnostics.sort_by_key(|d| (d.line, d.column));
        ConfigError::Invalid { diagnostics }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
///
/// An offset past the end, or inside a multi-byte character, is moved to the
/// nearest valid position before it, so every span yields a location.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn offsets_become_one_based_lines_and_char_columns() {
        let text = "a = 1\nné = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // "é" is two bytes; the `=` after it is the 4th character.
        assert_eq!(line_column(text, 10), (2, 4));
        // Inside "é" rounds down to its start.
        assert_eq!(line_column(text, 8), (2, 2));
        // Past the end: the position after the last newline.
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
