#!/usr/bin/env bash
# User-space instructions per query of `ringwork serve dns` over UDP (issue 20), counted by
# callgrind: instruction counts do not move with the load of other processes, unlike
# timings on a shared machine.
#
#   benches/scripts/dns_callgrind.sh [BINARY] [OUT_DIR]
#
# Makes dns_bench.sh's zone and query mix (HOSTS=1000 names, 80% existing A, 10% NXDOMAIN,
# 5% CNAME, 5% MX), starts BINARY (default target/release/ringwork) under `valgrind
# --tool=callgrind`, warms it up with one pass of dnsperf over the queries (so the answer
# cache holds them, as in a long run), zeroes the counters, runs dnsperf at RATE queries/s
# for SECS seconds (RATE=0: as fast as 200 queries in flight allow, so the slowed-down
# server is saturated and answers in bursts, as under load), dumps the counters and prints
# instructions per completed query.
# The dump stays in OUT_DIR (default a temporary directory) for callgrind_annotate.
# Env: RATE (4000), SECS (5), BACKEND (uring), PORT (19590), SERVER_ARGS (extra `serve dns`
# flags, e.g. "--batch-wait 32,100us").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/release/ringwork}
out=${2:-$(mktemp -d)}
rate=${RATE:-4000}
secs=${SECS:-5}
port=${PORT:-19590}
mkdir -p "$out"
# shellcheck source=lib/callgrind.sh
source "$here/lib/callgrind.sh"
# shellcheck source=lib/dns_workload.sh
source "$here/lib/dns_workload.sh"
write_dns_workload "$out" 1000
zone=$out/example.zone
queries=$out/queries.txt
# shellcheck disable=SC2086  # SERVER_ARGS are words
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
    "$bin" serve dns --zone "$zone" --cores 1 --listen "udp:$port:interface=127.0.0.1" \
    --backend "${BACKEND:-uring}" ${SERVER_ARGS:-} 2>"$out/server.log" &
server=$!
trap 'kill -KILL $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    if dig @127.0.0.1 -p "$port" +time=1 +tries=1 +short host1.example.com A 2>/dev/null | grep -q '^10\.'; then
        break
    fi
    sleep 0.1
done
dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -n 1 -q 50 -c 1 -T 1 >/dev/null
# The server is woken for callgrind_control by a query (answered, not counted: a few per dump).
wake() { dig @127.0.0.1 -p "$port" +time=1 +tries=1 +short host2.example.com A; }
control() { callgrind_control_waking "$server" wake "$1"; }
control -z
limit=()
if ((rate > 0)); then limit=(-Q "$rate"); fi
dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -l "$secs" "${limit[@]}" -q 200 -c 1 -T 1 >"$out/dnsperf.txt"
control -d
kill -KILL $server
wait $server 2>/dev/null || true
trap - EXIT
completed=$(awk '/Queries completed:/ { print $3 }' "$out/dnsperf.txt")
callgrind_report "$out" "$completed" "queries completed" query
