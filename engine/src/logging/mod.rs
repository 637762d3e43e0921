//! Logging that cannot hurt the server: a lossy, non-blocking sink for log lines, a limiter
//! for repeated warnings, and an escaper for peer bytes in log lines.
//!
//! Owns: [`LogSink`] / [`LogWriter`] (lines go through a bounded queue to one writer thread,
//! so a log reader that stopped reading or went away costs lines, never a blocked or
//! panicking core), [`RateLimit`] (the first occurrence of a repeated warning, then at most
//! one per interval with a count of those not logged) and [`escape`] (peer bytes shown as
//! printable ASCII with `\xNN` escapes, cut at a length).
//! Contract: nothing here blocks the calling thread on the log output or panics when the
//! output fails; lost lines are counted ([`LogSink::lost`]) and reported in the log once
//! writing works again.
//! Does not: format events or filter them (the `tracing` subscriber does; the `ringwork`
//! binary plugs a [`LogWriter`] into `tracing-subscriber`'s `fmt` layer).
//! Tests: `tests.rs` (limiter and escaper under a manual clock, the sink on a failing and
//! on a stalled output).

mod sink;

use std::fmt;
use std::time::{Duration, Instant};

pub use self::sink::{DEFAULT_QUEUE_BUDGET, LogSink, LogWriter};

/// Default [`RateLimit`] interval of the engine's repeated warnings
/// ([`ReactorConfig::warning_interval`](crate::ReactorConfig::warning_interval)).
pub const DEFAULT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Limits a repeated log line (one kind of warning at one place) to its first occurrence,
/// then at most one per interval, counting the occurrences not logged.
///
/// Windows are fixed: the first occurrence opens one `interval` long and is logged; later
/// ones in that window are counted; the first after it opens the next window and is logged
/// with the count. Time is an argument, so a core passes its loop clock and tests a manual
/// one.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use ringwork::logging::RateLimit;
/// let mut limit = RateLimit::new(Duration::from_secs(10));
/// let t0 = Instant::now();
/// assert_eq!(limit.hit(t0), Some(0)); // log it
/// assert_eq!(limit.hit(t0 + Duration::from_secs(1)), None); // counted
/// assert_eq!(limit.hit(t0 + Duration::from_secs(2)), None);
/// // Log it, saying 2 more were not logged since the last line.
/// assert_eq!(limit.hit(t0 + Duration::from_secs(10)), Some(2));
/// ```
#[derive(Clone, Debug)]
pub struct RateLimit {
    interval: Duration,
    /// Start of the current window (`None` before the first occurrence).
    window: Option<Instant>,
    /// Occurrences not logged since the last one logged.
    suppressed: u64,
}

impl RateLimit {
    /// A limiter logging at most one occurrence per `interval` (zero: every occurrence).
    #[must_use]
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            window: None,
            suppressed: 0,
        }
    }

    /// The interval.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Counts one occurrence at `now`: `Some(n)` when it is to be logged, `n` being the
    /// occurrences not logged since the last one that was; `None` when it is only counted.
    #[must_use]
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.window {
            Some(start) if now.saturating_duration_since(start) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.window = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Takes the count of occurrences not logged since the last one that was (to report
    /// them when the condition ends, say); the current window stays.
    #[must_use]
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// The limiters of one core's repeated warnings (see
/// [`ReactorConfig::warning_interval`](crate::ReactorConfig::warning_interval)); each
/// warning logs its count in a `suppressed` field.
#[derive(Clone, Debug)]
pub(crate) struct Warnings {
    /// Accepting failed for lack of descriptors or memory.
    pub(crate) accept: RateLimit,
    /// A listener preamble was invalid.
    pub(crate) preamble_invalid: RateLimit,
    /// A peer closed before its preamble ended.
    pub(crate) preamble_eof: RateLimit,
    /// A preamble timed out.
    pub(crate) preamble_timeout: RateLimit,
    /// A protocol (or its factory) panicked.
    pub(crate) panic: RateLimit,
}

impl Warnings {
    pub(crate) fn new(interval: Duration) -> Self {
        let limit = RateLimit::new(interval);
        Self {
            accept: limit.clone(),
            preamble_invalid: limit.clone(),
            preamble_eof: limit.clone(),
            preamble_timeout: limit.clone(),
            panic: limit,
        }
    }
}

/// Longest run of bytes [`escape`] shows; the rest is summarised by its length.
pub const ESCAPE_LIMIT: usize = 256;

/// Peer bytes made safe for a log line: printable ASCII stays, a backslash becomes `\\`,
/// every other byte (control bytes, CR/LF, ESC, non-ASCII) becomes `\xNN`, and past
/// [`ESCAPE_LIMIT`] bytes the rest is replaced by `...(N more bytes)`. So a peer can neither
/// forge log lines, nor send terminal escapes, nor make one line long.
///
/// ```
/// # use ringwork::logging::escape;
/// assert_eq!(escape(b"a\r\nb\x1b[31m\\").to_string(), r"a\x0d\x0ab\x1b[31m\\");
/// ```
#[must_use]
pub fn escape(bytes: &[u8]) -> Escaped<'_> {
    Escaped {
        bytes,
        limit: ESCAPE_LIMIT,
    }
}

/// The [`fmt::Display`] of [`escape`].
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a> {
    bytes: &'a [u8],
    limit: usize,
}

impl Escaped<'_> {
    /// Shows up to `limit` bytes instead of [`ESCAPE_LIMIT`] (for bytes already bounded
    /// elsewhere, such as a request target under the request-head limit).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.bytes[..self.bytes.len().min(self.limit)];
        // Runs of plain bytes are written whole; only the others are escaped one by one.
        let mut start = 0;
        for (i, &byte) in shown.iter().enumerate() {
            if is_plain(byte) {
                continue;
            }
            f.write_str(ascii(&shown[start..i]))?;
            if byte == b'\\' {
                f.write_str("\\\\")?;
            } else {
                write!(f, "\\x{byte:02x}")?;
            }
            start = i + 1;
        }
        f.write_str(ascii(&shown[start..]))?;
        if self.bytes.len() > shown.len() {
            write!(f, "...({} more bytes)", self.bytes.len() - shown.len())?;
        }
        Ok(())
    }
}

/// Printable ASCII other than the backslash.
fn is_plain(byte: u8) -> bool {
    (0x20..0x7f).contains(&byte) && byte != b'\\'
}

/// A run of [`is_plain`] bytes as text.
fn ascii(run: &[u8]) -> &str {
    // Printable ASCII is always UTF-8; the fallback is never taken.
    std::str::from_utf8(run).unwrap_or("")
}

#[cfg(test)]
mod tests;
