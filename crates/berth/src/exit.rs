//! Exit codes and error messages.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | failure (berth could not do it) |
//! | 2 | bad command line (from clap) |
//! | 3 | invalid config |
//! | 4 | not found (job, queue, service, backup) |
//! | 5 | not allowed in the current state (a job's, or a restart that did not get ready) |
//! | 6 | rejected input (bad arguments or body) |
//! | 69 | berth is not running (no API to talk to) |
//! | 75 | berth runs, but its store cannot take the call now (API 503): try again |

use std::process::ExitCode;

use berth_api::client::ClientError;
use berth_config::ConfigError;

/// Invalid config.
pub const CONFIG: u8 = 3;
/// Not found.
pub const NOT_FOUND: u8 = 4;
/// Wrong state.
pub const CONFLICT: u8 = 5;
/// Rejected input.
pub const INVALID: u8 = 6;
/// Berth is not running.
pub const UNAVAILABLE: u8 = 69;
/// A temporary failure: the store cannot take the call now (sysexits' EX_TEMPFAIL).
pub const TRY_AGAIN: u8 = 75;

/// The exit code for an error.
pub fn code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<ConfigError>().is_some() {
            return CONFIG;
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return match c {
                ClientError::Unreachable { .. } => UNAVAILABLE,
                ClientError::Api { code, .. } if code == "config_invalid" => CONFIG,
                ClientError::Api { status, .. } => match status.as_u16() {
                    404 => NOT_FOUND,
                    409 => CONFLICT,
                    400 | 422 => INVALID,
                    503 => TRY_AGAIN,
                    _ => 1,
                },
                ClientError::Http(_) | ClientError::Decode { .. } => 1,
            };
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return INVALID;
        }
        if let Some(berth_backup::BackupError::NotFound(_)) = cause.downcast_ref() {
            return NOT_FOUND;
        }
        if let Some(s) = cause.downcast_ref::<berth_store::StoreError>() {
            use berth_store::StoreError as E;
            match s {
                E::JobNotFound(_) | E::NotFound(_) => return NOT_FOUND,
                E::InvalidState { .. } | E::Conflict(_) => return CONFLICT,
                E::Invalid(_) => return INVALID,
                _ => {}
            }
        }
    }
    1
}

/// A mistake in what the user asked (found after clap's own checks).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Prints the error and returns its exit code.
pub fn report(e: &anyhow::Error, json: bool) -> ExitCode {
    let code = code_for(e);
    if json {
        let v = serde_json::json!({"error": {"message": format!("{e:#}"), "exit_code": code}});
        errln!("{v}");
    } else if let Some(ConfigError::Invalid { .. }) = e.downcast_ref::<ConfigError>() {
        errln!("{e}");
        errln!("error: the config is not valid (see above)");
    } else {
        errln!("error: {e:#}");
    }
    ExitCode::from(code)
}
