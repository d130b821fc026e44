//! Small HTML builders: escaping, tables of JSON rows, action buttons, sparklines.

use std::fmt::Write as _;

use serde_json::Value;

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, for text and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One JSON value as a table cell: times shortened, nested values as compact JSON cut to
/// a readable length, nothing as a dash.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "<span class=\"dim\">—</span>".into(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::String(s) => time(s).unwrap_or_else(|| esc(&cut(s, 160))),
        other => format!("<code>{}</code>", esc(&cut(&other.to_string(), 160))),
    }
}

/// An RFC 3339 time as `2026-12-06 04:42:20` in a `<time>` element, if `s` is one.
fn time(s: &str) -> Option<String> {
    let b = s.as_bytes();
    // ASCII only: the slices below are then on character boundaries.
    let looks = s.is_ascii()
        && s.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && s.ends_with('Z');
    looks.then(|| {
        format!(
            "<time datetime=\"{}\">{} {}</time>",
            esc(s),
            esc(&s[..10]),
            esc(&s[11..19])
        )
    })
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub(crate) fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A table of `rows` (JSON objects) with `columns` (all scalar keys of the first row when
/// empty) and, when `actions` gives any, a last column of buttons.
pub(crate) fn table(
    rows: &[Value],
    columns: &[&str],
    link: Option<(&str, &str)>,
    actions: impl Fn(&Value) -> String,
) -> String {
    if rows.is_empty() {
        return "<p class=\"dim\">none</p>".into();
    }
    let derived: Vec<String>;
    let columns: Vec<&str> = if columns.is_empty() {
        derived = rows[0]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        derived.iter().map(String::as_str).collect()
    } else {
        columns.to_vec()
    };
    let action_cells: Vec<String> = rows.iter().map(&actions).collect();
    let with_actions = action_cells.iter().any(|a| !a.is_empty());
    let mut out = String::from("<table><thead><tr>");
    for c in &columns {
        let _ = write!(out, "<th>{}</th>", esc(&c.replace('_', " ")));
    }
    if with_actions {
        out.push_str("<th></th>");
    }
    out.push_str("</tr></thead><tbody>");
    for (row, acts) in rows.iter().zip(&action_cells) {
        out.push_str("<tr>");
        for c in &columns {
            let v = row.get(*c).unwrap_or(&Value::Null);
            match link {
                // The link column: the row's key leads to its own page.
                Some((column, prefix)) if column == *c && !v.is_null() => {
                    let key = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let _ = write!(
                        out,
                        "<td><a href=\"{}{}\">{}</a></td>",
                        esc(prefix),
                        esc(&segment(&key)),
                        esc(&key)
                    );
                }
                _ => {
                    let _ = write!(out, "<td>{}</td>", cell(v));
                }
            }
        }
        if with_actions {
            let _ = write!(out, "<td class=\"actions\">{acts}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// `s` percent-encoded for one path segment (names and ids as they were given).
pub(crate) fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The fields of one JSON object as a definition list (nested values as JSON).
pub(crate) fn fields(v: &Value, skip: &[&str]) -> String {
    let mut out = String::from("<dl class=\"fields\">");
    if let Some(o) = v.as_object() {
        for (k, v) in o {
            if skip.contains(&k.as_str()) {
                continue;
            }
            let _ = write!(
                out,
                "<dt>{}</dt><dd>{}</dd>",
                esc(&k.replace('_', " ")),
                cell(v)
            );
        }
    }
    out.push_str("</dl>");
    out
}

/// A JSON value, indented, in a `<pre>`.
pub(crate) fn pre_json(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    format!("<pre>{}</pre>", esc(&text))
}

/// A button that sends `method path` (relative to the dashboard, through berth's API)
/// with the page's CSRF token; `confirm` asks first.
pub(crate) fn button(label: &str, method: &str, path: &str, confirm: Option<&str>) -> String {
    let confirm = confirm
        .map(|c| format!(" data-confirm=\"{}\"", esc(c)))
        .unwrap_or_default();
    format!(
        "<button type=\"button\" class=\"act\" data-method=\"{method}\" data-path=\"{}\"{confirm}>{}</button>",
        esc(path),
        esc(label)
    )
}

/// A button that sends `POST path` with the JSON `body`, once `confirm` is accepted.
pub(crate) fn body_button(label: &str, path: &str, body: &str, confirm: &str) -> String {
    format!(
        "<button type=\"button\" class=\"act\" data-method=\"POST\" data-path=\"{}\" data-body=\"{}\" data-confirm=\"{}\">{}</button>",
        esc(path),
        esc(body),
        esc(confirm),
        esc(label)
    )
}

/// A button that asks for a message first and sends `{"message": …}` with `POST path`.
pub(crate) fn prompt_button(label: &str, path: &str, question: &str) -> String {
    format!(
        "<button type=\"button\" class=\"act\" data-method=\"POST\" data-path=\"{}\" data-prompt=\"{}\">{}</button>",
        esc(path),
        esc(question),
        esc(label)
    )
}

/// A line of small bars for `values` (oldest first), as inline SVG described by `label`.
pub(crate) fn sparkline(values: &[u64], label: &str) -> String {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let (w, h) = (4.0, 18.0);
    let mut out = format!(
        "<svg class=\"spark\" width=\"{}\" height=\"{h}\" role=\"img\" aria-label=\"{}: {}\">",
        values.len() as f64 * w,
        esc(label),
        values
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, v) in values.iter().enumerate() {
        let bar = (*v as f64 / max * h).max(if *v > 0 { 1.0 } else { 0.0 });
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{bar}\"/>",
            i as f64 * w,
            h - bar,
            w - 1.0
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn cells_show_times_and_cut_long_values() {
        assert!(cell(&json!("2026-12-06T04:42:20.597039Z")).contains(">2026-12-06 04:42:20<"));
        assert_eq!(cell(&json!("<b>")), "&lt;b&gt;");
        let long = "x".repeat(500);
        assert_eq!(cell(&json!(long)).chars().count(), 161);
        assert!(cell(&json!({"a": "<"})).contains("&lt;"));
        // Shaped like a time but not ASCII (a device's payload): shown as text.
        assert_eq!(cell(&json!("0000-00-00T00:00:0éZ")), "0000-00-00T00:00:0éZ");
    }

    #[test]
    fn tables_escape_every_cell_and_link() {
        let rows = vec![json!({"id": "<1>", "name": "<script>"})];
        let t = table(&rows, &[], Some(("id", "/x/")), |_| String::new());
        assert!(!t.contains("<script>"));
        assert!(t.contains("href=\"/x/%3C1%3E\""), "{t}");
    }
}
