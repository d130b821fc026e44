//! The `[deploy]` table: where releases come from, where they live, and the steps of a
//! deploy (build, backup, migrate, switch, health gate).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diagnostic::Diagnostics;
use crate::section::{Invalid, Section};

/// The `[deploy]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// `repo`: a git repository (a URL, or a path resolved against the config file's
    /// directory) that `berth deploy [REF]` takes the code from. Without it, each deploy
    /// names a directory or an archive.
    pub repo: Option<String>,
    /// `ref` (default `"HEAD"`, the repository's default branch): what `berth deploy`
    /// without an argument deploys.
    pub git_ref: String,
    /// `dir` (default `releases` beside the config file): `dir/<id>/` for each release,
    /// and `dir/current`, the link to the live one.
    pub dir: PathBuf,
    /// `keep` (default 5, at least 2): releases kept; older ones are removed after a
    /// deploy, never the live one, the previous one, or one still in use.
    pub keep: u32,
    /// `build`: commands run in order in the new release's directory while the old one
    /// serves (`pip install -r requirements.txt`, `python manage.py collectstatic`).
    pub build: Vec<String>,
    /// `migrate`: the command that migrates the application's databases, run once,
    /// in the new release, after the backup.
    pub migrate: Option<String>,
    /// `backup` (default true): a backup (berth's store, the application's databases and
    /// included directories) before the migration; a rollback restores from it.
    pub backup: bool,
    /// `maintenance` (default false): maintenance mode from the migration to the end of
    /// the switch.
    pub maintenance: bool,
    /// `restore_on_rollback` (default false): when a migration ran, a rollback puts the
    /// application's databases back from the deploy's backup.
    pub restore_on_rollback: bool,
    /// `health` (default 10s): how long the services must stay up (and `smoke` pass)
    /// after the switch before the deploy counts as done.
    pub health: Duration,
    /// `smoke`: a command run in the new release during the health gate, which must
    /// exit 0 each time.
    pub smoke: Option<String>,
    /// `step_timeout` (default 15m): how long one build step, the migration or the smoke
    /// command may take.
    pub step_timeout: Duration,
}

pub(crate) fn deploy(
    section: &Section<'_, '_>,
    config_dir: &Path,
    data_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> DeployConfig {
    let command = |what: &'static str| {
        move |c: &str| {
            if c.trim().is_empty() {
                Err(Invalid::Expected(format!(
                    "expected a command such as {what}"
                )))
            } else {
                Ok(c.to_owned())
            }
        }
    };
    let repo = section.string("repo", "repository", d, |r| {
        if r.trim().is_empty() {
            return Err(Invalid::Expected(
                "expected a git repository such as \"git@example.org:shop.git\" or \"../shop\""
                    .into(),
            ));
        }
        // A URL (`scheme://`, or git's `user@host:path`) stays as it is; a path is
        // resolved against the config file's directory.
        let url = r.contains("://") || (r.contains('@') && r.contains(':'));
        Ok(if url {
            r.to_owned()
        } else {
            config_dir.join(r).display().to_string()
        })
    });
    let git_ref = section
        .string("ref", "git ref", d, |r| {
            if r.is_empty() || r.starts_with('-') || r.contains(char::is_whitespace) {
                Err(Invalid::Expected(
                    "expected a branch, tag or commit such as \"main\" or \"v1.4.2\"".into(),
                ))
            } else {
                Ok(r.to_owned())
            }
        })
        .unwrap_or_else(|| "HEAD".into());
    let dir = section
        .path(
            "dir",
            "\"releases\" or \"/srv/shop/releases\"",
            config_dir,
            d,
        )
        .unwrap_or_else(|| config_dir.join("releases"));
    if dir.starts_with(data_dir) || data_dir.starts_with(&dir) {
        d.error(
            section.key_span("dir").unwrap_or_else(|| section.span()),
            format!(
                "`dir` of [deploy] ({}) overlaps the data dir {}: expected a directory of its own, such as \"releases\"",
                dir.display(),
                data_dir.display()
            ),
        );
    }
    let keep = section
        .integer("keep", 2..=1000, d)
        .map(|n| n as u32)
        .unwrap_or(5);
    let build = section
        .string_list(
            "build",
            "command",
            "a command such as \"pip install -r requirements.txt\"",
            d,
            command("\"pip install -r requirements.txt\""),
        )
        .unwrap_or_default();
    let migrate = section.string(
        "migrate",
        "command",
        d,
        command("\"python manage.py migrate --noinput\""),
    );
    let smoke = section.string(
        "smoke",
        "command",
        d,
        command("\"curl -fsS http://127.0.0.1:8000/health\""),
    );
    let backup = section.boolean("backup", d).unwrap_or(true);
    let restore_on_rollback = section.boolean("restore_on_rollback", d).unwrap_or(false);
    if restore_on_rollback && !backup {
        d.error(
            section
                .key_span("restore_on_rollback")
                .unwrap_or_else(|| section.span()),
            "`restore_on_rollback = true` in [deploy] restores from the deploy's backup, and \
             `backup = false` takes none: set `backup = true`, or drop `restore_on_rollback`"
                .to_owned(),
        );
    }
    let maintenance = section.boolean("maintenance", d).unwrap_or(false);
    let health = section
        .duration("health", true, d)
        .unwrap_or(Duration::from_secs(10));
    let step_timeout = section
        .duration("step_timeout", false, d)
        .unwrap_or(Duration::from_secs(15 * 60));
    section.finish(d);
    DeployConfig {
        repo,
        git_ref,
        dir,
        keep,
        build,
        migrate,
        backup,
        maintenance,
        restore_on_rollback,
        health,
        smoke,
        step_timeout,
    }
}
