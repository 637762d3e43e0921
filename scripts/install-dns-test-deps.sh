#!/usr/bin/env bash
# Installs the real DNS peers of the tests (protocols/cli/tests/dns_interop.rs): dig
# (bind9-dnsutils, from Debian) and dnspython (from PyPI, for the python3 on PATH).
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

if ! command -v dig >/dev/null 2>&1; then
    command -v apt-get >/dev/null || { echo "error: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends bind9-dnsutils
fi
if ! python3 -c 'import dns.message' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'dnspython>=2.4,<3'
fi
dig -v 2>&1 | head -1
python3 -c 'import dns.version; print("dnspython", dns.version.version)'
