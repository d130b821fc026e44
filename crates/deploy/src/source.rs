//! Where a release's code comes from: a git repository (kept as a bare mirror beside the
//! releases, fetched on each deploy), a directory, or an archive.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::DeployError;
use crate::releases::SourceInfo;

/// What `berth deploy` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A ref of `[deploy] repo` (a branch, tag or commit).
    Git(String),
    /// A directory, copied whole.
    Dir(PathBuf),
    /// A `.tar`, `.tar.gz`/`.tgz` or `.tar.zst` archive, unpacked.
    Archive(PathBuf),
}

impl Source {
    /// `berth deploy ARG`: an existing directory or file is one (a file is an archive);
    /// anything else is a git ref.
    pub fn from_arg(arg: &str, cwd: &Path) -> Self {
        let path = cwd.join(arg);
        if path.is_dir() {
            Source::Dir(path)
        } else if path.is_file() {
            Source::Archive(path)
        } else {
            Source::Git(arg.to_owned())
        }
    }
}

/// Puts the source's code into `dest` (an empty directory). `cache` is where a git
/// repository's mirror is kept.
pub(crate) async fn fetch(
    source: &Source,
    repo: Option<&str>,
    cache: &Path,
    dest: &Path,
) -> Result<SourceInfo, DeployError> {
    match source {
        Source::Git(git_ref) => {
            let Some(repo) = repo else {
                return Err(DeployError::Refused(format!(
                    "`{git_ref}` is neither a directory nor a file, and [deploy] names no `repo` to take it from; \
                     give a directory or an archive, or set `repo` in [deploy]"
                )));
            };
            let commit = git_checkout(repo, git_ref, cache, dest).await?;
            Ok(SourceInfo {
                kind: "git".into(),
                git_ref: Some(git_ref.clone()),
                commit: Some(commit),
                path: None,
            })
        }
        Source::Dir(path) => {
            let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            if real(dest).starts_with(real(path)) {
                return Err(DeployError::Refused(format!(
                    "the releases directory lies inside {}, the directory to deploy: a copy would copy itself; \
                     build the release elsewhere, or move [deploy] dir out of it",
                    path.display()
                )));
            }
            let mut from = path.as_os_str().to_owned();
            from.push("/.");
            run(
                "cp",
                Command::new("cp").arg("-a").arg(&from).arg(dest),
                "copy the directory",
            )
            .await?;
            Ok(SourceInfo {
                kind: "dir".into(),
                git_ref: None,
                commit: None,
                path: Some(path.display().to_string()),
            })
        }
        Source::Archive(path) => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let flag = if name.ends_with(".tar") {
                None
            } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
                Some("-z")
            } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
                Some("--zstd")
            } else {
                return Err(DeployError::Refused(format!(
                    "{} is not an archive berth unpacks: expected a directory, or a .tar, .tar.gz, .tgz or .tar.zst file",
                    path.display()
                )));
            };
            let mut cmd = Command::new("tar");
            cmd.arg("-x").arg("--no-same-owner");
            if let Some(f) = flag {
                cmd.arg(f);
            }
            cmd.arg("-f").arg(path).arg("-C").arg(dest);
            run("tar", &mut cmd, "unpack the archive").await?;
            Ok(SourceInfo {
                kind: "archive".into(),
                git_ref: None,
                commit: None,
                path: Some(path.display().to_string()),
            })
        }
    }
}

/// Brings the mirror up to date, resolves `git_ref` and writes that commit's tree into
/// `dest`. Returns the commit.
async fn git_checkout(
    repo: &str,
    git_ref: &str,
    cache: &Path,
    dest: &Path,
) -> Result<String, DeployError> {
    if !cache.join("HEAD").exists() {
        let _ = std::fs::remove_dir_all(cache);
        run(
            "git",
            Command::new("git")
                .arg("clone")
                .arg("--mirror")
                .arg("--quiet")
                .arg("--")
                .arg(repo)
                .arg(cache),
            &format!("clone {repo}"),
        )
        .await?;
    } else {
        run(
            "git",
            Command::new("git")
                .arg("-C")
                .arg(cache)
                .arg("fetch")
                .arg("--quiet")
                .arg("--prune")
                .arg("--tags")
                .arg("--force")
                .arg("--")
                .arg(repo)
                .arg("+refs/heads/*:refs/heads/*"),
            &format!("fetch from {repo}"),
        )
        .await?;
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(cache)
        .arg("rev-parse")
        .arg("--verify")
        .arg("--quiet")
        .arg("--end-of-options")
        .arg(format!("{git_ref}^{{commit}}"))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| not_found("git", e))?;
    if !out.status.success() {
        return Err(DeployError::Refused(format!(
            "{repo} has no branch, tag or commit `{git_ref}`"
        )));
    }
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // `git archive` writes the tree as the commit has it (no .git, export rules
    // applied); tar unpacks it.
    let archive = dest.with_extension("tar");
    run(
        "git",
        Command::new("git")
            .arg("-C")
            .arg(cache)
            .arg("archive")
            .arg("--format=tar")
            .arg("-o")
            .arg(&archive)
            .arg(&commit),
        "write the commit's tree",
    )
    .await?;
    let unpacked = run(
        "tar",
        Command::new("tar")
            .arg("-x")
            .arg("--no-same-owner")
            .arg("-f")
            .arg(&archive)
            .arg("-C")
            .arg(dest),
        "unpack the commit's tree",
    )
    .await;
    let _ = std::fs::remove_file(&archive);
    unpacked?;
    Ok(commit)
}

fn not_found(tool: &str, e: std::io::Error) -> DeployError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DeployError::Refused(format!("`{tool}` is not installed; a deploy needs it"))
    } else {
        DeployError::io(format!("cannot run {tool}"), e)
    }
}

async fn run(tool: &str, cmd: &mut Command, what: &str) -> Result<(), DeployError> {
    let out = cmd
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| not_found(tool, e))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(DeployError::Refused(format!(
        "cannot {what}: {tool} {}: {}",
        out.status,
        err.trim()
    )))
}
