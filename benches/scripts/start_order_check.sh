#!/usr/bin/env bash
# Is protocols/cli/start-order.txt still in effect in a release `ringwork` binary (issue 16's
# start RSS; protocols/cli/build.rs)? Its names carry symbol hashes that change when a
# dependency, the toolchain or a release profile setting changes; the link skips stale names
# silently, so the start-up code spreads out again and the start RSS grows back unnoticed.
#
#   benches/scripts/start_order_check.sh [BINARY]   # default target/release/ringwork
#
# Prints how many of the listed names BINARY defines and whether it has packed relative
# relocations (.relr.dyn); exits 1 when fewer than 90% of the names are defined (regenerate the list:
# `benches/scripts/start_profile.sh > protocols/cli/start-order.txt`, then build again).
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
if [ $((found * 10)) -lt $((total * 9)) ]; then
    echo "stale: regenerate with benches/scripts/start_profile.sh > protocols/cli/start-order.txt" >&2
    exit 1
fi
