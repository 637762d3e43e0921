#!/usr/bin/env python3
"""RSS of `ringwork serve hello` before any connection and with N idle ones (issue 16).

    benches/scripts/idle_rss.py BINARY [N] [-- EXTRA SERVER ARGS...]
    SERVICE=web benches/scripts/idle_rss.py BINARY 10000 -- --root DIR
    AFTER_REQUEST=1 benches/scripts/idle_rss.py BINARY 10000   # keep-alive idle
    TLS=1 benches/scripts/idle_rss.py BINARY 2000              # TLS (self-signed), handshake done

Starts BINARY serve hello (or $SERVICE) on one core, reads VmRSS once it answers a request
on a separate connection (closed again), opens N idle TCP connections (nothing sent; with
AFTER_REQUEST=1 each first sends one keep-alive `GET /` and reads its answer), waits until
the server holds them (its RSS stops moving for 1 s), reads VmRSS again and prints both and the KiB per
connection, with the anonymous / file-backed split (RssAnon, RssFile of /proc/PID/status) at
both points. With SMAPS=1 it also prints the mappings whose resident size grew most (from
/proc/PID/smaps: the heap, the large tables' own mappings). Not CPU-sensitive: a shared
machine gives the same figures as a quiet one.
The `idle-rss` workload of the comparison runner measures the same way for every peer.
"""
import os
import resource
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server_args import parse  # noqa: E402

USAGE = "idle_rss.py BINARY [N] [-- EXTRA SERVER ARGS...]"


def status_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


def split(pid):
    """RssAnon / RssFile / RssShmem in KiB."""
    return {k: status_kib(pid, k) for k in ("RssAnon", "RssFile", "RssShmem")}


def mappings(pid):
    """Resident KiB per mapping (start address and name) from /proc/PID/smaps."""
    out, key = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not line.startswith(("Rss", "Size")) and ":" not in head[0]:
                key = (head[0].split("-")[0], head[5] if len(head) > 5 else "[anon]")
            elif head[0] == "Rss:" and key is not None:
                out[key] = int(head[1])
    return out


def connect(port):
    """A connection to the server; with TLS=1 a TLS one whose handshake is done."""
    sock = socket.create_connection(("127.0.0.1", port))
    if os.environ.get("TLS") != "1":
        return sock
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock)


def main():
    binary, n, extra = parse(sys.argv[1:], USAGE, 10000)
    port = int(os.environ.get("PORT", "18090"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 1000)), hard))
    scheme = "tls" if os.environ.get("TLS") == "1" else "tcp"
    server = subprocess.Popen(
        [binary, "serve", os.environ.get("SERVICE", "hello"), "--listen", f"{scheme}:{port}:interface=127.0.0.1",
         "--cores", "1", *extra],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while True:
            try:
                with connect(port) as s:
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
        split_before = split(server.pid)
        maps_before = mappings(server.pid) if os.environ.get("SMAPS") == "1" else {}
        conns = [connect(port) for _ in range(n)]
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
        split_after = split(server.pid)
        print(f"args: {' '.join(extra) or '(defaults)'}")
        print(f"RSS before: {before / 1024:.1f} MiB")
        print(f"RSS with {n} idle connections: {after / 1024:.1f} MiB")
        print(f"KiB per connection: {(after - before) / n:.2f}")
        for name, at in (("before", split_before), ("with connections", split_after)):
            print(f"  {name}: " + ", ".join(f"{k} {v} KiB" for k, v in at.items()))
        if os.environ.get("SMAPS") == "1":
            maps_after = mappings(server.pid)
            grown = sorted(
                ((kib - maps_before.get(key, 0), key) for key, kib in maps_after.items()),
                reverse=True,
            )
            for kib, (start, name) in grown[:8]:
                if kib > 0:
                    print(f"  +{kib} KiB ({kib * 1024 / n:.1f} B/conn) at {start} {name}")
        for c in conns:
            c.close()
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
