//! The HTTP server (HTTP/1.1 and HTTP/2): a [`Factory`] ([`HttpServer`]) that runs a
//! [`Handler`] on every connection of a listener.
//!
//! Each connection is a sans-IO machine driven by the kit's adapter: the HTTP/1.1
//! `ServerConn` (`http::proto::server`: parsing, ordering, framing, timeouts, limits) or,
//! when TLS negotiated `h2` by ALPN ([`ALPN_H2`]: offer it in the listener's TLS config)
//! or the client opened with the HTTP/2 preface on a plain port (h2c with prior knowledge),
//! the HTTP/2 `H2ServerConn` (`http::proto::h2`). Handlers see the same [`Request`] and
//! [`Responder`] either way. This module is the glue that picks the machine (`detect.rs`),
//! turns its events into handler calls (`conn.rs`) and what handlers answer with into
//! machine calls (`respond.rs`, `message.rs`).
//!
//! A handler gets a [`Request`] and a [`Responder`] and answers once, now or later:
//!
//! ```no_run
//! use ringwork_protocols::http::server::{HttpServer, Response, ServerConfig};
//! # fn listen(reactor: &mut ringwork::Reactor) -> Result<(), ringwork::EngineError> {
//! let hello = HttpServer::new(
//!     |_request, respond: ringwork_protocols::http::server::Responder| {
//!         respond.send(Response::text("Hello, World!"))
//!     },
//!     ServerConfig::default(),
//! );
//! reactor.listen_tcp("127.0.0.1:8080".parse().unwrap(), hello)?;
//! # Ok(()) }
//! ```
//!
//! What the server does for every handler:
//! - parses requests with the sans-IO parser ([`crate::http::proto`]) and answers bad ones
//!   itself (400, 413, 414, 431, 501, 505, 417, 408) before closing;
//! - reads the whole body before calling the handler (up to `limits.max_body`), unless
//!   [`Handler::stream_body`] asks for a [`RequestBody`] stream;
//! - keeps pipelined responses in request order, up to `max_pipelined` in flight;
//! - frames responses (Content-Length, chunked, close), adds Date (cached per core, one
//!   formatting per second) and Connection, answers `Expect: 100-continue`;
//! - bounds time: the head must arrive within `header_read_timeout` (slowloris), the body
//!   may not stall longer than `body_read_timeout`, an idle keep-alive connection closes
//!   after `keep_alive_timeout`, and a client that takes no byte of a response for
//!   `write_timeout` is cut off (the engine's write-stall timeout: a download nobody reads
//!   does not hold its connection forever);
//! - bounds memory: reading pauses while the write buffer is over its high watermark or a
//!   streamed body is not being consumed;
//! - on graceful shutdown, finishes in-flight requests and closes idle connections.

mod access_log;
mod conn;
mod date_cache;
mod detect;
mod message;
mod respond;

use std::rc::Rc;

use ringwork::{Factory, Protocol};

pub use self::access_log::{AccessLog, AccessLogFormat, UpstreamNote};
pub use self::detect::ALPN_H2;
pub use self::message::{BodyError, Request, RequestBody};
pub use self::respond::{BodyWriter, Closed, Responder};
use crate::http::metrics::HttpMetrics;
use crate::http::proto::RequestHead;
pub use crate::http::proto::server::{Response, ServerConfig};
use crate::limits::SharedRateLimiter;

/// What answers requests. One handler value serves every connection of a listener on one
/// core (`&self`: keep per-core state in `Cell`/`RefCell`).
///
/// Any `Fn(Request, Responder)` closure is a handler.
pub trait Handler: 'static {
    /// Answers `request` through `respond`, now or later.
    fn handle(&self, request: Request, respond: Responder);

    /// Whether this request's body should stream to the handler (called with the head,
    /// before the body is read): then [`Handler::handle`] runs at once and
    /// [`Request::take_body_stream`] yields the body as it arrives. The default reads the
    /// whole body first.
    fn stream_body(&self, head: &RequestHead) -> bool {
        let _ = head;
        false
    }
}

impl<F> Handler for F
where
    F: Fn(Request, Responder) + 'static,
{
    fn handle(&self, request: Request, respond: Responder) {
        self(request, respond);
    }
}

/// What every connection of one server on one core shares.
pub(crate) struct Shared {
    pub(crate) handler: Box<dyn Handler>,
    /// Shared with every HTTP/1.1 connection's machine (not copied into each).
    pub(crate) config: std::sync::Arc<ServerConfig>,
    pub(crate) date: date_cache::DateCache,
    /// This core's counters, when metrics are exported.
    pub(crate) metrics: Option<Rc<HttpMetrics>>,
    /// Where access log lines go, when they go to a file (else `config.access_log` logs
    /// through `tracing`).
    pub(crate) access: Option<AccessLog>,
    /// Requests per client IP (this core's buckets; 429 past them).
    pub(crate) rate_limit: Option<SharedRateLimiter>,
    /// The buffer access log lines are formatted in (reused: no allocation per line
    /// beyond the sink's copy).
    pub(crate) line: std::cell::RefCell<String>,
    /// Where a handler's answer given during its call waits for the connection.
    pub(crate) direct: Rc<respond::DirectAnswer>,
}

/// An HTTP/1.1 server for a listener: `reactor.listen_tcp(addr, HttpServer::new(..))`.
/// Build one per core (inside `Runtime::run`'s per-core closure).
pub struct HttpServer {
    shared: Rc<Shared>,
}

impl HttpServer {
    /// A server answering with `handler`.
    #[must_use]
    pub fn new(handler: impl Handler, config: ServerConfig) -> Self {
        Self::build(handler, config, None)
    }

    /// A server answering with `handler` that counts every response in `metrics` (status
    /// class and request time: a few `Cell` additions per response; share one
    /// [`HttpMetrics`] among the servers of a core).
    #[must_use]
    pub fn with_metrics(
        handler: impl Handler,
        config: ServerConfig,
        metrics: Rc<HttpMetrics>,
    ) -> Self {
        Self::build(handler, config, Some(metrics))
    }

    fn build(
        handler: impl Handler,
        config: ServerConfig,
        metrics: Option<Rc<HttpMetrics>>,
    ) -> Self {
        let mut config = config;
        // `ServerEvent::Sent` feeds the metrics and the access log: without either, the
        // connections need not report every answer.
        config.report_sent = config.access_log || metrics.is_some();
        Self {
            shared: Rc::new(Shared {
                handler: Box::new(handler),
                config: std::sync::Arc::new(config),
                date: date_cache::DateCache::new(),
                metrics,
                access: None,
                rate_limit: None,
                line: std::cell::RefCell::default(),
                direct: Rc::default(),
            }),
        }
    }

    /// The server answering `429 Too Many Requests` (with `Retry-After`, whole seconds) to
    /// a client IP over its token bucket in `limiter`, without calling the handler. Give
    /// every core's servers a clone of one limiter: a client then has one budget for the
    /// process, whichever core its connections land on. Call before the server serves.
    #[must_use]
    pub fn rate_limit(mut self, limiter: SharedRateLimiter) -> Self {
        // A server not yet handed to a listener is the only owner of its shared part.
        if let Some(shared) = Rc::get_mut(&mut self.shared) {
            shared.rate_limit = Some(limiter);
        }
        self
    }

    /// The server with its access log lines (one per response) going to `log` instead of
    /// `tracing` (turns [`ServerConfig::access_log`] on). Call before the server serves.
    #[must_use]
    pub fn access_log(mut self, log: AccessLog) -> Self {
        // A server not yet handed to a listener is the only owner of its shared part.
        if let Some(shared) = Rc::get_mut(&mut self.shared) {
            let config = std::sync::Arc::make_mut(&mut shared.config);
            config.access_log = true;
            config.report_sent = true;
            shared.access = Some(log);
        }
        self
    }
}

impl Factory for HttpServer {
    fn build_protocol(&mut self) -> Box<dyn Protocol> {
        Box::new(detect::Detect::new(Rc::clone(&self.shared)))
    }
}
