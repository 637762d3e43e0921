#!/usr/bin/env python3
"""Where does the tail of a fixed-rate HTTP run come from? (issue 16)

    benches/scripts/rate_tail_probe.py [--rounds 3] [--seconds 3] [--conns 100]
        [--rates 20000,44000] [--servers ringwork,uring-bare,libuv]
        [--spin] [--fifo] [--load target/release/ringwork-load] [--csv FILE]
        [--variant NAME=ARGS]... [--perf]

Starts each server pinned to CPU 0 (`ringwork serve hello --cores 1`, the peers from
benches/peers/bin) and runs `ringwork-load http --rate R -c CONNS` pinned to CPU 1, in
interleaved rounds (the servers' order rotates every round). Per run it prints:

- corrected latency (from the intended send time) p50 / p99 / p99.9 / max, and the
  uncorrected one (from the actual send): their gap is the generator's send lateness;
- the generator's send lag (ringwork-load's `send_lag_us`: how late it sent requests whose
  connection was free when due), p50 / p99 / p99.9;
- the server's and the generator's CPU per request (utime + stime from /proc and wait4);
- the machine over the run (/proc/stat deltas): steal, and the share of the two CPUs
  that was busy with anything else than the pair (other processes: compiles);
- the idle-state entries (haltpoll) per request on each CPU: every one is a vCPU halt
  and a hypervisor exit to wake it.

`--spin` runs a SCHED_IDLE busy loop on each of the two CPUs during the runs: the vCPUs
then never halt (the guest's equivalent of `idle=poll`, which this kernel cannot be booted
with here), while any normal task preempts the spinner at once. `--fifo` runs the server
and the generator under SCHED_FIFO (chrt -f 10): they preempt the other processes
(compiles) as soon as they are woken, instead of waiting for the scheduler's slice; but
a task that needs more than 95% of a CPU is then throttled by the kernel's RT limit for
the rest of each second (`sched_rt_runtime_us`), which shows as a 50 ms tail. `--nice`
runs each of them in a session of its own at nice -20 instead: with autogroups
(`/proc/sys/kernel/sched_autogroup_enabled`), a process's own nice weighs only against
its session, so the session's (`/proc/PID/autogroup`) is what counts against compiles.

`--stall CPU:MS:EVERY_MS` runs a SCHED_FIFO task (priority above `--fifo`'s) on CPU that
spins for MS milliseconds every EVERY_MS during the runs: a controlled pause of the server's
(CPU 0) or the generator's (CPU 1) CPU, to see how a short pause spreads into the tail.

`--variant NAME=ARGS` (repeat) runs the generator once per variant in every round, with
ARGS (space-separated) added to its command line, e.g. `--variant w0=` `--variant
'w100=--send-window 100us'`: variants are interleaved, so they see the same machine.
`--perf` runs the generator under `perf stat` and adds its context switches and system
calls per request (one `raw_syscalls:sys_enter` per syscall, io_uring_enter included).
The table also gives the generator's kernel enters per response and completions per
enter (ringwork-load's `generator` counts: how well it batched).
"""

import argparse
import csv
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.dont_write_bytecode = True  # importing lib/ leaves no __pycache__ in the tree
from listening import wait_listening  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
SERVER_CPU, LOAD_CPU = "0", "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

SERVERS = {
    "ringwork": [os.environ.get("RINGWORK", "target/release/ringwork"), "serve", "hello", "--listen",
                 "tcp:{port}:interface=127.0.0.1", "--cores", "1"],
    "uring-bare": ["benches/peers/bin/uring-bare-http", "--port", "{port}", "--cores", "1"],
    "libuv": ["benches/peers/bin/libuv-http", "--port", "{port}", "--cores", "1"],
    "monoio": ["benches/peers/bin/monoio-http", "--port", "{port}", "--cores", "1"],
    "hyper": ["benches/peers/bin/tokio-http", "--port", "{port}", "--cores", "1"],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_stat():
    """Per CPU: (busy, idle+iowait, steal) jiffies."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                v = [int(x) for x in parts[1:]]
                idle = v[3] + v[4]
                steal = v[7]
                busy = sum(v[:8]) - idle - steal
                out[parts[0]] = (busy, idle, steal)
    return out


def idle_entries():
    out = {}
    for cpu in (SERVER_CPU, LOAD_CPU):
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpuidle"
        n = 0
        try:
            for state in os.listdir(base):
                with open(f"{base}/{state}/usage") as f:
                    n += int(f.read())
        except OSError:
            pass
        out[cpu] = n
    return out


def prefix(args, cpu):
    p = ["taskset", "-c", cpu]
    if args.fifo:
        p = ["chrt", "-f", "10"] + p

    return p


def boost():
    """preexec_fn of --nice: a session (an autogroup of its own) at nice -20."""
    os.setsid()
    with open("/proc/self/autogroup", "w") as f:
        f.write("-20")


def perf_counts(path):
    """perf stat -x, output: {event: count}."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[0].replace(".", "").isdigit():
                out[parts[2]] = float(parts[0])
    return out


def run_one(args, name, rate, tmp, extra=()):
    port = free_port()
    cmd = [a.replace("{port}", str(port)) for a in SERVERS[name]]
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    pre = boost if args.nice else None
    server = subprocess.Popen(prefix(args, SERVER_CPU) + cmd, cwd=REPO,
                              stdout=log, stderr=log, preexec_fn=pre)
    try:
        wait_listening(port)
        out = os.path.join(tmp, "load.json")
        load = prefix(args, LOAD_CPU) + [
            args.load, "http", f"http://127.0.0.1:{port}/", "-c", str(args.conns),
            "--rate", str(rate), "-d", f"{args.seconds}s", "--warmup", f"{args.warmup}s",
            "--cpus", LOAD_CPU, "--json", out, "--quiet"] + args.load_arg + list(extra)
        perf_out = os.path.join(tmp, "perf.txt")
        if args.perf:
            load = ["perf", "stat", "-x,", "-o", perf_out, "-e",
                    "task-clock,context-switches,raw_syscalls:sys_enter", "--"] + load
        s_cpu0 = proc_cpu(server.pid)
        st0, id0, t0 = cpu_stat(), idle_entries(), time.monotonic()
        child = subprocess.Popen(load, cwd=REPO, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, preexec_fn=pre)
        _, status, rusage = os.wait4(child.pid, 0)
        wall = time.monotonic() - t0
        st1, id1 = cpu_stat(), idle_entries()
        s_cpu = proc_cpu(server.pid) - s_cpu0
        if status != 0:
            raise RuntimeError(f"ringwork-load failed: {child.stderr.read().decode()[-500:]}")
        with open(out) as f:
            rep = json.load(f)
    finally:
        server.terminate()
        server.wait()
        log.close()
    # ringwork-load's requests count the measured window; the CPU figures cover the whole
    # run (warm-up included), so divide by every response of the run: the rate times wall.
    total = rate * wall
    lat, unc = rep["latency_us"], rep.get("uncorrected_latency_us", {})
    jiff = {k: [b - a for a, b in zip(st0[k], st1[k])] for k in st1}
    total_j = sum(sum(v) for v in jiff.values())
    steal_pct = 100.0 * sum(v[2] for v in jiff.values()) / max(total_j, 1)
    pair = s_cpu + rusage.ru_utime + rusage.ru_stime
    busy_s = sum(v[0] for v in jiff.values()) / CLK_TCK
    other_pct = 100.0 * max(busy_s - pair, 0.0) / (2 * wall)
    perf = perf_counts(perf_out) if args.perf else {}
    gen = rep.get("generator") or {}
    responses = max(gen.get("responses", 0), 1)
    return {
        "enters_resp": gen["enters"] / responses if gen else None,
        "compl_enter": gen["completions"] / max(gen["enters"], 1) if gen else None,
        "server": name, "rate": rate, "rps": rep["rps"],
        "csw_load": perf.get("context-switches", 0) / total if args.perf else None,
        "sys_load": perf.get("raw_syscalls:sys_enter", 0) / total if args.perf else None,
        "p50": lat["p50"], "p99": lat["p99"], "p999": lat["p999"], "max": lat["max"],
        "u_p50": unc.get("p50"), "u_p99": unc.get("p99"), "u_p999": unc.get("p999"),
        "u_max": unc.get("max"),
        "lag_p50": rep.get("send_lag_us", {}).get("p50"),
        "lag_p99": rep.get("send_lag_us", {}).get("p99"),
        "lag_p999": rep.get("send_lag_us", {}).get("p999"),
        "server_us": 1e6 * s_cpu / total,
        "load_us": 1e6 * (rusage.ru_utime + rusage.ru_stime) / total,
        "steal_pct": steal_pct, "other_pct": other_pct,
        "halts_srv": (id1[SERVER_CPU] - id0[SERVER_CPU]) / total,
        "halts_load": (id1[LOAD_CPU] - id0[LOAD_CPU]) / total,
    }


def fmt_us(v):
    if v is None:
        return "-"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--rates", default="44000")
    ap.add_argument("--servers", default="ringwork,uring-bare,libuv")
    ap.add_argument("--spin", action="store_true")
    ap.add_argument("--fifo", action="store_true")
    ap.add_argument("--nice", action="store_true")
    ap.add_argument("--load", default="target/release/ringwork-load")
    ap.add_argument("--load-arg", action="append", default=[],
                    help="extra ringwork-load argument (repeat): --load-arg=--busy-poll=200us")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=ARGS: a generator variant (repeat; interleaved per round)")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--stall", help="CPU:MS:EVERY_MS: a SCHED_FIFO spinner pausing that CPU")
    ap.add_argument("--csv")
    args = ap.parse_args()
    variants = [(v.split("=", 1)[0], v.split("=", 1)[1].split()) for v in args.variant] or [("", [])]
    servers = args.servers.split(",")
    rates = [float(r) for r in args.rates.split(",")]
    spinners = []
    if args.spin:
        for cpu in (SERVER_CPU, LOAD_CPU):
            spinners.append(subprocess.Popen(
                ["chrt", "-i", "0", "taskset", "-c", cpu, "sh", "-c", "while :; do :; done"]))
    if args.stall:
        cpu, ms, every = args.stall.split(":")
        loop = (f"import time\nwhile True:\n t = time.monotonic() + {float(ms) / 1000}\n"
                f" while time.monotonic() < t: pass\n time.sleep({(float(every) - float(ms)) / 1000})\n")
        spinners.append(subprocess.Popen(
            ["chrt", "-f", "20", "taskset", "-c", cpu, sys.executable, "-c", loop]))
    rows = []
    tmp = tempfile.mkdtemp(prefix="rate-tail-")
    try:
        for rnd in range(args.rounds):
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            for rate, (vname, extra) in itertools.product(rates, variants):
                for name in order:
                    r = run_one(args, name, rate, tmp, extra)
                    r["round"] = rnd + 1
                    r["variant"] = vname
                    rows.append(r)
                    perf = (f" | load csw/req {r['csw_load']:.2f} syscalls/req {r['sys_load']:.2f}"
                            if args.perf else "")
                    print(f"r{rnd + 1} {vname} {name:<10} {rate:>7.0f}/s  corrected p50 {fmt_us(r['p50'])}"
                          f" p99 {fmt_us(r['p99'])} p99.9 {fmt_us(r['p999'])} max {fmt_us(r['max'])}"
                          f" | uncorrected p99 {fmt_us(r['u_p99'])} p99.9 {fmt_us(r['u_p999'])}"
                          f" | send lag p50 {fmt_us(r['lag_p50'])} p99 {fmt_us(r['lag_p99'])}"
                          f" p99.9 {fmt_us(r['lag_p999'])}"
                          f" | CPU µs/req server {r['server_us']:.1f} load {r['load_us']:.1f}"
                          f" | steal {r['steal_pct']:.1f}% other {r['other_pct']:.0f}%"
                          f" | halts/req srv {r['halts_srv']:.2f} load {r['halts_load']:.2f}{perf}",
                          flush=True)
    finally:
        for s in spinners:
            s.kill()
            s.wait()
    print()
    print("| variant | server | rate | p50 | p99 | p99.9 | uncorrected p99 | uncorrected p99.9 |"
          " send lag p50 / p99 / p99.9 | server CPU µs/req | load CPU µs/req | halts/req (srv, load) |"
          " load csw/req | load syscalls/req | load enters/resp | completions/enter |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rate, (vname, _) in itertools.product(rates, variants):
        for name in servers:
            rs = [r for r in rows
                  if r["server"] == name and r["rate"] == rate and r["variant"] == vname]

            def med(k):
                vals = [r[k] for r in rs if r[k] is not None]
                return statistics.median(vals) if vals else None

            def span(k):
                vals = sorted(r[k] for r in rs if r[k] is not None)
                return f"{fmt_us(med(k))} ({fmt_us(vals[0])}–{fmt_us(vals[-1])})"

            def num(k):
                v = med(k)
                return "-" if v is None else f"{v:.2f}"

            print(f"| {vname} | {name} | {rate:.0f} | {fmt_us(med('p50'))} | {span('p99')}"
                  f" | {span('p999')}"
                  f" | {fmt_us(med('u_p99'))} | {fmt_us(med('u_p999'))}"
                  f" | {fmt_us(med('lag_p50'))} / {fmt_us(med('lag_p99'))} / {fmt_us(med('lag_p999'))}"
                  f" | {med('server_us'):.1f} | {med('load_us'):.1f}"
                  f" | {med('halts_srv'):.2f}, {med('halts_load'):.2f}"
                  f" | {num('csw_load')} | {num('sys_load')}"
                  f" | {num('enters_resp')} | {num('compl_enter')} |")
    path = args.csv or os.path.join(tmp, "runs.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    print(f"\nraw runs: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
