//! The text layout of the release build (crates/berth/build.rs): the linker script made
//! of `layout.txt` is read by both linkers a Linux build uses (GNU ld, and the LLD that
//! rustc ships and uses by default), it moves the functions it names into the block at
//! the start of the text (a Rust name with any hash, cold or not; a C name), and it
//! leaves the others where they were. And the list still names berth's functions.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../layout.rs"]
mod script;

const LIST: &str = include_str!("../../layout.txt");

fn patterns() -> Vec<&'static str> {
    script::patterns(LIST).map(|(_, p)| p).collect()
}

#[test]
fn the_list_makes_a_script_and_a_bad_line_is_named() {
    let made = script::script(LIST).expect("layout.txt makes a script");
    assert_eq!(made.matches("*(").count(), patterns().len());
    assert!(made.ends_with("INSERT BEFORE .text;\n"));
    let err = script::script("# a comment\n_ZN5tokio*\nsome thing*\n").unwrap_err();
    assert!(err.starts_with("line 3: \"some thing*\""), "{err}");
    // Nothing that would take more than the functions it names: not everything, not a
    // `*` inside, not a name without its `*`.
    for bad in ["*", "ab*", "_ZN*5tokio*", "_ZN5tokio", "_ZN5tokio*)"] {
        let err = script::script(bad).unwrap_err();
        assert!(err.starts_with("line 1: "), "{bad}: {err}");
    }
}

/// Every pattern is the start of a name followed by `*`, and most name functions of the
/// berth the tests run (a debug build: the same functions, under other hashes). A list
/// recorded before a large rename fails here, and `bench/memory/layout.sh` writes it
/// again.
#[test]
fn the_list_names_berths_functions() {
    let patterns = patterns();
    assert!(patterns.len() > 1000, "{} patterns", patterns.len());
    assert!(patterns.iter().all(|p| p.ends_with('*')));
    let nm = Command::new("nm")
        .arg("--defined-only")
        .arg(env!("CARGO_BIN_EXE_berth"))
        .output()
        .expect("nm runs");
    assert!(nm.status.success());
    let mut names: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split(' ').nth(2).map(str::to_owned))
        .collect();
    names.sort();
    let found = |prefix: &str| {
        let at = names.partition_point(|n| n.as_str() < prefix);
        names.get(at).is_some_and(|n| n.starts_with(prefix))
    };
    let missing: Vec<&str> = patterns
        .iter()
        .filter(|p| !found(p.trim_end_matches('*')))
        .copied()
        .collect();
    let share = missing.len() as f64 / patterns.len() as f64;
    assert!(
        share < 0.15,
        "{} of {} patterns name no function of berth (first: {:?}): record the list again \
         with bench/memory/layout.sh",
        missing.len(),
        patterns.len(),
        &missing[..missing.len().min(5)]
    );
}

/// The linkers of this machine: GNU ld (the C compiler's default) and rustc's LLD.
fn linkers() -> Vec<(&'static str, Vec<String>)> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    let host = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let lld: PathBuf = [&sysroot, "lib", "rustlib", &host, "bin", "gcc-ld"]
        .iter()
        .collect();
    assert!(
        lld.join("ld.lld").exists(),
        "rustc's LLD is at {}",
        lld.display()
    );
    vec![
        ("GNU ld", vec!["-fuse-ld=bfd".into()]),
        (
            "LLD",
            vec![
                "-fuse-ld=lld".into(),
                "-B".into(),
                lld.display().to_string(),
            ],
        ),
    ]
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the tool runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn both_linkers_move_the_named_functions_into_the_block() {
    let patterns: Vec<&str> = patterns()
        .into_iter()
        .map(|p| p.trim_end_matches('*'))
        .collect();
    let first = |what: &str, is: &dyn Fn(&str) -> bool| -> &str {
        patterns
            .iter()
            .copied()
            .find(|p| is(p))
            .unwrap_or_else(|| panic!("the list has {what}"))
    };
    let word = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let legacy = |p: &str| p.starts_with("_ZN") && p.ends_with("17h");
    // Every kind of name the list holds: a legacy Rust name under some hash, another
    // instance of it that is cold (which the compiler puts in `.text.unlikely.`), one
    // with `$` escapes, a v0 name (the standard library's), a C function; and one the
    // list does not name.
    let rust = first("a legacy Rust name", &|p| legacy(p) && word(p));
    let escaped = first("a legacy Rust name with escapes", &|p| {
        legacy(p) && p.contains('$')
    });
    let v0 = first("a v0 Rust name", &|p| p.starts_with("_R") && word(p));
    let c = first("a C name", &|p| !p.starts_with('_') && word(p));
    let hot = format!("{rust}0123456789abcdefE");
    let cold = format!("{rust}fedcba9876543210E");
    let escaped = format!("{escaped}0011223344556677E");
    let v0 = v0.to_owned();
    let c_fn = format!("{c}_variant");
    let unlisted = "berth_layout_test_not_listed";
    let named = [&hot, &cold, &escaped, &v0, &c_fn];
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("t.c");
    let mut c_source = String::new();
    for (i, name) in named.iter().enumerate() {
        let cold = if *name == &cold { ", cold" } else { "" };
        c_source += &format!(
            "__attribute__((noinline, used{cold})) void f{i}(void) __asm__(\"{name}\");\n\
             void f{i}(void) {{ __asm__ volatile(\"\"); }}\n"
        );
    }
    c_source += &format!(
        "__attribute__((noinline, used)) void {unlisted}(void) {{ __asm__ volatile(\"\"); }}\n\
         int main(void) {{ f0(); f1(); f2(); f3(); f4(); {unlisted}(); return 0; }}\n"
    );
    std::fs::write(&source, c_source).unwrap();
    let object = dir.path().join("t.o");
    run(Command::new("cc")
        .args(["-O2", "-ffunction-sections", "-c"])
        .arg(&source)
        .arg("-o")
        .arg(&object));
    let sections = run(Command::new("readelf").arg("-SW").arg(&object));
    assert!(
        sections.contains(&format!(".text.unlikely.{cold}")),
        "the cold function is in .text.unlikely.: {sections}"
    );
    let ld = dir.path().join("layout.ld");
    std::fs::write(&ld, script::script(LIST).unwrap()).unwrap();
    for (linker, flags) in linkers() {
        let exe = dir.path().join(format!("t-{}", linker.replace(' ', "-")));
        run(Command::new("cc")
            .args(&flags)
            .arg(&object)
            .arg("-o")
            .arg(&exe)
            .arg("-T")
            .arg(&ld));
        let block = block(&exe).unwrap_or_else(|| panic!("{linker}: no .text.berth_run"));
        let symbols = run(Command::new("nm").arg(&exe));
        let at = |name: &str| {
            symbols
                .lines()
                .find_map(|l| {
                    let mut f = l.split(' ');
                    let addr = f.next()?;
                    (f.nth(1)? == name).then(|| u64::from_str_radix(addr, 16).ok())?
                })
                .unwrap_or_else(|| panic!("{linker}: {name} in the program"))
        };
        for name in named {
            assert!(
                block.contains(&at(name)),
                "{linker}: {name} at {:#x}, the block {block:x?}",
                at(name)
            );
        }
        assert!(!block.contains(&at(unlisted)), "{linker}: {unlisted} moved");
        // The program still runs.
        assert!(Command::new(&exe).status().unwrap().success(), "{linker}");
    }
}

/// The addresses of `.text.berth_run` in `exe`.
fn block(exe: &Path) -> Option<std::ops::Range<u64>> {
    let sections = run(Command::new("readelf").arg("-SW").arg(exe));
    let line = sections.lines().find(|l| l.contains(".text.berth_run"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields.iter().position(|f| *f == ".text.berth_run")?;
    let start = u64::from_str_radix(fields.get(at + 2)?, 16).ok()?;
    let size = u64::from_str_radix(fields.get(at + 4)?, 16).ok()?;
    Some(start..start + size)
}
