#!/usr/bin/env bash
# IRC: `ringwork serve irc` (2 cores) against ngircd (Debian's; one thread, as it is built)
# under the same load: CLIENTS clients in CHANNELS channels (CLIENTS/CHANNELS members each),
# RATE PRIVMSGs per second to the channels, each delivered to every other member. The load
# is benches/examples/irc_load.rs (the ringwork engine, LOAD_CORES reactor threads), on the
# same machine.
#
# For each server of SERVERS, ROUNDS times: start it on a fresh port, read its RSS (VmRSS),
# run irc_load (connect, register, join, warm up, measure DURATION seconds), read its RSS
# again while the clients are still connected (irc_load's "all joined" line), stop it.
# Prints irc_load's result line with the server's RSS growth per client added.
#
# Settings (environment):
#   SERVERS="ringwork ngircd"  ROUNDS=1  CLIENTS=10000  CHANNELS=100  RATE=200
#   DURATION=20  WARMUP=3  LOAD_CORES=1  RINGWORK_CORES=2  PORT_BASE=19670
#   JOIN_TIMEOUT=900  CONNECTING=200 (clients connecting or registering at once: ngircd takes about a
#   second per registration, so 10,000 clients one at a time would take hours)
#   RINGWORK_BIN (default: target/release/ringwork)
# Needs: ngircd (apt-get install ngircd), `ulimit -n` above CLIENTS (raised here if it can),
# cargo build --release -p ringwork-cli -p ringwork-benches --example irc_load.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$here/../..
SERVERS=${SERVERS:-"ringwork ngircd"}
ROUNDS=${ROUNDS:-1}
CLIENTS=${CLIENTS:-10000}
CHANNELS=${CHANNELS:-100}
RATE=${RATE:-200}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
LOAD_CORES=${LOAD_CORES:-1}
CONNECTING=${CONNECTING:-200}
JOIN_TIMEOUT=${JOIN_TIMEOUT:-900}
RINGWORK_CORES=${RINGWORK_CORES:-2}
PORT_BASE=${PORT_BASE:-19670}
RINGWORK_BIN=${RINGWORK_BIN:-$root/target/release/ringwork}
LOAD_BIN=${LOAD_BIN:-$root/target/release/examples/irc_load}
ulimit -n $((CLIENTS * 2 + 1000)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < CLIENTS + 100 )); then
    echo "error: ulimit -n $(ulimit -n) is below $CLIENTS clients" >&2
    exit 1
fi
work=$(mktemp -d /tmp/irc-bench.XXXXXX)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "error: nothing listens on port $1" >&2
    return 1
}

start_server() { # name port -> pid on stdout
    local name=$1 port=$2
    case $name in
    ringwork)
        "$RINGWORK_BIN" serve irc --listen "tcp:$port:interface=127.0.0.1" \
            --cores "$RINGWORK_CORES" >"$work/$name.log" 2>&1 &
        echo $!
        ;;
    ngircd)
        cat >"$work/ngircd.conf" <<CONF
[Global]
Name = irc.bench.local
Info = bench
Listen = 127.0.0.1
Ports = $port
PidFile = $work/ngircd.pid
ServerUID = $(id -u)
ServerGID = $(id -g)
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
PingTimeout = 600
PongTimeout = 120
[Options]
DNS = no
Ident = no
PAM = no
CONF
        /usr/sbin/ngircd -n -f "$work/ngircd.conf" >"$work/$name.log" 2>&1 &
        echo $!
        ;;
    *) echo "error: unknown server $name" >&2; return 1 ;;
    esac
}

port=$PORT_BASE
for round in $(seq "$ROUNDS"); do
    for name in $SERVERS; do
        port=$((port + 1))
        pid=$(start_server "$name" "$port")
        wait_port "$port"
        before=$(rss_kb "$pid")
        rm -f "$work/load.out" "$work/load.err"
        "$LOAD_BIN" --connect "127.0.0.1:$port" --clients "$CLIENTS" --channels "$CHANNELS" \
            --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" --cores "$LOAD_CORES" \
            --connecting "$CONNECTING" --join-timeout "$JOIN_TIMEOUT" \
            >"$work/load.out" 2>"$work/load.err" &
        load=$!
        # The RSS with every client registered and joined (before the messages start).
        until grep -q "^all .* joined" "$work/load.err" 2>/dev/null; do
            if ! kill -0 "$load" 2>/dev/null; then break; fi
            sleep 0.2
        done
        joined=$(rss_kb "$pid")
        status=0
        wait "$load" || status=$?
        after=$(rss_kb "$pid")
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        if (( status != 0 )); then
            echo "round $round $name: irc_load failed ($status):" >&2
            tail -5 "$work/load.err" >&2
            continue
        fi
        per_client=$(awk -v a="$before" -v b="$joined" -v n="$CLIENTS" 'BEGIN { printf "%.1f", (b - a) / n }')
        echo "round=$round server=$name $(grep '^result:' "$work/load.out" | sed 's/^result: //') rss_before_kb=$before rss_joined_kb=$joined rss_after_kb=$after kb_per_client=$per_client"
    done
done
