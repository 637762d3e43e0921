//! Build script of the `ringwork` binary: in release builds, hands the linker the order of
//! the functions that start-up and the first requests run (`start-order.txt`), so that
//! they sit together at the start of `.text` instead of spread over its 8 MB (issue 16's
//! start RSS: the kernel maps whole page-cache folios around each fault, so code spread
//! over the binary makes most of it resident; docs/operations.md, "Memory at start and per
//! connection").
//!
//! `start-order.txt` is written by `benches/scripts/start_profile.sh` from a release
//! binary. Names the link does not define (the list is stale after a dependency or profile
//! change renames symbols) are skipped silently: the binary is the same, only less compact.
//! Only for x86_64 Linux with the toolchain's default linker (rust-lld, which knows
//! `--symbol-ordering-file`): a build that picks its own linker in RUSTFLAGS, or sets
//! `RINGWORK_NO_SYMBOL_ORDER=1`, links without it.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=start-order.txt");
    println!("cargo:rerun-if-env-changed=RINGWORK_NO_SYMBOL_ORDER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let release = var("PROFILE") == "release";
    let default_linker = var("TARGET") == "x86_64-unknown-linux-gnu"
        && !["linker", "fuse-ld", "link-self-contained"]
            .iter()
            .any(|flag| var("CARGO_ENCODED_RUSTFLAGS").contains(flag));
    let opted_out = var("RINGWORK_NO_SYMBOL_ORDER") == "1";
    if !(release && default_linker) || opted_out {
        return;
    }
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("start-order.txt");
    if order.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
