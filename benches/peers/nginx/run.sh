#!/usr/bin/env bash
# nginx "Hello, World!" peer for the side-by-side comparison (benches/peers/peers.toml).
#
#   benches/peers/nginx/run.sh PORT CORES [ADDR]
#
# Renders a config into a fresh temp directory (pid file and temp paths there, so it runs
# as root or any user without /var/lib/nginx or /run) and execs nginx in the foreground:
# the process the caller started becomes nginx's master, its CORES workers are children
# (CPU and RSS measured over the process tree), and SIGTERM stops them all (fast shutdown).
# Config: master_process on, worker_processes CORES, `listen ... reuseport` (one listening
# socket per worker, as the thread-per-core peers have), access_log off,
# keepalive_requests 100000000 (the default 1000 would make clients reconnect), and
# `return 200 "Hello, World!"` as text/plain.
# nginx: benches/peers/bin/nginx (a link install.sh makes), else NGINX_BIN, else PATH.
set -euo pipefail

if (($# < 2)) || ! [[ $1 =~ ^[0-9]+$ && $2 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 PORT CORES [ADDR]" >&2
    exit 2
fi
port=$1 cores=$2 addr=${3:-127.0.0.1}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
nginx=${NGINX_BIN:-}
if [[ -z $nginx ]]; then
    if [[ -x $here/../bin/nginx ]]; then
        nginx=$here/../bin/nginx
    else
        nginx=$(command -v nginx || echo /usr/sbin/nginx)
    fi
fi
[[ -x $nginx ]] || { echo "$0: nginx not found (run benches/peers/install.sh)" >&2; exit 1; }

tmp=${TMPDIR:-/tmp}
# Remove the run directories of earlier runs whose nginx is gone (exec leaves no cleanup).
for old in "$tmp"/ringwork-nginx-peer.*; do
    [[ -d $old ]] || continue
    pid=$(cat "$old/nginx.pid" 2>/dev/null || true)
    if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
        # Only directories older than a minute: a starting nginx has no pid file yet.
        if [[ -n $(find "$old" -maxdepth 0 -mmin +1 2>/dev/null) ]]; then rm -rf "$old"; fi
    fi
done
rundir=$(mktemp -d "$tmp/ringwork-nginx-peer.XXXXXX")
chmod 755 "$rundir" # the workers run as nobody when the master is root

cat >"$rundir/nginx.conf" <<CONF
worker_processes $cores;
worker_rlimit_nofile 65536;
daemon off;
master_process on;
pid $rundir/nginx.pid;
error_log stderr warn;

events {
    worker_connections 16384;
}

http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;

    client_body_temp_path $rundir/client_body;
    proxy_temp_path $rundir/proxy;
    fastcgi_temp_path $rundir/fastcgi;
    uwsgi_temp_path $rundir/uwsgi;
    scgi_temp_path $rundir/scgi;

    server {
        listen $addr:$port reuseport;
        server_name _;

        location / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
    }
}
CONF

exec "$nginx" -p "$rundir" -c "$rundir/nginx.conf"
