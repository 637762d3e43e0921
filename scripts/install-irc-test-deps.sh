#!/usr/bin/env bash
# Installs the real IRC peers of the tests, from PyPI for the python3 on PATH: Twisted (its
# own IRC client, twisted.words.protocols.irc.IRCClient) and the `irc` package (jaraco's
# irc.client), both driven by protocols/cli/tests/irc_interop.rs; and miniircd (a small
# Python IRC server) for the client library's tests in protocols/tests/irc_client.rs.
# Idempotent: installs only what is missing, then prints the versions.
set -euo pipefail

python3 -c 'import twisted.words.protocols.irc' >/dev/null 2>&1 \
    || python3 -m pip install --quiet --disable-pip-version-check 'twisted>=22'
python3 -c 'import irc.client' >/dev/null 2>&1 \
    || python3 -m pip install --quiet --disable-pip-version-check 'irc>=20'
command -v miniircd >/dev/null 2>&1 \
    || python3 -m pip install --quiet --disable-pip-version-check 'miniircd>=2'
python3 -c 'import twisted; print("twisted", twisted.__version__)'
python3 -c 'import importlib.metadata as m; print("irc", m.version("irc"))'
python3 -c 'import importlib.metadata as m; print("miniircd", m.version("miniircd"))'
