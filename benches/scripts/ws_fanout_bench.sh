#!/usr/bin/env bash
# WebSocket fan-out: `ringwork serve ws-chat` on CORES cores, SUBSCRIBERS subscribers and
# one publisher from `ringwork-load ws --subscribers` (LOAD_CORES cores). On a 2-CPU machine
# the server and the load generator share the CPUs: the delivery latency includes the load
# generator's scheduling.
#
# For each RATE of RATES (publisher messages/s) and each of ROUNDS rounds: start the server
# on a fresh port, note its RSS, run the load (DURATION s measured after WARMUP), sample the
# server's RSS every 200 ms (the peak minus the idle RSS, divided by the subscribers, is the
# memory per subscriber) and its CPU time (per delivery, over the measured window), stop it. Prints one line per run
# and a table of medians.
#
# Settings (environment):
#   SUBSCRIBERS=10000  RATES="10 50 100"  ROUNDS=3  DURATION=10  WARMUP=2  SIZE=128
#   CORES=2  LOAD_CORES=2  PORT_BASE=19900  NOFILE (ulimit -n of both processes; default
#   the hard limit, which must exceed SUBSCRIBERS plus some: each process holds one
#   descriptor per subscriber)
#   RINGWORK_BIN, LOAD_BIN (default: target/release/ringwork, target/release/ringwork-load)
#   OUT_DIR (default: a new mktemp -d)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$here/../..
# shellcheck source=lib/common.sh
source "$here/lib/common.sh"

SUBSCRIBERS=${SUBSCRIBERS:-10000}
RATES=${RATES:-"10 50 100"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SIZE=${SIZE:-128}
CORES=${CORES:-2}
LOAD_CORES=${LOAD_CORES:-2}
PORT_BASE=${PORT_BASE:-19900}
NOFILE=${NOFILE:-$(ulimit -Hn)}
RINGWORK_BIN=${RINGWORK_BIN:-$root/target/release/ringwork}
LOAD_BIN=${LOAD_BIN:-$root/target/release/ringwork-load}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/ws-fanout.XXXXXX)}
mkdir -p "$OUT_DIR"

for bin in "$RINGWORK_BIN" "$LOAD_BIN"; do
    [[ -x $bin ]] || { echo "error: $bin missing (cargo build --release -p ringwork-cli -p ringwork-loadtest)" >&2; exit 1; }
done
# Each subscriber is a descriptor in both processes.
[[ $NOFILE == unlimited ]] && NOFILE=1048576
ulimit -n "$NOFILE" || { echo "error: cannot raise ulimit -n to $NOFILE (run as root or lower NOFILE)" >&2; exit 1; }
if ((NOFILE < SUBSCRIBERS + 256)); then
    echo "error: ulimit -n $NOFILE is too low for $SUBSCRIBERS subscribers" >&2
    exit 1
fi

rss_kib() {
    awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

results=$OUT_DIR/results.csv
echo "rate,round,connected,published,delivered,lost,deliveries_per_s,p50_us,p99_us,p999_us,max_us,kib_per_subscriber,cpu_us_per_delivery" >"$results"
port=$PORT_BASE
for rate in $RATES; do
    for ((round = 1; round <= ROUNDS; round++)); do
        port=$((port + 1))
        log=$OUT_DIR/server.$rate.$round.log
        "$RINGWORK_BIN" serve ws-chat --cores "$CORES" --listen "tcp:$port:interface=127.0.0.1" >"$log" 2>&1 &
        pid=$!
        tries=0
        until listening "$port"; do
            tries=$((tries + 1))
            if ((tries > 100)) || ! alive "$pid"; then
                echo "error: ws-chat did not listen on port $port; its log:" >&2
                cat "$log" >&2
                exit 1
            fi
            sleep 0.1
        done
        idle=$(rss_kib "$pid")
        # Samples "seconds cpu-ticks rss-kib" every 200 ms while the server runs.
        samples=$OUT_DIR/samples.$rate.$round
        t0=$(date +%s.%N)
        ( while alive "$pid"; do
            echo "$(date +%s.%N) $(tree_cpu_ticks "$pid") $(rss_kib "$pid")"
            sleep 0.2
        done >"$samples" ) &
        sampler=$!
        out=$OUT_DIR/load.$rate.$round.json
        "$LOAD_BIN" ws "ws://127.0.0.1:$port/" --subscribers "$SUBSCRIBERS" -R "$rate" -s "$SIZE" \
            -d "${DURATION}s" --warmup "${WARMUP}s" --cores "$LOAD_CORES" --connect-timeout 20s \
            --json "$out" >"$OUT_DIR/load.$rate.$round.txt" 2>&1 || true
        stop_tree "$pid"
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        wait_released "$port"
        python3 - "$out" "$rate" "$round" "$idle" "$samples" "$t0" "$WARMUP" "$clk_tck" >>"$results" <<'PY'
import json, sys
path, rate, rnd, idle, samples, t0, warmup, hz = sys.argv[1:9]
try:
    r = json.load(open(path))
except Exception:
    print(f"{rate},{rnd},,,,,,,,,,,")
    sys.exit()
rows = [tuple(map(float, l.split())) for l in open(samples) if len(l.split()) == 3]
lat = r["latency_us"]
n = max(r["connected"], 1)
kib = (max(rss for _, _, rss in rows) - int(idle)) / n
# Server CPU over the measured window only (after connecting and the warm-up): the
# samples nearest its start and end.
start = float(t0) + r["connect_s"] + float(warmup)
end = start + r["duration_s"]
def ticks_at(t):
    return min(rows, key=lambda row: abs(row[0] - t))
a, b = ticks_at(start), ticks_at(end)
window = max(b[0] - a[0], 1e-9)
deliveries = r["deliveries_per_sec"] * window
cpu = (b[1] - a[1]) / float(hz) * 1e6 / max(deliveries, 1)
print(f"{rate},{rnd},{r['connected']},{r['published']},{r['delivered']},{r['lost']},"
      f"{r['deliveries_per_sec']:.0f},{lat['p50']},{lat['p99']},{lat['p999']},{lat['max']},{kib:.1f},{cpu:.2f}")
PY
        tail -n 1 "$results" | awk -F, '{ printf "rate %s round %s: %s subscribers, %s published, %s delivered (%s lost), %s/s, p50 %s us p99 %s us p99.9 %s us max %s us, %s KiB/subscriber, %s us CPU/delivery\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }'
    done
done

echo
echo "Medians over $ROUNDS rounds (ws-chat on $CORES cores, $SUBSCRIBERS subscribers, ${SIZE}-byte messages, load on $LOAD_CORES cores sharing the CPUs, ${DURATION}s measured):"
python3 - "$results" <<'PY'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["delivered"]]
rates = sorted({r["rate"] for r in rows}, key=float)
def med(rs, key):
    return statistics.median(float(r[key]) for r in rs)
print("| published msg/s | subscribers | deliveries/s | lost | p50 µs | p99 µs | p99.9 µs | max µs | KiB/subscriber | server CPU µs/delivery |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for rate in rates:
    rs = [r for r in rows if r["rate"] == rate]
    print(f"| {rate} | {med(rs, 'connected'):.0f} | {med(rs, 'deliveries_per_s'):,.0f} | {med(rs, 'lost'):.0f} | {med(rs, 'p50_us'):.0f} | {med(rs, 'p99_us'):.0f} | {med(rs, 'p999_us'):.0f} | {med(rs, 'max_us'):.0f} | {med(rs, 'kib_per_subscriber'):.1f} | {med(rs, 'cpu_us_per_delivery'):.2f} |")
PY
echo "raw results: $results"
