#!/usr/bin/env bash
# Installs the real DNS peers of the tests: dig (bind9-dnsutils) for
# protocols/cli/tests/dns_interop.rs, Knot (knot, an authoritative server the resolver
# tests in protocols/cli/tests/dns_resolver.rs start) from Debian, and dnspython (from PyPI,
# for the python3 on PATH; both test files script it).
# Idempotent: installs only what is missing, then prints the versions. Needs root (or
# sudo) for apt-get.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        exec sudo -E "$0" "$@"
    fi
    echo "error: run as root (apt-get install)" >&2
    exit 1
fi

missing=()
command -v dig >/dev/null 2>&1 || missing+=(bind9-dnsutils)
command -v knotd >/dev/null 2>&1 || [[ -x /usr/sbin/knotd ]] || missing+=(knot)
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || { echo "error: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
    # The package starts a knot service: the tests run their own, on their own ports.
    if [[ " ${missing[*]} " == *" knot "* ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now knot >/dev/null 2>&1 || true
    fi
fi
if ! python3 -c 'import dns.message' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'dnspython>=2.4,<3'
fi
dig -v 2>&1 | head -1
knotd -V 2>&1 | head -1
python3 -c 'import dns.version; print("dnspython", dns.version.version)'
