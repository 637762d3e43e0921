//! The workloads and the three suites (`smoke`, `quick`, `full`).
//!
//! Owns: what each workload asks of the load generators ([`Load`]), which servers take part
//! ([`Workload::protocol`]), and each suite's rounds, durations and cases.
//! Contract: workload ids are unique and stable (they key results.json and the
//! `--workloads` filter); the fixed-rate workload comes after `http-keepalive`, whose result
//! sets its rate; the idle-connections workload runs one round whatever `--rounds` says.
//! Does not: run anything (see `runner.rs`).

use std::time::Duration;

use serde::Serialize;

use crate::compare::manifest::Protocol;

/// What one workload does to a server.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Load {
    /// `ringwork-load tcp --size SIZE -c CONNECTIONS`, closed loop.
    Echo {
        /// Message size in bytes.
        size: usize,
        /// Connections.
        connections: u32,
    },
    /// `ringwork-load http -c CONNECTIONS --pipeline DEPTH [--reconnect-every N]`.
    Http {
        /// Connections.
        connections: u32,
        /// Requests in flight per connection.
        pipeline: u32,
        /// Open a new connection every N requests.
        reconnect_every: Option<u32>,
        /// Also run wrk (pipelined with benches/scripts/wrk/pipeline.lua) as a cross-check.
        wrk: bool,
    },
    /// `ringwork-load http --rate R`: R = `fraction` × the slowest server's median
    /// `http-keepalive` throughput of this run; reports corrected latency percentiles.
    HttpRate {
        /// Connections.
        connections: u32,
        /// Share of the slowest peak.
        fraction: f64,
    },
    /// Open this many idle connections and report the server's RSS before and with them.
    IdleRss {
        /// Idle connections to open.
        connections: u32,
    },
}

/// One named case of a suite.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    /// Stable id, e.g. `echo-128b-c100`.
    pub id: String,
    /// Human title for the tables.
    pub title: String,
    /// Which servers take part; `None`: all of them (idle connections).
    pub protocol: Option<Protocol>,
    /// What it does.
    pub load: Load,
}

/// A suite: cases and timing.
#[derive(Clone, Debug, Serialize)]
pub struct Suite {
    /// `smoke`, `quick` or `full`.
    pub name: String,
    /// Interleaved rounds.
    pub rounds: u32,
    /// Measured duration of each run.
    pub duration: Duration,
    /// Warm-up before each measured run (excluded).
    pub warmup: Duration,
    /// Cases, in run order.
    pub workloads: Vec<Workload>,
}

fn echo(size: usize, connections: u32) -> Workload {
    let size_name = if size.is_multiple_of(1024) {
        format!("{}k", size / 1024)
    } else {
        format!("{size}b")
    };
    Workload {
        id: format!("echo-{size_name}-c{connections}"),
        title: format!("TCP echo, {size} B messages, {connections} connections"),
        protocol: Some(Protocol::Echo),
        load: Load::Echo { size, connections },
    }
}

fn http(
    id: &str,
    title: String,
    connections: u32,
    pipeline: u32,
    reconnect: Option<u32>,
    wrk: bool,
) -> Workload {
    Workload {
        id: id.into(),
        title,
        protocol: Some(Protocol::Http),
        load: Load::Http {
            connections,
            pipeline,
            reconnect_every: reconnect,
            wrk,
        },
    }
}

fn http_set(connections: u32) -> Vec<Workload> {
    vec![
        http(
            "http-keepalive",
            format!("HTTP/1.1 plaintext keep-alive, {connections} connections"),
            connections,
            1,
            None,
            true,
        ),
        http(
            "http-pipeline16",
            format!("HTTP/1.1 pipelined x16, {connections} connections"),
            connections,
            16,
            None,
            true,
        ),
        http(
            "http-reconnect10",
            format!("HTTP/1.1, a new connection every 10 requests, {connections} connections"),
            connections,
            1,
            Some(10),
            false,
        ),
        fixed_rate(50, connections),
        fixed_rate(80, connections),
    ]
}

/// `http-rate<percent>`: a fixed rate at `percent`% of the slowest server's keep-alive peak
/// (the issue asks for the tails at 50% and 80%).
fn fixed_rate(percent: u32, connections: u32) -> Workload {
    Workload {
        id: format!("http-rate{percent}"),
        title: format!(
            "HTTP/1.1 fixed rate: {percent}% of the slowest server's keep-alive peak, {connections} connections"
        ),
        protocol: Some(Protocol::Http),
        load: Load::HttpRate {
            connections,
            fraction: f64::from(percent) / 100.0,
        },
    }
}

fn idle(connections: u32) -> Workload {
    Workload {
        id: "idle-rss".into(),
        title: format!("RSS with {connections} idle connections"),
        protocol: None,
        load: Load::IdleRss { connections },
    }
}

impl Suite {
    /// The suite called `name`, or `None`.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        let secs = Duration::from_secs_f64;
        let (rounds, duration, warmup, workloads) = match name {
            // End-to-end test of the runner: every kind of workload, tiny.
            "smoke" => {
                let mut w = vec![echo(128, 10)];
                w.extend(http_set(10));
                w.push(idle(200));
                (1, secs(0.5), secs(0.2), w)
            }
            // ~5 minutes on 2 cores with a handful of peers.
            "quick" => {
                let mut w = vec![echo(128, 100), echo(4096, 100)];
                w.extend(http_set(100));
                w.push(idle(10_000));
                (3, secs(2.0), secs(0.5), w)
            }
            "full" => {
                let mut w = Vec::new();
                for size in [128, 4096] {
                    for c in [1, 100, 1000] {
                        w.push(echo(size, c));
                    }
                }
                w.extend(http_set(100));
                w.push(idle(10_000));
                // ~30 minutes on 2 cores with the six peers and nginx; use --rounds and
                // --duration for longer runs on a quiet machine.
                (3, secs(5.0), secs(1.0), w)
            }
            _ => return None,
        };
        Some(Self {
            name: name.into(),
            rounds,
            duration,
            warmup,
            workloads,
        })
    }

    /// Keeps the workloads matching one of `filters` (an id, or a prefix ending where a `-`
    /// or a number follows: `echo` keeps every `echo-*`, `http-rate` both fixed rates).
    pub fn retain(&mut self, filters: &[String]) {
        self.workloads.retain(|w| {
            filters.iter().any(|f| {
                w.id.strip_prefix(f.as_str()).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with(|c: char| c == '-' || c.is_ascii_digit())
                })
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_exist_with_unique_ids_and_rate_after_keepalive() {
        for name in ["smoke", "quick", "full"] {
            let s = Suite::named(name).unwrap();
            let ids: Vec<&str> = s.workloads.iter().map(|w| w.id.as_str()).collect();
            let mut dedup = ids.clone();
            dedup.sort_unstable();
            dedup.dedup();
            assert_eq!(dedup.len(), ids.len(), "{name}: {ids:?}");
            let pos = |id: &str| ids.iter().position(|x| *x == id).unwrap();
            assert!(pos("http-keepalive") < pos("http-rate50"));
            assert!(pos("http-keepalive") < pos("http-rate80"));
        }
        assert!(Suite::named("nope").is_none());
        assert_eq!(Suite::named("full").unwrap().workloads.len(), 12);
    }

    #[test]
    fn filter_by_a_prefix_before_a_number() {
        let mut s = Suite::named("quick").unwrap();
        s.retain(&["http-rate".into(), "http-keep".into()]);
        let ids: Vec<&str> = s.workloads.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(ids, ["http-rate50", "http-rate80"]);
    }

    #[test]
    fn filter_by_id_or_prefix() {
        let mut s = Suite::named("full").unwrap();
        s.retain(&["echo-128b".into(), "idle-rss".into()]);
        let ids: Vec<&str> = s.workloads.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "echo-128b-c1",
                "echo-128b-c100",
                "echo-128b-c1000",
                "idle-rss"
            ]
        );
    }
}
