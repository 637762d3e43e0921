//! ringwork-benches: benchmarks only; nothing depends on this crate.
//!
//! - `examples/driver_echo.rs`: the bare echo server on the platform driver alone (no engine),
//!   the ceiling later layers are measured against.
//! - `examples/echo_load.rs`: a closed-loop echo load client on the platform driver.
//! - `scripts/driver_echo_bench.sh`: runs the two, interleaving backends, and prints a table;
//!   `scripts/engine_vs_driver_echo.sh` interleaves the engine's echo example with
//!   `driver_echo` instead.
//! - `benches/http_parse.rs` (criterion): HTTP/1.1 request and response heads and a chunked
//!   body; `benches/framing.rs`: the line, netstring and length-prefixed decoders.
//! - `src/bin/compare.rs` and [`compare`]: the side-by-side peer comparison runner (issue 7).
//!
//! Besides [`compare`], this library holds only the small helpers the examples share (CPU
//! pinning, duration parsing, logging set-up).
#![forbid(unsafe_code)]

pub mod compare;

use std::io::IsTerminal;
use std::time::Duration;

/// Why [`pin_to_cpu`] could not pin the calling thread.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The OS did not report its CPUs.
    #[error("cannot list this machine's CPUs")]
    NoCpuList,
    /// No CPU has that index.
    #[error("no CPU {cpu} (CPUs available to this process: {available:?})")]
    NoSuchCpu {
        /// The CPU asked for.
        cpu: usize,
        /// The CPUs the OS reported.
        available: Vec<usize>,
    },
    /// The OS refused to set the affinity.
    #[error("setting the affinity to CPU {cpu} failed")]
    Refused {
        /// The CPU asked for.
        cpu: usize,
    },
}

/// Pins the calling thread to CPU `cpu` (an index as `taskset -c` counts them).
///
/// # Errors
/// [`PinError`] when the CPU does not exist or the OS refuses.
pub fn pin_to_cpu(cpu: usize) -> Result<(), PinError> {
    let cores = core_affinity::get_core_ids().ok_or(PinError::NoCpuList)?;
    let Some(core) = cores.iter().copied().find(|core| core.id == cpu) else {
        return Err(PinError::NoSuchCpu {
            cpu,
            available: cores.iter().map(|core| core.id).collect(),
        });
    };
    if core_affinity::set_for_current(core) {
        Ok(())
    } else {
        Err(PinError::Refused { cpu })
    }
}

/// Parses a number of seconds (`10`, `2.5`) into a [`Duration`], for command-line options.
///
/// # Errors
/// A message when the text is not a finite, non-negative number of seconds.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a valid duration"))
}

/// Sends `tracing` events (such as the driver's io_uring fallback line) to stderr, filtered by
/// `RUST_LOG` (default: warnings and errors).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // `try_init` fails only if a subscriber is already installed, which is then kept.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_secs_accepts_whole_and_fractional_seconds() {
        assert_eq!(parse_secs("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_secs(" 2.5 "), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_secs("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn parse_secs_rejects_garbage_negative_and_infinite() {
        for bad in ["", "ten", "-1", "inf", "NaN", "1e30"] {
            assert!(parse_secs(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
