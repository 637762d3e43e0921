#!/usr/bin/env python3
"""RSS of `ringwork serve hello --cores 1` at start, after one request, per mapping (issue 16).

    benches/scripts/start_rss.py BINARY [RUNS] [-- EXTRA SERVER ARGS...]   # PORT (18091): first port
    SERVICE=echo benches/scripts/start_rss.py BINARY 10
    EVICT=1 benches/scripts/start_rss.py BINARY 10   # drop the binary's page cache first

Starts the server RUNS times (default 5), sends one `GET /` on a connection of its own
(closed again; with SERVICE=echo a line, echoed), reads /proc/PID/status and /proc/PID/smaps
and prints, per run, VmRSS = RssAnon + RssFile and the resident KiB of each file's
mappings by permission (the binary's text r-xp, its read-only data r--p, libc, ld.so),
then the median of each column and the range of the totals. The file-backed part depends on how the binary's pages
entered the page cache (the kernel maps whole page-cache folios around a fault): with
EVICT=1 every run starts from an evicted binary (posix_fadvise DONTNEED on it), so each
run reads it back the same way; without it the page cache is whatever the previous runs
left. Not CPU-sensitive.
"""
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from server_args import parse  # noqa: E402

USAGE = "start_rss.py BINARY [RUNS] [-- EXTRA SERVER ARGS...]"


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0])
    return out


def by_file(pid, binary):
    """Resident KiB per (file, permissions): the binary as `bin`, libraries by base name."""
    out, key = {}, None
    real = os.path.realpath(binary)
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and ":" not in head[0]:
                name = head[5] if len(head) > 5 else "[anon]"
                if name == real:
                    name = "bin"
                elif name.startswith("/"):
                    name = os.path.basename(name).split(".so")[0]
                key = f"{name} {head[1]}"
            elif head[0] == "Rss:" and key is not None:
                out[key] = out.get(key, 0) + int(head[1])
    return out


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def one_request(port, service):
    deadline = time.time() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port)) as s:
                if service == "echo":
                    s.sendall(b"ping\n")
                    if s.recv(64) == b"ping\n":
                        return
                else:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(4096).startswith(b"HTTP/1.1 "):
                        return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError("server did not answer")
        time.sleep(0.05)


def run(binary, extra, port, service):
    if os.environ.get("EVICT") == "1":
        evict(binary)
    server = subprocess.Popen(
        [binary, "serve", service, "--listen", f"tcp:{port}:interface=127.0.0.1", "--cores", "1", *extra],
        stderr=None if os.environ.get("VERBOSE") == "1" else subprocess.DEVNULL,
    )
    try:
        one_request(port, service)
        # The answer is written before the connection's close is handled: let the core settle.
        time.sleep(0.3)
        return status(server.pid), by_file(server.pid, binary)
    finally:
        server.kill()
        server.wait()


def main():
    binary, runs, extra = parse(sys.argv[1:], USAGE, 5)
    port = int(os.environ.get("PORT", "18091"))
    service = os.environ.get("SERVICE", "hello")
    cols = ["VmRSS", "RssAnon", "RssFile", "bin r-xp", "bin r--p", "bin rw-p", "libc r-xp", "libc r--p",
            "ld-linux-x86-64 r-xp", "libgcc_s r-xp"]
    rows = []
    for i in range(runs):
        # A port of its own per run: the previous run's port may still be held briefly.
        st, files = run(binary, extra, port + i, service)
        row = {**st, **files}
        rows.append(row)
        print(" ".join(f"{c.split()[0][:8]}{'/' + c.split()[1] if ' ' in c else ''}={row.get(c, 0)}" for c in cols))
    print("median KiB: " + ", ".join(f"{c} {statistics.median(r.get(c, 0) for r in rows):.0f}" for c in cols))
    print("min–max KiB: " + ", ".join(f"{c} {min(r.get(c, 0) for r in rows)}–{max(r.get(c, 0) for r in rows)}" for c in cols[:3]))


if __name__ == "__main__":
    main()
