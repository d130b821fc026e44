//! What a scoped token may do on the admin API. A token made with
//! `berth token create USER --scope …` reaches only the requests its scopes name; the
//! read scopes allow only `GET`, so a token (or a gateway route, see
//! [`read_only`]) with read scopes alone can change nothing.

use std::fmt;

/// One scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `status:read`: `GET /v1/status`, `/v1/events`, `/metrics`.
    StatusRead,
    /// `jobs:read`: `GET` of jobs, queues, batches, workflows and the archive.
    JobsRead,
    /// `messages:read`: `GET` of stored messages, dead letters, their counts and stream.
    MessagesRead,
    /// `jobs:push:QUEUE` (or `jobs:push:*`): `POST /v1/jobs` and `/v1/jobs/bulk` onto
    /// that queue.
    JobsPush(String),
    /// `jobs:work:QUEUE` (or `jobs:work:*`): a pull worker's `lease`, `report` and
    /// `heartbeat` on that queue.
    JobsWork(String),
}

/// Every scope a token may carry, as `berth token create --scope` takes them.
pub const SCOPES_HELP: &str =
    "status:read, jobs:read, messages:read, jobs:push:QUEUE, jobs:work:QUEUE (QUEUE may be *)";

impl Scope {
    /// Reads a scope; the error says what would be right.
    pub fn parse(raw: &str) -> Result<Scope, String> {
        let queue = |q: &str| -> Result<String, String> {
            if q.is_empty() || q.len() > 128 || q.chars().any(char::is_whitespace) {
                Err(format!(
                    "scope {raw:?}: name a queue (or * for every queue) after the last colon"
                ))
            } else {
                Ok(q.to_owned())
            }
        };
        match raw {
            "status:read" => Ok(Scope::StatusRead),
            "jobs:read" => Ok(Scope::JobsRead),
            "messages:read" => Ok(Scope::MessagesRead),
            _ => match raw.strip_prefix("jobs:push:") {
                Some(q) => queue(q).map(Scope::JobsPush),
                None => match raw.strip_prefix("jobs:work:") {
                    Some(q) => queue(q).map(Scope::JobsWork),
                    None => Err(format!(
                        "unknown scope {raw:?}; expected one of {SCOPES_HELP}"
                    )),
                },
            },
        }
    }

    /// Whether it only reads.
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Scope::StatusRead | Scope::JobsRead | Scope::MessagesRead
        )
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::StatusRead => f.write_str("status:read"),
            Scope::JobsRead => f.write_str("jobs:read"),
            Scope::MessagesRead => f.write_str("messages:read"),
            Scope::JobsPush(q) => write!(f, "jobs:push:{q}"),
            Scope::JobsWork(q) => write!(f, "jobs:work:{q}"),
        }
    }
}

/// What a request needs: a read scope, or to push or work on queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Any scope: what every token may read (the OpenAPI document).
    AnyScope,
    /// This read scope.
    Read(Scope),
    /// Pushing onto these queues (from the body).
    Push(Vec<String>),
    /// A worker's call on this queue.
    Work(String),
    /// Nothing a scoped token can have: only the admin token (or the unix socket).
    Admin,
}

/// What `method path` needs. `pushed` gives the queues a push's body names (read only
/// for `POST /v1/jobs` and `/v1/jobs/bulk`).
pub fn need(method: &str, path: &str, pushed: impl FnOnce() -> Vec<String>) -> Need {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let read = |s: Scope| {
        if method == "GET" || method == "HEAD" {
            Need::Read(s)
        } else {
            Need::Admin
        }
    };
    match segs.as_slice() {
        ["v1", "openapi.json"] if method == "GET" || method == "HEAD" => Need::AnyScope,
        ["v1", "status"] | ["v1", "events"] | ["metrics"] => read(Scope::StatusRead),
        ["v1", "jobs"] | ["v1", "jobs", "bulk"] if method == "POST" => Need::Push(pushed()),
        ["v1", "jobs"] | ["v1", "jobs", _] => read(Scope::JobsRead),
        ["v1", "queues"] | ["v1", "queues", _] => read(Scope::JobsRead),
        ["v1", "queues", q, "lease" | "report" | "heartbeat"] if method == "POST" => {
            Need::Work((*q).to_owned())
        }
        ["v1", "batches" | "workflows" | "archive"]
        | ["v1", "batches" | "workflows" | "archive", _] => read(Scope::JobsRead),
        ["v1", "messages"] | ["v1", "messages", _] => read(Scope::MessagesRead),
        _ => Need::Admin,
    }
}

/// Whether `scopes` cover `need`; else why not.
pub fn allows(scopes: &[Scope], need: &Need) -> Result<(), String> {
    let any = |f: &dyn Fn(&Scope) -> bool| scopes.iter().any(f);
    let covers = |s: &Scope, q: &str| match s {
        Scope::JobsPush(p) | Scope::JobsWork(p) => p == "*" || p == q,
        _ => false,
    };
    match need {
        Need::AnyScope => Ok(()),
        Need::Read(s) if scopes.contains(s) => Ok(()),
        Need::Read(s) => Err(format!("it needs the scope `{s}`")),
        Need::Push(queues) => match queues
            .iter()
            .find(|q| !any(&|s| matches!(s, Scope::JobsPush(_)) && covers(s, q)))
        {
            None if !queues.is_empty() => Ok(()),
            None => Err("a push must name its queue".into()),
            Some(q) => Err(format!("it needs the scope `jobs:push:{q}`")),
        },
        Need::Work(q) if any(&|s| matches!(s, Scope::JobsWork(_)) && covers(s, q)) => Ok(()),
        Need::Work(q) => Err(format!("it needs the scope `jobs:work:{q}`")),
        Need::Admin => Err("only the admin token may do that".into()),
    }
}

/// Reads stored scope names, skipping any this berth does not know (a newer berth's).
pub fn parse_all(raw: &[String]) -> Vec<Scope> {
    raw.iter().filter_map(|s| Scope::parse(s).ok()).collect()
}

/// The queues a push body names: `queue` of one job, or of each of `jobs`.
pub fn pushed_queues(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let one = |j: &serde_json::Value| j["queue"].as_str().map(str::to_owned);
    match v["jobs"].as_array() {
        Some(jobs) => jobs.iter().map(|j| one(j).unwrap_or_default()).collect(),
        None => one(&v).into_iter().collect(),
    }
}

/// Whether a request may pass a read-only slice: a `GET` that `scopes` (read scopes
/// only) allow.
pub fn read_only(scopes: &[Scope], method: &str, path: &str) -> Result<(), String> {
    if method != "GET" && method != "HEAD" {
        return Err("this route is read-only: only GET requests".into());
    }
    let reads: Vec<Scope> = scopes.iter().filter(|s| s.reads_only()).cloned().collect();
    allows(&reads, &need(method, path, Vec::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(raw: &[&str]) -> Vec<Scope> {
        raw.iter().map(|s| Scope::parse(s).unwrap()).collect()
    }

    #[test]
    fn scopes_parse_and_refuse_with_what_is_right() {
        assert_eq!(
            Scope::parse("jobs:push:imports").unwrap(),
            Scope::JobsPush("imports".into())
        );
        assert_eq!(
            Scope::parse("jobs:work:*").unwrap().to_string(),
            "jobs:work:*"
        );
        let e = Scope::parse("jobs:write").unwrap_err();
        assert!(e.contains("expected one of"), "{e}");
        assert!(Scope::parse("jobs:push:").is_err());
    }

    #[test]
    fn read_scopes_read_and_change_nothing() {
        let s = scopes(&["messages:read", "jobs:read"]);
        let ok = |m: &str, p: &str| allows(&s, &need(m, p, Vec::new)).is_ok();
        assert!(ok("GET", "/v1/messages"));
        assert!(ok("GET", "/v1/messages/counts"));
        assert!(ok("GET", "/v1/jobs/5"));
        assert!(ok("GET", "/v1/queues/imports"));
        assert!(!ok("POST", "/v1/messages/5/replay"));
        assert!(!ok("DELETE", "/v1/jobs/5"));
        assert!(!ok("POST", "/v1/jobs/5/retry"));
        assert!(!ok("POST", "/v1/queues/imports/purge"));
        assert!(!ok("GET", "/v1/status"), "status:read is its own scope");
        assert!(
            ok("GET", "/v1/openapi.json"),
            "every token reads the document"
        );
        assert!(!ok("POST", "/v1/openapi.json"));
        assert!(!ok("POST", "/v1/reload"));
        assert!(!ok("GET", "/v1/services"));
    }

    #[test]
    fn push_and_work_scopes_name_their_queues() {
        let s = scopes(&["jobs:push:imports", "jobs:work:thumbs"]);
        let push = |qs: &[&str]| {
            allows(
                &s,
                &need("POST", "/v1/jobs/bulk", || {
                    qs.iter().map(|q| q.to_string()).collect()
                }),
            )
        };
        assert!(push(&["imports", "imports"]).is_ok());
        let e = push(&["imports", "mail"]).unwrap_err();
        assert!(e.contains("jobs:push:mail"), "{e}");
        assert!(push(&[]).is_err());
        assert!(allows(&s, &need("POST", "/v1/queues/thumbs/report", Vec::new)).is_ok());
        assert!(allows(&s, &need("POST", "/v1/queues/imports/lease", Vec::new)).is_err());
        assert!(allows(&s, &need("GET", "/v1/jobs", Vec::new)).is_err());
        assert_eq!(
            pushed_queues(br#"{"jobs":[{"queue":"a"},{"queue":"b"}]}"#),
            ["a", "b"]
        );
        assert_eq!(pushed_queues(br#"{"queue":"a","kind":"x"}"#), ["a"]);
    }

    #[test]
    fn a_read_only_slice_takes_only_reads() {
        let s = scopes(&["messages:read", "jobs:push:*"]);
        assert!(read_only(&s, "GET", "/v1/messages").is_ok());
        assert!(read_only(&s, "POST", "/v1/jobs").is_err());
        assert!(read_only(&s, "GET", "/v1/jobs").is_err());
    }
}
