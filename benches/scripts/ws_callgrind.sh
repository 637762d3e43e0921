#!/usr/bin/env bash
# User-space instructions per echoed message of `ringwork serve ws-echo` (issue 19), counted
# by callgrind: instruction counts do not move with the load of other processes, unlike
# timings on a shared machine.
#
#   benches/scripts/ws_callgrind.sh [BINARY] [OUT_DIR]
#
# Starts BINARY (default target/release/ringwork) under `valgrind --tool=callgrind`, warms
# it up with `ringwork-load ws`, then runs the load generator twice (FEW and MANY messages,
# -n, CONNS connections, SIZE-byte binary messages, one in flight each), the server's
# counters zeroed before and dumped after each run; the figure is the difference of
# instructions over the difference of messages, so each run's connection set-up and
# teardown (handshakes, accepts, closes) cancel out.
# The dumps stay in OUT_DIR (default a temporary directory) for callgrind_annotate.
# Env: CONNS (50), SIZE (128), FEW (5000), MANY (25000), BACKEND (uring), PORT (18090),
# LOAD_BIN (target/release/ringwork-load).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/callgrind.sh
source "$here/lib/callgrind.sh"
bin=${1:-$here/../../target/release/ringwork}
out=${2:-$(mktemp -d)}
load=${LOAD_BIN:-$here/../../target/release/ringwork-load}
conns=${CONNS:-50}
size=${SIZE:-128}
port=${PORT:-18090}
mkdir -p "$out"
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
    "$bin" serve ws-echo --listen "tcp:$port:interface=127.0.0.1" --cores 1 \
    --backend "${BACKEND:-uring}" 2>"$out/server.log" &
server=$!
trap 'kill -KILL $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    if curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/" >/dev/null

load_run() { # messages json
    "$load" ws "ws://127.0.0.1:$port/" --cores 1 -c "$conns" --in-flight 1 -s "$size" \
        -n "$1" -d 600s --json "$2" >/dev/null 2>&1
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$2"
}
# The server is woken for callgrind_control by a plain `GET /` (answered with a line of text).
wake() { curl -fs "http://127.0.0.1:$port/"; }
control() { callgrind_control_waking "$server" wake "$@"; }
measure() { # name messages -> "instructions messages"
    control -z
    local n
    n=$(load_run "$2" "$out/$1.json")
    control -d
    local dump
    dump=$(ls -t "$out"/callgrind.out.*.* 2>/dev/null | head -1)
    echo "$(callgrind_total "$dump") $n"
}
load_run 2000 "$out/warm.json" >/dev/null
read -r i1 m1 <<<"$(measure few "${FEW:-5000}")"
read -r i2 m2 <<<"$(measure many "${MANY:-25000}")"
kill -KILL $server
wait $server 2>/dev/null || true
trap - EXIT
echo "dumps: $out"
awk -v i1="$i1" -v m1="$m1" -v i2="$i2" -v m2="$m2" 'BEGIN {
    printf "few: %d messages, %d instructions; many: %d messages, %d instructions\n", m1, i1, m2, i2
    printf "instructions/message: %.0f\n", (i2 - i1) / (m2 - m1) }'
