//! `[service.NAME]` under `berth up`: started in dependency order, shown by `berth ps`,
//! refused with a clear error when an env file is missing or a port is taken.

use std::time::Duration;

use berth_testkit::{Project, wait_until};

use crate::{parts, run_expecting_exit, run_in, up};

fn project(services: &str) -> Project {
    Project::new(&format!(
        "[app]\nname = \"svc\"\nshutdown_grace = \"2s\"\n\n{services}\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_run_under_berth_up_and_show_in_ps() {
    let port = berth_testkit::free_port_run(2);
    let p = project(&format!(
        "[service.db]\ncommand = \"exec sleep 60\"\n\n[service.web]\ncommand = \"echo listening on $PORT; exec sleep 60\"\nport = {port}\ninstances = 2\ndepends_on = [\"db\"]\nstop_grace = \"1s\"\n",
    ));
    let (p0, p1) = (port.to_string(), (port + 1).to_string());
    let mut child = up(p.dir()).await;
    let c = p.client();
    let v = wait_until("three running instances", Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            let v = c.get("/v1/services").await.ok()?;
            let running = v["services"]
                .as_array()?
                .iter()
                .filter(|s| s["state"] == "running")
                .count();
            (running == 3).then_some(v)
        }
    })
    .await;
    let ports: Vec<_> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["service"] == "web")
        .map(|s| s["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, vec![u64::from(port), u64::from(port) + 1]);
    let (code, out, err) = parts(&run_in(p.dir(), &["ps"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SERVICE"), "{out}");
    assert!(
        out.contains("web") && out.contains(&p1) && out.contains("running"),
        "{out}"
    );
    assert!(out.contains("MiB"), "memory shown: {out}");
    // The log file holds the instance's output.
    let log = wait_until("the web log", Duration::from_secs(5), || async {
        std::fs::read_to_string(p.data_dir().join("logs").join("web.0.log"))
            .ok()
            .filter(|l| l.contains(&format!("listening on {p0}")))
    })
    .await;
    assert!(log.contains(&format!(" out listening on {p0}")), "{log}");
    // berth logs: both instances, interleaved by time and marked; one instance; since.
    let (code, out, err) = parts(&run_in(p.dir(), &["logs", "web"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[0] ") && out.contains(&format!("out listening on {p0}")),
        "{out}"
    );
    assert!(
        out.contains("[1] ") && out.contains(&format!("out listening on {p1}")),
        "{out}"
    );
    let (_, out, _) = parts(&run_in(p.dir(), &["logs", "web", "--instance", "1"]));
    assert!(
        out.contains(&format!("listening on {p1}")) && !out.contains(&format!("listening on {p0}")),
        "{out}"
    );
    let (_, out, _) = parts(&run_in(
        p.dir(),
        &["logs", "web", "--since", "1h", "-n", "1"],
    ));
    assert_eq!(out.lines().count(), 1, "{out}");
    let (code, _, err) = parts(&run_in(p.dir(), &["logs", "wbe"]));
    assert_eq!(code, 6);
    assert!(err.contains("the services are: db, web"), "{err}");
    let (code, _, err) = parts(&run_in(p.dir(), &["logs", "web", "--instance", "5"]));
    assert_eq!(code, 6);
    assert!(err.contains("has 2 instance(s)"), "{err}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_missing_env_file_and_a_taken_port_are_refused_before_anything_starts() {
    let p = project("[service.api]\ncommand = \"exec sleep 60\"\nenv_file = \"secrets.env\"\n");
    let (code, _, err) = parts(&run_expecting_exit(
        p.dir(),
        &["up"],
        Duration::from_secs(30),
    ));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("service `api`: cannot read its env_file"),
        "{err}"
    );
    assert!(err.contains("secrets.env"), "{err}");

    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let p = project(&format!(
        "[service.api]\ncommand = \"exec sleep 60\"\nport = {port}\n"
    ));
    let (code, _, err) = parts(&run_expecting_exit(
        p.dir(),
        &["up"],
        Duration::from_secs(30),
    ));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("port {port} (instance 0) is already taken")),
        "{err}"
    );
}

#[test]
fn a_dependency_cycle_is_a_config_error() {
    let p = project(
        "[service.a]\ncommand = \"true\"\ndepends_on = [\"b\"]\n\n[service.b]\ncommand = \"true\"\ndepends_on = [\"a\"]\n",
    );
    let (code, _, err) = parts(&run_in(p.dir(), &["check"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("a → b → a"), "{err}");
}
