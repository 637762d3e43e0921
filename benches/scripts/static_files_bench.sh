#!/usr/bin/env bash
# Static files: `ringwork serve web` CPU per request and per MB, for one or more builds of
# the binary (A/B), on each backend, interleaved (round 1: every binary x backend x file,
# round 2: ...).
#
# CPU layout on a 2-core machine: the server on SERVER_CPU (0) with all its threads (the
# thread pool and io_uring's kernel workers count: they are threads of the process), wrk on
# CLIENT_CPU (1). The server's utime+stime is read from /proc before and after each run.
#
# Files (in a fresh root): small.txt (1 KiB), mid.bin (16 KiB), big.bin (1 MiB).
#
# Settings (environment):
#   BINS="target/release/ringwork" (space-separated; name each run by its path)
#   BACKENDS="uring poll" FILES="small.txt mid.bin big.bin" ROUNDS=3 DURATION=5
#   CONNECTIONS=20 SERVER_CPU=0 CLIENT_CPU=1
#
# Output: one line per run: requests/s, MB/s, server CPU us per request and per MB, and the
# share of user time. Noise on 2-core VMs is +-10% and more (see /work/shared/FINDINGS.md):
# compare only runs of one invocation.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
fi

BINS=${BINS:-target/release/ringwork}
BACKENDS=${BACKENDS:-uring poll}
FILES=${FILES:-small.txt mid.bin big.bin}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-20}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

for tool in taskset wrk curl awk; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

root=$(mktemp -d)
chmod 755 "$root"
trap 'rm -rf "$root"' EXIT
head -c 1024 /dev/urandom >"$root/small.txt"
head -c 16384 /dev/urandom >"$root/mid.bin"
head -c 1048576 /dev/urandom >"$root/big.bin"
hz=$(getconf CLK_TCK)

run() {
    local bin=$1 backend=$2 file=$3 port pid u0 s0 u1 s1 out
    port=$((20000 + RANDOM % 20000))
    taskset -c "$SERVER_CPU" "$bin" serve web --root "$root" --cores 1 --backend "$backend" \
        --listen "tcp:$port:interface=127.0.0.1" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/$file" && break
        sleep 0.1
    done
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
        "http://127.0.0.1:$port/$file" 2>&1)
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    if grep -q Non-2xx <<<"$out"; then
        echo "$bin $backend $file: non-2xx answers" >&2
    fi
    local size
    size=$(stat -c %s "$root/$file")
    awk -v req="$(awk '/requests in/ {print $1}' <<<"$out")" -v hz="$hz" -v secs="$DURATION" \
        -v user=$((u1 - u0)) -v total=$(((u1 - u0) + (s1 - s0))) -v size="$size" \
        -v name="$bin $backend $file" 'BEGIN {
        cpu = total / hz * 1e6
        printf "%s: %.0f req/s, %.1f MB/s, %.1f us/req, %.0f us/MB, user %.0f%%\n",
            name, req / secs, req * size / secs / 1048576, cpu / req,
            cpu / (req * size / 1048576), total ? user / total * 100 : 0
    }'
}

for round in $(seq "$ROUNDS"); do
    echo "# round $round"
    for file in $FILES; do
        for backend in $BACKENDS; do
            for bin in $BINS; do
                run "$bin" "$backend" "$file"
            done
        done
    done
done
