#!/usr/bin/env bash
# Is protocols/cli/start-order.txt still in effect in a release `ringwork` binary (issue 16's
# start RSS; protocols/cli/build.rs)? Its names carry symbol hashes that change when a
# dependency, the toolchain or a release profile setting changes (a few also when the
# function's generic parameters or its crate's type layout change); the link skips stale
# names silently, so that code lies elsewhere and the start RSS grows back unnoticed.
#
#   benches/scripts/start_order_check.sh [BINARY]   # default target/release/ringwork
#
# Prints how many of the listed names BINARY defines, how many symbols its `.text.start`
# holds and whether it has packed relative relocations (.relr.dyn); exits 1 when there is
# no `.text.start` (linked without the list) or any name is missing — each can cost a
# 64 KiB window or more (5 of 806 missing after a change in the engine: +0.15 MiB).
# Regenerate the list:
# `benches/scripts/start_profile.sh > protocols/cli/start-order.txt`, then build again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/release/ringwork}
list=$here/../../protocols/cli/start-order.txt
# Names compared without ThinLTO's `.llvm.NUMBER` suffix, as build.rs's linker script does.
read -r total found placed start_kib < <(nm --defined-only "$bin" | python3 -c '
import subprocess, sys
strip = lambda name: name.split(".llvm.")[0]
listed = {strip(name) for name in open(sys.argv[1]).read().split()}
lo = hi = 0
for line in subprocess.run(["readelf", "-SW", sys.argv[2]], capture_output=True, text=True).stdout.splitlines():
    fields = line.replace("[ ", "[").split()
    if len(fields) > 5 and fields[1] == ".text.start":
        lo = int(fields[3], 16)
        hi = lo + int(fields[5], 16)
found, placed = set(), 0
for fields in map(str.split, sys.stdin):
    if len(fields) == 3 and strip(fields[2]) in listed:
        found.add(strip(fields[2]))
        placed += lo <= int(fields[0], 16) < hi
print(len(listed), len(found), placed, (hi - lo) // 1024)' "$list" "$bin")
echo "start-order.txt: $found of $total names defined in $bin; $placed symbols in .text.start ($start_kib KiB)"
sections=$(readelf -SW "$bin")
if grep -q '\.relr\.dyn' <<<"$sections"; then
    echo "packed relative relocations: yes"
else
    echo "packed relative relocations: no (glibc < 2.36 where it was built, or RINGWORK_PLAIN_LINK=1)"
fi
if [ "$start_kib" -eq 0 ]; then
    echo "not in effect: no .text.start (RINGWORK_PLAIN_LINK=1, another linker)" >&2
    exit 1
fi
if [ "$found" -lt "$total" ]; then
    echo "stale ($((total - found)) names missing): regenerate with" \
        "benches/scripts/start_profile.sh > protocols/cli/start-order.txt" >&2
    exit 1
fi
