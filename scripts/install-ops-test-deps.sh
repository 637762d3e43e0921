#!/usr/bin/env bash
# Installs the peers of the operations tests (protocols/cli/tests/metrics.rs): Prometheus's
# own Python client, whose text parser (prometheus_client.parser) reads `/metrics` as a
# Prometheus server would, from PyPI for the python3 on PATH. Idempotent: installs only
# what is missing, then prints the version.
set -euo pipefail

command -v python3 >/dev/null || { echo "error: python3 not found (install-http-test-deps.sh installs it)" >&2; exit 1; }
if ! python3 -c 'import prometheus_client.parser' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'prometheus_client>=0.17,<1'
fi
python3 -c 'import importlib.metadata as m; print("prometheus_client", m.version("prometheus_client"))'
