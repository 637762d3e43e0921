#!/usr/bin/env bash
# Coverage-guided fuzzing on a stable toolchain (no `cargo +nightly fuzz`).
#
# Builds the targets against libfuzzer-sys with SanitizerCoverage instrumentation (the flags
# cargo-fuzz passes, minus -Zsanitizer=address, which needs nightly: memory errors in
# `unsafe` code are not detected, but ringwork-protocols forbids `unsafe`). RUSTFLAGS apply to
# the target triple only, so build scripts and proc macros stay uninstrumented. Panics,
# failed assertions, debug assertions and overflow checks all abort and are reported as
# crashes (artifacts in fuzz/artifacts/<target>/).
#
# Usage: fuzz/run-stable.sh <target> [seconds] [extra libFuzzer flags...]
#   fuzz/run-stable.sh http_request 600
#   fuzz/run-stable.sh line 300 -jobs=1
# Environment: CARGO_TARGET_DIR (default fuzz/target), NICE (default 10), BUILD_ONLY=1
# (build, do not run).
set -euo pipefail

target=${1:?usage: run-stable.sh <target> [seconds] [libFuzzer flags...]}
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))

here=$(cd "$(dirname "$0")" && pwd)
triple=$(rustc -vV | sed -n 's/^host: //p')
target_dir=${CARGO_TARGET_DIR:-$here/target}

export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks"

cargo build --release --manifest-path "$here/Cargo.toml" --target "$triple" \
  --target-dir "$target_dir" --bin "$target"
[ "${BUILD_ONLY:-0}" = 1 ] && exit 0

corpus=$here/corpus/$target
artifacts=$here/artifacts/$target
mkdir -p "$corpus" "$artifacts"
# libFuzzer writes new inputs to the first corpus directory; keep the committed seeds
# apart from the generated ones (fuzz/corpus-gen/ is not committed).
generated=$here/corpus-gen/$target
mkdir -p "$generated"

exec nice -n "${NICE:-10}" "$target_dir/$triple/release/$target" \
  -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$@" "$generated" "$corpus"
