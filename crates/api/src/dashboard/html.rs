//! Small HTML builders: escaping, cells, tables and field lists of typed records, action
//! buttons, sparklines.

use std::fmt::Write as _;

use crate::types::{FlowState, JobState, Timestamp};
use serde::Serialize;
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

/// Nothing, in a cell.
const NOTHING: &str = "<span class=\"dim\">—</span>";

/// A value as a table cell or a field: times shortened, nested values as compact JSON cut
/// to a readable length, nothing as a dash.
pub(crate) trait Cell {
    /// The cell's HTML.
    fn cell(&self) -> String;
}

/// `v` as a cell (see [`Cell`]).
pub(crate) fn cell<T: Cell + ?Sized>(v: &T) -> String {
    v.cell()
}

impl<T: Cell + ?Sized> Cell for &T {
    fn cell(&self) -> String {
        (**self).cell()
    }
}

impl<T: Cell> Cell for Option<T> {
    fn cell(&self) -> String {
        match self {
            Some(v) => v.cell(),
            None => NOTHING.into(),
        }
    }
}

impl Cell for str {
    fn cell(&self) -> String {
        time(self).unwrap_or_else(|| esc(&cut(self, 160)))
    }
}

impl Cell for String {
    fn cell(&self) -> String {
        self.as_str().cell()
    }
}

impl Cell for bool {
    fn cell(&self) -> String {
        if *self { "yes" } else { "no" }.into()
    }
}

macro_rules! integer_cells {
    ($($t:ty),*) => {$(
        impl Cell for $t {
            fn cell(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
integer_cells!(i32, i64, u16, u32, u64);

/// One decimal, as a JSON number with a fraction is shown (JSON has no NaN or infinity:
/// those are sent as `null`).
impl Cell for f64 {
    fn cell(&self) -> String {
        if self.is_finite() {
            format!("{self:.1}")
        } else {
            NOTHING.into()
        }
    }
}

/// As the API writes it, RFC 3339 with microseconds, shortened.
impl Cell for Timestamp {
    fn cell(&self) -> String {
        humantime::format_rfc3339_micros(self.to_system())
            .to_string()
            .cell()
    }
}

impl Cell for JobState {
    fn cell(&self) -> String {
        self.as_str().cell()
    }
}

impl Cell for FlowState {
    fn cell(&self) -> String {
        self.as_str().cell()
    }
}

/// Free-form JSON (a job's arguments or result, a message's payload).
impl Cell for Value {
    fn cell(&self) -> String {
        match self {
            Value::Null => NOTHING.into(),
            Value::Bool(b) => b.cell(),
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() => format!("{f:.1}"),
                _ => n.to_string(),
            },
            Value::String(s) => s.cell(),
            other => format!("<code>{}</code>", esc(&cut(&other.to_string(), 160))),
        }
    }
}

/// A nested value of a record (a list, a record in a record, an enum with data) as a
/// cell: its JSON as the API sends it, keys in order, cut to a readable length.
pub(crate) fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_value(v).unwrap_or(Value::Null).cell()
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

/// One column of a table of records of type `T` (or one field of a field list): its name
/// and the cell it shows for a record.
pub(crate) struct Column<'a, T> {
    name: &'static str,
    show: Box<dyn Fn(&T) -> String + 'a>,
    has: Box<dyn Fn(&T) -> bool + 'a>,
}

impl<'a, T: 'a> Column<'a, T> {
    /// The column `name`, showing `show(record)`.
    pub(crate) fn new(name: &'static str, show: impl Fn(&T) -> String + 'a) -> Self {
        Self {
            name,
            show: Box::new(show),
            has: Box::new(|_: &T| true),
        }
    }

    /// A field the API leaves out of a record when it is empty: a table shows the column
    /// only when its first row `has` it, a field list only when its record does.
    pub(crate) fn optional(mut self, has: impl Fn(&T) -> bool + 'a) -> Self {
        self.has = Box::new(has);
        self
    }

    /// Its name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The same column over records of type `U` that hold a `T` (`part` finds it).
    pub(crate) fn on<U: 'a>(self, part: fn(&U) -> &T) -> Column<'a, U> {
        let (show, has) = (self.show, self.has);
        Column {
            name: self.name,
            show: Box::new(move |u: &U| show(part(u))),
            has: Box::new(move |u: &U| has(part(u))),
        }
    }
}

/// A link to a record's own page, `prefix` then its `key`.
pub(crate) fn link(prefix: &str, key: &str) -> String {
    format!(
        "<a href=\"{}{}\">{}</a>",
        esc(prefix),
        esc(&segment(key)),
        esc(key)
    )
}

/// A table of `rows` with `columns` (those the first row has) and, when `actions` gives
/// any, a last column of buttons.
pub(crate) fn table<T>(
    rows: &[T],
    columns: &[Column<'_, T>],
    actions: impl Fn(&T) -> String,
) -> String {
    let Some(first) = rows.first() else {
        return "<p class=\"dim\">none</p>".into();
    };
    let columns: Vec<&Column<'_, T>> = columns.iter().filter(|c| (c.has)(first)).collect();
    let action_cells: Vec<String> = rows.iter().map(&actions).collect();
    let with_actions = action_cells.iter().any(|a| !a.is_empty());
    let mut out = String::from("<table><thead><tr>");
    for c in &columns {
        let _ = write!(out, "<th>{}</th>", esc(&c.name.replace('_', " ")));
    }
    if with_actions {
        out.push_str("<th></th>");
    }
    out.push_str("</tr></thead><tbody>");
    for (row, acts) in rows.iter().zip(&action_cells) {
        out.push_str("<tr>");
        for c in &columns {
            let _ = write!(out, "<td>{}</td>", (c.show)(row));
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

/// The fields of one record as a definition list: `columns` (those it has).
pub(crate) fn fields<T>(record: &T, columns: &[Column<'_, T>]) -> String {
    let mut out = String::from("<dl class=\"fields\">");
    for c in columns.iter().filter(|c| (c.has)(record)) {
        let _ = write!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            esc(&c.name.replace('_', " ")),
            (c.show)(record)
        );
    }
    out.push_str("</dl>");
    out
}

/// Free-form JSON (a job's arguments or result), indented, in a `<pre>`.
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

/// A button that asks for a number (offering `now`) and sends `{field: N}` with `POST
/// path`; an empty answer sends `{field: null}`.
pub(crate) fn number_button(
    label: &str,
    path: &str,
    question: &str,
    field: &str,
    now: u32,
) -> String {
    format!(
        "<button type=\"button\" class=\"act\" data-method=\"POST\" data-path=\"{}\" data-prompt=\"{}\" data-prompt-field=\"{}\" data-prompt-number=\"{now}\">{}</button>",
        esc(path),
        esc(question),
        esc(field),
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
    fn cells_of_typed_values_read_as_their_json_would() {
        assert_eq!(cell(&3u32), cell(&json!(3)));
        assert_eq!(cell(&-3i64), cell(&json!(-3)));
        assert_eq!(cell(&2.0f64), cell(&json!(2.0)));
        assert_eq!(cell(&f64::NAN), cell(&json!(null)));
        assert_eq!(cell(&true), cell(&json!(true)));
        assert_eq!(cell(&None::<u32>), cell(&json!(null)));
        assert_eq!(cell(&Some("<b>")), cell(&json!("<b>")));
        let at = Timestamp(1_796_532_140_597_039);
        assert_eq!(cell(&at), cell(&serde_json::to_value(at).unwrap()));
        assert!(
            cell(&at).contains("<time datetime=\"2026-"),
            "{}",
            cell(&at)
        );
        assert_eq!(cell(&JobState::Running), cell(&json!("running")));
        assert_eq!(json(&vec!["a", "<"]), cell(&json!(["a", "<"])));
    }

    #[test]
    fn tables_escape_every_cell_and_link() {
        struct Row {
            id: &'static str,
            name: &'static str,
        }
        let rows = vec![Row {
            id: "<1>",
            name: "<script>",
        }];
        let columns = [
            Column::new("id", |r: &Row| link("/x/", r.id)),
            Column::new("name", |r: &Row| cell(r.name)),
        ];
        let t = table(&rows, &columns, |_| String::new());
        assert!(!t.contains("<script>"));
        assert!(t.contains("href=\"/x/%3C1%3E\""), "{t}");
    }

    #[test]
    fn a_column_the_first_row_lacks_is_left_out() {
        let rows = vec![None, Some(1u32)];
        let columns = [
            Column::new("a", |r: &Option<u32>| cell(r)),
            Column::new("b", |r: &Option<u32>| cell(r)).optional(Option::is_some),
        ];
        let t = table(&rows, &columns, |_| String::new());
        assert!(t.contains("<th>a</th>") && !t.contains("<th>b</th>"), "{t}");
        let f = fields(&rows[1], &columns);
        assert_eq!(
            f,
            "<dl class=\"fields\"><dt>a</dt><dd>1</dd><dt>b</dt><dd>1</dd></dl>"
        );
    }
}
