#!/usr/bin/env bash
# User-space instructions per pipelined request of `ringwork serve hello` (issue 16),
# counted by callgrind: instruction counts do not move with the load of other processes,
# unlike timings on a shared machine.
#
#   benches/scripts/hello_callgrind.sh [BINARY] [OUT_DIR]
#
# Starts BINARY (default target/release/ringwork) under `valgrind --tool=callgrind`, warms it
# up with wrk (pipeline.lua, depth 16), zeroes the counters, runs wrk again (-t1 -c4 -d5s,
# depth 16), dumps the counters and prints instructions per request (wrk's response count;
# at most 4 batches in flight when wrk stops, and a few wake-up `GET /`s, are answered but
# not counted: < 0.5% here).
# The dump stays in OUT_DIR (default a temporary directory) for callgrind_annotate.
# Env: DEPTH (16), CONNS (4), SECS (5), BACKEND (uring), PORT (18080).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/callgrind.sh
source "$here/lib/callgrind.sh"
bin=${1:-$here/../../target/release/ringwork}
out=${2:-$(mktemp -d)}
depth=${DEPTH:-16}
conns=${CONNS:-4}
secs=${SECS:-5}
port=${PORT:-18080}
mkdir -p "$out"
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
    "$bin" serve hello --listen "tcp:$port:interface=127.0.0.1" --cores 1 \
    --backend "${BACKEND:-uring}" 2>"$out/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    if curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/" >/dev/null
wrk -t1 -c"$conns" -d2s -s "$here/wrk/pipeline.lua" "http://127.0.0.1:$port/" -- "$depth" >/dev/null
# The server is woken for callgrind_control by a `GET /` (requests counted below).
wake() { curl -fs "http://127.0.0.1:$port/"; }
control() { callgrind_control_waking "$server" wake "$1"; }
control -z
wrk -t1 -c"$conns" -d"${secs}s" -s "$here/wrk/pipeline.lua" "http://127.0.0.1:$port/" -- "$depth" \
    >"$out/wrk.txt"
control -d
# Under valgrind the server does not see its stop signal while it waits in io_uring_enter:
# the dump is taken, so it is killed.
kill -KILL $server
wait $server 2>/dev/null || true
trap - EXIT
requests=$(awk '/requests in/ {print $1}' "$out/wrk.txt")
callgrind_report "$out" "$requests" requests request
