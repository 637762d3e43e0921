#!/usr/bin/env bash
# Installs the real SFTP peers of protocols/cli/tests/sftp_interop.rs: OpenSSH's `sftp`
# client (Debian's openssh-client), which runs `ringwork sftp-server` directly with
# `sftp -D` (no ssh, no sshd), and paramiko (from PyPI for the python3 on PATH), whose
# SFTPClient talks to the server over a socket pair. Idempotent: installs only what is
# missing, then prints the versions. Needs root (or sudo) for apt-get.
set -euo pipefail

if ! command -v sftp >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null; then
            exec sudo -E "$0" "$@"
        fi
        echo "error: run as root (apt-get install openssh-client)" >&2
        exit 1
    fi
    command -v apt-get >/dev/null || { echo "error: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends openssh-client
fi
ssh -V 2>&1
python3 -c 'import paramiko' >/dev/null 2>&1 \
    || python3 -m pip install --quiet --disable-pip-version-check 'paramiko>=2.12'
python3 -c 'import paramiko; print("paramiko", paramiko.__version__)'
