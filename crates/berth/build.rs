//! Links the `berth` binary with packed relative relocations (`DT_RELR`) where the C
//! library and the linker of this machine support them (glibc 2.36 and later, GNU ld 2.38
//! and later), building for this machine.
//!
//! A position-independent executable carries one relocation per pointer in its data;
//! berth has about 50,000, 0.74 MiB that the dynamic loader reads at every start and that
//! then stay resident. Packed, they take a few KiB: about 0.7 MiB less resident memory
//! for the daemon's whole life (measured in docs/benchmarks.md). A binary linked this way
//! needs glibc 2.36 to start, so only a build for the machine's own glibc gets them.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
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
