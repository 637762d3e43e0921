"""Python's http.client against a ringwork HTTP server (run by tests/http_interop.rs).

Usage: python3 http_client_interop.py HOST PORT keep-alive|chunked|pipelining
The server answers POST /json with the same JSON document and anything else with
"Hello, World!". Prints "ok" and exits 0 on success; any failure raises (exit 1).
"""

import http.client
import json
import socket
import sys

TIMEOUT = 20


def keep_alive(host, port):
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    first = None
    for i in range(20):
        doc = {"i": i, "text": "x" * i}
        conn.request("POST", "/json", body=json.dumps(doc),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        assert json.loads(resp.read()) == doc
        conn.request("GET", "/hello")
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        assert resp.read() == b"Hello, World!"
        assert not resp.will_close
        if first is None:
            first = conn.sock
        # http.client reconnects silently when the server closes: the socket must stay.
        assert conn.sock is first, "the connection was not kept alive"
    conn.close()


def chunked(host, port):
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    doc = {"list": list(range(5000)), "nested": {"a": [True, None, 1.5]}}
    text = json.dumps(doc).encode()
    pieces = [text[i:i + 777] for i in range(0, len(text), 777)]
    conn.request("POST", "/json", body=iter(pieces), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked",
                          "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    assert json.loads(resp.read()) == doc
    conn.close()


class _KeepOpen:
    """One buffered reader shared by successive responses (each HTTPResponse would
    otherwise make its own and lose what it read ahead), never closed by them."""

    def __init__(self, reader):
        self._reader = reader

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def close(self):
        pass


class _Sock:
    def __init__(self, reader):
        self._reader = _KeepOpen(reader)

    def makefile(self, *args, **kwargs):
        return self._reader


def pipelining(host, port):
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    requests = b""
    for n in range(10):
        body = json.dumps({"n": n}).encode()
        requests += (b"POST /json HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
                     % (host.encode(), len(body))) + body
    sock.sendall(requests)
    reader = sock.makefile("rb")
    for n in range(10):
        resp = http.client.HTTPResponse(_Sock(reader))
        resp.begin()
        assert resp.status == 200, resp.status
        assert json.loads(resp.read()) == {"n": n}, "response %d out of order" % n
    sock.close()


def main():
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    {"keep-alive": keep_alive, "chunked": chunked, "pipelining": pipelining}[mode](host, port)
    print("ok")


if __name__ == "__main__":
    main()
