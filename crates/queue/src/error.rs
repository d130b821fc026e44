//! The queue's errors.

use berth_store::StoreError;

/// What can go wrong in a queue operation.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue is not in the config.
    #[error("unknown queue `{name}`{suggestion}; the configured queues are: {known}")]
    UnknownQueue {
        /// The name asked for.
        name: String,
        /// " (did you mean `x`?)" or empty.
        suggestion: String,
        /// The configured names, comma separated (or "none").
        known: String,
    },
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// For an unknown `name` among the configured `known` names of a `[KIND.NAME]` table:
/// " (did you mean `x`?)" (or nothing) and the list of the known names (or how to add
/// one), as every "unknown queue / workflow / schedule" message shows them.
pub fn did_you_mean<'a>(
    name: &str,
    known: impl Iterator<Item = &'a String>,
    kind: &str,
) -> (String, String) {
    let known: Vec<&String> = known.collect();
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let suggestion = best
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    let listed = if known.is_empty() {
        format!("none (add a [{kind}.NAME] table to berth.toml)")
    } else {
        known
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    (suggestion, listed)
}

impl QueueError {
    /// An unknown-queue error with a suggestion from the known names.
    pub fn unknown_queue<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> Self {
        let (suggestion, known) = did_you_mean(name, known, "queue");
        QueueError::UnknownQueue {
            name: name.to_string(),
            suggestion,
            known,
        }
    }
}

/// Shorthand for queue results.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;
