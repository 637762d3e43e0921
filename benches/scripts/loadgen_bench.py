#!/usr/bin/env python3
"""Load generator against load generator (issue 16): is ringwork-load ever the limit?

    benches/scripts/loadgen_bench.py [--rounds 5] [--seconds 5] [--conns 100]
        [--ringwork target/release/ringwork] [--load NAME=PATH]... [--modes ...]

Starts the servers pinned to SERVER_CPU (0): nginx (1 worker, keepalive_requests very
high: benches/peers/nginx/hello.conf.template), `ringwork serve hello --cores 1` and
`ringwork serve echo --cores 1`. Then, for each round, each mode and each generator (the
generators' order rotates every round), runs the generator pinned to CLIENT_CPU (1) for
--seconds and records:

- requests/s as the generator reports it (ringwork-load's JSON `rps`; wrk's summary line;
  the C echo client's `rps=`);
- the generator's CPU per request: utime + stime of the generator process (and its
  children) from wait4's rusage, over the requests it completed. This is the steadier
  figure while other processes use the machine: a generator that is the limit of a
  closed-loop run reaches a rate of about 1 / (its CPU per request);
- how busy each side was: the generator's CPU time over its run's wall time, and the
  server's (utime + stime of the server process and its children, from /proc, over the same
  wall time). A server near 100% with a generator below it means the server, not the
  harness, set the rate.

Modes: `nginx` and `hello` (HTTP keep-alive, wrk -t1 against ringwork-load http),
`nginx16` and `hello16` (pipelined x16, wrk through benches/scripts/wrk/pipeline.lua),
`echo` (TCP echo of --size bytes, ringwork-load tcp against the C client
benches/loadgen/echo_client.c, compiled here with cc -O2). `--load-args new:--batch`
pipelines that ringwork-load in batches as pipeline.lua does; `--load-env NAME:VAR=VALUE`
sets its environment (RINGWORK_BACKEND=poll).

Prints one markdown table per mode: medians with min-max, CPU us/request, and each
ringwork-load's ratio to the reference (wrk, or the C client) by median requests/s and by
CPU per request, and "paired": the median over rounds of each round's ratio to the
reference's run in that round (steadier when the host drifts between rounds). Raw runs go to --csv (default: a temp file, path printed).

`--perf EVENTS` (comma-separated `perf stat` events, e.g.
`task-clock,raw_syscalls:sys_enter,net:net_dev_xmit`) runs every generator under `perf stat`
and prints each event's count per request as well (median over rounds; times such as
task-clock in µs). Counting tracepoints costs the traced process CPU, so take
CPU-per-request figures from runs without --perf.
"""

import argparse
import csv
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.dont_write_bytecode = True  # importing lib/ leaves no __pycache__ in the tree
from listening import wait_listening  # noqa: E402

# Run before every server and generator command (`nice -n N` with --nice).
PREFIX = []
# Environment added for each ringwork-load by name (--load-env).
ENVS = {}
# Arguments added for each ringwork-load by name in the pipelined modes (--load-args).
PIPE_ARGS = {}
# perf stat events counted for every generator (--perf); empty: none.
PERF_EVENTS = []
# The server process of each mode's base name (its CPU share is measured during each run).
SERVER_PIDS = {}
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu(pid):
    """CPU seconds (utime + stime) of process `pid` and its children so far (nginx: the master
    and its worker); 0 for a process that is gone."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, ... utime (14th field of the line), stime (15th).
        if int(entry) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def run_measured(cmd, cpu, timeout, env=None):
    """Runs cmd pinned to cpu; returns (stdout, stderr, user and system CPU seconds of it and
    its children, {perf event: count} when --perf is given)."""
    perf_out = None
    wrap = []
    if PERF_EVENTS:
        fd, perf_out = tempfile.mkstemp(prefix="loadgen-perf-")
        os.close(fd)
        wrap = ["perf", "stat", "-x", ",", "-o", perf_out, "-e", ",".join(PERF_EVENTS), "--"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(PREFIX + ["taskset", "-c", str(cpu)] + wrap + cmd, stdout=out,
                                stderr=err, env=dict(os.environ, **(env or {})))
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        text, errs = out.read().decode(), err.read().decode()
        if proc.returncode != 0:
            print(f"warning: {' '.join(cmd)} exited {proc.returncode}: {errs[-300:]}",
                  file=sys.stderr)
        counts = {}
        if perf_out:
            with open(perf_out) as f:
                for line in f:
                    fields = line.strip().split(",")
                    # CSV: value, unit, event, ... ("<not counted>" when it was not);
                    # times (task-clock, in msec) are kept in µs.
                    if len(fields) >= 3 and fields[2] in PERF_EVENTS:
                        try:
                            scale = 1000.0 if fields[1] == "msec" else 1.0
                            counts[fields[2]] = float(fields[0]) * scale
                        except ValueError:
                            pass
            os.unlink(perf_out)
        return text, errs, usage.ru_utime, usage.ru_stime, counts, wall


def wrk_requests(text):
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
    if not m:
        return None, None
    secs = float(m.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if bad:
        print(f"warning: wrk saw {bad.group(1)} non-2xx responses", file=sys.stderr)
    return int(m.group(1)), float(rps.group(1)) if rps else int(m.group(1)) / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--size", type=int, default=128, help="echo message size")
    ap.add_argument("--ringwork", default=os.path.join(REPO, "target/release/ringwork"))
    ap.add_argument("--load", action="append", default=[],
                    help="NAME=PATH of a ringwork-load binary (repeatable; default: "
                         "new=target/release/ringwork-load)")
    ap.add_argument("--load-env", action="append", default=[],
                    help="NAME:VAR=VALUE: environment of ringwork-load NAME (repeatable), e.g. "
                         "fixed:RINGWORK_URING_PATHS=fixed-files=1024 with --load fixed=PATH")
    ap.add_argument("--load-args", action="append", default=[],
                    help="NAME:ARGS: extra arguments of ringwork-load NAME in the pipelined "
                         "modes (e.g. batch:--batch, wrk's pipeline.lua batches)")
    ap.add_argument("--modes", default="nginx,hello,echo")
    ap.add_argument("--server-cpu", type=int, default=int(os.environ.get("SERVER_CPU", 0)))
    ap.add_argument("--client-cpu", type=int, default=int(os.environ.get("CLIENT_CPU", 1)))
    ap.add_argument("--csv")
    ap.add_argument("--perf", help="comma-separated perf stat events to count per request "
                    "(separate runs: counting costs the generator CPU)")
    ap.add_argument("--nice", type=int,
                    help="run servers and generators at this nice level (root: e.g. -20, so "
                         "that other processes on a shared machine take less of the two CPUs)")
    args = ap.parse_args()
    if args.nice is not None:
        PREFIX.extend(["nice", "-n", str(args.nice)])

    PERF_EVENTS[:] = args.perf.split(",") if args.perf else []
    ENVS.clear()
    for x in args.load_env:
        name, var = x.split(":", 1)
        key, value = var.split("=", 1)
        ENVS.setdefault(name, {})[key] = value
    PIPE_ARGS.clear()
    for x in args.load_args:
        name, extra = x.split(":", 1)
        PIPE_ARGS[name] = extra.split()
    loads = [tuple(x.split("=", 1)) for x in args.load] or [
        ("new", os.path.join(REPO, "target/release/ringwork-load"))]
    modes = args.modes.split(",")
    work = tempfile.mkdtemp(prefix="loadgen-bench-")
    os.chmod(work, 0o755)  # nginx's worker runs as nobody
    servers = []
    ports = {}
    scpu = str(args.server_cpu)
    if any(m.startswith("nginx") for m in modes):
        port = free_port()
        with open(os.path.join(REPO, "benches/peers/nginx/hello.conf.template")) as f:
            conf = f.read().replace("@PORT@", str(port)).replace("@RUNDIR@", work)
        with open(os.path.join(work, "nginx.conf"), "w") as f:
            f.write(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        servers.append(subprocess.Popen(PREFIX + ["taskset", "-c", scpu, nginx, "-p", work, "-c",
                                         os.path.join(work, "nginx.conf")],
                                        stderr=subprocess.DEVNULL))
        ports["nginx"] = port
        SERVER_PIDS["nginx"] = servers[-1].pid
    if any(m.startswith("hello") for m in modes):
        port = free_port()
        servers.append(subprocess.Popen(PREFIX + ["taskset", "-c", scpu, args.ringwork, "serve", "hello",
                                         "--cores", "1", "--listen",
                                         f"tcp:{port}:interface=127.0.0.1"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports["hello"] = port
        SERVER_PIDS["hello"] = servers[-1].pid
    echo_client = None
    if "echo" in modes:
        port = free_port()
        servers.append(subprocess.Popen(PREFIX + ["taskset", "-c", scpu, args.ringwork, "serve", "echo",
                                         "--cores", "1", "--listen",
                                         f"tcp:{port}:interface=127.0.0.1"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports["echo"] = port
        SERVER_PIDS["echo"] = servers[-1].pid
        echo_client = os.path.join(work, "echo_client")
        subprocess.run(["cc", "-O2", "-o", echo_client,
                        os.path.join(REPO, "benches/loadgen/echo_client.c")], check=True)
    try:
        for mode in modes:
            wait_listening(ports[mode.rstrip("16")])
        rows = bench(args, loads, modes, ports, echo_client, work)
    finally:
        for s in servers:
            s.terminate()
        for s in servers:
            try:
                s.wait(timeout=10)
            except subprocess.TimeoutExpired:
                s.kill()
        shutil.rmtree(work, ignore_errors=True)
    path = args.csv or tempfile.mkstemp(prefix="loadgen-bench-", suffix=".csv")[1]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "mode", "generator", "requests", "rps", "cpu_s", "cpu_us_per_req",
                    "user_pct", "busy_pct", "server_busy_pct"]
                   + [f"{e}_per_req" for e in PERF_EVENTS])
        w.writerows(rows)
    report(rows, modes, loads)
    print(f"\nraw runs: {path}")


def bench(args, loads, modes, ports, echo_client, work):
    rows = []
    secs = args.seconds
    timeout = secs + 30
    for rnd in range(1, args.rounds + 1):
        for mode in modes:
            base = mode.rstrip("16")
            depth = 16 if mode.endswith("16") else 1
            port = ports[base]
            if base == "echo":
                ref = ("c-epoll", [echo_client, "127.0.0.1", str(port), str(args.conns),
                                   str(args.size), f"{secs:g}"])
            else:
                cmd = ["wrk", "-t1", f"-c{args.conns}", f"-d{secs:g}s"]
                if depth > 1:
                    cmd += ["-s", os.path.join(HERE, "wrk/pipeline.lua")]
                cmd += [f"http://127.0.0.1:{port}/"]
                if depth > 1:
                    cmd += ["--", str(depth)]
                ref = ("wrk", cmd)
            gens = [ref] + [(name, None) for name, _ in loads]
            shift = (rnd - 1) % len(gens)
            for name, cmd in gens[shift:] + gens[:shift]:
                if cmd is None:
                    path = dict(loads)[name]
                    js = os.path.join(work, "load.json")
                    if base == "echo":
                        cmd = [path, "tcp", f"127.0.0.1:{port}", "--size", str(args.size)]
                    else:
                        cmd = [path, "http", f"http://127.0.0.1:{port}/", "--pipeline",
                               str(depth)]
                        if depth > 1:
                            cmd += PIPE_ARGS.get(name, [])
                    cmd += ["-c", str(args.conns), "-d", f"{secs:g}s", "--cores", "1",
                            "--quiet", "--json", js]
                server_before = tree_cpu(SERVER_PIDS[base])
                text, _, utime, stime, counts, wall = run_measured(cmd, args.client_cpu,
                                                                   timeout, ENVS.get(name))
                server_busy = (tree_cpu(SERVER_PIDS[base]) - server_before) / wall * 100
                cpu = utime + stime
                busy = cpu / wall * 100
                if name == "wrk":
                    n, rps = wrk_requests(text)
                elif name == "c-epoll":
                    m = re.search(r"requests=(\d+) seconds=([\d.]+) rps=([\d.]+)", text)
                    n, rps = (int(m.group(1)), float(m.group(3))) if m else (None, None)
                else:
                    try:
                        with open(js) as f:
                            rep = json.load(f)
                        n, rps = rep["requests"], rep["rps"]
                        errors = sum(rep["errors"].values()) + rep["unsuccessful"]
                        if errors:
                            print(f"warning: {name} {mode}: {errors} errors/unsuccessful",
                                  file=sys.stderr)
                        os.unlink(js)
                    except (OSError, ValueError, KeyError):
                        n, rps = None, None
                if not n:
                    print(f"warning: round {rnd} {mode} {name}: no result", file=sys.stderr)
                    continue
                per = cpu / n * 1e6
                per_event = [counts[e] / n if e in counts else None for e in PERF_EVENTS]
                rows.append([rnd, mode, name, n, round(rps, 1), round(cpu, 3), round(per, 3),
                             round(utime / cpu * 100 if cpu else 0, 1), round(busy, 1),
                             round(server_busy, 1)] + per_event)
                shown = "".join(f"  {e} {v:.4g}/req" for e, v in zip(PERF_EVENTS, per_event)
                                if v is not None)
                print(f"round {rnd} {mode:8} {name:10} {rps:10.0f} req/s  {per:6.2f} us CPU/req"
                      f" ({utime / cpu * 100 if cpu else 0:.0f}% user), busy {busy:.0f}%,"
                      f" server {server_busy:.0f}%{shown}", file=sys.stderr)
    return rows


def report(rows, modes, loads):
    for mode in modes:
        mine = [r for r in rows if r[1] == mode]
        if not mine:
            continue
        ref = "c-epoll" if mode == "echo" else "wrk"
        print(f"\n{mode}:\n")
        print("| generator | req/s median (min–max) | CPU µs/req median (min–max) | "
              "busy: generator, server (%) | "
              f"req/s ÷ {ref} | {ref} CPU ÷ its CPU | paired: req/s, CPU |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        med = {}
        for name in [ref] + [n for n, _ in loads]:
            rs = [r[4] for r in mine if r[2] == name]
            cs = [r[6] for r in mine if r[2] == name]
            if not rs:
                continue
            med[name] = (statistics.median(rs), statistics.median(cs))
            ratio = ""
            if ref in med and name != ref:
                ratio = (f"{med[name][0] / med[ref][0]:.2f} | "
                         f"{med[ref][1] / med[name][1]:.2f} | ")
                # Each round's ratio to the reference run of the same round, then the median:
                # the host's drift over minutes moves both runs of a round alike.
                by_round = {r[0]: r for r in mine if r[2] == ref}
                pairs = [(r[4] / by_round[r[0]][4], by_round[r[0]][6] / r[6])
                         for r in mine if r[2] == name and r[0] in by_round]
                ratio += (f"{statistics.median(p[0] for p in pairs):.2f}, "
                          f"{statistics.median(p[1] for p in pairs):.2f}") if pairs else "—"
            else:
                ratio = "— | — | —"
            busy = (f"{statistics.median(r[8] for r in mine if r[2] == name):.0f}, "
                    f"{statistics.median(r[9] for r in mine if r[2] == name):.0f}")
            print(f"| {name} | {med[name][0]:,.0f} ({min(rs):,.0f}–{max(rs):,.0f}) | "
                  f"{med[name][1]:.2f} ({min(cs):.2f}–{max(cs):.2f}) | {busy} | {ratio} |")
        if PERF_EVENTS:
            print(f"\n{mode}, perf stat counts per request (median over rounds):\n")
            print("| generator | " + " | ".join(PERF_EVENTS) + " |")
            print("|---|" + "---:|" * len(PERF_EVENTS))
            for name in [ref] + [n for n, _ in loads]:
                runs = [r for r in mine if r[2] == name]
                if not runs:
                    continue
                cells = []
                for i in range(len(PERF_EVENTS)):
                    vals = [r[10 + i] for r in runs if r[10 + i] is not None]
                    cells.append(f"{statistics.median(vals):.4g}" if vals else "—")
                print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
