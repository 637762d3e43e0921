//! Build script of the `ringwork` binary: two link settings of release builds that lower
//! its resident memory at start (issue 16; docs/operations.md, "Memory at start and per
//! connection"). The kernel maps whole page-cache folios (64 KiB windows and more) around
//! each fault, so what start-up touches decides how much of the 65 MB file is resident.
//!
//! - **Start-up code together**: the functions that start-up and the first requests run
//!   (`start-order.txt`, ~800 names) are placed in an output section of their own,
//!   `.text.start`, before `.text` (a linker script written to OUT_DIR, `INSERT BEFORE
//!   .text`), instead of spread over its 8.5 MB (code resident at start 4.0 → 1.0 MiB).
//!   `benches/scripts/start_profile.sh` writes the list from a release binary. The script
//!   matches each function's section (`.text.NAME`, `.text.unlikely.NAME` for cold ones)
//!   with any `.llvm.NUMBER` suffix, which ThinLTO gives the local functions it promotes and
//!   which changes with any code change in their crate (lld's `--symbol-ordering-file`,
//!   tried first, needs exact names: 26 of 806 went stale with one engine change, +0.55 MiB).
//!   Names that match nothing (a dependency, toolchain or profile change renames symbols)
//!   are skipped: the binary works the same, only less compact
//!   (`benches/scripts/start_order_check.sh` tells).
//! - **Packed relative relocations** (`-z pack-relative-relocs`, DT_RELR): the loader reads
//!   a 4 KiB table instead of 360 KiB of `.rela.dyn` (read-only data resident at start
//!   1.1 → 0.7 MiB). The binary then needs glibc ≥ 2.36 (the `GLIBC_ABI_DT_RELR` version),
//!   so it is used only when the building system's glibc is that new: like any glibc
//!   binary, it runs where it was built and on newer systems.
//!
//! Only for x86_64 Linux with the toolchain's default linker, rust-lld (Rust ≥ 1.90; the
//! only linker these were tried with): a build with an older toolchain,
//! a linker of its own (`linker` in Cargo's configuration, or in RUSTFLAGS) links without
//! them, and `RINGWORK_PLAIN_LINK=1` turns both off.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=start-order.txt");
    println!("cargo:rerun-if-env-changed=RINGWORK_PLAIN_LINK");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let release = var("PROFILE") == "release";
    let default_linker = var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("HOST") == var("TARGET")
        && env::var_os("RUSTC_LINKER").is_none()
        && !["linker", "fuse-ld", "link-self-contained"]
            .iter()
            .any(|flag| var("CARGO_ENCODED_RUSTFLAGS").contains(flag))
        && rustc_at_least(&var("RUSTC"), 1, 90);
    if !release || !default_linker || var("RINGWORK_PLAIN_LINK") == "1" {
        return;
    }
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("start-order.txt");
    if let Ok(names) = std::fs::read_to_string(&order) {
        let script = Path::new(&var("OUT_DIR")).join("start-order.ld");
        let mut text = String::from("SECTIONS {\n  .text.start : {\n");
        for name in names.lines().map(str::trim).filter(|name| !name.is_empty()) {
            let name = name.split(".llvm.").next().unwrap_or(name);
            text.push_str(&format!(
                "    *(.text.{name} .text.{name}.llvm.* .text.unlikely.{name} \
                 .text.unlikely.{name}.llvm.* .text.startup.{name})\n"
            ));
        }
        text.push_str("  }\n}\nINSERT BEFORE .text;\n");
        if std::fs::write(&script, text).is_ok() {
            println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
        }
    }
    if glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the compiler (`rustc -vV`: "release: 1.95.0") is at least MAJOR.MINOR, the
/// version from which it links with rust-lld by default on x86_64 Linux; false when it
/// cannot tell.
fn rustc_at_least(rustc: &str, major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new(rustc).arg("-vV").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("release: "))
        .is_some_and(|version| version_at_least(version, major, minor))
}

/// Whether the building system's glibc (`getconf GNU_LIBC_VERSION`: "glibc 2.36") is at
/// least MAJOR.MINOR; false when it cannot tell.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("glibc ")
        .is_some_and(|version| version_at_least(version, major, minor))
}

/// Whether VERSION ("2.36", "1.95.0-nightly") is at least MAJOR.MINOR.
fn version_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(have_major), Some(have_minor)) => (have_major, have_minor) >= (major, minor),
        _ => false,
    }
}
