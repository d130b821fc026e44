//! Config integration tests: valid configs and their defaults, every class of
//! error with its exact location, files on disk, services.

mod docs;
mod errors;
mod files;
mod flows;
mod fuzz;
mod gateway;
mod ingest;
mod notify_backup;
mod services;
mod valid;

use std::path::Path;

use berth_config::{Config, ConfigError, Diagnostic};

/// Parses `text` as `berth.toml` in the current directory.
fn parse(text: &str) -> Result<Config, ConfigError> {
    berth_config::parse(text, Path::new("berth.toml"))
}

/// Parses `text`, which must be valid.
fn valid(text: &str) -> Config {
    match parse(text) {
        Ok(config) => config,
        Err(error) => panic!("expected a valid config, got:\n{error}"),
    }
}

/// Parses `text`, which must be invalid, and returns every diagnostic.
fn diagnostics(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Ok(config) => panic!("expected diagnostics, got a valid config: {config:#?}"),
        Err(ConfigError::Invalid { diagnostics }) => diagnostics,
        Err(error) => panic!("expected ConfigError::Invalid, got {error:?}"),
    }
}

/// Parses `text`, which must have exactly one problem, and returns it as
/// `(line, column, message)`.
fn one_error(text: &str) -> (usize, usize, String) {
    let mut found = diagnostics(text);
    assert_eq!(found.len(), 1, "expected one diagnostic, got {found:#?}");
    let d = found.remove(0);
    assert_eq!(d.file, Path::new("berth.toml"));
    (d.line, d.column, d.message)
}

/// A minimal valid `[app]` followed by `rest`.
fn with_app(rest: &str) -> String {
    format!("[app]\nname = \"myapp\"\n\n{rest}")
}

/// Parses `text`, which must be valid, as if read from `path`.
fn parse_at(text: &str, path: &str) -> Config {
    match berth_config::parse(text, Path::new(path)) {
        Ok(config) => config,
        Err(error) => panic!("expected a valid config, got:\n{error}"),
    }
}

/// Every diagnostic in `found` is one of `expect` (by substring), and each is there.
pub(crate) fn exactly(found: &[berth_config::Diagnostic], expect: &[&str]) {
    let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
    for e in expect {
        assert!(
            messages.iter().any(|m| m.contains(e)),
            "no message contains {e:?}; got:\n{}",
            messages.join("\n")
        );
    }
    assert_eq!(messages.len(), expect.len(), "{}", messages.join("\n"));
}
