//! A throwaway PostgreSQL cluster for tests, started from the installed server binaries
//! on a free port: never the machine's shared server.
//!
//! Each [`PgCluster`] lives in a temp dir of its own (`data/`, `server.log`, and the
//! unix socket), listens on 127.0.0.1 and is stopped (immediate mode) and deleted on
//! drop. [`shared`] is one cluster for all the tests of a test binary; since statics are
//! never dropped, a watchdog process stops and deletes it once the test process is gone.
//! Every cluster has such a watchdog, so even a killed test process leaks none.
//!
//! When the tests run as root (as in CI), the server binaries run as `postgres` through
//! `runuser`, since initdb and postgres refuse to run as root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many times [`PgCluster::start`] tries another port when the one it picked was
/// taken in the meantime.
const PORT_ATTEMPTS: usize = 5;

/// How long `pg_ctl` waits for the server to start or stop, in seconds.
const PG_CTL_TIMEOUT: &str = "60";

/// A PostgreSQL cluster of the test's own, stopped (immediate mode) and deleted on drop.
pub struct PgCluster {
    /// The temp dir: `data/`, `server.log`, `berth_test.conf` and the unix socket.
    dir: PathBuf,
    port: u16,
    bin_dir: PathBuf,
    /// Server binaries run as `postgres` through `runuser` (the tests run as root).
    as_postgres: bool,
    /// Stops and deletes the cluster once the test process is gone; killed on drop.
    watchdog: Option<Child>,
}

impl PgCluster {
    /// Starts a fresh cluster (initdb with trust auth, user `postgres`, UTF8; listens on
    /// 127.0.0.1 and a unix socket dir inside its temp dir; fsync on, as by default, so
    /// that benchmarks measure real durability). Panics with a clear message naming what
    /// to install (`apt-get install postgresql`) if no server binaries are found, and
    /// with the server log's last lines if the cluster does not start.
    pub fn start() -> PgCluster {
        let bin_dir = bin_dir().unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries found (looked for initdb in `pg_config --bindir` \
                 and /usr/lib/postgresql/*/bin); install them: apt-get install postgresql"
            )
        });
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("berth-pg-")
            .tempdir_in(std::env::temp_dir())
            .expect("create the cluster's temp dir")
            .keep();
        let mut cluster = PgCluster {
            dir,
            port: 0,
            bin_dir,
            as_postgres,
            watchdog: None,
        };
        // From here on, a panic drops `cluster`, which deletes the dir.
        if as_postgres {
            if which("runuser").is_none() {
                panic!("the tests run as root and need runuser (util-linux) to start PostgreSQL");
            }
            let out = run(Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(&cluster.dir));
            if !out.status.success() {
                panic!(
                    "chown postgres {}: {} (running as root, PostgreSQL runs as user postgres, \
                     which the postgresql package creates)",
                    cluster.dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        cluster.watchdog = Some(cluster.spawn_watchdog());

        let out = run(cluster
            .server_cmd("initdb")
            .arg("-D")
            .arg(cluster.data_dir())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync"));
        if !out.status.success() {
            panic!("initdb failed:\n{}", output_text(&out));
        }
        let conf = cluster.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str("\ninclude 'berth_test.conf'\n");
        std::fs::write(&conf, text).expect("write postgresql.conf");

        for attempt in 1..=PORT_ATTEMPTS {
            cluster.port = free_port();
            let settings = format!(
                "# Written by berth-testkit.\n\
                 port = {}\n\
                 listen_addresses = '127.0.0.1'\n\
                 unix_socket_directories = '{}'\n\
                 max_connections = 200\n",
                cluster.port,
                cluster.dir.display().to_string().replace('\'', "''"),
            );
            let settings_path = cluster.data_dir().join("berth_test.conf");
            std::fs::write(&settings_path, settings).expect("write berth_test.conf");
            // Only this attempt's log is read for a port clash.
            let _ = std::fs::remove_file(cluster.log_path());
            let out = cluster.pg_ctl_start();
            if out.status.success() {
                return cluster;
            }
            let log = cluster.log_tail(40);
            let clash = log.contains("Address already in use") || log.contains("could not bind");
            if !clash || attempt == PORT_ATTEMPTS {
                panic!(
                    "PostgreSQL did not start on port {}:\n{}\nserver log ({}):\n{log}",
                    cluster.port,
                    output_text(&out),
                    cluster.log_path().display()
                );
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        self.db_url("postgres")
    }

    /// Creates a database and returns its URL, so that many tests can share one cluster.
    pub fn create_database(&self, name: &str) -> String {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        self.psql(&self.url(), &sql);
        self.db_url(name)
    }

    /// A URL for a fresh, uniquely named database (`test_PID_N`), created on this cluster.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("test_{}_{n}", std::process::id()))
    }

    /// Runs `sql` with the cluster's own `psql` on the database at `url` (stopping at the
    /// first error) and returns its output, unaligned and tuples only (`select 1` gives
    /// `"1"`). Panics with psql's output if it fails.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let psql = self.bin_dir.join("psql");
        let psql = if psql.exists() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let out = run(Command::new(psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "10"));
        if !out.status.success() {
            panic!("psql {url} -c {sql:?} failed:\n{}", output_text(&out));
        }
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// Stops the server (fast mode) and starts it again on the same port and data; for
    /// "survives a PostgreSQL restart" tests.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Stops the server (fast mode: sessions are disconnected, then a clean shutdown).
    pub fn stop(&self) {
        let out = self.pg_ctl("stop", "fast");
        if !out.status.success() {
            panic!(
                "pg_ctl stop failed:\n{}\nserver log:\n{}",
                output_text(&out),
                self.log_tail(40)
            );
        }
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port and data.
    pub fn start_again(&self) {
        let out = self.pg_ctl_start();
        if !out.status.success() {
            panic!(
                "PostgreSQL did not start again on port {}:\n{}\nserver log:\n{}",
                self.port,
                output_text(&out),
                self.log_tail(40)
            );
        }
    }

    /// Turns TLS on with the certificate chain `cert_pem` and its key `key_pem` (the
    /// server restarts). With `only`, the server refuses every connection over TCP that
    /// is not TLS (`hostnossl … reject` first in pg_hba.conf), so that a client that
    /// connects at all has spoken TLS.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str, only: bool) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data_dir();
        let (cert, key) = (data.join("server.crt"), data.join("server.key"));
        std::fs::write(&cert, cert_pem).expect("write server.crt");
        std::fs::write(&key, key_pem).expect("write server.key");
        // The server refuses a key others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod server.key");
        if self.as_postgres {
            let out = run(Command::new("chown").arg("postgres:").arg(&cert).arg(&key));
            assert!(
                out.status.success(),
                "chown the TLS files:\n{}",
                output_text(&out)
            );
        }
        let settings = data.join("berth_test.conf");
        let mut text = std::fs::read_to_string(&settings).expect("read berth_test.conf");
        text.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&settings, text).expect("write berth_test.conf");
        if only {
            let hba = data.join("pg_hba.conf");
            let text = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
            let text = format!("hostnossl all all 0.0.0.0/0 reject\n{text}");
            std::fs::write(&hba, text).expect("write pg_hba.conf");
        }
        self.restart();
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's temp dir (data dir, server log, unix socket); deleted on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn db_url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port,
            percent_encode(name)
        )
    }

    /// A command running the server binary `bin`, as `postgres` when we are root.
    fn server_cmd(&self, bin: &str) -> Command {
        let path = self.bin_dir.join(bin);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        // The test's cwd may not be readable by `postgres`.
        cmd.current_dir(&self.dir);
        cmd
    }

    fn pg_ctl_start(&self) -> Output {
        run(self
            .server_cmd("pg_ctl")
            .args(["start", "-w", "-t", PG_CTL_TIMEOUT, "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path()))
    }

    fn pg_ctl(&self, action: &str, mode: &str) -> Output {
        run(self
            .server_cmd("pg_ctl")
            .args([action, "-w", "-t", PG_CTL_TIMEOUT, "-m", mode, "-D"])
            .arg(self.data_dir()))
    }

    /// The last `n` lines of the server log.
    fn log_tail(&self, n: usize) -> String {
        match std::fs::read_to_string(self.log_path()) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(n)..].join("\n")
            }
            Err(e) => format!("(no log: {e})"),
        }
    }

    /// A process, in a process group of its own (so that Ctrl-C does not reach it), that
    /// waits for the test process to be gone, then stops the cluster (immediate mode) and
    /// deletes its dir.
    fn spawn_watchdog(&self) -> Child {
        use std::os::unix::process::CommandExt;
        const SCRIPT: &str = r#"pid=$1 dir=$2; shift 2
while kill -0 "$pid" 2>/dev/null; do sleep 1; done
"$@" stop -m immediate -w -D "$dir/data" >/dev/null 2>&1
rm -rf "$dir""#;
        let mut cmd = Command::new("sh");
        cmd.args(["-c", SCRIPT, "berth-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(&self.dir);
        if self.as_postgres {
            cmd.args(["runuser", "-u", "postgres", "--"]);
        }
        cmd.arg(self.bin_dir.join("pg_ctl"))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn the cluster's watchdog (sh)")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if self.data_dir().join("postmaster.pid").exists() {
            let _ = self.pg_ctl("stop", "immediate");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One cluster shared by all tests of a test binary, started on first use. It is never
/// dropped: a watchdog stops and deletes it once the test process has exited.
pub fn shared() -> &'static PgCluster {
    static SHARED: OnceLock<PgCluster> = OnceLock::new();
    SHARED.get_or_init(PgCluster::start)
}

/// The dir holding the server binaries: `pg_config --bindir` if it has `initdb`, else
/// the highest version of `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let pg_config = Command::new("pg_config").arg("--bindir").output();
    if let Some(out) = pg_config.ok().filter(|out| out.status.success()) {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let dir = entry.path().join("bin");
            has_server(&dir).then_some((version, dir))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// Whether the test process runs as root (`id -u` is 0).
pub(crate) fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let out = Command::new("id").arg("-u").output().expect("run `id -u`");
        String::from_utf8_lossy(&out.stdout).trim() == "0"
    })
}

/// `name`'s path on PATH, if any.
fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Runs `cmd` to completion, panicking if it cannot be started at all.
fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()))
}

fn output_text(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `name` as a URL path segment.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
