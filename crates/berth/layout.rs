//! The linker script that links the code a running berth executes as one block at the
//! start of its text, written from `layout.txt` (by `build.rs`, and by the test that
//! links with it).
//!
//! Each line of `layout.txt` is the start of a function's mangled name; the function is
//! matched wherever the compiler put it: `.text.NAME`, `.text.unlikely.NAME` (cold) or
//! `.text.startup.NAME` (a C constructor). The script is partial (`INSERT BEFORE
//! .text`): the linker's own script places everything else as it would, so a name that
//! matches nothing (another version of a dependency, a renamed function) only leaves
//! that function where it was.

/// The patterns of `list`: its lines, trimmed, but for empty ones and `#` comments;
/// with each one's line number.
pub fn patterns(list: &str) -> impl Iterator<Item = (usize, &str)> {
    list.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// The linker script for the patterns in `list` (one per line; `#` starts a comment),
/// or the first line that is not a pattern.
pub fn script(list: &str) -> Result<String, String> {
    let mut out = String::with_capacity(list.len() * 3);
    out.push_str("SECTIONS\n{\n  .text.berth_run : {\n");
    for (n, pattern) in patterns(list) {
        // The start of a mangled name (letters, digits, `_`, `$` and `.`: nothing the
        // script's syntax reads otherwise), long enough to name one function, and `*`.
        let name = pattern.strip_suffix('*').unwrap_or("");
        if name.len() < 3
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_$.".contains(&b))
        {
            return Err(format!(
                "line {}: {pattern:?} is not the start of a mangled name (3 or more letters, \
                 digits, `_`, `$`, `.`) followed by `*`; bench/memory/layout.sh writes this file",
                n
            ));
        }
        out.push_str("    *(");
        for prefix in [".text.", ".text.unlikely.", ".text.startup."] {
            out.push_str(prefix);
            out.push_str(pattern);
            out.push(' ');
        }
        out.push_str(")\n");
    }
    out.push_str("  }\n}\nINSERT BEFORE .text;\n");
    Ok(out)
}
