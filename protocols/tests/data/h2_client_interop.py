"""httpx with HTTP/2 (the `h2` library) against the ringwork server: one connection,
a stream per request, a body both ways, a streamed download. Prints "ok"."""
import sys

import httpx

base = sys.argv[1]
# http:// with http1=False is HTTP/2 with prior knowledge (h2c); https:// negotiates h2.
client = httpx.Client(http1=False, http2=True, verify=False, timeout=20)

first = client.get(base + "/hello")
assert first.http_version == "HTTP/2", first.http_version
assert first.text == "Hello, World!", first.text

# Several requests share the connection, one stream each. (Sequential: httpx's sync
# client used from threads can send a new stream's HEADERS after a higher stream id's, which
# RFC 9113 §5.1.1 makes a connection error PROTOCOL_ERROR, and our server says so; parallel
# streams are exercised by h2load and curl.)
results = []
for i in range(16):
    r = client.get(f"{base}/hello?i={i}")
    results.append((r.status_code, r.http_version, r.text))
assert results == [(200, "HTTP/2", "Hello, World!")] * 16, results

body = bytes(range(251)) * 800
echo = client.post(base + "/echo", content=body)
assert echo.content == body, len(echo.content)
assert echo.headers["x-version"] == "Http2", echo.headers

with client.stream("GET", base + "/stream") as r:
    total = sum(len(piece) for piece in r.iter_bytes())
assert total == 4 * 1024 * 1024, total

print("ok")
