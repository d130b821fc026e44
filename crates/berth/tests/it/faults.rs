//! Resources running out under a running berth: the disk under its SQLite store fills
//! up. Writes are refused with clear errors, reads go on, nothing stored is harmed, and
//! berth takes writes again by itself once there is room.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::sink::Sink;
use berth_testkit::{Project, wait_until};

use crate::{parts, run_expecting_exit, run_in, stop, up};

/// A size-limited tmpfs mounted for the test, unmounted on drop.
struct Mounted(PathBuf);

impl Mounted {
    /// Mounts a tmpfs of `size` at `dir`. `None` when this machine does not let the
    /// tests mount (not root): the test is then skipped, unless `BERTH_TEST_MOUNT` is
    /// `required` (as in CI), when it fails.
    fn tmpfs(dir: &Path, size: &str) -> Option<Mounted> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("run mount");
        if out.status.success() {
            return Some(Mounted(dir.to_path_buf()));
        }
        let why = String::from_utf8_lossy(&out.stderr);
        if std::env::var("BERTH_TEST_MOUNT").as_deref() == Ok("required") {
            panic!("cannot mount a tmpfs for the full-disk test: {why}");
        }
        eprintln!("skipped: cannot mount a tmpfs (run as root, or set up a mount): {why}");
        None
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system under `dir` with `dir/filler` until it has no room left.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 64 << 10];
    loop {
        match f.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = f.sync_all();
}

fn push(dir: &Path, i: usize) -> (i32, String, String) {
    parts(&run_expecting_exit(
        dir,
        &["job", "push", "tasks", "n", &format!("{{\"i\":{i}}}")],
        Duration::from_secs(30),
    ))
}

/// `PRAGMA integrity_check` of the SQLite file at `db`, by Python's sqlite3.
fn integrity(db: &Path) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             print(c.execute('pragma integrity_check').fetchone()[0]); \
             print(c.execute('select count(*) from jobs').fetchone()[0])",
        ])
        .arg(db)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The disk under the SQLite store fills up while berth runs: a push is refused with
/// exit 75 and "the disk holding the store is full", listing jobs and `berth status`
/// go on answering, berth keeps running, and once the filler is removed pushes are
/// taken again without a restart. Every acknowledged job completes, and the store
/// passes SQLite's integrity check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let sink = Sink::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let Some(_mounted) = Mounted::tmpfs(&data, "16m") else {
        return;
    };
    let ports = berth_testkit::free_port_run(2);
    let (mqtt, http) = (ports, ports + 1);
    let p = Project::new(&format!(
        "[app]\nname = \"full\"\ndata_dir = \"{}\"\n\n[queue.tasks]\nhandler = {{ post = \"{}\" }}\n\n\
         [ingest.devices]\nmqtt = {{ listen = \"127.0.0.1:{mqtt}\", auth = \"anonymous\" }}\n\
         topics = [\"#\"]\n\n[ingest.hooks]\nwebhook = {{ path = \"/hooks/in\", auth = \"none\" }}\n\n\
         [gateway]\nlisten = \"127.0.0.1:{http}\"\n",
        data.display(),
        sink.url()
    ));
    let mut child = up(p.dir()).await;
    let mut acknowledged = 0;
    for i in 0..50 {
        let (code, _, err) = push(p.dir(), i);
        assert_eq!(code, 0, "{err}");
        acknowledged += 1;
    }
    wait_until("the first jobs to run", Duration::from_secs(30), || async {
        (sink.count() >= 50).then_some(())
    })
    .await;

    fill(&data);
    // A write may still fit in pages SQLite already holds; a few more fill those.
    let mut refused = None;
    for i in 50..250 {
        let (code, _, err) = push(p.dir(), i);
        match code {
            0 => acknowledged += 1,
            75 => {
                refused = Some(err);
                break;
            }
            other => panic!("push {i} exited {other}: {err}"),
        }
    }
    let err = refused.expect("a push is refused once the disk is full");
    assert!(err.contains("the disk holding the store is full"), "{err}");
    assert!(err.contains("try again later"), "{err}");
    // An MQTT 5 publish gets a refusal in its PUBACK, a webhook a 503: nothing taken
    // silently.
    let published = crate::mosquitto_pub5(mqtt, "stand/1", "{\"seq\":1}", &["-d"]);
    let said = String::from_utf8_lossy(&published.stdout).into_owned()
        + &String::from_utf8_lossy(&published.stderr);
    assert!(said.contains("received PUBACK (Mid: 1, RC:128)"), "{said}");
    assert!(
        said.contains("could not be stored; publish it again"),
        "{said}"
    );
    let hook = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-d", "{}"])
        .arg(format!("http://127.0.0.1:{http}/hooks/in"))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&hook.stdout), "503");

    // Reads go on.
    let (code, out, err) = parts(&run_in(p.dir(), &["job", "list", "--queue", "tasks"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("completed"), "{out}");
    let (code, _, err) = parts(&run_in(p.dir(), &["status"]));
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "berth kept running on a full disk"
    );

    std::fs::remove_file(data.join("filler")).unwrap();
    let freed = Instant::now();
    let mut i = 1000;
    wait_until("a push to be taken again", Duration::from_secs(30), || {
        i += 1;
        let (code, _, _) = push(p.dir(), i);
        async move { (code == 0).then_some(()) }
    })
    .await;
    acknowledged += 1;
    let recovered = freed.elapsed();
    wait_until(
        "every acknowledged job to run",
        Duration::from_secs(60),
        || async { (sink.per_job().len() >= acknowledged).then_some(()) },
    )
    .await;
    assert_eq!(sink.per_job().len(), acknowledged);
    println!("disk full: pushes taken again {recovered:?} after room was made");

    // A clean stop, with room on the disk again.
    stop(&mut child);
    assert_eq!(
        integrity(&data.join("berth.db")),
        format!("ok\n{acknowledged}")
    );
}

/// Clock ticks of CPU (user and system) the process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command's `(…)`: utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// berth runs out of file descriptors (its limit lowered with `prlimit`, then a flood of
/// connections to the gateway): it keeps running without spinning on the failed
/// accepts, and once the connections are gone it serves the gateway and takes pushes
/// again, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_is_survived() {
    let http = berth_testkit::free_port_run(1);
    let p = Project::new(&format!(
        "[app]\nname = \"fds\"\nshutdown_grace = \"2s\"\n\n[queue.tasks]\n\n[gateway]\nlisten = \"127.0.0.1:{http}\"\n\n\
         [[gateway.route]]\nstatic = \"site\"\n"
    ));
    std::fs::create_dir_all(p.dir().join("site")).unwrap();
    std::fs::write(p.dir().join("site/index.html"), "hello").unwrap();
    let mut child = up(p.dir()).await;
    let pid = child.id();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = open + 40;
    let set = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .output()
        .expect("run prlimit (util-linux)");
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );

    // More connections than descriptors left: once berth's accept queue is full too,
    // the kernel drops the handshakes, so each try waits at most 100 ms.
    let at = std::net::SocketAddr::from(([127, 0, 0, 1], http));
    let flood: Vec<std::net::TcpStream> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&at, Duration::from_millis(100)).ok())
        .collect();
    assert!(flood.len() > 40, "{} connections", flood.len());
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(pid) - before;
    // 100 ticks a second: a spinning accept loop would take about 200.
    assert!(
        spent < 60,
        "{spent} ticks of CPU in 2 s while out of descriptors"
    );
    assert!(child.try_wait().unwrap().is_none(), "berth kept running");
    let log = std::fs::read_to_string(p.dir().join("berth-up.log")).unwrap();
    assert!(log.contains("Too many open files"), "{log}");

    drop(flood);
    let freed = Instant::now();
    crate::wait_for_answer("the gateway to answer again", http, "hello").await;
    let (code, _, err) = push(p.dir(), 1);
    assert_eq!(code, 0, "{err}");
    println!(
        "out of descriptors: {spent} ticks of CPU in 2 s; the gateway answered again {:?} \
         after the flood closed",
        freed.elapsed()
    );
    stop(&mut child);
}

/// A webhook's body sent slowly (a slowloris): once the gateway's `timeout` has passed
/// the client gets 408 `body_timeout` and the connection ends; a quick client is served
/// meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_body_is_cut_off_at_the_gateway_timeout() {
    use std::io::{Read, Write};
    let http = berth_testkit::free_port_run(1);
    let p = Project::new(&format!(
        "[app]\nname = \"slow\"\nshutdown_grace = \"2s\"\n\n\
         [ingest.hooks]\nwebhook = {{ path = \"/hooks/in\", auth = \"none\" }}\n\n\
         [gateway]\nlisten = \"127.0.0.1:{http}\"\ntimeout = \"2s\"\n"
    ));
    let mut child = up(p.dir()).await;
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    slow.write_all(b"POST /hooks/in/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"seq\":")
        .unwrap();
    let sent = Instant::now();
    // A quick client meanwhile.
    let quick = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-d",
            "{\"seq\": 1}",
        ])
        .arg(format!("http://127.0.0.1:{http}/hooks/in/b"))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&quick.stdout), "202");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer).unwrap();
    let took = sent.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "cut off after {took:?}"
    );
    stop(&mut child);
}

/// A slowloris: 600 connections from one address, each sending part of a request head
/// and then nothing. One address holds at most `max_connections_per_address` (here 500)
/// connections; those it holds cost a few kB each; after the head timeout (30 s) every
/// one is closed; a quick client is served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_holds_little_and_not_for_long() {
    use std::io::{Read, Write};
    let http = berth_testkit::free_port_run(1);
    let p = Project::new(&format!(
        "[app]\nname = \"loris\"\nshutdown_grace = \"2s\"\n\n\
         [gateway]\nlisten = \"127.0.0.1:{http}\"\nmax_connections_per_address = 500\n\n\
         [[gateway.route]]\nstatic = \"site\"\n"
    ));
    std::fs::create_dir_all(p.dir().join("site")).unwrap();
    std::fs::write(p.dir().join("site/index.html"), "hello").unwrap();
    let mut child = up(p.dir()).await;
    let pid = child.id();
    crate::wait_for_answer("the gateway", http, "hello").await;
    std::thread::sleep(Duration::from_millis(500));
    let (rss_before, fds_before) = (crate::status_kb(pid, "VmRSS:"), crate::fds(pid));
    let at = std::net::SocketAddr::from(([127, 0, 0, 1], http));
    let mut slow = Vec::new();
    for i in 0..600 {
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&at, Duration::from_millis(500))
        else {
            continue;
        };
        let _ = s.write_all(format!("GET /{i} HTTP/1.1\r\nHost: x\r\nX-Slow: ").as_bytes());
        slow.push(s);
    }
    let opened = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let (rss_held, fds_held) = (crate::status_kb(pid, "VmRSS:"), crate::fds(pid));
    let held = fds_held - fds_before;
    assert!(held <= 500, "{held} connections held for one address");
    assert!(held >= 400, "{held} connections held");
    let per_connection = (rss_held.saturating_sub(rss_before) * 1024) / held as u64;
    crate::wait_for_answer("a quick client meanwhile", http, "hello").await;
    // Past the head timeout, berth has closed them all, while the clients still hold
    // their ends: its descriptors are back, and each client reads the end.
    std::thread::sleep(Duration::from_secs(31).saturating_sub(opened.elapsed()));
    let fds_after = crate::fds(pid);
    let mut open = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 512];
        if let Err(e) = s.read(&mut buf)
            && matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        {
            open += 1;
        }
    }
    drop(slow);
    println!(
        "slowloris: {held} of 600 connections held, {per_connection} bytes each \
         (RSS {rss_before} → {rss_held} kB); descriptors {fds_before} → {fds_held} → {fds_after} \
         after the head timeout"
    );
    assert_eq!(open, 0, "connections still open past the head timeout");
    assert!(fds_after <= fds_before + 2, "{fds_before} → {fds_after}");
    assert!(
        per_connection < 64 * 1024,
        "{per_connection} bytes per connection"
    );
    stop(&mut child);
}
