//! The dashboard in a real headless Chromium (Debian's, over chromedriver): login, every
//! page without a console error, a retry seen live, a service restarted with its log
//! followed, a cross-site form refused; and, with curl, every page and action refused to
//! a user without the admin role. Screenshots go to `target/tmp/dashboard-screenshots`.

use std::path::Path;
use std::process::Command;

use berth_testkit::Project;
use serde_json::{Value, json};

use crate::{curl, parts, run_with_input, stop, up};

const PAGES: &[&str] = &[
    "/",
    "/jobs",
    "/jobs/1",
    "/queues",
    "/schedules",
    "/batches",
    "/workflows",
    "/services",
    "/services/web",
    "/gateway",
    "/messages",
    "/notifications",
    "/events",
    "/releases",
    "/backups",
];

fn project(port: u16) -> Project {
    let (gateway, web) = (port, port + 1);
    let p = Project::new(&format!(
        "[app]\nname = \"dash\"\nshutdown_grace = \"20s\"\n\n\
         [queue.tasks]\nhandler = \"pull\"\n\n\
         [service.web]\ncommand = \"python3 -u -m http.server $PORT --bind 127.0.0.1\"\ninstances = 2\nport = {web}\n\n\
         [schedule.nightly]\ncron = \"0 3 * * *\"\njob = {{ queue = \"tasks\", kind = \"report\" }}\n\n\
         [gateway]\nlisten = \"127.0.0.1:{gateway}\"\n\n\
         [[gateway.route]]\npath = \"/admin\"\ndashboard = true\n"
    ));
    for (user, role) in [("ada", Some("admin")), ("bob", None)] {
        let mut args = vec!["user", "add", user, "--password-stdin"];
        if let Some(role) = role {
            args.extend(["--role", role]);
        }
        let (code, _, err) = parts(&run_with_input(p.dir(), &args, "s3cret-pass\n"));
        assert_eq!(code, 0, "{err}");
    }
    p
}

async fn push(p: &Project, kind: &str) -> i64 {
    let v = p
        .client()
        .post_json(
            "/v1/jobs",
            json!({"queue": "tasks", "kind": kind, "args": {"n": 1}}),
        )
        .await
        .unwrap();
    v["id"].as_i64().unwrap()
}

fn login(gateway: &str, user: &str, jar: &Path) {
    let (code, _) = curl(&[
        "-c",
        jar.to_str().unwrap(),
        "-o",
        "/dev/null",
        "-d",
        &format!("user={user}&password=s3cret-pass&next=/admin/"),
        &format!("{gateway}/_berth/login"),
    ]);
    assert_eq!(code, "303", "{user} logs in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_uses_the_dashboard_in_a_real_browser() {
    let chromedriver = Command::new("chromedriver").arg("--version").output();
    assert!(
        chromedriver.is_ok_and(|o| o.status.success()),
        "this test drives Debian's Chromium: apt-get install chromium chromium-driver (.ci/run does)"
    );
    let port = berth_testkit::free_port_run(3);
    let p = project(port);
    let gateway = format!("http://127.0.0.1:{port}");
    let mut child = up(p.dir()).await;
    berth_testkit::wait_until(
        "both instances of web are ready",
        std::time::Duration::from_secs(20),
        || async {
            let v = p.client().get_json("/v1/services").await.ok()?;
            let all = v["services"].as_array()?;
            all.iter().all(|s| s["state"] == "running").then_some(())
        },
    )
    .await;
    let discarded = push(&p, "send").await;
    let keep = push(&p, "keep").await;
    p.client()
        .post_json(&format!("/v1/jobs/{discarded}/discard"), json!({}))
        .await
        .unwrap();

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/dashboard_browser.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&gateway)
        .arg(&shots)
        .arg(discarded.to_string())
        .arg(keep.to_string())
        .output()
        .expect("python3 runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the browser run failed: {stdout}\n{stderr}\nberth: {}",
        std::fs::read_to_string(p.dir().join("berth-up.log")).unwrap_or_default()
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(seen["pages"].as_array().unwrap().len(), 16);
    assert_eq!(seen["retried"], true);
    assert_eq!(seen["flash_after_retry"], "retry: done");
    assert!(seen["log_lines_after"].as_u64() >= seen["log_lines_before"].as_u64().map(|n| n + 2));
    assert!(shots.join("overview.png").exists());
    eprintln!("browser steps, seconds from the start: {}", seen["seconds"]);

    // What the browser did is what the store holds, and each action names its user.
    let job = p
        .client()
        .get_json(&format!("/v1/jobs/{discarded}"))
        .await
        .unwrap();
    assert_eq!(job["state"], "available", "{job}");
    let kept = p
        .client()
        .get_json(&format!("/v1/jobs/{keep}"))
        .await
        .unwrap();
    assert_eq!(
        kept["state"], "available",
        "the cross-site post changed nothing"
    );
    let events = p
        .client()
        .get_json("/v1/events?source=dashboard")
        .await
        .unwrap();
    let messages: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&format!("ada POST /v1/jobs/{discarded}/retry").as_str()),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"ada POST /v1/services/web/restart"),
        "{messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains("/cancel")),
        "{messages:?}"
    );

    // A user without the admin role: every page, the assets, the live stream and every
    // action are refused.
    let jar = p.dir().join("bob.jar");
    login(&gateway, "bob", &jar);
    let jar = jar.to_str().unwrap();
    for page in PAGES
        .iter()
        .chain(&["/assets/dashboard.js", "/live?view=/", "/v1/status"])
    {
        let (code, _) = curl(&[
            "-b",
            jar,
            "-o",
            "/dev/null",
            &format!("{gateway}/admin{page}"),
        ]);
        assert_eq!(code, "403", "bob GET {page}");
    }
    for action in [
        format!("/v1/jobs/{keep}/cancel"),
        "/v1/services/web/restart".to_owned(),
        "/v1/queues/tasks/pause".to_owned(),
    ] {
        let (code, _) = curl(&[
            "-b",
            jar,
            "-X",
            "POST",
            "-o",
            "/dev/null",
            &format!("{gateway}/admin{action}"),
        ]);
        assert_eq!(code, "403", "bob POST {action}");
    }
    // Without a session: a browser is sent to the login form.
    let (code, _) = curl(&[
        "-H",
        "accept: text/html",
        "-o",
        "/dev/null",
        &format!("{gateway}/admin/jobs"),
    ]);
    assert_eq!(code, "303");

    // The admin's session without the page's token: refused, nothing changed.
    let jar = p.dir().join("ada.jar");
    login(&gateway, "ada", &jar);
    let jar = jar.to_str().unwrap();
    // The jobs page finds a job by a text in its arguments and by when it was pushed.
    p.client()
        .post_json(
            "/v1/jobs",
            json!({"queue": "tasks", "kind": "invoice", "args": {"customer": "zed@example.com"}}),
        )
        .await
        .unwrap();
    let (code, found) = curl(&[
        "-b",
        jar,
        &format!("{gateway}/admin/jobs?args=zed%40example.com&since=1h"),
    ]);
    assert_eq!(code, "200");
    assert!(found.contains("<td>invoice</td>"), "{found}");
    assert!(
        !found.contains("data-view"),
        "a search is shown once, not live"
    );
    assert!(!found.contains("<td>send</td>") && !found.contains("<td>keep</td>"));
    let (_, none) = curl(&["-b", jar, &format!("{gateway}/admin/jobs?until=1h")]);
    assert!(
        !none.contains("<td>invoice</td>"),
        "nothing was pushed an hour ago"
    );
    let (code, body) = curl(&[
        "-b",
        jar,
        "-X",
        "POST",
        &format!("{gateway}/admin/v1/jobs/{keep}/cancel"),
    ]);
    assert_eq!(code, "403", "{body}");
    let (_, page) = curl(&["-b", jar, &format!("{gateway}/admin/jobs/{keep}")]);
    let token = page
        .split("name=\"berth-csrf\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page holds its CSRF token")
        .to_owned();
    let (code, body) = curl(&[
        "-b",
        jar,
        "-X",
        "POST",
        "-H",
        &format!("x-berth-csrf: {token}"),
        &format!("{gateway}/admin/v1/jobs/{keep}/cancel"),
    ]);
    assert_eq!(code, "200", "{body}");
    let kept = p
        .client()
        .get_json(&format!("/v1/jobs/{keep}"))
        .await
        .unwrap();
    assert_eq!(kept["state"], "cancelled");
    // A filtered jobs page offers the actions on all it shows, with the filter as body.
    let (code, page) = curl(&[
        "-b",
        jar,
        &format!("{gateway}/admin/jobs?queue=tasks&state=cancelled"),
    ]);
    assert_eq!(code, "200");
    assert!(
        page.contains(r#"data-path="/v1/jobs/actions" data-body="{&quot;action&quot;:&quot;retry&quot;,&quot;queue&quot;:&quot;tasks&quot;,&quot;state&quot;:&quot;cancelled&quot;}""#),
        "{page}"
    );
    // Maintenance mode from the dashboard: bob gets the 503 page, the admin does not.
    let (code, body) = curl(&[
        "-b",
        jar,
        "-X",
        "POST",
        "-H",
        &format!("x-berth-csrf: {token}"),
        "-d",
        r#"{"message": "moving racks"}"#,
        "-H",
        "content-type: application/json",
        &format!("{gateway}/admin/v1/maintenance"),
    ]);
    assert_eq!(code, "200", "{body}");
    let on = p.client().get_json("/v1/maintenance").await.unwrap();
    assert_eq!(on["setting"]["message"], "moving racks", "{on}");
    let bob = p.dir().join("bob.jar");
    berth_testkit::wait_until(
        "the gateway in maintenance",
        std::time::Duration::from_secs(10),
        || {
            let bob = bob.clone();
            let url = format!("{gateway}/admin/");
            async move {
                let (code, body) = curl(&["-b", bob.to_str().unwrap(), &url]);
                (code == "503" && body.contains("moving racks")).then_some(())
            }
        },
    )
    .await;
    let (code, _) = curl(&[
        "-b",
        jar,
        "-o",
        "/dev/null",
        &format!("{gateway}/admin/gateway"),
    ]);
    assert_eq!(code, "200", "the admin still sees the dashboard");
    let (code, body) = curl(&[
        "-b",
        jar,
        "-X",
        "DELETE",
        "-H",
        &format!("x-berth-csrf: {token}"),
        &format!("{gateway}/admin/v1/maintenance"),
    ]);
    assert_eq!(code, "200", "{body}");
    let off = p.client().get_json("/v1/maintenance").await.unwrap();
    assert_eq!(off["maintenance"], false, "{off}");
    // The live stream sends a page's main part at once.
    let (code, body) = curl(&[
        "-b",
        jar,
        "-N",
        "--max-time",
        "2",
        &format!("{gateway}/admin/live?view=/queues"),
    ]);
    assert!(code == "200" || code.is_empty() || code == "000", "{code}");
    assert!(
        body.contains("event: page") && body.contains("<table>"),
        "{body}"
    );
    // An open page does not hold up a graceful stop (20 s of grace here): its live stream
    // ends at once.
    let mut open = Command::new("curl")
        .args(["-s", "-N", "-b", jar, "-o", "/dev/null"])
        .arg(format!("{gateway}/admin/live?view=/"))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let stopping = std::time::Instant::now();
    stop(&mut child);
    assert!(
        stopping.elapsed() < std::time::Duration::from_secs(10),
        "the stop took {:?}",
        stopping.elapsed()
    );
    let ended = open.wait().unwrap();
    assert!(ended.success(), "the live stream ended cleanly: {ended}");
}
