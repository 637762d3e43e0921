#!/usr/bin/env bash
# Installs the peers of the inherited-listener and socket-option tests
# (protocols/cli/tests/inherited.rs, socket_options.rs): systemd-socket-activate, from
# Debian's `systemd` package, curl, and ss (iproute2). Idempotent: installs
# only what is missing (one `apt-get update` + `apt-get install`), then prints the version.
# Needs root (or sudo) and apt-get (Debian/Ubuntu). Installing the package does not start
# systemd: the tests run the activator as a plain program.
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
command -v systemd-socket-activate >/dev/null 2>&1 || missing+=(systemd)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
if ((${#missing[@]} > 0)); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
systemd-socket-activate --version | head -1
