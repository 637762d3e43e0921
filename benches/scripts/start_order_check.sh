#!/usr/bin/env bash
# Is protocols/cli/start-order.txt still in effect in a release `ringwork` binary (issue 16's
# start RSS; protocols/cli/build.rs)? Its names carry symbol hashes that change when a
# dependency, the toolchain or a release profile setting changes; the link skips stale names
# silently, so the start-up code spreads out again and the start RSS grows back unnoticed.
#
#   benches/scripts/start_order_check.sh [BINARY]   # default target/release/ringwork
#
# Prints how many of the listed names BINARY defines, how far apart they lie and whether it
# has packed relative relocations (.relr.dyn); exits 1 when the listed functions are spread
# out (linked without the list) or any name is missing — every one can cost a 64 KiB window
# or more: 26 of 806 gone after a change in the engine made the start RSS 0.55 MiB larger
# (names with a `.llvm.NUMBER` suffix, ~60, change with any change to their crate's code;
# the others with a dependency, toolchain or release-profile change). Regenerate the list:
# `benches/scripts/start_profile.sh > protocols/cli/start-order.txt`, then build again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/release/ringwork}
list=$here/../../protocols/cli/start-order.txt
defined=$(nm --defined-only "$bin" | awk '{print $3}' | sort -u)
total=$(sort -u "$list" | wc -l)
found=$(sort -u "$list" | comm -12 - <(echo "$defined") | wc -l)
echo "start-order.txt: $found of $total names defined in $bin"
sections=$(readelf -SW "$bin")
if grep -q '\.relr\.dyn' <<<"$sections"; then
    echo "packed relative relocations: yes"
else
    echo "packed relative relocations: no (glibc < 2.36 where it was built, or RINGWORK_PLAIN_LINK=1)"
fi
# In effect, the listed functions lie together: their span of addresses is about the sum
# of their sizes (1.0 MB), not the whole text (8.5 MB).
read -r span sum < <(nm -S --defined-only "$bin" | python3 -c '
import sys
listed = set(open(sys.argv[1]).read().split())
spans = [(int(f[0], 16), int(f[1], 16)) for f in map(str.split, sys.stdin) if len(f) == 4 and f[3] in listed]
lo, hi = min(at for at, _ in spans), max(at + size for at, size in spans)
print(hi - lo, sum(size for _, size in spans))' "$list")
echo "listed functions: $((sum / 1024)) KiB, spread over $((span / 1024)) KiB of code"
if [ "$found" -lt "$total" ]; then
    echo "stale ($((total - found)) names missing): regenerate with" \
        "benches/scripts/start_profile.sh > protocols/cli/start-order.txt" >&2
    exit 1
fi
if [ "$span" -gt $((sum * 3 / 2)) ]; then
    echo "not in effect: linked without start-order.txt (RINGWORK_PLAIN_LINK=1, another linker)" >&2
    exit 1
fi
