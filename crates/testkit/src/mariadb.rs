//! A throwaway MariaDB (or MySQL) server for tests, started from the installed server
//! binaries on a free port: never the machine's shared server.
//!
//! Each [`MariaDb`] lives in a temp dir of its own (`data/`, the socket, the error log),
//! listens on 127.0.0.1, has a user `app` with the password [`MariaDb::PASSWORD`] and all
//! privileges, and is killed and deleted on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A MariaDB server of the test's own.
pub struct MariaDb {
    dir: tempfile::TempDir,
    port: u16,
    server: Child,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

impl MariaDb {
    /// The password of user `app`.
    pub const PASSWORD: &'static str = "app-secret";

    /// Whether this machine has the server binaries (`mariadbd` and
    /// `mariadb-install-db`); tests of MySQL say so and skip without them.
    /// With `BERTH_TEST_MARIADB=required` (CI sets it), a missing server panics instead:
    /// the MySQL part of a test is never skipped there.
    pub fn available() -> bool {
        let here = find(&["mariadbd", "mysqld"]).is_some()
            && find(&["mariadb-install-db", "mysql_install_db"]).is_some()
            && find(&["mysql", "mariadb"]).is_some()
            && find(&["mysqldump"]).is_some();
        if !here && std::env::var("BERTH_TEST_MARIADB").as_deref() == Ok("required") {
            panic!(
                "BERTH_TEST_MARIADB=required, and MariaDB's server or client is missing: \
                 apt-get install mariadb-server mariadb-client"
            );
        }
        here
    }

    /// Starts a fresh server. Panics with what to install, or the error log's end.
    pub fn start() -> MariaDb {
        let server_bin = find(&["mariadbd", "mysqld"])
            .expect("no MariaDB server binary; install it: apt-get install mariadb-server");
        let install = find(&["mariadb-install-db", "mysql_install_db"])
            .expect("no mariadb-install-db; install it: apt-get install mariadb-server");
        let dir = tempfile::Builder::new()
            .prefix("berth-mariadb-")
            .tempdir()
            .expect("create the server's temp dir");
        let data = dir.path().join("data");
        let user = if crate::pg::is_root() { "root" } else { "" };
        let mut cmd = Command::new(&install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db");
        if !user.is_empty() {
            cmd.arg(format!("--user={user}"));
        }
        let out = cmd.output().expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = crate::free_port_run(1);
        let socket = dir.path().join("mysqld.sock");
        let mut cmd = Command::new(&server_bin);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!(
                "--log-error={}",
                dir.path().join("error.log").display()
            ))
            .arg("--skip-log-bin")
            .arg("--innodb-buffer-pool-size=16M")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !user.is_empty() {
            cmd.arg(format!("--user={user}"));
        }
        let server = cmd.spawn().expect("start mariadbd");
        let db = MariaDb { dir, port, server };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = db
                .root(&["--execute=SELECT 1"])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "MariaDB did not start on port {port}:\n{}",
                    std::fs::read_to_string(db.dir.path().join("error.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        db.sql(
            "",
            &format!(
                "CREATE USER 'app'@'%' IDENTIFIED BY '{}'; \
                 CREATE USER 'app'@'localhost' IDENTIFIED BY '{}'; \
                 GRANT ALL ON *.* TO 'app'@'%'; GRANT ALL ON *.* TO 'app'@'localhost';",
                Self::PASSWORD,
                Self::PASSWORD
            ),
        );
        db
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn root(&self, args: &[&str]) -> Command {
        let client = find(&["mysql", "mariadb"]).expect("the mysql client");
        let mut c = Command::new(client);
        c.arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("mysqld.sock").display()
            ))
            .arg("--user=root")
            .arg("--batch")
            .arg("--skip-column-names")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `sql` as root in database `db` (none if empty) and returns what it printed.
    /// Panics if it fails.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let mut args = vec![format!("--execute={sql}")];
        if !db.is_empty() {
            args.push(db.to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.root(&args).output().expect("run mysql");
        assert!(
            out.status.success(),
            "mysql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
