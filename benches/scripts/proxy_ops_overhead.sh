#!/usr/bin/env bash
# What --metrics and a rate limit cost the reverse proxy (issue 25's target: at most 3 %
# more CPU per request). `ringwork serve http-proxy --cores 1` in front of `ringwork serve
# hello`, loaded by ringwork-load with keep-alive requests; configurations interleaved
# round by round:
#   base   no options
#   ops    --metrics tcp:PORT (scraped once a second during the run) and
#          --rate-limit 1e9 --rate-burst 4000000000 (every request takes a token, none is
#          refused) and --max-conns-per-ip 100000
# Proxy CPU per request = (utime+stime of the proxy, from /proc/PID/stat) / responses.
# The proxy runs alone on PROXY_CPU, upstream and loader share LOAD_CPU.
# Settings: ROUNDS=5 DURATION=8 CONNECTIONS=32 PROXY_CPU=0 LOAD_CPU=1 PORT_BASE=19300
# Binaries: target/release/{ringwork,ringwork-load} (cargo build --release -p ringwork-cli
# -p ringwork-loadtest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-8} CONNECTIONS=${CONNECTIONS:-32}
PROXY_CPU=${PROXY_CPU:-0} LOAD_CPU=${LOAD_CPU:-1} PORT_BASE=${PORT_BASE:-19300}
bin=${CARGO_TARGET_DIR:-target}/release
out=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

up=$((PORT_BASE)) proxy=$((PORT_BASE + 1)) metrics=$((PORT_BASE + 2))
taskset -c "$LOAD_CPU" "$bin/ringwork" serve hello --cores 1 \
    --listen "tcp:$up:interface=127.0.0.1" 2>"$out/upstream.log" &
pids+=($!)
cat >"$out/proxy.toml" <<TOML
[forwarded]
mode = "off"
[upstreams.up]
servers = ["127.0.0.1:$up"]
[[routes]]
upstream = "up"
TOML

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; return 1; }

run() { # $1 = base|ops; prints "responses ticks"
    local extra=()
    if [[ $1 == ops ]]; then
        extra=(--metrics "tcp:$metrics:interface=127.0.0.1" --rate-limit 1e9
            --rate-burst 4000000000 --max-conns-per-ip 100000)
    fi
    taskset -c "$PROXY_CPU" "$bin/ringwork" serve http-proxy --config "$out/proxy.toml" \
        --cores 1 --listen "tcp:$proxy:interface=127.0.0.1" "${extra[@]}" 2>"$out/proxy-$1.log" &
    local pid=$!
    wait_http "http://127.0.0.1:$proxy/"
    local scraper=
    if [[ $1 == ops ]]; then
        (while curl -sf -o /dev/null "http://127.0.0.1:$metrics/metrics"; do sleep 1; done) &
        scraper=$!
    fi
    local before; before=$(ticks "$pid")
    taskset -c "$LOAD_CPU" "$bin/ringwork-load" http "http://127.0.0.1:$proxy/" \
        -c "$CONNECTIONS" -d "${DURATION}s" --quiet --json "$out/load-$1.json" >/dev/null
    local after; after=$(ticks "$pid")
    [[ -n $scraper ]] && kill "$scraper" 2>/dev/null || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local responses
    responses=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['requests'])" "$out/load-$1.json")
    echo "$responses $((after - before))"
}

hz=$(getconf CLK_TCK)
printf '%-6s %-5s %12s %10s %14s\n' round conf responses cpu_s us/request
declare -A sum_us=([base]=0 [ops]=0)
for round in $(seq "$ROUNDS"); do
    for conf in base ops; do
        read -r responses ticks < <(run "$conf")
        us=$(python3 -c "print(f'{$ticks / $hz / $responses * 1e6:.3f}')")
        sum_us[$conf]=$(python3 -c "print(${sum_us[$conf]} + $us)")
        printf '%-6s %-5s %12s %10s %14s\n' "$round" "$conf" "$responses" \
            "$(python3 -c "print($ticks / $hz)")" "$us"
    done
done
python3 -c "
b, o = ${sum_us[base]} / $ROUNDS, ${sum_us[ops]} / $ROUNDS
print(f'mean CPU per request: base {b:.3f} us, ops {o:.3f} us, ops/base {o / b:.4f} ({(o / b - 1) * 100:+.2f} %)')"
echo "logs and load reports: $out"
