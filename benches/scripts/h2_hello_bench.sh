#!/usr/bin/env bash
# HTTP/2 "hello world" benchmark (issue 18): `ringwork serve hello` against nginx
# (1 worker, `http2` on the listener) and, over h2c, hyper's HTTP/2 server (benches/peers
# tokio-h2, one current_thread core), over h2c with prior knowledge and over TLS (ALPN h2),
# each server pinned to SERVER_CPU, h2load pinned to LOAD_CPU with -c CONNS -m STREAMS, in
# ROUNDS interleaved rounds of N requests. Prints requests/s and the server's CPU time per
# request (user+system of its whole process tree, from /proc, over the h2load run).
#
# Needs: target/release/ringwork (cargo build --release -p ringwork-cli), h2load
# (scripts/install-h2-test-deps.sh), nginx and openssl (scripts/install-http-test-deps.sh);
# hyper's peer if built (benches/peers/install.sh; HYPER_H2_BIN, default
# benches/peers/bin/tokio-h2: skipped with a note when absent).
#
# Environment: N (requests per round, 200000), CONNS (100), STREAMS (10), ROUNDS (3),
# SERVER_CPU (0), LOAD_CPU (1), MODES ("h2c tls").
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
N=${N:-200000}
CONNS=${CONNS:-100}
STREAMS=${STREAMS:-10}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MODES=${MODES:-h2c tls}
ringwork=$repo/target/release/ringwork
nginx=$(command -v nginx || echo /usr/sbin/nginx)
hyper=${HYPER_H2_BIN:-$repo/benches/peers/bin/tokio-h2}
for tool in "$ringwork" h2load "$nginx" openssl; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (see the header)" >&2; exit 1; }
done

run=$(mktemp -d)
chmod 755 "$run"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$run"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$run/key.pem" -out "$run/cert.pem" 2>/dev/null

# Free ports (bound and released).
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rw_plain=$(port); rw_tls=$(port); ng_plain=$(port); ng_tls=$(port); hy_plain=$(port)

taskset -c "$SERVER_CPU" "$ringwork" serve hello --cores 1 \
    --listen "tcp:$rw_plain:interface=127.0.0.1" \
    --listen "tls:$rw_tls:interface=127.0.0.1:cert=$run/cert.pem:key=$run/key.pem" \
    >"$run/ringwork.log" 2>&1 &
pids+=($!)
rw_pid=$!

sed -e "s|listen 127.0.0.1:@PORT@;|listen 127.0.0.1:$ng_plain http2;\n        listen 127.0.0.1:$ng_tls ssl http2;\n        ssl_certificate $run/cert.pem;\n        ssl_certificate_key $run/key.pem;|" \
    -e "s|@RUNDIR@|$run|g" "$repo/benches/peers/nginx/hello.conf.template" >"$run/nginx.conf"
taskset -c "$SERVER_CPU" "$nginx" -p "$run" -c "$run/nginx.conf" >"$run/nginx.log" 2>&1 &
pids+=($!)
ng_pid=$!

servers="ringwork nginx"
ports=("$rw_plain" "$rw_tls" "$ng_plain" "$ng_tls")
if [[ -x $hyper ]]; then
    taskset -c "$SERVER_CPU" "$hyper" --port "$hy_plain" --cores 1 >"$run/hyper.log" 2>&1 &
    pids+=($!)
    hy_pid=$!
    servers="$servers hyper"
    ports+=("$hy_plain")
else
    echo "note: no hyper peer at $hyper (benches/peers/install.sh builds it): skipped" >&2
fi

# Wait for the listeners (a connect that succeeds), not for a time.
for p in "${ports[@]}"; do
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then break; fi
        sleep 0.1
    done
done

ticks() {
    local total=0 pid fields
    for pid in $1 $(pgrep -P "$1" || true); do
        read -r -a fields <"/proc/$pid/stat"
        total=$((total + fields[13] + fields[14]))
    done
    echo "$total"
}

hz=$(getconf CLK_TCK)
echo "h2load -n $N -c $CONNS -m $STREAMS, $ROUNDS rounds; server CPU $SERVER_CPU, h2load CPU $LOAD_CPU"
echo "mode server round requests/s succeeded cpu_us_per_request"
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        for server in $servers; do
            case $server/$mode in
                hyper/h2c) url=http://127.0.0.1:$hy_plain/ pid=$hy_pid ;;
                hyper/tls) continue ;; # the peer speaks h2c only
                ringwork/h2c) url=http://127.0.0.1:$rw_plain/ pid=$rw_pid ;;
                ringwork/tls) url=https://127.0.0.1:$rw_tls/ pid=$rw_pid ;;
                nginx/h2c) url=http://127.0.0.1:$ng_plain/ pid=$ng_pid ;;
                nginx/tls) url=https://127.0.0.1:$ng_tls/ pid=$ng_pid ;;
            esac
            before=$(ticks "$pid")
            out=$(taskset -c "$LOAD_CPU" h2load -n "$N" -c "$CONNS" -m "$STREAMS" -t 1 "$url" 2>&1)
            after=$(ticks "$pid")
            rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
            ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
            us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$N" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
            echo "$mode $server $round $rps $ok $us"
        done
    done
done
