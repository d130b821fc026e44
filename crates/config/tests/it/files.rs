//! `find` and `load` against real files.

use std::fs;

use berth_config::{ConfigError, FILE_NAME, find, load};

#[test]
fn find_looks_for_berth_toml_in_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(FILE_NAME, "berth.toml");
    assert_eq!(find(dir.path()), None);

    // A directory of that name is not a config file.
    fs::create_dir(dir.path().join(FILE_NAME)).unwrap();
    assert_eq!(find(dir.path()), None);
    fs::remove_dir(dir.path().join(FILE_NAME)).unwrap();

    fs::write(dir.path().join(FILE_NAME), "[app]\nname = \"x\"\n").unwrap();
    assert_eq!(find(dir.path()), Some(dir.path().join(FILE_NAME)));
}

#[test]
fn load_resolves_data_dir_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);

    fs::write(&path, "[app]\nname = \"x\"\n").unwrap();
    let config = load(&path).unwrap();
    assert_eq!(config.path, path);
    assert_eq!(config.app.data_dir, dir.path().join(".berth"));
    assert!(config.app.data_dir.is_absolute());

    fs::write(&path, "[app]\nname = \"x\"\ndata_dir = \"var/state\"\n").unwrap();
    let config = load(&path).unwrap();
    assert_eq!(config.app.data_dir, dir.path().join("var/state"));
}

#[test]
fn load_reports_problems_against_the_path_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    fs::write(&path, "[app]\nname = \"x\"\nshutdown_grace = 30\n").unwrap();
    let error = load(&path).unwrap_err();
    let ConfigError::Invalid { diagnostics } = &error else {
        panic!("expected Invalid, got {error:?}");
    };
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].file, path);
    let expected_start = format!("{}:3:18: invalid duration 30", path.display());
    assert!(error.to_string().starts_with(&expected_start), "{error}");
}

#[test]
fn load_of_a_missing_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let error = load(&path).unwrap_err();
    let ConfigError::Read {
        path: reported,
        source,
    } = &error
    else {
        panic!("expected Read, got {error:?}");
    };
    assert_eq!(reported, &path);
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    // The cause is the error's source, printed once by whoever prints the chain.
    assert_eq!(
        error.to_string(),
        format!("cannot read config file {}", path.display())
    );
    assert!(std::error::Error::source(&error).is_some());
}
