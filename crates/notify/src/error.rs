//! The notifier's errors.

/// Why notifications could not be prepared or sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A channel's settings cannot be used (an address, a certificate, a URL).
    #[error("[notify.{channel}]: {detail}")]
    Setup {
        /// The channel.
        channel: String,
        /// What is wrong, and what would be right.
        detail: String,
    },
    /// A channel could not send.
    #[error("[notify.{channel}] could not send: {error}")]
    Send {
        /// The channel.
        channel: String,
        /// What went wrong.
        error: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
}

impl NotifyError {
    /// A setup problem, before the channel's name is known.
    pub(crate) fn setup(detail: impl Into<String>) -> Self {
        NotifyError::Setup {
            channel: String::new(),
            detail: detail.into(),
        }
    }

    /// Names the channel a setup problem belongs to.
    pub(crate) fn in_channel(self, name: &str) -> Self {
        match self {
            NotifyError::Setup { detail, .. } => NotifyError::Setup {
                channel: name.to_owned(),
                detail,
            },
            other => other,
        }
    }
}
