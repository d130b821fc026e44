//! The one error type, kept as a plain message so callers can show it as is.

use std::fmt;

/// Why an expression or time zone name was refused.
///
/// The [`Display`](fmt::Display) form is a complete sentence meant for the
/// person who wrote the schedule: it names the part that was wrong and says
/// what was expected instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError {
    message: String,
}

impl CronError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message, the same text as the `Display` form.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CronError {}
