//! The peer comparison runner behind `cargo run --release -p ringwork-benches --bin compare`
//! (issue 7): ringwork against the servers of `benches/peers/peers.toml`, interleaved, pinned,
//! measured by ringwork-load (and wrk as a cross-check), with server CPU per request and RSS.
//!
//! Modules, bottom-up:
//! - [`stats`]: median/min/max, ratios, the ranking check;
//! - [`procfs`]: `/proc` parsers (CPU ticks, RSS, sockets, limits, machine);
//! - [`manifest`]: the peers manifest;
//! - [`suite`]: workloads and the `smoke`/`quick`/`full` suites;
//! - [`server`]: start (pinned), wait for the port, stop (TERM, then KILL);
//! - [`load`]: ringwork-load and wrk runs, with the server's CPU over the measured window;
//! - [`idle`]: RSS with N idle connections;
//! - [`runner`]: the interleaved procedure;
//! - [`results`], [`markdown`], [`plot`]: results.json, results.md, the SVGs.
//!
//! Linux only (`/proc`, `taskset`). See benches/README.md, "Comparison runner".

pub mod idle;
pub mod load;
pub mod manifest;
pub mod markdown;
pub mod plot;
pub mod procfs;
pub mod results;
pub mod runner;
pub mod server;
pub mod stats;
pub mod suite;

#[cfg(test)]
mod fixtures;

/// Parses a CPU list (`1`, `0,2-3`) into CPU numbers.
///
/// # Errors
/// A message for an empty, malformed or reversed list.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let bad = || format!("{text:?} is not a CPU list like 0 or 0,2-3");
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (usize, usize) =
                (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a > b {
                return Err(bad());
            }
            cpus.extend(a..=b);
        } else {
            cpus.push(part.parse().map_err(|_| bad())?);
        }
    }
    Ok(cpus)
}

/// The default split of `n` CPUs: (server, load generator). One CPU: both on 0; two: 0 and
/// 1; more: the lower half for the server, the upper half for the load.
#[must_use]
pub fn default_cpu_split(n: usize) -> (String, String) {
    match n {
        0 | 1 => ("0".into(), "0".into()),
        2 => ("0".into(), "1".into()),
        _ => (format!("0-{}", n / 2 - 1), format!("{}-{}", n / 2, n - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_and_default_split() {
        assert_eq!(parse_cpu_list("1"), Ok(vec![1]));
        assert_eq!(parse_cpu_list("0,2-3"), Ok(vec![0, 2, 3]));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("").is_err());
        assert_eq!(default_cpu_split(2), ("0".to_string(), "1".to_string()));
        assert_eq!(default_cpu_split(8), ("0-3".to_string(), "4-7".to_string()));
        assert_eq!(default_cpu_split(1), ("0".to_string(), "0".to_string()));
    }
}
