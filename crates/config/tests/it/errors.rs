//! Every class of error, with its exact line and column.

use crate::{diagnostics, one_error, parse, with_app};

const QUEUE_KEYS: &str = "concurrency, handler, max_attempts, backoff, timeout, retention";

#[test]
fn unknown_key_with_did_you_mean() {
    let text = with_app("[queue.emails]\nconcurency = 5\n");
    assert_eq!(
        one_error(&text),
        (
            5,
            1,
            format!(
                "unknown key `concurency` in [queue.emails]; did you mean `concurrency`? \
                 expected one of: {QUEUE_KEYS}"
            )
        )
    );
}

#[test]
fn unknown_key_far_from_any() {
    let text = "[app]\nname = \"x\"\n  flavour = \"vanilla\"\n";
    assert_eq!(
        one_error(text),
        (
            3,
            3,
            "unknown key `flavour` in [app]; expected one of: name, data_dir, durability, \
             shutdown_grace, store, store_connections, leader_ttl, lease_ttl"
                .into()
        )
    );
}

#[test]
fn unknown_top_level_table() {
    let text = with_app("[queues.emails]\n");
    let (line, column, message) = one_error(&text);
    assert_eq!((line, column), (4, 2));
    assert_eq!(
        message,
        "unknown key `queues` at the top level; did you mean `queue`? expected one of: app, api, queue, service, schedule, workflow, gateway, budget, ingest, backup, notify, deploy"
    );
}

#[test]
fn unknown_key_in_an_inline_table() {
    let text = with_app("[queue.q]\nbackoff = { intial = \"1s\" }\n");
    let (line, column, message) = one_error(&text);
    assert_eq!((line, column), (5, 13));
    assert!(
        message.starts_with(
            "unknown key `intial` in [queue.q.backoff]; did you mean `initial`? expected one of: \
             initial, max, factor, jitter"
        ),
        "{message}"
    );
}

#[test]
fn bad_duration() {
    let text = with_app("[queue.emails]\ntimeout = \"5 parsecs\"\n");
    assert_eq!(
        one_error(&text),
        (
            5,
            11,
            "invalid duration \"5 parsecs\" for `timeout` in [queue.emails]: expected a duration \
             such as \"30s\", \"5m\" or \"1h 30m\""
                .into()
        )
    );
}

#[test]
fn bare_number_for_a_duration() {
    let text = "[app]\nname = \"x\"\nshutdown_grace = 30\n";
    let (line, column, message) = one_error(text);
    assert_eq!((line, column), (3, 18));
    assert!(
        message.starts_with("invalid duration 30 for `shutdown_grace` in [app]:"),
        "{message}"
    );
    assert!(message.contains("\"30s\""), "{message}");
}

#[test]
fn zero_timeout() {
    let text = with_app("[queue.q]\ntimeout = \"0s\"\n");
    let (line, column, message) = one_error(&text);
    assert_eq!((line, column), (5, 11));
    assert!(message.contains("greater than zero"), "{message}");
}

#[test]
fn wrong_type() {
    let text = with_app("[queue.q]\nconcurrency = \"8\"\n");
    assert_eq!(
        one_error(&text),
        (
            5,
            15,
            "wrong type for `concurrency` in [queue.q]: found a string, expected an integer from \
             1 to 10000"
                .into()
        )
    );
    assert_eq!(
        one_error("[app]\nname = 5\n"),
        (
            2,
            8,
            "wrong type for `name` in [app]: found an integer, expected a string".into()
        )
    );
    let (line, column, message) = one_error("[app]\nname = \"x\"\ndurability = true\n");
    assert_eq!((line, column), (3, 14));
    assert!(
        message.contains("found a boolean, expected a string"),
        "{message}"
    );
}

#[test]
fn tables_of_the_wrong_shape() {
    let (line, column, message) = one_error(&with_app("[[queue]]\nconcurrency = 1\n"));
    assert_eq!((line, column), (4, 1));
    assert!(
        message.starts_with("wrong type for `queue` at the top level: found an array"),
        "{message}"
    );

    let (line, column, message) = one_error(&with_app("[queue]\nemails = 5\n"));
    assert_eq!((line, column), (5, 10));
    assert!(
        message.contains("found an integer, expected a table such as [queue.emails]"),
        "{message}"
    );

    let (line, column, message) = one_error(&with_app("[queue.q]\nbackoff = \"1s\"\n"));
    assert_eq!((line, column), (5, 11));
    assert!(
        message.starts_with("wrong type for `backoff` in [queue.q]: found a string"),
        "{message}"
    );

    let (line, column, message) = one_error("app = \"myapp\"\n");
    assert_eq!((line, column), (1, 7));
    assert!(message.starts_with("wrong type for `app`"), "{message}");
}

#[test]
fn out_of_range_integers() {
    for (value, key, expected) in [
        ("0", "concurrency", "an integer from 1 to 10000"),
        ("10001", "concurrency", "an integer from 1 to 10000"),
        ("-3", "concurrency", "an integer from 1 to 10000"),
        (
            "99999999999999999999",
            "concurrency",
            "an integer from 1 to 10000",
        ),
        ("0", "max_attempts", "an integer from 1 to 1000"),
        ("1_001", "max_attempts", "an integer from 1 to 1000"),
    ] {
        let text = with_app(&format!("[queue.q]\n{key} = {value}\n"));
        assert_eq!(
            one_error(&text),
            (
                5,
                key.len() + 4,
                format!("invalid value {value} for `{key}` in [queue.q]: expected {expected}")
            )
        );
    }
}

#[test]
fn bad_backoff_numbers() {
    for (line, expected) in [
        (
            "backoff = { factor = 0.5 }",
            "expected a number of at least 1.0",
        ),
        (
            "backoff = { factor = inf }",
            "expected a number of at least 1.0",
        ),
        (
            "backoff = { factor = nan }",
            "expected a number of at least 1.0",
        ),
        (
            "backoff = { jitter = 1.5 }",
            "expected a number from 0.0 to 1.0",
        ),
        (
            "backoff = { jitter = -0.1 }",
            "expected a number from 0.0 to 1.0",
        ),
    ] {
        let (l, column, message) = one_error(&with_app(&format!("[queue.q]\n{line}\n")));
        assert_eq!((l, column), (5, 22), "{line}");
        assert!(message.contains(expected), "{line}: {message}");
    }
}

#[test]
fn backoff_max_below_initial() {
    let text = with_app("[queue.q]\nbackoff = { initial = \"10s\", max = \"5s\" }\n");
    let (line, column, message) = one_error(&text);
    assert_eq!((line, column), (5, 36));
    assert_eq!(
        message,
        "invalid backoff in [queue.q.backoff]: `max` (5s) is shorter than `initial` (10s); \
         expected `max` to be at least `initial`"
    );
    // Without `max`, the default (1h) is what `initial` outgrew.
    let text = with_app("[queue.q]\nbackoff = { initial = \"2h\" }\n");
    let (line, column, message) = one_error(&text);
    assert_eq!((line, column), (5, 23));
    assert!(
        message.contains("`max` (1h) is shorter than `initial` (2h)"),
        "{message}"
    );
}

#[test]
fn bad_queue_name() {
    let text = with_app("[queue.Emails]\n");
    let (line, column, message) = one_error(&text);
    assert_eq!((line, column), (4, 8));
    assert!(
        message.starts_with("invalid queue name `Emails`: expected 1 to 64 lowercase letters"),
        "{message}"
    );
    let (line, column, _) = one_error(&with_app("[queue.\"bulk import\"]\n"));
    assert_eq!((line, column), (4, 8));
}

#[test]
fn bad_app_name() {
    let (line, column, message) = one_error("[app]\nname = \"my app\"\n");
    assert_eq!((line, column), (2, 8));
    assert!(
        message.starts_with("invalid app name \"my app\" for `name` in [app]: expected letters"),
        "{message}"
    );
    let (_, _, message) = one_error("[app]\nname = \"\"\n");
    assert!(message.starts_with("invalid app name \"\""), "{message}");
}

#[test]
fn missing_app_name() {
    let text = "# my config\n[app]\ndurability = \"normal\"\n";
    assert_eq!(
        one_error(text),
        (
            2,
            1,
            "missing `name` in [app]: expected a line such as `name = \"myapp\"`".into()
        )
    );
}

#[test]
fn missing_app_table() {
    for text in ["", "# nothing yet\n", "[queue.q]\n"] {
        let (line, column, message) = one_error(text);
        assert_eq!((line, column), (1, 1));
        assert!(message.starts_with("missing [app] table"), "{message}");
    }
}

#[test]
fn toml_syntax_error() {
    let (line, column, message) = one_error("[app]\nname = \"x\nstore = 1\n");
    assert_eq!((line, column), (2, 10));
    assert!(message.starts_with("invalid TOML: "), "{message}");

    let (line, column, message) = one_error("[app]\nname = x\n");
    assert_eq!((line, column), (2, 8));
    assert!(
        message.starts_with("invalid TOML: string values must be quoted"),
        "{message}"
    );

    let (line, column, message) = one_error("[app]\nname = \"x\"\nname = \"y\"\n");
    assert_eq!((line, column), (3, 1));
    assert_eq!(message, "invalid TOML: duplicate key");
}

#[test]
fn bad_stores_are_refused_without_echoing_the_url() {
    let (line, column, message) =
        one_error("[app]\nname = \"x\"\nstore = \"redis://u:s3cret@h\"\n");
    assert_eq!((line, column), (3, 9));
    assert!(
        message.contains("expected \"sqlite\" or a URL such as"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    let (_, _, message) = one_error("[app]\nname = \"x\"\nstore = \"postgres://u:s3cret@/db\"\n");
    assert!(message.contains("names no host"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[test]
fn bad_handlers() {
    for (handler, column, expected) in [
        (
            "\"push\"",
            11,
            "invalid handler \"push\" for `handler` in [queue.q]: expected \"pull\"",
        ),
        (
            "42",
            11,
            "wrong type for `handler` in [queue.q]: found an integer, expected \"pull\"",
        ),
        ("{}", 11, "empty `handler` in [queue.q]: expected \"pull\""),
        (
            "{ run = \"a\", post = \"http://h/\" }",
            11,
            "`handler` in [queue.q] has both `run` and `post`",
        ),
        (
            "{ run = \"  \" }",
            19,
            "invalid command \"  \" for `run` in [queue.q.handler]: expected a shell command",
        ),
        (
            "{ post = \"https://h/jobs\" }",
            20,
            "invalid URL \"https://h/jobs\" for `post` in [queue.q.handler]: https is not supported yet",
        ),
        (
            "{ post = \"h:8000/jobs\" }",
            20,
            "expected an http:// URL such as \"http://127.0.0.1:8000/jobs\"",
        ),
        (
            "{ command = \"x\" }",
            13,
            "unknown key `command` in [queue.q.handler]; expected one of: run, post",
        ),
    ] {
        let text = with_app(&format!("[queue.q]\nhandler = {handler}\n"));
        let (line, col, message) = one_error(&text);
        assert_eq!((line, col), (5, column), "{handler}: {message}");
        assert!(message.contains(expected), "{handler}: {message}");
    }
}

#[test]
fn bad_app_and_api_values() {
    let (line, column, message) = one_error("[app]\nname = \"x\"\ndurability = \"fast\"\n");
    assert_eq!((line, column), (3, 14));
    assert_eq!(
        message,
        "invalid value \"fast\" for `durability` in [app]: expected \"full\" or \"normal\""
    );

    let text = "[app]\nname = \"x\"\n[api]\nlisten = \"localhost:7070\"\n";
    let (line, column, message) = one_error(text);
    assert_eq!((line, column), (4, 10));
    assert!(
        message.contains("expected an IP address and port such as \"127.0.0.1:7070\""),
        "{message}"
    );

    let text = "[app]\nname = \"x\"\n[api]\ntoken_env = \"s3cr3t-token!\"\n";
    let (line, column, message) = one_error(text);
    assert_eq!((line, column), (4, 13));
    assert!(
        message.contains("the name of an environment variable"),
        "{message}"
    );

    let text = "[app]\nname = \"x\"\n[api]\ntoken = \"abc\"\n";
    let (line, column, message) = one_error(text);
    assert_eq!((line, column), (4, 1));
    assert!(message.contains("did you mean `token_env`?"), "{message}");
}

#[test]
fn several_errors_are_reported_together_in_file_order() {
    let text = r#"[app]
name = "x"
durability = "fast"
colour = "blue"

[queue.emails]
concurency = 5
timeout = "5 parsecs"
backoff = { jitter = 2.0 }

[queue.Bad]

[service.web]
"#;
    let found = diagnostics(text);
    let positions: Vec<_> = found.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(
        positions,
        [(3, 14), (4, 1), (7, 1), (8, 11), (9, 22), (11, 8), (13, 1)]
    );

    let error = parse(text).unwrap_err();
    let rendered = error.to_string();
    let lines: Vec<_> = rendered.lines().collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(
        lines[2],
        format!(
            "berth.toml:7:1: unknown key `concurency` in [queue.emails]; did you mean \
             `concurrency`? expected one of: {QUEUE_KEYS}"
        )
    );
    assert_eq!(
        lines[3],
        "berth.toml:8:11: invalid duration \"5 parsecs\" for `timeout` in [queue.emails]: \
         expected a duration such as \"30s\", \"5m\" or \"1h 30m\""
    );
    assert_eq!(
        lines[6],
        "berth.toml:13:1: missing `command` in [service.web]: expected a line such as \
         `command = \"gunicorn app:app -b 127.0.0.1:{port}\"`"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    // "é" is two bytes but one column: `durability`'s value starts at column 34.
    let found = diagnostics("app = { name = \"é\", durability = \"x\" }\n");
    let found: Vec<_> = found.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(found, [(1, 16), (1, 34)]);
}

/// A table is checked to the end whatever its values: a typo is reported in the same run
/// as the error that keeps the table from being used, and its valid keys stay known.
#[test]
fn a_typo_is_reported_beside_the_error_that_sinks_its_table() {
    let text = with_app(
        "[gateway]\nlisten = \"127.0.0.1:8080\"\n[[gateway.route]]\npath = \"/\"\n\
         timout = \"5s\"\nmax_body = \"1MiB\"\n\
         [ingest.drops]\ndir = { watch = \"\", setle = \"1s\", done = \"d\" }\n",
    );
    let messages: Vec<String> = diagnostics(&text).into_iter().map(|d| d.message).collect();
    let has = |part: &str| messages.iter().any(|m| m.contains(part));
    assert!(
        has("a route for `/` in [gateway.route#1] needs exactly one of"),
        "{messages:#?}"
    );
    assert!(
        has("unknown key `timout` in [gateway.route#1]; did you mean `timeout`?"),
        "{messages:#?}"
    );
    assert!(has("invalid path \"\" for `watch`"), "{messages:#?}");
    assert!(
        has("unknown key `setle` in [ingest.drops.dir]; did you mean `settle`?"),
        "{messages:#?}"
    );
    assert!(
        !has("`max_body`") && !has("`done`"),
        "valid keys stay known: {messages:#?}"
    );
}

/// A schedule or an ingest that names two things to start is refused, and what each of
/// them says is checked all the same: a typo in its `job` shows in the same run.
#[test]
fn both_targets_are_checked_when_two_are_given() {
    let text = with_app(
        "[queue.q]\n\n[workflow.w.step.s]\nhandler = { run = \"true\" }\n\n\
         [schedule.s]\ncron = \"@daily\"\ncommand = \"true\"\njob = { queue = \"q\", kind = \"k\", arsg = {} }\n\n\
         [ingest.i]\nmqtt = { listen = \"127.0.0.1:1883\" }\ntopics = [\"#\"]\nworkflow = \"w\"\n\
         job = { queue = \"q\", knd = \"k\" }\n",
    );
    let messages: Vec<String> = diagnostics(&text).into_iter().map(|d| d.message).collect();
    let has = |part: &str| messages.iter().any(|m| m.contains(part));
    assert!(
        has("[schedule.s] has both job and command"),
        "{messages:#?}"
    );
    assert!(
        has("unknown key `arsg` in [schedule.s.job]; did you mean `args`?"),
        "{messages:#?}"
    );
    assert!(
        has("[ingest.i] has both `job` and `workflow`"),
        "{messages:#?}"
    );
    assert!(
        has("unknown key `knd` in [ingest.i.job]; did you mean `kind`?"),
        "{messages:#?}"
    );
}
