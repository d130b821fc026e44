//! Printing for people (aligned tables) and for scripts (`--json`).

use std::io::Write;

/// Writes to standard output (see `outln!`). A closed pipe ends the process with exit
/// code 0, as ripgrep does: the reader has what it wanted. Any other failure to write is
/// said on standard error and ends it with 1.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(std::io::stderr(), "error: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Writes part of a line to standard output and flushes it (a step shown as it begins).
pub fn write_part(args: std::fmt::Arguments<'_>) {
    write_out(args);
    let _ = std::io::stdout().lock().flush();
}

/// Writes to standard error (see `errln!`); a failure is ignored, there being nowhere
/// left to report it.
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Prints rows as an aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints an answer as pretty JSON, its keys in alphabetical order (as they always were).
pub fn json(v: &impl serde::Serialize) {
    let v = serde_json::to_value(v).expect("the API's types always serialize");
    outln!(
        "{}",
        serde_json::to_string_pretty(&v).expect("JSON values always serialize")
    );
}

/// Seconds as "3s", "4m 10s", "2h 5m", "3d 4h".
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// A time as the API writes it (RFC 3339 with microseconds).
pub fn time(t: berth_api::types::Timestamp) -> String {
    humantime::format_rfc3339_micros(t.to_system()).to_string()
}

/// A time that may be absent: "-" when it is.
pub fn opt_time(t: Option<berth_api::types::Timestamp>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

/// A value that may be absent as a cell: "-" when it is.
pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
