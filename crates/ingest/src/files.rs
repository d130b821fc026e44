//! Dropped files: `dir = { watch, processing, done, error, pattern }`.
//!
//! A file in `watch` whose name matches a pattern is taken once it is complete: unchanged
//! (size and modification time) for `settle`, which a file renamed in whole already is at
//! the first look. It is renamed into `processing` (never over another file of the same
//! name), and a job (or a workflow) is started for it with the file's path in its args.
//! When the job completes (the workflow: completes) the file moves to `done`; when it is
//! discarded or cancelled (the workflow fails or is cancelled) the file moves to `error`
//! with `NAME.error.log` beside it, holding every attempt's error (every failed step's).
//! A name already taken in `done` or `error` gets a number (`data.2.csv`).
//!
//! Crash safety: the state is where the file is, plus its job or workflow. The job is
//! tagged, the workflow keyed, with the file's identity (name, inode, birth time), so on a
//! restart every file still in `processing` finds its job or workflow again, or gets one
//! if berth stopped between the rename and the insert. No file is left behind, and none
//! starts a second one.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_store::{FlowState, Job, JobFilter, JobState, Start, Workflow, WorkflowFilter};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::Core;
use crate::error::IngestError;
use crate::pipeline::Starter;

/// The highest number a file's name gets in `done` or `error` (`data.9999.csv`).
const MAX_NUMBER: u32 = 9_999;

/// How often the directories are looked at.
const POLL: Duration = Duration::from_millis(500);

/// A watched directory.
#[derive(Clone)]
pub struct DirSpec {
    /// Where files are dropped.
    pub watch: PathBuf,
    /// Where a file waits for its job.
    pub processing: PathBuf,
    /// Where a file goes once its job completed.
    pub done: PathBuf,
    /// Where a file goes when its job failed for good.
    pub error: PathBuf,
    /// File names taken (`*` and `?`).
    pub patterns: Vec<String>,
    /// How long a file must stay unchanged before it is taken.
    pub settle: Duration,
    /// Makes the job of a file from its args.
    pub job: Starter,
}

/// Creates the directories and checks that files can be renamed between them (one file
/// system), so that a mistake stops the start instead of every file.
pub(crate) fn prepare(ingest: &str, spec: &DirSpec) -> Result<(), IngestError> {
    let bad = |path: &Path, detail: String| IngestError::Dir {
        ingest: ingest.to_owned(),
        path: path.to_path_buf(),
        detail,
    };
    let mut device = None;
    for dir in [&spec.watch, &spec.processing, &spec.done, &spec.error] {
        std::fs::create_dir_all(dir).map_err(|e| bad(dir, format!("cannot create it: {e}")))?;
        let meta = std::fs::metadata(dir).map_err(|e| bad(dir, e.to_string()))?;
        match device {
            None => device = Some(meta.dev()),
            Some(d) if d != meta.dev() => {
                return Err(bad(
                    dir,
                    format!(
                        "it is on another file system than {}; files move between watch, \
                         processing, done and error by renaming, so all four must be on one",
                        spec.watch.display()
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A file in `processing` and the job handling it.
struct Tracked {
    name: OsString,
}

/// What handles a file: a job, or a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Handler {
    Job(i64),
    Workflow(i64),
}

impl std::fmt::Display for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handler::Job(id) => write!(f, "job {id}"),
            Handler::Workflow(id) => write!(f, "workflow {id}"),
        }
    }
}

struct Watcher {
    core: Arc<Core>,
    spec: DirSpec,
    /// Files seen in `watch` at the last look, with their size and modification time.
    seen: HashMap<OsString, (u64, SystemTime)>,
    /// Files in `processing`, by their job or workflow.
    tracked: BTreeMap<Handler, Tracked>,
    /// Names already reported as waiting or unusable, so each is said once.
    reported: HashMap<OsString, &'static str>,
    /// Files in `processing` whose job could not be started yet (the store failed).
    unstarted: Vec<OsString>,
}

/// Watches the directory until `stop`: first finds the jobs of files left in
/// `processing`, then takes new files and moves finished ones.
pub(crate) async fn run(core: Arc<Core>, spec: DirSpec, stop: CancellationToken) {
    let mut w = Watcher {
        core,
        spec,
        seen: HashMap::new(),
        tracked: BTreeMap::new(),
        reported: HashMap::new(),
        unstarted: Vec::new(),
    };
    w.recover().await;
    loop {
        w.finish().await;
        w.retry().await;
        w.take().await;
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// What makes a file this file: its name, inode and birth time (the modification time
/// where the file system keeps no birth time), which a rename keeps and a new file of the
/// same name does not share.
fn identity(ingest: &str, name: &str, meta: &std::fs::Metadata) -> String {
    let born = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| format!("b{}.{}", d.as_secs(), d.subsec_nanos()))
        .unwrap_or_else(|| format!("m{}.{}", meta.mtime(), meta.mtime_nsec()));
    format!("file:{ingest}:{name}:{}:{born}", meta.ino())
}

impl Watcher {
    fn ingest(&self) -> &str {
        &self.core.name
    }

    /// Files left in `processing` by an earlier run: each finds its job by its identity,
    /// or gets one.
    async fn recover(&mut self) {
        let files = match list(&self.spec.processing) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(ingest = %self.ingest(), dir = %self.spec.processing.display(), error = %e, "cannot read the processing directory");
                return;
            }
        };
        for (name, meta) in files {
            let Some(text) = name.to_str().map(str::to_owned) else {
                continue;
            };
            let key = identity(self.ingest(), &text, &meta);
            let found = self
                .core
                .store
                .list_jobs(JobFilter {
                    tag: Some(key.clone()),
                    limit: 1,
                    ..Default::default()
                })
                .await;
            let found = match found {
                Ok(jobs) if !jobs.is_empty() => Ok(Some(Handler::Job(jobs[0].id))),
                Ok(_) => self
                    .core
                    .store
                    .workflows(WorkflowFilter {
                        unique_key: Some(key.clone()),
                        limit: 1,
                        ..Default::default()
                    })
                    .await
                    .map(|w| w.first().map(|w| Handler::Workflow(w.id))),
                Err(e) => Err(e),
            };
            match found {
                Ok(Some(handler)) => {
                    tracing::info!(ingest = %self.ingest(), file = %text, %handler, "resuming a file left in processing");
                    self.tracked.insert(handler, Tracked { name });
                }
                Ok(None) => {
                    tracing::info!(ingest = %self.ingest(), file = %text, "a file in processing has no job yet: starting it");
                    self.start(name, &meta).await;
                }
                Err(e) => {
                    tracing::error!(ingest = %self.ingest(), file = %text, error = %e, "cannot look up the job of a file in processing; trying again at the next start");
                }
            }
        }
    }

    /// Starts the job of a file now in `processing`.
    async fn start(&mut self, name: OsString, meta: &std::fs::Metadata) {
        let text = name.to_string_lossy().into_owned();
        let key = identity(self.ingest(), &text, meta);
        let path = absolute(&self.spec.processing.join(&name));
        let args = json!({
            "ingest": self.ingest(),
            "file": path.to_string_lossy(),
            "name": text,
            "size": meta.len(),
        });
        let mut job = match (self.spec.job)(self.ingest(), args) {
            Ok(Start::Job(job)) => job,
            Ok(Start::Workflow(mut w)) => {
                // Keyed by the file: a second start (after a restart) finds the first.
                w.unique_key = Some(key);
                match self.core.store.workflow_start(w, self.core.now()).await {
                    Ok(id) => {
                        tracing::info!(ingest = %self.ingest(), file = %text, workflow = id, "file taken");
                        self.tracked.insert(Handler::Workflow(id), Tracked { name });
                    }
                    Err(e) => {
                        tracing::error!(ingest = %self.ingest(), file = %text, error = %e, "cannot start the workflow of a file; trying again");
                        self.unstarted.push(name);
                    }
                }
                return;
            }
            Err(e) => {
                tracing::error!(ingest = %self.ingest(), file = %text, error = %e, "cannot make the job of a file; trying again");
                self.unstarted.push(name);
                return;
            }
        };
        job.tags.push(key.clone());
        job.unique_key = Some(key);
        let inserted = self.core.store.insert(vec![job], self.core.now()).await;
        match inserted {
            Ok(ids) => {
                let id = ids[0].id;
                tracing::info!(ingest = %self.ingest(), file = %text, job = id, "file taken");
                self.tracked.insert(Handler::Job(id), Tracked { name });
            }
            Err(e) => {
                // The file stays in processing and is tried again at the next look.
                tracing::error!(ingest = %self.ingest(), file = %text, error = %e, "cannot start the job of a file; trying again");
                self.unstarted.push(name);
            }
        }
    }

    /// Starts the jobs that could not be started before.
    async fn retry(&mut self) {
        for name in std::mem::take(&mut self.unstarted) {
            match std::fs::metadata(self.spec.processing.join(&name)) {
                Ok(meta) => self.start(name, &meta).await,
                Err(e) => {
                    tracing::error!(ingest = %self.ingest(), file = ?name, error = %e, "a file waiting for its job left processing")
                }
            }
        }
    }

    /// Moves the files whose jobs or workflows have finished.
    async fn finish(&mut self) {
        // Each finished one: whether it succeeded, and its error log.
        let mut finished: Vec<(Handler, bool, String)> = Vec::new();
        for &handler in self.tracked.keys() {
            let name = &self.tracked[&handler].name;
            match handler {
                Handler::Job(id) => match self.core.store.job(id).await {
                    Ok(Some(job)) if job.state.is_final() => finished.push((
                        handler,
                        job.state == JobState::Completed,
                        error_log(name, id, Some(&job)),
                    )),
                    Ok(Some(_)) => {}
                    Ok(None) => finished.push((handler, false, error_log(name, id, None))),
                    Err(e) => {
                        tracing::warn!(ingest = %self.ingest(), job = id, error = %e, "cannot read a file's job");
                        return;
                    }
                },
                Handler::Workflow(id) => match self.core.store.workflow(id).await {
                    Ok(Some(w)) if w.state != FlowState::Running => {
                        // The failed steps' jobs, for their errors and output.
                        let mut failed = Vec::new();
                        for s in w.steps.iter().filter(|s| s.error.is_some()) {
                            if let Ok(Some(job)) = self.core.store.job(s.job_id).await {
                                failed.push((s.name.clone(), job));
                            }
                        }
                        finished.push((
                            handler,
                            w.state == FlowState::Completed,
                            workflow_log(name, id, Some((&w, &failed))),
                        ));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => finished.push((handler, false, workflow_log(name, id, None))),
                    Err(e) => {
                        tracing::warn!(ingest = %self.ingest(), workflow = id, error = %e, "cannot read a file's workflow");
                        return;
                    }
                },
            }
        }
        for (handler, ok, log) in finished {
            let Some(t) = self.tracked.remove(&handler) else {
                continue;
            };
            let log_tail = if ok {
                String::new()
            } else {
                berth_store::tail(&log, 12, 1500)
            };
            let from = self.spec.processing.join(&t.name);
            let spec = self.spec.clone();
            let ingest = self.core.name.clone();
            let name = t.name.clone();
            let moved =
                tokio::task::spawn_blocking(move || settle_file(&spec, &from, &name, ok, &log))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            match moved {
                Ok(to) => {
                    if ok {
                        tracing::info!(ingest = %ingest, %handler, file = %to.display(), "file done");
                    } else {
                        tracing::warn!(ingest = %ingest, %handler, file = %to.display(), "file failed: moved to the error directory with its log");
                        // `ingest.file_failed`, for the notification channels: the file,
                        // where it went, its log and the log's end.
                        let event = berth_store::NewEvent {
                            at: self.core.now(),
                            node: "-".into(),
                            source: "ingest".into(),
                            subject: ingest.clone(),
                            instance: None,
                            kind: "file_failed".into(),
                            message: format!(
                                "{} of ingest {ingest} failed ({handler}): moved to {}, its log {}.error.log\n{log_tail}",
                                t.name.to_string_lossy(),
                                to.display(),
                                to.display()
                            ),
                        };
                        if let Err(e) = self.core.store.record_events(vec![event]).await {
                            tracing::warn!(ingest = %ingest, error = %e, "cannot record a failed file's event");
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(ingest = %ingest, %handler, file = ?t.name, "a finished file is no longer in processing (moved by hand, or by another node)");
                }
                Err(e) => {
                    tracing::error!(ingest = %ingest, %handler, error = %e, "cannot move a finished file; trying again");
                    self.tracked.insert(handler, t);
                }
            }
        }
    }

    /// Takes the complete files of `watch` into `processing` and starts their jobs.
    async fn take(&mut self) {
        let watch = self.spec.watch.clone();
        // A slow or hung file system holds up a blocking thread, not the runtime.
        let listed = tokio::task::spawn_blocking(move || list(&watch))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let files = match listed {
            Ok(f) => {
                // Said again if the directory becomes unreadable again.
                self.reported.remove(&OsString::new());
                f
            }
            Err(e) => {
                if self
                    .reported
                    .insert(OsString::new(), "unreadable")
                    .is_none()
                {
                    tracing::error!(ingest = %self.ingest(), dir = %self.spec.watch.display(), error = %e, "cannot read the watched directory");
                }
                return;
            }
        };
        let now = SystemTime::now();
        let mut seen = HashMap::with_capacity(files.len());
        let mut ready = Vec::new();
        for (name, meta) in files {
            let Some(text) = name.to_str() else {
                if self.reported.insert(name.clone(), "not UTF-8").is_none() {
                    tracing::warn!(ingest = %self.ingest(), file = ?name, "a dropped file's name is not UTF-8: it is left where it is; rename it");
                }
                continue;
            };
            if !self.spec.patterns.iter().any(|p| glob(p, text)) {
                continue;
            }
            let stamp = (meta.len(), meta.modified().unwrap_or(now));
            let quiet = now
                .duration_since(stamp.1)
                .is_ok_and(|age| age >= self.spec.settle);
            // A file is complete when nothing changed since the last look (or it came
            // in whole, already older than `settle`) and it has been quiet for `settle`.
            let unchanged = self.seen.get(&name) == Some(&stamp);
            if quiet && (unchanged || !self.seen.contains_key(&name)) {
                ready.push(name.clone());
            }
            seen.insert(name, stamp);
        }
        self.seen = seen;
        for name in ready {
            let from = self.spec.watch.join(&name);
            let to = self.spec.processing.join(&name);
            match rename_noreplace(&from, &to) {
                Ok(()) => {
                    self.seen.remove(&name);
                    self.reported.remove(&name);
                    match std::fs::metadata(&to) {
                        Ok(meta) => self.start(name, &meta).await,
                        Err(e) => {
                            tracing::error!(ingest = %self.ingest(), file = %to.display(), error = %e, "a file moved to processing cannot be read")
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if self.reported.insert(name.clone(), "waiting").is_none() {
                        tracing::warn!(ingest = %self.ingest(), file = ?name, "a file of the same name is still in processing: this one waits until it is done");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    if self.reported.insert(name.clone(), "unmovable").is_none() {
                        tracing::error!(ingest = %self.ingest(), file = %from.display(), error = %e, "cannot move a dropped file to processing");
                    }
                }
            }
        }
    }
}

/// The regular files of `dir` whose names do not start with `.`, by name.
fn list(dir: &Path) -> std::io::Result<Vec<(OsString, std::fs::Metadata)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.as_encoded_bytes().first() == Some(&b'.') {
            continue;
        }
        // Symbolic links are not followed: a link is not a dropped file.
        match entry.metadata() {
            Ok(meta) if meta.is_file() => out.push((name, meta)),
            _ => {}
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Moves a file whose job finished to `done` (completed) or to `error` with its log.
/// Returns where it went and whether it was done.
fn settle_file(
    spec: &DirSpec,
    from: &Path,
    name: &OsString,
    ok: bool,
    error_log: &str,
) -> std::io::Result<PathBuf> {
    let dir = if ok { &spec.done } else { &spec.error };
    for n in 1..=MAX_NUMBER {
        let to = dir.join(numbered(name, n));
        let mut log = to.clone().into_os_string();
        log.push(".error.log");
        let log = PathBuf::from(log);
        if to.exists() || (!ok && log.exists()) {
            continue;
        }
        match rename_noreplace(from, &to) {
            Ok(()) => {
                // The log after the move: a crash in between leaves the file in `error`
                // without its log, never a log without its file.
                if !ok {
                    std::fs::write(&log, error_log)?;
                }
                return Ok(to);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "{} already holds {MAX_NUMBER} files named like {}; clear it out",
        dir.display(),
        name.to_string_lossy()
    )))
}

/// `data.csv`, then `data.2.csv`, `data.3.csv`, …
fn numbered(name: &OsString, n: u32) -> OsString {
    if n == 1 {
        return name.clone();
    }
    let text = name.to_string_lossy();
    match text.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{n}.{ext}").into(),
        _ => format!("{text}.{n}").into(),
    }
}

/// What the error directory says of a failed file.
fn error_log(name: &OsString, id: i64, job: Option<&Job>) -> String {
    let mut out = format!("file: {}\n", name.to_string_lossy());
    let Some(job) = job else {
        let _ = writeln!(
            out,
            "job: {id}, which no longer exists (deleted or pruned before the file was moved)"
        );
        return out;
    };
    let _ = writeln!(
        out,
        "job: {} (queue {}, kind {}), {} after {} of {} attempts",
        job.id,
        job.queue,
        job.kind,
        job.state.as_str(),
        job.attempt,
        job.max_attempts
    );
    attempts(&mut out, job);
    out
}

/// The error log of a file whose workflow failed: the workflow, and each failed step's
/// attempts with their errors and output.
fn workflow_log(name: &OsString, id: i64, w: Option<(&Workflow, &[(String, Job)])>) -> String {
    let mut out = format!("file: {}\n", name.to_string_lossy());
    let Some((w, failed)) = w else {
        let _ = writeln!(
            out,
            "workflow: {id}, which no longer exists (pruned before the file was moved)"
        );
        return out;
    };
    let _ = writeln!(out, "workflow: {} ({}), {}", w.id, w.name, w.state.as_str());
    if let Some(e) = &w.error {
        let _ = writeln!(out, "error: {e}");
    }
    for (step, job) in failed {
        let _ = writeln!(
            out,
            "\nstep {step}: job {} (queue {}), {} after {} of {} attempts",
            job.id,
            job.queue,
            job.state.as_str(),
            job.attempt,
            job.max_attempts
        );
        attempts(&mut out, job);
    }
    out
}

/// Each failed attempt of `job`: its error, and its output indented.
fn attempts(out: &mut String, job: &Job) {
    for e in &job.errors {
        let _ = writeln!(out, "\nattempt {} at {}: {}", e.attempt, e.at, e.error);
        if let Some(output) = &e.output {
            for line in output.lines() {
                let _ = writeln!(out, "  | {line}");
            }
        }
    }
}

/// Renames `from` to `to` unless `to` exists (`AlreadyExists` then), in one step where
/// the system can.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => Ok(()),
            // File systems without RENAME_NOREPLACE: check, then rename.
            Err(nix::errno::Errno::EINVAL) => fallback_rename(from, to),
            Err(e) => Err(std::io::Error::from(e)),
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        fallback_rename(from, to)
    }
}

fn fallback_rename(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        return Err(std::io::ErrorKind::AlreadyExists.into());
    }
    std::fs::rename(from, to)
}

/// Whether `name` matches `pattern`: `*` any run of characters, `?` one character.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names() {
        for (p, n, want) in [
            ("*", "a.csv", true),
            ("*.csv", "a.csv", true),
            ("*.csv", "a.csv.part", false),
            ("a?.csv", "ab.csv", true),
            ("a?.csv", "a.csv", false),
            ("*_export_*.json", "lms_export_2026.json", true),
            ("*_export_*.json", "lms_export.json", false),
            ("data", "data", true),
        ] {
            assert_eq!(glob(p, n), want, "{p} {n}");
        }
    }

    #[test]
    fn taken_names_get_a_number_before_the_extension() {
        assert_eq!(numbered(&"data.csv".into(), 1), OsString::from("data.csv"));
        assert_eq!(
            numbered(&"data.csv".into(), 2),
            OsString::from("data.2.csv")
        );
        assert_eq!(numbered(&"README".into(), 3), OsString::from("README.3"));
        assert_eq!(numbered(&".x".into(), 2), OsString::from(".x.2"));
    }

    #[test]
    fn renames_never_replace() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        let err = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "b");
        std::fs::remove_file(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "a");
    }
}
