#!/usr/bin/env python3
"""Opens N connections that each ask a server for a large download and never read it, then
samples the server's open descriptors and memory once a second: with a write-stall
timeout the server cuts them off and its descriptors go back to the baseline.

Usage: probe-write-stall.py HOST:PORT PATH --pid SERVER_PID [--clients 200] [--seconds 15]

Loopback only; bounded: it ends after --seconds.
"""

import argparse
import os
import socket
import sys
import time


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("path")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)
    if not host.startswith("127.") and host != "localhost":
        sys.exit("refusing a target outside loopback")
    base = fds(args.pid)
    print(f"server fds before: {base}, RSS {rss_mib(args.pid):.1f} MiB")
    clients = []
    for _ in range(args.clients):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        s.sendall(f"GET {args.path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        clients.append(s)
    start = time.monotonic()
    for second in range(args.seconds + 1):
        time.sleep(max(0.0, start + second - time.monotonic()))
        print(
            f"t={second:3}s server fds {fds(args.pid):5} "
            f"(+{fds(args.pid) - base}), RSS {rss_mib(args.pid):.1f} MiB"
        )
    # Every socket the server cut off shows it as a reset (or EOF) once read.
    cut = 0
    for s in clients:
        s.setblocking(False)
        try:
            while s.recv(1 << 16):
                pass
        except BlockingIOError:
            continue
        except ConnectionResetError:
            cut += 1
            continue
        cut += 1
    print(f"{cut} of {len(clients)} clients were cut off by the server")
    for s in clients:
        s.close()


if __name__ == "__main__":
    main()
