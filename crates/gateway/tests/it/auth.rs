//! Auth: the login flow and a role-protected route driven by curl with a cookie jar over
//! TLS, API tokens, and lockout after failed logins — with users in a real store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_gateway::auth::{hash_password, new_token};
use berth_gateway::{AuthMethod, Gateway, LoginSpec, RouteAuth, TlsSpec, Upstream};
use berth_store::{Lockout, NewToken, SqliteStore, Store, Timestamp, TokenRecord};
use serde_json::Value;

use crate::proxy::upstream;
use crate::{FixedBackends, curl, curl_head, proxy_route, spec, with_tls};

struct Site {
    gateway: Gateway,
    base: String,
    ca: String,
    store: Arc<dyn Store>,
    _tmp: tempfile::TempDir,
}

async fn site(lockout_after: u32) -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&tmp.path().join("berth.db"), Default::default()).unwrap());
    let now = Timestamp::now();
    store
        .user_create(
            "alice",
            &hash_password("alice-secret").unwrap(),
            vec![],
            now,
        )
        .await
        .unwrap();
    store
        .user_create(
            "bob",
            &hash_password("bob-secret!").unwrap(),
            vec!["admin".into()],
            now,
        )
        .await
        .unwrap();
    let up = upstream(0).await;
    let fixed = || Upstream::Fixed(up.addr.to_string());
    let guarded = |path: &str, method: AuthMethod, roles: &[&str]| {
        let mut r = proxy_route(path, fixed(), false);
        r.auth = Some(RouteAuth {
            method,
            roles: roles.iter().map(|s| s.to_string()).collect(),
        });
        r
    };
    let routes = vec![
        guarded("/app", AuthMethod::Login, &[]),
        guarded("/admin", AuthMethod::Login, &["admin", "ops"]),
        guarded("/api", AuthMethod::Token, &[]),
        proxy_route("/public", fixed(), false),
    ];
    let mut spec = with_tls(spec(routes, &tmp.path().join("tls")), TlsSpec::SelfSigned);
    spec.login = LoginSpec {
        session_ttl: Duration::from_secs(3600),
        lockout: Lockout {
            after: lockout_after,
            lasts: Duration::from_secs(900),
        },
    };
    let gateway = Gateway::start(
        spec,
        Arc::new(FixedBackends::default()),
        Some(store.clone()),
    )
    .await
    .expect("gateway starts");
    let base = format!("https://localhost:{}", gateway.local_addrs()[0].port());
    let ca = tmp
        .path()
        .join("tls/self-signed.crt")
        .to_str()
        .unwrap()
        .to_owned();
    // The upstream lives as long as the test's runtime.
    std::mem::forget(up);
    Site {
        gateway,
        base,
        ca,
        store,
        _tmp: tmp,
    }
}

/// The headers the upstream saw, from its JSON answer.
fn seen(body: &str) -> Value {
    serde_json::from_str::<Value>(body)
        .unwrap_or_else(|_| panic!("not the upstream's JSON: {body}"))["headers"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flow_with_cookies_and_a_role_protected_route() {
    let s = site(5).await;
    let jar = s._tmp.path().join("cookies.txt");
    let jar = jar.to_str().unwrap();
    let ca = s.ca.as_str();
    let url = |p: &str| format!("{}{p}", s.base);

    // A browser is sent to the login form, remembering where it was going; an API client
    // gets a 401 it can read.
    let head = curl_head(&[
        "--cacert",
        ca,
        "-H",
        "Accept: text/html",
        &url("/app/x?y=1"),
    ])
    .await;
    assert!(head.starts_with("http/2 303"), "{head}");
    assert!(
        head.contains("location: /_berth/login?next=/app/x%3fy%3d1"),
        "{head}"
    );
    let (code, body) = curl(&["--cacert", ca, &url("/app/x")]).await;
    assert_eq!(code, "401", "{body}");
    assert!(body.contains("login_required"), "{body}");
    let (code, form) = curl(&["--cacert", ca, &url("/_berth/login?next=/app/x")]).await;
    assert_eq!(code, "200");
    assert!(
        form.contains("name=\"password\"") && form.contains("value=\"/app/x\""),
        "{form}"
    );

    // A wrong password is refused, after a pause.
    let started = Instant::now();
    let (code, body) = curl(&[
        "--cacert",
        ca,
        "-c",
        jar,
        "--data-urlencode",
        "user=alice",
        "--data-urlencode",
        "password=wrong",
        "--data-urlencode",
        "next=/app/x",
        &url("/_berth/login"),
    ])
    .await;
    assert_eq!(code, "401", "{body}");
    assert!(body.contains("Wrong name or password."), "{body}");
    assert!(started.elapsed() >= Duration::from_millis(250));

    // The right one sets a Secure, HttpOnly, SameSite cookie and goes back to /app/x.
    let head = curl_head(&[
        "--cacert",
        ca,
        "-c",
        jar,
        "--data-urlencode",
        "user=alice",
        "--data-urlencode",
        "password=alice-secret",
        "--data-urlencode",
        "next=/app/x",
        &url("/_berth/login"),
    ])
    .await;
    assert!(head.starts_with("http/2 303"), "{head}");
    assert!(head.contains("location: /app/x"), "{head}");
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie: berth_session="))
        .expect("a cookie");
    for part in [
        "httponly",
        "secure",
        "samesite=lax",
        "path=/",
        "max-age=3600",
    ] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }

    // With the cookie, the service gets the request and berth's word on who it is; the
    // client's own X-Berth-User is not passed on.
    let (code, body) = curl(&[
        "--cacert",
        ca,
        "-b",
        jar,
        "-H",
        "X-Berth-User: bob",
        "-H",
        "X-Berth-Roles: admin",
        &url("/app/x"),
    ])
    .await;
    assert_eq!(code, "200", "{body}");
    let h = seen(&body);
    assert_eq!(h["x-berth-user"], "alice");
    assert!(
        h.get("cookie")
            .is_none_or(|c| !c.as_str().unwrap_or("").contains("berth_session")),
        "berth's session cookie reached the service: {h}"
    );
    assert_eq!(h["x-berth-roles"], "");
    assert_eq!(h["x-berth-auth"], "login");
    // alice lacks the admin role.
    let (code, body) = curl(&["--cacert", ca, "-b", jar, &url("/admin/panel")]).await;
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("one of admin, ops"), "{body}");

    // bob has it.
    let bob_jar = s._tmp.path().join("bob.txt");
    let bob_jar = bob_jar.to_str().unwrap();
    curl(&[
        "--cacert",
        ca,
        "-c",
        bob_jar,
        "--data-urlencode",
        "user=bob",
        "--data-urlencode",
        "password=bob-secret!",
        &url("/_berth/login"),
    ])
    .await;
    let (code, body) = curl(&["--cacert", ca, "-b", bob_jar, &url("/admin/panel")]).await;
    assert_eq!(code, "200", "{body}");
    assert_eq!(seen(&body)["x-berth-roles"], "admin");

    // Logging out ends the session at once, even for a client that kept the cookie.
    let saved = std::fs::read_to_string(jar).unwrap();
    let head = curl_head(&[
        "--cacert",
        ca,
        "-b",
        jar,
        "-c",
        jar,
        "-X",
        "POST",
        &url("/_berth/logout"),
    ])
    .await;
    assert!(head.starts_with("http/2 303"), "{head}");
    assert!(head.contains("max-age=0"), "{head}");
    let kept = s._tmp.path().join("kept.txt");
    std::fs::write(&kept, saved).unwrap();
    let (code, _) = curl(&["--cacert", ca, "-b", kept.to_str().unwrap(), &url("/app/x")]).await;
    assert_eq!(code, "401");
    // Routes without auth need nothing, and a forged identity in any spelling is dropped.
    let (code, body) = curl(&[
        "--cacert",
        ca,
        "-H",
        "x_berth_user: root",
        "-H",
        "X-Berth-Roles: admin",
        &url("/public/x"),
    ])
    .await;
    assert_eq!(code, "200");
    let h = seen(&body);
    assert!(
        h.get("x_berth_user").is_none() && h.get("x-berth-roles").is_none(),
        "{h}"
    );
    // Other spellings of a guarded path are refused, never served without a login.
    for sneaky in [
        "//app/x",
        "/./app/x",
        "/%61pp/x",
        "/public/../app/x",
        "/app%2fx",
    ] {
        let (code, body) = curl(&["--cacert", ca, "--path-as-is", &url(sneaky)]).await;
        assert!(code == "400" || code == "401", "{sneaky} → {code} {body}");
    }
    // The login page never sends anyone off the site.
    let head = curl_head(&[
        "--cacert",
        ca,
        "--data-urlencode",
        "user=bob",
        "--data-urlencode",
        "password=bob-secret!",
        "--data-urlencode",
        "next=//evil.example/",
        &url("/_berth/login"),
    ])
    .await;
    assert!(head.contains("location: /\r\n"), "{head}");
    s.gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_act_as_their_user_until_revoked() {
    let s = site(5).await;
    let ca = s.ca.as_str();
    let url = format!("{}/api/items", s.base);
    let (id, secret, hash) = new_token().unwrap();
    s.store
        .token_create(NewToken {
            token: TokenRecord {
                id: id.clone(),
                user: "bob".into(),
                label: "ci".into(),
                created_at: Timestamp::now(),
                expires_at: None,
                scopes: Vec::new(),
            },
            hash,
        })
        .await
        .unwrap();
    let bearer = format!("Authorization: Bearer {secret}");
    let (code, body) = curl(&["--cacert", ca, "-H", &bearer, &url]).await;
    assert_eq!(code, "200", "{body}");
    let h = seen(&body);
    assert_eq!(
        (h["x-berth-user"].as_str(), h["x-berth-auth"].as_str()),
        (Some("bob"), Some("token"))
    );
    assert!(
        h.get("authorization").is_none(),
        "berth's token reached the service: {h}"
    );

    let head = curl_head(&[
        "--cacert",
        ca,
        "-H",
        "Authorization: Bearer berth_wrong",
        &url,
    ])
    .await;
    assert!(head.starts_with("http/2 401"), "{head}");
    assert!(
        head.contains("www-authenticate: bearer realm=\"berth\""),
        "{head}"
    );
    // A session cookie does not open a token route.
    assert_eq!(
        curl(&["--cacert", ca, "-b", "berth_session=abc", &url])
            .await
            .0,
        "401"
    );

    s.store.token_revoke(&id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&["--cacert", ca, "-H", &bearer, &url]).await.0 != "401" {
        assert!(Instant::now() < deadline, "a revoked token still works");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_lock_the_user_out() {
    let s = site(3).await;
    let ca = s.ca.as_str();
    let login = format!("{}/_berth/login", s.base);
    let attempt = |password: &'static str| {
        let (ca, login) = (ca.to_owned(), login.clone());
        async move {
            curl(&[
                "--cacert",
                &ca,
                "--data-urlencode",
                "user=alice",
                "--data-urlencode",
                &format!("password={password}"),
                &login,
            ])
            .await
        }
    };
    let started = Instant::now();
    assert_eq!(attempt("nope-1").await.0, "401");
    assert_eq!(attempt("nope-2").await.0, "401");
    let (code, body) = attempt("nope-3").await;
    assert_eq!(code, "401");
    assert!(body.contains("locked for 15 minutes"), "{body}");
    // Each failure waited longer: 250 + 500 + 1000 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(1750),
        "{:?}",
        started.elapsed()
    );
    // Now even the right password is refused, and says for how long.
    let (code, body) = attempt("alice-secret").await;
    assert_eq!(code, "429", "{body}");
    assert!(body.contains("try again in 15 minutes"), "{body}");
    let alice = s.store.user("alice").await.unwrap().unwrap();
    assert!(alice.locked_until.is_some());
    // A new password (berth user passwd) lifts the lock.
    s.store
        .user_update(
            "alice",
            Some(hash_password("fresh-secret").unwrap()),
            None,
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(attempt("fresh-secret").await.0, "303");
    s.gateway.stop(Duration::from_secs(1)).await;
}

/// A name that is no user gets the same answers as one that is, failure after failure:
/// the same "now locked" and the same 429 after, so that nothing tells which names
/// exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_answered_and_locked_like_users() {
    let s = site(2).await;
    let login = format!("{}/_berth/login", s.base);
    let mut answers = Vec::new();
    for user in ["alice", "nobody"] {
        let mut seen = Vec::new();
        for password in ["nope-1", "nope-2", "nope-3"] {
            seen.push(
                curl(&[
                    "--cacert",
                    &s.ca,
                    "--data-urlencode",
                    &format!("user={user}"),
                    "--data-urlencode",
                    &format!("password={password}"),
                    &login,
                ])
                .await,
            );
        }
        answers.push(seen);
    }
    let codes: Vec<&str> = answers[0].iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(codes, ["401", "401", "429"], "{:#?}", answers[0]);
    assert!(
        answers[0][1].1.contains("now locked"),
        "{}",
        answers[0][1].1
    );
    assert_eq!(answers[0], answers[1], "a user and a name that is none");
    s.gateway.stop(Duration::from_secs(1)).await;
}
