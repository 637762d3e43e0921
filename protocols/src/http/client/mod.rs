//! HTTP/1.1 client on the engine: futures per core, a keep-alive pool, streaming bodies.
//!
//! Owns: [`HttpClient`] (one per core, cheap to clone), [`ClientConfig`], [`ClientStats`],
//! the response forms ([`ClientResponse`], buffered; [`ResponseSink`], streamed) and the
//! retry rule.
//! Contract: [`HttpClient::request_with`] encodes the request, takes a connection from the
//! pool (or opens one, or waits while the host is at `max_conns_per_host`), sends the
//! request, and resolves when the response is complete or failed. A request that failed on
//! a *reused* connection before any response byte arrived is sent once more on a new
//! connection if its method is idempotent (RFC 9110 §9.2.2): the server may have closed
//! the idle connection just as the request went out.
//! Names: a request to a host name ([`ClientRequest::host`], `http://backend.internal/`)
//! opens each new connection with [`Reactor::connect_host`](ringwork::Reactor::connect_host):
//! the name is resolved then, through the core's name resolver, and its addresses raced
//! with Happy Eyeballs; the pool keys such connections by name, port and TLS, so requests
//! to one name share them.
//! Does not: follow redirects, decode content codings, or pipeline. A request body is one `Bytes` or
//! a [`StreamBody`] pulled under backpressure (see `body.rs`); a streamed request is never
//! retried.
//! Spec: RFC 9110, RFC 9112. Tests: `request/tests.rs` (sans-IO), `tests/http_client.rs`
//! (both backends; raw in-process servers, ringwork's server, Python's `http.server`,
//! nginx), `tests/https_client.rs` (TLS: ringwork TLS servers, `openssl s_server`).
//!
//! # TLS (`https`)
//! A request with [`ClientRequest::tls`] set (every `https://` URL) runs over TLS through
//! the engine's TLS layer ([`ConnectOptions::tls`]): the server is verified as
//! [`TlsTarget::server_name`] (the URL's host: `localhost`, or the IP literal as an IP
//! address name) with [`TlsTarget::connector`], or the client's connector when the request
//! brings none: the one given to [`HttpClient::set_tls_connector`], else one built on first
//! use from the system's roots with ALPN `http/1.1` (a failure to build it is
//! [`ClientError::TlsConfig`] for each TLS request, never a panic). The keep-alive pool
//! keys connections by address, TLS or not, server name and connector, so a plaintext
//! connection never carries a TLS request or the reverse. A failed handshake (untrusted
//! certificate, another name, a client certificate the server wanted) is
//! [`ClientError::Tls`] naming the TLS failure. For servers whose certificate cannot be
//! verified there is [`dangerous_insecure_connector`] (encrypted, not authenticated).
//!
//! A TLS connection's TCP connect is bounded by [`ClientConfig::connect_timeout`] and its
//! handshake by the connector's handshake timeout.
//!
//! # Streaming
//! [`ResponseSink`] callbacks run inside the upstream connection's engine callbacks and get
//! its [`Context`]: a reverse proxy hands each body piece (a [`Bytes`], no further copy)
//! straight to its downstream writer without buffering the body. When the downstream side
//! cannot take more, [`ResponseSink::data`] returns [`Flow::Pause`] with a future that says
//! when it can: the connection stops reading (and its body timeout stops counting) until
//! then. A pause that outlives its exchange is ignored, so it never touches the next
//! request on the same connection.
//!
//! # Structure
//! Each connection is the sans-IO [`ClientConn`]
//! machine (framing, reuse rules, deadlines; Pair-tested against the server machine) on the
//! kit's adapter; `conn.rs` is the glue, `pool.rs` keeps idle connections as mailbox
//! senders, `body.rs` pumps streamed uploads.

mod body;
mod conn;
mod error;
pub mod h2;
mod pool;
mod request;
mod tls;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ringwork::tls::TlsConnector;
use ringwork::{ConnectOptions, Context, Deferred, EngineError, LocalHandle};

pub use self::body::{BodySource, NextChunk, StreamBody};
use self::conn::{ClientApp, Command, Exchange, Outcome, Pending};
pub use self::error::ClientError;
use self::pool::{Lease, Pool, PoolKey};
pub use self::request::{ClientRequest, HttpProtocol, encode_head, is_idempotent};
pub use self::tls::{ALPN_HTTP11, TlsTarget, dangerous_insecure_connector};
use self::tls::{DefaultConnector, TlsKey};
use crate::http::proto::client::{ClientConn, ClientConnConfig, OutgoingRequest};
use crate::http::proto::{H1Limits, Headers, ResponseHead};
use crate::kit::adapter::Adapter;

/// Settings of an [`HttpClient`]; the defaults suit a proxy or a service client.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Response parsing limits (head size, header count, body size, trailers).
    pub limits: H1Limits,
    /// How long opening a connection may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long the response head may take once the request is sent. Default 30 s.
    pub response_timeout: Duration,
    /// How long the body may stall between two reads (not counted while a sink paused
    /// reading). Default 30 s.
    pub body_timeout: Duration,
    /// How long an idle pooled connection is kept. Default 90 s.
    pub idle_timeout: Duration,
    /// Idle connections kept per server (address, and for TLS server name and connector).
    /// Default 32.
    pub max_idle_per_host: usize,
    /// Connections per server (as for `max_idle_per_host`); requests beyond it wait.
    /// Default 64.
    pub max_conns_per_host: usize,
    /// The `User-Agent` sent when a request has none. Default `ringwork/<version>`.
    pub user_agent: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            limits: H1Limits::default(),
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            max_idle_per_host: 32,
            max_conns_per_host: 64,
            user_agent: Some(concat!("ringwork/", env!("CARGO_PKG_VERSION")).to_owned()),
        }
    }
}

/// Counters of one [`HttpClient`] (all clones share them).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Connections opened (sockets created).
    pub connections_opened: u64,
    /// Requests written (a retry counts again).
    pub requests_sent: u64,
    /// Requests sent on a pooled connection.
    pub reused: u64,
    /// Requests sent again after a reused connection failed.
    pub retries: u64,
}

/// A complete, buffered response.
#[derive(Clone, Debug)]
pub struct ClientResponse {
    /// Status line and fields.
    pub head: ResponseHead,
    /// The body (empty for HEAD, 1xx, 204 and 304).
    pub body: Bytes,
    /// The trailer fields of a chunked body, if it had any section.
    pub trailers: Option<Headers>,
}

/// Receives a response as it arrives: the streaming form of [`HttpClient::request_with`].
///
/// Callbacks run inside the connection's engine callbacks, with its [`Context`] (see the
/// module docs for a proxy's use). Order: `head` once, `data` any number of times, `end`
/// once; on failure the request's future returns the error and `end` is not called.
/// Calling `ctx.close()` or `ctx.abort()` from a callback abandons the response (the
/// future fails with [`ClientError::Closed`]).
pub trait ResponseSink: 'static {
    /// The final response head (1xx interim responses are skipped).
    fn head(&mut self, ctx: &mut Context<'_>, head: ResponseHead);

    /// A piece of the body. Return [`Flow::Pause`] to stop reading until the sink can take
    /// more.
    fn data(&mut self, ctx: &mut Context<'_>, data: Bytes) -> Flow;

    /// The body ended; `trailers` holds the trailer fields of a chunked body.
    fn end(&mut self, ctx: &mut Context<'_>, trailers: Option<Headers>) {
        let _ = (ctx, trailers);
    }
}

/// What a [`ResponseSink`] wants after a body piece.
pub enum Flow {
    /// Keep the body coming.
    Continue,
    /// Stop reading until the future resolves: to `true` to go on, to `false` to abandon
    /// the response (the connection is aborted and the future fails with
    /// [`ClientError::Closed`]). The body timeout does not count meanwhile.
    Pause(Pin<Box<dyn Future<Output = bool>>>),
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flow::Continue => "Continue",
            Flow::Pause(_) => "Pause",
        })
    }
}

/// An HTTP/1.1 client for one core: a keep-alive pool per server (address, and for TLS
/// server name and connector).
///
/// `!Send`; clones share the pool and the counters. Create one per core from the core's
/// [`LocalHandle`] (`reactor.handle()` or `ctx.handle()`), and await its futures in tasks
/// spawned on that core.
///
/// # Examples
/// ```no_run
/// # use ringwork::{Reactor, ReactorConfig, DriverConfig};
/// # use ringwork_protocols::http::client::{HttpClient, ClientConfig, ClientRequest};
/// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default()).unwrap();
/// let client = HttpClient::new(reactor.handle(), ClientConfig::default());
/// let request = ClientRequest::from_url("http://127.0.0.1:8080/").unwrap();
/// let task = reactor.spawn_local(async move { client.request(request).await });
/// ```
#[derive(Clone)]
pub struct HttpClient {
    inner: Rc<Inner>,
}

/// What clones of an [`HttpClient`] and its connections share.
pub(crate) struct Inner {
    pub(crate) handle: LocalHandle,
    pub(crate) config: ClientConfig,
    pub(crate) pool: RefCell<Pool>,
    /// The connector of TLS requests that bring none.
    tls: RefCell<DefaultConnector>,
    stats: Cell<ClientStats>,
    /// The reactor began a graceful shutdown: connections close instead of idling.
    pub(crate) stopping: Cell<bool>,
    /// The HTTP/2 connection of each server that requests over HTTP/2 went to.
    h2: RefCell<std::collections::HashMap<PoolKey, h2::H2Connection>>,
    /// TLS servers that did not pick `h2` by ALPN: their HTTP/2 requests go over HTTP/1.1.
    no_h2: RefCell<std::collections::HashSet<PoolKey>>,
}

impl Inner {
    fn count(&self, f: impl FnOnce(&mut ClientStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }
}

impl HttpClient {
    /// A client on the core of `handle`.
    #[must_use]
    pub fn new(handle: LocalHandle, config: ClientConfig) -> Self {
        Self {
            inner: Rc::new(Inner {
                handle,
                config,
                pool: RefCell::new(Pool::default()),
                tls: RefCell::new(DefaultConnector::default()),
                stats: Cell::new(ClientStats::default()),
                stopping: Cell::new(false),
                h2: RefCell::new(std::collections::HashMap::new()),
                no_h2: RefCell::new(std::collections::HashSet::new()),
            }),
        }
    }

    /// The TLS connector of requests whose [`TlsTarget`] brings none (default: the system's
    /// roots, ALPN `http/1.1` — or `h2`, `http/1.1` for requests that try HTTP/2 — built on
    /// first use; the one set here serves both, and must offer `h2` for HTTP/2). Build one per core: its resumption
    /// cache is per connector. Connections already pooled keep the connector they were
    /// made with (and are not used for requests through the new one).
    pub fn set_tls_connector(&self, connector: TlsConnector) {
        self.inner.tls.borrow_mut().set(connector);
    }

    /// The counters so far.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.get()
    }

    /// Idle pooled connections to `addr` right now (plaintext and TLS).
    #[must_use]
    pub fn idle_connections(&self, addr: std::net::SocketAddr) -> usize {
        pool::counts(&self.inner, addr).0
    }

    /// Idle pooled connections to the host name `host` on `port` right now.
    #[must_use]
    pub fn idle_connections_to(&self, host: &str, port: u16) -> usize {
        pool::host_counts(&self.inner, host, port).0
    }

    /// Sends `request` and buffers the whole response (up to `limits.max_body`).
    ///
    /// # Errors
    /// See [`ClientError`]; a body over the limit is [`ClientError::BodyTooLarge`].
    ///
    /// # Cancellation
    /// Dropping the future before the response is complete aborts the connection it was
    /// using when its next bytes arrive (never returns it to the pool half-read).
    pub fn request(
        &self,
        request: ClientRequest,
    ) -> impl Future<Output = Result<ClientResponse, ClientError>> + 'static {
        let exchange = self.request_with(request, Buffered::default());
        async move {
            let buffered = exchange.await?;
            Ok(ClientResponse {
                head: buffered.head.ok_or(ClientError::Closed)?,
                body: buffered.body.freeze(),
                trailers: buffered.trailers,
            })
        }
    }

    /// Sends `request` and hands each body slice to `on_chunk` instead of buffering it;
    /// resolves to the head and trailers once the body ended.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn request_streaming(
        &self,
        request: ClientRequest,
        on_chunk: impl FnMut(&[u8]) + 'static,
    ) -> impl Future<Output = Result<(ResponseHead, Option<Headers>), ClientError>> + 'static {
        let exchange = self.request_with(
            request,
            Chunks {
                head: None,
                trailers: None,
                on_chunk,
            },
        );
        async move {
            let chunks = exchange.await?;
            Ok((chunks.head.ok_or(ClientError::Closed)?, chunks.trailers))
        }
    }

    /// Sends `request`, feeding the response to `sink` as it arrives; resolves to the sink
    /// once the response is complete. The general form of the other request methods.
    ///
    /// # Errors
    /// See [`ClientError`].
    ///
    /// # Cancellation
    /// As [`HttpClient::request`].
    pub fn request_with<S: ResponseSink>(
        &self,
        request: ClientRequest,
        sink: S,
    ) -> impl Future<Output = Result<S, ClientError>> + 'static {
        let client = Rc::clone(&self.inner);
        async move {
            let head = encode_head(&request, client.config.user_agent.as_deref())?;
            let (try_h2, strict_h2) = request.protocol.attempt(request.tls.is_some());
            let connector = match &request.tls {
                None => None,
                Some(TlsTarget {
                    connector: Some(connector),
                    ..
                }) => Some(connector.clone()),
                Some(TlsTarget {
                    connector: None, ..
                }) => Some(
                    client
                        .tls
                        .borrow_mut()
                        .get(try_h2)
                        .map_err(ClientError::TlsConfig)?,
                ),
            };
            let key = PoolKey {
                addr: request.addr,
                host: request.host.as_ref().map(|h| h.to_ascii_lowercase()),
                tls: request
                    .tls
                    .as_ref()
                    .zip(connector.as_ref())
                    .map(|(target, connector)| TlsKey::new(target.server_name.clone(), connector)),
            };
            let mut sink = sink;
            if try_h2 && (strict_h2 || !client.no_h2.borrow().contains(&key)) {
                let mut h2_request = request.clone();
                if let Some(agent) = &client.config.user_agent
                    && !h2_request.headers.contains("user-agent")
                {
                    h2_request.headers.append("user-agent", agent.clone());
                }
                let conn = h2_connection(&client, &key, &h2_request, connector.as_ref());
                client.count(|s| s.requests_sent += 1);
                match conn.send(h2_request, sink).await {
                    Outcome::Done(sink) => return Ok(sink),
                    // The TLS server picked HTTP/1.1 by ALPN (nothing was sent): this and
                    // later requests to it go over HTTP/1.1.
                    Outcome::Failed {
                        error: ClientError::Http2NotNegotiated { .. },
                        retry: Some(again),
                    } if !strict_h2 => {
                        client.no_h2.borrow_mut().insert(key.clone());
                        client.h2.borrow_mut().remove(&key);
                        sink = again;
                    }
                    Outcome::Failed { error, .. } => return Err(error),
                }
            }
            let mut fresh = false;
            loop {
                let lease = pool::acquire(&client, &key, fresh).await;
                let reused = lease.pooled().is_some();
                let target = Target {
                    key: &key,
                    connector: connector.as_ref(),
                };
                match send(&client, &request, target, head.clone(), sink, lease).await {
                    Outcome::Done(sink) => return Ok(sink),
                    Outcome::Failed {
                        retry: Some(again), ..
                    } if reused
                        && !fresh
                        && is_idempotent(&request.method)
                        && request.body_stream.is_none() =>
                    {
                        client.count(|s| s.retries += 1);
                        sink = again;
                        fresh = true;
                    }
                    Outcome::Failed { error, .. } => return Err(error),
                }
            }
        }
    }
}

/// The HTTP/2 connection to `key`'s server: the open one, or a new one.
fn h2_connection(
    client: &Rc<Inner>,
    key: &PoolKey,
    request: &ClientRequest,
    connector: Option<&TlsConnector>,
) -> h2::H2Connection {
    let mut connections = client.h2.borrow_mut();
    if let Some(conn) = connections.get(key)
        && !conn.is_closed()
    {
        client.count(|s| s.reused += 1);
        return conn.clone();
    }
    let tls = request
        .tls
        .as_ref()
        .zip(connector)
        .map(|(target, connector)| (connector.clone(), target.server_name.clone()));
    let target = h2::H2Target {
        addr: request.addr,
        host: request.host.clone(),
        tls,
        response_timeout: Some(client.config.response_timeout),
        body_timeout: Some(client.config.body_timeout),
        idle_timeout: Some(client.config.idle_timeout),
    };
    let conn = h2::H2Connection::open_target(
        &client.handle,
        target,
        crate::http::proto::h2::H2Config::default(),
        client.config.limits.max_body,
        client.config.connect_timeout,
    );
    client.count(|s| s.connections_opened += 1);
    connections.insert(key.clone(), conn.clone());
    conn
}

/// Where one attempt goes: the pool's key and, for TLS, the connector.
struct Target<'a> {
    key: &'a PoolKey,
    connector: Option<&'a TlsConnector>,
}

/// Sends one attempt of a request on `lease` and waits for its outcome.
async fn send<S: ResponseSink>(
    client: &Rc<Inner>,
    request: &ClientRequest,
    target: Target<'_>,
    head: Bytes,
    sink: S,
    lease: Lease,
) -> Outcome<S> {
    let (deferred, resolver) = Deferred::new();
    let exchange: Box<dyn Exchange> = Box::new(Pending { sink, resolver });
    let outgoing = OutgoingRequest {
        method: request.method.clone(),
        head,
        body: request.body.clone(),
        wants_close: request.wants_close(),
        streamed: request.body_stream.as_ref().map(StreamBody::length),
    };
    let upload = request.body_stream.as_ref().and_then(|stream| {
        Some(body::Upload {
            length: stream.length(),
            source: stream.take()?,
        })
    });
    match lease.pooled() {
        Some(conn) => {
            lease.consume();
            let send = Command::Send {
                exchange,
                request: outgoing,
                upload,
                reused: true,
            };
            if let Err(Command::Send { exchange, .. }) = conn.post(send) {
                // Closed between leaving the pool and now: as if it failed at once.
                exchange.fail(ClientError::Closed, true);
            }
        }
        None => {
            let addr = request.addr;
            let host = request.host.clone();
            let key = target.key.clone();
            // The connector with the name to verify, for a TLS connection.
            let tls = target
                .connector
                .cloned()
                .zip(request.tls.as_ref().map(|t| t.server_name.clone()));
            let shared = Rc::clone(client);
            client.handle.run(move |reactor| {
                let machine = ClientConn::new(conn_config(&shared.config));
                let mut adapter = Adapter::new(machine, ClientApp::new(Rc::clone(&shared), key));
                let conn = adapter.sender();
                adapter.app_mut().set_conn(conn.clone());
                // The connection owns the slot from here on (it frees it when lost, or when
                // dropped unstarted).
                lease.consume();
                // The connect timeout bounds TCP; the connector's handshake timeout bounds
                // the handshake after it.
                let mut options = ConnectOptions::new().timeout(shared.config.connect_timeout);
                if let Some((connector, name)) = tls {
                    options = options.tls(connector, name);
                }
                let opened = match &host {
                    Some(host) => reactor
                        .connect_host(host, addr.port(), adapter, options)
                        .map(drop),
                    None => reactor.connect(&addr.into(), adapter, options).map(drop),
                };
                match opened {
                    Ok(()) => shared.count(|s| s.connections_opened += 1),
                    Err(error) => {
                        // The protocol was dropped without callbacks (freeing the slot); the
                        // exchange is still here.
                        drop(conn);
                        exchange.fail(connect_error(addr, error), false);
                        return;
                    }
                }
                let send = Command::Send {
                    exchange,
                    request: outgoing,
                    upload,
                    reused: false,
                };
                // Runs once it connects (or fails with the connect's error).
                if let Err(Command::Send { exchange, .. }) = conn.post(send) {
                    exchange.fail(ClientError::Closed, false);
                }
            });
        }
    }
    deferred.await.unwrap_or(Outcome::Failed {
        error: ClientError::Closed,
        retry: None,
    })
}

/// The settings of one connection's machine.
fn conn_config(config: &ClientConfig) -> ClientConnConfig {
    ClientConnConfig {
        limits: config.limits.clone(),
        response_timeout: config.response_timeout,
        body_timeout: config.body_timeout,
        idle_timeout: config.idle_timeout,
    }
}

/// Why a connection could not be opened, as a [`ClientError`].
fn connect_error(addr: std::net::SocketAddr, error: EngineError) -> ClientError {
    match error {
        EngineError::Op(error) => ClientError::Connect {
            addr,
            source: error.source,
        },
        EngineError::Tls(error) => ClientError::Tls { addr, error },
        other => ClientError::Connect {
            addr,
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// The sink of [`HttpClient::request`]: buffers everything.
#[derive(Default)]
struct Buffered {
    head: Option<ResponseHead>,
    body: BytesMut,
    trailers: Option<Headers>,
}

impl ResponseSink for Buffered {
    fn head(&mut self, _ctx: &mut Context<'_>, head: ResponseHead) {
        self.head = Some(head);
    }

    fn data(&mut self, _ctx: &mut Context<'_>, data: Bytes) -> Flow {
        // Bounded: the body decoder fails past `limits.max_body`.
        self.body.extend_from_slice(&data);
        Flow::Continue
    }

    fn end(&mut self, _ctx: &mut Context<'_>, trailers: Option<Headers>) {
        self.trailers = trailers;
    }
}

/// The sink of [`HttpClient::request_streaming`].
struct Chunks<F> {
    head: Option<ResponseHead>,
    trailers: Option<Headers>,
    on_chunk: F,
}

impl<F: FnMut(&[u8]) + 'static> ResponseSink for Chunks<F> {
    fn head(&mut self, _ctx: &mut Context<'_>, head: ResponseHead) {
        self.head = Some(head);
    }

    fn data(&mut self, _ctx: &mut Context<'_>, data: Bytes) -> Flow {
        (self.on_chunk)(&data);
        Flow::Continue
    }

    fn end(&mut self, _ctx: &mut Context<'_>, trailers: Option<Headers>) {
        self.trailers = trailers;
    }
}
