#!/usr/bin/env bash
# Installs the HTTP/2 peers of the interop tests (protocols/tests/h2_interop.rs) and the
# h2 benchmark: nghttp2-client (h2load, nghttp) from Debian's packages, and Python's httpx
# with its HTTP/2 extra (the `h2` library) and grpcio (a real gRPC peer) from PyPI, into the python3 on PATH (the one the
# tests run). curl comes from install-http-test-deps.sh (Debian's is built with nghttp2).
# Idempotent: installs only what is missing, then prints the versions. Needs root (or
# sudo) and apt-get (Debian/Ubuntu).
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        exec sudo -E "$0" "$@"
    fi
    echo "error: run as root (apt-get install)" >&2
    exit 1
fi

if ! command -v h2load >/dev/null 2>&1 || ! command -v nghttp >/dev/null 2>&1; then
    command -v apt-get >/dev/null || { echo "error: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends nghttp2-client
fi

if ! python3 -c 'import httpx, h2, grpc' >/dev/null 2>&1; then
    # A Debian python3 refuses a system-wide pip install (PEP 668) unless told to.
    python3 -m pip install --quiet 'httpx[http2]' grpcio ||
        python3 -m pip install --quiet --break-system-packages 'httpx[http2]' grpcio
fi

h2load --version | head -n 1
python3 -c 'import grpc, httpx, h2; print("httpx", httpx.__version__, "h2", h2.__version__, "grpcio", grpc.__version__)'
