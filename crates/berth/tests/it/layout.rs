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
    LIST.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn the_list_makes_a_script_and_a_bad_line_is_named() {
    let made = script::script(LIST).expect("layout.txt makes a script");
    assert_eq!(made.matches("*(").count(), patterns().len());
    assert!(made.ends_with("INSERT BEFORE .text;\n"));
    let err = script::script("# a comment\n_ZN5tokio*\nsome thing*\n").unwrap_err();
    assert!(err.starts_with("line 3: \"some thing*\""), "{err}");
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
    let patterns = patterns();
    let plain = |p: &&str| {
        p.trim_end_matches('*')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let rust = patterns
        .iter()
        .find(|p| p.starts_with("_ZN") && plain(p))
        .expect("a Rust pattern")
        .trim_end_matches('*');
    let c = patterns
        .iter()
        .find(|p| !p.starts_with('_') && plain(p))
        .expect("a C pattern")
        .trim_end_matches('*');
    // A Rust function under some hash, a cold one (which the compiler puts in
    // `.text.unlikely.`), a C function, and one the list does not name.
    let (hot, cold) = match rust.strip_suffix("17h") {
        Some(name) => (
            format!("{name}17h0123456789abcdefE"),
            format!("{name}17hfedcba9876543210E"),
        ),
        None => (format!("{rust}x"), format!("{rust}y")),
    };
    let c_fn = format!("{c}_variant");
    let unlisted = "berth_layout_test_not_listed";
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("t.c");
    std::fs::write(
        &source,
        format!(
            "__attribute__((noinline, used)) void f1(void) __asm__(\"{hot}\");\n\
             void f1(void) {{ __asm__ volatile(\"\"); }}\n\
             __attribute__((noinline, used, cold)) void f2(void) __asm__(\"{cold}\");\n\
             void f2(void) {{ __asm__ volatile(\"\"); }}\n\
             __attribute__((noinline, used)) void f3(void) __asm__(\"{c_fn}\");\n\
             void f3(void) {{ __asm__ volatile(\"\"); }}\n\
             __attribute__((noinline, used)) void {unlisted}(void) {{ __asm__ volatile(\"\"); }}\n\
             int main(void) {{ f1(); f2(); f3(); {unlisted}(); return 0; }}\n"
        ),
    )
    .unwrap();
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
            .arg(format!("-Wl,-T,{}", ld.display())));
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
        for name in [&hot, &cold, &c_fn] {
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
