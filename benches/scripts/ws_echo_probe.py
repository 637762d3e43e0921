#!/usr/bin/env python3
"""WebSocket echo, per-run counters: why one run is fast and the next slow.

Runs `ringwork-load ws` (pinned to CLIENT_CPU) against each server of SERVERS (pinned to
SERVER_CPU) for ROUNDS short rounds, and records per run, besides messages/s: CPU per
message of the server and of the load generator (`perf stat` cpu-clock, context switches,
migrations of each), the server's loop turns, kernel enters and completions per message
(`--metrics`; ringwork only), and the per-CPU deltas of /proc/softirqs (NET_RX, TIMER,
SCHED...), /proc/interrupts (RES, CAL, LOC...) and the cpuidle states (idle entries and
idle time). Prints one line per run and a CSV (OUT_DIR/probe.csv) to classify runs by mode.

Settings (environment): SERVERS="ringwork tokio-tungstenite" (NAME@TAG: that server with the
extra arguments in SERVER_ARGS_TAG and the extra VAR=VALUE pairs in SERVER_ENV_TAG, the load
generator with the extra arguments in LOAD_ARGS_TAG: an interleaved A/B of server or generator
settings with one binary) ROUNDS=10 DURATION=3 WARMUP=1
CONNECTIONS=50 IN_FLIGHT=1 SIZE=128 SERVER_CPU=0 CLIENT_CPU=1 PORT_BASE=19730
RINGWORK_BIN LOAD_BIN TOKIO_WS_BIN (as ws_echo_bench.sh), OUT_DIR, SERVER_ENV (extra
VAR=VALUE pairs for ringwork), LOAD_ENV (the same for the load generator).
PROFILE=1: also `perf record -e cpu-clock -g` the server and the load generator over the
measured period, and print where each one's CPU time per message goes by code path
(benches/scripts/lib/perf_paths.py); the recordings stay in OUT_DIR
(VARIANT.ROUND.{server,load}.perf.data). Sampling costs each a few %.
"""

import csv
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
env = os.environ.get
SERVERS = env("SERVERS", "ringwork tokio-tungstenite").split()
ROUNDS = int(env("ROUNDS", "10"))
DURATION = int(env("DURATION", "3"))
CONNECTIONS = env("CONNECTIONS", "50")
IN_FLIGHT = env("IN_FLIGHT", "1")
SIZE = env("SIZE", "128")
SERVER_CPU = env("SERVER_CPU", "0")
CLIENT_CPU = env("CLIENT_CPU", "1")
PORT_BASE = int(env("PORT_BASE", "19730"))
WARMUP = float(env("WARMUP", "1"))
RINGWORK_BIN = env("RINGWORK_BIN", f"{ROOT}/target/release/ringwork")
LOAD_BIN = env("LOAD_BIN", f"{ROOT}/target/release/ringwork-load")
TOKIO_WS_BIN = env("TOKIO_WS_BIN", f"{ROOT}/benches/peers/bin/tokio-ws-echo")
OUT_DIR = env("OUT_DIR") or tempfile.mkdtemp(prefix="ws-probe.")
PROFILE = env("PROFILE", "") == "1"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.dont_write_bytecode = True  # importing lib/perf_paths.py leaves no __pycache__ in the tree
os.makedirs(OUT_DIR, exist_ok=True)


def pairs(text):
    return dict(kv.split("=", 1) for kv in (text or "").split())


def softirqs():
    out = {}
    with open("/proc/softirqs") as f:
        cpus = f.readline().split()
        for line in f:
            name, *vals = line.split()
            for cpu, v in zip(cpus, vals):
                out[f"sirq_{name.rstrip(':')}_{cpu.lower()}"] = int(v)
    return out


def interrupts():
    out = {}
    with open("/proc/interrupts") as f:
        cpus = f.readline().split()
        for line in f:
            name, *vals = line.split()
            name = name.rstrip(":")
            if name not in ("LOC", "RES", "CAL", "TLB", "IWI"):
                continue
            for cpu, v in zip(cpus, vals):
                out[f"irq_{name}_{cpu.lower()}"] = int(v)
    return out


def cpuidle():
    out = {}
    for cpu in (SERVER_CPU, CLIENT_CPU):
        for state in glob.glob(f"/sys/devices/system/cpu/cpu{cpu}/cpuidle/state*"):
            n = os.path.basename(state)[5:]
            for field in ("usage", "time"):
                with open(f"{state}/{field}") as f:
                    out[f"idle{n}_{field}_cpu{cpu}"] = int(f.read())
    return out


def metrics(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read()
    except OSError:
        return {}
    out = {}
    for line in text.decode().splitlines():
        m = re.match(r"ringwork_(loop_turns|io_enters|io_completions|io_submissions)_total\{[^}]*\} (\d+)", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


def tcp_counters():
    """Tcp (/proc/net/snmp) and TcpExt (/proc/net/netstat) counters of this namespace."""
    out = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        with open(path) as f:
            lines = f.read().splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            kind, *names = head.split()
            if kind not in ("Tcp:", "TcpExt:"):
                continue
            for n, v in zip(names, vals.split()[1:]):
                if n in ("OutSegs", "InSegs", "DelayedACKs", "DelayedACKLocked", "TCPHPAcks",
                         "TCPPureAcks", "TCPHPHits", "TCPAutoCorking", "TCPBacklogCoalesce",
                         "TCPRcvCoalesce", "TCPWantZeroWindowAdv", "TCPDelivered",
                         "TCPOrigDataSent", "TCPACKSkippedSeq", "PruneCalled"):
                    out[f"tcp_{n}"] = int(v)
    return out


def snapshot():
    s = tcp_counters()
    s.update(softirqs())
    s.update(interrupts())
    s.update(cpuidle())
    return s


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def perf_parse(path):
    out = {}
    try:
        for line in open(path):
            f = line.strip().split(",")
            if len(f) >= 3 and f[0] and f[0][0].isdigit():
                out[f[2].split(":")[0]] = float(f[0])
    except OSError:
        pass
    return out


EVENTS = "context-switches,cpu-migrations,cpu-clock"


def start_server(name, port, mport, tag):
    log = open(f"{OUT_DIR}/{name}.{port}.log", "w")
    extra = env(f"SERVER_ARGS_{tag}", "").split() if tag else []
    tag_env = pairs(env(f"SERVER_ENV_{tag}")) if tag else {}
    if name == "ringwork":
        e = dict(os.environ, RINGWORK_URING_PATHS="off", **pairs(env("SERVER_ENV")))
        e.update(tag_env)
        cmd = [RINGWORK_BIN, "serve", "ws-echo", "--cores", "1",
               "--listen", f"tcp:{port}:interface=127.0.0.1",
               "--metrics", f"tcp:{mport}:interface=127.0.0.1", *extra]
    elif name == "tokio-tungstenite":
        e = dict(os.environ, **tag_env)
        cmd = [TOKIO_WS_BIN, "--port", str(port), "--cores", "1", *extra]
    else:
        sys.exit(f"unknown server {name}")
    p = subprocess.Popen(["taskset", "-c", SERVER_CPU, *cmd], stdout=log, stderr=log, env=e)
    for _ in range(100):
        if listening(port):
            return p
        time.sleep(0.1)
    sys.exit(f"{name} did not listen on {port}")


rows = []
port = PORT_BASE
for rnd in range(1, ROUNDS + 1):
    for variant in SERVERS:
        # SERVER@TAG: SERVER_ARGS_<TAG>, SERVER_ENV_<TAG> and LOAD_ARGS_<TAG> apply.
        server, _, tag = variant.partition("@")
        extra = env(f"LOAD_ARGS_{tag}", "").split() if tag else []
        port += 2
        p = start_server(server, port, port + 1, tag)
        sperf = f"{OUT_DIR}/{variant}.{rnd}.server.perf"
        lperf = f"{OUT_DIR}/{variant}.{rnd}.load.perf"
        out_json = f"{OUT_DIR}/{variant}.{rnd}.json"
        le = dict(os.environ, RINGWORK_URING_PATHS="off", **pairs(env("LOAD_ENV")))
        load = subprocess.Popen(["taskset", "-c", CLIENT_CPU, LOAD_BIN, "ws",
                                 f"ws://127.0.0.1:{port}/", "--cores", "1", "-c", CONNECTIONS,
                                 "--in-flight", IN_FLIGHT, "-s", SIZE, "-d", f"{DURATION}s",
                                 "--warmup", f"{WARMUP}s", "--json", out_json, *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=le)
        # Counters cover the measured period only: from the end of the warm-up to the exit.
        time.sleep(WARMUP)
        m0 = metrics(port + 1) if server == "ringwork" else {}
        s0 = snapshot()
        sp = subprocess.Popen(["perf", "stat", "-x,", "-e", EVENTS, "-p", str(p.pid), "-o", sperf])
        lp = subprocess.Popen(["perf", "stat", "-x,", "-e", EVENTS, "-p", str(load.pid), "-o", lperf])
        records = {who: f"{OUT_DIR}/{variant}.{rnd}.{who}.perf.data" for who in ("server", "load")}
        recorders = [subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-p",
                                       str(pid), "-o", records[who]],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for who, pid in (("server", p.pid), ("load", load.pid))] if PROFILE else []
        load.wait()
        s1 = snapshot()
        m1 = metrics(port + 1) if server == "ringwork" else {}
        sp.send_signal(signal.SIGINT)
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
            recorder.wait()
        sp.wait()
        lp.wait()
        p.terminate()
        p.wait()
        try:
            r = json.load(open(out_json))
        except (OSError, ValueError):
            print(f"round {rnd} {variant}: no result")
            continue
        msgs = r["requests"]
        row = {"round": rnd, "server": variant, "rps": round(r["rps"]),
               "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"]}
        sperf_d, lperf_d = perf_parse(sperf), perf_parse(lperf)
        # cpu-clock is in milliseconds (msec) with -x.
        row["srv_us_msg"] = round(sperf_d.get("cpu-clock", 0) * 1e3 / msgs, 3)
        row["load_us_msg"] = round(lperf_d.get("cpu-clock", 0) * 1e3 / msgs, 3)
        row["srv_cs_per_kmsg"] = round(sperf_d.get("context-switches", 0) * 1e3 / msgs, 3)
        row["load_cs_per_kmsg"] = round(lperf_d.get("context-switches", 0) * 1e3 / msgs, 3)
        row["srv_migr"] = sperf_d.get("cpu-migrations", 0)
        row["load_migr"] = lperf_d.get("cpu-migrations", 0)
        for k in ("loop_turns", "io_enters", "io_completions", "io_submissions"):
            if k in m1 and k in m0:
                row[f"{k}_per_msg"] = round((m1[k] - m0[k]) / msgs, 4)
        for k in s1:
            row[k + "_per_kmsg"] = round((s1[k] - s0.get(k, 0)) * 1e3 / msgs, 3)
        for who, key in (("server", "srv_us_msg"), ("load", "load_us_msg")) if PROFILE else ():
            import perf_paths
            paths = perf_paths.breakdown(records[who])
            total = sum(paths.values()) or 1
            for name, n in paths.items():
                row[f"{who}_path_{name}_us_msg"] = round(row[key] * n / total, 3)
            print(f"round {rnd} {variant:18} {who} µs/message by path: " + " ".join(
                f"{name}={row[key] * n / total:.2f}" for name, n in
                sorted(paths.items(), key=lambda kv: -kv[1])), flush=True)
        rows.append(row)
        keys = ["rps", "srv_us_msg", "load_us_msg", "srv_cs_per_kmsg", "load_cs_per_kmsg",
                "io_enters_per_msg", "io_completions_per_msg",
                f"sirq_NET_RX_cpu{SERVER_CPU}_per_kmsg", f"sirq_NET_RX_cpu{CLIENT_CPU}_per_kmsg",
                f"irq_RES_cpu{SERVER_CPU}_per_kmsg", f"irq_RES_cpu{CLIENT_CPU}_per_kmsg",
                f"idle1_usage_cpu{SERVER_CPU}_per_kmsg", f"idle1_usage_cpu{CLIENT_CPU}_per_kmsg",
                "tcp_OutSegs_per_kmsg", "tcp_DelayedACKs_per_kmsg", "tcp_TCPPureAcks_per_kmsg"]
        print(f"round {rnd} {variant:18} " + " ".join(
            f"{k.replace('_per_kmsg', '/k').replace('_per_msg', '/m')}={row.get(k, '-')}" for k in keys),
            flush=True)

fields = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("round", "server", "rps"), k))
with open(f"{OUT_DIR}/probe.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
print(f"csv: {OUT_DIR}/probe.csv")
