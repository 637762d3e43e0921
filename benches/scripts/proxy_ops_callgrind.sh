#!/usr/bin/env bash
# What --metrics, a rate limit and a connection cap cost the reverse proxy per request, in
# instructions (issue 25's target: at most 3 % more), measured with callgrind so that the
# machine's noise does not enter: the proxy runs under `valgrind --tool=callgrind` (poll
# backend: valgrind does not follow io_uring's shared rings) in front of `ringwork serve
# hello`, and ringwork-load sends exactly N and then 2N keep-alive requests to a fresh
# proxy for each configuration. Instructions per request = (Ir(2N) - Ir(N)) / N, so
# start-up, the metrics scrape (one per run) and shutdown cancel out. One connection by
# default: each request then takes the same path (with several, how many requests a turn
# batches varies from run to run and moves the figure by ±2.5 %).
#   base   no options
#   ops    --metrics tcp:PORT (scraped once per run), --rate-limit 1e9 --rate-burst
#          4000000000 (every request takes a token, none is refused), --max-conns-per-ip
#          100000
# Settings: N=5000 CONNECTIONS=1 PORT_BASE=19400
# Binaries: target/release/{ringwork,ringwork-load} (cargo build --release -p ringwork-cli
# -p ringwork-loadtest). Needs valgrind.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

N=${N:-5000} CONNECTIONS=${CONNECTIONS:-1} PORT_BASE=${PORT_BASE:-19400}
bin=${CARGO_TARGET_DIR:-target}/release
out=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

up=$((PORT_BASE)) proxy=$((PORT_BASE + 1)) metrics=$((PORT_BASE + 2))
"$bin/ringwork" serve hello --cores 1 --listen "tcp:$up:interface=127.0.0.1" \
    2>"$out/upstream.log" &
pids+=($!)
cat >"$out/proxy.toml" <<TOML
[forwarded]
mode = "off"
[upstreams.up]
servers = ["127.0.0.1:$up"]
[[routes]]
upstream = "up"
TOML

wait_http() { for _ in $(seq 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; return 1; }

run() { # $1 = base|ops, $2 = requests; prints the proxy's total instructions
    local extra=()
    if [[ $1 == ops ]]; then
        extra=(--metrics "tcp:$metrics:interface=127.0.0.1" --rate-limit 1e9
            --rate-burst 4000000000 --max-conns-per-ip 100000)
    fi
    local file="$out/callgrind-$1-$2.out"
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$bin/ringwork" serve http-proxy --config "$out/proxy.toml" --backend poll \
        --cores 1 --listen "tcp:$proxy:interface=127.0.0.1" "${extra[@]}" \
        2>"$out/proxy-$1-$2.log" &
    local pid=$!
    # One readiness request (both runs of a configuration make it).
    wait_http "http://127.0.0.1:$proxy/"
    "$bin/ringwork-load" http "http://127.0.0.1:$proxy/" -c "$CONNECTIONS" -n "$2" -d 600s \
        --quiet --json "$out/load-$1-$2.json" >/dev/null
    if [[ $1 == ops ]]; then
        curl -sf -o /dev/null "http://127.0.0.1:$metrics/metrics"
    fi
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    local done
    done=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['requests'])" "$out/load-$1-$2.json")
    [[ $done == "$2" ]] || { echo "$1: $done of $2 requests answered" >&2; exit 1; }
    sed -n 's/^summary: \([0-9]*\).*/\1/p' "$file"
}

printf '%-5s %14s %14s %14s\n' conf "Ir(N)" "Ir(2N)" "Ir/request"
declare -A per
for conf in base ops; do
    one=$(run "$conf" "$N")
    two=$(run "$conf" $((2 * N)))
    per[$conf]=$(python3 -c "print(f'{($two - $one) / $N:.0f}')")
    printf '%-5s %14s %14s %14s\n' "$conf" "$one" "$two" "${per[$conf]}"
done
python3 -c "print(f'ops/base: {${per[ops]} / ${per[base]}:.4f} ({(${per[ops]} / ${per[base]} - 1) * 100:+.2f} %)')"
