#!/usr/bin/env bash
# HTTP/1.1 reverse-proxy benchmark: `ringwork serve http-proxy` against nginx as a reverse
# proxy, both in front of the same upstream (`ringwork serve hello`), loaded with keep-alive
# requests, runs interleaved.
#
# CPU layout on a 2-core machine: the proxy ALONE on PROXY_CPU (0); the upstream hello
# server AND the load generator share LOAD_CPU (1). The proxy's CPU time per request is the
# figure that compares the proxies; req/s is capped by whatever saturates first (often
# LOAD_CPU, which runs both wrk and the upstream): read "busy" before reading req/s.
#
# For each round and proxy: start the upstream (once per proxy run, fresh port), write the
# proxy's configuration, start the proxy on a fresh port, wait until GET / through it
# answers 2xx, warm up (WARMUP s, discarded), run the measured load (DURATION s), then —
# before stopping anything — count the proxy's established connections to the upstream
# and the proxy-side upstream sockets in TIME-WAIT (`ss -tn`); after stopping the
# upstream, read how many connections it accepted in all (its log). Keep-alive reuse
# works when the upstream connections opened are a small fraction of the requests (a
# proxy without reuse opens one per request). With more concurrent client connections
# than a proxy keeps idle per upstream (KEEPALIVE=64 for both: nginx's `keepalive`,
# ringwork's `keepalive` key), both close and reopen some upstream connections as the load
# fluctuates: compare at CONNECTIONS=30 to see pure reuse.
#
# Proxies (PROXIES, interleaved in this order; the first is the reference of the ratios):
#   ringwork  `ringwork serve http-proxy --config FILE --cores 1`: one route to an upstream
#             pool of 127.0.0.1:UP, forwarded.mode = "off" (nginx adds no X-Forwarded-*
#             headers either), default timeouts
#   nginx     benches/peers/nginx/proxy.conf.template: 1 worker, `upstream { server
#             127.0.0.1:UP; keepalive 64; }`, proxy_http_version 1.1, proxy_set_header
#             Connection "", no access log, keepalive_requests 100000000
# Loaders (LOADER): wrk (wrk -t1 -cCONNECTIONS --latency, the default) or ringwork-load
# (ringwork-load http -cCONNECTIONS --cpus LOAD_CPU).
#
# Settings (environment):
#   ROUNDS=3 DURATION=10 WARMUP=2 CONNECTIONS=100 LOADER=wrk PROXIES="ringwork nginx"
#   KEEPALIVE=64 (nginx's idle upstream connections)
#   PROXY_CPU=0 LOAD_CPU=1 PORT_BASE=18280 OUT_DIR= (default: a new mktemp -d)
#   RINGWORK_BIN, RINGWORK_LOAD_BIN (default: $CARGO_TARGET_DIR or target, /release/...;
#   built when missing or older than the sources, REBUILD=0 skips the age check), NGINX_BIN
#
# Proxy CPU per request = utime+stime of the proxy's process tree (nginx: master + worker)
# over the measured run, from /proc/PID/stat, divided by the requests completed. busy =
# that CPU time / wall time (near 100%: the proxy was the bottleneck). p99 is the loader's.
# Noise on 2-core VMs is +-10% and more (see /work/shared/FINDINGS.md): compare only runs
# of one invocation; read medians and ranges.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
fi
if (($# > 0)); then
    echo "error: no arguments are accepted (settings are environment variables; see --help)" >&2
    exit 2
fi

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-100}
LOADER=${LOADER:-wrk}
PROXIES=${PROXIES:-ringwork nginx}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18280}
KEEPALIVE=${KEEPALIVE:-64}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=benches/scripts/lib/common.sh
source "$repo/benches/scripts/lib/common.sh"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
[[ -n ${RINGWORK_BIN:-}${RINGWORK_LOAD_BIN:-} ]] || build_bins=1
RINGWORK_BIN=${RINGWORK_BIN:-$target_dir/release/ringwork}
RINGWORK_LOAD_BIN=${RINGWORK_LOAD_BIN:-$target_dir/release/ringwork-load}
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
nginx_template=$repo/benches/peers/nginx/proxy.conf.template

for tool in taskset timeout awk curl ps ss; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool is required (scripts/install-http-test-deps.sh installs curl, wrk and nginx)" >&2
        exit 1
    }
done
case $LOADER in
wrk) command -v wrk >/dev/null || { echo "error: wrk is required for LOADER=wrk (or use LOADER=ringwork-load)" >&2; exit 1; } ;;
ringwork-load) ;;
*) echo "error: LOADER must be wrk or ringwork-load" >&2; exit 1 ;;
esac
read -r -a proxies <<<"$PROXIES"
for p in "${proxies[@]}"; do
    case $p in
    ringwork) ;;
    nginx) [[ -x $NGINX_BIN ]] || { echo "error: nginx not found (NGINX_BIN=$NGINX_BIN)" >&2; exit 1; } ;;
    *) echo "error: unknown proxy '$p' in PROXIES (ringwork, nginx)" >&2; exit 1 ;;
    esac
done
if [[ -n ${build_bins:-} ]]; then
    ensure_release_bins "$repo" "$target_dir" ringwork ringwork-load
fi
for bin in "$RINGWORK_BIN" "$RINGWORK_LOAD_BIN"; do
    [[ -x $bin ]] || { echo "error: $bin not found" >&2; exit 1; }
done
"$RINGWORK_BIN" serve --help | grep -q http-proxy || {
    echo "error: $RINGWORK_BIN has no 'serve http-proxy'; rebuild it" >&2
    exit 1
}

if [[ -n ${OUT_DIR:-} ]]; then
    mkdir -p "$OUT_DIR"
else
    OUT_DIR=$(mktemp -d -t http-proxy-bench.XXXXXX)
fi
OUT_DIR=$(cd "$OUT_DIR" && pwd)
mkdir -p "$OUT_DIR/logs"
scratch=$(mktemp -d -t http-proxy-run.XXXXXX)
chmod 755 "$scratch"
csv=$OUT_DIR/results.csv
echo "round,proxy,port,upstream_port,requests,seconds,req_per_s,p50_us,p99_us,proxy_cpu_ticks,cpu_us_per_req,proxy_busy_pct,steal_ticks,errors,upstream_mid_run,upstream_established,upstream_time_wait,upstream_opened,all_requests,opened_per_1k_req" >"$csv"

proxy_pid=
upstream_pid=
load_pid=
mid_pid=
cleanup() {
    local pid
    for pid in $load_pid $mid_pid $proxy_pid $upstream_pid; do
        kill_tree "$pid" KILL
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (at most 15 s) until process $1 listens on $2 and GET $3 answers 2xx.
wait_ready() {
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)); do
        alive "$1" || return 1
        if listening "$2" && curl -sf -o /dev/null --max-time 2 "$3" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

start_proxy() { # name port upstream_port log
    local name=$1 p=$2 up=$3 log=$4 rundir=$scratch/$1-$2
    mkdir -p "$rundir"
    chmod 755 "$rundir"
    case $name in
    ringwork)
        cat >"$rundir/proxy.toml" <<EOF
listen = ["tcp:$p:interface=127.0.0.1"]
cores = 1
# As nginx: KEEPALIVE idle upstream connections, no cap on open ones.
keepalive = $KEEPALIVE
max_connections_per_server = 100000

[forwarded]
mode = "off"

[upstreams.app]
servers = ["127.0.0.1:$up"]

[[routes]]
upstream = "app"
EOF
        taskset -c "$PROXY_CPU" "$RINGWORK_BIN" serve http-proxy --config "$rundir/proxy.toml" \
            --cores 1 >"$log" 2>&1 &
        ;;
    nginx)
        sed -e "s|@PORT@|$p|g" -e "s|@RUNDIR@|$rundir|g" -e "s|@UPSTREAM@|127.0.0.1:$up|g" -e "s|@KEEPALIVE@|$KEEPALIVE|g" \
            "$nginx_template" >"$rundir/nginx.conf"
        taskset -c "$PROXY_CPU" "$NGINX_BIN" -p "$rundir" -c "$rundir/nginx.conf" >"$log" 2>&1 &
        ;;
    esac
    proxy_pid=$!
}

# Runs the loader against port $1 for $2 seconds, output to $3 (ringwork-load: JSON in $3,
# text in $3.txt).
run_load() {
    local p=$1 seconds=$2 out=$3
    case $LOADER in
    wrk)
        timeout $((seconds + 60)) taskset -c "$LOAD_CPU" wrk -t1 "-c$CONNECTIONS" "-d${seconds}s" \
            --latency "http://127.0.0.1:$p/" >"$out" 2>&1 &
        ;;
    ringwork-load)
        timeout $((seconds + 60)) "$RINGWORK_LOAD_BIN" http "http://127.0.0.1:$p/" -c "$CONNECTIONS" \
            -d "${seconds}s" --cpus "$LOAD_CPU" --quiet --json "$out" >"$out.txt" 2>&1 &
        ;;
    esac
    # In the background, so a SIGINT/SIGTERM to the script is handled at once (bash runs
    # traps only between commands, and `wait` is one).
    load_pid=$!
    local rc=0
    wait "$load_pid" || rc=$?
    load_pid=
    return "$rc"
}

# wrk duration ("250.00us", "1.20ms", "2.00s") in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 1 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : 0
        printf "%.1f", n * f }'
}

run_one() {
    local round=$1 name=$2 tag=$2-$1
    local up p
    fresh_port
    up=$port
    taskset -c "$LOAD_CPU" "$RINGWORK_BIN" serve hello --listen "tcp:$up:interface=127.0.0.1" \
        --cores 1 >"$OUT_DIR/logs/upstream-$tag.log" 2>&1 &
    upstream_pid=$!
    if ! wait_ready "$upstream_pid" "$up" "http://127.0.0.1:$up/"; then
        echo "error: the upstream (ringwork serve hello) did not answer on port $up:" >&2
        cat "$OUT_DIR/logs/upstream-$tag.log" >&2
        exit 1
    fi
    fresh_port
    p=$port
    local log=$OUT_DIR/logs/proxy-$tag.log
    start_proxy "$name" "$p" "$up" "$log"
    if ! wait_ready "$proxy_pid" "$p" "http://127.0.0.1:$p/"; then
        echo "error: $name did not proxy GET / with 2xx on port $p within 15 s:" >&2
        cat "$log" >&2
        exit 1
    fi
    if ((WARMUP > 0)) && ! run_load "$p" "$WARMUP" "$OUT_DIR/logs/warmup-$tag.out"; then
        echo "error: the warm-up load failed against $name" >&2
        exit 1
    fi
    local out=$OUT_DIR/logs/load-$tag.out cpu0 cpu1 steal0 steal1 t0 t1
    cpu0=$(tree_cpu_ticks "$proxy_pid")
    steal0=$(steal_ticks)
    t0=$(date +%s%N)
    # The proxy's connections to the upstream in the middle of the measured run (its pool
    # at work; at the end, connections with requests in flight when the loader quit may be
    # closed).
    local mid_file=$OUT_DIR/logs/mid-established-$tag
    (sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')" &&
        ss -Htn state established "( dport = :$up )" | wc -l >"$mid_file") &
    mid_pid=$!
    if ! run_load "$p" "$DURATION" "$out"; then
        echo "error: the load ($LOADER) failed against $name:" >&2
        cat "$out"* >&2
        exit 1
    fi
    cpu1=$(tree_cpu_ticks "$proxy_pid")
    steal1=$(steal_ticks)
    t1=$(date +%s%N)
    # Connections between the proxy and the upstream, still open (idle in the pools), and
    # the upstream-port sockets in TIME-WAIT (closed connections of this run).
    local established time_wait
    established=$(ss -Htn state established "( dport = :$up )" | wc -l)
    time_wait=$(ss -Htn state time-wait "( dport = :$up )" | wc -l)
    wait "$mid_pid" 2>/dev/null || true
    mid_pid=
    local mid
    mid=$(cat "$mid_file" 2>/dev/null || echo 0)
    alive "$proxy_pid" || { echo "error: $name died during the run:" >&2; cat "$log" >&2; exit 1; }
    stop_tree "$proxy_pid"
    proxy_pid=
    stop_tree "$upstream_pid"
    upstream_pid=
    wait_released "$p"
    wait_released "$up"
    # `ringwork serve` logs "core 0 stopped: N connections accepted" at exit; two of them
    # were the readiness checks (curl to the upstream, and the one through the proxy).
    local opened
    opened=$(awk '/connections accepted/ { for (i = 1; i < NF; i++) if ($(i + 1) == "connections") n += $i }
        END { print n + 0 }' "$OUT_DIR/logs/upstream-$tag.log")
    opened=$((opened > 2 ? opened - 2 : 0))

    local requests seconds rate p50 p99 errors
    if [[ $LOADER == wrk ]]; then
        requests=$(awk '/ requests in / { print $1 }' "$out")
        seconds=$(awk '/ requests in / { s = $4; sub(/,$/, "", s); sub(/s$/, "", s); print s }' "$out")
        rate=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
        p50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
        p99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
        errors=$(awk '/Socket errors:/ { gsub(/,/, ""); s += $4 + $6 + $8 + $10 }
            /Non-2xx or 3xx responses:/ { s += $NF } END { print s + 0 }' "$out")
    else
        requests=$(json_field "$out" requests)
        seconds=$(json_field "$out" duration_s)
        rate=$(json_field "$out" rps)
        p50=$(awk '/"latency_us"/ { l = 1 } l && /"p50":/ { v = $2; sub(/,$/, "", v); print v; exit }' "$out")
        p99=$(awk '/"latency_us"/ { l = 1 } l && /"p99":/ { v = $2; sub(/,$/, "", v); print v; exit }' "$out")
        errors=$(awk '/"errors": \{/ { e = 1; next } e && /\}/ { exit } e { v = $2; sub(/,$/, "", v); s += v } END { print s + 0 }' "$out")
        errors=$((errors + $(json_field "$out" unsuccessful)))
    fi
    # Requests of the warm-up too: the upstream connections were opened over both runs.
    local warm=0 wout=$OUT_DIR/logs/warmup-$tag.out
    if ((WARMUP > 0)); then
        if [[ $LOADER == wrk ]]; then
            warm=$(awk '/ requests in / { print $1 }' "$wout")
        else
            warm=$(json_field "$wout" requests)
        fi
    fi
    local all=$((requests + ${warm:-0}))
    if [[ -z $requests || $requests == 0 ]]; then
        echo "error: no requests completed through $name:" >&2
        cat "$out"* >&2
        exit 1
    fi
    local ticks=$((cpu1 - cpu0)) cpu_us busy
    cpu_us=$(awk -v t="$ticks" -v hz="$clk_tck" -v n="$requests" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
    busy=$(awk -v t="$ticks" -v hz="$clk_tck" -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", (ns > 0) ? 100 * t / hz / (ns / 1e9) : 0 }')
    local per_1k
    per_1k=$(awk -v o="$opened" -v n="$all" 'BEGIN { printf "%.2f", (n > 0) ? 1000 * o / n : 0 }')
    echo "$round,$name,$p,$up,$requests,$seconds,$rate,$p50,$p99,$ticks,$cpu_us,$busy,$((steal1 - steal0)),$errors,$mid,$established,$time_wait,$opened,$all,$per_1k" >>"$csv"
    printf '%-9s round %s  %10.0f req/s  p99 %8s us  proxy %6s us CPU/req, busy %3s%%  errors %s  upstream conns: %s opened for %s requests (%s per 1k), %s open mid-run, %s open and %s in time-wait at the end\n' \
        "$name" "$round" "$rate" "$p99" "$cpu_us" "$busy" "$errors" "$opened" "$all" "$per_1k" "$mid" "$established" "$time_wait" >&2
}

column_of() { # proxy column-name
    awk -F, -v s="$1" -v c="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $2 == s { print $col[c] }' "$csv"
}

echo "HTTP reverse-proxy benchmark (${proxies[*]}; loader $LOADER -c$CONNECTIONS): $(uname -r)," \
    "$(nproc) CPUs, rounds=$ROUNDS duration=${DURATION}s warmup=${WARMUP}s, proxy on CPU $PROXY_CPU," \
    "upstream and load on CPU $LOAD_CPU; results in $OUT_DIR" >&2
for round in $(seq "$ROUNDS"); do
    for name in "${proxies[@]}"; do
        run_one "$round" "$name"
    done
done

summary=$OUT_DIR/summary.md
ref=${proxies[0]}
{
    echo "HTTP/1.1 reverse proxy in front of \`ringwork serve hello\`, $LOADER -c$CONNECTIONS keep-alive," \
        "proxy alone on CPU $PROXY_CPU, upstream + load on CPU $LOAD_CPU, ${DURATION} s after ${WARMUP} s" \
        "warm-up, $ROUNDS interleaved rounds ($(uname -r), $(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "| proxy | median req/s | min-max req/s | median p99 us | median proxy us CPU/req | min-max | median busy | $ref/proxy req/s | $ref/proxy CPU/req | upstream conns opened per 1k requests (median) | open mid-run (median) | open at end (max) | time-wait at end (max) | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    ref_rate=$(column_of "$ref" req_per_s | median)
    ref_cpu=$(column_of "$ref" cpu_us_per_req | median)
    for name in "${proxies[@]}"; do
        rate=$(column_of "$name" req_per_s | median)
        rmin=$(column_of "$name" req_per_s | sort -g | head -n 1)
        rmax=$(column_of "$name" req_per_s | sort -g | tail -n 1)
        p99=$(column_of "$name" p99_us | median)
        cpu=$(column_of "$name" cpu_us_per_req | median)
        cmin=$(column_of "$name" cpu_us_per_req | sort -g | head -n 1)
        cmax=$(column_of "$name" cpu_us_per_req | sort -g | tail -n 1)
        busy=$(column_of "$name" proxy_busy_pct | median)
        est=$(column_of "$name" upstream_established | sort -g | tail -n 1)
        tw=$(column_of "$name" upstream_time_wait | sort -g | tail -n 1)
        per_1k=$(column_of "$name" opened_per_1k_req | median)
        mid=$(column_of "$name" upstream_mid_run | median)
        errors=$(column_of "$name" errors | awk '{ s += $1 } END { print s + 0 }')
        awk -v n="$name" -v r="$rate" -v rmin="$rmin" -v rmax="$rmax" -v p99="$p99" -v c="$cpu" \
            -v cmin="$cmin" -v cmax="$cmax" -v busy="$busy" -v rr="$ref_rate" -v rc="$ref_cpu" \
            -v est="$est" -v tw="$tw" -v per_1k="$per_1k" -v mid="$mid" -v errors="$errors" 'BEGIN {
            printf "| %s | %.0f | %.0f-%.0f | %.0f | %.2f | %.2f-%.2f | %.0f%% | x%.2f | x%.2f | %.2f | %g | %d | %d | %d |\n",
                n, r, rmin, rmax, p99, c, cmin, cmax, busy, (r > 0) ? rr / r : 0, (c > 0) ? rc / c : 0, per_1k, mid, est, tw, errors }'
    done
} >"$summary"
echo
cat "$summary"
echo
echo "raw results: $csv; logs in $OUT_DIR/logs" >&2
