#!/usr/bin/env bash
# TCP proxy: copying through user space against splice(2) in the kernel. Runs
# `ringwork serve tcp-proxy` in front of `ringwork serve echo` with each --splice mode, loaded
# by `ringwork-load tcp` (echo ping-pong through the proxy, so every byte crosses the proxy
# twice), runs interleaved (round 1: every workload x mode, round 2: ...).
#
# CPU layout on a 2-core machine: the proxy ALONE on PROXY_CPU (0); the upstream echo server
# AND the load generator share LOAD_CPU (1). The proxy's CPU time per byte (bulk) or per
# message (small) is the figure that compares the modes; throughput is capped by whatever
# saturates first (often LOAD_CPU): read "busy" (the proxy's CPU time / wall time) first.
#
# Workloads (WORKLOADS, name:connections:size:in-flight):
#   bulk:4:65536:4      4 connections, 64 KiB messages, 4 in flight each (a transfer)
#   medium:16:16384:2   16 connections, 16 KiB messages, 2 in flight each
#   small:100:128:1     100 connections, 128 B messages, one at a time (request/response)
# Modes (MODES): off (always copy), always (splice from the first byte), 64k (the default:
# splice a direction after 64 KiB of bulk reads). A mode may name a splice pipe capacity
# after `@` (`always@1m`: --splice always --splice-pipe 1m; 64 KiB when absent).
#
# Each measured run: start the echo server and the proxy on fresh ports, warm up with a
# separate WARMUP-second load run (its connections close; the measured run opens new ones,
# so a connection's switch to splice falls inside the measured run as it would in
# production), then the measured DURATION-second run with the proxy's utime+stime read from
# /proc before and after.
#
# Settings (environment):
#   ROUNDS=3 DURATION=5 WARMUP=1 MODES="off always 64k"
#   WORKLOADS="bulk:4:65536:4 medium:16:16384:2 small:100:128:1"
#   BACKEND=auto (the proxy's --backend) PROXY_CPU=0 LOAD_CPU=1 PORT_BASE=18400
#   OUT_DIR= (default: a new mktemp -d) RINGWORK_BIN, RINGWORK_LOAD_BIN (default:
#   $CARGO_TARGET_DIR or target, /release/...; built when missing or older than the sources,
#   REBUILD=0 skips the age check)
#
# Output: one line per run, then a table of medians (min-max) per workload and mode:
# messages/s, MB/s through the proxy (both directions), proxy CPU per MB and per message,
# and the ratio against the first mode. Noise on 2-core VMs is +-10% and more (see
# /work/shared/FINDINGS.md): compare only runs of one invocation.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib/common.sh
source "$here/lib/common.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
MODES=${MODES:-"off always 64k"}
WORKLOADS=${WORKLOADS:-"bulk:4:65536:4 medium:16:16384:2 small:100:128:1"}
BACKEND=${BACKEND:-auto}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18400}
next_port=$PORT_BASE
OUT_DIR=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$OUT_DIR"

target_dir=${CARGO_TARGET_DIR:-$repo/target}
RINGWORK_BIN=${RINGWORK_BIN:-$target_dir/release/ringwork}
RINGWORK_LOAD_BIN=${RINGWORK_LOAD_BIN:-$target_dir/release/ringwork-load}
ensure_release_bins "$repo" "$target_dir" ringwork ringwork-load

results=$OUT_DIR/runs.tsv
: >"$results"
echo "results in $OUT_DIR" >&2

wait_listening() {
    local _
    for _ in $(seq 200); do
        listening "$1" && return 0
        sleep 0.05
    done
    echo "error: nothing listens on port $1 after 10 s" >&2
    exit 1
}

servers=()
cleanup() {
    local pid
    for pid in "${servers[@]}"; do stop_tree "$pid"; done
}
trap cleanup EXIT

run_one() {
    local round=$1 workload=$2 mode=$3
    local name conns size inflight up_port proxy_port up_pid proxy_pid before after json
    IFS=: read -r name conns size inflight <<<"$workload"
    local pipe=
    [[ $mode == *@* ]] && pipe=${mode#*@}
    fresh_port
    up_port=$port
    taskset -c "$LOAD_CPU" "$RINGWORK_BIN" serve echo --cores 1 \
        --listen "tcp:$up_port:interface=127.0.0.1" >"$OUT_DIR/echo.log" 2>&1 &
    up_pid=$!
    servers=("$up_pid")
    wait_listening "$up_port"
    fresh_port
    proxy_port=$port
    taskset -c "$PROXY_CPU" "$RINGWORK_BIN" serve tcp-proxy --cores 1 --backend "$BACKEND" \
        --listen "tcp:$proxy_port:interface=127.0.0.1" --upstream "127.0.0.1:$up_port" \
        --splice "${mode%@*}" ${pipe:+--splice-pipe "$pipe"} \
        >"$OUT_DIR/proxy-$name-$mode.log" 2>&1 &
    proxy_pid=$!
    servers=("$up_pid" "$proxy_pid")
    wait_listening "$proxy_port"
    local load=("$RINGWORK_LOAD_BIN" tcp "127.0.0.1:$proxy_port" -c "$conns" -s "$size"
        --in-flight "$inflight" --cpus "$LOAD_CPU" --quiet)
    "${load[@]}" -d "${WARMUP}s" >/dev/null
    json=$OUT_DIR/$name-$mode-$round.json
    before=$(tree_cpu_ticks "$proxy_pid")
    "${load[@]}" -d "${DURATION}s" --json "$json" >/dev/null
    after=$(tree_cpu_ticks "$proxy_pid")
    stop_tree "$proxy_pid"
    stop_tree "$up_pid"
    servers=()
    wait_released "$proxy_port"
    wait_released "$up_port"
    local requests secs errors
    requests=$(json_field "$json" requests)
    secs=$(json_field "$json" duration_s)
    errors=$(json_field "$json" unsuccessful)
    awk -v r="$round" -v w="$name" -v m="$mode" -v n="$requests" -v s="$secs" -v size="$size" \
        -v ticks=$((after - before)) -v hz="$clk_tck" -v e="$errors" 'BEGIN {
        cpu = ticks / hz; mb = n * size * 2 / 1e6
        printf "%s\t%s\t%s\t%.0f\t%.1f\t%.3f\t%.2f\t%.1f\t%s\n", r, w, m, n / s, mb / s,
            (mb > 0 ? cpu * 1000 / mb : 0), (n > 0 ? cpu * 1e6 / n : 0), 100 * cpu / s, e }' \
        | tee -a "$results"
}

printf 'round\tworkload\tmode\tmsg/s\tMB/s\tproxy ms/MB\tproxy us/msg\tbusy%%\terrors\n'
for round in $(seq "$ROUNDS"); do
    for workload in $WORKLOADS; do
        for mode in $MODES; do
            run_one "$round" "$workload" "$mode"
        done
    done
done

echo
echo "medians over $ROUNDS rounds (min-max), ratios against mode ${MODES%% *}:"
printf '| workload | mode | msg/s | MB/s | proxy CPU ms/MB | proxy CPU µs/msg | busy | ×msg/s | ×CPU/msg |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|---:|\n'
for workload in $WORKLOADS; do
    name=${workload%%:*}
    ref_rate= ref_cpu=
    for mode in $MODES; do
        col() { awk -F'\t' -v w="$name" -v m="$mode" -v c="$1" '$2 == w && $3 == m { print $c }' "$results"; }
        range() { col "$1" | sort -g | awk '{ v[NR] = $1 } END { printf "%s–%s", v[1], v[NR] }'; }
        rate=$(col 4 | median)
        cpu=$(col 7 | median)
        ref_rate=${ref_rate:-$rate}
        ref_cpu=${ref_cpu:-$cpu}
        printf '| %s | %s | %s (%s) | %s | %s | %s | %s%% | ×%s | ×%s |\n' "$name" "$mode" \
            "$rate" "$(range 4)" "$(col 5 | median)" "$(col 6 | median)" "$cpu" \
            "$(col 8 | median)" \
            "$(awk -v a="$rate" -v b="$ref_rate" 'BEGIN { printf "%.2f", a / b }')" \
            "$(awk -v a="$cpu" -v b="$ref_cpu" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
    done
done
