#!/usr/bin/env bash
# Installs the tools of the HTTP benchmarks and tests (benches/scripts/http_hello_bench.sh):
# curl, python3, wrk, nginx (nginx-light, or nginx if the archive has no nginx-light) and
# openssl. Idempotent: installs only what is missing (one `apt-get update` + `apt-get
# install`), then prints the versions. Needs root (or sudo) and apt-get (Debian/Ubuntu).
#
# The nginx system service is not left running: a policy-rc.d that forbids service starts
# is in place during the installation (and removed afterwards), and any nginx service is
# stopped afterwards anyway. The benchmark starts its own nginx with its own config.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        exec sudo -E "$0" "$@"
    fi
    echo "error: run as root (apt-get install)" >&2
    exit 1
fi
command -v apt-get >/dev/null || { echo "error: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have curl || missing+=(curl)
have python3 || missing+=(python3)
have wrk || missing+=(wrk)
have openssl || missing+=(openssl)
need_nginx=0
have nginx || [[ -x /usr/sbin/nginx ]] || need_nginx=1

if ((${#missing[@]} > 0 || need_nginx)); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    if ((need_nginx)); then
        # nginx-light is a transitional/absent package on some releases: fall back to nginx.
        if apt-cache show nginx-light 2>/dev/null | grep -q '^Package: nginx-light'; then
            missing+=(nginx-light)
        else
            missing+=(nginx)
        fi
    fi
    # Forbid service starts by maintainer scripts while installing (exit code 101 = action
    # forbidden, see invoke-rc.d(8)); restore any policy-rc.d that was there before.
    policy=/usr/sbin/policy-rc.d
    saved=
    if [[ -e $policy ]]; then
        saved=$(mktemp)
        cp -p "$policy" "$saved"
    fi
    restore_policy() {
        if [[ -n $saved ]]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    echo "installing: ${missing[*]}" >&2
    apt-get install -y --no-install-recommends "${missing[@]}"
    restore_policy
    trap - EXIT
else
    echo "all HTTP test dependencies are already installed" >&2
fi

# Whatever the package did, leave no nginx service running (the benchmark runs its own).
if have service; then service nginx stop >/dev/null 2>&1 || true; fi
if have systemctl && [[ -d /run/systemd/system ]]; then
    systemctl stop nginx >/dev/null 2>&1 || true
    systemctl disable nginx >/dev/null 2>&1 || true
fi
if [[ -r /run/nginx.pid ]]; then
    kill "$(cat /run/nginx.pid)" 2>/dev/null || true
fi
# Port 80 must be free afterwards (an nginx listening there means the service started).
port80() {
    awk 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == ":0050" { found = 1 }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
for _ in $(seq 50); do port80 || break; sleep 0.1; done
if port80; then
    echo "warning: something still listens on port 80 (not started by this script?)" >&2
fi

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
echo "curl:    $(curl --version | head -n 1)"
echo "python3: $(python3 --version 2>&1)"
# wrk has no --version; its usage text starts with the version line.
echo "wrk:     $( (wrk -v 2>&1 || true) | head -n 1)"
echo "nginx:   $("$nginx_bin" -v 2>&1)"
echo "openssl: $(openssl version)"
