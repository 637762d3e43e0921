//! Per-core HTTP counters for metrics: responses by status class, a request-time histogram
//! and the reverse proxy's upstream errors.
//!
//! Owns: [`HttpMetrics`], the counters one core's HTTP servers (and reverse proxies) add
//! to, and [`HttpSnapshot`], a plain copy of them that can cross threads and be merged.
//! Contract: counting is a few `Cell` additions on the core that serves the request (no
//! lock, no atomic, no allocation); whoever exports them asks each core for a
//! [`HttpMetrics::snapshot`] (a cross-core message) and [`HttpSnapshot::merge`]s them.
//! Does not: format anything (the exporter writes Prometheus text) or keep time (the
//! server passes each request's duration).

use std::cell::{Cell, RefCell};
use std::time::Duration;

/// The upper bounds of the request-time histogram's buckets, in microseconds (Prometheus's
/// default buckets from 0.5 ms to 10 s; a last `+Inf` bucket is implied).
pub const DURATION_BUCKETS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// The counters of one core's HTTP servers: share one `Rc<HttpMetrics>` among the servers
/// of a core ([`HttpServer::with_metrics`](crate::http::server::HttpServer::with_metrics)).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Responses sent, by status class: index 0 for 1xx .. 4 for 5xx.
    responses: [Cell<u64>; 5],
    /// Requests by request time, bucket `i` counting those at most
    /// `DURATION_BUCKETS_MICROS[i]` (and above the bucket before); the last one, the rest.
    buckets: [Cell<u64>; DURATION_BUCKETS_MICROS.len() + 1],
    /// The sum of request times, in microseconds.
    duration_sum_micros: Cell<u64>,
    /// Answers the reverse proxy made itself, or cut, because its upstream failed, by pool
    /// name (bounded by the configuration's pools) and kind.
    upstream_errors: RefCell<Vec<UpstreamErrors>>,
}

/// One pool's and kind's count of upstream errors.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UpstreamErrors {
    /// The upstream pool's name (the configuration's).
    pub pool: String,
    /// What the client got: `"502"`, `"504"`, or `"truncated"` (the upstream failed after
    /// the response head).
    pub kind: &'static str,
    /// How many.
    pub count: u64,
}

impl HttpMetrics {
    /// Counters at zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one response with `status`, and its request time if known (`None` for an
    /// error reply to input that never became a request).
    pub fn record(&self, status: u16, duration: Option<Duration>) {
        if let Some(class) = (status / 100).checked_sub(1)
            && let Some(cell) = self.responses.get(usize::from(class))
        {
            cell.set(cell.get() + 1);
        }
        if let Some(duration) = duration {
            let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
            let bucket = DURATION_BUCKETS_MICROS
                .iter()
                .position(|bound| micros <= *bound)
                .unwrap_or(DURATION_BUCKETS_MICROS.len());
            let cell = &self.buckets[bucket];
            cell.set(cell.get() + 1);
            self.duration_sum_micros
                .set(self.duration_sum_micros.get().saturating_add(micros));
        }
    }

    /// Counts one answer the reverse proxy made, or cut, because upstream pool `pool`
    /// failed (`kind`: see [`UpstreamErrors::kind`]).
    pub fn record_upstream_error(&self, pool: &str, kind: &'static str) {
        let mut errors = self.upstream_errors.borrow_mut();
        match errors.iter_mut().find(|e| e.kind == kind && e.pool == pool) {
            Some(entry) => entry.count += 1,
            None => errors.push(UpstreamErrors {
                pool: pool.to_owned(),
                kind,
                count: 1,
            }),
        }
    }

    /// A copy of the counters now.
    #[must_use]
    pub fn snapshot(&self) -> HttpSnapshot {
        HttpSnapshot {
            responses: self.responses.each_ref().map(Cell::get),
            buckets: self.buckets.each_ref().map(Cell::get),
            duration_sum_micros: self.duration_sum_micros.get(),
            upstream_errors: self.upstream_errors.borrow().clone(),
        }
    }
}

/// A copy of [`HttpMetrics`] (`Send`: it crosses from a core to the exporter).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct HttpSnapshot {
    /// Responses by status class: index 0 for 1xx .. 4 for 5xx.
    pub responses: [u64; 5],
    /// Requests per request-time bucket (not cumulative; see
    /// [`DURATION_BUCKETS_MICROS`], the last one above all bounds).
    pub buckets: [u64; DURATION_BUCKETS_MICROS.len() + 1],
    /// The sum of request times, in microseconds.
    pub duration_sum_micros: u64,
    /// The reverse proxy's upstream errors.
    pub upstream_errors: Vec<UpstreamErrors>,
}

impl HttpSnapshot {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &HttpSnapshot) {
        for (sum, n) in self.responses.iter_mut().zip(other.responses) {
            *sum += n;
        }
        for (sum, n) in self.buckets.iter_mut().zip(other.buckets) {
            *sum += n;
        }
        self.duration_sum_micros += other.duration_sum_micros;
        for error in &other.upstream_errors {
            match self
                .upstream_errors
                .iter_mut()
                .find(|e| e.kind == error.kind && e.pool == error.pool)
            {
                Some(entry) => entry.count += error.count,
                None => self.upstream_errors.push(error.clone()),
            }
        }
    }

    /// Requests timed (the histogram's count).
    #[must_use]
    pub fn requests_timed(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_classes_buckets_and_merges() {
        let metrics = HttpMetrics::new();
        metrics.record(200, Some(Duration::from_micros(400)));
        metrics.record(204, Some(Duration::from_millis(3)));
        metrics.record(404, Some(Duration::from_secs(20)));
        metrics.record(400, None);
        metrics.record(99, None);
        metrics.record(700, None);
        metrics.record_upstream_error("api", "502");
        metrics.record_upstream_error("api", "502");
        metrics.record_upstream_error("api", "504");
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.responses, [0, 2, 0, 2, 0]);
        assert_eq!(snapshot.buckets[0], 1);
        assert_eq!(snapshot.buckets[3], 1); // 3 ms: at most 5 ms
        assert_eq!(snapshot.buckets[DURATION_BUCKETS_MICROS.len()], 1);
        assert_eq!(snapshot.requests_timed(), 3);
        assert_eq!(snapshot.duration_sum_micros, 400 + 3_000 + 20_000_000);
        let mut merged = snapshot.clone();
        merged.merge(&snapshot);
        assert_eq!(merged.responses, [0, 4, 0, 4, 0]);
        assert_eq!(
            merged.upstream_errors,
            vec![
                UpstreamErrors {
                    pool: "api".into(),
                    kind: "502",
                    count: 4
                },
                UpstreamErrors {
                    pool: "api".into(),
                    kind: "504",
                    count: 2
                },
            ]
        );
    }
}
