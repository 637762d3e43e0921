#!/usr/bin/env bash
# TLS benchmark: ringwork against nginx with the same certificate (one ECDSA P-256
# certificate made for the run), the same protocol (TLS 1.3) and the same cipher suite
# (CIPHER; nginx allows only it, ringwork-load offers only it with --cipher-suite, so both
# servers negotiate it: the table shows what each run negotiated). Load: ringwork-load.
#
# Workloads (WORKLOADS):
#   full     full handshakes/s: ringwork-load http --reconnect-every 1 --no-resume
#            -c HS_CONNECTIONS https://127.0.0.1:PORT/  (a new TLS connection per request)
#   resumed  resumed handshakes/s: the same with session resumption (TLS 1.3 tickets)
#   bulk     bulk MB/s: keep-alive GETs of a BULK_SIZE static file, -c BULK_CONNECTIONS
# Servers (SERVERS, interleaved in this order; the first is the reference of the ratios):
#   ringwork  `ringwork serve hello` (full, resumed) or `ringwork serve web --root DIR`
#             (bulk) with --listen tls:PORT:cert=C:key=K:interface=127.0.0.1 --cores 1.
#             If this ringwork has no tls: endpoint yet, the script says so and runs nginx
#             alone.
#   ringwork-base  the same with RINGWORK_BASE_BIN (another build, e.g. before a change:
#             interleaved with the others, so before/after figures share the machine's noise)
#   nginx     benches/peers/nginx/tls.conf.template: 1 worker, TLSv1.3 + CIPHER only,
#             ssl_session_tickets on, ssl_session_cache shared:SSL:10m, no access log,
#             keepalive_requests 100000000; "Hello, World!" at / and the bulk file.
# For each round, workload and server: start the server pinned to SERVER_CPU on a fresh
# port, wait until it answers over TLS (curl --cacert), run a warm-up load (WARMUP s,
# discarded), then the measured ringwork-load run (DURATION s) pinned to CLIENT_CPU, read
# the server's CPU time before and after it, stop the server, wait until the port is free.
#
# Settings (environment):
#   ROUNDS=3 DURATION=10 WARMUP=2 (seconds; WARMUP=0 skips the warm-up)
#   WORKLOADS="full resumed bulk"  SERVERS="ringwork nginx"
#   HS_CONNECTIONS=50 BULK_CONNECTIONS=10 BULK_SIZE=1048576 (bytes)
#   CIPHER=TLS_AES_128_GCM_SHA256 (a TLS 1.3 suite name as OpenSSL and IANA spell it)
#   SERVER_CPU=0 CLIENT_CPU=1  PORT_BASE=18443  OUT_DIR= (default: a new mktemp -d)
#   RINGWORK_BIN, RINGWORK_LOAD_BIN (default: $CARGO_TARGET_DIR or target, /release/...;
#   built when missing or older than the sources, REBUILD=0 skips the age check), NGINX_BIN
#
# Figures: rate = handshakes/s (full, resumed; = requests/s, one request per connection;
# the servers issue session tickets in both, as the client cannot tell them not to)
# or received MB/s (bulk; decimal MB of decrypted HTTP bytes, headers included). Server
# CPU = utime+stime of the server's process tree (nginx master + worker) over the measured
# run, from /proc/PID/stat, divided by the handshakes (us/handshake: the whole connection,
# TCP accept and close and one HTTP request included) or by the MB received (ms/MB). busy = that CPU time / wall time: near 100% means the server was the bottleneck;
# well below, the load generator (a TLS client does as much crypto per full handshake as
# the server) or the machine was. On a 2-core VM expect +-10% noise and more (see
# /work/shared/FINDINGS.md): compare only runs of one invocation, read medians and ranges.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
fi
if (($# > 0)); then
    echo "error: no arguments are accepted (settings are environment variables; see --help)" >&2
    exit 2
fi

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
WORKLOADS=${WORKLOADS:-full resumed bulk}
SERVERS=${SERVERS:-ringwork nginx}
HS_CONNECTIONS=${HS_CONNECTIONS:-50}
BULK_CONNECTIONS=${BULK_CONNECTIONS:-10}
BULK_SIZE=${BULK_SIZE:-1048576}
CIPHER=${CIPHER:-TLS_AES_128_GCM_SHA256}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-18443}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=benches/scripts/lib/common.sh
source "$repo/benches/scripts/lib/common.sh"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
# Binaries given explicitly are used as they are; the default ones are built when needed.
[[ -n ${RINGWORK_BIN:-}${RINGWORK_LOAD_BIN:-} ]] || build_bins=1
RINGWORK_BIN=${RINGWORK_BIN:-$target_dir/release/ringwork}
RINGWORK_LOAD_BIN=${RINGWORK_LOAD_BIN:-$target_dir/release/ringwork-load}
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
nginx_template=$repo/benches/peers/nginx/tls.conf.template

for tool in taskset timeout awk curl ps openssl; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool is required (scripts/install-http-test-deps.sh installs curl and nginx)" >&2
        exit 1
    }
done
read -r -a workloads <<<"$WORKLOADS"
read -r -a servers <<<"$SERVERS"
for w in "${workloads[@]}"; do
    [[ $w == full || $w == resumed || $w == bulk ]] || {
        echo "error: unknown workload '$w' in WORKLOADS (full, resumed, bulk)" >&2
        exit 1
    }
done
for s in "${servers[@]}"; do
    case $s in
    ringwork) ;;
    ringwork-base)
        [[ -x ${RINGWORK_BASE_BIN:-} ]] || {
            echo "error: ringwork-base needs RINGWORK_BASE_BIN (an executable ringwork)" >&2
            exit 1
        }
        ;;
    nginx)
        [[ -x $NGINX_BIN ]] || {
            echo "error: nginx not found (NGINX_BIN=$NGINX_BIN); run scripts/install-http-test-deps.sh" >&2
            exit 1
        }
        "$NGINX_BIN" -V 2>&1 | grep -q with-http_ssl_module || {
            echo "error: $NGINX_BIN was built without http_ssl_module" >&2
            exit 1
        }
        ;;
    *)
        echo "error: unknown server '$s' in SERVERS (ringwork, nginx)" >&2
        exit 1
        ;;
    esac
done
if [[ -n ${build_bins:-} ]]; then
    ensure_release_bins "$repo" "$target_dir" ringwork ringwork-load
fi
for bin in "$RINGWORK_BIN" "$RINGWORK_LOAD_BIN"; do
    [[ -x $bin ]] || { echo "error: $bin not found" >&2; exit 1; }
done
"$RINGWORK_LOAD_BIN" http --help | grep -q -- --cipher-suite || {
    echo "error: $RINGWORK_LOAD_BIN has no --cipher-suite (TLS support); rebuild it" >&2
    exit 1
}

if [[ -n ${OUT_DIR:-} ]]; then
    mkdir -p "$OUT_DIR"
else
    OUT_DIR=$(mktemp -d -t tls-bench.XXXXXX)
fi
OUT_DIR=$(cd "$OUT_DIR" && pwd)
mkdir -p "$OUT_DIR/logs"
scratch=$(mktemp -d -t tls-bench-run.XXXXXX)
chmod 755 "$scratch"
csv=$OUT_DIR/results.csv
echo "round,workload,server,port,handshakes,resumed,requests,seconds,rate,mb_per_s,p99_us,server_cpu_ticks,cpu_us_per_handshake,cpu_ms_per_mb,server_busy_pct,steal_ticks,errors,tls" >"$csv"

server_pid=
load_pid=
cleanup() {
    if [[ -n $load_pid ]]; then
        kill_tree "$load_pid" KILL
        wait "$load_pid" 2>/dev/null || true
    fi
    if [[ -n $server_pid ]]; then
        kill_tree "$server_pid" KILL
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the shared certificate and the bulk file --------------------------------------------
# CA:FALSE: openssl's default for -x509 is CA:TRUE, which webpki (rustls) refuses as a
# server certificate (CaUsedAsEndEntity); the certificate is its own trust anchor.
cert=$scratch/cert.pem
key=$scratch/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -keyout "$key" -out "$cert" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature \
    -addext extendedKeyUsage=serverAuth >"$OUT_DIR/logs/openssl.log" 2>&1 || {
    echo "error: openssl could not make the certificate:" >&2
    cat "$OUT_DIR/logs/openssl.log" >&2
    exit 1
}
chmod 644 "$cert" "$key" # nginx's worker may run as nobody
root=$scratch/root
mkdir -p "$root"
head -c "$BULK_SIZE" /dev/urandom >"$root/bulk.bin"
chmod -R a+rX "$root"

# Starts server $1 for workload $2 on `port` (log $3); sets server_pid.
start_server() {
    local name=$1 workload=$2 log=$3 rundir
    rundir=$scratch/$name-$port
    mkdir -p "$rundir"
    chmod 755 "$rundir"
    local endpoint="tls:$port:cert=$cert:key=$key:interface=127.0.0.1"
    case $name in
    ringwork | ringwork-base)
        local bin=$RINGWORK_BIN
        [[ $name == ringwork-base ]] && bin=$RINGWORK_BASE_BIN
        if [[ $workload == bulk ]]; then
            taskset -c "$SERVER_CPU" "$bin" serve web --root "$root" \
                --listen "$endpoint" --cores 1 >"$log" 2>&1 &
        else
            taskset -c "$SERVER_CPU" "$bin" serve hello \
                --listen "$endpoint" --cores 1 >"$log" 2>&1 &
        fi
        ;;
    nginx)
        sed -e "s|@PORT@|$port|g" -e "s|@RUNDIR@|$rundir|g" -e "s|@CERT@|$cert|g" \
            -e "s|@KEY@|$key|g" -e "s|@ROOT@|$root|g" -e "s|@CIPHER@|$CIPHER|g" \
            "$nginx_template" >"$rundir/nginx.conf"
        taskset -c "$SERVER_CPU" "$NGINX_BIN" -p "$rundir" -c "$rundir/nginx.conf" >"$log" 2>&1 &
        ;;
    esac
    server_pid=$!
}

url_of() { # workload
    if [[ $1 == bulk ]]; then
        echo "https://127.0.0.1:$port/bulk.bin"
    else
        echo "https://127.0.0.1:$port/"
    fi
}

# Waits (at most 15 s) until server $1 answers $2 over TLS with 2xx.
wait_ready() {
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)); do
        alive "$1" || return 1
        if listening "$port" &&
            curl -sf -o /dev/null --max-time 2 --cacert "$cert" "$2" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# Runs ringwork-load for workload $1, $2 seconds, JSON to $3 (output to $3.txt).
run_load() {
    local workload=$1 seconds=$2 json=$3 args=()
    case $workload in
    full) args=(-c "$HS_CONNECTIONS" --reconnect-every 1 --no-resume) ;;
    resumed) args=(-c "$HS_CONNECTIONS" --reconnect-every 1) ;;
    bulk) args=(-c "$BULK_CONNECTIONS") ;;
    esac
    timeout $((seconds + 60)) taskset -c "$CLIENT_CPU" "$RINGWORK_LOAD_BIN" http "$(url_of "$workload")" \
        "${args[@]}" -d "${seconds}s" --cacert "$cert" --sni localhost --cipher-suite "$CIPHER" \
        --quiet --json "$json" >"$json.txt" 2>&1 &
    # In the background, so a SIGINT/SIGTERM to the script is handled at once (bash runs
    # traps only between commands, and `wait` is one).
    load_pid=$!
    local rc=0
    wait "$load_pid" || rc=$?
    load_pid=
    return "$rc"
}

# ringwork: probe the tls: endpoint once (the CLI syntax is new).
if [[ " ${servers[*]} " == *" ringwork "* ]]; then
    fresh_port
    probe_log=$OUT_DIR/logs/ringwork-tls-probe.log
    start_server ringwork full "$probe_log"
    if ! wait_ready "$server_pid" "$(url_of full)"; then
        echo "NOTE: ringwork ($RINGWORK_BIN) does not serve TLS with --listen tls:PORT:cert=..:key=..;" \
            "its output:" >&2
        sed 's/^/    /' "$probe_log" | head -n 5 >&2
        echo "NOTE: benchmarking nginx only (rebuild ringwork once the tls: endpoint is on main)" >&2
        servers=("${servers[@]/ringwork/}")
        read -r -a servers <<<"${servers[*]}"
        ((${#servers[@]} > 0)) || { echo "error: no server left to benchmark" >&2; exit 1; }
    fi
    stop_tree "$server_pid"
    server_pid=
    wait_released "$port"
fi

run_one() {
    local round=$1 workload=$2 name=$3
    local tag=$name-$workload-$round
    local server_log=$OUT_DIR/logs/server-$tag.log json=$OUT_DIR/logs/load-$tag.json
    fresh_port
    start_server "$name" "$workload" "$server_log"
    if ! wait_ready "$server_pid" "$(url_of "$workload")"; then
        echo "error: $name did not answer $(url_of "$workload") over TLS within 15 s:" >&2
        cat "$server_log" >&2
        exit 1
    fi
    if ((WARMUP > 0)) && ! run_load "$workload" "$WARMUP" "$OUT_DIR/logs/warmup-$tag.json"; then
        echo "error: the warm-up load failed against $name ($workload):" >&2
        cat "$OUT_DIR/logs/warmup-$tag.json.txt" >&2
        exit 1
    fi
    local cpu0 cpu1 steal0 steal1 t0 t1
    cpu0=$(tree_cpu_ticks "$server_pid")
    steal0=$(steal_ticks)
    t0=$(date +%s%N)
    if ! run_load "$workload" "$DURATION" "$json"; then
        echo "error: ringwork-load failed against $name ($workload):" >&2
        cat "$json.txt" >&2
        exit 1
    fi
    cpu1=$(tree_cpu_ticks "$server_pid")
    steal1=$(steal_ticks)
    t1=$(date +%s%N)
    alive "$server_pid" || { echo "error: $name died during the run:" >&2; cat "$server_log" >&2; exit 1; }
    stop_tree "$server_pid"
    server_pid=
    wait_released "$port"

    local hs resumed requests seconds mbps p99 errors tls rate
    hs=$(json_field "$json" tls_handshakes)
    resumed=$(json_field "$json" tls_resumed)
    requests=$(json_field "$json" requests)
    seconds=$(json_field "$json" duration_s)
    mbps=$(json_field "$json" in_mb_per_sec)
    p99=$(awk '/"latency_us"/ { l = 1 } l && /"p99":/ { v = $2; sub(/,$/, "", v); print v; exit }' "$json")
    errors=$(awk '/"errors": \{/ { e = 1; next } e && /\}/ { exit } e { v = $2; sub(/,$/, "", v); s += v } END { print s + 0 }' "$json")
    tls=$(json_field "$json" tls_session)
    if [[ $workload == bulk ]]; then
        rate=$mbps
    else
        rate=$(json_field "$json" handshakes_per_sec)
    fi
    local ticks=$((cpu1 - cpu0)) cpu_hs cpu_mb busy
    cpu_hs=$(awk -v t="$ticks" -v hz="$clk_tck" -v n="$hs" 'BEGIN { printf "%.1f", (n > 0) ? t * 1e6 / hz / n : 0 }')
    cpu_mb=$(awk -v t="$ticks" -v hz="$clk_tck" -v mb="$mbps" -v s="$seconds" \
        'BEGIN { printf "%.3f", (mb * s > 0) ? t * 1e3 / hz / (mb * s) : 0 }')
    busy=$(awk -v t="$ticks" -v hz="$clk_tck" -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", (ns > 0) ? 100 * t / hz / (ns / 1e9) : 0 }')
    echo "$round,$workload,$name,$port,$hs,$resumed,$requests,$seconds,$rate,$mbps,$p99,$ticks,$cpu_hs,$cpu_mb,$busy,$((steal1 - steal0)),$errors,$tls" >>"$csv"
    local unit=hs/s cpu_text="$cpu_hs us/handshake"
    [[ $workload == bulk ]] && unit=MB/s cpu_text="$cpu_mb ms/MB"
    printf '%-9s %-8s round %s  %10.1f %s  %6s handshakes (%s resumed)  server %s, busy %s%%  p99 %s us  errors %s  [%s]\n' \
        "$name" "$workload" "$round" "$rate" "$unit" "$hs" "$resumed" "$cpu_text" "$busy" "$p99" "$errors" "$tls" >&2
    if [[ $workload == full && $resumed != 0 ]] || [[ $workload == resumed && $resumed == 0 ]]; then
        echo "warning: $name $workload: $resumed of $hs handshakes resumed" >&2
    fi
}

column_of() { # workload server column-name
    awk -F, -v w="$1" -v s="$2" -v c="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $2 == w && $3 == s { print $col[c] }' "$csv"
}

echo "TLS benchmark (${servers[*]}; ${workloads[*]}): $(uname -r), $(nproc) CPUs, rounds=$ROUNDS" \
    "duration=${DURATION}s warmup=${WARMUP}s, cipher $CIPHER, server CPU $SERVER_CPU, load CPU" \
    "$CLIENT_CPU; results in $OUT_DIR" >&2
for round in $(seq "$ROUNDS"); do
    for workload in "${workloads[@]}"; do
        for name in "${servers[@]}"; do
            run_one "$round" "$workload" "$name"
        done
    done
done

summary=$OUT_DIR/summary.md
ref=${servers[0]}
{
    echo "TLS 1.3 ($CIPHER, ECDSA P-256), ringwork-load on CPU $CLIENT_CPU, server on CPU $SERVER_CPU," \
        "${DURATION} s after ${WARMUP} s warm-up, $ROUNDS interleaved rounds ($(uname -r), $(date -u +%Y-%m-%dT%H:%MZ))"
    for workload in "${workloads[@]}"; do
        echo
        case $workload in
        full) echo "### full handshakes (-c $HS_CONNECTIONS, --reconnect-every 1 --no-resume)"; unit="handshakes/s"; cpucol=cpu_us_per_handshake; cpuunit="us CPU/handshake" ;;
        resumed) echo "### resumed handshakes (-c $HS_CONNECTIONS, --reconnect-every 1)"; unit="handshakes/s"; cpucol=cpu_us_per_handshake; cpuunit="us CPU/handshake" ;;
        bulk) echo "### bulk ($BULK_SIZE-byte file, keep-alive, -c $BULK_CONNECTIONS)"; unit="MB/s"; cpucol=cpu_ms_per_mb; cpuunit="ms CPU/MB" ;;
        esac
        echo
        echo "| server | median $unit | min-max | median server $cpuunit | min-max | median p99 us | median busy | $ref/server rate | $ref/server CPU | resumed/handshakes | errors | negotiated |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        ref_rate=$(column_of "$workload" "$ref" rate | median)
        ref_cpu=$(column_of "$workload" "$ref" "$cpucol" | median)
        for name in "${servers[@]}"; do
            rate=$(column_of "$workload" "$name" rate | median)
            rmin=$(column_of "$workload" "$name" rate | sort -g | head -n 1)
            rmax=$(column_of "$workload" "$name" rate | sort -g | tail -n 1)
            cpu=$(column_of "$workload" "$name" "$cpucol" | median)
            cmin=$(column_of "$workload" "$name" "$cpucol" | sort -g | head -n 1)
            cmax=$(column_of "$workload" "$name" "$cpucol" | sort -g | tail -n 1)
            p99=$(column_of "$workload" "$name" p99_us | median)
            busy=$(column_of "$workload" "$name" server_busy_pct | median)
            hs=$(column_of "$workload" "$name" handshakes | awk '{ s += $1 } END { print s + 0 }')
            res=$(column_of "$workload" "$name" resumed | awk '{ s += $1 } END { print s + 0 }')
            errors=$(column_of "$workload" "$name" errors | awk '{ s += $1 } END { print s + 0 }')
            tls=$(column_of "$workload" "$name" tls | sort -u | paste -sd/ -)
            awk -v n="$name" -v r="$rate" -v rmin="$rmin" -v rmax="$rmax" -v c="$cpu" -v cmin="$cmin" \
                -v cmax="$cmax" -v p99="$p99" -v busy="$busy" -v rr="$ref_rate" -v rc="$ref_cpu" \
                -v hs="$hs" -v res="$res" -v errors="$errors" -v tls="$tls" 'BEGIN {
                printf "| %s | %.1f | %.1f-%.1f | %.2f | %.2f-%.2f | %.0f | %.0f%% | x%.2f | x%.2f | %d/%d | %d | %s |\n",
                    n, r, rmin, rmax, c, cmin, cmax, p99, busy,
                    (r > 0) ? rr / r : 0, (c > 0) ? rc / c : 0, res, hs, errors, tls }'
        done
    done
} >"$summary"
echo
cat "$summary"
echo
echo "raw results: $csv; logs and ringwork-load JSON reports in $OUT_DIR/logs" >&2
