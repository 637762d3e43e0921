#!/usr/bin/env bash
# Smoke test of every server in benches/peers/peers.toml that is built.
#
#   benches/peers/smoke.sh                      # all built servers
#   benches/peers/smoke.sh go nginx             # only these names
#   TARGET_DIR=/path/to/target benches/peers/smoke.sh   # where `target/...` paths live
#                                                       # (default $CARGO_TARGET_DIR, else target/)
#   PEERS_TOML=other.toml benches/peers/smoke.sh         # another manifest
#   SMOKE_CORES=2 benches/peers/smoke.sh                 # --cores 2 instead of 1
#
# For each server: start it with --cores 1 (SMOKE_CORES) on a free port, wait until the
# port accepts (polled, no fixed sleeps), then
#   echo: 100 KiB sent on one connection come back identical; 32 connections at once
#         each get their own 4 KiB back;
#   http: `curl -s` gets "Hello, World!"; 16 GETs in one write get exactly 16 responses
#         (200, body "Hello, World!"), and so do 1000 in one write (more than a 16 KiB read
#         buffer) and GET, POST with a 5-byte body, GET; HTTP/1.0 and `Connection: close` get their response
#         and then EOF; `wrk -t1 -c10 -d2s` (else ringwork-load) reports 0 errors;
# then SIGTERM it and check that its whole process tree is gone (SIGKILL + FAIL after
# 10 s). Prints PASS/FAIL/SKIP per server; exits 1 on any FAIL of a built server.
# Needs python3 >= 3.11 (tomllib) and curl.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
exec python3 - "$root" "${PEERS_TOML:-$here/peers.toml}" "$@" <<'PY'
import os, random, selectors, shutil, signal, socket, subprocess, sys, tempfile, time, tomllib

root, manifest, only = sys.argv[1], sys.argv[2], sys.argv[3:]
target_dir = os.environ.get("TARGET_DIR") or os.environ.get("CARGO_TARGET_DIR")
cores = os.environ.get("SMOKE_CORES", "1")
logdir = tempfile.mkdtemp(prefix="peers-smoke.")
HELLO = b"Hello, World!"


def resolve(path):
    if target_dir and path.startswith("target/"):
        return os.path.join(target_dir, path[len("target/"):])
    return os.path.join(root, path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def tree(pid):
    kids, out, todo = children_of(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_accepting(proc, port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} did not accept within {timeout} s")


def echo_roundtrip(port, payloads, timeout=10.0):
    """Sends payloads[i] on connection i (all at once) and checks each comes back."""
    sel = selectors.DefaultSelector()
    state = []
    for data in payloads:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.setblocking(False)
        st = {"sock": s, "out": memoryview(data), "want": data, "got": bytearray()}
        state.append(st)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
    deadline = time.monotonic() + timeout
    pending = len(state)
    try:
        while pending:
            if time.monotonic() > deadline:
                short = [len(st["got"]) for st in state if len(st["got"]) < len(st["want"])]
                raise RuntimeError(f"echo timed out; received {short} of {len(payloads[0])} bytes")
            for key, ev in sel.select(0.2):
                st = key.data
                s = st["sock"]
                if ev & selectors.EVENT_WRITE and st["out"]:
                    try:
                        n = s.send(st["out"])
                        st["out"] = st["out"][n:]
                    except BlockingIOError:
                        pass
                    if not st["out"]:
                        sel.modify(s, selectors.EVENT_READ, st)
                if ev & selectors.EVENT_READ:
                    try:
                        chunk = s.recv(65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise RuntimeError("server closed the echo connection early")
                    st["got"] += chunk
                    if len(st["got"]) >= len(st["want"]):
                        if st["got"] != st["want"]:
                            raise RuntimeError("echoed bytes differ from the bytes sent")
                        sel.unregister(s)
                        pending -= 1
    finally:
        for st in state:
            st["sock"].close()


def read_responses(sock, count, timeout=5.0, expect_eof=False):
    """Reads `count` HTTP responses (Content-Length framed); returns them, checks EOF after."""
    sock.settimeout(timeout)
    buf, out = b"", []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if len(buf) >= end + 4 + length:
                out.append((head.split("\r\n")[0], buf[end + 4:end + 4 + length]))
                buf = buf[end + 4 + length:]
                continue
        if time.monotonic() > deadline:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    if len(out) != count:
        raise RuntimeError(f"got {len(out)} complete responses, expected {count}")
    for status, body in out:
        if not status.startswith("HTTP/1.") or status.split()[1] != "200" or body != HELLO:
            raise RuntimeError(f"bad response: {status!r} body {body!r}")
    if expect_eof:
        try:
            rest = buf + sock.recv(65536)
        except socket.timeout:
            raise RuntimeError("connection stayed open after a non-keep-alive request")
        if rest:
            raise RuntimeError(f"unexpected bytes after the last response: {rest[:60]!r}")
    elif buf:
        raise RuntimeError(f"unexpected extra bytes: {buf[:60]!r}")
    return out


def http_checks(port, log):
    url = f"http://127.0.0.1:{port}/"
    body = subprocess.run(["curl", "-s", "--max-time", "5", url], capture_output=True).stdout
    if body != HELLO:
        raise RuntimeError(f"curl got {body[:80]!r}")
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req * 16)  # one write: a pipelined burst
        read_responses(s, 16)
        s.sendall(req)  # still alive after the burst
        read_responses(s, 1)
        # A burst larger than a 16 KiB read buffer (heads split across reads), and a
        # request with a Content-Length body between two GETs.
        s.sendall(req * 1000)
        read_responses(s, 1000)
        s.sendall(req + b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nabcde" + req)
        read_responses(s, 3)
    for name, r in [("HTTP/1.0", b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
                    ("Connection: close", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(r)
            try:
                read_responses(s, 1, expect_eof=True)
            except RuntimeError as e:
                raise RuntimeError(f"{name}: {e}")
    if shutil.which("wrk"):
        cmd = ["wrk", "-t1", "-c10", "-d2s", url]
    else:
        load = resolve("target/release/ringwork-load")
        if not os.path.exists(load):
            raise RuntimeError("neither wrk nor target/release/ringwork-load to load the server")
        cmd = [load, "http", "-c", "10", "-d", "2s", url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    log.write(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}\n")
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {r.stderr.strip()[:200]}")
    if cmd[0] == "wrk":
        if "Socket errors" in r.stdout or "Non-2xx" in r.stdout:
            raise RuntimeError("wrk reported errors: " + " | ".join(
                l.strip() for l in r.stdout.splitlines() if "errors" in l or "Non-2xx" in l))
        rate = next((l.split()[1] for l in r.stdout.splitlines() if l.startswith("Requests/sec")), "?")
        return f"wrk {rate} req/s"
    return "ringwork-load ok"


def stop(proc, port):
    pids = tree(proc.pid)
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    left = [p for p in pids if alive(p)]
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    proc.wait()
    # An io_uring server's port can stay bound briefly after exit: wait, so that the next
    # server cannot share it through SO_REUSEPORT.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            time.sleep(0.05)
        except OSError:
            break
    if left:
        raise RuntimeError(f"processes {left} still alive 10 s after SIGTERM (killed)")


with open(manifest, "rb") as f:
    servers = tomllib.load(f)["server"]
results = []
for srv in servers:
    label = f"{srv['name']}/{srv['workload']}"
    if only and srv["name"] not in only and label not in only:
        continue
    absent = [r for r in srv.get("requires", []) if not os.path.exists(resolve(r))]
    if absent:
        results.append((label, "SKIP", f"missing {', '.join(absent)}"))
        print(f"SKIP {label}: missing {', '.join(absent)}", flush=True)
        continue
    port = free_port()
    cmd = [a.replace("{port}", str(port)).replace("{cores}", cores) for a in srv["cmd"]]
    if "/" in cmd[0] and not os.path.isabs(cmd[0]):
        cmd[0] = resolve(cmd[0])
    logpath = os.path.join(logdir, label.replace("/", "-") + ".log")
    with open(logpath, "w") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        status, detail = "PASS", ""
        try:
            t0 = time.monotonic()
            wait_accepting(proc, port)
            detail = f"ready in {time.monotonic() - t0:.2f} s"
            if srv["workload"] == "echo":
                rnd = random.Random(7)
                echo_roundtrip(port, [rnd.randbytes(100 * 1024)])
                echo_roundtrip(port, [rnd.randbytes(4096) for _ in range(32)])
                detail += ", 100 KiB + 32x4 KiB echoed"
            else:
                detail += ", " + http_checks(port, log)
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode} during the checks")
        except Exception as e:  # noqa: BLE001 - every failure is reported, none hidden
            status, detail = "FAIL", str(e)
        finally:
            try:
                stop(proc, port)
            except RuntimeError as e:
                status, detail = "FAIL", f"{detail}; {e}" if status == "FAIL" else str(e)
    if status == "FAIL":
        detail += f" (log: {logpath})"
    results.append((label, status, detail))
    print(f"{status} {label}: {detail}", flush=True)

fails = [r for r in results if r[1] == "FAIL"]
passes = [r for r in results if r[1] == "PASS"]
skips = [r for r in results if r[1] == "SKIP"]
print(f"\nsmoke: {len(passes)} passed, {len(fails)} failed, {len(skips)} skipped (logs in {logdir})")
sys.exit(1 if fails else 0)
PY
