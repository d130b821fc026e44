//! The `[backup]` table: where archives go, when they are made, what they hold besides the
//! store, and how many of each age are kept.

use std::path::{Path, PathBuf};

use berth_cron::Cron;

use crate::diagnostic::Diagnostics;
use crate::section::{Invalid, Section};

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
    /// `[backup.database.NAME]`: the application's own databases, archived beside
    /// berth's store, in name order.
    pub databases: Vec<DatabaseConfig>,
}

/// One `[backup.database.NAME]`: an application database archived with each backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `NAME`.
    pub name: String,
    /// Which database, and how it is reached.
    pub kind: DatabaseKind,
    /// `password_env`: the environment variable that holds the password (PostgreSQL and
    /// MySQL); it never sits in the file.
    pub password_env: Option<String>,
}

/// The kinds of application databases a backup takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `postgres = "postgres://USER@HOST:PORT/DATABASE"`: `pg_dump`, `pg_restore`.
    Postgres {
        /// The URL, without a password.
        url: String,
    },
    /// `mysql = "mysql://USER@HOST:PORT/DATABASE"` (MySQL or MariaDB): `mysqldump`,
    /// `mysql`.
    Mysql {
        /// The host (or `localhost`, which the clients take as the local socket).
        host: String,
        /// The port (default 3306).
        port: u16,
        /// The user.
        user: String,
        /// The database.
        database: String,
    },
    /// `sqlite = "data/app.sqlite3"`: the file, copied with SQLite's online backup.
    Sqlite {
        /// The database file, resolved against the config file's directory.
        path: PathBuf,
    },
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
            databases: Vec::new(),
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
    let databases = section
        .table("database", "tables such as [backup.database.app]", d)
        .map(|t| {
            t.named_tables("backup.database", "app", d)
                .into_iter()
                .filter_map(|(name, db)| database(name, &db, config_dir, data_dir, d))
                .collect()
        })
        .unwrap_or_default();
    section.finish(d);
    BackupConfig {
        dir,
        schedule,
        timezone,
        include,
        keep,
        databases,
    }
}

/// One `[backup.database.NAME]`: exactly one of `postgres`, `mysql` and `sqlite`.
fn database(
    name: &str,
    t: &Section<'_, '_>,
    config_dir: &Path,
    data_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> Option<DatabaseConfig> {
    let given: Vec<&str> = ["postgres", "mysql", "sqlite"]
        .into_iter()
        .filter(|k| t.get(k).is_some())
        .collect();
    let password_env = t.string("password_env", "variable name", d, |v| {
        if crate::validate::valid_env_name(v) {
            Ok(v.to_owned())
        } else {
            Err(Invalid::Expected(
                "expected the name of an environment variable that holds the password, \
                 such as \"APP_DB_PASSWORD\" (the password never sits in this file)"
                    .into(),
            ))
        }
    });
    t.finish(d);
    if given.len() != 1 {
        d.error(
            t.span(),
            format!(
                "[backup.database.{name}] names {}: expected exactly one of \
                 `postgres = \"postgres://app@127.0.0.1:5432/app\"`, \
                 `mysql = \"mysql://app@127.0.0.1:3306/app\"` or `sqlite = \"data/app.sqlite3\"`",
                if given.is_empty() {
                    "no database".to_owned()
                } else {
                    format!("{} at once", given.join(" and "))
                }
            ),
        );
        return None;
    }
    let no_password = |url: &str| -> Result<(), Invalid> {
        let auth = url.split_once("://").map_or("", |(_, r)| r);
        let auth = auth.split(['/', '?']).next().unwrap_or("");
        if auth.rsplit_once('@').is_some_and(|(u, _)| u.contains(':')) {
            return Err(Invalid::Message(format!(
                "the URL of [backup.database.{name}] holds a password: take it out, put it \
                 in an environment variable and name that with password_env = \"APP_DB_PASSWORD\""
            )));
        }
        Ok(())
    };
    let kind = match given[0] {
        "postgres" => t.string("postgres", "PostgreSQL URL", d, |v| {
            no_password(v)?;
            let rest = v
                .strip_prefix("postgres://")
                .or_else(|| v.strip_prefix("postgresql://"))
                .ok_or_else(|| {
                    Invalid::Expected(
                        "expected a URL such as \"postgres://app@127.0.0.1:5432/app\"".into(),
                    )
                })?;
            let database = rest.split_once('/').map_or("", |(_, db)| db);
            if database.split('?').next().unwrap_or("").is_empty() {
                return Err(Invalid::Expected(
                    "the URL names no database; expected \"postgres://app@127.0.0.1:5432/app\""
                        .into(),
                ));
            }
            Ok(DatabaseKind::Postgres { url: v.to_owned() })
        }),
        "mysql" => t.string("mysql", "MySQL URL", d, |v| {
            no_password(v)?;
            mysql_url(v).map_err(Invalid::Expected)
        }),
        _ => t
            .path("sqlite", "\"data/app.sqlite3\"", config_dir, d)
            .and_then(|path| {
                if path.starts_with(data_dir) {
                    d.error(
                        t.key_span("sqlite").unwrap_or_else(|| t.span()),
                        format!(
                            "`sqlite` of [backup.database.{name}] lies in the data dir {}: berth's \
                         store is backed up on its own; expected the application's database file",
                            data_dir.display()
                        ),
                    );
                    return None;
                }
                Some(DatabaseKind::Sqlite { path })
            }),
    }?;
    if matches!(kind, DatabaseKind::Sqlite { .. }) && password_env.is_some() {
        d.error(
            t.key_span("password_env").unwrap_or_else(|| t.span()),
            format!(
                "[backup.database.{name}] is a SQLite file, which has no password: remove \
                 `password_env`"
            ),
        );
    }
    Some(DatabaseConfig {
        name: name.to_owned(),
        kind,
        password_env,
    })
}

/// `mysql://USER@HOST[:PORT]/DATABASE`.
fn mysql_url(v: &str) -> Result<DatabaseKind, String> {
    let expected = "expected a URL such as \"mysql://app@127.0.0.1:3306/app\"";
    let rest = v
        .strip_prefix("mysql://")
        .or_else(|| v.strip_prefix("mariadb://"))
        .ok_or_else(|| expected.to_owned())?;
    let (authority, database) = rest
        .split_once('/')
        .ok_or_else(|| format!("the URL names no database; {expected}"))?;
    let (user, hostport) = authority
        .rsplit_once('@')
        .ok_or_else(|| format!("the URL names no user; {expected}"))?;
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("the port {p:?} is not a number; {expected}"))?,
        ),
        None => (hostport, 3306),
    };
    if user.is_empty() || host.is_empty() || database.is_empty() || database.contains(['/', '?']) {
        return Err(expected.to_owned());
    }
    Ok(DatabaseKind::Mysql {
        host: host.to_owned(),
        port,
        user: user.to_owned(),
        database: database.to_owned(),
    })
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
    // A tier left out of a given `keep` keeps none.
    let tier =
        |key: &str, d: &mut Diagnostics<'_>| t.integer(key, 0..=10_000, d).map_or(0, |n| n as u32);
    let keep = Keep {
        daily: tier("daily", d),
        weekly: tier("weekly", d),
        monthly: tier("monthly", d),
        yearly: tier("yearly", d),
    };
    t.finish(d);
    keep
}
