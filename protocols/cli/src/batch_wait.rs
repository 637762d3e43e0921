//! `serve dns --batch-wait N,DELAY`: each core's io_uring wait returns after N completions or
//! DELAY, whichever comes first ([`BatchWait`]), so a server under moderate load makes fewer,
//! larger turns (fewer wake-ups and system calls per query) for up to DELAY of latency.
//!
//! Owns: the flag, its parsing and checking, and the driver setting it makes.

use std::time::Duration;

use clap::Args;
use ringwork::platform::{BatchWait, DriverConfig};

/// The flag.
#[derive(Clone, Debug, Default, Args)]
pub(crate) struct BatchWaitArgs {
    /// dns: let each core's wait gather up to N completions for at most DELAY (`16,100us`,
    /// `32,1ms`; a bare number is microseconds) before it handles them: fewer, larger turns
    /// under moderate load, for up to DELAY more latency when traffic is light. io_uring on
    /// Linux 6.12 or later; ignored by the poll backend (see docs/dns.md).
    #[arg(long, value_name = "N,DELAY", value_parser = parse_batch_wait)]
    batch_wait: Option<BatchWait>,
}

impl BatchWaitArgs {
    /// `config` with the flag's setting, if given.
    pub(crate) fn driver_config(&self, config: DriverConfig) -> DriverConfig {
        DriverConfig {
            batch_wait: self.batch_wait.or(config.batch_wait),
            ..config
        }
    }
}

/// Parses `N,DELAY` (DELAY: `100us`, `100µs`, `1ms`, or a bare number of microseconds).
fn parse_batch_wait(text: &str) -> Result<BatchWait, String> {
    let (count, delay) = text
        .split_once(',')
        .ok_or_else(|| format!("{text:?} is not N,DELAY (`16,100us`)"))?;
    let min_completions: u32 = match count.trim().parse() {
        Ok(n) if n >= 1 => n,
        _ => {
            return Err(format!(
                "{count:?} is not a number of completions (1 or more)"
            ));
        }
    };
    let delay = delay.trim();
    let (digits, unit) = if let Some(ms) = delay.strip_suffix("ms") {
        (ms, Duration::from_millis(1))
    } else if let Some(us) = delay
        .strip_suffix("us")
        .or_else(|| delay.strip_suffix("µs"))
    {
        (us, Duration::from_micros(1))
    } else {
        (delay, Duration::from_micros(1))
    };
    let max_wait = digits
        .trim()
        .parse::<u32>()
        .ok()
        .map(|n| unit * n)
        .filter(|d| *d <= BatchWait::MAX_WAIT)
        .ok_or_else(|| format!("{delay:?} is not a delay of at most 1s (`100us`, `1ms`)"))?;
    Ok(BatchWait {
        min_completions,
        max_wait,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_delays_parse() {
        let wait = |n, us| BatchWait {
            min_completions: n,
            max_wait: Duration::from_micros(us),
        };
        assert_eq!(parse_batch_wait("16,100us"), Ok(wait(16, 100)));
        assert_eq!(parse_batch_wait("16, 100µs"), Ok(wait(16, 100)));
        assert_eq!(parse_batch_wait("32,2ms"), Ok(wait(32, 2000)));
        assert_eq!(parse_batch_wait("8,50"), Ok(wait(8, 50)));
        for bad in [
            "16",
            "0,100us",
            "x,100us",
            "16,2s",
            "16,1001ms",
            "16,-1",
            "16,",
        ] {
            assert!(parse_batch_wait(bad).is_err(), "{bad} parsed");
        }
    }
}
