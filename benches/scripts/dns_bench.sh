#!/usr/bin/env bash
# Authoritative DNS over UDP: `ringwork serve dns` against NSD and Knot (Debian's), same
# zone, each server on one core, loaded by dnsperf from the other core, runs interleaved.
#
# For each of ROUNDS rounds and each server of SERVERS, in that order: start the server
# pinned to SERVER_CPU on a fresh port, wait until it answers, run dnsperf pinned to
# CLIENT_CPU for DURATION seconds (-q OUTSTANDING queries in flight, one client socket),
# stop the server. Prints one line per run and a table of medians: queries/s, server CPU
# time per query (utime+stime of the server and its children from /proc over the run), and
# the ratio of each to the first server's.
#
# The zone: example.com. with HOSTS A records (host0..), MX, TXT, a CNAME; the queries: A for
# existing hosts, 10% NXDOMAIN names, 5% CNAME chains, 5% MX (dnsperf's format), shuffled.
#
# Settings (environment):
#   SERVERS="ringwork nsd knot"  ROUNDS=3  DURATION=10  OUTSTANDING=200  HOSTS=1000
#   SERVER_CPU=0 CLIENT_CPU=1  PORT_BASE=19530  OUT_DIR= (default: a new mktemp -d)
#   RINGWORK_BIN (default: target/release/ringwork)
#   BASELINE_BIN: another ringwork binary, run as the server named "baseline" (before/after
#   comparisons: SERVERS="ringwork baseline nsd knot")
#   RINGWORK_ARGS, BASELINE_ARGS: extra `serve dns` flags of each (the same binary with and
#   without a flag: BASELINE_BIN=target/release/ringwork BASELINE_ARGS="--batch-wait 16,100us")
#   PERF=1: also count the server's system calls and context switches per query (`perf stat`
#   tracepoints on its processes during the run; this VM has no hardware counters)
#   SERVER_QUOTA: percent of one CPU each server may use (e.g. 50), by the cgroup v1 `cpu`
#   controller (CFS bandwidth: cpu.cfs_quota_us per QUOTA_PERIOD_US=100000 µs) of a cgroup
#   made under CGROUP_CPU=/sys/fs/cgroup/cpu for the run and removed at exit. Each server
#   then saturates below what one dnsperf core sends, so its queries/s measures the
#   server (queries per CPU-second × the quota), not dnsperf; unset, the servers are
#   unlimited (on a 2-core machine dnsperf is then the limit near 175k q/s).
# NSD runs with rrl-ratelimit: 0 (its response rate limiting would cap one client), one
# server process; Knot with one UDP worker. Needs root (NSD and Knot want it for their run
# directories) and: nsd, knot, dnsperf, dig (apt-get install nsd knot dnsperf bind9-dnsutils).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$here/lib/common.sh"

SERVERS=${SERVERS:-"ringwork nsd knot"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
OUTSTANDING=${OUTSTANDING:-200}
HOSTS=${HOSTS:-1000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-19530}
RINGWORK_BIN=${RINGWORK_BIN:-$here/../../target/release/ringwork}
BASELINE_BIN=${BASELINE_BIN:-}
RINGWORK_ARGS=${RINGWORK_ARGS:-}
BASELINE_ARGS=${BASELINE_ARGS:-}
PERF=${PERF:-}
SERVER_QUOTA=${SERVER_QUOTA:-}
QUOTA_PERIOD_US=${QUOTA_PERIOD_US:-100000}
CGROUP_CPU=${CGROUP_CPU:-/sys/fs/cgroup/cpu}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/dns-bench.XXXXXX)}
mkdir -p "$OUT_DIR"
chmod 755 "$OUT_DIR"

for tool in dnsperf dig taskset; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done

# The cgroup every server runs in when SERVER_QUOTA is set (empty otherwise), and the
# server running now (killed at exit, so the cgroup can be removed).
cgroup=
pid=
cleanup() {
    if [[ -n $pid ]] && alive "$pid"; then
        kill_tree "$pid" KILL
        wait "$pid" 2>/dev/null || true
    fi
    if [[ -n $cgroup && -d $cgroup ]]; then
        local _
        for _ in $(seq 50); do
            rmdir "$cgroup" 2>/dev/null && break
            sleep 0.1
        done
        [[ ! -d $cgroup ]] || echo "warning: could not remove $cgroup (tasks left?)" >&2
    fi
}
trap cleanup EXIT
if [[ -n $SERVER_QUOTA ]]; then
    [[ $SERVER_QUOTA =~ ^[0-9]+$ ]] && ((SERVER_QUOTA > 0)) || {
        echo "error: SERVER_QUOTA is a percent of one CPU (1-100...), not '$SERVER_QUOTA'" >&2
        exit 1
    }
    [[ -w $CGROUP_CPU/cgroup.procs ]] || {
        echo "error: no writable cgroup v1 cpu controller at $CGROUP_CPU" >&2
        exit 1
    }
    cgroup=$CGROUP_CPU/ringwork-dns-bench.$$
    mkdir "$cgroup"
    echo "$QUOTA_PERIOD_US" >"$cgroup/cpu.cfs_period_us"
    echo $((QUOTA_PERIOD_US * SERVER_QUOTA / 100)) >"$cgroup/cpu.cfs_quota_us"
fi

# Runs "$@" in place of the calling (background) shell, inside the quota's cgroup if any, so
# every process and thread the server makes is under the quota from its start.
in_quota() {
    if [[ -n $cgroup ]]; then
        # shellcheck disable=SC2016  # $$ and $1 are the inner shell's
        exec sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cgroup" "$@"
    fi
    exec "$@"
}

# Times the cgroup's tasks were throttled, and for how long (ns): "periods throttled ns".
throttle_stat() {
    if [[ -n $cgroup ]]; then
        awk '{ v[$1] = $2 } END { print v["nr_periods"], v["nr_throttled"], v["throttled_time"] }' "$cgroup/cpu.stat"
    else
        echo "0 0 0"
    fi
}

# shellcheck source=lib/dns_workload.sh
source "$here/lib/dns_workload.sh"
write_dns_workload "$OUT_DIR" "$HOSTS"
zone=$OUT_DIR/example.zone
queries=$OUT_DIR/queries.txt

# Starts server $1 on port $2; sets `pid`.
start_server() {
    local name=$1 port=$2 dir=$OUT_DIR/$1
    mkdir -p "$dir"
    case $name in
        ringwork | baseline)
            local bin=$RINGWORK_BIN args=$RINGWORK_ARGS
            if [[ $name == baseline ]]; then
                bin=${BASELINE_BIN:?BASELINE_BIN must name the baseline ringwork binary}
                args=$BASELINE_ARGS
            fi
            # shellcheck disable=SC2086  # the extra flags are words
            in_quota taskset -c "$SERVER_CPU" "$bin" serve dns --zone "$zone" --cores 1 \
                --listen "udp:$port:interface=127.0.0.1" $args >"$dir/log" 2>&1 &
            ;;
        nsd)
            cat >"$dir/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$port
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$OUT_DIR"
    pidfile: "$dir/nsd.pid"
    zonelistfile: "$dir/zone.list"
    xfrdfile: "$dir/xfrd.state"
    xfrdir: "$dir"
    verbosity: 0
    rrl-ratelimit: 0
    reuseport: no
remote-control:
    control-enable: no
zone:
    name: example.com
    zonefile: "$zone"
EOF
            in_quota taskset -c "$SERVER_CPU" nsd -d -c "$dir/nsd.conf" >"$dir/log" 2>&1 &
            ;;
        knot)
            cat >"$dir/knot.conf" <<EOF
server:
    rundir: "$dir"
    listen: 127.0.0.1@$port
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$dir"
template:
  - id: default
    storage: "$OUT_DIR"
    semantic-checks: off
zone:
  - domain: example.com
    file: "$zone"
EOF
            in_quota taskset -c "$SERVER_CPU" knotd -c "$dir/knot.conf" >"$dir/log" 2>&1 &
            ;;
        *)
            echo "error: unknown server $name" >&2
            exit 1
            ;;
    esac
    pid=$!
    local tries=0
    until dig @127.0.0.1 -p "$port" +time=1 +tries=1 +short host1.example.com A 2>/dev/null | grep -q '^10\.'; do
        tries=$((tries + 1))
        if ((tries > 100)) || ! alive "$pid"; then
            echo "error: $name did not answer on port $port; its log:" >&2
            cat "$dir/log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

results=$OUT_DIR/results.csv
echo "round,server,qps,cpu_us_per_query,lost,load1,throttled,latency_us,syscalls_per_query,switches_per_query" >"$results"
port=$PORT_BASE
for ((round = 1; round <= ROUNDS; round++)); do
    for server in $SERVERS; do
        port=$((port + 1))
        start_server "$server" "$port"
        before=$(tree_cpu_ticks "$pid")
        read -r periods0 throttled0 _ < <(throttle_stat)
        out=$OUT_DIR/$server.$round.dnsperf
        perf_out=$OUT_DIR/$server.$round.perf
        perf_pid=
        if [[ -n $PERF ]]; then
            perf stat -x, -o "$perf_out" -e raw_syscalls:sys_enter,context-switches \
                -p "$(tree_pids "$pid" | paste -sd,)" &
            perf_pid=$!
        fi
        taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$queries" \
            -l "$DURATION" -q "$OUTSTANDING" -c 1 -T 1 >"$out" 2>&1 || true
        after=$(tree_cpu_ticks "$pid")
        if [[ -n $perf_pid ]]; then
            kill -INT "$perf_pid"
            wait "$perf_pid" 2>/dev/null || true
        fi
        read -r periods1 throttled1 _ < <(throttle_stat)
        kill_tree "$pid" TERM
        wait "$pid" 2>/dev/null || true
        pid=
        # Share of the quota's periods in which the server hit its quota (0 without one).
        throttled=$(awk -v p=$((periods1 - periods0)) -v t=$((throttled1 - throttled0)) \
            'BEGIN { if (p > 0) printf "%.2f", t / p; else print "0" }')
        qps=$(awk '/Queries per second:/ { print $4 }' "$out")
        completed=$(awk '/Queries completed:/ { print $3 }' "$out")
        lost=$(awk '/Queries lost:/ { print $3 }' "$out")
        cpu_us=$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="${completed:-0}" \
            'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "nan" }')
        load1=$(cut -d' ' -f1 /proc/loadavg)
        # dnsperf's mean latency (seconds) in µs.
        latency=$(awk '/Average Latency/ { printf "%.0f", $4 * 1e6 }' "$out")
        syscalls=
        switches=
        if [[ -n $perf_pid ]]; then
            per_query() {
                awk -F, -v e="$1" -v n="${completed:-0}" \
                    '$3 == e && n > 0 { printf "%.3f", $1 / n }' "$perf_out"
            }
            syscalls=$(per_query raw_syscalls:sys_enter)
            switches=$(per_query context-switches)
        fi
        printf 'round %d %-9s %12s q/s  %8s us CPU/query  lost %s  load %s  throttled %s  latency %s us%s\n' \
            "$round" "$server" "$qps" "$cpu_us" "$lost" "$load1" "$throttled" "$latency" \
            "${perf_pid:+  syscalls/query $syscalls  switches/query $switches}"
        echo "$round,$server,$qps,$cpu_us,$lost,$load1,$throttled,$latency,$syscalls,$switches" >>"$results"
    done
done

echo
quota=${SERVER_QUOTA:+, each server limited to $SERVER_QUOTA% of a CPU}
echo "Medians over $ROUNDS rounds (server on CPU $SERVER_CPU$quota, dnsperf -q $OUTSTANDING on CPU $CLIENT_CPU, ${DURATION}s each):"
python3 - "$results" $SERVERS <<'EOF'
import csv, statistics, sys
path, servers = sys.argv[1], sys.argv[2:]
rows = list(csv.DictReader(open(path)))
med = {}
for s in servers:
    q = [float(r["qps"]) for r in rows if r["server"] == s and r["qps"]]
    c = [float(r["cpu_us_per_query"]) for r in rows if r["server"] == s and r["cpu_us_per_query"] not in ("", "nan")]
    med[s] = (statistics.median(q) if q else float("nan"), statistics.median(c) if c else float("nan"),
              (min(q), max(q)) if q else (0, 0), (min(c), max(c)) if c else (0, 0))
ref = servers[0]
def median_of(s, key):
    v = [float(r[key]) for r in rows if r["server"] == s and r.get(key) not in (None, "", "nan")]
    return f"{statistics.median(v):g}" if v else "–"
print(f"| server | queries/s (median, range) | CPU µs/query (median, range) | q/s vs {ref} | CPU vs {ref} | mean latency µs | syscalls/query | switches/query |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for s in servers:
    q, c, (lo, hi), (clo, chi) = med[s]
    extra = " | ".join(median_of(s, k) for k in ("latency_us", "syscalls_per_query", "switches_per_query"))
    print(f"| {s} | {q:,.0f} ({lo:,.0f}–{hi:,.0f}) | {c:.2f} ({clo:.2f}–{chi:.2f}) | {q / med[ref][0]:.2f} | {c / med[ref][1]:.2f} | {extra} |")
loads = [float(r["load1"]) for r in rows if r.get("load1")]
if loads:
    print(f"load average (1 min) during the runs: {min(loads):.2f}–{max(loads):.2f}")
EOF
echo "raw results: $results"
