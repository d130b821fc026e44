//! The INI files of supervisor and circus: sections, `key = value` (or `key: value`)
//! entries with indented continuation lines, `;` and `#` comment lines, and each entry's
//! line number.

/// A `[section]` and its entries.
#[derive(Debug)]
pub struct Section {
    /// The name between the brackets, trimmed.
    pub name: String,
    /// The line of the header.
    pub line: usize,
    /// Its entries, in order.
    pub entries: Vec<Entry>,
}

/// A `key = value` entry.
#[derive(Debug)]
pub struct Entry {
    /// The key, lowercased (both programs read keys without case).
    pub key: String,
    /// The value, trimmed; continuation lines joined with a newline.
    pub value: String,
    /// The line of the key.
    pub line: usize,
    /// The line as written, for what is skipped.
    pub text: String,
}

/// Reads `text`. `inline_comments`: a ` ;` starts a comment within a line (supervisor);
/// circus keeps it. Lines before the first section and lines that are neither an entry
/// nor a continuation are returned as `(line, text)`.
pub fn parse(text: &str, inline_comments: bool) -> (Vec<Section>, Vec<(usize, String)>) {
    let mut sections: Vec<Section> = Vec::new();
    let mut stray = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
            continue;
        }
        let content = if inline_comments {
            match raw.find(" ;").or_else(|| raw.find("\t;")) {
                Some(at) => raw[..at].trim_end(),
                None => raw,
            }
        } else {
            raw
        };
        let continues = raw.starts_with([' ', '\t']);
        if continues && let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut()) {
            if !entry.value.is_empty() {
                entry.value.push('\n');
            }
            entry.value.push_str(content.trim());
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            sections.push(Section {
                name: name.trim().to_string(),
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let split = content.find(['=', ':']);
        match (sections.last_mut(), split) {
            (Some(section), Some(at)) => section.entries.push(Entry {
                key: content[..at].trim().to_ascii_lowercase(),
                value: content[at + 1..].trim().to_string(),
                line,
                text: trimmed.to_string(),
            }),
            _ => stray.push((line, trimmed.to_string())),
        }
    }
    (sections, stray)
}

/// An INI boolean as supervisor and circus read it.
pub fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}
