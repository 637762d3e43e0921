# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source it
# Shared helpers of the benchmark scripts (tls_bench.sh, http_proxy_bench.sh,
# http_hello_bench.sh): process trees and their CPU time from /proc, ports,
# starting/stopping servers. Sourced, not run.

clk_tck=$(getconf CLK_TCK)

# Alive and not a zombie (a child that exited stays visible to kill -0 until reaped).
alive() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z ]]
}

# Process $1 and all its descendants, one pid per line.
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2; pids[NR] = $1 }
        END {
            keep[root] = 1; print root
            do {
                added = 0
                for (i in pids) { p = pids[i]
                    if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; print p; added = 1 } }
            } while (added)
        }'
}

# utime+stime+cutime+cstime (fields 14-17 of /proc/PID/stat), in clock ticks, summed over
# process $1 and its descendants (nginx: master and worker).
tree_cpu_ticks() {
    local pid total=0 t
    for pid in $(tree_pids "$1"); do
        t=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# Sends signal $2 to process $1 and every descendant.
kill_tree() {
    local pid
    for pid in $(tree_pids "$1"); do
        kill "-$2" "$pid" 2>/dev/null || true
    done
}

# Steal ticks of the whole machine.
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

# True if any TCP socket (any state, TIME-WAIT included) has port $1 at either end.
port_used() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v port="$hex" 'FNR > 1 && (substr($2, length($2) - 4) == port || substr($3, length($3) - 4) == port) { found = 1 }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Sets `port` to a port no socket uses (not even in TIME-WAIT from an earlier run, so
# per-port socket counts start from zero), a new one for every call (call it directly, not
# in a subshell: `next_port` must advance).
next_port=${PORT_BASE:-18000}
port=
fresh_port() {
    local tries=0
    while port_used "$next_port"; do
        next_port=$((next_port + 1))
        tries=$((tries + 1))
        ((tries < 200)) || { echo "error: no free port from $PORT_BASE" >&2; exit 1; }
    done
    port=$next_port
    next_port=$((next_port + 1))
}

# Stops process $1 and its descendants: SIGTERM, SIGKILL after 5 s (and leftover
# descendants: a worker outliving its master would keep the port).
stop_tree() {
    local pids pid _
    pids=$(tree_pids "$1")
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 50); do
        alive "$1" || break
        sleep 0.1
    done
    if alive "$1"; then
        echo "warning: process $1 ignored SIGTERM for 5 s; killing it" >&2
    fi
    for pid in $pids; do
        if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    wait "$1" 2>/dev/null || true
}

# Waits (at most 10 s) until nothing listens on port $1 any more (an io_uring listener can
# outlive its process briefly; SO_REUSEPORT would let a leftover share the next run's port).
wait_released() {
    local _
    for _ in $(seq 200); do
        listening "$1" || return 0
        sleep 0.05
    done
    echo "warning: port $1 still has a listener 10 s after the server stopped" >&2
}

median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# A top-level number or string of a ringwork-load --json report ($1 file, $2 key): the
# report is pretty-printed with top-level keys indented by two spaces.
json_field() {
    awk -v k="\"$2\":" '$1 == k && /^  "/ { v = $2; sub(/,$/, "", v); gsub(/"/, "", v);
        for (i = 3; i <= NF; i++) { w = $i; sub(/,$/, "", w); gsub(/"/, "", w); v = v " " w }
        print v; exit }' "$1"
}

# Builds the release binaries named in $@ (ringwork, ringwork-load) into $target_dir when
# missing or older than the sources (REBUILD=0 skips the age check).
ensure_release_bins() {
    local repo=$1 target_dir=$2 need=0 bin
    shift 2
    for bin in "$@"; do
        if [[ ! -x $target_dir/release/$bin ]]; then
            need=1
        elif [[ ${REBUILD:-1} == 1 ]] && [[ -n $(find "$repo/engine/src" "$repo/platform/src" \
            "$repo/protocols/src" "$repo/loadtest/src" -newer "$target_dir/release/$bin" -name '*.rs' -print -quit) ]]; then
            need=1
        fi
    done
    if ((need)); then
        command -v cargo >/dev/null || { echo "error: cargo is required to build $*" >&2; exit 1; }
        echo "building release binaries ($*) into $target_dir ..." >&2
        (cd "$repo" && CARGO_TARGET_DIR=$target_dir nice -n 10 cargo build --release --quiet \
            -p ringwork-cli --bin ringwork -p ringwork-loadtest --bin ringwork-load) >&2
    fi
}
