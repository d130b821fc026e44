//! Links the `berth` binary for less resident memory, in two ways.
//!
//! **The code a running berth executes, as one block** (a release build for Linux):
//! `layout.txt` lists those functions, recorded by `bench/memory/layout.sh`, and the
//! linker script made of it (`layout.rs`) puts them at the start of the text. The kernel
//! maps code in blocks of 64 KiB or more around each page touched, so code run at start
//! and on every request, spread over the whole binary, kept most of it resident: about
//! 6 MB less at rest (docs/benchmarks.md). `BERTH_TEXT_LAYOUT=off` links without it
//! (for a linker that reads no linker scripts, such as mold).
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
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let wanted = std::env::var("BERTH_TEXT_LAYOUT").map_or(true, |v| v != "off");
    if release && wanted && target.contains("-linux") {
        let list = std::fs::read_to_string(
            std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
                .join("layout.txt"),
        )
        .expect("crates/berth/layout.txt");
        let script =
            layout::script(&list).unwrap_or_else(|e| panic!("crates/berth/layout.txt, {e}"));
        let out =
            std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("layout.ld");
        std::fs::write(&out, script).expect("the linker script written to OUT_DIR");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", out.display());
    }
    let host = std::env::var("HOST").unwrap_or_default();
    if target != host || !target.ends_with("-linux-gnu") {
        return;
    }
    if glibc_at_least(2, 36) && linker_packs() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
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
