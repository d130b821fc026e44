//! The OpenAPI document at `/v1/openapi.json`: generated from the routes' own types,
//! complete (every route, every field), and closed (a field the server sends but the
//! document does not name fails validation). A real validator and schemathesis check it
//! against a running berth in the `berth` crate's `openapi` test.

use std::collections::BTreeSet;

use serde_json::Value;

fn doc() -> Value {
    let (doc, problems) = berth_api::generate_openapi();
    assert!(
        problems.is_empty(),
        "the generator met problems: {problems:#?}"
    );
    doc
}

#[test]
fn writes_the_document_for_inspection() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(
        dir.join("openapi.json"),
        serde_json::to_string_pretty(&doc()).unwrap(),
    )
    .unwrap();
}

/// The routes' sources: `(file, text)` for each file under `src/routes`, and `lib.rs`.
fn sources() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("lib.rs")];
    for e in std::fs::read_dir(root.join("routes")).unwrap() {
        files.push(e.unwrap().path());
    }
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Every route registered in the sources is in the document, and the document has no
/// other: a route added with axum's undocumented `.route(` (anywhere but `/metrics`,
/// which is not JSON and not under `/v1`) fails here.
#[test]
fn every_route_is_in_the_document() {
    let mut registered = BTreeSet::new();
    for (file, text) in sources() {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with(".route(") && file != "metrics.rs" {
                panic!(
                    "{file}:{}: `.route(` leaves the route out of the OpenAPI document; use `.api_route(`",
                    i + 1
                );
            }
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".api_route(") {
            rest = &rest[at + ".api_route(".len()..];
            let open = rest.find('"').unwrap();
            let close = open + 1 + rest[open + 1..].find('"').unwrap();
            registered.insert(rest[open + 1..close].to_owned());
        }
    }
    let documented: BTreeSet<String> = doc()["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(registered, documented);
    assert!(documented.len() >= 55, "{documented:?}");
}

/// Every operation: its path parameters declared with a type, a success answer with a
/// described body, and the error body as its `default` answer.
#[test]
fn every_operation_describes_its_answers() {
    let doc = doc();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let wanted: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let at = format!("{} {path}", method.to_uppercase());
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| {
                            assert!(p["schema"]["type"].is_string(), "{at}: untyped {p}");
                            p["name"].as_str().unwrap()
                        })
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, wanted, "{at}: path parameters");
            let responses = op["responses"].as_object().unwrap();
            let ok: Vec<_> = responses
                .iter()
                .filter(|(code, _)| code.starts_with('2'))
                .collect();
            assert_eq!(ok.len(), 1, "{at}: one success answer: {responses:?}");
            let content = ok[0].1["content"].as_object().unwrap();
            for (media, body) in content {
                let schema = &body["schema"];
                assert!(
                    schema.get("$ref").is_some() || schema.get("type").is_some(),
                    "{at}: {media} answer without a described type: {schema}"
                );
            }
            if path == "/v1/openapi.json" {
                continue; // It cannot fail.
            }
            let error = responses
                .get("default")
                .map(|r| &r["content"]["application/json"]["schema"]["$ref"]);
            assert_eq!(
                error,
                Some(&Value::from("#/components/schemas/ErrorBody")),
                "{at}: the error body as the default answer"
            );
        }
    }
    assert!(operations >= 63, "{operations} operations");
}

/// Where the data itself is any JSON (a job's arguments and result, a message's parsed
/// payload, a batch's items): the only places an untyped value may appear.
const FREE_JSON: &[&str] = &[
    "args",
    "result",
    "payload",
    "items",
    "input",
    "output",
    // A release keeps the maintenance setting its deploy wrote, to clear it only if unchanged.
    "maintenance_value",
];

/// Every field of every type in the document has a type, and every object names its
/// fields and allows no others (`additionalProperties: false`), except maps keyed by
/// name with typed values.
#[test]
fn every_field_is_typed_and_every_object_closed() {
    let doc = doc();
    fn walk(schema: &Value, at: &str, field: Option<&str>, problems: &mut Vec<String>) {
        let Some(map) = schema.as_object() else {
            if schema == &Value::Bool(true) && !field.is_some_and(|f| FREE_JSON.contains(&f)) {
                problems.push(format!("{at}: untyped (`true`)"));
            }
            return;
        };
        let described = ["type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const"]
            .iter()
            .any(|k| map.contains_key(*k));
        if !described && !field.is_some_and(|f| FREE_JSON.contains(&f)) {
            problems.push(format!("{at}: untyped {schema}"));
        }
        if map.get("type") == Some(&Value::from("object")) {
            match (map.get("properties"), map.get("additionalProperties")) {
                (Some(_), Some(Value::Bool(false))) => {}
                (None, Some(v)) if v.is_object() => {}
                _ => problems.push(format!("{at}: an object that is not closed: {schema}")),
            }
        }
        if let Some(props) = map.get("properties").and_then(Value::as_object) {
            for (name, s) in props {
                walk(s, &format!("{at}.{name}"), Some(name), problems);
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            for (i, s) in map
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                walk(s, &format!("{at}/{key}[{i}]"), field, problems);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(s) = map.get(key).filter(|s| !s.is_boolean() || key == "items") {
                walk(s, &format!("{at}[]"), field, problems);
            }
        }
    }
    let mut problems = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        walk(schema, name, None, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
