//! The OpenAPI document at `/v1/openapi.json`, checked by real tools against a running
//! berth: `openapi-spec-validator` validates it as OpenAPI 3.1, and schemathesis
//! exercises every operation from it with generated requests (no 5xx, every answer's
//! status, content type and body as the document says). The CLI reads every answer as
//! its type: it has no untyped calls.

use std::path::Path;
use std::process::Command;

use berth_testkit::Project;
use serde_json::{Value, json};

use crate::{stop, up_with_env};

const TOKEN: &str = "token-of-the-openapi-test";

fn project(port: u16) -> Project {
    let (api, gateway, web) = (port, port + 1, port + 2);
    Project::new(&format!(
        "[app]\nname = \"spec\"\nshutdown_grace = \"5s\"\n\n\
         [api]\nlisten = \"127.0.0.1:{api}\"\n\n\
         [queue.tasks]\nhandler = \"pull\"\nmax_attempts = 2\n\n\
         [queue.runs]\nhandler = {{ run = \"true\" }}\n\n\
         [service.web]\ncommand = \"python3 -u -m http.server $PORT --bind 127.0.0.1\"\nport = {web}\n\n\
         [schedule.nightly]\ncron = \"0 3 * * *\"\njob = {{ queue = \"tasks\", kind = \"report\" }}\n\n\
         [workflow.publish.step.fetch]\nhandler = {{ run = \"true\" }}\n\n\
         [workflow.publish.step.render]\nparents = [\"fetch\"]\nhandler = {{ run = \"true\" }}\n\n\
         [budget.nlu]\nlimit = 10.0\nperiod = \"month\"\ncost_per_request = 0.5\n\n\
         [gateway]\nlisten = \"127.0.0.1:{gateway}\"\n\n\
         [[gateway.route]]\npath = \"/\"\nservice = \"web\"\nbudget = \"nlu\"\n"
    ))
}

/// Every kind of record in the store, so that the answers schemathesis checks hold
/// each type's fields filled in: jobs in several states with errors and results, a
/// batch with a failure, a workflow, a schedule run, an event.
async fn seed(p: &Project) {
    let c = p.client();
    for kind in ["a", "b", "c"] {
        c.post_json(
            "/v1/jobs",
            json!({"queue": "tasks", "kind": kind, "args": {"n": 1}, "tags": ["t"]}),
        )
        .await
        .unwrap();
    }
    let leased = c
        .post_json("/v1/queues/tasks/lease", json!({"worker": "w", "max": 2}))
        .await
        .unwrap();
    let jobs = leased["jobs"].as_array().unwrap();
    let (one, two) = (&jobs[0], &jobs[1]);
    c.post_json(
        &format!("/v1/jobs/{}/complete", one["id"]),
        json!({"attempt": one["attempt"], "result": {"ok": true}}),
    )
    .await
    .unwrap();
    c.post_json(
        &format!("/v1/jobs/{}/fail", two["id"]),
        json!({"attempt": two["attempt"], "error": "boom", "retry": false}),
    )
    .await
    .unwrap();
    c.post_json(
        "/v1/batches",
        json!({"queue": "tasks", "kind": "rows", "items": [1, 2, 3], "job_size": 2}),
    )
    .await
    .unwrap();
    c.post_json(
        "/v1/workflows",
        json!({"name": "publish", "args": {"doc": 1}}),
    )
    .await
    .unwrap();
    c.post_json("/v1/schedules/nightly/run", json!({}))
        .await
        .unwrap();
    c.post_json("/v1/jobs", json!({"queue": "runs", "kind": "go"}))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_validates_and_schemathesis_finds_nothing() {
    let check = Command::new("python3")
        .args(["-c", "import openapi_spec_validator, schemathesis"])
        .status();
    assert!(
        check.is_ok_and(|s| s.success()),
        "this test needs Python's openapi-spec-validator and schemathesis: pip install openapi-spec-validator schemathesis (.ci/run does)"
    );
    let port = berth_testkit::free_port_run(3);
    let p = project(port);
    let mut child = up_with_env(p.dir(), &[("BERTH_API_TOKEN", TOKEN)]).await;
    seed(&p).await;
    // The document served is the one generated from the code.
    let served: Value = p.client().get_json("/v1/openapi.json").await.unwrap();
    assert_eq!(&served, berth_api::openapi());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/openapi_check.py");
    let reports = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    std::fs::create_dir_all(&reports).unwrap();
    let out = Command::new("python3")
        // schemathesis keeps a cache in its working directory: under target/, not the tree.
        .current_dir(&reports)
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(TOKEN)
        .arg(&reports)
        .output()
        .expect("python3 runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the OpenAPI check failed:\n{stdout}\n{stderr}\nberth: {}",
        std::fs::read_to_string(p.dir().join("berth-up.log")).unwrap_or_default()
    );
    eprintln!("{stdout}");
    // No request made berth fail inside.
    let log = std::fs::read_to_string(p.dir().join("berth-up.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
    stop(&mut child);
}

/// The CLI reads every answer as its type: the untyped calls are for tests and scripts.
#[test]
fn the_cli_makes_no_untyped_call() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![
        dir.join("main.rs"),
        dir.join("exit.rs"),
        dir.join("output.rs"),
    ];
    for e in std::fs::read_dir(dir.join("commands")).unwrap() {
        files.push(e.unwrap().path());
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            for untyped in ["get_json(", "post_json(", "delete_json(", ".call(", ".raw("] {
                assert!(
                    !line.contains(untyped),
                    "{}:{}: `{untyped}` reads an answer untyped; use the client's typed get/post/delete with a type of berth_api::types",
                    f.display(),
                    i + 1
                );
            }
        }
    }
}
