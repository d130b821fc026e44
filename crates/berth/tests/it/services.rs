//! `[service.NAME]` under `berth up`: started in dependency order, shown by `berth ps`,
//! refused with a clear error when an env file is missing or a port is taken.

use std::time::Duration;

use berth_testkit::{Project, wait_until};

use crate::{parts, run_expecting_exit, run_in, stop, up};

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
            let v = c.get_json("/v1/services").await.ok()?;
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
    stop(&mut child);
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

/// The `(service, instance, pid, state)` of every instance, from the API.
async fn instances(c: &berth_api::client::Client) -> Vec<(String, u64, Option<u64>, String)> {
    let v = c.get_json("/v1/services").await.unwrap();
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_owned(),
                s["instance"].as_u64().unwrap(),
                s["pid"].as_u64(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn all_running(c: &berth_api::client::Client, count: usize) {
    let c = c.clone();
    wait_until("every instance running", Duration::from_secs(15), || {
        let c = c.clone();
        async move {
            let now = instances(&c).await;
            (now.len() == count && now.iter().all(|i| i.3 == "running")).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_start_restart_signal_and_the_recorded_events() {
    let p = project(
        "[service.api]\ncommand = \"trap 'echo got HUP' HUP; while true; do sleep 0.05; done\"\n\
         instances = 2\nready = { command = \"true\" }\nstop_grace = \"2s\"\n",
    );
    let mut child = up(p.dir()).await;
    let c = p.client();
    all_running(&c, 2).await;
    let before = instances(&c).await;

    let (code, out, err) = parts(&run_in(p.dir(), &["signal", "api", "hup"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("sent SIGHUP to every running instance of api"),
        "{out}"
    );
    wait_until("the HUP in the log", Duration::from_secs(5), || async {
        std::fs::read_to_string(p.data_dir().join("logs/api.1.log"))
            .ok()
            .filter(|l| l.contains("got HUP"))
    })
    .await;

    let (code, out, err) = parts(&run_in(p.dir(), &["restart", "api"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("restarting api, one instance at a time"),
        "{err}"
    );
    assert!(out.contains("running"), "{out}");
    let after = instances(&c).await;
    assert!(after.iter().all(|i| i.3 == "running"));
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old.2, new.2, "instance {} got a new process", old.1);
    }

    let (code, out, err) = parts(&run_in(p.dir(), &["stop", "api"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("stopped"), "{out}");
    assert!(
        instances(&c)
            .await
            .iter()
            .all(|i| i.3 == "stopped" && i.2.is_none())
    );
    let (code, _, err) = parts(&run_in(p.dir(), &["start", "api"]));
    assert_eq!(code, 0, "{err}");
    all_running(&c, 2).await;

    // Bad input: an unknown service, an unknown signal.
    let (code, _, err) = parts(&run_in(p.dir(), &["restart", "apj"]));
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no service named `apj`; the services are: api"),
        "{err}"
    );
    let (code, _, err) = parts(&run_in(p.dir(), &["signal", "api", "SIGFOO"]));
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("unknown signal \"SIGFOO\"; expected one of HUP, INT"),
        "{err}"
    );

    // Every step is in the store, oldest first in `berth events`. The recorder writes
    // after the fact, so the last stops may take a moment to show.
    let kinds = [
        "api[0] started:",
        "api[1] ready:",
        "api[0] stopped:",
        "api[1] stopped:",
    ];
    let dir = p.dir().to_path_buf();
    let out = wait_until("every event recorded", Duration::from_secs(10), || {
        let dir = dir.clone();
        async move {
            let (code, out, _) = parts(&run_in(&dir, &["events", "api", "-n", "200"]));
            (code == 0 && kinds.iter().all(|k| out.contains(k))).then_some(out)
        }
    })
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("started"), "oldest first: {out}");
    let v = c
        .get_json("/v1/events?kind=stopped&subject=api")
        .await
        .unwrap();
    let stopped = v["events"].as_array().unwrap();
    // Two by the rolling restart, two by `berth stop`.
    assert_eq!(stopped.len(), 4, "{v}");
    assert!(
        stopped
            .iter()
            .all(|e| e["source"] == "service" && e["node"].is_string())
    );

    stop(&mut child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_restarts_only_what_changed() {
    let services = |api_command: &str, extra: &str| {
        format!(
            "[app]\nname = \"svc\"\nshutdown_grace = \"2s\"\n\n\
             [service.db]\ncommand = \"exec sleep 60\"\n\n\
             [service.api]\ncommand = \"{api_command}\"\ndepends_on = [\"db\"]\n\n\
             [service.old]\ncommand = \"exec sleep 60\"\n{extra}"
        )
    };
    let p = Project::new(&services("exec sleep 60", ""));
    let mut child = up(p.dir()).await;
    let c = p.client();
    all_running(&c, 3).await;
    let pid = |list: &[(String, u64, Option<u64>, String)], name: &str| {
        list.iter().find(|i| i.0 == name).and_then(|i| i.2)
    };
    let before = instances(&c).await;

    // api changes, old goes, new comes, db stays as it is.
    let text = services("exec sleep 61", "").replace(
        "[service.old]\ncommand = \"exec sleep 60\"\n",
        "[service.new]\ncommand = \"exec sleep 60\"\n",
    );
    std::fs::write(p.dir().join("berth.toml"), text).unwrap();
    let (code, out, err) = parts(&run_in(p.dir(), &["reload"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("services started:   new"), "{out}");
    assert!(out.contains("services restarted: api"), "{out}");
    assert!(out.contains("services stopped:   old"), "{out}");
    assert!(out.contains("services unchanged: db"), "{out}");
    all_running(&c, 3).await;
    let after = instances(&c).await;
    assert_eq!(pid(&before, "db"), pid(&after, "db"), "db was left alone");
    assert_ne!(pid(&before, "api"), pid(&after, "api"));
    assert!(after.iter().all(|i| i.0 != "old"));

    // A broken config changes nothing and says why, with exit code 3.
    std::fs::write(
        p.dir().join("berth.toml"),
        services("exec sleep 62", "instances = 0\n"),
    )
    .unwrap();
    let (code, _, err) = parts(&run_in(p.dir(), &["reload"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("instances"), "{err}");
    assert_eq!(instances(&c).await, after);

    // SIGHUP does the same as `berth reload`; a new queue runs at once.
    std::fs::write(
        p.dir().join("berth.toml"),
        services("exec sleep 63", "").replace("[service.old]", "[queue.mail]\n\n[service.old]"),
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let c2 = c.clone();
    wait_until("the SIGHUP reload", Duration::from_secs(15), || {
        let c = c2.clone();
        async move {
            let now = instances(&c).await;
            (now.iter().any(|i| i.0 == "old" && i.3 == "running")).then_some(())
        }
    })
    .await;
    let log = std::fs::read_to_string(p.dir().join("berth-up.log")).unwrap();
    assert!(log.contains("SIGHUP received: reloading"), "{log}");
    let queues = c.get_json("/v1/queues").await.unwrap();
    assert!(
        queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "mail" && q["configured"] == true),
        "{queues}"
    );

    stop(&mut child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_runs_as_its_user_when_berth_is_root() {
    let p = project("[service.who]\ncommand = \"id -un; exec sleep 60\"\nuser = \"nobody\"\n");
    if !nix::unistd::Uid::current().is_root() {
        // As another user, berth refuses to switch, clearly.
        let (code, _, err) = parts(&run_expecting_exit(
            p.dir(),
            &["up"],
            Duration::from_secs(30),
        ));
        assert_eq!(code, 1);
        assert!(err.contains("needs berth to run as root"), "{err}");
        return;
    }
    let mut child = up(p.dir()).await;
    let log = wait_until("the service's output", Duration::from_secs(10), || async {
        std::fs::read_to_string(p.data_dir().join("logs/who.0.log"))
            .ok()
            .filter(|l| l.contains(" out "))
    })
    .await;
    assert!(log.contains(" out nobody"), "{log}");
    stop(&mut child);

    let p = project("[service.who]\ncommand = \"true\"\nuser = \"no-such-user-here\"\n");
    let (code, _, err) = parts(&run_expecting_exit(
        p.dir(),
        &["up"],
        Duration::from_secs(30),
    ));
    assert_eq!(code, 1);
    assert!(err.contains("no user named `no-such-user-here`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_of_berth_no_service_process_survives() {
    // The shell leads the instance's group; its child `sleep` is a grandchild of berth.
    let p = project(
        "[service.web]\ncommand = \"sleep 300 & echo $! > grandchild.pid; echo $$ > leader.pid; wait\"\n",
    );
    let mut child = up(p.dir()).await;
    let read = |name: &'static str| {
        let path = p.dir().join(name);
        async move {
            std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
        }
    };
    let leader = wait_until("the leader's pid", Duration::from_secs(10), || {
        read("leader.pid")
    })
    .await;
    let grandchild = wait_until("the grandchild's pid", Duration::from_secs(10), || {
        read("grandchild.pid")
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                let state = s.rsplit(')').next().unwrap_or("").trim_start().to_owned();
                state.starts_with('Z') || state.starts_with('X')
            })
            .unwrap_or(true)
    };
    wait_until(
        "every service process gone",
        Duration::from_secs(10),
        || async { (gone(leader) && gone(grandchild)).then_some(()) },
    )
    .await;
}

/// `berth ps` shows an instance's whole process tree: a `sh -c` that started two workers
/// holding 40 MiB each counts three processes and their memory, not the shell's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps_counts_the_instances_whole_process_tree() {
    let hold = "python3 -c 'import time; x = bytearray(40 << 20); x[::4096] = bytes(len(x[::4096])); time.sleep(60)'";
    let p = project(&format!(
        "[service.work]\ncommand = \"\"\"{hold} & {hold} & wait\"\"\"\nstop_grace = \"1s\"\n"
    ));
    let mut child = up(p.dir()).await;
    let c = p.client();
    let v = wait_until(
        "three processes holding their memory",
        Duration::from_secs(20),
        || {
            let c = c.clone();
            async move {
                let v = c.get_json("/v1/services").await.ok()?;
                let s = v["services"][0].clone();
                // The workers touch their 40 MiB while this polls: wait until they hold it.
                let holds = |k: &str| s[k].as_u64().is_some_and(|b| b > 70 << 20);
                (s["processes"] == 3 && holds("rss_bytes") && holds("pss_bytes")).then_some(s)
            }
        },
    )
    .await;
    // Each worker's 40 MiB are its own; the shell alone holds about 1 MiB.
    assert!(v["pss_bytes"].as_u64().unwrap() < 200 << 20, "{v}");
    let (code, out, err) = parts(&run_in(p.dir(), &["ps"]));
    assert_eq!(code, 0, "{err}");
    let row = out.lines().find(|l| l.starts_with("work")).unwrap();
    let mib: f64 = row
        .split("MiB")
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("a MEMORY cell in {row}"));
    assert!(mib > 70.0, "{out}");
    assert!(out.contains("PROCS"), "{out}");
    stop(&mut child);
}
