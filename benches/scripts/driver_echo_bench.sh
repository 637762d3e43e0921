#!/usr/bin/env bash
# Echo benchmark: echo servers under each backend, loaded by the closed-loop client
# (examples/echo_load.rs), runs interleaved. The servers: `driver`, the bare echo server on
# the platform driver (benches/examples/driver_echo.rs), and `engine`, the echo example of
# the engine (engine/examples/echo.rs, one core).
#
# For each of ROUNDS rounds and each server/backend pair in RUNS (e.g. driver/uring,
# driver/poll, driver/uring, driver/poll, ...): start the server pinned to SERVER_CPU on a
# fresh port, wait until it accepts, run echo_load pinned to CLIENT_CPU, measure the
# server's CPU time (utime+stime from /proc/PID/stat) per echoed message, stop the server
# and wait until the port is released. Then print a markdown table: median msg/s, min-max,
# median server CPU per message, and the ratio of the first two pairs.
#
# Everything targets 127.0.0.1 and stops by itself. Settings (environment):
#   ROUNDS=3 DURATION=10 WARMUP=2 CONNECTIONS=100 SIZE=128
#   BACKENDS="uring poll"   backends of the driver server, in the order they are interleaved
#   RUNS="driver:uring driver:poll"   server:backend pairs in interleaving order (default:
#                           driver with each of BACKENDS); engine_vs_driver_echo.sh sets
#                           RUNS="engine:uring driver:uring"
#   LOAD_BACKEND=auto       the client's backend, the same for every run
#   DATA_PATHS="fixed-files=1024,bundle"   the optional io_uring data paths
#                           (RINGWORK_URING_PATHS) of servers whose backend is written
#                           `uring+paths`; other servers run with them all off, e.g.
#                           RUNS="driver:uring driver:uring+paths"
#   SERVER_CPU=0 CLIENT_CPU=1 PORT_BASE=17100
# Server CPU per message counts the whole client run (connect, warm-up, measurement)
# divided by every message of that run. Noise on 2-core VMs is +-5-10% and more (see
# FINDINGS.md): compare only runs measured in the same invocation.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-100}
SIZE=${SIZE:-128}
BACKENDS=${BACKENDS:-uring poll}
RUNS=${RUNS:-$(for b in $BACKENDS; do printf 'driver:%s ' "$b"; done)}
LOAD_BACKEND=${LOAD_BACKEND:-auto}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-17100}
DATA_PATHS=${DATA_PATHS:-fixed-files=1024,bundle}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

for tool in taskset timeout awk; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done

read -r -a runs <<<"$RUNS"
for run in "${runs[@]}"; do
    case $run in
    driver:* | engine:*) ;;
    *) echo "error: RUNS entry '$run' is not driver:BACKEND or engine:BACKEND" >&2; exit 1 ;;
    esac
done

echo "building the examples (release)..." >&2
cargo build --release -p ringwork-benches --examples >&2
if [[ " ${runs[*]}" == *" engine:"* ]]; then
    cargo build --release -p ringwork --example echo >&2
fi
target_dir=$(cargo metadata --format-version 1 --no-deps |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
driver_bin=$target_dir/release/examples/driver_echo
engine_bin=$target_dir/release/examples/echo
load_bin=$target_dir/release/examples/echo_load
[[ -x $driver_bin && -x $load_bin ]] || { echo "error: examples not found in $target_dir" >&2; exit 1; }

work=$(mktemp -d)
results=$work/results.tsv
: >"$results"
server_pid=

cleanup() {
    if [[ -n $server_pid ]]; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

clk_tck=$(getconf CLK_TCK)

# Alive and not a zombie (a child that exited stays visible to kill -0 until reaped).
alive() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z ]]
}

# utime + stime of process $1, in clock ticks (fields 14 and 15 of /proc/PID/stat, counted
# after the parenthesised command name).
cpu_ticks() {
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# Steal ticks of the whole machine (8th value of the cpu line of /proc/stat).
steal_ticks() {
    awk '$1 == "cpu" { print $9 }' /proc/stat
}

# True if some socket listens on TCP port $1 (any address, IPv4 or IPv6).
listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v port="$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == port { found = 1 }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

next_port=$PORT_BASE
port=
# Sets `port` to a port nothing listens on, a new one for every run (not in a subshell:
# `next_port` must advance).
fresh_port() {
    local tries=0
    while listening "$next_port"; do
        next_port=$((next_port + 1))
        tries=$((tries + 1))
        ((tries < 200)) || { echo "error: no free port from $PORT_BASE" >&2; exit 1; }
    done
    port=$next_port
    next_port=$((next_port + 1))
}

# Waits (at most 10 s) until server $1 accepts connections on port $2.
wait_accepting() {
    local _
    for _ in $(seq 100); do
        alive "$1" || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Stops server $1 with SIGINT (so it prints its stats), SIGKILL after 5 s.
stop_server() {
    local _
    kill -INT "$1" 2>/dev/null || true
    for _ in $(seq 50); do
        alive "$1" || break
        sleep 0.1
    done
    if alive "$1"; then
        echo "warning: server $1 ignored SIGINT for 5 s; killing it" >&2
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
    server_pid=
}

# Waits (at most 10 s) until nothing listens on port $1 any more.
wait_released() {
    local _
    for _ in $(seq 100); do
        listening "$1" || return 0
        sleep 0.1
    done
    echo "warning: port $1 still has a listener 10 s after the server stopped" >&2
}

# Value of key $2 in the key=value line of file $1 that starts with $3.
field() {
    { grep "^$3" "$1" || true; } | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# Starts server $1 (driver or engine) with backend $2 on `port`, logging to $3; sets
# `server_pid` and `stats_prefix` (how its exit line of statistics starts).
start_server() {
    local server=$1 backend=$2 log=$3 paths=off
    # `uring+paths`: io_uring with the optional data paths of DATA_PATHS.
    if [[ $backend == *+paths ]]; then
        backend=${backend%+paths}
        paths=$DATA_PATHS
    fi
    case $server in
    driver)
        stats_prefix=driver_echo:
        RINGWORK_BACKEND=$backend RINGWORK_URING_PATHS=$paths taskset -c "$SERVER_CPU" "$driver_bin" \
            --listen "127.0.0.1:$port" >"$log" 2>&1 &
        ;;
    engine)
        # One core, its reactor thread pinned to the same CPU as the whole process.
        stats_prefix=echo:
        RINGWORK_BACKEND=$backend RINGWORK_URING_PATHS=$paths taskset -c "$SERVER_CPU" "$engine_bin" \
            --listen "127.0.0.1:$port" --cpus "$SERVER_CPU" >"$log" 2>&1 &
        ;;
    esac
    server_pid=$!
}

run_one() {
    local label=${1/://} round=$2 server=${1%%:*} backend=${1#*:}
    local server_log client_log cpu0 cpu1 steal0 steal1 t0 t1
    fresh_port
    server_log=$work/server-$server-$backend-$round.log
    client_log=$work/client-$server-$backend-$round.log
    start_server "$server" "$backend" "$server_log"
    if ! wait_accepting "$server_pid" "$port"; then
        echo "error: $label server did not accept on port $port:" >&2
        cat "$server_log" >&2
        exit 1
    fi
    cpu0=$(cpu_ticks "$server_pid")
    steal0=$(steal_ticks)
    t0=$(date +%s%N)
    if ! RINGWORK_BACKEND=$LOAD_BACKEND RINGWORK_URING_PATHS=off timeout $((DURATION + WARMUP + 60)) \
        taskset -c "$CLIENT_CPU" "$load_bin" --connect "127.0.0.1:$port" \
        --connections "$CONNECTIONS" --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP" \
        >"$client_log" 2>&1; then
        echo "error: echo_load failed against the $label server:" >&2
        cat "$client_log" >&2
        exit 1
    fi
    if ! alive "$server_pid"; then
        echo "error: the $label server died during the run:" >&2
        cat "$server_log" >&2
        exit 1
    fi
    cpu1=$(cpu_ticks "$server_pid")
    steal1=$(steal_ticks)
    t1=$(date +%s%N)
    stop_server "$server_pid"
    wait_released "$port"

    local rate total p50 p99 client_backend cpe us_per_msg busy
    rate=$(field "$client_log" msg_per_s result:)
    total=$(field "$client_log" total_messages result:)
    p50=$(field "$client_log" p50_us result:)
    p99=$(field "$client_log" p99_us result:)
    client_backend=$(field "$client_log" backend result:)
    cpe=$(field "$server_log" completions_per_enter "$stats_prefix")
    us_per_msg=$(awk -v t=$((cpu1 - cpu0)) -v hz="$clk_tck" -v n="$total" \
        'BEGIN { printf "%.2f", (n > 0) ? t * 1e6 / hz / n : 0 }')
    # Share of the client run the server spent on a CPU: near 100% means the server was
    # the bottleneck; well below, the client or the machine was.
    busy=$(awk -v t=$((cpu1 - cpu0)) -v hz="$clk_tck" -v ns=$((t1 - t0)) \
        'BEGIN { printf "%.0f", (ns > 0) ? 100 * t / hz / (ns / 1e9) : 0 }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$round" "$rate" "$us_per_msg" \
        "$p50" "$p99" "${cpe:-0}" "$((steal1 - steal0))" "$busy" >>"$results"
    printf '%-12s round %s  port %s  %8s msg/s  server %6s us CPU/msg, busy %3s%%  p50 %s us  p99 %s us  server completions/enter %s  steal %s ticks  (client: %s)\n' \
        "$label" "$round" "$port" "$rate" "$us_per_msg" "$busy" "$p50" "$p99" "${cpe:-?}" \
        "$((steal1 - steal0))" "$client_backend" >&2
}

median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

column_of() { # label column
    awk -F'\t' -v b="$1" -v c="$2" '$1 == b { print $c }' "$results"
}

echo "echo benchmark (${runs[*]}): $(uname -r), $(nproc) CPUs, rounds=$ROUNDS duration=${DURATION}s" \
    "warmup=${WARMUP}s connections=$CONNECTIONS size=${SIZE}B server CPU $SERVER_CPU," \
    "client CPU $CLIENT_CPU (client backend $LOAD_BACKEND)" >&2
for round in $(seq "$ROUNDS"); do
    for run in "${runs[@]}"; do
        run_one "$run" "$round"
    done
done

echo
echo "Echo, $CONNECTIONS connections x $SIZE B, ${DURATION} s after ${WARMUP} s warm-up," \
    "$ROUNDS interleaved rounds, server on CPU $SERVER_CPU, load on CPU $CLIENT_CPU ($(uname -r))"
echo
echo "| server/backend | median msg/s | min-max msg/s | median server us CPU/msg | min-max us CPU/msg | median server busy | median completions/enter |"
echo "|---|---:|---:|---:|---:|---:|---:|"
mapfile -t unique < <(printf '%s\n' "${runs[@]}" | tr : / | awk '!seen[$0]++')
declare -A med_rate med_cpu
for label in "${unique[@]}"; do
    med_rate[$label]=$(column_of "$label" 3 | median)
    med_cpu[$label]=$(column_of "$label" 4 | median)
    min=$(column_of "$label" 3 | sort -g | head -n 1)
    max=$(column_of "$label" 3 | sort -g | tail -n 1)
    cpu_min=$(column_of "$label" 4 | sort -g | head -n 1)
    cpu_max=$(column_of "$label" 4 | sort -g | tail -n 1)
    cpe=$(column_of "$label" 7 | median)
    busy=$(column_of "$label" 9 | median)
    printf '| %s | %.0f | %.0f-%.0f | %.2f | %.2f-%.2f | %.0f%% | %.1f |\n' "$label" \
        "${med_rate[$label]}" "$min" "$max" "${med_cpu[$label]}" "$cpu_min" "$cpu_max" \
        "$busy" "$cpe"
done
if ((${#unique[@]} >= 2)); then
    a=${unique[0]} b=${unique[1]}
    awk -v a="$a" -v b="$b" -v ra="${med_rate[$a]}" -v rb="${med_rate[$b]}" \
        -v ca="${med_cpu[$a]}" -v cb="${med_cpu[$b]}" 'BEGIN {
        printf "\n%s vs %s: msg/s x%.2f, server CPU per message x%.2f\n", a, b,
            (rb > 0) ? ra / rb : 0, (cb > 0) ? ca / cb : 0 }'
fi
