//! The comparison procedure: for each workload, for each round, for each server in turn
//! (interleaved A B A B ...): start it pinned on a fresh port, load it, stop it.
//!
//! Owns: [`Config`] (everything the runner needs, resolved by the `compare` binary) and
//! [`run_workload`], which appends one [`WorkloadResult`] per workload.
//! Contract: every server of a workload appears in its result (the idle workload takes
//! each name once, its first manifest entry): unavailable servers (missing
//! `requires`) and failed starts as failure records, per round and tool; a server that dies
//! during a run turns that run into a failure. The fixed-rate workload takes its rate from
//! the `http-keepalive` result already in `results` (the slowest server with a good run).
//! Progress goes to stderr, one line per run.
//! Does not: parse the command line or write files (see `bin/compare.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::compare::idle;
use crate::compare::load::{self, LoadEnv, Run};
use crate::compare::manifest::{Paths, Protocol, ServerSpec};
use crate::compare::results::{RINGWORK_LOAD, Results, RunRecord, WRK, WorkloadResult};
use crate::compare::server::{Ports, Server, log_tail};
use crate::compare::suite::{Load, Suite, Workload};

/// Everything a comparison run needs.
#[derive(Debug)]
pub struct Config {
    /// The suite, already filtered by `--workloads`.
    pub suite: Suite,
    /// Servers to compare, in manifest order, already filtered by `--servers`.
    pub servers: Vec<ServerSpec>,
    /// Servers (name, workload) that cannot run, with the reason (`missing: <path>`).
    pub unavailable: BTreeMap<(String, Protocol), String>,
    /// Path resolution for the manifest.
    pub paths: Paths,
    /// `taskset -c` list of the servers.
    pub server_cpus: String,
    /// `{cores}` of the server commands.
    pub server_cores: usize,
    /// The load generators.
    pub load: LoadEnv,
    /// Where logs go.
    pub logs: PathBuf,
    /// Fixed-rate workloads: the peak their fractions apply to, instead of this run's
    /// slowest keep-alive median.
    pub rate_base: Option<f64>,
    /// Soft RLIMIT_NOFILE and ephemeral ports, for the idle-connection budget.
    pub nofile_soft: Option<u64>,
    /// Ephemeral ports available.
    pub ephemeral_ports: Option<u64>,
}

fn fmt_run(r: &Run) -> String {
    let cpu = r
        .cpu_us_per_req
        .map_or_else(|| "?".into(), |c| format!("{c:.2}"));
    let p99 = r.p99_us.map_or_else(|| "?".into(), |p| format!("{p:.0}"));
    let problem = r
        .problem
        .as_deref()
        .map_or_else(String::new, |p| format!("  PROBLEM: {p}"));
    format!(
        "{:>10.0} req/s  {cpu:>6} µs CPU/req  p99 {p99} µs{problem}",
        r.rps
    )
}

/// The tools a workload runs, in order.
fn tools(w: &Workload, cfg: &Config) -> Vec<&'static str> {
    match w.load {
        Load::Http { wrk: true, .. } if cfg.load.wrk.is_some() => vec![RINGWORK_LOAD, WRK],
        Load::IdleRss { .. } => vec![],
        _ => vec![RINGWORK_LOAD],
    }
}

/// The rate of a fixed-rate workload: `fraction` × `base` when given (`compare --rate-base`,
/// to repeat another run's rates), else × the lowest median ringwork-load req/s of
/// `http-keepalive` among servers with a good run.
#[must_use]
pub fn fixed_rate(results: &Results, fraction: f64, base: Option<f64>) -> Option<f64> {
    if let Some(base) = base {
        return Some((base * fraction).max(1.0).round());
    }
    let keepalive = results
        .workloads
        .iter()
        .find(|w| w.workload.id == "http-keepalive")?;
    keepalive
        .rows
        .iter()
        .filter(|r| r.tool == RINGWORK_LOAD)
        .filter_map(|r| r.rps.map(|s| s.median))
        .min_by(f64::total_cmp)
        .map(|slowest| (slowest * fraction).max(1.0).round())
}

/// Whether `w`'s servers and generators run under SCHED_FIFO: with `--fifo`, the fixed-rate
/// workloads only. A closed-loop run keeps its CPUs fully busy, and a SCHED_FIFO task that
/// never sleeps is throttled by the RT limit (50 ms of every second).
fn fifo(cfg: &Config, w: &Workload) -> bool {
    cfg.load.fifo && matches!(w.load, Load::HttpRate { .. })
}

/// Runs one workload and appends its result to `results`.
pub fn run_workload(cfg: &Config, w: &Workload, ports: &mut Ports, results: &mut Results) {
    let suite = &cfg.suite;
    // A name listed for both workloads (ringwork) takes part once in the idle workload,
    // with its first entry.
    let mut participants: Vec<&ServerSpec> = Vec::new();
    for s in cfg
        .servers
        .iter()
        .filter(|s| w.protocol.is_none_or(|p| p == s.workload))
    {
        if !participants.iter().any(|p| p.name == s.name) {
            participants.push(s);
        }
    }
    let mut wr = WorkloadResult::new(
        w.clone(),
        participants.iter().map(|s| s.name.clone()).collect(),
    );
    if participants.is_empty() {
        wr.skipped = Some("no server of this kind in the manifest (after --servers)".into());
    }
    if let Load::HttpRate { fraction, .. } = w.load {
        wr.rate = fixed_rate(results, fraction, cfg.rate_base);
        if wr.rate.is_none() && wr.skipped.is_none() {
            wr.skipped = Some(
                "needs a good http-keepalive result from this run (add it to --workloads)".into(),
            );
        }
    }
    if wr.skipped.is_some() {
        eprintln!(
            "== {}: skipped: {}",
            w.id,
            wr.skipped.as_deref().unwrap_or("")
        );
        results.workloads.push(wr);
        return;
    }
    eprintln!("== {}: {}", w.id, w.title);
    let tools = tools(w, cfg);
    let rounds = if matches!(w.load, Load::IdleRss { .. }) {
        1
    } else {
        suite.rounds
    };
    for round in 1..=rounds {
        for spec in &participants {
            let fail = |wr: &mut WorkloadResult, why: String| {
                eprintln!("   round {round} {:<12} failed: {why}", spec.name);
                for tool in &tools {
                    wr.runs.push(RunRecord {
                        round,
                        server: spec.name.clone(),
                        tool: (*tool).into(),
                        run: None,
                        failure: Some(why.clone()),
                    });
                }
                if tools.is_empty() {
                    wr.idle.push((spec.name.clone(), Err(why)));
                }
            };
            if let Some(why) = cfg.unavailable.get(&(spec.name.clone(), spec.workload)) {
                fail(&mut wr, why.clone());
                continue;
            }
            let port = match ports.fresh() {
                Ok(p) => p,
                Err(e) => {
                    fail(&mut wr, e);
                    continue;
                }
            };
            let tag = format!("{}-{}-r{round}", w.id, spec.name);
            let cmd = spec.command(port, cfg.server_cores, &cfg.paths);
            let log = cfg.logs.join(format!("server-{tag}.log"));
            let started = Server::start(
                &cmd,
                &cfg.server_cpus,
                fifo(cfg, w),
                port,
                &cfg.paths.repo,
                log,
            );
            let mut server = match started {
                Ok(s) => s,
                Err(e) => {
                    fail(&mut wr, format!("start: {e}"));
                    continue;
                }
            };
            one_server(cfg, w, &tools, round, spec, &mut server, &tag, &mut wr);
            if let Err(e) = server.stop() {
                let warning = format!("{tag}: stopping {}: {e}", spec.name);
                eprintln!("   WARNING: {warning}");
                results.warnings.push(warning);
            }
        }
    }
    wr.summarize();
    if let Some(rank) = wr.rank.as_ref().filter(|r| !r.agree) {
        eprintln!(
            "   WARNING: RANKING DISAGREES: ringwork-load {} vs wrk {}",
            rank.ringwork_load.join(" > "),
            rank.wrk.join(" > ")
        );
    }
    results.workloads.push(wr);
}

/// The runs of one started server in one round.
#[allow(clippy::too_many_arguments)]
fn one_server(
    cfg: &Config,
    w: &Workload,
    tools: &[&'static str],
    round: u32,
    spec: &ServerSpec,
    server: &mut Server,
    tag: &str,
    wr: &mut WorkloadResult,
) {
    let suite = &cfg.suite;
    let port = server.port;
    let env = LoadEnv {
        fifo: fifo(cfg, w),
        ..cfg.load.clone()
    };
    let url = format!("http://127.0.0.1:{port}/");
    if let Load::IdleRss { connections } = w.load {
        let (n, note) = idle::budget(connections, cfg.nofile_soft, cfg.ephemeral_ports);
        let m = idle::measure(server.pid, port, connections, n, note);
        eprintln!(
            "   {:<12} RSS {} KiB -> {} KiB with {} idle connections ({} held){}",
            spec.name,
            m.rss_before_kib,
            m.rss_with_kib,
            m.opened,
            m.accepted,
            m.note
                .as_deref()
                .map_or_else(String::new, |n| format!("  NOTE: {n}"))
        );
        wr.idle.push((spec.name.clone(), Ok(m)));
        return;
    }
    for tool in tools {
        let log = cfg.logs.join(format!("{tool}-{tag}.log"));
        let result = if *tool == WRK {
            let (connections, pipeline) = match w.load {
                Load::Http {
                    connections,
                    pipeline,
                    ..
                } => (connections, pipeline),
                _ => (1, 1),
            };
            // wrk follows ringwork-load against the same server process, which is warm:
            // no separate warm-up run.
            load::wrk(
                &env,
                &url,
                connections,
                pipeline,
                Duration::ZERO,
                suite.duration,
                server.pid,
                &log,
            )
        } else {
            let args: Vec<String> = match &w.load {
                Load::Echo { size, connections } => vec![
                    "tcp".into(),
                    format!("127.0.0.1:{port}"),
                    "-c".into(),
                    connections.to_string(),
                    "--size".into(),
                    size.to_string(),
                ],
                Load::Http {
                    connections,
                    pipeline,
                    reconnect_every,
                    ..
                } => {
                    let mut a = vec![
                        "http".into(),
                        url.clone(),
                        "-c".into(),
                        connections.to_string(),
                        "--pipeline".into(),
                        pipeline.to_string(),
                    ];
                    if let Some(n) = reconnect_every {
                        a.extend(["--reconnect-every".into(), n.to_string()]);
                    }
                    a
                }
                Load::HttpRate { connections, .. } => vec![
                    "http".into(),
                    url.clone(),
                    "-c".into(),
                    connections.to_string(),
                    "--rate".into(),
                    format!("{}", wr.rate.unwrap_or(1.0)),
                    // The generator has its CPUs to itself: spinning for its sends keeps
                    // its wake-ups (~12 µs median, more from a halted vCPU) out of every
                    // server's latency. Not under SCHED_FIFO (`--fifo`): a task that never
                    // sleeps is throttled by the RT limit (50 ms of every second).
                    "--busy-poll".into(),
                    cfg.load.busy_poll.clone(),
                    // One wake-up sends every connection's request due in the window
                    // (up to that early): the generator's CPU per request falls (20.5 ->
                    // 16.4 µs at 44k/s with 100 µs, session 7), so its own queueing is
                    // less of every server's tail; the servers see bursts of a window's
                    // requests.
                    "--send-window".into(),
                    cfg.load.send_window.clone(),
                ],
                Load::IdleRss { .. } => vec![],
            };
            let json = cfg.logs.join(format!("{tool}-{tag}.json"));
            load::ringwork_load(
                &env,
                &args,
                suite.warmup,
                suite.duration,
                server.pid,
                &json,
                &log,
            )
        };
        let mut record = RunRecord {
            round,
            server: spec.name.clone(),
            tool: (*tool).into(),
            run: None,
            failure: None,
        };
        match result {
            Ok(mut run) => {
                if !server.running() {
                    let died = format!("server died during the run: {}", log_tail(&server.log, 3));
                    run.problem =
                        Some(run.problem.map_or(died.clone(), |p| format!("{p}; {died}")));
                }
                eprintln!(
                    "   round {round} {:<12} {:<13} {}",
                    spec.name,
                    tool,
                    fmt_run(&run)
                );
                record.run = Some(run);
            }
            Err(e) => {
                eprintln!(
                    "   round {round} {:<12} {:<13} failed: {e}",
                    spec.name, tool
                );
                record.failure = Some(e);
            }
        }
        wr.runs.push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::fixtures;

    #[test]
    fn fixed_rate_is_half_the_slowest_good_keepalive_median() {
        let r = fixtures::results();
        // ringwork 100k, nginx 85k (its failed round excluded), go missing.
        assert_eq!(fixed_rate(&r, 0.5, None), Some(42_500.0));
        let mut none = fixtures::results();
        none.workloads.retain(|w| w.workload.id != "http-keepalive");
        assert_eq!(fixed_rate(&none, 0.5, None), None);
        // A given base wins, with or without a keep-alive result.
        assert_eq!(fixed_rate(&r, 0.8, Some(159_764.0)), Some(127_811.0));
        assert_eq!(fixed_rate(&none, 0.5, Some(159_764.0)), Some(79_882.0));
    }
}
