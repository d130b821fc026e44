//! Static directories: index files, SPA fallback, caching headers, ranges, precompressed
//! siblings, and no way out of the directory.

use std::sync::Arc;

use crate::{FixedBackends, curl, curl_head, spec, start, static_route};

/// site/ with index.html, app.js (+ .gz and .br), docs/index.html, big.bin (3 MiB),
/// .env; and beside it, outside the root, secret.txt with a symlink to it inside.
fn site() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("site");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::write(root.join("app.js"), "console.log('plain')").unwrap();
    std::fs::write(root.join("app.js.gz"), "GZIPPED").unwrap();
    std::fs::write(root.join("app.js.br"), "BROTLI").unwrap();
    std::fs::write(root.join(".env"), "SECRET=1").unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(tmp.path(), root.join("up")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), "SECRET=git").unwrap();
    std::os::unix::fs::symlink(root.join(".git/config"), root.join("gitconfig")).unwrap();
    tmp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_files_spa_fallback_and_directory_redirects() {
    let tmp = site();
    let root = tmp.path().join("site");
    let routes = vec![
        static_route("/", &root, true),
        static_route("/plain", &root, false),
    ];
    let (gateway, base) = start(spec(routes, tmp.path()), Arc::new(FixedBackends::default())).await;

    assert_eq!(
        curl(&[&format!("{base}/")]).await,
        ("200".into(), "<h1>home</h1>".into())
    );
    assert_eq!(curl(&[&format!("{base}/docs/")]).await.1, "<h1>docs</h1>");
    let head = curl_head(&[&format!("{base}/docs?x=1")]).await;
    assert!(head.starts_with("http/1.1 301"), "{head}");
    assert!(head.contains("location: /docs/?x=1"), "{head}");
    // The SPA route answers unknown paths with its index; the plain one with 404.
    assert_eq!(
        curl(&[&format!("{base}/app/settings/42")]).await,
        ("200".into(), "<h1>home</h1>".into())
    );
    let (code, body) = curl(&[&format!("{base}/plain/nothing-here")]).await;
    assert_eq!(code, "404");
    assert!(body.contains("not_found"), "{body}");
    // Under a prefix, the prefix is stripped before the lookup.
    assert_eq!(
        curl(&[&format!("{base}/plain/docs/")]).await.1,
        "<h1>docs</h1>"
    );
    // Only GET and HEAD.
    let head = curl_head(&["-X", "POST", &format!("{base}/plain/")]).await;
    assert!(head.starts_with("http/1.1 405"), "{head}");
    assert!(head.contains("allow: get, head"), "{head}");
    let head = curl_head(&["-I", &format!("{base}/")]).await;
    assert!(head.contains("content-length: 13"), "{head}");
    gateway.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_and_hidden_files_are_refused() {
    let tmp = site();
    let root = tmp.path().join("site");
    let (gateway, base) = start(
        spec(vec![static_route("/", &root, true)], tmp.path()),
        Arc::new(FixedBackends::default()),
    )
    .await;
    for attempt in [
        "/../secret.txt",
        "/docs/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/docs/%2E%2E/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/docs%2f..%2f..%2fsecret.txt",
        "/%5c..%5csecret.txt",
        "/a%00b",
    ] {
        let (code, body) = curl(&["--path-as-is", &format!("{base}{attempt}")]).await;
        assert_eq!(code, "400", "{attempt}: {body}");
        assert!(!body.contains("outside"), "{attempt} leaked: {body}");
    }
    // Symlinks that lead out of the directory are not followed out, and hidden files are
    // not found even with the SPA fallback on.
    for attempt in [
        "/leak.txt",
        "/up/secret.txt",
        "/.env",
        "/docs/.git/config",
        "/gitconfig",
    ] {
        let (code, body) = curl(&["--path-as-is", &format!("{base}{attempt}")]).await;
        assert_eq!(code, "404", "{attempt}: {body}");
        assert!(
            !body.contains("outside") && !body.contains("SECRET"),
            "{attempt} leaked: {body}"
        );
    }
    gateway.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_ranges_and_precompressed_files() {
    let tmp = site();
    let root = tmp.path().join("site");
    let (gateway, base) = start(
        spec(vec![static_route("/", &root, false)], tmp.path()),
        Arc::new(FixedBackends::default()),
    )
    .await;
    let url = format!("{base}/index.html");
    let head = crate::curl_head_raw(&[&url]).await;
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an etag")
        .trim()
        .to_owned();
    let modified = head
        .lines()
        .find_map(|l| l.strip_prefix("last-modified: "))
        .expect("last-modified")
        .trim()
        .to_owned();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert_eq!(
        curl(&["-H", &format!("If-None-Match: {etag}"), &url])
            .await
            .0,
        "304"
    );
    assert_eq!(
        curl(&["-H", &format!("If-Modified-Since: {modified}"), &url])
            .await
            .0,
        "304"
    );
    assert_eq!(
        curl(&["-H", "If-None-Match: \"other\"", &url]).await.0,
        "200"
    );

    // A changed file is served at once, with a new validator.
    std::fs::write(root.join("index.html"), "<h1>home, edited</h1>").unwrap();
    let (code, body) = curl(&["-H", &format!("If-None-Match: {etag}"), &url]).await;
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("200", "<h1>home, edited</h1>")
    );

    let new_etag = crate::curl_head_raw(&[&url])
        .await
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an etag")
        .trim()
        .to_owned();
    assert_ne!(new_etag, etag);
    assert_eq!(
        curl(&["-H", &format!("If-None-Match: {new_etag}"), &url])
            .await
            .0,
        "304"
    );

    // Ranges, on a cached small file and on a large streamed one; with If-Range, only
    // while it names the current version.
    assert_eq!(
        curl(&["-r", "4-7", &url]).await,
        ("206".into(), "home".into())
    );
    assert_eq!(
        curl(&["-r", "4-7", "-H", &format!("If-Range: {new_etag}"), &url]).await,
        ("206".into(), "home".into())
    );
    assert_eq!(
        curl(&["-r", "4-7", "-H", &format!("If-Range: {etag}"), &url]).await,
        ("200".into(), "<h1>home, edited</h1>".into())
    );
    // The type by the extension, in any case.
    std::fs::write(root.join("LOUD.HTML"), "<p>loud</p>").unwrap();
    let head = curl_head(&[&format!("{base}/LOUD.HTML")]).await;
    assert!(head.contains("content-type: text/html"), "{head}");
    let big = format!("{base}/big.bin");
    let tail = {
        let big = big.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "-r", "-3", &big])
                .output()
                .unwrap()
                .stdout
        })
        .await
        .unwrap()
    };
    let expected: Vec<u8> = (3 * 1024 * 1024 - 3..3 * 1024 * 1024u32)
        .map(|i| (i % 251) as u8)
        .collect();
    assert_eq!(tail, expected);
    assert!(
        curl_head(&["-r", "-3", &big])
            .await
            .starts_with("http/1.1 206")
    );
    let head = curl_head(&["-r", "5000000-", &big]).await;
    assert!(head.starts_with("http/1.1 416"), "{head}");
    assert!(head.contains("content-range: bytes */3145728"), "{head}");
    // The whole large file arrives intact.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", &big])
            .output()
            .unwrap()
            .stdout
    })
    .await
    .unwrap();
    assert_eq!(out, std::fs::read(root.join("big.bin")).unwrap());

    // Precompressed siblings, by what the client accepts.
    let js = format!("{base}/app.js");
    assert_eq!(
        curl(&["-H", "Accept-Encoding: gzip, br", &js]).await.1,
        "BROTLI"
    );
    assert_eq!(
        curl(&["-H", "Accept-Encoding: gzip", &js]).await.1,
        "GZIPPED"
    );
    assert_eq!(
        curl(&["-H", "Accept-Encoding: br;q=0, gzip", &js]).await.1,
        "GZIPPED"
    );
    assert_eq!(curl(&[&js]).await.1, "console.log('plain')");
    let head = curl_head(&["-H", "Accept-Encoding: br", &js]).await;
    assert!(head.contains("content-encoding: br"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert!(head.contains("content-type: text/javascript"), "{head}");
    gateway.stop(std::time::Duration::from_secs(1)).await;
}
