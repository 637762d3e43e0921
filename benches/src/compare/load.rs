//! Running the load generators (`ringwork-load`, `wrk`) against a started server, and what
//! one measured run yields ([`Run`]).
//!
//! Owns: the command lines, reading ringwork-load's `--json` report and wrk's text output
//! ([`parse_wrk`]), and sampling the server tree's CPU time over the measured window.
//! Contract: ringwork-load runs its own warm-up (`--warmup`, excluded); the server's CPU is
//! sampled at spawn + warm-up and at spawn + warm-up + duration (or the generator's exit if
//! earlier), so CPU per request = ticks in that window / requests of that window. wrk has no
//! warm-up option: with a non-zero warm-up a separate wrk run is discarded (the runner passes
//! zero: wrk follows ringwork-load against the same, warm, server process); the CPU is
//! sampled around the measured run; wrk takes whole seconds (durations are rounded up). A run that returns `Ok`
//! may still carry a `problem` (errors, non-2xx): the runner reports it as failed.
//! Does not: start or stop servers.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::compare::procfs;
use crate::compare::server::{log_tail, pinned};

/// What one measured run of one server yields.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Run {
    /// Responses (echo: messages) completed in the measured window.
    pub requests: u64,
    /// Requests per second over the window.
    pub rps: f64,
    /// Corrected latency percentiles (µs); wrk: per write, p99 only.
    pub p50_us: Option<f64>,
    /// 99th percentile, µs.
    pub p99_us: Option<f64>,
    /// 99.9th percentile, µs.
    pub p999_us: Option<f64>,
    /// Target rate of a fixed-rate run.
    pub target_rate: Option<f64>,
    /// Server CPU (whole process tree) per request, µs.
    pub cpu_us_per_req: Option<f64>,
    /// Server CPU time / wall time of the window, percent.
    pub server_busy_pct: Option<f64>,
    /// Fixed-rate runs: p99 of the latency from the *actual* send (what an uncorrected
    /// tool reports), µs. Next to the corrected p99 it shows how much of it was waiting
    /// before the send.
    pub uncorrected_p99_us: Option<f64>,
    /// Fixed-rate runs: p99.9 from the actual send, µs.
    pub uncorrected_p999_us: Option<f64>,
    /// Fixed-rate runs: ringwork-load's `send_lag_us` p99 — how late the generator itself
    /// sent requests whose connection was free when due (its own share of the tail), µs.
    pub send_lag_p99_us: Option<f64>,
    /// Fixed-rate runs: the send lag's p99.9, µs.
    pub send_lag_p999_us: Option<f64>,
    /// The generator's CPU (utime + stime) per request over the same window, µs.
    pub load_cpu_us_per_req: Option<f64>,
    /// The generator's CPU time / wall time of the window, percent (100 per fully used
    /// CPU; a busy-polling generator is always near 100).
    pub load_busy_pct: Option<f64>,
    /// Errors, by kind, non-zero only.
    pub errors: BTreeMap<String, u64>,
    /// Why this run counts as failed, if it does.
    pub problem: Option<String>,
}

/// The part of ringwork-load's JSON report the runner uses.
#[derive(Debug, Deserialize)]
struct Report {
    requests: u64,
    rps: f64,
    #[serde(default)]
    unsuccessful: u64,
    #[serde(default)]
    panics: u64,
    #[serde(default)]
    target_rate: Option<f64>,
    errors: BTreeMap<String, u64>,
    #[serde(default)]
    error_samples: BTreeMap<String, String>,
    latency_us: Latency,
    #[serde(default)]
    uncorrected_latency_us: Option<Latency>,
    #[serde(default)]
    send_lag_us: Option<Latency>,
}

#[derive(Debug, Deserialize)]
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
}

/// What the generators need to know about their environment.
#[derive(Clone, Debug)]
pub struct LoadEnv {
    /// The ringwork-load binary.
    pub ringwork_load: PathBuf,
    /// wrk, if found.
    pub wrk: Option<PathBuf>,
    /// benches/scripts/wrk/pipeline.lua.
    pub pipeline_lua: PathBuf,
    /// CPU list of the load generators (`taskset -c` and ringwork-load `--cpus`).
    pub cpus: String,
    /// Number of CPUs in `cpus` (wrk threads).
    pub threads: usize,
    /// Clock ticks per second.
    pub clk_tck: u64,
    /// Fixed-rate runs: ringwork-load's `--send-window` (`100us`, `0`).
    pub send_window: String,
    /// Fixed-rate runs: ringwork-load's `--busy-poll` (`200us`; `0`: the generator sleeps).
    pub busy_poll: String,
    /// Servers and generators run under SCHED_FIFO (`compare --fifo`, fixed-rate workloads):
    /// no other process can take their CPUs while they are runnable.
    pub fifo: bool,
}

/// Samples the server tree's CPU ticks.
fn ticks(server_pid: u32) -> u64 {
    procfs::cpu_ticks(&procfs::process_tree(server_pid))
}

/// CPU per request (µs) and busy share (percent) of `ticks` over `wall`.
fn cpu_shares(
    requests: u64,
    ticks: u64,
    wall: Duration,
    clk_tck: u64,
) -> (Option<f64>, Option<f64>) {
    let secs = ticks as f64 / clk_tck as f64;
    (
        (requests > 0).then(|| secs * 1e6 / requests as f64),
        (wall > Duration::ZERO).then(|| 100.0 * secs / wall.as_secs_f64()),
    )
}

fn fill_cpu(run: &mut Run, ticks: u64, wall: Duration, clk_tck: u64) {
    (run.cpu_us_per_req, run.server_busy_pct) = cpu_shares(run.requests, ticks, wall, clk_tck);
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Runs `ringwork-load <args> -d DURATION --warmup WARMUP --cpus CPUS --json FILE` pinned
/// to the load CPUs, sampling `server_pid`'s tree CPU over the measured window.
///
/// # Errors
/// When ringwork-load cannot be started, exits non-zero or writes no readable report.
pub fn ringwork_load(
    env: &LoadEnv,
    args: &[String],
    warmup: Duration,
    duration: Duration,
    server_pid: u32,
    json: &Path,
    log: &Path,
) -> Result<Run, String> {
    let mut cmd = vec![env.ringwork_load.display().to_string()];
    cmd.extend(args.iter().cloned());
    cmd.extend([
        "-d".into(),
        ms(duration),
        "--warmup".into(),
        ms(warmup),
        "--cpus".into(),
        env.cpus.clone(),
        "--json".into(),
        json.display().to_string(),
        "--quiet".into(),
    ]);
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let start = Instant::now();
    let mut child = pinned(&env.cpus, env.fifo, &cmd)
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", env.ringwork_load.display()))?;
    let exited = |child: &mut std::process::Child| matches!(child.try_wait(), Ok(Some(_)));
    let wait_until = |child: &mut std::process::Child, t: Instant| {
        while Instant::now() < t && !exited(child) {
            sleep(Duration::from_millis(5));
        }
    };
    // The generator's own CPU over the same window: `taskset` exec'ed into it, so the
    // child's pid is ringwork-load's (its threads are in its /proc stat).
    let load_pid = child.id();
    wait_until(&mut child, start + warmup);
    let (c0, l0, t0) = (ticks(server_pid), ticks(load_pid), Instant::now());
    wait_until(&mut child, start + warmup + duration);
    let (c1, l1, t1) = (ticks(server_pid), ticks(load_pid), Instant::now());
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!(
            "ringwork-load exited with {status}: {}",
            log_tail(log, 1)
        ));
    }
    let text = std::fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
    let mut run = run_of_report(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    fill_cpu(&mut run, c1.saturating_sub(c0), t1 - t0, env.clk_tck);
    // An exited generator's stat is gone (the window ended early): no figure then.
    if l1 >= l0 && l1 > 0 {
        (run.load_cpu_us_per_req, run.load_busy_pct) =
            cpu_shares(run.requests, l1 - l0, t1 - t0, env.clk_tck);
    }
    Ok(run)
}

/// The [`Run`] of a ringwork-load JSON report (without the CPU figures), with its
/// `problem` (errors, non-2xx, panics, no response).
fn run_of_report(text: &str) -> Result<Run, String> {
    let report: Report = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut run = Run {
        requests: report.requests,
        rps: report.rps,
        p50_us: Some(report.latency_us.p50),
        p99_us: Some(report.latency_us.p99),
        p999_us: Some(report.latency_us.p999),
        target_rate: report.target_rate,
        uncorrected_p99_us: report.uncorrected_latency_us.as_ref().map(|l| l.p99),
        uncorrected_p999_us: report.uncorrected_latency_us.as_ref().map(|l| l.p999),
        send_lag_p99_us: report.send_lag_us.as_ref().map(|l| l.p99),
        send_lag_p999_us: report.send_lag_us.as_ref().map(|l| l.p999),
        errors: report.errors.into_iter().filter(|(_, n)| *n > 0).collect(),
        ..Run::default()
    };
    let mut problems = Vec::new();
    if !run.errors.is_empty() {
        let kinds: Vec<String> = run.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let sample = report
            .error_samples
            .values()
            .next()
            .cloned()
            .unwrap_or_default();
        problems.push(format!("errors {} ({sample})", kinds.join(" ")));
    }
    if report.unsuccessful > 0 {
        problems.push(format!("{} unsuccessful responses", report.unsuccessful));
    }
    if report.panics > 0 {
        problems.push(format!("{} load-generator panics", report.panics));
    }
    if run.requests == 0 {
        problems.push("no response".into());
    }
    run.problem = (!problems.is_empty()).then(|| problems.join("; "));
    Ok(run)
}

/// What wrk printed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkOutput {
    /// Completed requests.
    pub requests: u64,
    /// Requests/sec.
    pub rps: f64,
    /// 99th percentile latency, µs (per write).
    pub p99_us: Option<f64>,
    /// Socket errors (connect + read + write + timeout).
    pub socket_errors: u64,
    /// Non-2xx/3xx responses.
    pub non_2xx: u64,
}

/// A wrk duration (`250.00us`, `1.20ms`, `2.00s`, `1.00m`) in µs.
fn wrk_us(v: &str) -> Option<f64> {
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let n: f64 = v[..split].parse().ok()?;
    let f = match &v[split..] {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 6e7,
        _ => return None,
    };
    Some(n * f)
}

/// Parses wrk's text output (with `--latency`); `None` when it has no request count.
#[must_use]
pub fn parse_wrk(text: &str) -> Option<WrkOutput> {
    let mut out = WrkOutput::default();
    let mut seen = false;
    for line in text.lines() {
        let t = line.trim();
        let f: Vec<&str> = t.split_whitespace().collect();
        if t.contains(" requests in ") {
            out.requests = f.first()?.parse().ok()?;
            seen = true;
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            out.rps = v.trim().parse().ok()?;
        } else if f.first() == Some(&"99%") && f.len() == 2 {
            // wrk prints 0.00us for the upper percentiles of some pipelined runs.
            out.p99_us = wrk_us(f[1]).filter(|v| *v > 0.0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            out.socket_errors = v
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            out.non_2xx = v.trim().parse().ok()?;
        }
    }
    seen.then_some(out)
}

/// Runs wrk (a discarded warm-up run, then the measured one) against `url`, pipelined with
/// pipeline.lua when `pipeline > 1`.
///
/// # Errors
/// When wrk cannot run, fails, or prints no result.
#[allow(clippy::too_many_arguments)]
pub fn wrk(
    env: &LoadEnv,
    url: &str,
    connections: u32,
    pipeline: u32,
    warmup: Duration,
    duration: Duration,
    server_pid: u32,
    log: &Path,
) -> Result<Run, String> {
    let bin = env.wrk.as_ref().ok_or("wrk not found")?;
    let threads = env.threads.min(connections as usize).max(1);
    let args = |secs: Duration| {
        let mut a = vec![
            bin.display().to_string(),
            format!("-t{threads}"),
            format!("-c{connections}"),
            format!("-d{}s", secs.as_secs_f64().ceil().max(1.0)),
            "--latency".into(),
        ];
        if pipeline > 1 {
            a.extend(["-s".into(), env.pipeline_lua.display().to_string()]);
        }
        a.push(url.into());
        if pipeline > 1 {
            a.extend(["--".into(), pipeline.to_string()]);
        }
        a
    };
    let run = |secs: Duration| -> Result<String, String> {
        let o = pinned(&env.cpus, env.fifo, &args(secs))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start wrk: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if o.status.success() {
            Ok(text)
        } else {
            Err(format!("wrk exited with {}: {}", o.status, text.trim()))
        }
    };
    if warmup > Duration::ZERO {
        run(warmup)?;
    }
    let (c0, t0) = (ticks(server_pid), Instant::now());
    let text = run(duration)?;
    let (c1, t1) = (ticks(server_pid), Instant::now());
    let _ = std::fs::write(log, &text);
    let w =
        parse_wrk(&text).ok_or_else(|| format!("no result in wrk's output: {}", text.trim()))?;
    let mut run = Run {
        requests: w.requests,
        rps: w.rps,
        p99_us: w.p99_us,
        ..Run::default()
    };
    fill_cpu(&mut run, c1.saturating_sub(c0), t1 - t0, env.clk_tck);
    if w.socket_errors > 0 {
        run.errors.insert("socket_errors".into(), w.socket_errors);
    }
    if w.non_2xx > 0 {
        run.errors.insert("non_2xx".into(), w.non_2xx);
    }
    if w.socket_errors > 0 || w.non_2xx > 0 || w.requests == 0 {
        run.problem = Some(format!(
            "wrk: {} socket errors, {} non-2xx/3xx, {} requests",
            w.socket_errors, w.non_2xx, w.requests
        ));
    }
    Ok(run)
}

/// Finds `wrk` on `PATH`.
#[must_use]
pub fn find_wrk() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("wrk"))
        .find(|p| p.is_file())
}

/// The first line a version command prints (stdout or stderr), or `None`.
#[must_use]
pub fn version_of(cmd: &[String], dir: &Path) -> Option<String> {
    let (prog, args) = cmd.split_first()?;
    let o = Command::new(prog)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 2s test @ http://127.0.0.1:18080/
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  200.00us   5.00ms   90.00%
    Req/Sec    88.00k     2.00k   90.00k    70.00%
  Latency Distribution
     50%    1.05ms
     75%    1.20ms
     90%    1.40ms
     99%    2.50ms
  176000 requests in 2.00s, 21.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  88000.50
Transfer/sec:     10.50MB
";

    #[test]
    fn wrk_output_is_parsed() {
        let w = parse_wrk(WRK).unwrap();
        assert_eq!(w.requests, 176_000);
        assert_eq!(w.rps, 88_000.5);
        assert_eq!(w.p99_us, Some(2500.0));
        assert_eq!(w.socket_errors, 3);
        assert_eq!(w.non_2xx, 4);
        assert_eq!(
            parse_wrk("unable to connect to 127.0.0.1:1 Connection refused"),
            None
        );
    }

    #[test]
    fn wrk_units() {
        assert_eq!(wrk_us("250.00us"), Some(250.0));
        assert_eq!(wrk_us("2.00s"), Some(2e6));
        assert_eq!(wrk_us("1.00m"), Some(6e7));
        assert_eq!(wrk_us("1.0x"), None);
    }

    #[test]
    fn fixed_rate_report_gives_the_generators_share() {
        let text = r#"{"requests": 1000, "rps": 500.0, "target_rate": 500.0,
            "errors": {"timeout": 0},
            "latency_us": {"p50": 80, "p99": 4000, "p999": 9000},
            "uncorrected_latency_us": {"p50": 70, "p99": 300, "p999": 800},
            "send_lag_us": {"p50": 1, "p99": 3500, "p999": 8000}}"#;
        let run = run_of_report(text).unwrap();
        assert_eq!(
            (run.p99_us, run.uncorrected_p99_us),
            (Some(4000.0), Some(300.0))
        );
        assert_eq!(run.uncorrected_p999_us, Some(800.0));
        assert_eq!(
            (run.send_lag_p99_us, run.send_lag_p999_us),
            (Some(3500.0), Some(8000.0))
        );
        assert_eq!(run.problem, None);
        // A closed-loop report has neither.
        let closed = r#"{"requests": 10, "rps": 5.0, "errors": {"reset": 1},
            "latency_us": {"p50": 80, "p99": 90, "p999": 99}}"#;
        let run = run_of_report(closed).unwrap();
        assert_eq!((run.uncorrected_p99_us, run.send_lag_p99_us), (None, None));
        assert!(run.problem.unwrap().contains("reset=1"));
    }

    #[test]
    fn cpu_per_request_and_busy_share() {
        let mut run = Run {
            requests: 1000,
            ..Run::default()
        };
        fill_cpu(&mut run, 5, Duration::from_millis(100), 100);
        assert!((run.cpu_us_per_req.unwrap() - 50.0).abs() < 1e-9);
        assert!((run.server_busy_pct.unwrap() - 50.0).abs() < 1e-9);
    }
}
