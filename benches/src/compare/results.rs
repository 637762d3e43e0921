//! The results of a comparison run: raw runs, per-server summaries, ratios and the rank
//! cross-check; serialised as results.json.
//!
//! Owns: [`Results`] and its parts, and [`WorkloadResult::summarize`], which turns the runs
//! into one [`Row`] per server and tool (median and range over the runs that succeeded,
//! ratios `ringwork / peer`) and compares the rankings of ringwork-load and wrk.
//! Contract: a server that never ran (missing binary, failed start, errors in every run)
//! still gets a row, with `failure` set; a run with a problem is excluded from the medians
//! and counted in `runs - ok_runs`.
//! Does not: format text (see `markdown.rs`) or draw (see `plot.rs`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compare::idle::Idle;
use crate::compare::load::Run;
use crate::compare::manifest::BASELINE;
use crate::compare::procfs::Machine;
use crate::compare::stats::{RankCheck, Summary, ratio};
use crate::compare::suite::Workload;

/// The load generator of a run.
pub const RINGWORK_LOAD: &str = "ringwork-load";
/// The cross-check generator.
pub const WRK: &str = "wrk";

/// Everything a comparison produced.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// The command line.
    pub command: String,
    /// Start time, UTC.
    pub started_utc: String,
    /// Wall time of the whole run, seconds.
    pub elapsed_s: f64,
    /// The machine.
    pub machine: Machine,
    /// Suite name, rounds, durations.
    pub suite: SuiteInfo,
    /// CPU split and other settings.
    pub settings: BTreeMap<String, String>,
    /// Servers of the manifest and whether they could run.
    pub servers: Vec<ServerInfo>,
    /// Versions of the servers and tools, where cheaply known.
    pub versions: BTreeMap<String, String>,
    /// One entry per workload.
    pub workloads: Vec<WorkloadResult>,
    /// Things that went wrong around the measurements (a server slow to stop, ...).
    pub warnings: Vec<String>,
}

/// Suite settings as run.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteInfo {
    /// `smoke`, `quick`, `full`.
    pub name: String,
    /// Interleaved rounds.
    pub rounds: u32,
    /// Measured seconds per run.
    pub duration_s: f64,
    /// Warm-up seconds per run.
    pub warmup_s: f64,
}

/// One server of the manifest.
#[derive(Clone, Debug, Serialize)]
pub struct ServerInfo {
    /// Its name.
    pub name: String,
    /// `echo` or `http`.
    pub protocol: String,
    /// `None` when runnable, else e.g. `missing: /path`.
    pub unavailable: Option<String>,
}

/// One run of one server by one tool.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// Round, from 1.
    pub round: u32,
    /// Server name.
    pub server: String,
    /// `ringwork-load` or `wrk`.
    pub tool: String,
    /// The measurement, if the run happened.
    pub run: Option<Run>,
    /// Why it did not happen (start failure, generator failure).
    pub failure: Option<String>,
}

impl RunRecord {
    /// The measurement if the run happened and had no problem.
    #[must_use]
    pub fn ok(&self) -> Option<&Run> {
        self.run.as_ref().filter(|r| r.problem.is_none())
    }

    /// Why the run does not count, if it does not.
    #[must_use]
    pub fn reason(&self) -> Option<String> {
        self.failure
            .clone()
            .or_else(|| self.run.as_ref().and_then(|r| r.problem.clone()))
    }
}

/// Summary of one server by one tool in one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Server name.
    pub server: String,
    /// Generator.
    pub tool: String,
    /// Requests/s over the good runs.
    pub rps: Option<Summary>,
    /// p50 latency, µs.
    pub p50_us: Option<Summary>,
    /// p99 latency, µs.
    pub p99_us: Option<Summary>,
    /// p99.9 latency, µs.
    pub p999_us: Option<Summary>,
    /// Server CPU per request, µs.
    pub cpu_us_per_req: Option<Summary>,
    /// Fixed rate: p99 from the actual send (uncorrected), µs.
    pub uncorrected_p99_us: Option<Summary>,
    /// Fixed rate: the generator's own send lag, p99, µs.
    pub send_lag_p99_us: Option<Summary>,
    /// Fixed rate: the generator's send lag, p99.9, µs.
    pub send_lag_p999_us: Option<Summary>,
    /// The generator's CPU per request, µs.
    pub load_cpu_us_per_req: Option<Summary>,
    /// Runs attempted.
    pub runs: usize,
    /// Runs without problems.
    pub ok_runs: usize,
    /// The first failure reason, if any run failed.
    pub failure: Option<String>,
    /// Baseline median rps / this server's (>1: the baseline is faster).
    pub ratio_rps: Option<f64>,
    /// Baseline median CPU/req / this server's (<1: the baseline is cheaper).
    pub ratio_cpu: Option<f64>,
    /// Baseline median p99 / this server's (<1: the baseline has lower latency).
    pub ratio_p99: Option<f64>,
}

/// One workload: what ran and what it gave.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadResult {
    /// The workload.
    pub workload: Workload,
    /// Servers taking part, in round order.
    pub servers: Vec<String>,
    /// Why the workload did not run at all.
    pub skipped: Option<String>,
    /// Fixed rate used (fixed-rate workload), requests/s.
    pub rate: Option<f64>,
    /// Every run.
    pub runs: Vec<RunRecord>,
    /// Idle-connection measurements (idle workload), per server: result or failure.
    pub idle: Vec<(String, Result<Idle, String>)>,
    /// Summaries (filled by [`WorkloadResult::summarize`]).
    pub rows: Vec<Row>,
    /// ringwork-load vs wrk ranking, when wrk ran.
    pub rank: Option<RankCheck>,
}

impl WorkloadResult {
    /// An empty result for `workload` with these servers.
    #[must_use]
    pub fn new(workload: Workload, servers: Vec<String>) -> Self {
        Self {
            workload,
            servers,
            skipped: None,
            rate: None,
            runs: Vec::new(),
            idle: Vec::new(),
            rows: Vec::new(),
            rank: None,
        }
    }

    /// The row of `server` measured by `tool`.
    #[must_use]
    pub fn row(&self, server: &str, tool: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.server == server && r.tool == tool)
    }

    /// Computes `rows` and `rank` from `runs`.
    pub fn summarize(&mut self) {
        self.rows.clear();
        let mut tools: Vec<&str> = Vec::new();
        for r in &self.runs {
            if !tools.contains(&r.tool.as_str()) {
                tools.push(&r.tool);
            }
        }
        let mut rows = Vec::new();
        for tool in &tools {
            for server in &self.servers {
                let runs: Vec<&RunRecord> = self
                    .runs
                    .iter()
                    .filter(|r| r.server == *server && r.tool == *tool)
                    .collect();
                let ok: Vec<&Run> = runs.iter().filter_map(|r| r.ok()).collect();
                let col = |f: fn(&Run) -> Option<f64>| {
                    Summary::of(&ok.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
                };
                rows.push(Row {
                    server: server.clone(),
                    tool: (*tool).to_string(),
                    rps: col(|r| Some(r.rps)),
                    p50_us: col(|r| r.p50_us),
                    p99_us: col(|r| r.p99_us),
                    p999_us: col(|r| r.p999_us),
                    cpu_us_per_req: col(|r| r.cpu_us_per_req),
                    uncorrected_p99_us: col(|r| r.uncorrected_p99_us),
                    send_lag_p99_us: col(|r| r.send_lag_p99_us),
                    send_lag_p999_us: col(|r| r.send_lag_p999_us),
                    load_cpu_us_per_req: col(|r| r.load_cpu_us_per_req),
                    runs: runs.len(),
                    ok_runs: ok.len(),
                    failure: runs.iter().find_map(|r| r.reason()),
                    ratio_rps: None,
                    ratio_cpu: None,
                    ratio_p99: None,
                });
            }
        }
        for i in 0..rows.len() {
            let base = rows
                .iter()
                .find(|b| b.server == BASELINE && b.tool == rows[i].tool)
                .cloned();
            if let Some(b) = base {
                let med = |s: Option<Summary>| s.map(|s| s.median);
                let r = &mut rows[i];
                r.ratio_rps = ratio(med(b.rps), med(r.rps));
                r.ratio_cpu = ratio(med(b.cpu_us_per_req), med(r.cpu_us_per_req));
                r.ratio_p99 = ratio(med(b.p99_us), med(r.p99_us));
            }
        }
        self.rows = rows;
        let medians = |tool: &str| -> Vec<(String, f64)> {
            self.rows
                .iter()
                .filter(|r| r.tool == tool)
                .filter_map(|r| Some((r.server.clone(), r.rps?.median)))
                .collect()
        };
        let (a, b) = (medians(RINGWORK_LOAD), medians(WRK));
        self.rank = (tools.contains(&WRK) && !b.is_empty()).then(|| RankCheck::new(&a, &b));
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic
/// Gregorian).
#[must_use]
pub fn utc_timestamp(epoch_secs: u64) -> String {
    let days = (epoch_secs / 86_400) as i64;
    let rem = epoch_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
