//! Notifications under `berth up`: mail to real SMTP servers (aiosmtpd, started here) over
//! STARTTLS and TLS with a login and in plain, while the server is first down and then
//! up; a digest; `berth notify test`; a signed webhook that fails once and is retried.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_testkit::sink::Sink;
use berth_testkit::{free_port_run, wait_until};
use serde_json::Value;

use crate::{berth, parts, run_in, stop, up_with_env};

/// A CA and a certificate it signed for localhost (rustls refuses a self-signed CA
/// certificate as a server's own).
fn certificates(d: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        d.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "server.pem",
    ]);
}

/// An aiosmtpd server writing each mail it takes to a folder.
struct Smtp {
    child: Child,
    outdir: PathBuf,
}

impl Smtp {
    fn start(port: u16, outdir: PathBuf, extra: &[&str]) -> Smtp {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&outdir)
            .args(extra)
            // Certificate paths are relative to the project.
            .current_dir(outdir.parent().unwrap())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(outdir.with_extension("log")).unwrap())
            .spawn()
            .expect("start the SMTP server (python3 with aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP server did not start");
        Smtp { child, outdir }
    }

    /// Every mail taken so far.
    fn mails(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.outdir)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .map(|e| std::fs::read_to_string(e.path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    async fn wait_for_mails(&self, n: usize, limit: Duration) -> Vec<String> {
        wait_until(&format!("{n} mails"), limit, || async {
            let m = self.mails();
            (m.len() >= n).then_some(m)
        })
        .await
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `berth --json notify list` in `d`.
fn notifications(d: &Path) -> Vec<Value> {
    let (code, out, err) = parts(&run_in(d, &["--json", "notify", "list"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["notifications"].as_array().unwrap().clone()
}

/// Pushes a job that fails at once (one attempt) and returns its id.
fn push_failing(d: &Path) -> i64 {
    let (code, out, err) = parts(&run_in(
        d,
        &[
            "--json",
            "job",
            "push",
            "work",
            "import",
            r#"{"file":"a.csv"}"#,
        ],
    ));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_i64()
        .unwrap()
}

const FAILING_QUEUE: &str = r#"
[queue.work]
handler = { run = "echo 'row 7 is broken' >&2; exit 1" }
max_attempts = 1
"#;

#[tokio::test]
async fn mail_waits_for_a_server_that_is_down_then_arrives() {
    let port = free_port_run(3);
    let (starttls, plain, tls) = (port, port + 1, port + 2);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    std::fs::write(
        d.join("berth.toml"),
        format!(
            r#"[app]
name = "shop"
shutdown_grace = "1s"
{FAILING_QUEUE}
[notify.ops]
email = ["ops@example.org", "dev@example.org"]
smtp = "smtp+starttls://localhost:{starttls}"
from = "berth@example.org"
user = "berth"
password_env = "SMTP_PASSWORD"
ca = "ca.pem"
on = ["job.discarded"]

[notify.summary]
email = "lead@example.org"
smtp = "smtp://127.0.0.1:{plain}"
on = ["job.*", "workflow.*"]
digest = "every 2s"

[notify.tls]
email = "sec@example.org"
smtp = "smtps://localhost:{tls}"
user = "berth"
password_env = "SMTP_PASSWORD"
ca = "ca.pem"
on = ["backup.failed"]
"#
        ),
    )
    .unwrap();
    let login = ["--user", "berth", "--password", "s3cret"];
    let cert = ["--cert", "server.pem", "--key", "server.key"];
    let summary = Smtp::start(plain, d.join("mail-plain"), &[]);
    let tls_args: Vec<&str> = [&login[..], &cert[..], &["--tls"]].concat();
    let secure = Smtp::start(tls, d.join("mail-tls"), &tls_args);

    // `notify test` checks a channel without berth running: TLS from the first byte, with
    // a login; a wrong password is refused with the server's answer.
    let test = |password: &str| {
        berth()
            .current_dir(d)
            .env("SMTP_PASSWORD", password)
            .args(["notify", "test", "tls"])
            .output()
            .unwrap()
    };
    let (code, out, err) = parts(&test("s3cret"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("sent a test notification through [notify.tls]"),
        "{out}"
    );
    let mails = secure.wait_for_mails(1, Duration::from_secs(5)).await;
    assert!(
        mails[0].contains("Subject: [shop] notify.test: tls"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("X-Envelope-To: sec@example.org"),
        "{}",
        mails[0]
    );
    let (code, _, err) = parts(&test("wrong"));
    assert_ne!(code, 0);
    assert!(
        err.contains("[notify.tls] could not send") && err.contains("535"),
        "{err}"
    );
    let (code, _, err) = parts(&run_in(d, &["notify", "test", "nope"]));
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("no [notify.nope] in the config; expected one of: ops, summary, tls"),
        "{err}"
    );

    // The STARTTLS server is down when the job is discarded: the mail waits, with why.
    let mut up = up_with_env(d, &[("SMTP_PASSWORD", "s3cret")]).await;
    let id = push_failing(d);
    let waiting = wait_until("a failed try", Duration::from_secs(15), || async {
        notifications(d)
            .into_iter()
            .find(|n| n["channel"] == "ops" && n["attempts"].as_u64() >= Some(1))
    })
    .await;
    assert!(waiting["sent_at"].is_null());
    assert!(
        waiting["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("connection refused"),
        "{waiting}"
    );
    let (code, table, _) = parts(&run_in(d, &["notify", "list", "--pending"]));
    assert_eq!(code, 0);
    assert!(
        table.contains("job.discarded") && table.contains("waiting (1 tries"),
        "{table}"
    );

    // The digest went out meanwhile, to the plain server, once the 2 s period ended.
    let digests = summary.wait_for_mails(1, Duration::from_secs(10)).await;
    assert!(
        digests[0].contains("Subject: [shop] digest: 1 jobs discarded"),
        "{}",
        digests[0]
    );
    assert!(
        digests[0].contains(&format!("job {id} (import on queue work)")),
        "{}",
        digests[0]
    );

    // The server comes up: the next try (10 s after the first) delivers, once.
    let ops = Smtp::start(
        starttls,
        d.join("mail-starttls"),
        &[&login[..], &cert[..], &["--starttls"]].concat(),
    );
    let mails = ops.wait_for_mails(1, Duration::from_secs(30)).await;
    let mail = &mails[0];
    assert!(
        mail.contains("Subject: [shop] job.discarded: import"),
        "{mail}"
    );
    assert!(
        mail.contains("X-Envelope-To: ops@example.org, dev@example.org"),
        "{mail}"
    );
    assert!(mail.contains("From: berth@example.org"), "{mail}");
    assert!(
        mail.contains(&format!(
            "job {id} (import on queue work) was discarded after attempt 1 of 1"
        )),
        "{mail}"
    );
    // What failed, said in the mail: the file and what the command printed.
    assert!(mail.contains(r#"args: {file: "a.csv"}"#), "{mail}");
    assert!(mail.contains("row 7 is broken"), "{mail}");
    let sent = wait_until("recorded as sent", Duration::from_secs(5), || async {
        notifications(d)
            .into_iter()
            .find(|n| n["channel"] == "ops" && !n["sent_at"].is_null())
    })
    .await;
    assert_eq!(sent["attempts"], 1);
    stop(&mut up);
    assert_eq!(ops.mails().len(), 1, "sent once");
    assert_eq!(summary.mails().len(), 1, "one digest");
    // The outbox reads the same with berth stopped.
    let (code, table, err) = parts(&run_in(
        d,
        &["notify", "list", "--sent", "--channel", "ops"],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("job.discarded") && table.contains("sent "),
        "{table}"
    );
    let (code, _, err) = parts(&run_in(d, &["notify", "list", "--limit", "0"]));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("expected 1 to 10000"), "{err}");
}

#[tokio::test]
async fn a_webhook_that_fails_is_tried_again_and_signed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // The first try gets a 503; the next a 200.
    let sink = Sink::with(move |_| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            (503, vec![], "busy".into())
        } else {
            (200, vec![], "{}".into())
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            r#"[app]
name = "shop"
shutdown_grace = "1s"
{FAILING_QUEUE}
[notify.chat]
webhook = "http://{}/hooks/berth"
secret_env = "HOOK_SECRET"
on = ["job.discarded"]
"#,
            sink.addr
        ),
    )
    .unwrap();
    let mut up = up_with_env(d, &[("HOOK_SECRET", "hush")]).await;
    let id = push_failing(d);
    let hits = wait_until("two tries", Duration::from_secs(30), || async {
        let h = sink.hits();
        (h.len() >= 2).then_some(h)
    })
    .await;
    let first = &hits[0];
    let second = &hits[1];
    assert_eq!(
        first.body, second.body,
        "the same notification, tried again"
    );
    let body = &second.body;
    assert_eq!(body["app"], "shop");
    assert_eq!(body["kind"], "job.discarded");
    assert_eq!(body["subject"], "import");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("job {id} (import on queue work) was discarded")),
        "{body}"
    );
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(
        second.header("x-berth-delivery").map(str::to_owned),
        Some(body["delivery_id"].to_string())
    );
    // The signature is the HMAC-SHA256 of the body, as a receiver computes it.
    let expected = Command::new("python3")
        .args([
            "-c",
            "import hmac, hashlib, sys; print('sha256=' + hmac.new(b'hush', sys.stdin.buffer.read(), hashlib.sha256).hexdigest())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&second.raw)?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        second.header("x-berth-signature"),
        Some(String::from_utf8_lossy(&expected.stdout).trim())
    );
    let sent = wait_until("recorded as sent", Duration::from_secs(5), || async {
        notifications(d)
            .into_iter()
            .find(|n| !n["sent_at"].is_null())
    })
    .await;
    assert_eq!(sent["attempts"], 1);
    assert!(sent["last_error"].is_null());
    stop(&mut up);
    assert_eq!(sink.count(), 2);
}
