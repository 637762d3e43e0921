"""httpx with HTTP/2 (the `h2` library) against the ringwork server: one connection,
requests in parallel streams, a body both ways, a streamed download. Prints "ok"."""
import sys
import threading

import httpx

base = sys.argv[1]
# http:// with http1=False is HTTP/2 with prior knowledge (h2c); https:// negotiates h2.
client = httpx.Client(http1=False, http2=True, verify=False, timeout=20)

first = client.get(base + "/hello")
assert first.http_version == "HTTP/2", first.http_version
assert first.text == "Hello, World!", first.text

# Several requests at once share the connection as parallel streams.
results = []
def get(i):
    r = client.get(f"{base}/hello?i={i}")
    results.append((r.status_code, r.http_version, r.text))
threads = [threading.Thread(target=get, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert results == [(200, "HTTP/2", "Hello, World!")] * 16, results

body = bytes(range(251)) * 800
echo = client.post(base + "/echo", content=body)
assert echo.content == body, len(echo.content)
assert echo.headers["x-version"] == "Http2", echo.headers

with client.stream("GET", base + "/stream") as r:
    total = sum(len(piece) for piece in r.iter_bytes())
assert total == 4 * 1024 * 1024, total

print("ok")
