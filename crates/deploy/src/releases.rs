//! The releases directory: `DIR/<id>/` per release, `DIR/current` pointing at the live
//! one, and `DIR/.berth/<id>/` with each release's record (`release.json`) and its
//! steps' output.

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_store::Timestamp;
use serde::{Deserialize, Serialize};

use crate::DeployError;

/// The link to the live release.
pub const CURRENT: &str = "current";
/// Where the records and logs live, beside the releases.
const META: &str = ".berth";

/// Where a release's code came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SourceInfo {
    /// `git`, `dir` or `archive`.
    pub kind: String,
    /// The git ref asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The commit it resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The directory or archive given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl SourceInfo {
    /// In a few words: `main @ 3f2c1a9d`, `dir /srv/build`.
    pub fn describe(&self) -> String {
        match (&self.git_ref, &self.commit, &self.path) {
            (Some(r), Some(c), _) => format!("{r} @ {}", &c[..c.len().min(10)]),
            (Some(r), None, _) => r.clone(),
            (_, _, Some(p)) => format!("{} {p}", self.kind),
            _ => self.kind.clone(),
        }
    }
}

/// Where a release is in its life, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseState {
    /// Its code is fetched and built; nothing that runs is touched.
    Building,
    /// Built; the backup, migration, switch and health gate run.
    Deploying,
    /// It passed its health gate (it is live, or was).
    Deployed,
    /// Its build failed, or its deploy stopped before anything changed.
    Failed,
    /// It was live (or half-switched) and the previous release took its place again.
    RolledBack,
}

impl ReleaseState {
    /// Whether a deploy is still working on it.
    pub fn unfinished(self) -> bool {
        matches!(self, ReleaseState::Building | ReleaseState::Deploying)
    }
}

/// One step of a deploy, as shown while it runs and kept after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepRecord {
    /// `fetch`, `build 1/2`, `backup`, `maintenance`, `migrate`, `switch`, `health`, ….
    pub name: String,
    /// `running`, `ok`, `failed` or `skipped`.
    pub state: String,
    /// What ran, or what it found (a commit, a backup id, a reason).
    pub detail: String,
    /// When it began.
    pub started_at: Timestamp,
    /// How long it took, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// The file in the release's record dir that holds its whole output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The end of its output, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
}

/// A release's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Release {
    /// `20261205T221530Z` (`-2`, … when several are made in one second).
    pub id: String,
    /// Where its code came from.
    pub source: SourceInfo,
    /// Who asked for it (the CLI's user, or `berth` for a rollback at start).
    pub by: String,
    /// The node it was deployed on.
    pub node: String,
    /// When the deploy began.
    pub created_at: Timestamp,
    /// When it ended (built and failed, deployed, rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Where it is in its life.
    pub state: ReleaseState,
    /// The release that was live when this deploy began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The backup taken for it (an archive id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Whether its migration began (so the databases may have changed).
    #[serde(default)]
    pub migrated: bool,
    /// Whether `current` was pointed at it (the switch began).
    #[serde(default)]
    pub switched: bool,
    /// Whether the deploy turned maintenance mode on (and so must turn it off).
    #[serde(default)]
    pub maintenance_on: bool,
    /// The maintenance setting the deploy wrote: it is cleared only while it still holds
    /// this (an operator's own `berth maintenance on` meanwhile is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_value: Option<serde_json::Value>,
    /// Why it failed or was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the rollback did (the databases restored, or left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    /// Its steps so far.
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

impl Release {
    /// The state as `berth releases` shows it: `live` for the one `current` points at,
    /// `previous` for the one live before it, else the recorded state.
    pub fn shown_state(&self, current: Option<&str>, previous: Option<&str>) -> &'static str {
        let current = current == Some(self.id.as_str());
        match self.state {
            ReleaseState::Deployed if current => "live",
            ReleaseState::Failed | ReleaseState::RolledBack if current => {
                "current, failed (nothing to go back to)"
            }
            ReleaseState::Building => "building",
            ReleaseState::Deploying => "deploying",
            ReleaseState::Failed => "failed",
            ReleaseState::RolledBack => "rolled back",
            ReleaseState::Deployed if previous == Some(self.id.as_str()) => "previous",
            ReleaseState::Deployed => "retired",
        }
    }
}

/// A releases directory.
#[derive(Debug, Clone)]
pub struct Releases {
    dir: PathBuf,
}

impl Releases {
    /// The releases in `dir` (created on the first deploy).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A release's code directory.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Where a release's record and logs live.
    pub fn meta(&self, id: &str) -> PathBuf {
        self.dir.join(META).join(id)
    }

    /// The id `current` points at, if it exists.
    pub fn current(&self) -> Option<String> {
        let target = std::fs::read_link(self.dir.join(CURRENT)).ok()?;
        let id = target.file_name()?.to_str()?.to_owned();
        self.path(&id).is_dir().then_some(id)
    }

    /// The live release's directory (the one `current` points at, resolved: a process
    /// started there keeps it when `current` moves on).
    pub fn current_path(&self) -> Option<PathBuf> {
        self.current().map(|id| self.path(&id))
    }

    /// Points `current` at `id` in one step (a new link renamed over the old one).
    pub fn point(&self, id: &str) -> Result<(), DeployError> {
        let tmp = self.dir.join(format!(".{CURRENT}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(id, &tmp)
            .map_err(|e| DeployError::io(format!("cannot make the link {}", tmp.display()), e))?;
        let link = self.dir.join(CURRENT);
        std::fs::rename(&tmp, &link)
            .map_err(|e| DeployError::io(format!("cannot point {} at {id}", link.display()), e))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Makes a new release's directories, with an id from `now` (numbered when one of
    /// that second exists).
    pub fn create(&self, now: Timestamp) -> Result<String, DeployError> {
        std::fs::create_dir_all(self.dir.join(META))
            .map_err(|e| DeployError::io(format!("cannot create {}", self.dir.display()), e))?;
        let secs = now.0.div_euclid(1_000_000);
        let base = format_id(secs);
        for n in 1..1000 {
            let id = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            match std::fs::create_dir(self.path(&id)) {
                Ok(()) => {
                    std::fs::create_dir_all(self.meta(&id)).map_err(|e| {
                        DeployError::io(format!("cannot create {}", self.meta(&id).display()), e)
                    })?;
                    return Ok(id);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(DeployError::io(
                        format!("cannot create {}", self.path(&id).display()),
                        e,
                    ));
                }
            }
        }
        Err(DeployError::Refused(
            "a thousand releases were made in one second".into(),
        ))
    }

    /// Writes a release's record (a new file renamed over the old one).
    pub fn save(&self, release: &Release) -> Result<(), DeployError> {
        let dir = self.meta(&release.id);
        let path = dir.join("release.json");
        let tmp = dir.join("release.json.tmp");
        let json = serde_json::to_vec_pretty(release).expect("a release serializes");
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(&json)?;
            f.sync_all()
        });
        written
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| DeployError::io(format!("cannot write {}", path.display()), e))
    }

    /// A release's record.
    pub fn load(&self, id: &str) -> Result<Release, DeployError> {
        if !valid_id(id) {
            return Err(DeployError::Refused(format!(
                "{id:?} is not a release id; `berth releases` lists them"
            )));
        }
        let path = self.meta(id).join("release.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                DeployError::Refused(format!(
                    "there is no release {id} in {}; `berth releases` lists them",
                    self.dir.display()
                ))
            } else {
                DeployError::io(format!("cannot read {}", path.display()), e)
            }
        })?;
        serde_json::from_str(&text).map_err(|e| {
            DeployError::Refused(format!("the record {} is not valid: {e}", path.display()))
        })
    }

    /// Every release with a record, oldest first.
    pub fn list(&self) -> Result<Vec<Release>, DeployError> {
        let meta = self.dir.join(META);
        let entries = match std::fs::read_dir(&meta) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(DeployError::io(
                    format!("cannot list {}", meta.display()),
                    e,
                ));
            }
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|id| valid_id(id))
            .collect();
        ids.sort_by_key(|a| id_order(a));
        Ok(ids.iter().filter_map(|id| self.load(id).ok()).collect())
    }

    /// Removes releases beyond the newest `keep`: never the live one, the one before it,
    /// an unfinished one, or one `in_use` says is still used. Returns the ids removed.
    pub fn prune(&self, keep: u32, in_use: &dyn Fn(&Path) -> bool) -> Vec<String> {
        let Ok(all) = self.list() else {
            return Vec::new();
        };
        let current = self.current();
        let previous = current
            .as_deref()
            .and_then(|c| self.load(c).ok())
            .and_then(|r| r.previous);
        let mut removed = Vec::new();
        let excess = all.len().saturating_sub(keep as usize);
        for r in all.iter().take(excess) {
            let id = r.id.as_str();
            if Some(id) == current.as_deref()
                || Some(id) == previous.as_deref()
                || r.state.unfinished()
                || in_use(&self.path(id))
            {
                continue;
            }
            let code = std::fs::remove_dir_all(self.path(id));
            if code.is_err() && self.path(id).exists() {
                tracing::warn!(release = id, "cannot remove the release's directory");
                continue;
            }
            let _ = std::fs::remove_dir_all(self.meta(id));
            removed.push(id.to_owned());
        }
        removed
    }
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in seconds.
fn format_id(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A release id: the time form, optionally numbered. Anything else (`..`, a path) is
/// never taken for one.
pub(crate) fn valid_id(id: &str) -> bool {
    let (base, n) = id.split_once('-').unwrap_or((id, "1"));
    base.len() == 16
        && base.as_bytes()[8] == b'T'
        && base.ends_with('Z')
        && base[..8].bytes().all(|b| b.is_ascii_digit())
        && base[9..15].bytes().all(|b| b.is_ascii_digit())
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
}

fn id_order(id: &str) -> (String, u32) {
    let (base, n) = id.split_once('-').unwrap_or((id, "1"));
    (base.to_owned(), n.parse().unwrap_or(1))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_times_and_sort_in_order() {
        assert_eq!(format_id(1_796_509_530), "20261205T222530Z");
        assert_eq!(format_id(0), "19700101T000000Z");
        assert!(valid_id("20261205T221530Z"));
        assert!(valid_id("20261205T221530Z-12"));
        assert!(!valid_id("../etc"));
        assert!(!valid_id("20261205T221530Z-"));
        assert!(!valid_id("current"));
        let mut ids = vec![
            "20261205T221530Z-10",
            "20261205T221530Z-2",
            "20261205T221530Z",
        ];
        ids.sort_by_key(|a| id_order(a));
        assert_eq!(
            ids,
            [
                "20261205T221530Z",
                "20261205T221530Z-2",
                "20261205T221530Z-10"
            ]
        );
    }

    #[test]
    fn current_moves_in_one_step_and_prune_keeps_what_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let r = Releases::new(dir.path().join("releases"));
        assert_eq!(r.current(), None);
        let mut ids = Vec::new();
        for i in 0..5 {
            let id = r
                .create(Timestamp(1_796_509_530_000_000 + i * 1_000_000))
                .unwrap();
            r.save(&Release {
                id: id.clone(),
                source: SourceInfo {
                    kind: "dir".into(),
                    git_ref: None,
                    commit: None,
                    path: Some("/src".into()),
                },
                by: "test".into(),
                node: "n".into(),
                created_at: Timestamp(0),
                finished_at: None,
                state: ReleaseState::Deployed,
                previous: ids.last().cloned(),
                backup: None,
                migrated: false,
                switched: true,
                maintenance_on: false,
                maintenance_value: None,
                error: None,
                rollback: None,
                steps: Vec::new(),
            })
            .unwrap();
            r.point(&id).unwrap();
            ids.push(id);
        }
        assert_eq!(r.current().as_deref(), Some(ids[4].as_str()));
        // Keep 2: the live one and its previous stay; the oldest is in use and stays.
        let used = r.path(&ids[0]);
        let removed = r.prune(2, &|p| p == used);
        assert_eq!(removed, [ids[1].clone(), ids[2].clone()]);
        let left: Vec<String> = r.list().unwrap().into_iter().map(|x| x.id).collect();
        assert_eq!(left, [ids[0].clone(), ids[3].clone(), ids[4].clone()]);
    }
}
