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

impl QueueError {
    /// An unknown-queue error with a suggestion from the known names.
    pub fn unknown_queue<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> Self {
        let known: Vec<&String> = known.collect();
        let best = known
            .iter()
            .map(|k| (strsim::jaro_winkler(name, k), *k))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        QueueError::UnknownQueue {
            name: name.to_string(),
            suggestion: best
                .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default(),
            known: if known.is_empty() {
                "none (add a [queue.NAME] table to berth.toml)".into()
            } else {
                known
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }
    }
}

/// Shorthand for queue results.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;
