//! No secret berth is given or shown ever lands in what it writes: its log (at debug),
//! the access log, the store's file, its events. The run below uses every secret a user
//! hands berth (a user's password, the API token, a device password, an API token made by
//! `berth token create`) rightly and wrongly, through the login form, the TCP API, the
//! embedded MQTT broker and the gateway, then reads back every byte berth wrote.

use std::path::Path;
use std::process::{Command, Stdio};

use berth_testkit::free_port_run;

use crate::{parts, run_in, run_with_input, stop, up_with_env};

const USER_PASSWORD: &str = "alice-pw-Q7xKz91";
const WRONG_PASSWORD: &str = "wrong-pw-M3vLp44";
const API_TOKEN: &str = "api-token-H8sWd27";
const WRONG_TOKEN: &str = "bad-token-R5nJc63";
const DEVICE_PASSWORD: &str = "device-pw-T2gYb85";
const WRONG_DEVICE_PASSWORD: &str = "device-bad-F9kQe12";

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mqtt_pub(port: u16, user: &str, password: &str) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-u", user, "-P", password, "-t", "stand01/in", "-m", "{}"])
        .args(["-q", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto_pub runs")
        .status
        .success()
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_written_anywhere() {
    let port = free_port_run(3);
    let (api, gateway, mqtt) = (port, port + 1, port + 2);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("site")).unwrap();
    std::fs::write(d.join("site/index.html"), "inside").unwrap();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            "[app]\nname = \"secrets\"\nshutdown_grace = \"2s\"\n\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\ntoken_env = \"THE_API_TOKEN\"\n\n\
             [queue.stands]\nhandler = \"pull\"\n\n\
             [gateway]\nlisten = \"127.0.0.1:{gateway}\"\n\n\
             [[gateway.route]]\npath = \"/\"\nstatic = \"site\"\nauth = \"login\"\n\n\
             [[gateway.route]]\npath = \"/t\"\nstatic = \"site\"\nauth = \"token\"\n\n\
             [ingest.stands]\nmqtt = {{ listen = \"127.0.0.1:{mqtt}\" }}\ntopics = [\"+/in\"]\n\
             job = {{ queue = \"stands\" }}\ncredentials = {{ stand01 = \"STAND_PASSWORD\" }}\n"
        ),
    )
    .unwrap();
    let added = run_with_input(
        d,
        &["user", "add", "alice", "--password-stdin"],
        &format!("{USER_PASSWORD}\n"),
    );
    assert_eq!(parts(&added).0, 0, "{:?}", parts(&added));
    let (code, made, err) = parts(&run_in(d, &["token", "create", "alice"]));
    assert_eq!(code, 0, "{err}");
    let made_token = made
        .split_whitespace()
        .find(|w| w.starts_with("berth_"))
        .unwrap_or_else(|| panic!("no token in: {made}"))
        .to_owned();
    let mut daemon = up_with_env(
        d,
        &[
            ("THE_API_TOKEN", API_TOKEN),
            ("STAND_PASSWORD", DEVICE_PASSWORD),
            ("BERTH_LOG", "debug"),
        ],
    )
    .await;

    let base = format!("http://127.0.0.1:{gateway}");
    let login = format!("{base}/_berth/login");
    for password in [WRONG_PASSWORD, USER_PASSWORD] {
        let form = format!("password={password}");
        let code = curl(&[
            "--data-urlencode",
            "user=alice",
            "--data-urlencode",
            &form,
            &login,
        ]);
        assert!(code == "401" || code == "303", "{code}");
    }
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let api_url = format!("http://127.0.0.1:{api}/v1/status");
    assert_eq!(curl(&["-H", &bearer(API_TOKEN), &api_url]), "200");
    assert_eq!(curl(&["-H", &bearer(WRONG_TOKEN), &api_url]), "401");
    assert_eq!(
        curl(&["-H", &bearer(&made_token), &format!("{base}/t/")]),
        "200"
    );
    assert!(mqtt_pub(mqtt, "stand01", DEVICE_PASSWORD));
    assert!(!mqtt_pub(mqtt, "stand01", WRONG_DEVICE_PASSWORD));
    assert!(!mqtt_pub(mqtt, "alice", WRONG_DEVICE_PASSWORD));
    let (_, events, _) = parts(&run_in(
        d,
        &["events", "--source", "all", "-n", "10000", "--json"],
    ));
    stop(&mut daemon);

    let mut written = Vec::new();
    files(&d.join(".berth"), &mut written);
    written.push((
        "berth up's output".into(),
        std::fs::read(d.join("berth-up.log")).unwrap(),
    ));
    written.push(("berth events".into(), events.into_bytes()));
    assert!(
        written.iter().any(|(name, _)| name.ends_with("access.log")),
        "the access log was written"
    );
    let log = std::fs::read_to_string(d.join("berth-up.log")).unwrap();
    assert!(log.contains("DEBUG"), "berth logged at debug: {log}");
    let secrets = [
        USER_PASSWORD,
        WRONG_PASSWORD,
        API_TOKEN,
        WRONG_TOKEN,
        DEVICE_PASSWORD,
        WRONG_DEVICE_PASSWORD,
        made_token.as_str(),
    ];
    for (name, bytes) in &written {
        for secret in secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{name} holds the secret {secret}");
        }
    }
}
