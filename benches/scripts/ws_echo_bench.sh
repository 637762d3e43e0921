#!/usr/bin/env bash
# WebSocket echo, one server core: `ringwork serve ws-echo` against tokio-tungstenite
# (benches/peers/tokio, tokio-ws-echo) and Node's `ws` (scripts/ws-peers/ws_peer.js), each
# server pinned to SERVER_CPU, loaded by `ringwork-load ws` pinned to CLIENT_CPU, runs
# interleaved.
#
# For each of ROUNDS rounds and each server of SERVERS: start it on a fresh port, wait until
# it listens, run `ringwork-load ws` (CONNECTIONS connections, IN_FLIGHT messages in flight
# each, SIZE-byte binary messages, closed loop, DURATION seconds after a 1 s warm-up), stop
# it. Prints one line per run and a table of medians: messages/s, p50 and p99 latency,
# server CPU time per message (utime+stime of the server process from /proc, and the user
# share of it), and the ratio of messages/s to the first server's. Each run also records
# what else ran on the server's CPU (busy ticks of that CPU in /proc/stat minus the
# server's) and the machine's steal time: this machine is shared, so read those before
# trusting a difference. The load generator's own CPU (task-clock from `perf stat`, when perf
# is installed) gives its CPU per message and how busy it kept its core: near 100% it, not
# only the server, sets the rate (it pays the server socket's loopback receive for every
# message it sends, as the server pays its socket's).
#
# Settings (environment):
#   SERVERS="ringwork tokio-tungstenite node-ws"  ROUNDS=3  DURATION=10  CONNECTIONS=50
#   IN_FLIGHT=1  SIZE=128  SERVER_CPU=0  CLIENT_CPU=1  PORT_BASE=19630
#   MAX_OTHER=20: the medians use only rounds where other processes took at most this
#   percentage of the server's CPU in every server's run (all rounds if none was quiet)
#   RATE (total messages/s; empty: closed loop) for fixed-rate runs, where CPU per
#   message compares servers that are not saturated
#   DATA_PATHS="fixed-files=1024,bundle": the optional io_uring data paths of the
#   `ringwork-paths` server (RINGWORK_URING_PATHS; `ringwork` runs with them all off), to
#   measure them with SERVERS="ringwork ringwork-paths"
#   RINGWORK_BIN, LOAD_BIN (default: target/release/ringwork, target/release/ringwork-load)
#   TOKIO_WS_BIN (default: benches/peers/bin/tokio-ws-echo; build: benches/peers/install.sh)
#   OUT_DIR (default: a new mktemp -d)
# Node's ws comes from scripts/install-ws-test-deps.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$here/../..
# shellcheck source=lib/common.sh
source "$here/lib/common.sh"

SERVERS=${SERVERS:-"ringwork tokio-tungstenite node-ws"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
IN_FLIGHT=${IN_FLIGHT:-1}
SIZE=${SIZE:-128}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-19630}
RATE=${RATE:-}
DATA_PATHS=${DATA_PATHS:-fixed-files=1024,bundle}
MAX_OTHER=${MAX_OTHER:-20}
RINGWORK_BIN=${RINGWORK_BIN:-$root/target/release/ringwork}
LOAD_BIN=${LOAD_BIN:-$root/target/release/ringwork-load}
TOKIO_WS_BIN=${TOKIO_WS_BIN:-$root/benches/peers/bin/tokio-ws-echo}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/ws-bench.XXXXXX)}
mkdir -p "$OUT_DIR"

for bin in "$RINGWORK_BIN" "$LOAD_BIN"; do
    [[ -x $bin ]] || { echo "error: $bin missing (cargo build --release -p ringwork-cli -p ringwork-loadtest)" >&2; exit 1; }
done

# Starts server $1 on port $2; sets `pid`.
start_server() {
    local name=$1 port=$2 log=$OUT_DIR/$1.log
    case $name in
        ringwork)
            RINGWORK_URING_PATHS=off taskset -c "$SERVER_CPU" "$RINGWORK_BIN" serve ws-echo \
                --cores 1 --listen "tcp:$port:interface=127.0.0.1" >"$log" 2>&1 &
            ;;
        ringwork-paths)
            RINGWORK_URING_PATHS=$DATA_PATHS taskset -c "$SERVER_CPU" "$RINGWORK_BIN" \
                serve ws-echo --cores 1 --listen "tcp:$port:interface=127.0.0.1" >"$log" 2>&1 &
            ;;
        tokio-tungstenite)
            taskset -c "$SERVER_CPU" "$TOKIO_WS_BIN" --port "$port" --cores 1 >"$log" 2>&1 &
            ;;
        node-ws)
            # ws_peer.js picks its own port; a fixed one is passed through WS_PORT.
            (cd "$root/scripts/ws-peers" && WS_PORT=$port exec taskset -c "$SERVER_CPU" \
                node ws_peer.js server </dev/zero >"$log" 2>&1) &
            ;;
        *)
            echo "error: unknown server $name" >&2
            exit 1
            ;;
    esac
    pid=$!
    local tries=0
    until listening "$port"; do
        tries=$((tries + 1))
        if ((tries > 100)) || ! alive "$pid"; then
            echo "error: $name did not listen on port $port; its log:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# utime and stime of process $1 (clock ticks), "user system".
user_sys_ticks() {
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'
}

# Busy (not idle, not iowait, not steal) ticks of CPU $1, and the machine's steal ticks.
cpu_busy_ticks() {
    awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

results=$OUT_DIR/results.csv
echo "round,server,rps,p50_us,p99_us,cpu_us_per_msg,user_pct,other_cpu_pct,steal_pct,load_us_per_msg,load_busy_pct" >"$results"
# The generator's CPU time, when perf can count it (task-clock is a software event).
load_stat=()
if command -v perf >/dev/null && perf stat -x, -e task-clock -o /dev/null -- true 2>/dev/null; then
    load_stat=(perf stat -x, -e task-clock -o)
fi
port=$PORT_BASE
for ((round = 1; round <= ROUNDS; round++)); do
    for server in $SERVERS; do
        port=$((port + 1))
        start_server "$server" "$port"
        out=$OUT_DIR/$server.$round.json
        read -r u0 s0 < <(user_sys_ticks "$pid")
        busy0=$(cpu_busy_ticks "$SERVER_CPU")
        steal0=$(steal_ticks)
        t0=$(date +%s.%N)
        load_perf=$OUT_DIR/$server.$round.load.perf
        rm -f "$load_perf"
        RINGWORK_URING_PATHS=off ${load_stat[@]:+"${load_stat[@]}" "$load_perf" --} \
            taskset -c "$CLIENT_CPU" "$LOAD_BIN" ws "ws://127.0.0.1:$port/" --cores 1 \
            -c "$CONNECTIONS" --in-flight "$IN_FLIGHT" -s "$SIZE" -d "${DURATION}s" \
            ${RATE:+-R "$RATE"} --warmup 1s --json "$out" >"$OUT_DIR/$server.$round.txt" 2>&1 || true
        read -r u1 s1 < <(user_sys_ticks "$pid")
        busy1=$(cpu_busy_ticks "$SERVER_CPU")
        steal1=$(steal_ticks)
        t1=$(date +%s.%N)
        kill_tree "$pid" TERM
        wait "$pid" 2>/dev/null || true
        python3 - "$out" "$round" "$server" "$((u1 - u0))" "$((s1 - s0))" "$clk_tck" \
            "$((busy1 - busy0))" "$((steal1 - steal0))" "$t0" "$t1" "$load_perf" >>"$results" <<'PY'
import json, sys
path, rnd, server, user, system, hz, busy, steal, t0, t1, load_perf = sys.argv[1:12]
user, system, hz, busy, steal = int(user), int(system), float(hz), int(busy), int(steal)
try:
    r = json.load(open(path))
except Exception:
    print(f"{rnd},{server},,,,,,,")
    sys.exit()
lat = r["latency_us"]
# The CPU ticks cover the warm-up too: messages over warm-up and run, at the run's rate.
done = r["rps"] * (r["duration_s"] + 1.0)
wall = float(t1) - float(t0)
cpu = (user + system) / hz * 1e6 / done if done else float("nan")
user_pct = 100.0 * user / (user + system) if user + system else float("nan")
other = 100.0 * max(busy - user - system, 0) / hz / wall
steal_pct = 100.0 * steal / hz / wall / 2
# The generator's task-clock (ms) covers its whole life: connecting, warm-up, run.
load_ms = float("nan")
try:
    for line in open(load_perf):
        f = line.strip().split(",")
        if len(f) >= 3 and f[2].startswith("task-clock") and f[0][:1].isdigit():
            load_ms = float(f[0])
except OSError:
    pass
load_cpu = load_ms * 1e3 / done if done else float("nan")
load_busy = 100.0 * load_ms / 1e3 / wall
print(f"{rnd},{server},{r['rps']:.0f},{lat['p50']},{lat['p99']},{cpu:.2f},{user_pct:.0f},{other:.0f},{steal_pct:.1f},{load_cpu:.2f},{load_busy:.0f}")
PY
        tail -n 1 "$results" | awk -F, '{ printf "round %s %-18s %9s msg/s  p50 %s us  p99 %s us  %s us CPU/msg (%s%% user)  other on cpu %s%%  steal %s%%  load %s us/msg, %s%% busy\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }'
    done
done

echo
echo "Medians over $ROUNDS rounds (server on CPU $SERVER_CPU, ringwork-load ws -c $CONNECTIONS --in-flight $IN_FLIGHT -s $SIZE ${RATE:+-R $RATE }on CPU $CLIENT_CPU, ${DURATION}s each):"
python3 - "$results" "$MAX_OTHER" $SERVERS <<'PY'
import csv, statistics, sys
path, max_other, servers = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
rows = [r for r in csv.DictReader(open(path)) if r["rps"] not in ("", "None", "nan")]
# A round is quiet when other processes took at most MAX_OTHER% of the server's CPU in
# every server's run of it: medians compare servers over the same rounds.
rounds = sorted({r["round"] for r in rows}, key=int)
quiet = [n for n in rounds
         if all(float(r["other_cpu_pct"]) <= max_other for r in rows if r["round"] == n)]
used = quiet or rounds
def med(s, key):
    v = [float(r[key]) for r in rows if r["server"] == s and r["round"] in used]
    return statistics.median(v) if v else float("nan")
ref = servers[0]
if quiet:
    print(f"(medians over the {len(quiet)} of {len(rounds)} rounds where other processes took at most {max_other:.0f}% of the server's CPU in every run)")
else:
    print(f"(no round was quiet, other processes took more than {max_other:.0f}% of the server's CPU in some run of each: medians over all {len(rounds)} rounds, messages/s is not comparable)")
print("| server | messages/s | p50 µs | p99 µs | CPU µs/message | user % | load µs/message | load busy % | ringwork / it |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in servers:
    rps = med(s, "rps")
    print(f"| {s} | {rps:,.0f} | {med(s, 'p50_us'):.0f} | {med(s, 'p99_us'):.0f} | {med(s, 'cpu_us_per_msg'):.2f} | {med(s, 'user_pct'):.0f} | {med(s, 'load_us_per_msg'):.2f} | {med(s, 'load_busy_pct'):.0f} | {med(ref, 'rps') / rps:.2f} |")
PY
echo "raw results: $results"
