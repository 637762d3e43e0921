#!/usr/bin/env bash
# Installs the real SSH peers of protocols/cli/tests/ssh_interop.rs and the client tests:
# OpenSSH's client (ssh, ssh-keygen) and server (sshd), from Debian. Idempotent: installs
# only what is missing, then prints the version. Needs root (or sudo) for apt-get.
set -euo pipefail

if ! command -v ssh >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1 \
    || [[ ! -x /usr/sbin/sshd ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null; then
            exec sudo -E "$0" "$@"
        fi
        echo "error: run as root (apt-get install openssh-client openssh-server)" >&2
        exit 1
    fi
    command -v apt-get >/dev/null || { echo "error: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends openssh-client openssh-server
fi
ssh -V 2>&1
