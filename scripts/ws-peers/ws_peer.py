#!/usr/bin/env python3
"""A real WebSocket peer for ringwork's interop tests: Python's `websockets` library.

  ws_peer.py client URL [--deflate] [--sizes 1,125,...]   echo check against a server
  ws_peer.py server [--deflate] [--tls CERT KEY]           echo server (wss:// with --tls);
                                                           prints "port N"
  ws_peer.py violations URL                                raw bad frames; checks close codes
  ws_peer.py chat URL N                                    N clients of a broadcast server; a
                                                           slow one that never reads is closed

The client sends text and binary messages of each size (whole, and fragmented), checks every
echo byte for byte, then closes with 1000; it prints one "ok ..." line and exits 0, or
prints what went wrong and exits 1.
"""
import asyncio
import base64
import os
import socket
import ssl
import struct
import sys

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

DEFAULT_SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]


def payloads(sizes):
    for size in sizes:
        text = ("é€a" * (size // 6 + 1)).encode()[:size]
        # Cut to a character boundary: a text message must stay valid UTF-8.
        text = text.decode("utf-8", "ignore")
        data = os.urandom(min(size, 4096)) * (size // 4096 + 1)
        yield text, data[:size]


async def client(url, deflate, sizes):
    compression = "deflate" if deflate else None
    async with connect(url, compression=compression, max_size=None, open_timeout=20,
                       ping_interval=None) as ws:
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions")
        if deflate and not negotiated:
            sys.exit(f"permessage-deflate was not negotiated")
        count = 0
        for text, data in payloads(sizes):
            for message in (text, data):
                await ws.send(message)
                echo = await asyncio.wait_for(ws.recv(), 60)
                if echo != message:
                    sys.exit(f"echo of {type(message).__name__} {len(message)} differs")
                count += 1
                # Fragmented: the library sends an iterable as one message in frames.
                if len(message) >= 2:
                    half = len(message) // 2
                    await ws.send([message[:half], message[half:]])
                    echo = await asyncio.wait_for(ws.recv(), 60)
                    if echo != message:
                        sys.exit(f"echo of fragmented {len(message)} differs")
                    count += 1
        pong = await ws.ping(b"ringwork")
        await asyncio.wait_for(pong, 20)
        await ws.close(1000, "done")
        if ws.close_code != 1000:
            sys.exit(f"close code {ws.close_code}")
        print(f"ok {count} messages extensions={negotiated!r}")


async def server(deflate, tls):
    compression = "deflate" if deflate else None
    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls[0], tls[1])

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, compression=compression, max_size=None,
                     ping_interval=None, ssl=context) as srv:
        port = srv.sockets[0].getsockname()[1]
        print(f"port {port}", flush=True)
        # Until stdin closes (the test ends).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def raw_handshake(host, port):
    sock = socket.create_connection((host, port), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit(f"handshake refused: {head[:40]!r}")
    return sock, head.split(b"\r\n\r\n", 1)[1]


def frame(opcode, payload, fin=True, rsv=0, mask=True):
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    head = bytes([b0])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_close(sock, rest):
    """Reads frames until a close frame; returns its code (None at EOF without one)."""
    buf = rest
    while True:
        while len(buf) >= 2:
            n = buf[1] & 0x7F
            at = 2
            if n == 126:
                n, at = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                n, at = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < at + n:
                break
            opcode, payload = buf[0] & 0x0F, buf[at:at + n]
            buf = buf[at + n:]
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk


VIOLATIONS = [
    # (name, frames, expected close code)
    ("unmasked client frame (RFC 6455 5.1)", [frame(1, b"hi", mask=False)], 1002),
    ("reserved opcode 3 (5.2)", [frame(3, b"")], 1002),
    ("RSV1 without an extension (5.2)", [frame(1, b"x", rsv=0x40)], 1002),
    ("fragmented ping (5.5)", [frame(9, b"", fin=False)], 1002),
    ("continuation without a message (5.4)", [frame(0, b"x")], 1002),
    ("invalid UTF-8 text (8.1)", [frame(1, b"\xff\xfe")], 1007),
    ("invalid UTF-8 split across fragments (8.1)",
     [frame(1, "€".encode()[:2], fin=False), frame(0, b"\x41")], 1007),
    ("close code 1005 on the wire (7.4.1)", [frame(8, struct.pack("!H", 1005))], 1002),
    ("close with a 1-byte payload (5.5.1)", [frame(8, b"\x03")], 1002),
    ("message over the limit (10.4)", [frame(2, b"\0" * (17 << 20))], 1009),
]


def violations(url):
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    failed = 0
    for name, frames, expected in VIOLATIONS:
        sock, rest = raw_handshake(host, int(port))
        try:
            for f in frames:
                sock.sendall(f)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            code = read_close(sock, rest)
        except (ConnectionResetError, socket.timeout) as error:
            code = f"error {error}"
        sock.close()
        verdict = "ok" if code == expected else "FAIL"
        failed += code != expected
        print(f"{verdict} {name}: close {code} (want {expected})")
    sys.exit(1 if failed else 0)


async def chat(url, n):
    """N clients each send one message and must each receive all N; then one client
    publishes 40 messages of 256 KiB while a raw subscriber never reads: every reading client
    gets all 40, and the server ends the slow one's connection."""
    clients = [await connect(url, max_size=None, ping_interval=None) for _ in range(n)]
    for i, ws in enumerate(clients):
        await ws.send(f"hello from {i}")
    want = sorted(f"hello from {i}" for i in range(n))
    for i, ws in enumerate(clients):
        got = sorted([await asyncio.wait_for(ws.recv(), 20) for _ in range(n)])
        if got != want:
            sys.exit(f"client {i} got {got}")
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    slow, _ = raw_handshake(host, int(port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await asyncio.sleep(0)  # the handshake is done; the subscriber is in
    big = [bytes([k]) * (256 * 1024) for k in range(40)]
    sender = clients[0]
    for message in big:
        await sender.send(message)
    for i, ws in enumerate(clients):
        for k, message in enumerate(big):
            got = await asyncio.wait_for(ws.recv(), 30)
            if got != message:
                sys.exit(f"client {i} message {k} differs")
    # The slow subscriber: its connection ends (a close frame 1013 somewhere in what it
    # finally reads, then EOF, or a reset once the close timed out).
    slow.settimeout(30)
    ended = None
    data = b""
    try:
        while True:
            chunk = slow.recv(1 << 20)
            if not chunk:
                ended = "eof"
                break
            data += chunk[-16:]
    except ConnectionResetError:
        ended = "reset"
    except socket.timeout:
        sys.exit("the slow subscriber was not cut off")
    for ws in clients:
        await ws.close()
    print(f"ok chat {n} clients, slow subscriber ended by {ended}")


def main():
    args = sys.argv[1:]
    deflate = "--deflate" in args
    sizes = DEFAULT_SIZES
    if "--sizes" in args:
        sizes = [int(s) for s in args[args.index("--sizes") + 1].split(",")]
    if args[0] == "client":
        asyncio.run(client(args[1], deflate, sizes))
    elif args[0] == "server":
        tls = None
        if "--tls" in args:
            at = args.index("--tls")
            tls = (args[at + 1], args[at + 2])
        asyncio.run(server(deflate, tls))
    elif args[0] == "chat":
        asyncio.run(chat(args[1], int(args[2])))
    elif args[0] == "violations":
        violations(args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
