#!/usr/bin/env bash
# Context switches and CPU time per static-file request of `ringwork serve web` (issue 17):
# `perf stat -e context-switches,cpu-clock` on the server process (all its threads, the
# io_uring workers included) while wrk fetches a 16 KiB file (-t1 -c$CONNS, SECS).
#
#   benches/scripts/static_perf_stat.sh [BINARY] [-- EXTRA SERVE ARGS]
#
# Env: FILE_SIZE (16384), CONNS (20), SECS (5), BACKEND (uring), PORT (18082),
# SERVER_CPU (0), CLIENT_CPU (1). cpu-clock is a timing: noisy on a shared machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/release/ringwork}
shift $(( $# < 1 ? $# : 1 ))
[[ ${1:-} == -- ]] && shift
conns=${CONNS:-20}
secs=${SECS:-5}
port=${PORT:-18082}
root=$(mktemp -d)
out=$(mktemp -d)
chmod 755 "$root"
head -c "${FILE_SIZE:-16384}" /dev/urandom >"$root/mid.bin"
chmod 644 "$root/mid.bin"
url="http://127.0.0.1:$port/mid.bin"
taskset -c "${SERVER_CPU:-0}" "$bin" serve web --root "$root" --cores 1 \
    --listen "tcp:$port:interface=127.0.0.1" --backend "${BACKEND:-uring}" "$@" \
    >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$root" "$out"' EXIT
for _ in $(seq 1 300); do
    if curl -fs "$url" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
taskset -c "${CLIENT_CPU:-1}" wrk -t1 -c"$conns" -d2s "$url" >/dev/null
perf stat -e context-switches,cpu-clock -p "$server" -o "$out/perf.txt" &
perf=$!
taskset -c "${CLIENT_CPU:-1}" wrk -t1 -c"$conns" -d"${secs}s" "$url" >"$out/wrk.txt"
kill -INT $perf
wait $perf 2>/dev/null || true
requests=$(awk '/requests in/ {print $1}' "$out/wrk.txt")
switches=$(awk '/context-switches/ {gsub(",", "", $1); print $1}' "$out/perf.txt")
clock=$(awk '/cpu-clock/ {gsub(",", "", $1); print $1}' "$out/perf.txt")
echo "requests: $requests ($(awk '/Requests\/sec/ {print $2}' "$out/wrk.txt")/s)"
echo "context-switches/request: $(awk -v s="$switches" -v r="$requests" 'BEGIN {printf "%.3f", s / r}')"
echo "cpu us/request: $(awk -v c="$clock" -v r="$requests" 'BEGIN {printf "%.2f", c * 1000 / r}')"
