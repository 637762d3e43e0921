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
# after `@` (`always@1m`: --splice always --splice-pipe 1m; 64 KiB when absent), and may end
# in `+rps` (`off+rps`, `always@1m+rps`): that run steers loopback's receive processing to
# RPS_CPU with Receive Packet Steering (/sys/class/net/lo/queues/rx-0/rps_cpus, needs root;
# the previous mask is put back after the run and on any exit).
#
# What +rps models: on loopback, a sender's transmit runs the receiver's TCP processing in
# the sender's own context (softirq at the end of the send), so without RPS the proxy is
# charged for its peers' receive of every byte it sends (~30% of the spliced path's CPU),
# while the peers (on LOAD_CPU) are charged for the proxy's receive. With +rps every
# loopback receive runs on RPS_CPU: the proxy pays for neither receive. Behind a NIC the
# peers' receive runs on the peers' machines, but the proxy's own receive runs in softirq on
# whatever core takes the NIC's interrupt (often the proxy's): +rps is the lower bound (no
# receive at all), the plain run carries about one receive per byte, like a NIC whose
# interrupts land on the proxy's core. RPS adds an inter-processor interrupt per batch of
# packets sent to RPS_CPU (the proxy's core pays for sending it), which a NIC does not: in
# a VM each is a trap to the hypervisor, and on the 2-vCPU test VMs that costs the proxy
# more than the receive work it moves away (benches/RESULTS.md, "zero-copy, session 6").
#
# PERF=1 separates the peers' receive by attribution instead: `perf record -e cpu-clock
# -g` on the proxy during each measured run, and the share of its samples under
# `process_backlog` (loopback receive processing in the proxy's context: every packet the
# proxy sends, data or ACK, is received there by a peer's socket while RPS is off) is
# reported with the proxy's own CPU per MB without it ("own ms/MB").
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
#   BACKEND=auto (the proxy's --backend) PROXY_ARGS= (more flags for every proxy run, e.g.
#   "--send-buffer 1048576") PROXY_CPU=0 LOAD_CPU=1 RPS_CPU=$LOAD_CPU
#   PORT_BASE=18400 PERF=0
#   OUT_DIR= (default: a new mktemp -d) RINGWORK_BIN, RINGWORK_LOAD_BIN (default:
#   $CARGO_TARGET_DIR or target, /release/...; built when missing or older than the sources,
#   REBUILD=0 skips the age check)
#
# Output: one line per run, then a table of medians (min-max) per workload and mode:
# messages/s, MB/s through the proxy (both directions), proxy CPU per MB (the process's
# run time from /proc/PID/task/*/schedstat, in ns: softirq work done in its context
# included) and per message, the softirq time of PROXY_CPU per MB (/proc/stat: the
# loopback receive work done on the proxy's core, in the proxy's context or not), the
# load average at the end of the run, and the ratio against the first mode. Noise on 2-core
# VMs is +-10% and more (see /work/shared/FINDINGS.md): compare only runs of one invocation.
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
read -r -a proxy_args <<<"${PROXY_ARGS:-}"
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
RPS_CPU=${RPS_CPU:-$LOAD_CPU}
PERF=${PERF:-0}
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

# Receive Packet Steering on loopback for the +rps modes: the mask found at the start is
# put back after each such run and on any exit.
rps_file=/sys/class/net/lo/queues/rx-0/rps_cpus
rps_saved=
if [[ " $MODES " == *+rps* ]]; then
    [[ -w $rps_file ]] || { echo "error: +rps modes need a writable $rps_file (root)" >&2; exit 1; }
    rps_saved=$(cat "$rps_file")
fi
rps_set() {
    echo "$1" >"$rps_file"
}
rps_restore() {
    [[ -z $rps_saved ]] || echo "$rps_saved" >"$rps_file"
}

servers=()
cleanup() {
    local pid
    for pid in "${servers[@]}"; do stop_tree "$pid"; done
    rps_restore
}
trap cleanup EXIT

# Run time in ns of every thread of process $1 (first field of /proc/PID/task/*/schedstat).
proc_cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ t += $1 } END { printf "%d\n", t }'
}

# Softirq time of CPU $1 in clock ticks (/proc/stat).
cpu_softirq_ticks() {
    awk -v c="cpu$1" '$1 == c { print $8 }' /proc/stat
}

run_one() {
    local round=$1 workload=$2 mode=$3
    local name conns size inflight up_port proxy_port up_pid proxy_pid before after json
    IFS=: read -r name conns size inflight <<<"$workload"
    local pipe= policy=${mode%+rps} rps=0
    [[ $mode == *+rps ]] && rps=1
    [[ $policy == *@* ]] && pipe=${policy#*@}
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
        --splice "${policy%@*}" ${pipe:+--splice-pipe "$pipe"} "${proxy_args[@]}" \
        >"$OUT_DIR/proxy-$name-$mode.log" 2>&1 &
    proxy_pid=$!
    servers=("$up_pid" "$proxy_pid")
    wait_listening "$proxy_port"
    local load=("$RINGWORK_LOAD_BIN" tcp "127.0.0.1:$proxy_port" -c "$conns" -s "$size"
        --in-flight "$inflight" --cpus "$LOAD_CPU" --quiet)
    ((rps)) && rps_set "$(printf '%x' $((1 << RPS_CPU)))"
    "${load[@]}" -d "${WARMUP}s" >/dev/null
    json=$OUT_DIR/$name-$mode-$round.json
    local sirq_before sirq_after perf_pid= perf_data=$OUT_DIR/$name-$mode-$round.perf share=0
    if ((PERF)); then
        perf record -q -e cpu-clock -g -p "$proxy_pid" -o "$perf_data" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    before=$(proc_cpu_ns "$proxy_pid")
    sirq_before=$(cpu_softirq_ticks "$PROXY_CPU")
    "${load[@]}" -d "${DURATION}s" --json "$json" >/dev/null
    after=$(proc_cpu_ns "$proxy_pid")
    sirq_after=$(cpu_softirq_ticks "$PROXY_CPU")
    ((rps)) && rps_restore
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        share=$(perf report -i "$perf_data" --children --sort sym --stdio -g none 2>/dev/null |
            awk '$NF == "process_backlog" { sub(/%/, "", $1); v = $1 } END { print v + 0 }')
        rm -f "$perf_data"
    fi
    local load1
    load1=$(cut -d' ' -f1 /proc/loadavg)
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
        -v ns=$((after - before)) -v sirq=$((sirq_after - sirq_before)) -v hz="$clk_tck" \
        -v e="$errors" -v l="$load1" -v share="$share" 'BEGIN {
        cpu = ns / 1e9; mb = n * size * 2 / 1e6; soft = sirq / hz
        printf "%s\t%s\t%s\t%.0f\t%.1f\t%.3f\t%.2f\t%.1f\t%.3f\t%s\t%s\t%.1f\t%.3f\n", r, w, m,
            n / s, mb / s, (mb > 0 ? cpu * 1000 / mb : 0), (n > 0 ? cpu * 1e6 / n : 0),
            100 * cpu / s, (mb > 0 ? soft * 1000 / mb : 0), l, e, share,
            (mb > 0 ? cpu * 1000 / mb * (1 - share / 100) : 0) }' \
        | tee -a "$results"
}

printf 'round\tworkload\tmode\tmsg/s\tMB/s\tproxy ms/MB\tproxy us/msg\tbusy%%\tsoftirq ms/MB\tload\terrors\tpeers rx%%\town ms/MB\n'
for round in $(seq "$ROUNDS"); do
    for workload in $WORKLOADS; do
        for mode in $MODES; do
            run_one "$round" "$workload" "$mode"
        done
    done
done

echo
echo "medians over $ROUNDS rounds (min-max); ratios against the first mode, +rps modes against the first +rps mode:"
printf '| workload | mode | msg/s | MB/s | proxy CPU ms/MB | proxy CPU µs/msg | busy | core softirq ms/MB | load | ×msg/s | ×CPU/msg |'
((PERF)) && printf ' peers rx | own ms/MB | ×own |'
printf '\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
((PERF)) && printf -- '---:|---:|---:|'
printf '\n'
for workload in $WORKLOADS; do
    name=${workload%%:*}
    declare -A ref_rate=() ref_cpu=() ref_own=()
    for mode in $MODES; do
        group=plain
        [[ $mode == *+rps ]] && group=rps
        col() { awk -F'\t' -v w="$name" -v m="$mode" -v c="$1" '$2 == w && $3 == m { print $c }' "$results"; }
        range() { col "$1" | sort -g | awk '{ v[NR] = $1 } END { printf "%s–%s", v[1], v[NR] }'; }
        rate=$(col 4 | median)
        cpu=$(col 7 | median)
        ref_rate[$group]=${ref_rate[$group]:-$rate}
        ref_cpu[$group]=${ref_cpu[$group]:-$cpu}
        printf '| %s | %s | %s (%s) | %s | %s (%s) | %s | %s%% | %s | %s | ×%s | ×%s |' \
            "$name" "$mode" "$rate" "$(range 4)" "$(col 5 | median)" "$(col 6 | median)" \
            "$(range 6)" "$cpu" "$(col 8 | median)" "$(col 9 | median)" "$(range 10)" \
            "$(awk -v a="$rate" -v b="${ref_rate[$group]}" 'BEGIN { printf "%.2f", a / b }')" \
            "$(awk -v a="$cpu" -v b="${ref_cpu[$group]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
        if ((PERF)); then
            own=$(col 13 | median)
            ref_own[$group]=${ref_own[$group]:-$own}
            printf ' %s%% | %s (%s) | ×%s |' "$(col 12 | median)" "$own" "$(range 13)" \
                "$(awk -v a="$own" -v b="${ref_own[$group]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
        fi
        printf '\n'
    done
done
