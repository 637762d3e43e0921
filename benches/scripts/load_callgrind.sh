#!/usr/bin/env bash
# Generator-side instructions per request (issue 16): ringwork-load's `http` mode against
# wrk, both counted by callgrind against the same server. Instruction counts do not move
# with the load of other processes, unlike requests/s on a shared machine.
#
#   benches/scripts/load_callgrind.sh URL [LOAD_BINARY]
#
# The server at URL must already run (natively: `ringwork serve hello`, nginx). Each
# generator runs twice under callgrind; the figure is the difference of instructions over
# the difference of responses, so start-up and exit (thread creation, histogram
# allocation, the report) cancel out. ringwork-load runs FEW and MANY responses (-n, so
# both runs do the same work but for the responses); wrk, which has no -n, SHORT and LONG
# seconds.
# Env: DEPTH (1: keep-alive; 16: pipelined, wrk through pipeline.lua), CONNS (10),
# FEW (5000), MANY (25000), SHORT (2), LONG (6), BACKEND (poll: ringwork-load's backend; valgrind 3.19 runs its io_uring
# client without a single response), WRK (1: also run wrk), LOAD_ARGS (more ringwork-load
# arguments, e.g. --batch: pipelined in batches as wrk's pipeline.lua).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
url=${1:?usage: load_callgrind.sh URL [LOAD_BINARY]}
load=${2:-$here/../../target/release/ringwork-load}
depth=${DEPTH:-1}
conns=${CONNS:-10}
short=${SHORT:-2}
long=${LONG:-6}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

total() { # callgrind dump -> instructions (all threads: --separate-threads is off)
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

# ringwork-load: its JSON report gives the responses.
load_run() { # responses -> "instructions responses"
    # shellcheck disable=SC2086  # LOAD_ARGS is a list of words
    valgrind --tool=callgrind --callgrind-out-file="$out/load.$1" "$load" http "$url" \
        -c "$conns" --pipeline "$depth" ${LOAD_ARGS:-} -n "$1" -d 600s --cores 1 --backend "${BACKEND:-poll}" \
        --quiet --json "$out/load.$1.json" >/dev/null 2>"$out/load.$1.log"
    local responses
    responses=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' \
        "$out/load.$1.json")
    echo "$(total "$out/load.$1") $responses"
}

# wrk: its summary line gives the responses.
wrk_run() { # seconds -> "instructions responses"
    local script=()
    if [ "$depth" -gt 1 ]; then script=(-s "$here/wrk/pipeline.lua"); fi
    valgrind --tool=callgrind --callgrind-out-file="$out/wrk.$1" wrk -t1 -c"$conns" -d"$1s" \
        "${script[@]}" "$url" -- "$depth" >"$out/wrk.$1.txt" 2>"$out/wrk.$1.log"
    echo "$(total "$out/wrk.$1") $(awk '/requests in/ {print $1}' "$out/wrk.$1.txt")"
}

per_request() { # name runner small large
    read -r i1 r1 <<<"$($2 "$3")"
    read -r i2 r2 <<<"$($2 "$4")"
    awk -v n="$1" -v i1="$i1" -v r1="$r1" -v i2="$i2" -v r2="$r2" 'BEGIN {
        printf "%s: %d and %d responses: %.0f instructions/response\n",
            n, r1, r2, (i2 - i1) / (r2 - r1) }'
}

per_request ringwork-load load_run "${FEW:-5000}" "${MANY:-25000}"
if [ "${WRK:-1}" = 1 ]; then per_request wrk wrk_run "$short" "$long"; fi
