#!/usr/bin/env bash
# The functions of the `ringwork` binary that start-up and the first requests run, for the
# linker's symbol ordering file (protocols/cli/start-order.txt; docs/operations.md, issue 16).
#
#   benches/scripts/start_profile.sh [BINARY] > symbols.txt
#
# BINARY must be built alone (`cargo build --release -p ringwork-cli --bin ringwork`): built
# together with other packages, feature unification renames ~300 generic functions and the
# list would not match the binary users build (docs/operations.md).
# Runs BINARY (default target/release/ringwork) under `valgrind --tool=callgrind` for each
# service in $SERVICES (default "hello echo web"; web serves a one-file root) on each backend in $BACKENDS (default "uring
# poll"): start-up, one request on a connection of its own, a dump; then prints the mangled
# names of the binary's functions that ran, each once, in the order of first appearance.
# callgrind sees every function that runs (sampling would miss the short ones); inlined
# functions are part of their callers. Its CPU features are not the host's, so a few
# CPU-specific variants (memchr's, the crypto's) may differ from a native run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/callgrind.sh
source "$here/lib/callgrind.sh"
bin=$(realpath "${1:-$here/../../target/release/ringwork}")
out=$(mktemp -d)
port=${PORT:-18093}
mkdir "$out/root"
echo hello >"$out/root/index.html"
for service in ${SERVICES:-hello echo web}; do
    args=()
    if [ "$service" = web ]; then args=(--root "$out/root"); fi
    for backend in ${BACKENDS:-uring poll}; do
        valgrind --tool=callgrind --compress-strings=no --compress-pos=no --demangle=no \
            --dump-line=no --callgrind-out-file="$out/$service-$backend.%p" \
            "$bin" serve "$service" --listen "tcp:$port:interface=127.0.0.1" --cores 1 \
            --backend "$backend" "${args[@]}" 2>"$out/$service-$backend.log" &
        server=$!
        if [ "$service" = echo ]; then
            # A subshell: a failed `exec` redirection (nobody listening yet) ends only it.
            request() {
                (
                    exec 3<>"/dev/tcp/127.0.0.1/$port"
                    printf 'ping\n' >&3
                    read -r -t 2 line <&3
                    [ "$line" = ping ]
                )
            }
        else
            request() { curl -fs "http://127.0.0.1:$port/" >/dev/null; }
        fi
        for _ in $(seq 1 300); do
            if request 2>/dev/null; then break; fi
            sleep 0.1
        done
        if ! kill -0 "$server" 2>/dev/null; then
            echo "$service on $backend did not start (port $port taken?): $out" >&2
            exit 1
        fi
        callgrind_control_waking "$server" request -d
        kill -KILL "$server"
        wait "$server" 2>/dev/null || true
    done
done
# fn=NAME lines after ob=BINARY name the binary's functions (cfn= lines are callees, which
# also appear as fn= where they ran). Printed most shared first: the functions every run
# ran, then those of fewer runs (the HTTP services' path, one backend's, one service's),
# each group in the order of first appearance, so that what a service needs sits close.
awk -v bin="$bin" '
    FNR == 1 { run++ }
    /^ob=/ { ob = substr($0, 4) }
    /^fn=/ {
        name = substr($0, 4)
        sub(/\047[0-9]+$/, "", name)          # callgrind marks recursion levels: NAME'\''2
        # "???": valgrind names no object for the code of a binary linked with this
        # list (its .text.start section): the functions of the binary then appear there.
        if ((ob != bin && ob != "???") || name ~ /^(\(|0x)/) next
        if (!(name in first)) { first[name] = ++order }
        if (last[name] != run) { last[name] = run; runs[name]++ }
    }
    END { for (name in first) printf "%d %d %s\n", runs[name], first[name], name }
' $(ls "$out"/*.[0-9]*.1 2>/dev/null || ls "$out"/*.[0-9]*) | sort -k1,1nr -k2,2n | cut -d" " -f3-
[ -n "${KEEP:-}" ] && echo "$out" >&2 || rm -rf "$out"
