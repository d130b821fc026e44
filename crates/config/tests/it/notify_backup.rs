//! `[backup]` and `[notify.NAME]`: what is accepted with its defaults, and each mistake
//! refused with what would be right.

use std::path::PathBuf;
use std::time::Duration;

use berth_config::{
    DatabaseKind, EmailConfig, Keep, NotifyTarget, SmtpSecurity, SmtpServer, WebhookTarget,
};

use crate::{diagnostics, exactly, parse_at, valid, with_app};

#[test]
fn backup_reads_with_its_defaults() {
    let config = valid(&with_app("[backup]\n"));
    let b = config.backup.unwrap();
    assert_eq!(b.dir, PathBuf::from("backups"));
    assert_eq!(b.schedule, None);
    assert_eq!(b.timezone, "UTC");
    assert!(b.include.is_empty());
    assert_eq!(
        b.keep,
        Keep {
            daily: 7,
            weekly: 4,
            monthly: 12,
            yearly: 3
        }
    );
    assert_eq!(valid(&with_app("")).backup, None);
}

#[test]
fn a_full_backup_reads() {
    let config = valid(&with_app(
        r#"
[backup]
dir = "/var/backups/app"
schedule = "0 3 * * *"
timezone = "Europe/Berlin"
include = ["media", "uploads/"]
keep = { daily = 14, monthly = 6 }
"#,
    ));
    let b = config.backup.unwrap();
    assert_eq!(b.dir, PathBuf::from("/var/backups/app"));
    assert_eq!(b.schedule.unwrap().as_str(), "0 3 * * *");
    assert_eq!(b.timezone, "Europe/Berlin");
    assert_eq!(
        b.include,
        [PathBuf::from("media"), PathBuf::from("uploads/")]
    );
    // A tier left out of a given `keep` keeps none.
    assert_eq!(
        b.keep,
        Keep {
            daily: 14,
            weekly: 0,
            monthly: 6,
            yearly: 0
        }
    );
}

#[test]
fn backup_mistakes_are_refused() {
    let found = diagnostics(&with_app(
        r#"
[backup]
dir = "data/backups"
schedule = "0 25 * * *"
timezone = "Mars/Olympus"
include = ["data", "media", "media", ""]
keep = { daily = -1, hourly = 3 }
every = "day"
"#,
    ));
    exactly(
        &found,
        &[
            "invalid cron expression `0 25 * * *`",
            "Mars/Olympus",
            "`include` names data, which holds or lies in the backup `dir` data/backups",
            "`include` names media twice",
            "invalid directory \"\" for `include` in [backup]",
            "invalid value -1 for `daily` in [backup.keep]: expected an integer from 0 to 10000",
            "unknown key `hourly` in [backup.keep]",
            "unknown key `every` in [backup]",
        ],
    );
}

#[test]
fn application_databases_read() {
    let config = valid(&with_app(
        r#"
[backup.database.app]
postgres = "postgres://app@127.0.0.1:5432/app"
password_env = "APP_DB_PASSWORD"

[backup.database.lms]
mysql = "mysql://lms@db.local/moodle"

[backup.database.cache]
sqlite = "var/cache.sqlite3"
"#,
    ));
    let dbs = config.backup.unwrap().databases;
    let names: Vec<&str> = dbs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["app", "cache", "lms"]);
    assert_eq!(
        dbs[0].kind,
        DatabaseKind::Postgres {
            url: "postgres://app@127.0.0.1:5432/app".into()
        }
    );
    assert_eq!(dbs[0].password_env.as_deref(), Some("APP_DB_PASSWORD"));
    assert_eq!(
        dbs[1].kind,
        DatabaseKind::Sqlite {
            path: PathBuf::from("var/cache.sqlite3")
        }
    );
    assert_eq!(
        dbs[2].kind,
        DatabaseKind::Mysql {
            host: "db.local".into(),
            port: 3306,
            user: "lms".into(),
            database: "moodle".into(),
        }
    );
}

#[test]
fn application_database_mistakes_are_refused() {
    let found = diagnostics(&with_app(
        r#"
[backup.database.none]
password_env = "X"

[backup.database.two]
postgres = "postgres://a@h/db"
sqlite = "a.db"

[backup.database.secret]
postgres = "postgres://app:hunter2@127.0.0.1/app"

[backup.database.nodb]
postgres = "postgres://app@127.0.0.1:5432"

[backup.database.my]
mysql = "mysql://127.0.0.1/app"

[backup.database.mine]
sqlite = ".berth/berth.db"

[backup.database.lite]
sqlite = "app.db"
password_env = "X"

[backup.database.odd]
postgres = "postgres://a@h/db"
user = "a"
"#,
    ));
    exactly(
        &found,
        &[
            "[backup.database.none] names no database: expected exactly one of",
            "[backup.database.two] names postgres and sqlite at once",
            "the URL of [backup.database.secret] holds a password",
            "the URL names no database",
            "the URL names no user",
            "`sqlite` of [backup.database.mine] lies in the data dir",
            "[backup.database.lite] is a SQLite file, which has no password",
            "unknown key `user` in [backup.database.odd]",
        ],
    );
}

#[test]
fn the_data_dir_is_not_an_included_directory() {
    for include in [".", ".berth/uploads"] {
        let found = diagnostics(&with_app(&format!(
            "[backup]\ndir = \"/var/backups/x\"\ninclude = [\"{include}\"]\n"
        )));
        exactly(
            &found,
            &["which holds or lies in the data dir .berth: the store is backed up on its own"],
        );
    }
}

#[test]
fn email_and_webhook_channels_read() {
    let config = valid(&with_app(
        r#"
[notify.admins]
email = ["ops@example.org", "dev@example.org"]
smtp = "smtp+starttls://mail.example.org"
from = "berth@example.org"
user = "berth"
password_env = "SMTP_PASSWORD"
ca = "certs/ca.pem"
on = ["job.discarded", "service.*"]
digest = "every 4h"

[notify.relay]
email = "root@localhost"
smtp = "smtp://127.0.0.1:2525"
on = "*"

[notify.chat]
webhook = "https://hooks.example.org/berth"
secret_env = "HOOK_SECRET"
on = ["backup.failed", "budget.100"]
"#,
    ));
    let admins = &config.notify["admins"];
    assert_eq!(
        admins.target,
        NotifyTarget::Email(EmailConfig {
            to: vec!["ops@example.org".into(), "dev@example.org".into()],
            smtp: SmtpServer {
                security: SmtpSecurity::StartTls,
                host: "mail.example.org".into(),
                port: 587
            },
            from: Some("berth@example.org".into()),
            user: Some("berth".into()),
            password_env: Some("SMTP_PASSWORD".into()),
            ca: Some(PathBuf::from("certs/ca.pem")),
        })
    );
    assert_eq!(admins.on, ["job.discarded", "service.*"]);
    assert_eq!(admins.digest, Some(Duration::from_secs(4 * 3600)));
    let relay = &config.notify["relay"];
    let NotifyTarget::Email(e) = &relay.target else {
        panic!("email")
    };
    assert_eq!(e.to, ["root@localhost"]);
    assert_eq!((e.smtp.security, e.smtp.port), (SmtpSecurity::Plain, 2525));
    assert_eq!(relay.on, ["*"]);
    assert_eq!(relay.digest, None);
    assert_eq!(
        config.notify["chat"].target,
        NotifyTarget::Webhook(WebhookTarget {
            url: "https://hooks.example.org/berth".into(),
            secret_env: Some("HOOK_SECRET".into()),
            ca: None,
        })
    );
    let tls = valid(&with_app(
        "[notify.a]\nemail = \"a@b.c\"\nsmtp = \"smtps://mail.example.org\"\non = \"*\"\n",
    ));
    let NotifyTarget::Email(e) = &tls.notify["a"].target else {
        panic!("email")
    };
    assert_eq!((e.smtp.security, e.smtp.port), (SmtpSecurity::Tls, 465));
}

#[test]
fn notify_mistakes_are_refused() {
    let found = diagnostics(&with_app(
        r#"
[notify.none]
on = ["job.discarded"]

[notify.both]
email = "a@example.org"
smtp = "smtp://127.0.0.1"
webhook = "https://example.org/hook"
on = ["*"]

[notify.mail]
email = ["not-an-address", "x@y"]
smtp = "smtp://user:pw@mail.example.org"
user = "berth"
secret_env = "X"
on = ["job.discard", "batch.*", "disk.*"]
digest = "every day or so"

[notify.hook]
webhook = "ftp://example.org"
smtp = "smtp://127.0.0.1"
on = []
"#,
    ));
    exactly(
        &found,
        &[
            "[notify.none] needs exactly one of `email` (with `smtp`) or `webhook`",
            "[notify.both] needs exactly one of `email` (with `smtp`) or `webhook`",
            "invalid address \"not-an-address\" for `email` in [notify.mail]",
            "invalid mail server \"smtp://user:pw@mail.example.org\"",
            "[notify.mail] has one of `user` and `password_env`: expected both or neither",
            "`secret_env` signs webhooks; [notify.mail] sends email",
            "unknown event kind `job.discard` in `on`; did you mean `job.discarded`?",
            "unknown event kind `disk.*` in `on`",
            "invalid digest period \"every day or so\"",
            "invalid URL \"ftp://example.org\" for `webhook` in [notify.hook]",
            "`smtp` is for email; [notify.hook] sends to a webhook",
            "`on` of [notify.hook] is empty",
        ],
    );
    let found = diagnostics(&with_app(
        "[notify.x]\nemail = \"a@example.org\"\nsmtp = \"smtp://h\"\n",
    ));
    exactly(&found, &["missing `on` in [notify.x]"]);
    let found = diagnostics(&with_app(
        "[notify.x]\nemail = \"a@example.org\"\non = \"*\"\n",
    ));
    exactly(&found, &["missing `smtp` in [notify.x]"]);
    let found = diagnostics(&with_app(
        "[notify.x]\nemail = \"a@example.org\"\nsmtp = \"smtp://mail.example.org\"\n\
         user = \"u\"\npassword_env = \"P\"\non = \"*\"\n",
    ));
    exactly(
        &found,
        &["[notify.x] would send its password in clear text to mail.example.org"],
    );
}

#[test]
fn deploy_reads_with_defaults_and_refuses_mistakes() {
    let config = parse_at(
        &with_app(
            r#"
[deploy]
repo = "git@example.org:shop.git"
build = ["pip install -r requirements.txt", "python manage.py collectstatic --noinput"]
migrate = "python manage.py migrate --noinput"
restore_on_rollback = true

[service.web]
command = "gunicorn -b 127.0.0.1:{port} shop.wsgi"
ports = "8000-8001"
env = { STATIC_ROOT = "{release}/static" }
"#,
        ),
        "/srv/shop/berth.toml",
    );
    let d = config.deploy.unwrap();
    assert_eq!(d.repo.as_deref(), Some("git@example.org:shop.git"));
    assert_eq!(d.git_ref, "HEAD");
    assert_eq!(d.dir, PathBuf::from("/srv/shop/releases"));
    assert_eq!(d.keep, 5);
    assert_eq!(d.build.len(), 2);
    assert!(d.backup && d.restore_on_rollback && !d.maintenance);
    assert_eq!(d.health, std::time::Duration::from_secs(10));
    assert_eq!(d.step_timeout, std::time::Duration::from_secs(900));
    // A local repository is resolved against the config's directory.
    let local = parse_at(
        &with_app("[deploy]\nrepo = \"../shop.git\"\n"),
        "/srv/shop/berth.toml",
    );
    assert_eq!(
        local.deploy.unwrap().repo.as_deref(),
        Some("/srv/shop/../shop.git")
    );

    let found = diagnostics(&with_app(
        r#"
[deploy]
dir = ".berth/releases"
keep = 1
build = ["", "make"]
migrate = 3
restore_on_rollback = true
backup = false
health = "soon"
colour = "blue"
"#,
    ));
    exactly(
        &found,
        &[
            "`dir` of [deploy] (.berth/releases) overlaps the data dir",
            "expected an integer from 2 to 1000",
            "expected a command such as",
            "`migrate`",
            "`restore_on_rollback = true` in [deploy] restores from the deploy's backup",
            "expected a duration such as",
            "unknown key `colour`",
        ],
    );

    let found = diagnostics(&with_app(
        r#"
[service.web]
command = "python3 {release}/app.py"

[queue.mail]
handler = { run = "python3 {release}/send.py" }
"#,
    ));
    exactly(
        &found,
        &[
            "`{release}` in service.web.command is the live release's directory, which only a [deploy] table makes",
            "`{release}` in queue.mail.handler.run",
        ],
    );
}
