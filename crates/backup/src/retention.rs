//! Retention: the first archive of each of the last `daily` days that have one is kept,
//! and likewise for ISO weeks (from Monday), months and years, in the backup's time
//! zone; the newest archive is always kept; the rest are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::{ArchiveInfo, BackupError};

/// How many of each tier are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keep {
    /// Days.
    pub daily: u32,
    /// ISO weeks.
    pub weekly: u32,
    /// Months.
    pub monthly: u32,
    /// Years.
    pub yearly: u32,
}

/// A period an archive falls in, per tier: comparable, later periods greater.
type Period = (i16, i16, i16);

/// The period of a tier that a date falls in.
type PeriodOf = fn(jiff::civil::Date) -> Period;

/// The ids the tiers keep among `archives`.
pub fn plan(archives: &[ArchiveInfo], keep: Keep, tz: &TimeZone) -> BTreeSet<String> {
    let mut sorted: Vec<&ArchiveInfo> = archives.iter().collect();
    sorted.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    let mut kept = BTreeSet::new();
    if let Some(newest) = sorted.last() {
        kept.insert(newest.id.clone());
    }
    let tiers: [(u32, PeriodOf); 4] = [
        (keep.daily, |d| (d.year(), d.month() as i16, d.day() as i16)),
        (keep.weekly, |d| {
            let w = d.iso_week_date();
            (w.year(), w.week() as i16, 0)
        }),
        (keep.monthly, |d| (d.year(), d.month() as i16, 0)),
        (keep.yearly, |d| (d.year(), 0, 0)),
    ];
    for (count, period_of) in tiers {
        // The first archive of each period (archives are oldest first).
        let mut first: BTreeMap<Period, &str> = BTreeMap::new();
        for a in &sorted {
            let date = jiff::Timestamp::from_microsecond(a.created.0)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                .to_zoned(tz.clone())
                .date();
            first.entry(period_of(date)).or_insert(&a.id);
        }
        kept.extend(
            first
                .values()
                .rev()
                .take(count as usize)
                .map(|id| (*id).to_owned()),
        );
    }
    kept
}

/// Partial files older than this are what a crash left; prune removes them.
const STALE_PARTIAL: Duration = Duration::from_secs(24 * 3600);

/// Removes the archives in `dir` that the tiers do not keep and that are not `pinned`
/// (none with `dry_run`), and partial files a crash left behind. Returns the archives
/// kept and those removed. `pinned`: archives something else still needs, such as the
/// backups a deploy's rollback would restore.
pub fn prune(
    dir: &Path,
    keep: Keep,
    tz: &TimeZone,
    pinned: &BTreeSet<String>,
    dry_run: bool,
) -> Result<(Vec<ArchiveInfo>, Vec<ArchiveInfo>), BackupError> {
    let archives = crate::list(dir)?;
    let mut kept_ids = plan(&archives, keep, tz);
    kept_ids.extend(pinned.iter().cloned());
    let (kept, removed): (Vec<ArchiveInfo>, Vec<ArchiveInfo>) =
        archives.into_iter().partition(|a| kept_ids.contains(&a.id));
    if dry_run {
        return Ok((kept, removed));
    }
    for a in &removed {
        std::fs::remove_file(&a.path)
            .map_err(|e| BackupError::io(format!("cannot remove {}", a.path.display()), e))?;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let is_partial = name
                .to_str()
                .is_some_and(|n| n.starts_with(".berth-") && n.ends_with(".partial"));
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_PARTIAL);
            if is_partial && old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok((kept, removed))
}
