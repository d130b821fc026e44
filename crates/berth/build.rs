//! Links the `berth` binary for less resident memory, in two ways.
//!
//! **The code a running berth executes, as one block** (a release build for this
//! machine, Linux): `layout.txt` lists those functions, recorded by
//! `bench/memory/layout.sh`, and the linker script made of it (`layout.rs`) puts them at
//! the start of the text. The kernel maps code in blocks of 64 KiB or more around each
//! page touched, so code run at start and on every request, spread over the whole
//! binary, kept most of it resident: about 5 MiB less at rest (docs/benchmarks.md). Only
//! with the linker rustc picks itself (GNU ld or LLD, both read the script; gold and
//! mold do not), and only once a program links with the script that way;
//! otherwise, or with `BERTH_TEXT_LAYOUT=off`, the binary is linked as it was, and the
//! build says why.
//!
//! **Packed relative relocations** (`DT_RELR`) where the C library and the linker of
//! this machine support them (glibc 2.36 and later, GNU ld 2.38 and later), building
//! for this machine.
//!
//! A position-independent executable carries one relocation per pointer in its data;
//! berth has about 50,000, 0.74 MiB that the dynamic loader reads at every start and that
//! then stay resident. Packed, they take a few KiB: about 0.7 MiB less resident memory
//! for the daemon's whole life (measured in docs/benchmarks.md). A binary linked this way
//! needs glibc 2.36 to start, so only a build for the machine's own glibc gets them.

use std::process::Command;

#[path = "layout.rs"]
mod layout;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=layout.rs");
    println!("cargo:rerun-if-changed=layout.txt");
    println!("cargo:rerun-if-env-changed=BERTH_TEXT_LAYOUT");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if release && target.ends_with("-linux-gnu") {
        match text_layout(&target, &host) {
            Ok(script) => {
                // `-T` and its path as two arguments: a path may hold a comma, which
                // `-Wl,` would split at.
                println!("cargo:rustc-link-arg-bins=-T");
                println!("cargo:rustc-link-arg-bins={}", script.display());
            }
            Err(why) if why.is_empty() => {}
            Err(why) => println!("cargo:warning=linked without the text layout: {why}"),
        }
    }
    if target != host || !target.ends_with("-linux-gnu") {
        return;
    }
    if glibc_at_least(2, 36) && linker_packs() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The linker script of `layout.txt`, written to `OUT_DIR`, if this build links with it;
/// otherwise why not (empty: asked not to).
fn text_layout(target: &str, host: &str) -> Result<std::path::PathBuf, String> {
    let off = std::env::var("BERTH_TEXT_LAYOUT").is_ok_and(|v| {
        ["off", "0", "no", "false"]
            .iter()
            .any(|o| v.trim().eq_ignore_ascii_case(o))
    });
    if off {
        return Err(String::new());
    }
    if target != host {
        return Err(format!("a build for {target} on {host}"));
    }
    // A linker of one's own (`target.<triple>.linker`, or `-C linker`, `-fuse-ld=…` in
    // the rustflags) may read no linker scripts.
    if std::env::var_os("RUSTC_LINKER").is_some() {
        return Err(
            "a linker is configured (target.<triple>.linker); BERTH_TEXT_LAYOUT=off silences this"
                .into(),
        );
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if let Some(flag) = flags.split('\x1f').find(|f| {
        let f = f.trim_start_matches("-C");
        f.starts_with("linker=")
            || f.contains("fuse-ld=")
            || f.contains("--ld-path")
            || f.starts_with("link-arg=-B")
    }) {
        return Err(format!(
            "the rustflags choose the linker ({flag}); BERTH_TEXT_LAYOUT=off silences this"
        ));
    }
    let dir = std::path::PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let manifest = std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?;
    let list = std::fs::read_to_string(std::path::Path::new(&manifest).join("layout.txt"))
        .map_err(|e| format!("crates/berth/layout.txt: {e}"))?;
    // A broken list is a mistake in this repository: the build stops and says where.
    let script = layout::script(&list).unwrap_or_else(|e| panic!("crates/berth/layout.txt, {e}"));
    let path = dir.join("layout.ld");
    std::fs::write(&path, script).map_err(|e| format!("{}: {e}", path.display()))?;
    // A program links with it through rustc's link driver (`cc`) and the linker rustc
    // uses: its own LLD where it ships one and uses it by default (x86_64 Linux, Rust
    // 1.90 and later), the C compiler's otherwise.
    let source = dir.join("layout-probe.c");
    std::fs::write(&source, "int main(void) { return 0; }\n").map_err(|e| e.to_string())?;
    let mut probe = Command::new("cc");
    if let Some(lld) = rustc_lld(target) {
        probe.arg("-fuse-ld=lld").arg("-B").arg(lld);
    }
    let probe = probe
        .arg(&source)
        .arg("-o")
        .arg(dir.join("layout-probe"))
        .arg("-T")
        .arg(&path)
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !probe.status.success() {
        let said = String::from_utf8_lossy(&probe.stderr);
        return Err(format!(
            "this machine's linker refused the script: {}",
            said.lines().next().unwrap_or("")
        ));
    }
    Ok(path)
}

/// The directory of the LLD that rustc links `target` with by default, if it does.
fn rustc_lld(target: &str) -> Option<std::path::PathBuf> {
    if target != "x86_64-unknown-linux-gnu" {
        return None;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(out.stdout).ok()?;
    let dir: std::path::PathBuf = [sysroot.trim(), "lib", "rustlib", target, "bin", "gcc-ld"]
        .iter()
        .collect();
    dir.join("ld.lld").exists().then_some(dir)
}

/// Whether this machine's glibc is at least `major.minor` (`getconf GNU_LIBC_VERSION`).
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.split_whitespace().nth(1) else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}

/// Whether the C compiler's linker takes `-z pack-relative-relocs` (it links a tiny
/// program with it).
fn linker_packs() -> bool {
    let dir = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into());
    let source = std::path::Path::new(&dir).join("relr-probe.c");
    if std::fs::write(&source, "int main(void) { return 0; }\n").is_err() {
        return false;
    }
    Command::new("cc")
        .arg("-Wl,-z,pack-relative-relocs,--fatal-warnings")
        .arg(&source)
        .arg("-o")
        .arg(std::path::Path::new(&dir).join("relr-probe"))
        .output()
        .is_ok_and(|o| o.status.success())
}
