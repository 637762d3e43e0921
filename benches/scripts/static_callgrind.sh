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
# shellcheck source=lib/callgrind.sh
source "$here/lib/callgrind.sh"
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
# The server is woken for callgrind_control by a GET (requests counted below).
wake() { curl -fs "$url"; }
control() { callgrind_control_waking "$server" wake "$1"; }
control -z
wrk -t1 -c"$conns" -d"${secs}s" "$url" >"$out/wrk.txt"
control -d
kill -KILL $server
wait $server 2>/dev/null || true
requests=$(awk '/requests in/ {print $1}' "$out/wrk.txt")
callgrind_report "$out" "$requests" requests request
