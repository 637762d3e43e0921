#!/usr/bin/env bash
# Installs the real WebSocket peers of the interop tests (protocols/cli/tests/ws_interop.rs,
# protocols/tests/ws_client.rs): Python's `websockets` (PyPI, for the python3 on PATH) and
# Node's `ws` (npm, into scripts/ws-peers/node_modules, next to the peer scripts), and
# Node.js itself from Debian when it is missing. Idempotent: installs only what is missing,
# then prints the versions.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: node/npm missing; run as root (apt-get install nodejs npm)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends nodejs npm
fi
if ! python3 -c 'import websockets.asyncio.client' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'websockets>=13,<16'
fi
if ! (cd "$here/ws-peers" && node -e "require('ws')") >/dev/null 2>&1; then
    (cd "$here/ws-peers" && npm install --no-audit --no-fund --silent)
fi
python3 -c 'import websockets; print("python websockets", websockets.__version__)'
(cd "$here/ws-peers" && node -e "console.log('node', process.version, 'ws', require('ws/package.json').version)")
