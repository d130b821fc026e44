//! The `[backup]` table: where archives go, when they are made, what they hold besides the
//! store, and how many of each age are kept.

use std::path::{Path, PathBuf};

use berth_cron::Cron;

use crate::diagnostic::Diagnostics;
use crate::section::{Invalid, Section};

const BACKUP_KEYS: &[&str] = &["dir", "schedule", "timezone", "include", "keep"];
const KEEP_KEYS: &[&str] = &["daily", "weekly", "monthly", "yearly"];

/// The `[backup]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupConfig {
    /// `dir` (default `backups` beside the config file): where archives are written.
    pub dir: PathBuf,
    /// `schedule`: a cron expression; without it backups are made only by
    /// `berth backup save`.
    pub schedule: Option<Cron>,
    /// `timezone` (default `"UTC"`): the zone of the schedule, and where a day, week,
    /// month and year begin for the retention tiers.
    pub timezone: String,
    /// `include`: directories archived with the store (uploads, attachments), resolved
    /// against the config file's directory.
    pub include: Vec<PathBuf>,
    /// `keep`: how many of each tier are kept.
    pub keep: Keep,
}

impl BackupConfig {
    /// What a config without `[backup]` gets: archives in `backups` beside the config
    /// file, made only by `berth backup save`, kept by the default tiers.
    pub fn defaults(config_dir: &Path) -> Self {
        Self {
            dir: config_dir.join("backups"),
            schedule: None,
            timezone: "UTC".into(),
            include: Vec::new(),
            keep: Keep::default(),
        }
    }
}

/// `keep = { daily, weekly, monthly, yearly }`: the first backup of each of the last
/// `daily` days that have one is kept, and likewise for weeks (from Monday), months and
/// years. The newest backup is always kept. Without `keep`: 7, 4, 12 and 3; a tier left
/// out of a given `keep` keeps none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Days (default 7).
    pub daily: u32,
    /// Weeks (default 4).
    pub weekly: u32,
    /// Months (default 12).
    pub monthly: u32,
    /// Years (default 3).
    pub yearly: u32,
}

impl Default for Keep {
    fn default() -> Self {
        Self {
            daily: 7,
            weekly: 4,
            monthly: 12,
            yearly: 3,
        }
    }
}

pub(crate) fn backup(
    section: &Section<'_, '_>,
    config_dir: &Path,
    data_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> BackupConfig {
    section.check_keys(BACKUP_KEYS, d);
    let dir = section
        .path("dir", "\"backups\" or \"/var/backups/app\"", config_dir, d)
        .unwrap_or_else(|| BackupConfig::defaults(config_dir).dir);
    let schedule = section.string("schedule", "cron expression", d, |text| {
        Cron::parse(text).map_err(|e| {
            Invalid::Message(format!(
                "{e}; expected 5 fields (minute hour day-of-month month day-of-week) such as \"0 3 * * *\" (03:00 every day), or @daily"
            ))
        })
    });
    let timezone = section.time_zone(d);
    let include = section
        .string_list(
            "include",
            "directory",
            "a directory such as \"media\"",
            d,
            |p| {
                if p.is_empty() {
                    Err(Invalid::Expected(
                        "expected a directory such as \"media\"".into(),
                    ))
                } else {
                    Ok(config_dir.join(p))
                }
            },
        )
        .unwrap_or_default();
    check_include(section, &dir, data_dir, &include, d);
    let keep = match section.table("keep", "a table such as { daily = 7, weekly = 4 }", d) {
        Some(t) => keep(&t, d),
        None => Keep::default(),
    };
    BackupConfig {
        dir,
        schedule,
        timezone,
        include,
        keep,
    }
}

/// An included directory may not hold the backups (each archive would hold the ones
/// before it), nor lie inside them, nor hold or lie in the data dir (the store is copied
/// on its own, consistently; a restore would replace it twice), nor be given twice.
fn check_include(
    section: &Section<'_, '_>,
    dir: &Path,
    data_dir: &Path,
    include: &[PathBuf],
    d: &mut Diagnostics<'_>,
) {
    // Compared without `.` parts; a relative path and an absolute one are not compared
    // (the config's own directory is not known here when it was named relatively).
    let norm = |p: &Path| -> PathBuf {
        p.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    };
    let overlap = |a: &Path, b: &Path| {
        let (a, b) = (norm(a), norm(b));
        a.is_absolute() == b.is_absolute() && (a.starts_with(&b) || b.starts_with(&a))
    };
    let span = section
        .get("include")
        .map(|v| v.span())
        .unwrap_or_else(|| section.span());
    for (i, inc) in include.iter().enumerate() {
        if overlap(dir, inc) {
            d.error(
                span.clone(),
                format!(
                    "`include` names {}, which holds or lies in the backup `dir` {}: every archive \
                     would hold the ones before it; expected the backups outside the included directories",
                    inc.display(),
                    dir.display()
                ),
            );
        }
        if overlap(data_dir, inc) {
            d.error(
                span.clone(),
                format!(
                    "`include` names {}, which holds or lies in the data dir {}: the store is \
                     backed up on its own; expected directories of the application's files, \
                     such as \"media\"",
                    inc.display(),
                    data_dir.display()
                ),
            );
        }
        if include[..i].iter().any(|other| norm(other) == norm(inc)) {
            d.error(
                span.clone(),
                format!(
                    "`include` names {} twice: expected each directory once",
                    inc.display()
                ),
            );
        }
    }
}

fn keep(t: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Keep {
    t.check_keys(KEEP_KEYS, d);
    // A tier left out of a given `keep` keeps none.
    let tier =
        |key: &str, d: &mut Diagnostics<'_>| t.integer(key, 0..=10_000, d).map_or(0, |n| n as u32);
    Keep {
        daily: tier("daily", d),
        weekly: tier("weekly", d),
        monthly: tier("monthly", d),
        yearly: tier("yearly", d),
    }
}
