#!/usr/bin/env bash
# Static files: `ringwork serve web` against nginx (sendfile on), MB/s and server CPU per
# request and per MB, interleaved (round 1: every file x server, round 2: ...), then the
# median and min-max of each series.
#
# CPU layout on a 2-core machine: the server on SERVER_CPU (0) with all its threads (the
# thread pool and io_uring's kernel workers count: they are threads of the process; nginx:
# `worker_processes 1`, master and worker), wrk on CLIENT_CPU (1). The server's CPU is
# utime+stime of its process tree, read from /proc before and after each run.
#
# Servers (SERVERS, space-separated):
#   ringwork       serve web --cores 1 on each of BACKENDS: bodies from 16 KiB up by
#                  sendfile(2) (the default --sendfile-min)
#   ringwork-read  the same with --sendfile-min off: every body read and written
#   nginx          benches/peers/nginx/static.conf.template: 1 worker, sendfile on,
#                  tcp_nopush on, keep-alive never closed by the server
#
# Files (in a fresh root): small.txt (1 KiB), mid.bin (16 KiB), big.bin (1 MiB).
#
# Settings (environment):
#   BINS="target/release/ringwork" (space-separated: A/B builds; each run names its path)
#   SERVERS="ringwork nginx" BACKENDS="uring poll" FILES="mid.bin big.bin" ROUNDS=3
#   DURATION=5 CONNECTIONS=20 SERVER_CPU=0 CLIENT_CPU=1 NGINX_BIN=(PATH, /usr/sbin/nginx)
#
# Output: one line per run (requests/s, MB/s, server CPU us per request and per MB, the
# share of user time), then per series the median and min-max of MB/s and of us/MB. Noise
# on 2-core VMs is +-10% and more (see /work/shared/FINDINGS.md): compare only runs of one
# invocation.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=benches/scripts/lib/common.sh
source "$repo/benches/scripts/lib/common.sh"

BINS=${BINS:-target/release/ringwork}
SERVERS=${SERVERS:-ringwork nginx}
BACKENDS=${BACKENDS:-uring poll}
FILES=${FILES:-mid.bin big.bin}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-20}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
nginx_template=$repo/benches/peers/nginx/static.conf.template

for tool in taskset wrk curl awk; do
    command -v "$tool" >/dev/null || { echo "missing $tool (scripts/install-http-test-deps.sh)" >&2; exit 1; }
done
if [[ " $SERVERS " == *" nginx "* && ! -x $NGINX_BIN ]]; then
    echo "error: nginx not found (NGINX_BIN=$NGINX_BIN); run scripts/install-http-test-deps.sh" >&2
    exit 1
fi

root=$(mktemp -d)
rundir=$(mktemp -d)
results=$(mktemp)
chmod 755 "$root" "$rundir"
trap 'rm -rf "$root" "$rundir" "$results"' EXIT
head -c 1024 /dev/urandom >"$root/small.txt"
head -c 16384 /dev/urandom >"$root/mid.bin"
head -c 1048576 /dev/urandom >"$root/big.bin"
chmod 644 "$root"/*

# Starts server $1 (ringwork, ringwork-read, nginx) of binary $2 on backend $3; sets pid.
start_server() {
    local server=$1 bin=$2 backend=$3
    fresh_port
    case $server in
    ringwork | ringwork-read)
        local extra=()
        [[ $server == ringwork-read ]] && extra=(--sendfile-min off)
        taskset -c "$SERVER_CPU" "$bin" serve web --root "$root" --cores 1 --backend "$backend" \
            --listen "tcp:$port:interface=127.0.0.1" "${extra[@]}" >/dev/null 2>&1 &
        ;;
    nginx)
        sed -e "s|@PORT@|$port|g" -e "s|@RUNDIR@|$rundir|g" -e "s|@ROOT@|$root|g" \
            "$nginx_template" >"$rundir/nginx.conf"
        taskset -c "$SERVER_CPU" "$NGINX_BIN" -p "$rundir" -c "$rundir/nginx.conf" \
            >"$rundir/nginx.log" 2>&1 &
        ;;
    esac
    pid=$!
}

run() {
    local server=$1 bin=$2 backend=$3 file=$4 name c0 c1 out
    start_server "$server" "$bin" "$backend"
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/$file" && break
        sleep 0.1
    done
    c0=$(tree_cpu_ticks "$pid")
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
        "http://127.0.0.1:$port/$file" 2>&1)
    c1=$(tree_cpu_ticks "$pid")
    stop_tree "$pid"
    wait_released "$port"
    name=$server
    [[ $server == nginx ]] || name="$server($backend${bin:+ $bin})"
    if grep -q Non-2xx <<<"$out"; then
        echo "$name $file: non-2xx answers" >&2
    fi
    local size
    size=$(stat -c %s "$root/$file")
    awk -v req="$(awk '/requests in/ {print $1}' <<<"$out")" -v hz="$clk_tck" \
        -v secs="$DURATION" -v total=$((c1 - c0)) -v size="$size" \
        -v name="$name $file" 'BEGIN {
        cpu = total / hz * 1e6
        printf "%s: %.0f req/s, %.1f MB/s, %.1f us/req, %.0f us/MB\n",
            name, req / secs, req * size / secs / 1048576, cpu / req,
            cpu / (req * size / 1048576)
    }' | tee -a "$results"
}

echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    echo "# round $round"
    for file in $FILES; do
        for server in $SERVERS; do
            if [[ $server == nginx ]]; then
                run nginx "" "" "$file"
                continue
            fi
            for backend in $BACKENDS; do
                for bin in $BINS; do
                    run "$server" "$bin" "$backend" "$file"
                done
            done
        done
    done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "# summary: median (min-max) over $ROUNDS rounds"
awk -F': ' '{ print $1 }' "$results" | awk '!seen[$0]++' | while read -r series; do
    lines=$(grep -F "$series: " "$results")
    mbs=$(sed 's/.* req\/s, \([0-9.]*\) MB\/s.*/\1/' <<<"$lines")
    cpu=$(sed 's/.* us\/req, \([0-9.]*\) us\/MB.*/\1/' <<<"$lines")
    printf '%s: %s MB/s (%s-%s), %s us/MB (%s-%s)\n' "$series" \
        "$(median <<<"$mbs")" "$(sort -g <<<"$mbs" | head -1)" "$(sort -g <<<"$mbs" | tail -1)" \
        "$(median <<<"$cpu")" "$(sort -g <<<"$cpu" | head -1)" "$(sort -g <<<"$cpu" | tail -1)"
done
