#!/usr/bin/env python3
"""An RFC 8441 client for ringwork's interop tests: WebSocket over an HTTP/2 stream, driven
by Python's `h2` library (hyper-h2), which sends `:protocol` only once the server has sent
SETTINGS_ENABLE_CONNECT_PROTOCOL = 1.

  ws_h2_peer.py echo URL [--sizes 0,1,...] [--get-status N]
                                             URL: http://HOST:PORT/path (h2c, prior
                                             knowledge) or https://... (TLS, ALPN h2,
                                             certificate not checked); the GET on
                                             another stream expects N (default 200)
  ws_h2_peer.py settings URL                 prints "connect-protocol N" (the setting's
                                             value, 0 when absent) and exits
  ws_h2_peer.py idle URL                     one ping and its pong, then quiet: prints
                                             "ok idle stream ended after S s" once the
                                             server ends or resets the stream
  ws_h2_peer.py chat URL                     two connections, two WebSocket streams on
                                             each: every stream's message reaches all four

echo: checks the setting, opens an extended CONNECT (`:protocol websocket`), expects 200,
then sends a text and a binary message of each size (masked frames, RFC 6455 §5.3) and
checks every echo byte for byte, runs an ordinary GET on another stream of the same
connection while the WebSocket is open, closes with 1000 and expects the server's close
frame and the end of the stream. Our own WebSocket framing (h2 has none); flow control is
h2's: sends wait for the windows, received bytes are acknowledged as they are consumed.
Prints one "ok ..." line and exits 0, or says what went wrong and exits 1.
"""
import os
import socket
import ssl
import struct
import sys
import time
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.settings

DEFAULT_SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]
LIMIT = 60.0


def fail(what):
    print(f"FAIL: {what}", flush=True)
    sys.exit(1)


class Client:
    def __init__(self, url):
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.path = parts.path or "/"
        sock = socket.create_connection((self.host, self.port), timeout=LIMIT)
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname=self.host)
            if sock.selected_alpn_protocol() != "h2":
                fail(f"ALPN chose {sock.selected_alpn_protocol()!r}")
        self.sock = sock
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.data = {}        # stream id -> bytearray received
        self.ended = set()    # streams the server ended
        self.resets = {}      # stream id -> error code
        self.headers = {}     # stream id -> dict of response fields
        self.settings_seen = False

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self):
        """Reads once and handles what came."""
        chunk = self.sock.recv(65536)
        if not chunk:
            fail("the server closed the connection")
        for event in self.conn.receive_data(chunk):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.settings_seen = True
            elif isinstance(event, h2.events.ResponseReceived):
                self.headers[event.stream_id] = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
                # Consumed at once: the window reopens (h2 sends WINDOW_UPDATE).
                self.conn.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended.add(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.resets[event.stream_id] = event.error_code
            elif isinstance(event, h2.events.ConnectionTerminated):
                fail(f"GOAWAY {event.error_code}")
        self.flush()

    def wait(self, what, done):
        deadline = time.monotonic() + LIMIT
        while not done():
            if time.monotonic() > deadline:
                fail(f"timed out waiting for {what}")
            self.pump()

    def send(self, stream, payload):
        """Sends within the windows, reading (and so seeing WINDOW_UPDATEs) while shut."""
        view = memoryview(payload)
        while view:
            window = min(self.conn.local_flow_control_window(stream),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pump()
                continue
            self.conn.send_data(stream, bytes(view[:window]))
            self.flush()
            view = view[window:]


def frame(opcode, payload):
    """A masked client frame (RFC 6455 §5.2, §5.3)."""
    head = bytearray([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head.append(0x80 | 126)
        head += struct.pack("!H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack("!Q", n)
    key = os.urandom(4)
    head += key
    masked = bytearray(payload)
    for i in range(len(masked)):
        masked[i] ^= key[i & 3]
    return bytes(head) + bytes(masked)


def take_frame(buf):
    """A whole unmasked server frame from the front of buf: (fin, opcode, payload) or None."""
    if len(buf) < 2:
        return None
    fin, opcode = buf[0] & 0x80, buf[0] & 0x0F
    if buf[1] & 0x80:
        fail("a masked frame from the server (RFC 6455 §5.1)")
    n, at = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < at + n:
        return None
    payload = bytes(buf[at:at + n])
    del buf[:at + n]
    return fin, opcode, payload


def settings(url):
    client = Client(url)
    client.wait("the server's SETTINGS", lambda: client.settings_seen)
    value = client.conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL, 0)
    print(f"connect-protocol {value}", flush=True)


def open_websocket(client):
    """An extended CONNECT for WebSocket on a new stream of client's connection; its id."""
    conn = client.conn
    client.wait("the server's SETTINGS", lambda: client.settings_seen)
    if conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL, 0) != 1:
        fail("SETTINGS_ENABLE_CONNECT_PROTOCOL not 1")
    ws = conn.get_next_available_stream_id()
    scheme = "https" if client.tls else "http"
    conn.send_headers(ws, [
        (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", scheme),
        (":path", client.path), (":authority", f"{client.host}:{client.port}"),
        ("sec-websocket-version", "13"),
    ])
    client.flush()
    client.wait("the 200", lambda: ws in client.headers or ws in client.resets)
    status = client.headers.get(ws, {}).get(":status")
    if status != "200":
        fail(f"extended CONNECT answered {status}, reset {client.resets.get(ws)}")
    client.data.setdefault(ws, bytearray())
    return ws


def chat(url):
    clients = [Client(url), Client(url)]
    streams = [(client, open_websocket(client)) for client in clients for _ in range(2)]
    sent = set()
    for i, (client, ws) in enumerate(streams):
        message = f"from {i}".encode()
        sent.add(message)
        client.send(ws, frame(1, message))
    for i, (client, ws) in enumerate(streams):
        got = set()

        def all_four(client=client, ws=ws, got=got):
            while (taken := take_frame(client.data[ws])) is not None:
                got.add(taken[2])
            return got == sent

        client.wait(f"every message on stream {i}", all_four)
    print(f"ok chat {len(streams)} streams on {len(clients)} connections", flush=True)


def echo(url, sizes, get_status="200"):
    client = Client(url)
    conn = client.conn
    scheme = "https" if client.tls else "http"
    ws = open_websocket(client)
    received = client.data[ws]

    def next_frame():
        got = []
        client.wait("a frame", lambda: got.append(take_frame(received)) or got[-1] is not None)
        return got[-1]

    messages = 0
    for size in sizes:
        text = ("é€a" * (size // 6 + 1)).encode()[:size].decode("utf-8", "ignore").encode()
        data = os.urandom(min(size, 4096)) * (size // 4096 + 1)
        for opcode, payload in ((1, text), (2, data[:size])):
            client.send(ws, frame(opcode, payload))
            fin, got_opcode, got = next_frame()
            if not fin or got_opcode != opcode or got != payload:
                fail(f"echo of {len(payload)} bytes (opcode {opcode}): got {len(got)} bytes, "
                     f"opcode {got_opcode}, fin {bool(fin)}")
            messages += 1
        if size == sizes[len(sizes) // 2]:
            # Another stream of the same connection while the WebSocket is open.
            get = conn.get_next_available_stream_id()
            conn.send_headers(get, [(":method", "GET"), (":scheme", scheme), (":path", "/"),
                                    (":authority", f"{client.host}:{client.port}")],
                              end_stream=True)
            client.flush()
            client.wait("the GET's answer", lambda: get in client.ended)
            if client.headers[get].get(":status") != get_status:
                fail(f"GET on stream {get}: {client.headers[get]}")
    client.send(ws, frame(8, struct.pack("!H", 1000)))
    fin, opcode, payload = next_frame()
    if opcode != 8 or payload[:2] != struct.pack("!H", 1000):
        fail(f"close answered with opcode {opcode}, payload {payload!r}")
    client.wait("the end of the stream", lambda: ws in client.ended or ws in client.resets)
    code = client.resets.get(ws, 0)
    if code != 0:
        fail(f"the WebSocket stream was reset with {code}")
    print(f"ok {messages} messages echoed over h2 ({'tls' if client.tls else 'h2c'}), "
          f"closed 1000", flush=True)


def idle(url):
    client = Client(url)
    ws = open_websocket(client)
    client.send(ws, frame(9, b"hi"))

    def pong():
        taken = take_frame(client.data[ws])
        return taken is not None and taken[1] == 10 and taken[2] == b"hi"

    client.wait("the pong", pong)
    quiet = time.monotonic()
    client.wait("the end of the quiet stream", lambda: ws in client.ended or ws in client.resets)
    print(f"ok idle stream ended after {time.monotonic() - quiet:.2f} s", flush=True)


def main():
    if len(sys.argv) < 3:
        fail(__doc__)
    mode, url = sys.argv[1], sys.argv[2]
    sizes = DEFAULT_SIZES
    if "--sizes" in sys.argv:
        sizes = [int(s) for s in sys.argv[sys.argv.index("--sizes") + 1].split(",")]
    get_status = "200"
    if "--get-status" in sys.argv:
        get_status = sys.argv[sys.argv.index("--get-status") + 1]
    if mode == "echo":
        echo(url, sizes, get_status)
    elif mode == "settings":
        settings(url)
    elif mode == "chat":
        chat(url)
    elif mode == "idle":
        idle(url)
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
