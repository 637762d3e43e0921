//! `--metrics ENDPOINT`: Prometheus text format at `/metrics`.
//!
//! Owns: the exporter thread (a blocking listener off the cores: scrapes are rare and must
//! never take a reactor's time while it waits), the per-core HTTP counters
//! ([`core_http_metrics`], one `Rc<HttpMetrics>` per core thread) and the text format.
//! Contract: nothing is counted for the exporter on the hot path beyond what the cores
//! count anyway: the engine's [`CoreStats`] and the HTTP servers' [`HttpMetrics`] are plain
//! per-core fields and `Cell`s (no lock, no atomic per request). A scrape asks every core
//! for a copy by a cross-core message ([`Cores::send`]), each core answers in its next turn
//! over a channel, and the exporter merges them; a core that does not answer within
//! [`CORE_REPLY`] is left out of that scrape (and counted in
//! `ringwork_scrape_cores_missing`).
//! Does not: serve anything but `GET /metrics` (404 otherwise), keep connections alive,
//! or speak TLS.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ringwork::{CoreStats, Cores};
use ringwork_protocols::Endpoint;
use ringwork_protocols::http::metrics::{DURATION_BUCKETS_MICROS, HttpMetrics, HttpSnapshot};
use ringwork_protocols::http::reverse_proxy::health::HealthState;

/// How long a scrape waits for the cores' answers.
const CORE_REPLY: Duration = Duration::from_secs(2);
/// How long a scraper may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;

thread_local! {
    /// This core thread's HTTP counters (made on first use).
    static CORE_HTTP: RefCell<Option<Rc<HttpMetrics>>> = const { RefCell::new(None) };
}

/// The HTTP counters of the calling core's thread, shared by its servers.
pub fn core_http_metrics() -> Rc<HttpMetrics> {
    CORE_HTTP.with(|slot| Rc::clone(slot.borrow_mut().get_or_insert_with(Rc::default)))
}

/// One core's answer to a scrape.
#[derive(Debug)]
struct CoreSample {
    core: usize,
    backend: String,
    stats: CoreStats,
    http: Option<HttpSnapshot>,
}

/// The exporter: bound before the cores start; serves once it knows them.
#[derive(Clone)]
pub struct Exporter {
    cores: Arc<OnceLock<Cores>>,
    /// The reverse proxy's health checks, if any.
    health: Arc<OnceLock<Arc<HealthState>>>,
}

impl Exporter {
    /// Binds `endpoint` (a `tcp:` or `tcp6:` endpoint) and starts the exporter's thread;
    /// returns the exporter and the address bound.
    ///
    /// # Errors
    /// Another kind of endpoint, a bind failure, or no thread.
    pub fn start(endpoint: &Endpoint) -> Result<(Exporter, SocketAddr), String> {
        let Endpoint::Tcp { addr } = endpoint else {
            return Err(format!(
                "--metrics {endpoint}: the exporter listens on a tcp: or tcp6: endpoint"
            ));
        };
        let listener = TcpListener::bind(addr).map_err(|e| format!("--metrics {endpoint}: {e}"))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("--metrics {endpoint}: {e}"))?;
        let exporter = Exporter {
            cores: Arc::default(),
            health: Arc::default(),
        };
        let serving = exporter.clone();
        std::thread::Builder::new()
            .name("ringwork-metrics".into())
            .spawn(move || serving.serve(&listener))
            .map_err(|e| format!("--metrics: cannot start its thread: {e}"))?;
        Ok((exporter, bound))
    }

    /// Tells the exporter the reverse proxy's health-check state (once).
    pub fn set_health(&self, health: &Arc<HealthState>) {
        let _ = self.health.set(Arc::clone(health));
    }

    /// Tells the exporter the runtime's cores (from any core, once).
    pub fn set_cores(&self, cores: &Cores) {
        let _ = self.cores.set(cores.clone());
    }

    fn serve(&self, listener: &TcpListener) {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    if let Err(error) = self.answer(stream) {
                        tracing::debug!(%error, "metrics scrape failed");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics: accept failed");
                    // At the descriptor limit accept fails at once: do not spin.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Reads one request and answers it, then closes.
    fn answer(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        let mut head = Vec::with_capacity(512);
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf)?;
            if n == 0 || head.len() + n > MAX_HEAD {
                return Ok(());
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
        let mut words = line.split(|b| *b == b' ');
        let (method, target) = (words.next(), words.next());
        let path = target.map(|t| t.split(|b| *b == b'?').next().unwrap_or_default());
        let (status, body) = match (method, path) {
            (Some(b"GET" | b"HEAD"), Some(b"/metrics")) => ("200 OK", self.render()),
            _ => (
                "404 Not Found",
                "only GET /metrics is served here\n".to_owned(),
            ),
        };
        let mut response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        if method != Some(b"HEAD") {
            response.push_str(&body);
        }
        stream.write_all(response.as_bytes())
    }

    /// Asks every core for its counters and formats them.
    fn render(&self) -> String {
        let Some(cores) = self.cores.get() else {
            return "# the cores are starting\n".to_owned();
        };
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        for core in 0..cores.len() {
            let tx = tx.clone();
            let sent = cores.send(core, move |reactor| {
                let http = CORE_HTTP.with(|slot| slot.borrow().as_ref().map(|m| m.snapshot()));
                let _ = tx.send(CoreSample {
                    core: reactor.core_index(),
                    backend: reactor.backend().to_string(),
                    stats: reactor.stats(),
                    http,
                });
            });
            if sent.is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        let deadline = Instant::now() + CORE_REPLY;
        let mut samples = Vec::with_capacity(asked);
        while samples.len() < asked {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(sample) => samples.push(sample),
                Err(_) => break,
            }
        }
        samples.sort_by_key(|s| s.core);
        let mut text = format_text(&samples, cores.len() - samples.len());
        if let Some(health) = self.health.get() {
            format_health(&mut text, &health.snapshot());
        }
        text
    }
}

/// One per-core metric: name, type, help, and how to read it from a core's stats.
type PerCore = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CoreStats) -> u64,
);

const PER_CORE: &[PerCore] = &[
    (
        "ringwork_connections_open",
        "gauge",
        "Connections open now (accepted and outbound).",
        |s| s.connections,
    ),
    (
        "ringwork_connections_accepted_total",
        "counter",
        "Connections accepted.",
        |s| s.accepted,
    ),
    (
        "ringwork_connections_closed_total",
        "counter",
        "Connections closed (accepted and outbound).",
        |s| s.closed,
    ),
    (
        "ringwork_connections_rejected_total",
        "counter",
        "Connections closed at once at the connection limit.",
        |s| s.rejected,
    ),
    (
        "ringwork_connections_outbound_total",
        "counter",
        "Outbound connections started.",
        |s| s.connects,
    ),
    (
        "ringwork_received_bytes_total",
        "counter",
        "Bytes received (after TLS).",
        |s| s.bytes_in,
    ),
    (
        "ringwork_sent_bytes_total",
        "counter",
        "Bytes handed to the kernel for sending (before TLS).",
        |s| s.bytes_out,
    ),
    (
        "ringwork_spliced_bytes_total",
        "counter",
        "Bytes moved between connections inside the kernel.",
        |s| s.bytes_spliced,
    ),
    (
        "ringwork_write_stalls_total",
        "counter",
        "Connections cut off by the write-stall timeout.",
        |s| s.write_stalls,
    ),
    (
        "ringwork_tls_failures_total",
        "counter",
        "TLS handshakes or sessions that failed.",
        |s| s.tls_failures,
    ),
    (
        "ringwork_io_enters_total",
        "counter",
        "Kernel enters (io_uring_enter or epoll_wait).",
        |s| s.enters,
    ),
    (
        "ringwork_io_completions_total",
        "counter",
        "Completions reaped (CQEs, or readiness events on poll).",
        |s| s.completions,
    ),
    (
        "ringwork_io_submissions_total",
        "counter",
        "Operations submitted.",
        |s| s.submissions,
    ),
    (
        "ringwork_buffer_starvations_total",
        "counter",
        "Receives that found the buffer ring empty.",
        |s| s.buffer_starvations,
    ),
    (
        "ringwork_cq_overflows_total",
        "counter",
        "io_uring completion queue overflows.",
        |s| s.cq_overflows,
    ),
    (
        "ringwork_loop_turns_total",
        "counter",
        "Reactor loop turns.",
        |s| s.turns,
    ),
    (
        "ringwork_panics_total",
        "counter",
        "Protocol callbacks that panicked.",
        |s| s.panics,
    ),
];

/// The Prometheus text exposition (version 0.0.4) of `samples`.
fn format_text(samples: &[CoreSample], missing: usize) -> String {
    let mut out = String::with_capacity(8 * 1024);
    // `write!` to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP ringwork_core_info The cores and their I/O backend."
    );
    let _ = writeln!(out, "# TYPE ringwork_core_info gauge");
    for s in samples {
        let _ = writeln!(
            out,
            "ringwork_core_info{{core=\"{}\",backend=\"{}\"}} 1",
            s.core, s.backend
        );
    }
    for (name, kind, help, read) in PER_CORE {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in samples {
            let _ = writeln!(out, "{name}{{core=\"{}\"}} {}", s.core, read(&s.stats));
        }
    }
    let name = "ringwork_tls_handshakes_total";
    let _ = writeln!(
        out,
        "# HELP {name} TLS handshakes by result (full, resumed, failed)."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for s in samples {
        let full = s.stats.tls_handshakes.saturating_sub(s.stats.tls_resumed);
        for (result, n) in [
            ("full", full),
            ("resumed", s.stats.tls_resumed),
            ("failed", s.stats.tls_failures),
        ] {
            let _ = writeln!(out, "{name}{{core=\"{}\",result=\"{result}\"}} {n}", s.core);
        }
    }
    let name = "ringwork_io_completions_per_enter";
    let _ = writeln!(
        out,
        "# HELP {name} Completions per kernel enter since start (the batching factor)."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for s in samples {
        let ratio = s.stats.completions as f64 / s.stats.enters.max(1) as f64;
        let _ = writeln!(out, "{name}{{core=\"{}\"}} {ratio}", s.core);
    }
    let mut http: Option<HttpSnapshot> = None;
    for snapshot in samples.iter().filter_map(|s| s.http.as_ref()) {
        http.get_or_insert_with(HttpSnapshot::default)
            .merge(snapshot);
    }
    if let Some(http) = http {
        format_http(&mut out, &http);
    }
    let name = "ringwork_scrape_cores_missing";
    let _ = writeln!(
        out,
        "# HELP {name} Cores that did not answer this scrape in time."
    );
    let _ = writeln!(out, "# TYPE {name} gauge\n{name} {missing}");
    out
}

/// The HTTP servers' counters, merged over the cores.
fn format_http(out: &mut String, http: &HttpSnapshot) {
    let name = "ringwork_http_responses_total";
    let _ = writeln!(out, "# HELP {name} HTTP responses sent, by status class.");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (class, n) in http.responses.iter().enumerate() {
        let _ = writeln!(out, "{name}{{code=\"{}xx\"}} {n}", class + 1);
    }
    let name = "ringwork_http_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from a request's head read to its response sent."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, n) in DURATION_BUCKETS_MICROS.iter().zip(http.buckets) {
        cumulative += n;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1e6
        );
    }
    let count = http.requests_timed();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {}", http.duration_sum_micros as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {count}");
    let name = "ringwork_proxy_upstream_errors_total";
    let _ = writeln!(
        out,
        "# HELP {name} Reverse-proxy answers made (502, 504) or cut (truncated) because an upstream failed."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for error in &http.upstream_errors {
        let _ = writeln!(
            out,
            "{name}{{pool=\"{}\",kind=\"{}\"}} {}",
            escape_label(&error.pool),
            error.kind,
            error.count
        );
    }
}

/// `ringwork_upstream_up{pool,server}`: 1 while the server passes its health checks.
fn format_health(out: &mut String, servers: &[(String, String, bool)]) {
    let name = "ringwork_upstream_up";
    let _ = writeln!(
        out,
        "# HELP {name} 1 while the upstream server passes its active health checks, else 0."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (pool, server, up) in servers {
        let _ = writeln!(
            out,
            "{name}{{pool=\"{}\",server=\"{}\"}} {}",
            escape_label(pool),
            escape_label(server),
            u8::from(*up)
        );
    }
}

/// A label value as the text format wants it (backslash, quote and newline escaped).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_histogram_is_cumulative() {
        let metrics = HttpMetrics::new();
        metrics.record(200, Some(Duration::from_micros(100)));
        metrics.record(500, Some(Duration::from_secs(60)));
        let mut out = String::new();
        format_http(&mut out, &metrics.snapshot());
        assert!(out.contains("ringwork_http_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(out.contains("ringwork_http_request_duration_seconds_bucket{le=\"10\"} 1\n"));
        assert!(out.contains("ringwork_http_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(out.contains("ringwork_http_responses_total{code=\"5xx\"} 1\n"));
    }
}
