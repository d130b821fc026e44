//! Every TOML example in the README, `docs/` and `examples/` is a config `berth check`
//! accepts: a reader who copies one gets something that works.
//!
//! A block that is a fragment (keys of one table, say) can say what it needs around it
//! in an HTML comment right above it, `<!-- config: TOML -->`, whose text is put before
//! the block (and `\n` in it is a line break). A block without `[app]` gets a minimal
//! one. A block that shows a mistake on purpose is fenced ```` ```toml,refused ```` and
//! must be refused.

use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every Markdown file whose examples are checked.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    for dir in ["docs", "examples"] {
        let mut stack = vec![root().join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "md") {
                    pages.push(path);
                }
            }
        }
    }
    pages.sort();
    pages
}

/// One example: where it is, what it says, whether it must be refused.
struct Example {
    place: String,
    text: String,
    refused: bool,
}

/// The TOML blocks of a Markdown page, with their preludes.
fn examples(page: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(page).unwrap();
    let name = page
        .strip_prefix(root())
        .unwrap_or(page)
        .display()
        .to_string();
    let mut found = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    let mut prelude = String::new();
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed
            .strip_prefix("<!-- config:")
            .and_then(|r| r.strip_suffix("-->"))
        {
            prelude = rest.trim().replace("\\n", "\n");
            continue;
        }
        let Some(info) = trimmed.strip_prefix("```toml") else {
            if !trimmed.is_empty() {
                prelude.clear();
            }
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut block = String::new();
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            block.push_str(l.get(indent..).unwrap_or(l.trim_start()));
            block.push('\n');
        }
        let mut text = std::mem::take(&mut prelude);
        text.push('\n');
        text.push_str(&block);
        if !text.lines().any(|l| l.trim() == "[app]") {
            text = format!("[app]\nname = \"docs\"\n{text}");
        }
        found.push(Example {
            place: format!("{name}:{}", i + 1),
            text,
            refused: info.trim() == ",refused",
        });
    }
    found
}

/// `text` with its commented-out settings (`# store = true`) put back: a reader who
/// uncomments one gets a config that still works. Only lines of one bare key and a value
/// count, not prose or alternatives (`# or: command = …`).
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let Some(rest) = trimmed.strip_prefix("# ") else {
                return line.to_owned();
            };
            let key = rest.split(" = ").next().unwrap_or("");
            let is_setting = rest.contains(" = ")
                && !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            if is_setting {
                rest.to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What is wrong with one example, if anything.
fn check(place: &str, text: &str, refused: bool) -> Option<String> {
    let at = Path::new("/srv/app/berth.toml");
    match (berth_config::parse(text, at), refused) {
        (Err(_), true) => None,
        (Ok(_), true) => Some(format!("{place}: marked refused, but accepted")),
        (Err(e), false) => Some(format!("{place}: refused:\n{e}\n---\n{text}")),
        (Ok(_), false) => {
            let more = uncommented(text);
            berth_config::parse(&more, at).err().map(|e| {
                format!(
                    "{place}: refused once its commented-out settings are put back:\n{e}\n---\n{more}"
                )
            })
        }
    }
}

#[test]
fn every_documented_config_example_is_accepted() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for page in pages() {
        for ex in examples(&page) {
            checked += 1;
            wrong.extend(check(&ex.place, &ex.text, ex.refused));
        }
    }
    // The examples' own config files.
    for entry in std::fs::read_dir(root().join("examples"))
        .unwrap()
        .flatten()
    {
        let path = entry.path().join("berth.toml");
        if let Ok(text) = std::fs::read_to_string(&path) {
            checked += 1;
            wrong.extend(check(&path.display().to_string(), &text, false));
        }
    }
    assert!(checked > 30, "only {checked} examples found");
    assert!(
        wrong.is_empty(),
        "{} of {checked} examples:\n\n{}",
        wrong.len(),
        wrong.join("\n\n")
    );
}

/// Every example's text, and each example's `berth.toml`: the fuzz test's seeds.
pub(crate) fn example_texts() -> Vec<String> {
    let mut texts: Vec<String> = pages()
        .iter()
        .flat_map(|p| examples(p))
        .map(|e| e.text)
        .collect();
    for entry in std::fs::read_dir(root().join("examples"))
        .unwrap()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(entry.path().join("berth.toml")) {
            texts.push(text);
        }
    }
    texts
}
