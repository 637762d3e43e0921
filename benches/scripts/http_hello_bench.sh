#!/usr/bin/env bash
# HTTP/1.1 "hello world" benchmark: `ringwork serve hello` against nginx (and any other
# server), loaded by wrk, runs interleaved.
#
# For each of ROUNDS rounds, each mode of MODES and each server of SERVERS, in that order
# (round 1: plain A B, pipeline A B; round 2: ...): start the server pinned to SERVER_CPU
# on a fresh port, wait until the port listens and `GET /` answers 2xx, run a warm-up wrk
# (discarded), then the measured `wrk -t1 -cCONNECTIONS -dDURATION --latency` pinned to
# CLIENT_CPU, stop the server and wait until the port is released. Prints one markdown
# table per mode and writes the raw results (results.csv, results.json), the wrk and server
# logs and the tables (summary.md) to OUT_DIR.
#
# Settings (environment):
#   SERVERS="ringwork nginx"  servers, interleaved in this order; the first one is the
#                     reference of the ratio columns. Entries:
#                       ringwork  ${RINGWORK_BIN:-${CARGO_TARGET_DIR:-target}/release/ringwork}
#                                 serve hello --listen tcp:PORT:interface=127.0.0.1 --cores 1
#                       nginx     nginx (NGINX_BIN, default from PATH or /usr/sbin/nginx) with
#                                 benches/peers/nginx/hello.conf.template: 1 worker, no
#                                 access log, keepalive_requests 100000000
#                       python    a stand-in: Python's http.server (threaded, HTTP/1.1
#                                 keep-alive) answering "Hello, World!" to everything
#                       custom:NAME:CMD  any command; @PORT@ in CMD is replaced by the port.
#                                 CMD may contain spaces: it runs up to the next entry (a
#                                 word that is ringwork, nginx, python or starts with
#                                 custom:), or separate entries with ';' to be explicit:
#                                 SERVERS="nginx; custom:py:python3 -m http.server @PORT@ --bind 127.0.0.1"
#   MODES="plain pipeline"   plain: one request per write; pipeline: PIPELINE requests per
#                     write (benches/scripts/wrk/pipeline.lua)
#   PIPELINE=16       pipelining depth of the pipeline mode
#   ROUNDS=5 DURATION=10 WARMUP=2 CONNECTIONS=100   (seconds; WARMUP=0 skips the warm-up)
#   SERVER_CPU=0 CLIENT_CPU=1   taskset CPUs of the server (all its processes/threads) and wrk
#   PORT_BASE=18080   first port; every run takes the next free one
#   OUT_DIR=          where the results go (default: a new mktemp -d directory, printed)
#   ALLOW_ERRORS=0    1: record runs where wrk saw socket errors or non-2xx/3xx responses
#                     instead of failing (they are counted in results.csv)
#
# Server CPU per request = (utime+stime+cutime+cstime, summed over the server process and
# all its descendants, e.g. nginx's master and worker) at the end of the measured wrk run,
# minus the same at its start, divided by the requests wrk completed in that run. Time of
# children that exit during the run without being reaped is lost; nothing else of the
# machine is counted. This is the figure of the tables. results.csv also has
# core_us_per_req: busy jiffies of SERVER_CPU in /proc/stat over the run, per request, which
# includes anything else that ran on that CPU (e.g. interrupts) but is sampled at timer
# ticks and can miss work that wakes up in step with them (it read 5x lower than the process
# times for a server woken by delayed-ACK timers). "busy" = server CPU time / wall time of
# the run; "others on server CPU" = SERVER_CPU's busy time not spent by the server (other
# processes, interrupts), a few % on a quiet machine: when it is high, req/s of that run is
# meaningless (CPU per request holds up better). Steal = steal ticks of the whole machine.
# wrk's latency percentiles are per write: per batch of PIPELINE requests in the pipeline
# mode. Noise on 2-core VMs is +-5-10% and more (see FINDINGS.md): compare only runs of the
# same invocation.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
fi
if (($# > 0)); then
    echo "error: no arguments are accepted (settings are environment variables; see --help)" >&2
    exit 2
fi

SERVERS=${SERVERS:-ringwork nginx}
MODES=${MODES:-plain pipeline}
PIPELINE=${PIPELINE:-16}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-100}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-18080}
ALLOW_ERRORS=${ALLOW_ERRORS:-0}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
RINGWORK_BIN=${RINGWORK_BIN:-${CARGO_TARGET_DIR:-target}/release/ringwork}
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
nginx_template=$repo/benches/peers/nginx/hello.conf.template
pipeline_lua=$repo/benches/scripts/wrk/pipeline.lua

for tool in taskset timeout awk wrk curl ps; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool is required (scripts/install-http-test-deps.sh installs wrk and curl)" >&2
        exit 1
    }
done

# --- parse SERVERS into names[] and cmds[] (cmds: "" for the built-in servers) ----------
names=()
cmds=()
builtin_name() { [[ $1 == ringwork || $1 == nginx || $1 == python ]]; }
add_custom() { # "custom:NAME:CMD"
    local rest=${1#custom:}
    local name=${rest%%:*} cmd=${rest#*:}
    if [[ $rest != *:* || -z $name || -z ${cmd// /} ]]; then
        echo "error: SERVERS entry '$1' is not custom:NAME:CMD" >&2
        exit 1
    fi
    names+=("$name")
    cmds+=("$cmd")
}
IFS=';' read -r -a chunks <<<"$SERVERS"
for chunk in "${chunks[@]}"; do
    read -r -a words <<<"$chunk"
    custom=
    for w in "${words[@]}"; do
        if builtin_name "$w" || [[ $w == custom:* ]]; then
            [[ -z $custom ]] || add_custom "$custom"
            custom=
            if [[ $w == custom:* ]]; then
                custom=$w
            else
                names+=("$w")
                cmds+=("")
            fi
        elif [[ -n $custom ]]; then
            custom+=" $w"
        else
            echo "error: unknown server '$w' in SERVERS (ringwork, nginx, python or custom:NAME:CMD)" >&2
            exit 1
        fi
    done
    [[ -z $custom ]] || add_custom "$custom"
done
((${#names[@]} > 0)) || { echo "error: SERVERS is empty" >&2; exit 1; }
if [[ $(printf '%s\n' "${names[@]}" | sort | uniq -d) ]]; then
    echo "error: server names in SERVERS must be unique: ${names[*]}" >&2
    exit 1
fi
read -r -a modes <<<"$MODES"
for mode in "${modes[@]}"; do
    [[ $mode == plain || $mode == pipeline ]] || {
        echo "error: unknown mode '$mode' in MODES (plain, pipeline)" >&2
        exit 1
    }
done
for name in "${names[@]}"; do
    case $name in
    ringwork)
        [[ -x $RINGWORK_BIN ]] || {
            echo "error: $RINGWORK_BIN not found; build it with" \
                "'cargo build --release -p ringwork-cli --bin ringwork' or set RINGWORK_BIN" >&2
            exit 1
        }
        ;;
    nginx)
        [[ -x $NGINX_BIN ]] || {
            echo "error: nginx not found (NGINX_BIN=$NGINX_BIN); run scripts/install-http-test-deps.sh" >&2
            exit 1
        }
        ;;
    python)
        command -v python3 >/dev/null || { echo "error: python3 is required" >&2; exit 1; }
        ;;
    esac
done

# --- output and scratch directories ------------------------------------------------------
if [[ -n ${OUT_DIR:-} ]]; then
    mkdir -p "$OUT_DIR"
else
    OUT_DIR=$(mktemp -d -t http-hello-bench.XXXXXX)
fi
OUT_DIR=$(cd "$OUT_DIR" && pwd)
mkdir -p "$OUT_DIR/logs"
# Run directories of the servers (nginx pid file and temp paths, python's document root):
# world-readable, since nginx's worker runs as nobody when started as root.
scratch=$(mktemp -d -t http-hello-run.XXXXXX)
chmod 755 "$scratch"
csv=$OUT_DIR/results.csv
echo "round,mode,server,port,requests,seconds,req_per_s,transfer_bytes_per_s,p50_us,p99_us,server_cpu_ticks,cpu_us_per_req,core_us_per_req,server_busy_pct,others_pct,steal_ticks,socket_errors,non_2xx" >"$csv"

server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill_tree "$server_pid" KILL
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Process trees, their CPU ticks, steal ticks (shared with tls_bench.sh and
# http_proxy_bench.sh; the functions defined below take precedence over its versions).
# shellcheck source=benches/scripts/lib/common.sh
source "$repo/benches/scripts/lib/common.sh"

# Busy ticks of CPU $1: user+nice+system+irq+softirq of its cpuN line of /proc/stat.
core_busy_ticks() {
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
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

# Waits (at most 15 s) until server $1 listens on port $2 and answers GET / with 2xx.
wait_ready() {
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)); do
        alive "$1" || return 1
        if listening "$2" &&
            curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$2/" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# Stops server $1 and its descendants with SIGTERM, SIGKILL after 5 s.
stop_server() {
    local pids _
    pids=$(tree_pids "$1")
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 50); do
        alive "$1" || break
        sleep 0.1
    done
    if alive "$1"; then
        echo "warning: server $1 ignored SIGTERM for 5 s; killing it" >&2
    fi
    # Leftover descendants too (a worker outliving its master would keep the port).
    local pid
    for pid in $pids; do
        if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    wait "$1" 2>/dev/null || true
    server_pid=
}

# Waits (at most 10 s) until nothing listens on port $1 any more.
wait_released() {
    local _
    for _ in $(seq 200); do
        listening "$1" || return 0
        sleep 0.05
    done
    echo "warning: port $1 still has a listener 10 s after the server stopped" >&2
}

# A tiny keep-alive HTTP/1.1 server: the `python` stand-in. TCP_NODELAY, since headers and
# body are two writes (Nagle + delayed ACKs would cap it at ~25 requests/s per connection).
python_hello='
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        body = b"Hello, World!"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 4096
    def handle_error(self, request, client_address):
        pass  # connections reset by wrk at its exit
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'

# Starts server $1 (index $2 in names/cmds) on `port`, logging to $3; sets `server_pid`.
start_server() {
    local name=$1 i=$2 log=$3 rundir
    rundir=$scratch/$name-$port
    mkdir -p "$rundir"
    chmod 755 "$rundir"
    if [[ -n ${cmds[$i]} ]]; then
        local cmd=${cmds[$i]//@PORT@/$port}
        (cd "$rundir" && exec taskset -c "$SERVER_CPU" bash -c "exec $cmd") >"$log" 2>&1 &
    else
        case $name in
        ringwork)
            taskset -c "$SERVER_CPU" "$RINGWORK_BIN" serve hello \
                --listen "tcp:$port:interface=127.0.0.1" --cores 1 >"$log" 2>&1 &
            ;;
        nginx)
            sed -e "s|@PORT@|$port|g" -e "s|@RUNDIR@|$rundir|g" "$nginx_template" >"$rundir/nginx.conf"
            taskset -c "$SERVER_CPU" "$NGINX_BIN" -p "$rundir" -c "$rundir/nginx.conf" >"$log" 2>&1 &
            ;;
        python)
            taskset -c "$SERVER_CPU" python3 -c "$python_hello" "$port" >"$log" 2>&1 &
            ;;
        esac
    fi
    server_pid=$!
}

# Runs wrk against `port` for $1 seconds in mode $2, output to $3.
run_wrk() {
    local seconds=$1 mode=$2 out=$3 script=()
    [[ $mode == pipeline ]] && script=(-s "$pipeline_lua")
    local args=(-t1 "-c$CONNECTIONS" "-d${seconds}s" --latency "${script[@]}" "http://127.0.0.1:$port/")
    [[ $mode == pipeline ]] && args+=(-- "$PIPELINE")
    timeout $((seconds + 60)) taskset -c "$CLIENT_CPU" wrk "${args[@]}" >"$out" 2>&1
}

# wrk duration ("250.00us", "1.20ms", "2.00s", "1.00m") in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 1 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : 0
        printf "%.1f", n * f }'
}

# wrk size per second ("19.71MB") in bytes per second (wrk's units are powers of 1024).
to_bytes() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "B") ? 1 : (u == "KB") ? 1024 : (u == "MB") ? 1048576 : (u == "GB") ? 1073741824 : (u == "TB") ? 1099511627776 : 0
        printf "%.0f", n * f }'
}

run_one() {
    local round=$1 mode=$2 name=$3 i=$4
    local tag=$name-$mode-$round
    local server_log=$OUT_DIR/logs/server-$tag.log wrk_log=$OUT_DIR/logs/wrk-$tag.txt
    local cpu0 cpu1 steal0 steal1 core0 core1 t0 t1
    fresh_port
    start_server "$name" "$i" "$server_log"
    if ! wait_ready "$server_pid" "$port"; then
        if alive "$server_pid"; then
            echo "error: $name did not answer GET / with 2xx on port $port within 15 s:" >&2
        else
            echo "error: $name exited before answering on port $port:" >&2
        fi
        cat "$server_log" >&2
        exit 1
    fi
    if ((WARMUP > 0)); then
        if ! run_wrk "$WARMUP" "$mode" "$OUT_DIR/logs/warmup-$tag.txt"; then
            echo "error: the warm-up wrk failed against $name ($mode):" >&2
            cat "$OUT_DIR/logs/warmup-$tag.txt" >&2
            exit 1
        fi
    fi
    cpu0=$(tree_cpu_ticks "$server_pid")
    core0=$(core_busy_ticks "$SERVER_CPU")
    steal0=$(steal_ticks)
    t0=$(date +%s%N)
    if ! run_wrk "$DURATION" "$mode" "$wrk_log"; then
        echo "error: wrk failed against $name ($mode):" >&2
        cat "$wrk_log" >&2
        exit 1
    fi
    if ! alive "$server_pid"; then
        echo "error: $name died during the run:" >&2
        cat "$server_log" >&2
        exit 1
    fi
    cpu1=$(tree_cpu_ticks "$server_pid")
    core1=$(core_busy_ticks "$SERVER_CPU")
    steal1=$(steal_ticks)
    t1=$(date +%s%N)
    stop_server "$server_pid"
    wait_released "$port"

    local requests seconds rate transfer p50 p99 sock_err non2xx
    requests=$(awk '/ requests in / { print $1 }' "$wrk_log")
    seconds=$(awk '/ requests in / { s = $4; sub(/,$/, "", s); print s }' "$wrk_log")
    rate=$(awk '/^Requests\/sec:/ { print $2 }' "$wrk_log")
    transfer=$(awk '/^Transfer\/sec:/ { print $2 }' "$wrk_log")
    p50=$(awk '$1 == "50%" { print $2 }' "$wrk_log")
    p99=$(awk '$1 == "99%" { print $2 }' "$wrk_log")
    sock_err=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$wrk_log")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$wrk_log")
    sock_err=${sock_err:-0} non2xx=${non2xx:-0}
    if [[ -z $requests || -z $rate || $requests == 0 ]]; then
        echo "error: could not read a result from wrk's output against $name ($mode):" >&2
        cat "$wrk_log" >&2
        exit 1
    fi
    if ((sock_err > 0 || non2xx > 0)); then
        echo "ERROR: wrk against $name ($mode, round $round) reported errors:" >&2
        grep -E 'Socket errors|Non-2xx' "$wrk_log" | sed 's/^/    /' >&2
        if [[ $ALLOW_ERRORS != 1 ]]; then
            echo "(full output in $wrk_log; ALLOW_ERRORS=1 records such runs instead)" >&2
            exit 1
        fi
    fi
    local cpu_us core_us busy others
    cpu_us=$(awk -v t=$((cpu1 - cpu0)) -v hz="$clk_tck" -v n="$requests" \
        'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
    core_us=$(awk -v t=$((core1 - core0)) -v hz="$clk_tck" -v n="$requests" \
        'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
    # Share of the run the server spent on a CPU: near 100% means the server was the
    # bottleneck; well below, wrk or the machine was.
    busy=$(awk -v t=$((cpu1 - cpu0)) -v hz="$clk_tck" -v ns=$((t1 - t0)) \
        'BEGIN { printf "%.0f", (ns > 0) ? 100 * t / hz / (ns / 1e9) : 0 }')
    # Share of the run SERVER_CPU spent on anything but the server (other processes,
    # interrupts): well above a few % means the numbers of this run are contaminated.
    others=$(awk -v t=$((core1 - core0 - cpu1 + cpu0)) -v hz="$clk_tck" -v ns=$((t1 - t0)) \
        'BEGIN { v = (ns > 0) ? 100 * t / hz / (ns / 1e9) : 0; printf "%.0f", (v > 0) ? v : 0 }')
    echo "$round,$mode,$name,$port,$requests,$seconds,$rate,$(to_bytes "${transfer:-0B}"),$(to_us "${p50:-0us}"),$(to_us "${p99:-0us}"),$((cpu1 - cpu0)),$cpu_us,$core_us,$busy,$others,$((steal1 - steal0)),$sock_err,$non2xx" >>"$csv"
    printf '%-10s %-8s round %s  port %s  %10s req/s  %9s/s  server %7s us CPU/req (core %s), busy %3s%%, others on its CPU %s%%  p50 %s  p99 %s  steal %s ticks\n' \
        "$name" "$mode" "$round" "$port" "$rate" "${transfer:-?}" "$cpu_us" "$core_us" "$busy" "$others" \
        "${p50:-?}" "${p99:-?}" "$((steal1 - steal0))" >&2
}

median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

column_of() { # mode server column-name
    awk -F, -v m="$1" -v s="$2" -v c="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $2 == m && $3 == s { print $col[c] }' "$csv"
}

echo "HTTP hello benchmark (${names[*]}; modes ${modes[*]}): $(uname -r), $(nproc) CPUs," \
    "rounds=$ROUNDS duration=${DURATION}s warmup=${WARMUP}s connections=$CONNECTIONS" \
    "pipeline=$PIPELINE, server CPU $SERVER_CPU, wrk CPU $CLIENT_CPU; results in $OUT_DIR" >&2
# Other load on the machine skews req/s (not much the CPU per request): say so up front.
idle_pct() {
    local a b
    a=$(awk '$1 == "cpu" { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    sleep 1
    b=$(awk '$1 == "cpu" { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
        printf "%.0f", (y[2] > x[2]) ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 100 }'
}
idle=$(idle_pct)
if ((idle < 90)); then
    echo "warning: the machine is only $idle% idle before the benchmark (busiest processes:" \
        "$(ps -e -o comm= --sort=-pcpu | head -n 3 | paste -sd, -)): expect noisy req/s;" \
        "see the 'others on server CPU' column" >&2
fi
for round in $(seq "$ROUNDS"); do
    for mode in "${modes[@]}"; do
        for i in "${!names[@]}"; do
            run_one "$round" "$mode" "${names[$i]}" "$i"
        done
    done
done

# --- summary -------------------------------------------------------------------------------
summary=$OUT_DIR/summary.md
ref=${names[0]}
{
    echo "HTTP/1.1 hello world, wrk -t1 -c$CONNECTIONS, ${DURATION} s after ${WARMUP} s warm-up," \
        "$ROUNDS interleaved rounds, server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU" \
        "($(uname -r), $(date -u +%Y-%m-%dT%H:%MZ))"
    for mode in "${modes[@]}"; do
        echo
        if [[ $mode == pipeline ]]; then
            echo "### $mode (depth $PIPELINE; p99 is per batch)"
        else
            echo "### $mode"
        fi
        echo
        echo "| server | median req/s | min-max req/s | median server us CPU/req | min-max us CPU/req | median p99 | median busy | median others on server CPU | median steal ticks | $ref/server req/s | $ref/server CPU/req | errors |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        ref_rate=$(column_of "$mode" "$ref" req_per_s | median)
        ref_cpu=$(column_of "$mode" "$ref" cpu_us_per_req | median)
        for name in "${names[@]}"; do
            rate=$(column_of "$mode" "$name" req_per_s | median)
            rmin=$(column_of "$mode" "$name" req_per_s | sort -g | head -n 1)
            rmax=$(column_of "$mode" "$name" req_per_s | sort -g | tail -n 1)
            cpu=$(column_of "$mode" "$name" cpu_us_per_req | median)
            cmin=$(column_of "$mode" "$name" cpu_us_per_req | sort -g | head -n 1)
            cmax=$(column_of "$mode" "$name" cpu_us_per_req | sort -g | tail -n 1)
            p99=$(column_of "$mode" "$name" p99_us | median)
            busy=$(column_of "$mode" "$name" server_busy_pct | median)
            steal=$(column_of "$mode" "$name" steal_ticks | median)
            others=$(column_of "$mode" "$name" others_pct | median)
            # Socket errors + non-2xx/3xx responses of all runs (only with ALLOW_ERRORS=1).
            errors=$(paste -d+ <(column_of "$mode" "$name" socket_errors) \
                <(column_of "$mode" "$name" non_2xx) | awk -F+ '{ s += $1 + $2 } END { print s + 0 }')
            awk -v n="$name" -v r="$rate" -v rmin="$rmin" -v rmax="$rmax" -v c="$cpu" \
                -v cmin="$cmin" -v cmax="$cmax" -v p99="$p99" -v busy="$busy" -v others="$others" -v steal="$steal" \
                -v errors="$errors" -v rr="$ref_rate" -v rc="$ref_cpu" 'BEGIN {
                # wrk records no latency when every connection closes before its batch
                # completes (an HTTP/1.0 server in the pipeline mode).
                p = (p99 >= 1000) ? sprintf("%.2f ms", p99 / 1000) : (p99 > 0) ? sprintf("%.0f us", p99) : "n/a"
                printf "| %s | %.0f | %.0f-%.0f | %.2f | %.2f-%.2f | %s | %.0f%% | %.0f%% | %g | x%.2f | x%.2f | %d |\n",
                    n, r, rmin, rmax, c, cmin, cmax, p, busy, others, steal,
                    (r > 0) ? rr / r : 0, (c > 0) ? rc / c : 0, errors }'
        done
    done
} >"$summary"

# results.json: the rows of results.csv as an array of objects (numbers stay numbers).
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) key[i] = $i; n = NF; print "["; next }
    { printf "%s  {", (NR > 2) ? ",\n" : ""
      for (i = 1; i <= n; i++) {
          v = ($i ~ /^-?[0-9]+(\.[0-9]+)?$/) ? $i : "\"" $i "\""
          printf "%s\"%s\": %s", (i > 1) ? ", " : "", key[i], v }
      printf "}" }
    END { print "\n]" }' "$csv" >"$OUT_DIR/results.json"

echo
cat "$summary"
echo
echo "raw results: $csv, $OUT_DIR/results.json; logs in $OUT_DIR/logs" >&2
