#!/usr/bin/env python3
"""RSS of `ringwork serve hello` before any connection and with N idle ones (issue 16).

    benches/scripts/idle_rss.py BINARY [N] [-- EXTRA SERVER ARGS...]
    SERVICE=web benches/scripts/idle_rss.py BINARY 10000 -- --root DIR
    AFTER_REQUEST=1 benches/scripts/idle_rss.py BINARY 10000   # keep-alive idle

Starts BINARY serve hello (or $SERVICE) on one core, reads VmRSS once it answers a request
on a separate connection (closed again), opens N idle TCP connections (nothing sent; with
AFTER_REQUEST=1 each first sends one keep-alive `GET /` and reads its answer), waits until
the server holds them (its RSS stops moving for 1 s), reads VmRSS again and prints both and the KiB per
connection. Not CPU-sensitive: a shared machine gives the same figures as a quiet one.
The `idle-rss` workload of the comparison runner measures the same way for every peer.
"""
import os
import resource
import socket
import subprocess
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        at = args.index("--")
        args, extra = args[:at], args[at + 1:]
    binary = args[0]
    n = int(args[1]) if len(args) > 1 else 10000
    port = int(os.environ.get("PORT", "18090"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 1000)), hard))
    server = subprocess.Popen(
        [binary, "serve", os.environ.get("SERVICE", "hello"), "--listen", f"tcp:{port}:interface=127.0.0.1",
         "--cores", "1", *extra],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(4096).startswith(b"HTTP/1.1 "):
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("server did not answer")
            time.sleep(0.05)
        time.sleep(0.5)
        before = rss_kib(server.pid)
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        if os.environ.get("AFTER_REQUEST") == "1":
            for c in conns:
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            for c in conns:
                if not c.recv(65536).startswith(b"HTTP/1.1 "):
                    raise RuntimeError("no answer on a keep-alive connection")
        last, steady_since = -1, time.time()
        while time.time() - steady_since < 1.0:
            now = rss_kib(server.pid)
            if now != last:
                last, steady_since = now, time.time()
            time.sleep(0.1)
        after = rss_kib(server.pid)
        print(f"args: {' '.join(extra) or '(defaults)'}")
        print(f"RSS before: {before / 1024:.1f} MiB")
        print(f"RSS with {n} idle connections: {after / 1024:.1f} MiB")
        print(f"KiB per connection: {(after - before) / n:.2f}")
        for c in conns:
            c.close()
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
