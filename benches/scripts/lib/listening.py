"""Waiting for a freshly started server: shared by the Python bench scripts."""

import socket
import time


def wait_listening(port, timeout=15.0):
    """Returns once 127.0.0.1:`port` accepts a connection; RuntimeError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")
