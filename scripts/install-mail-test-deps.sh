#!/usr/bin/env bash
# Installs the real SMTP peers of protocols/cli/tests/mail_interop.rs and mail_client.rs:
# swaks (Debian) and Python's aiosmtpd (pip; the server our SMTP client is tested
# against). Python's smtplib, poplib and imaplib (the other peers) come with python3.
# Idempotent: installs only what is
# missing, then prints the versions. Needs root (or sudo) for apt-get.
set -euo pipefail

if ! command -v swaks >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null; then
            exec sudo -E "$0" "$@"
        fi
        echo "error: run as root (apt-get install swaks)" >&2
        exit 1
    fi
    command -v apt-get >/dev/null || { echo "error: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # libnet-ssleay-perl: swaks's --tls.
    apt-get install -y --no-install-recommends swaks libnet-ssleay-perl
fi
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    python3 -m pip install --quiet 'aiosmtpd==1.4.6'
fi
swaks --version 2>&1 | head -1
python3 -c 'import aiosmtpd; print("aiosmtpd", aiosmtpd.__version__)'
python3 -c 'import imaplib, poplib, smtplib, ssl, sys; print("python", sys.version.split()[0], ssl.OPENSSL_VERSION)'
