//! The result of a run: counters, errors by kind, the latency histogram; JSON in and out,
//! exact merging, and the human summary.
//!
//! JSON schema: see `docs/loadtest.md`. Latencies are microseconds. The histogram travels as
//! HdrHistogram V2 + DEFLATE, base64 (`histogram_encoding: "hdr-v2-deflate-base64"`), the
//! format every HdrHistogram implementation reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// Highest latency the histogram tracks exactly (one hour, in microseconds); larger values
/// are clamped to it.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The histogram encoding the reports use.
pub const HISTOGRAM_ENCODING: &str = "hdr-v2-deflate-base64";

/// A fresh latency histogram (1 µs .. 1 h, 3 significant digits).
#[must_use]
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that satisfy the constructor's rules (low >= 1, high >= 2 * low,
    // sigfig <= 5): it cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant, valid bounds")
}

/// The kinds of error a run counts.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The target refused the connection (nothing listening).
    ConnectRefused,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// Connecting failed otherwise (unreachable, out of descriptors...).
    ConnectError,
    /// The peer reset an established connection.
    Reset,
    /// A request got no response within `--timeout` (UDP: a lost datagram).
    Timeout,
    /// The response could not be parsed, or did not match what was sent.
    BadResponse,
    /// The peer closed the connection while responses were outstanding.
    UnexpectedClose,
    /// Any other socket error.
    Other,
    /// The TLS handshake failed (certificate not trusted, no common protocol or suite,
    /// handshake timeout), or a TLS error ended the connection.
    Tls,
}

/// Error counts by kind (the JSON `errors` object).
#[derive(Clone, Debug, Default, Deserialize, Eq, PartialEq, Serialize)]
#[allow(missing_docs)] // One field per `ErrorKind`, documented there.
pub struct Errors {
    pub connect_refused: u64,
    pub connect_timeout: u64,
    pub connect_error: u64,
    pub reset: u64,
    pub timeout: u64,
    pub bad_response: u64,
    pub unexpected_close: u64,
    pub other: u64,
    #[serde(default)]
    pub tls: u64,
}

impl Errors {
    /// Adds `n` errors of `kind`.
    pub fn add(&mut self, kind: ErrorKind, n: u64) {
        *self.slot(kind) += n;
    }

    fn slot(&mut self, kind: ErrorKind) -> &mut u64 {
        match kind {
            ErrorKind::ConnectRefused => &mut self.connect_refused,
            ErrorKind::ConnectTimeout => &mut self.connect_timeout,
            ErrorKind::ConnectError => &mut self.connect_error,
            ErrorKind::Reset => &mut self.reset,
            ErrorKind::Timeout => &mut self.timeout,
            ErrorKind::BadResponse => &mut self.bad_response,
            ErrorKind::UnexpectedClose => &mut self.unexpected_close,
            ErrorKind::Other => &mut self.other,
            ErrorKind::Tls => &mut self.tls,
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Errors) {
        for (kind, n) in other.iter() {
            self.add(kind, n);
        }
    }

    /// Every kind with its count (JSON names via [`ErrorKind::name`]).
    #[must_use]
    pub fn iter(&self) -> [(ErrorKind, u64); 9] {
        [
            (ErrorKind::ConnectRefused, self.connect_refused),
            (ErrorKind::ConnectTimeout, self.connect_timeout),
            (ErrorKind::ConnectError, self.connect_error),
            (ErrorKind::Reset, self.reset),
            (ErrorKind::Timeout, self.timeout),
            (ErrorKind::BadResponse, self.bad_response),
            (ErrorKind::UnexpectedClose, self.unexpected_close),
            (ErrorKind::Other, self.other),
            (ErrorKind::Tls, self.tls),
        ]
    }

    /// All errors.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.iter().iter().map(|(_, n)| n).sum()
    }
}

impl ErrorKind {
    /// The JSON field name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::ConnectError => "connect_error",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::UnexpectedClose => "unexpected_close",
            ErrorKind::Other => "other",
            ErrorKind::Tls => "tls",
        }
    }
}

/// Latency summary, microseconds (the JSON `latency_us` object).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
#[allow(missing_docs)] // Percentile names say it all.
pub struct Latency {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
    pub mean: f64,
    pub stdev: f64,
}

impl Latency {
    /// The summary of `h`.
    #[must_use]
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
            mean: h.mean(),
            stdev: h.stdev(),
        }
    }
}

/// One run's results (or several merged), as written by `--json`.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Report {
    /// `tcp`, `http`, `udp`, ... (merged reports share it: `merge` refuses others).
    pub workload: String,
    /// What was loaded (URL or address).
    pub target: String,
    /// Connections (UDP: flows), summed over merged runs.
    pub connections: u64,
    /// Reactor threads used, summed over merged runs.
    pub cores: u64,
    /// Target rate, requests/s (absent: closed loop), summed over merged runs.
    pub target_rate: Option<f64>,
    /// Measured period (after warm-up), seconds; the longest of merged runs.
    pub duration_s: f64,
    /// Responses completed in the measured period.
    pub requests: u64,
    /// `requests / duration_s` (merged runs: their summed `requests` over the longest
    /// `duration_s`).
    pub rps: f64,
    /// Requests sent in the measured period (achieved send rate = `sent / duration_s`).
    pub sent: u64,
    /// Completed responses that reported failure (HTTP: status not 2xx; DNS: an error
    /// response code or a truncated answer).
    pub unsuccessful: u64,
    /// Completed responses by class, for workloads that label them (DNS: by response
    /// code, `NOERROR`, `NXDOMAIN`, `SERVFAIL`, ..., and `TRUNCATED`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub responses: BTreeMap<String, u64>,
    /// Bytes received in the measured period.
    pub bytes_in: u64,
    /// Bytes sent in the measured period.
    pub bytes_out: u64,
    /// Received bulk throughput: `bytes_in / duration_s / 1e6` (MB/s, decimal; for TLS the
    /// decrypted payload); merged runs: summed bytes over the longest `duration_s`.
    #[serde(default)]
    pub in_mb_per_sec: f64,
    /// TLS runs: handshakes completed in the measured period (each new connection makes
    /// one; with `--reconnect-every 1`, one per request).
    #[serde(default)]
    pub tls_handshakes: u64,
    /// TLS runs: of `tls_handshakes`, how many resumed a session (no certificate sent).
    #[serde(default)]
    pub tls_resumed: u64,
    /// TLS runs: `tls_handshakes / duration_s` (merged runs: as `rps`).
    #[serde(default)]
    pub handshakes_per_sec: f64,
    /// TLS runs: what the first handshake negotiated (`TLSv1.3 TLS13_AES_128_GCM_SHA256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_session: Option<String>,
    /// Errors by kind.
    pub errors: Errors,
    /// One example message per error kind that occurred.
    #[serde(default)]
    pub error_samples: BTreeMap<String, String>,
    /// Load-generator callbacks that panicked (a bug in ringwork-load; the figures are
    /// suspect when this is not 0).
    #[serde(default)]
    pub panics: u64,
    /// Latency summary, microseconds.
    pub latency_us: Latency,
    /// Encoding of `histogram` (always [`HISTOGRAM_ENCODING`]).
    pub histogram_encoding: String,
    /// The latency histogram (microseconds), encoded.
    pub histogram: String,
    /// Constant-rate runs only: latency measured from the *actual* send time, as an
    /// uncorrected tool would report it (for comparison; see docs/loadtest.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncorrected_latency_us: Option<Latency>,
    /// The uncorrected histogram, encoded like `histogram`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncorrected_histogram: Option<String>,
    /// Constant-rate HTTP/TCP/WebSocket runs only: how late the generator itself sent the
    /// requests whose connection was free when their slot fell due (µs after the slot: the
    /// wake-up of its timer and the turn before it). What the generator adds to the
    /// corrected latency; the rest is the server's, the network's and the scheduler's on
    /// the server's side. Not kept by `merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_us: Option<Latency>,
    /// Constant-rate runs with `--send-window`: the grouping window, µs. Sends were grouped
    /// on a grid of this width (one wake-up for every slot in a cell), so a request went
    /// out up to this long before its slot, and was then timed from its actual send.
    /// Merged runs: the largest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_window_us: Option<u64>,
    /// The generator's own reactor work over the whole run (warm-up included): how many
    /// loop turns, kernel enters and completions its cores needed, and for how many
    /// responses. Per response, that is the batching the generator achieved (several
    /// responses in one enter, or each its own). Merged runs: summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<EngineCounts>,
    /// How many runs were merged into this report (1 for a single run).
    pub runs: u64,
}

/// A report could not be read or merged. The Display text is lowercase and unstable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The JSON is not a report.
    #[error("not a ringwork-load report: {0}")]
    Json(#[from] serde_json::Error),
    /// The histogram field cannot be decoded.
    #[error("bad histogram: {0}")]
    Histogram(String),
    /// Nothing to merge.
    #[error("no reports to merge")]
    Empty,
    /// The reports are of different runs: merged, their figures would mean nothing.
    #[error("reports differ in {what}: {first:?} (first report) vs {other:?} (report {index})")]
    Mismatch {
        /// The field that differs (`workload`, `target`, or `rate mode`).
        what: &'static str,
        /// Its value in the first report.
        first: String,
        /// Its value in the report that differs.
        other: String,
        /// Which report differs (1-based, in the order given).
        index: usize,
    },
}

/// The generator's reactor statistics over a whole run ([`Report::generator`]).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct EngineCounts {
    /// Responses completed (all of the run, warm-up included).
    pub responses: u64,
    /// Reactor loop turns.
    pub turns: u64,
    /// Kernel enters (`io_uring_enter` / `epoll_wait`).
    pub enters: u64,
    /// Completions reaped from the kernel.
    pub completions: u64,
}

impl EngineCounts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &EngineCounts) {
        self.responses += other.responses;
        self.turns += other.turns;
        self.enters += other.enters;
        self.completions += other.completions;
    }
}

/// The fixed facts of a run, for [`Report::new`].
#[derive(Clone, Debug)]
#[allow(missing_docs)] // Same meaning as the Report fields.
pub struct RunFacts {
    pub workload: String,
    pub target: String,
    pub connections: u64,
    pub cores: u64,
    pub target_rate: Option<f64>,
    pub duration_s: f64,
}

/// Counters of a run (per core, then summed).
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)] // Same meaning as the Report fields.
pub struct Counters {
    pub requests: u64,
    pub sent: u64,
    pub unsuccessful: u64,
    pub responses: BTreeMap<String, u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
    pub tls_session: Option<String>,
    pub errors: Errors,
    pub error_samples: BTreeMap<String, String>,
    pub panics: u64,
}

impl Counters {
    /// Counts one error with an example message (the first of each kind is kept).
    pub fn error(&mut self, kind: ErrorKind, n: u64, sample: impl FnOnce() -> String) {
        self.errors.add(kind, n);
        self.error_samples
            .entry(kind.name().to_string())
            .or_insert_with(sample);
    }

    /// Counts `n` completed responses of `class` (no allocation once the class is known).
    pub fn count_class(&mut self, class: &str, n: u64) {
        match self.responses.get_mut(class) {
            Some(count) => *count += n,
            None => {
                self.responses.insert(class.to_string(), n);
            }
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: Counters) {
        self.requests += other.requests;
        self.sent += other.sent;
        self.unsuccessful += other.unsuccessful;
        for (class, n) in other.responses {
            *self.responses.entry(class).or_default() += n;
        }
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.tls_handshakes += other.tls_handshakes;
        self.tls_resumed += other.tls_resumed;
        if self.tls_session.is_none() {
            self.tls_session = other.tls_session;
        }
        self.panics += other.panics;
        self.errors.merge(&other.errors);
        for (k, v) in other.error_samples {
            self.error_samples.entry(k).or_insert(v);
        }
    }
}

/// Encodes `h` as V2 + DEFLATE, base64.
#[must_use]
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut raw = Vec::new();
    // Serializing into a Vec cannot fail for a histogram of u64 counts.
    if V2DeflateSerializer::new().serialize(h, &mut raw).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Decodes [`encode_histogram`]'s output (plain V2 is accepted too).
///
/// # Errors
/// Not base64, or not a V2 histogram.
pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, ReportError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| ReportError::Histogram(e.to_string()))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(raw))
        .map_err(|e| ReportError::Histogram(format!("{e:?}")))?;
    // Re-home into our bounds so merges never fail on a narrower range.
    let mut wide = new_histogram();
    wide.add(&h)
        .map_err(|e| ReportError::Histogram(format!("{e:?}")))?;
    Ok(wide)
}

impl Report {
    /// A report from a run's facts, counters and histogram.
    #[must_use]
    pub fn new(
        facts: RunFacts,
        counters: Counters,
        h: &Histogram<u64>,
        uncorrected: Option<&Histogram<u64>>,
    ) -> Self {
        let per_sec = |n: u64| {
            if facts.duration_s > 0.0 {
                n as f64 / facts.duration_s
            } else {
                0.0
            }
        };
        let rps = per_sec(counters.requests);
        Self {
            workload: facts.workload,
            target: facts.target,
            connections: facts.connections,
            cores: facts.cores,
            target_rate: facts.target_rate,
            duration_s: facts.duration_s,
            requests: counters.requests,
            rps,
            sent: counters.sent,
            unsuccessful: counters.unsuccessful,
            responses: counters.responses,
            bytes_in: counters.bytes_in,
            bytes_out: counters.bytes_out,
            in_mb_per_sec: per_sec(counters.bytes_in) / 1e6,
            tls_handshakes: counters.tls_handshakes,
            tls_resumed: counters.tls_resumed,
            handshakes_per_sec: per_sec(counters.tls_handshakes),
            tls_session: counters.tls_session,
            errors: counters.errors,
            error_samples: counters.error_samples,
            panics: counters.panics,
            latency_us: Latency::of(h),
            histogram_encoding: HISTOGRAM_ENCODING.to_string(),
            histogram: encode_histogram(h),
            uncorrected_latency_us: uncorrected.map(Latency::of),
            uncorrected_histogram: uncorrected.map(encode_histogram),
            send_lag_us: None,
            send_window_us: None,
            generator: None,
            runs: 1,
        }
    }

    /// This report with the send lag of a constant-rate run (`send_lag_us`), when `lag`
    /// recorded anything.
    #[must_use]
    pub fn with_send_lag(mut self, lag: Option<&Histogram<u64>>) -> Self {
        self.send_lag_us = lag.filter(|h| !h.is_empty()).map(Latency::of);
        self
    }

    /// This report with the generator's reactor statistics ([`Report::generator`]).
    #[must_use]
    pub fn with_generator(mut self, counts: EngineCounts) -> Self {
        self.generator = Some(counts);
        self
    }

    /// This report with the send window of a constant-rate run (`send_window_us`), when
    /// sends were grouped (`window` not zero).
    #[must_use]
    pub fn with_send_window(mut self, window: Duration) -> Self {
        let us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        self.send_window_us = (self.target_rate.is_some() && !window.is_zero()).then_some(us);
        self
    }

    /// Reads a report from JSON.
    ///
    /// # Errors
    /// Not a report.
    pub fn from_json(json: &str) -> Result<Self, ReportError> {
        Ok(serde_json::from_str(json)?)
    }

    /// The report as pretty JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and maps with string keys always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The decoded latency histogram.
    ///
    /// # Errors
    /// The `histogram` field is corrupt.
    pub fn histogram(&self) -> Result<Histogram<u64>, ReportError> {
        decode_histogram(&self.histogram)
    }

    /// Merges reports of runs that ran **concurrently** (several machines or processes
    /// loading one target at once): histograms are added exactly, counts and rates add,
    /// the duration is the longest.
    ///
    /// # Errors
    /// No reports, or a corrupt histogram.
    pub fn merge(reports: &[Report]) -> Result<Report, ReportError> {
        let first = reports.first().ok_or(ReportError::Empty)?;
        for (index, r) in reports.iter().enumerate().skip(1) {
            let mismatch = |what, first: &dyn ToString, other: &dyn ToString| {
                Err(ReportError::Mismatch {
                    what,
                    first: first.to_string(),
                    other: other.to_string(),
                    index: index + 1,
                })
            };
            if r.workload != first.workload {
                return mismatch("workload", &first.workload, &r.workload);
            }
            if r.target != first.target {
                return mismatch("target", &first.target, &r.target);
            }
            let mode = |r: &Report| {
                if r.target_rate.is_some() {
                    "constant rate"
                } else {
                    "closed loop"
                }
            };
            if mode(r) != mode(first) {
                return mismatch("rate mode", &mode(first), &mode(r));
            }
        }
        let mut h = new_histogram();
        let mut uncorrected = reports
            .iter()
            .all(|r| r.uncorrected_histogram.is_some())
            .then(new_histogram);
        let mut counters = Counters::default();
        let mut merged = first.clone();
        merged.connections = 0;
        merged.cores = 0;
        merged.target_rate = None;
        merged.duration_s = 0.0;
        merged.rps = 0.0;
        merged.in_mb_per_sec = 0.0;
        merged.handshakes_per_sec = 0.0;
        merged.runs = 0;
        for r in reports {
            h.add(r.histogram()?)
                .map_err(|e| ReportError::Histogram(format!("{e:?}")))?;
            if let (Some(u), Some(encoded)) = (&mut uncorrected, &r.uncorrected_histogram) {
                u.add(decode_histogram(encoded)?)
                    .map_err(|e| ReportError::Histogram(format!("{e:?}")))?;
            }
            counters.merge(Counters {
                requests: r.requests,
                sent: r.sent,
                unsuccessful: r.unsuccessful,
                responses: r.responses.clone(),
                bytes_in: r.bytes_in,
                bytes_out: r.bytes_out,
                tls_handshakes: r.tls_handshakes,
                tls_resumed: r.tls_resumed,
                tls_session: r.tls_session.clone(),
                errors: r.errors.clone(),
                error_samples: r.error_samples.clone(),
                panics: r.panics,
            });
            merged.connections += r.connections;
            merged.cores += r.cores;
            merged.target_rate = match (merged.target_rate, r.target_rate) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            merged.duration_s = merged.duration_s.max(r.duration_s);
            merged.runs += r.runs;
        }
        // Every rate over the one merged period (the longest run's), from the summed counts:
        // completed/s never exceeds sent/s, as summing each run's own rate could when the
        // periods differ.
        let secs = merged.duration_s.max(1e-9);
        merged.rps = counters.requests as f64 / secs;
        merged.in_mb_per_sec = counters.bytes_in as f64 / secs / 1e6;
        merged.handshakes_per_sec = counters.tls_handshakes as f64 / secs;
        merged.requests = counters.requests;
        merged.sent = counters.sent;
        merged.unsuccessful = counters.unsuccessful;
        merged.responses = counters.responses;
        merged.bytes_in = counters.bytes_in;
        merged.bytes_out = counters.bytes_out;
        merged.tls_handshakes = counters.tls_handshakes;
        merged.tls_resumed = counters.tls_resumed;
        merged.tls_session = counters.tls_session;
        merged.errors = counters.errors;
        merged.error_samples = counters.error_samples;
        merged.panics = counters.panics;
        merged.latency_us = Latency::of(&h);
        merged.histogram = encode_histogram(&h);
        merged.uncorrected_latency_us = uncorrected.as_ref().map(Latency::of);
        merged.uncorrected_histogram = uncorrected.as_ref().map(encode_histogram);
        merged.send_lag_us = None;
        merged.send_window_us = reports.iter().filter_map(|r| r.send_window_us).max();
        merged.generator = reports
            .iter()
            .filter_map(|r| r.generator)
            .reduce(|mut a, b| {
                a.add(&b);
                a
            });
        Ok(merged)
    }

    /// The human summary table.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let mode = match self.target_rate {
            Some(r) => format!("constant rate {r:.0}/s, latency from intended send time"),
            None => "closed loop".to_string(),
        };
        let _ = writeln!(
            s,
            "{} {}: {} connections, {} cores, {:.2} s measured, {mode}",
            self.workload, self.target, self.connections, self.cores, self.duration_s
        );
        let l = &self.latency_us;
        let _ = writeln!(
            s,
            "  latency    {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "mean", "stdev", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        );
        latency_row(&mut s, "", l, "");
        if let Some(u) = &self.uncorrected_latency_us {
            latency_row(&mut s, "uncorr.", u, "  (from actual send; for comparison)");
        }
        if let Some(g) = &self.send_lag_us {
            latency_row(&mut s, "send lag", g, "  (the generator's own lateness)");
        }
        let secs = self.duration_s.max(1e-9);
        let _ = writeln!(
            s,
            "  requests   {} completed, {:.1}/s; {} sent ({:.1}/s){}",
            self.requests,
            self.rps,
            self.sent,
            self.sent as f64 / secs,
            if self.unsuccessful > 0 && self.responses.is_empty() {
                format!("; {} unsuccessful (non-2xx)", self.unsuccessful)
            } else if self.unsuccessful > 0 {
                format!("; {} unsuccessful", self.unsuccessful)
            } else {
                String::new()
            }
        );
        if !self.responses.is_empty() {
            let total: u64 = self.responses.values().sum();
            let classes: Vec<String> = self
                .responses
                .iter()
                .map(|(class, &n)| {
                    format!(
                        "{class} {n} ({:.1}%)",
                        n as f64 * 100.0 / total.max(1) as f64
                    )
                })
                .collect();
            let _ = writeln!(s, "  responses  {}", classes.join(", "));
        }
        if let Some(rate) = self.target_rate {
            let _ = writeln!(
                s,
                "  rate       target {rate:.1}/s, achieved {:.1}/s{}",
                self.rps,
                match self.send_window_us {
                    Some(w) => format!("; sends grouped in {w} µs windows (up to {w} µs early)"),
                    None => String::new(),
                }
            );
        }
        let _ = writeln!(
            s,
            "  transfer   {} in ({}/s = {:.2} MB/s), {} out ({}/s)",
            bytes(self.bytes_in as f64),
            bytes(self.bytes_in as f64 / secs),
            self.in_mb_per_sec,
            bytes(self.bytes_out as f64),
            bytes(self.bytes_out as f64 / secs)
        );
        if let Some(g) = &self.generator
            && g.responses > 0
        {
            let per = |n: u64| n as f64 / g.responses as f64;
            let _ = writeln!(
                s,
                "  generator  {:.2} turns, {:.2} enters, {:.2} completions per response \
                 (whole run)",
                per(g.turns),
                per(g.enters),
                per(g.completions)
            );
        }
        if let Some(session) = &self.tls_session {
            let _ = writeln!(
                s,
                "  tls        {} handshakes ({:.1}/s), {} resumed, {} full; {session}",
                self.tls_handshakes,
                self.handshakes_per_sec,
                self.tls_resumed,
                self.tls_handshakes - self.tls_resumed.min(self.tls_handshakes)
            );
        }
        if self.panics > 0 {
            let _ = writeln!(
                s,
                "  WARNING    {} load-generator callbacks panicked: figures are suspect (a bug)",
                self.panics
            );
        }
        if self.errors.total() == 0 {
            let _ = writeln!(s, "  errors     none");
        } else {
            let _ = writeln!(s, "  errors     {}", self.errors.total());
            for (kind, n) in self.errors.iter() {
                if n > 0 {
                    let sample = self
                        .error_samples
                        .get(kind.name())
                        .map(|m| format!(" (e.g. {m})"))
                        .unwrap_or_default();
                    let _ = writeln!(s, "    {:<17} {n}{sample}", kind.name());
                }
            }
        }
        s
    }
}

/// One row of the latency table: `label`, then mean, stdev and the percentiles, then `note`.
fn latency_row(s: &mut String, label: &str, l: &Latency, note: &str) {
    let _ = writeln!(
        s,
        "  {label:<8}   {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}{note}",
        us(l.mean as u64),
        us(l.stdev as u64),
        us(l.p50),
        us(l.p90),
        us(l.p99),
        us(l.p999),
        us(l.p9999),
        us(l.max)
    );
}

fn us(v: u64) -> String {
    if v >= 1_000_000 {
        format!("{:.2}s", v as f64 / 1e6)
    } else if v >= 1_000 {
        format!("{:.2}ms", v as f64 / 1e3)
    } else {
        format!("{v}us")
    }
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
