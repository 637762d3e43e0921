#!/usr/bin/env python3
"""Fires HTTP/1.1 requests at a reverse proxy from many concurrent connections and counts
the answers that are not 200, by kind of request.

Usage: probe-proxy-502.py HOST:PORT [--requests N] [--concurrency C] [--seed S]

Kinds (chosen at random per request, mixed on keep-alive connections):
  post-cl        POST with a Content-Length body (1 B .. 64 KiB)
  post-chunked   POST with a chunked body
  post-pipelined POST, then a GET in the same write: both answers are read
  post-garbage   POST, then bytes that are no request (the connection is closed after)
  post-halfclose POST, then shutdown(SHUT_WR): the answer must still come
  get            a plain GET

Only the first answer of each request counts (the garbage after a POST may get a 400).
Loopback only: the target must be an address on this machine. Bounded: stops after N
requests or 300 s.
"""

import argparse
import asyncio
import collections
import random
import socket
import sys
import time

KINDS = ["post-cl", "post-chunked", "post-pipelined", "post-garbage", "post-halfclose", "get"]


class Closed(Exception):
    """The connection ended before a whole answer."""


async def read_response(reader):
    """Reads one response; returns (status, headers dict)."""
    line = await reader.readline()
    if not line:
        raise Closed("eof before status line")
    parts = line.split(b" ", 2)
    if len(parts) < 2:
        raise Closed(f"bad status line {line!r}")
    status = int(parts[1])
    headers = {}
    while True:
        h = await reader.readline()
        if not h:
            raise Closed("eof in head")
        if h in (b"\r\n", b"\n"):
            break
        name, _, value = h.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise Closed("eof in chunk size")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:
                    t = await reader.readline()
                    if t in (b"\r\n", b"\n", b""):
                        break
                break
            await reader.readexactly(size + 2)
    elif b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    return status, headers


def build(kind, rng, host):
    size = rng.choice([1, 10, 100, 1000, 4096, 16384, 65536])
    body = bytes(rng.getrandbits(8) for _ in range(min(size, 64))) * (size // 64 + 1)
    body = body[:size]
    head = f"POST /probe/{kind} HTTP/1.1\r\nHost: {host}\r\n"
    if kind == "get":
        return f"GET /probe/get HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), 1
    if kind == "post-chunked":
        chunks = b""
        for i in range(0, len(body), 3000):
            part = body[i : i + 3000]
            chunks += f"{len(part):x}\r\n".encode() + part + b"\r\n"
        chunks += b"0\r\n\r\n"
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks, 1
    request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    if kind == "post-pipelined":
        request += f"GET /probe/after HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        return request, 2
    if kind == "post-garbage":
        request += b"\x00garbage that is no request\r\n\r\n"
    return request, 1


async def worker(args, rng, counts, failures, budget, deadline):
    host, port = args.target.rsplit(":", 1)
    reader = writer = None
    while budget[0] > 0 and time.monotonic() < deadline:
        budget[0] -= 1
        kind = rng.choice(KINDS)
        request, answers = build(kind, rng, host)
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(request)
            await writer.drain()
            if kind == "post-halfclose":
                writer.transport.write_eof()
            status, headers = await asyncio.wait_for(read_response(reader), 30)
            for _ in range(answers - 1):
                await asyncio.wait_for(read_response(reader), 30)
            counts[(kind, status)] += 1
            if status != 200:
                failures.append((kind, status, len(request)))
            done = (
                kind in ("post-garbage", "post-halfclose")
                or headers.get(b"connection", b"").lower() == b"close"
            )
        except (Closed, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            counts[(kind, "error")] += 1
            failures.append((kind, f"error: {type(e).__name__} {e}", len(request)))
            done = True
        if done and writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            reader = writer = None
    if writer is not None:
        writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not args.target.startswith(("127.", "localhost:", "[::1]:")):
        sys.exit("refusing a target outside loopback")
    counts = collections.Counter()
    failures = []
    budget = [args.requests]
    deadline = time.monotonic() + 300
    start = time.monotonic()
    await asyncio.gather(
        *(
            worker(args, random.Random(args.seed * 1000 + i), counts, failures, budget, deadline)
            for i in range(args.concurrency)
        )
    )
    elapsed = time.monotonic() - start
    total = sum(counts.values())
    bad = sum(n for (kind, status), n in counts.items() if status != 200)
    print(f"{total} requests in {elapsed:.1f}s, {bad} not 200")
    for (kind, status), n in sorted(counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        print(f"  {kind:15} {status!s:>6} {n}")
    for failure in failures[:20]:
        print("  failure:", failure)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
