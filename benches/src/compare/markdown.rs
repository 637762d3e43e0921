//! results.md: the machine, the command, and one markdown table per workload.
//!
//! Owns: [`render`] and the number formats of the tables.
//! Contract: every server of a workload has a line, failures as `failed: <reason>`; ratio
//! columns say which direction is better; a ranking disagreement between ringwork-load and
//! wrk is printed as a loud `**WARNING**` line.
//! Does not: compute anything but formatting (see `results.rs`).

use std::fmt::Write as _;

use crate::compare::manifest::BASELINE;
use crate::compare::results::{RINGWORK_LOAD, Results, Row, WRK, WorkloadResult};
use crate::compare::stats::Summary;
use crate::compare::suite::Load;

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A latency in µs as `850 µs` or `1.25 ms`.
fn lat(us: Option<f64>) -> String {
    match us {
        Some(v) if v >= 1000.0 => format!("{:.2} ms", v / 1000.0),
        Some(v) => format!("{v:.0} µs"),
        None => "–".into(),
    }
}

fn med(s: Option<Summary>) -> Option<f64> {
    s.map(|s| s.median)
}

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map_or_else(|| "–".into(), f)
}

fn x(v: Option<f64>) -> String {
    opt(v, |r| format!("×{r:.2}"))
}

/// `ok`, `failed: reason` (no good run) or `k/n runs failed: reason`.
fn status(row: &Row) -> String {
    let reason = row.failure.clone().unwrap_or_default().replace('|', "/");
    if row.ok_runs == row.runs && row.runs > 0 {
        "ok".into()
    } else if row.ok_runs == 0 {
        format!("failed: {reason}")
    } else {
        format!(
            "{}/{} runs failed: {reason}",
            row.runs - row.ok_runs,
            row.runs
        )
    }
}

fn throughput_table(out: &mut String, w: &WorkloadResult, tool: &str) {
    let unit = if matches!(w.workload.load, Load::Echo { .. }) {
        "msg/s"
    } else {
        "req/s"
    };
    let _ = writeln!(
        out,
        "| server | median {unit} | min–max {unit} | median p99 | median server CPU µs/req | \
         {BASELINE}/peer {unit} (>1: {BASELINE} faster) | {BASELINE}/peer CPU/req (<1: {BASELINE} cheaper) | status |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    for row in w.rows.iter().filter(|r| r.tool == tool) {
        let range = row
            .rps
            .map_or_else(|| "–".into(), |s| format!("{}–{}", num(s.min), num(s.max)));
        let _ = writeln!(
            out,
            "| {} | {} | {range} | {} | {} | {} | {} | {} |",
            row.server,
            opt(med(row.rps), num),
            lat(med(row.p99_us)),
            opt(med(row.cpu_us_per_req), num),
            x(row.ratio_rps),
            x(row.ratio_cpu),
            status(row)
        );
    }
}

fn rate_table(out: &mut String, w: &WorkloadResult) {
    let _ = writeln!(
        out,
        "| server | target req/s | achieved req/s | p50 | p99 | p99.9 | uncorrected p99 | \
         generator send lag p99 / p99.9 | median server CPU µs/req | generator CPU µs/req | \
         {BASELINE}/peer p99 (<1: {BASELINE} lower) | status |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for row in w.rows.iter().filter(|r| r.tool == RINGWORK_LOAD) {
        // Achieved well below the target: the server (or the generator) could not keep up,
        // and the latencies include that backlog.
        let mut state = status(row);
        let shares = w.rate.zip(med(row.rps));
        if let Some((target, achieved)) = shares.filter(|(t, a)| *a < 0.95 * t) {
            state = format!(
                "{state}; achieved only {:.0}% of the target",
                100.0 * achieved / target
            );
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} |",
            row.server,
            opt(w.rate, num),
            opt(med(row.rps), num),
            lat(med(row.p50_us)),
            lat(med(row.p99_us)),
            lat(med(row.p999_us)),
            lat(med(row.uncorrected_p99_us)),
            lat(med(row.send_lag_p99_us)),
            lat(med(row.send_lag_p999_us)),
            opt(med(row.cpu_us_per_req), num),
            opt(med(row.load_cpu_us_per_req), num),
            x(row.ratio_p99),
            state
        );
    }
}

fn idle_table(out: &mut String, w: &WorkloadResult) {
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let base = w
        .idle
        .iter()
        .find(|(n, _)| n == BASELINE)
        .and_then(|(_, r)| r.as_ref().ok()?.per_conn_kib());
    let _ = writeln!(
        out,
        "| server | RSS before | RSS with connections | KiB per connection | opened / held by server | \
         {BASELINE}/peer KiB per connection (<1: {BASELINE} smaller) | note |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
    for (name, r) in &w.idle {
        match r {
            Ok(i) => {
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} | {} / {} | {} | {} |",
                    mib(i.rss_before_kib),
                    mib(i.rss_with_kib),
                    opt(i.per_conn_kib(), |v| format!("{v:.2}")),
                    i.opened,
                    i.accepted,
                    x(crate::compare::stats::ratio(base, i.per_conn_kib())),
                    i.note.clone().unwrap_or_default()
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| {name} | – | – | – | – | – | failed: {} |",
                    e.replace('|', "/")
                );
            }
        }
    }
}

fn rank_lines(out: &mut String, w: &WorkloadResult) {
    let Some(rank) = &w.rank else { return };
    if rank.ringwork_load.len() < 2 {
        let _ = writeln!(
            out,
            "\nRanking check: fewer than two servers measured by both tools."
        );
    } else if rank.agree {
        let _ = writeln!(
            out,
            "\nRanking check: ringwork-load and wrk agree ({}).",
            rank.ringwork_load.join(" > ")
        );
    } else {
        let pairs: Vec<String> = rank
            .swapped
            .iter()
            .map(|(a, b, gap)| format!("{a} vs {b} (wrk gap {:.1}%)", gap * 100.0))
            .collect();
        let _ = writeln!(
            out,
            "\n**WARNING: RANKING DISAGREES** — ringwork-load: {}; wrk: {}. Swapped: {}. \
             Gaps within the ±5–10% run-to-run noise are not significant.",
            rank.ringwork_load.join(" > "),
            rank.wrk.join(" > "),
            pairs.join(", ")
        );
    }
}

/// Renders results.md.
#[must_use]
pub fn render(r: &Results) -> String {
    let mut out = String::new();
    let s = &r.suite;
    let _ = writeln!(out, "# ringwork comparison: suite `{}`\n", s.name);
    let _ = writeln!(out, "- command: `{}`", r.command);
    let _ = writeln!(out, "- started: {} ({:.0} s)", r.started_utc, r.elapsed_s);
    let m = &r.machine;
    let mem = m.mem_total_kib.map_or_else(String::new, |k| {
        format!(", {:.1} GiB RAM", k as f64 / 1048576.0)
    });
    let _ = writeln!(
        out,
        "- machine: {} × {} CPUs ({} available to the runner){mem}, Linux {}",
        m.cpu_model, m.cpus, m.available_cpus, m.kernel
    );
    let _ = writeln!(
        out,
        "- {} interleaved rounds × {} s measured after {} s warm-up (idle connections: 1 round)",
        s.rounds, s.duration_s, s.warmup_s
    );
    for (k, v) in &r.settings {
        let _ = writeln!(out, "- {k}: {v}");
    }
    for (k, v) in &r.versions {
        let _ = writeln!(out, "- version of {k}: {v}");
    }
    for srv in &r.servers {
        if let Some(why) = &srv.unavailable {
            let _ = writeln!(out, "- **{} ({}) skipped**: {why}", srv.name, srv.protocol);
        }
    }
    let _ = writeln!(
        out,
        "\nServer CPU µs/req = utime+stime of the server's whole process tree over the measured \
         window / requests. Both cores are busy in closed-loop runs (the generator costs as much \
         as the server): req/s measures the pair, CPU per request the server."
    );
    for w in &r.workloads {
        let _ = writeln!(out, "\n## {}: {}\n", w.workload.id, w.workload.title);
        if let Some(why) = &w.skipped {
            let _ = writeln!(out, "Skipped: {why}");
            continue;
        }
        match w.workload.load {
            Load::Echo { .. } | Load::Http { .. } => {
                throughput_table(&mut out, w, RINGWORK_LOAD);
                if w.rows.iter().any(|row| row.tool == WRK) {
                    let _ = writeln!(
                        out,
                        "\nwrk cross-check (wrk's p99 is per write, i.e. per batch when pipelined; – where wrk printed 0):\n"
                    );
                    throughput_table(&mut out, w, WRK);
                    rank_lines(&mut out, w);
                }
            }
            Load::HttpRate { fraction, .. } => {
                let _ = writeln!(
                    out,
                    "Rate: {:.0}% of the slowest server's median keep-alive req/s (or of \
                     `--rate-base`); latency is coordinated-omission corrected (from the intended \
                     send time). Whose tail it is: *uncorrected p99* is timed from the actual \
                     send, *send lag* is how late the generator sent requests whose connection \
                     was free; generator CPU µs/req × achieved req/s is the generator's busy \
                     share (a busy-polling generator is always near 100%): near 90% and above, \
                     every pause of its CPU leaves a backlog that takes many times the pause to \
                     drain, and that queueing is in every server's tail.\n",
                    fraction * 100.0
                );
                rate_table(&mut out, w);
            }
            Load::IdleRss { .. } => idle_table(&mut out, w),
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "\n## Warnings\n");
        for warning in &r.warnings {
            let _ = writeln!(out, "- {warning}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::fixtures;

    #[test]
    fn renders_header_tables_failures_and_ranking_warning() {
        let md = render(&fixtures::results());
        assert!(md.contains("- command: `compare --suite quick`"));
        assert!(md.contains("Test CPU × 2 CPUs"));
        assert!(md.contains("- **go (http) skipped**: missing: /x/go-hello"));
        assert!(md.contains("ringwork/peer req/s (>1: ringwork faster)"));
        assert!(
            md.contains(
                "| ringwork | 100000 | 95000–105000 | 1.50 ms | 10.0 | ×1.00 | ×1.00 | ok |"
            ),
            "{md}"
        );
        assert!(md.contains("| nginx | 85000 | 85000–85000 |"));
        assert!(md.contains("1/3 runs failed: errors reset=2"));
        assert!(md.contains("| go | – | – | – | – | – | – | failed: missing: /x/go-hello |"));
        assert!(md.contains("**WARNING: RANKING DISAGREES**"));
        assert!(md.contains("wrk: nginx > ringwork"));
    }

    #[test]
    fn renders_rate_and_idle_tables() {
        let md = render(&fixtures::results());
        assert!(
            md.contains(
                "| ringwork | 42500 | 42500 | 75 µs | 300 µs | 600 µs | 250 µs | 20 µs / 90 µs | 9.00 | 11.5 | ×1.00 | ok |"
            ),
            "{md}"
        );
        assert!(md.contains("| nginx | 42500 | 42400 |"));
        let mut slow = fixtures::results();
        slow.workloads[1].rate = Some(100_000.0);
        assert!(render(&slow).contains("ok; achieved only 42% of the target"));
        assert!(
            md.contains("| ringwork | 3.9 MiB | 23.4 MiB | 2.00 | 10000 / 10000 | ×1.00 |  |"),
            "{md}"
        );
        assert!(md.contains(
            "| nginx | – | – | – | – | – | failed: exited (exit status: 1) before accepting |"
        ));
    }

    #[test]
    fn number_formats() {
        assert_eq!(num(123_456.7), "123457");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(lat(Some(1250.0)), "1.25 ms");
        assert_eq!(lat(Some(850.0)), "850 µs");
        assert_eq!(lat(None), "–");
    }
}
