#!/usr/bin/env bash
# User-space instructions per static-file request of `ringwork serve web` (issue 17),
# counted by callgrind (as hello_callgrind.sh does for `serve hello`): instruction counts do
# not move with the load of other processes, unlike timings on a shared machine. Kernel
# work (sendfile, opens on io_uring's workers) is not counted: see perf_stat below.
#
#   benches/scripts/static_callgrind.sh [BINARY] [OUT_DIR] [-- EXTRA SERVE ARGS]
#
# Serves a fresh root holding FILE (16 KiB of random bytes) under valgrind, warms it up with
# wrk (-t1 -c$CONNS, no pipelining: one response per request, as static_files_bench.sh),
# zeroes the counters, runs wrk for SECS, dumps them and prints instructions per request.
# Env: FILE_SIZE (16384), CONNS (4), SECS (5), BACKEND (uring), PORT (18081).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/release/ringwork}
out=${2:-$(mktemp -d)}
shift $(( $# < 2 ? $# : 2 ))
[[ ${1:-} == -- ]] && shift
conns=${CONNS:-4}
secs=${SECS:-5}
port=${PORT:-18081}
root=$(mktemp -d)
chmod 755 "$root"
head -c "${FILE_SIZE:-16384}" /dev/urandom >"$root/mid.bin"
chmod 644 "$root/mid.bin"
mkdir -p "$out"
url="http://127.0.0.1:$port/mid.bin"
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
    "$bin" serve web --root "$root" --listen "tcp:$port:interface=127.0.0.1" --cores 1 \
    --backend "${BACKEND:-uring}" "$@" 2>"$out/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$root"' EXIT
for _ in $(seq 1 300); do
    if curl -fs "$url" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -fsS "$url" >/dev/null
wrk -t1 -c"$conns" -d2s "$url" >/dev/null
# callgrind_control is served when the server runs, not while it waits in the kernel: each
# request is followed by a GET that wakes the server (one request, counted below).
control() {
    callgrind_control "$1" "$server" >/dev/null &
    local pid=$!
    while kill -0 $pid 2>/dev/null; do
        curl -fs "$url" >/dev/null || true
        sleep 0.2
    done
}
control -z
wrk -t1 -c"$conns" -d"${secs}s" "$url" >"$out/wrk.txt"
control -d
kill -KILL $server
wait $server 2>/dev/null || true
requests=$(awk '/requests in/ {print $1}' "$out/wrk.txt")
dump=$(ls -t "$out"/callgrind.out.*.1 2>/dev/null | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "dump: $dump"
echo "requests: $requests"
echo "instructions: $total"
echo "instructions/request: $(awk -v t="$total" -v r="$requests" 'BEGIN {printf "%.0f", t / r}')"
