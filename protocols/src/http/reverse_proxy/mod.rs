//! HTTP/1.1 reverse proxy: routes requests by Host and path prefix to pools of upstream
//! servers and streams bodies both ways.
//!
//! Owns: [`ReverseProxy`] (a server [`Handler`], one per core), the mapping of upstream
//! failures to replies ([`status_for`]), and the response sink that streams an upstream
//! body to the client under backpressure.
//! Contract, per request:
//! 1. the server has parsed and validated the head (smuggling defences: CL+TE, bad
//!    Content-Length, bad chunking are answered 400 before this handler runs);
//! 2. the route is looked up ([`routing`]); none → 404;
//! 3. the head is rewritten ([`headers`]): hop-by-hop fields stripped, `Expect` dropped
//!    (the server answered `100-continue` itself), `X-Forwarded-*`, `Forwarded` and `Via`
//!    added; `Host` is kept unless the route rewrites it;
//! 4. the request goes out through the core's [`HttpClient`] (keep-alive pool per
//!    upstream): the body streams from the client's connection as it arrives, framed
//!    anew (Content-Length as validated by the server, else chunked);
//! 5. the response head is rewritten the same way and the body streams back; when the
//!    client's connection is over its write high watermark, the upstream connection
//!    pauses reading until it drains.
//!
//! A server that refuses connections, times out connecting or fails the TLS handshake is
//! skipped for the pool's back-off; a body-less request is then tried on the next server.
//!
//! Upstreams may be `https://` ([`upstream_tls`]): each core builds its own connector per
//! pool (roots from `tls_ca` or the system, an optional client certificate, or no
//! verification with `tls_verify = false`), the client pools TLS connections like plain
//! ones (keyed by address and server name), and a failed handshake is 502 with a log line
//! naming the upstream and the TLS error. `X-Forwarded-Proto` still describes the client's
//! side.
//! `Upgrade: websocket` requests are passed through (`tunnel.rs`): the upstream's 101 turns
//! the two connections into a byte tunnel run by the TCP proxy's relay (spliced where it
//! splices; copied to and from `https://` upstreams, reached over TLS with the pool's
//! settings), closed after `timeouts.tunnel` without a byte; any other answer is relayed
//! as a normal response.
//! Does not: terminate TLS itself on listeners of the config file (use `tls:` endpoints on
//! the command line), pass other upgrades (`h2c`), cache,
//! or retry a request that reached an upstream. Spec: RFC 9110 §7.6 (intermediaries), RFC 7239 (Forwarded).
//! Tests: `tests.rs` (routing, headers, config), `tests/reverse_proxy.rs` and
//! `tests/reverse_proxy_tls.rs` (both backends).

pub mod balance;
pub mod config;
mod h2_bridge;
pub mod headers;
pub mod health;
pub mod routing;
mod tunnel;
pub mod upstream_tls;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringwork::logging::{DEFAULT_WARNING_INTERVAL, RateLimit};
use ringwork::tls::{ServerName, TlsConfigError, TlsConnector, TlsError};
use ringwork::{Context, LocalHandle};

pub use self::config::{
    ClientLimits, ConfigError, ProxyConfig, ServerAddr, Timeouts, UpstreamConfig,
};
pub use self::headers::{ForwardedMode, Hop, add_forwarded, add_via, strip_hop_by_hop};
pub use self::routing::{HostPattern, Route, RouteTable, UpstreamPool};
pub use self::upstream_tls::UpstreamTls;
use crate::http::client::{
    ClientConfig, ClientError, ClientRequest, Flow, HttpClient, HttpProtocol, ResponseSink,
    StreamBody, TlsTarget,
};
use crate::http::metrics::HttpMetrics;
use crate::http::proto::{H1Limits, Headers, Method, RequestHead, ResponseHead, Version};
use crate::http::server::{
    BodyWriter, Handler, HttpServer, Request, Responder, Response, ServerConfig,
};
use crate::proxy::{RelayConfig, RelayStats};
use balance::{Balance, HashKey, ip_hash, key_hash};

/// The reply to a client when forwarding failed before any response head was sent.
///
/// RFC 9110 §15.6.3 (502): the upstream was unreachable, refused, failed TLS (an untrusted
/// certificate, another name), closed early or sent an invalid response; §15.6.5 (504): it
/// did not answer, accept the connection or finish the TLS handshake in time; a broken
/// request body from the client is the client's error (400).
#[must_use]
pub fn status_for(error: &ClientError) -> u16 {
    match error {
        ClientError::ConnectTimeout { .. }
        | ClientError::ResponseTimeout { .. }
        | ClientError::Tls {
            error: TlsError::HandshakeTimeout,
            ..
        } => 504,
        // A name whose race ran out of time, as a connect timeout.
        ClientError::ConnectHost(error) if error.timed_out.is_some() => 504,
        ClientError::RequestBody(_) | ClientError::RequestBodyLength { .. } => 400,
        _ => 502,
    }
}

/// The server settings the proxy's configuration implies.
#[must_use]
pub fn server_config(config: &ProxyConfig) -> ServerConfig {
    let mut server = ServerConfig::default();
    server.limits.max_body = config.max_body;
    server.keep_alive_timeout = config.timeouts.idle;
    server.body_read_timeout = config.timeouts.body;
    server.write_timeout = Some(config.timeouts.write).filter(|d| !d.is_zero());
    // SETTINGS_ENABLE_CONNECT_PROTOCOL stays on (the default): an HTTP/2 extended CONNECT
    // for WebSocket (RFC 8441) is bridged to an HTTP/1.1 upgrade upstream (h2_bridge.rs).
    server
}

/// The client settings the proxy's configuration implies.
#[must_use]
pub fn client_config(config: &ProxyConfig) -> ClientConfig {
    let mut client = ClientConfig {
        connect_timeout: config.timeouts.connect,
        response_timeout: config.timeouts.response_head,
        body_timeout: config.timeouts.body,
        idle_timeout: config.timeouts.idle,
        // Forward the client's User-Agent (or none), never the proxy's own.
        user_agent: None,
        max_idle_per_host: config.keepalive,
        max_conns_per_host: config.max_connections_per_server,
        ..ClientConfig::default()
    };
    // Response bodies stream through and are never held whole.
    client.limits.max_body = u64::MAX;
    client
}

/// The reverse proxy on one core: a [`Handler`] for an [`HttpServer`].
///
/// Build one per core (it holds that core's [`HttpClient`]): inside `Runtime::run`,
/// `HttpServer::new(ReverseProxy::new(reactor.handle(), &config), server_config(&config))`,
/// or [`ReverseProxy::server`].
#[derive(Clone)]
pub struct ReverseProxy {
    core: Rc<Core>,
}

struct Core {
    client: HttpClient,
    /// The routes and pools new requests use; a request keeps the ones it started with
    /// (a reload swaps this, [`ReverseProxy::reload`]).
    tables: RefCell<Rc<Tables>>,
    /// The health checks' state, applied again to the pools of a reload.
    health: RefCell<Option<Arc<health::HealthState>>>,
    forwarded: ForwardedMode,
    proto: String,
    /// This core's counters, when metrics are exported.
    metrics: Option<Rc<HttpMetrics>>,
    /// Limits on the upstream-error WARN, one per pool and status (a 504 is logged even
    /// right after a 502; an outage is not one line per request): bounded by the pools.
    warn_limits: RefCell<Vec<((usize, u16), RateLimit)>>,
    /// Their interval ([`ReverseProxy::warning_interval`]).
    warn_interval: std::cell::Cell<Duration>,
    /// Connect and response-head timeouts of WebSocket upgrades (their own connections).
    timeouts: Timeouts,
    /// Limits of the upstream response heads of upgrades.
    limits: H1Limits,
    /// Relay settings of tunnels after a 101.
    tunnel: RelayConfig,
    /// This core's tunnels.
    tunnel_stats: RelayStats,
}

/// What a reload of the configuration replaces: routes and upstream pools.
struct Tables {
    routes: RouteTable,
    pools: RefCell<Vec<UpstreamPool>>,
    /// Per pool (same index): TLS to its servers, `None` for plaintext.
    tls: Vec<Option<PoolTls>>,
    /// Per pool (same index): the HTTP spoken to its servers.
    protocols: Vec<HttpProtocol>,
}

impl Tables {
    fn new(config: &ProxyConfig, health: Option<&Arc<health::HealthState>>) -> Tables {
        let pools = config
            .upstreams
            .iter()
            .map(|u| {
                let pool = UpstreamPool::new(u.name.clone(), &u.servers, u.backoff)
                    .with_balance(u.balance.clone());
                match health.and_then(|h| Some((h, h.pool_index(&u.name, &u.servers)?))) {
                    Some((health, index)) => pool.with_health(Arc::clone(health), index),
                    None => pool,
                }
            })
            .collect();
        let tls = config
            .upstreams
            .iter()
            .map(|u| {
                let tls = u.tls.as_ref()?;
                Some(PoolTls::new(&u.name, tls, &u.servers, u.protocol, config))
            })
            .collect();
        Tables {
            routes: config.routes.clone(),
            pools: RefCell::new(pools),
            tls,
            protocols: config.upstreams.iter().map(|u| u.protocol).collect(),
        }
    }
}

/// How one core reaches the servers of an `https://` pool.
struct PoolTls {
    /// This core's connector (an error if it could not be built; each request then fails
    /// with 502 and says why).
    connector: Result<TlsConnector, Arc<TlsConfigError>>,
    /// The connector of WebSocket upgrades (ALPN `http/1.1` only: an upgrade is an
    /// HTTP/1.1 exchange); the same as `connector` for a pool that does not offer h2.
    upgrade_connector: Result<TlsConnector, Arc<TlsConfigError>>,
    /// The name each server is verified as.
    names: Vec<(ServerAddr, ServerName<'static>)>,
}

impl PoolTls {
    fn new(
        name: &str,
        tls: &UpstreamTls,
        servers: &[ServerAddr],
        protocol: HttpProtocol,
        config: &ProxyConfig,
    ) -> Self {
        let connector = tls.connector(config.timeouts.connect, protocol).map_err(|error| {
            tracing::error!(upstream = %name, %error, "cannot build the upstream TLS connector");
            Arc::new(error)
        });
        let upgrade_connector = if protocol.offers_h2() {
            tls.connector(config.timeouts.connect, HttpProtocol::Http1)
                .map_err(Arc::new)
        } else {
            connector.clone()
        };
        let names = servers
            .iter()
            .cloned()
            .zip(tls.server_names.iter().cloned())
            .collect();
        Self {
            connector,
            upgrade_connector,
            names,
        }
    }

    /// The TLS of a request to `addr` (`upgrade`: a WebSocket upgrade, offered as
    /// HTTP/1.1 only).
    fn target(&self, addr: &ServerAddr, upgrade: bool) -> Result<TlsTarget, ClientError> {
        let connector = if upgrade {
            &self.upgrade_connector
        } else {
            &self.connector
        };
        let connector = connector.clone().map_err(ClientError::TlsConfig)?;
        let server_name = self
            .names
            .iter()
            .find(|(a, _)| a == addr)
            .map(|(_, name)| name.clone())
            // `pick` returns one of the pool's servers, which all have a name.
            .ok_or(ClientError::BadUrl {
                reason: "no TLS server name for this upstream",
            })?;
        Ok(TlsTarget {
            server_name,
            connector: Some(connector),
        })
    }
}

impl ReverseProxy {
    /// The proxy for the core of `handle`. Builds this core's TLS connectors for `https://`
    /// pools (a failure is logged and answered 502 per request; the configuration was
    /// checked when loaded, so this needs the system roots to vanish in between).
    #[must_use]
    pub fn new(handle: LocalHandle, config: &ProxyConfig) -> Self {
        Self::build(handle, config, None)
    }

    /// As [`ReverseProxy::new`], counting upstream failures (by pool, and what the client
    /// got) in `metrics`, the core's counters its [`HttpServer`] shares
    /// ([`HttpServer::with_metrics`]).
    #[must_use]
    pub fn with_metrics(
        handle: LocalHandle,
        config: &ProxyConfig,
        metrics: Rc<HttpMetrics>,
    ) -> Self {
        Self::build(handle, config, Some(metrics))
    }

    /// Skips the servers whose active health checks fail, as `state` (made from the same
    /// configuration, [`health::HealthState::new`], shared by every core) says.
    #[must_use]
    pub fn health(self, state: &Arc<health::HealthState>) -> Self {
        for (index, pool) in self
            .core
            .tables
            .borrow()
            .pools
            .borrow_mut()
            .iter_mut()
            .enumerate()
        {
            pool.set_health(Arc::clone(state), index);
        }
        *self.core.health.borrow_mut() = Some(Arc::clone(state));
        self
    }

    /// Replaces the routes and upstream pools with `config`'s (a reload: SIGHUP): requests
    /// that start afterwards use them; requests under way finish with the ones they
    /// started with, and connections are not touched. The pools start afresh (no back-off,
    /// nothing in flight); a pool whose name and servers are unchanged keeps its health
    /// checks; routes with a `rate_limit` get the new configuration's buckets (full, and shared
    /// by every core's proxy given that configuration). Timeouts, `forwarded`,
    /// `listen` and `cores` are not changed (they need a restart); the per-client `[limits]`
    /// are not the proxy's (the server's limiter and the connection cap: the CLI's SIGHUP
    /// gives them the file's new values).
    pub fn reload(&self, config: &ProxyConfig) {
        let health = self.core.health.borrow().clone();
        let tables = Tables::new(config, health.as_ref());
        *self.core.tables.borrow_mut() = Rc::new(tables);
    }

    fn build(handle: LocalHandle, config: &ProxyConfig, metrics: Option<Rc<HttpMetrics>>) -> Self {
        Self {
            core: Rc::new(Core {
                client: HttpClient::new(handle, client_config(config)),
                tables: RefCell::new(Rc::new(Tables::new(config, None))),
                health: RefCell::new(None),
                forwarded: config.forwarded,
                proto: config.proto.clone(),
                metrics,
                warn_limits: RefCell::default(),
                warn_interval: std::cell::Cell::new(DEFAULT_WARNING_INTERVAL),
                timeouts: config.timeouts,
                limits: H1Limits::default(),
                tunnel: tunnel::relay_config(config.timeouts.tunnel, config.timeouts.write),
                tunnel_stats: RelayStats::default(),
            }),
        }
    }

    /// The proxy with its upstream-error warnings (502, 504, a response cut short) logged
    /// at most once per `interval` per pool and status, each line after a pause with a
    /// `suppressed=N` count (default: the engine's 10 s; zero logs every one).
    #[must_use]
    pub fn warning_interval(self, interval: Duration) -> Self {
        self.core.warn_interval.set(interval);
        self
    }

    /// An [`HttpServer`] running a new proxy on the core of `handle`.
    #[must_use]
    pub fn server(handle: LocalHandle, config: &ProxyConfig) -> HttpServer {
        HttpServer::new(Self::new(handle, config), server_config(config))
    }

    /// This core's upstream client (for its counters).
    #[must_use]
    pub fn client(&self) -> &HttpClient {
        &self.core.client
    }

    /// This core's WebSocket tunnels (relays after an upstream's 101).
    #[must_use]
    pub fn tunnels(&self) -> &RelayStats {
        &self.core.tunnel_stats
    }
}

impl Core {
    /// Whether the upstream-error WARN of pool `pool` and `status` (0: truncated) is logged
    /// now: `Some(count of the ones not logged since)`, or `None` (counted).
    fn warn_hit(&self, pool: usize, status: u16) -> Option<u64> {
        let mut limits = self.warn_limits.borrow_mut();
        let now = Instant::now();
        if let Some((_, limit)) = limits.iter_mut().find(|(key, _)| *key == (pool, status)) {
            return limit.hit(now);
        }
        let mut limit = RateLimit::new(self.warn_interval.get());
        let first = limit.hit(now);
        limits.push(((pool, status), limit));
        first
    }
}

/// What the proxy forwards for one request.
struct Outgoing {
    method: Method,
    target: Bytes,
    headers: Headers,
    authority: Option<Bytes>,
    body: Option<StreamBody>,
    upstream: usize,
    /// The consistent-hash key of the request (its pool hashes one).
    key: Option<u64>,
    /// The routes and pools it started with.
    tables: Rc<Tables>,
}

impl Handler for ReverseProxy {
    fn stream_body(&self, _head: &RequestHead) -> bool {
        true
    }

    fn handle(&self, mut request: Request, respond: Responder) {
        let (authority, target) = match split_target(&request.head().target) {
            Ok(parts) => parts,
            Err(status) => return respond.send(Response::error(status)),
        };
        let host = authority
            .clone()
            .or_else(|| request.headers().get("host").map(Bytes::copy_from_slice));
        let path = target.split(|&b| b == b'?').next().unwrap_or_default();
        let tables = Rc::clone(&self.core.tables.borrow());
        let Some((index, route)) = tables.routes.lookup_index(host.as_deref(), path) else {
            return respond.send(Response::error(404));
        };
        if route.rate_limit.is_some()
            && let Err(wait) = tables.routes.take_token(index, request.handle().now())
        {
            // RFC 6585 §4: 429, Retry-After in whole seconds rounded up (as the server's
            // per-client limit), before any upstream is contacted.
            let secs = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0))
                .max(1);
            return respond.send(Response::error(429).header("Retry-After", secs.to_string()));
        }
        let target = match route.strip_prefix {
            true => strip_prefix(&target, &route.prefix),
            false => target,
        };
        // `Upgrade: websocket` is passed through as a tunnel (tunnel.rs); other upgrades
        // lose their `Upgrade` with the hop-by-hop fields.
        let extended_connect = request.version() == Version::Http2
            && *request.method() == Method::Connect
            && request
                .protocol()
                .is_some_and(|p| p.eq_ignore_ascii_case(b"websocket"));
        if request.protocol().is_some() && !extended_connect {
            // Only WebSocket is bridged (RFC 8441 §4: another protocol is the server's call).
            return respond.send(Response::error(501));
        }
        let upgrade = if extended_connect {
            Some(Bytes::from_static(b"websocket"))
        } else {
            tunnel::is_websocket_upgrade(&request)
                .then(|| request.headers().get("upgrade").map(Bytes::copy_from_slice))
                .flatten()
        };
        let key = match tables.pools.borrow()[route.upstream].balance() {
            Balance::ConsistentHash(HashKey::ClientIp) => {
                request.peer_addr().map(|peer| ip_hash(peer.ip()))
            }
            Balance::ConsistentHash(HashKey::Header(name)) => {
                request.headers().get(name).map(key_hash)
            }
            _ => None,
        };
        let mut headers = request.headers().clone();
        // The server validated the framing (RFC 9112 §6.3): chunked, or one Content-Length.
        let chunked = headers.has_token("transfer-encoding", "chunked");
        let length = headers
            .get_str("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|_| !chunked);
        // gRPC needs `te: trailers` (RFC 9113 §8.2.2 lets HTTP/2 carry it); hop-by-hop for
        // HTTP/1.1, so it goes on only to an HTTP/2 pool, and only if the client sent it.
        let te_trailers = headers.has_token("te", "trailers");
        strip_hop_by_hop(&mut headers);
        let http2 = tables
            .protocols
            .get(route.upstream)
            .is_some_and(|p| p.offers_h2());
        if te_trailers && http2 {
            headers.insert("te", Bytes::from_static(b"trailers"));
        }
        headers.remove("expect");
        headers.remove("content-length");
        let forwarded_host = host.clone();
        match (&route.host_rewrite, &authority) {
            (Some(rewrite), _) => {
                headers.insert("Host", Bytes::copy_from_slice(rewrite.as_bytes()))
            }
            // RFC 9112 §3.2.2: with an absolute-form target, its authority is the host.
            (None, Some(authority)) => headers.insert("Host", authority.clone()),
            (None, None) => {}
        }
        let hop = Hop {
            client: request.peer_addr().map(|a| a.ip()),
            // A TLS listener knows its scheme; behind a TLS terminator the config says it.
            proto: if request.is_tls() {
                "https"
            } else {
                &self.core.proto
            },
            host: forwarded_host.as_deref(),
        };
        add_forwarded(&mut headers, &hop, self.core.forwarded);
        add_via(&mut headers, request.version(), "ringwork");
        // Only a request with a body streams one: a GET (no framing fields) or
        // `Content-Length: 0` goes out whole, without the upload pump (and may be retried on
        // the next server).
        // Over HTTP/2 a body needs no framing field: its stream exists only if DATA follows.
        let has_body =
            chunked || length.is_some_and(|n| n > 0) || request.version() == Version::Http2;
        // An extended CONNECT's DATA is the WebSocket, held for the bridge.
        let body = request
            .take_body_stream()
            .filter(|_| has_body && !extended_connect)
            .map(|stream| StreamBody::new(stream, length));
        let outgoing = Outgoing {
            method: request.method().clone(),
            target,
            headers,
            authority: host,
            body,
            upstream: route.upstream,
            key,
            tables: Rc::clone(&tables),
        };
        let core = Rc::clone(&self.core);
        let handle = request.handle().clone();
        match upgrade {
            Some(upgrade) => drop(handle.spawn_local(tunnel::forward_upgrade(
                core,
                outgoing,
                upgrade,
                respond,
                handle.clone(),
                extended_connect,
            ))),
            None => drop(handle.spawn_local(forward(core, outgoing, respond))),
        }
    }
}

/// Splits a request target into (authority of an absolute-form target, origin-form
/// target to forward).
///
/// # Errors
/// The status to answer: 405 for CONNECT's authority form (no tunnels), 400 for an
/// absolute form that is not `http://`.
fn split_target(target: &Bytes) -> Result<(Option<Bytes>, Bytes), u16> {
    if target.starts_with(b"/") {
        return Ok((None, target.clone()));
    }
    if target.as_ref() == b"*" {
        return Ok((None, target.clone()));
    }
    let lower = target.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix(b"http://") else {
        return Err(if target.contains(&b'/') { 400 } else { 405 });
    };
    let start = target.len() - rest.len();
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .map_or(target.len(), |i| start + i);
    let authority = target.slice(start..end);
    // RFC 9110 §4.2.4: a sender MUST NOT generate the userinfo subcomponent.
    if authority.is_empty() || authority.contains(&b'@') {
        return Err(400);
    }
    let path = match &target[end..] {
        [] => Bytes::from_static(b"/"),
        [b'?', ..] => {
            let mut p = b"/".to_vec();
            p.extend_from_slice(&target[end..]);
            Bytes::from(p)
        }
        _ => target.slice(end..),
    };
    Ok((Some(authority), path))
}

/// `target` without the route's `prefix` (which it starts with), still starting with `/`.
fn strip_prefix(target: &Bytes, prefix: &str) -> Bytes {
    let rest = &target[prefix.len().min(target.len())..];
    if rest.starts_with(b"/") {
        return target.slice(prefix.len()..);
    }
    let mut out = Vec::with_capacity(rest.len() + 1);
    out.push(b'/');
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// A request counted in flight on a pool's server (least connections) until dropped: when
/// its exchange ends, fails before it starts, or the task is dropped.
struct Picked<'a> {
    tables: &'a Tables,
    upstream: usize,
    addr: ServerAddr,
}

impl Drop for Picked<'_> {
    fn drop(&mut self) {
        self.tables.pools.borrow_mut()[self.upstream].release(&self.addr);
    }
}

/// Sends `out` upstream and streams the answer to `respond`; maps a failure before the
/// response head to 502/504/400, and one after it to a truncated response (the server
/// closes the client's connection). Every 502 and 504 is logged (warn) with its reason and
/// the upstream server.
async fn forward(core: Rc<Core>, out: Outgoing, respond: Responder) {
    let down = Rc::new(RefCell::new(Downstream {
        responder: Some(respond),
        writer: None,
    }));
    // A request without a body may go to the next server when connecting failed; a
    // streamed body is consumed by the first attempt.
    let attempts = if out.body.is_some() {
        1
    } else {
        out.tables.pools.borrow()[out.upstream].len()
    };
    let pool = out.tables.pools.borrow()[out.upstream].name.clone();
    let mut failure = None;
    let mut last = None;
    for _ in 0..attempts {
        let started = Instant::now();
        let Some(addr) = out.tables.pools.borrow_mut()[out.upstream].pick_for(started, out.key)
        else {
            break;
        };
        last = Some((addr.clone(), started));
        let picked = Picked {
            tables: &out.tables,
            upstream: out.upstream,
            addr: addr.clone(),
        };
        let tls = match out.tables.tls.get(out.upstream).and_then(Option::as_ref) {
            None => None,
            Some(tls) => match tls.target(&addr, false) {
                Ok(target) => Some(target),
                Err(error) => {
                    tracing::warn!(upstream = %addr, %pool, %error, "no TLS to this upstream");
                    failure = Some(error);
                    break;
                }
            },
        };
        let protocol = out
            .tables
            .protocols
            .get(out.upstream)
            .copied()
            .unwrap_or_default();
        let request = upstream_request(&out, &addr, tls).with_protocol(protocol);
        let wants_note = down
            .borrow()
            .responder
            .as_ref()
            .is_some_and(Responder::wants_upstream_note);
        let sink = ProxySink {
            down: Rc::clone(&down),
            upstream: wants_note.then(|| (addr.clone(), started)),
        };
        let result = core.client.request_with(request, sink).await;
        drop(picked);
        match result {
            Ok(_) => {
                out.tables.pools.borrow_mut()[out.upstream].mark_ok(&addr);
                return;
            }
            Err(
                error @ (ClientError::Connect { .. }
                | ClientError::ConnectTimeout { .. }
                | ClientError::ConnectHost(_)),
            ) => {
                tracing::warn!(upstream = %addr, %pool, %error, "upstream unreachable; backing off");
                out.tables.pools.borrow_mut()[out.upstream].mark_failed(&addr, Instant::now());
                failure = Some(error);
            }
            // The request was not sent: as for an unreachable server.
            Err(error @ ClientError::Tls { .. })
                if error.tls_error().is_some_and(TlsError::is_handshake) =>
            {
                tracing::warn!(
                    upstream = %addr, %pool, %error,
                    "upstream TLS handshake failed; backing off"
                );
                out.tables.pools.borrow_mut()[out.upstream].mark_failed(&addr, Instant::now());
                failure = Some(error);
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
        if down.borrow().responder.is_none() {
            break;
        }
    }
    let status = failure.as_ref().map_or(502, status_for);
    let (responder, writer) = {
        let mut down = down.borrow_mut();
        (down.responder.take(), down.writer.take())
    };
    let reason = failure.as_ref().map_or_else(
        || "no server of the pool can be tried".to_owned(),
        ToString::to_string,
    );
    let upstream = last
        .as_ref()
        .map_or_else(|| "none".to_owned(), |(a, _)| a.to_string());
    let target = String::from_utf8_lossy(&out.target);
    match responder {
        Some(responder) => {
            if status == 400 {
                tracing::debug!(%upstream, %pool, %reason, "request body failed; answering 400");
            } else {
                // Counted every time; logged within the warning's limit.
                if let Some(metrics) = &core.metrics {
                    metrics.record_upstream_error(&pool, if status == 504 { "504" } else { "502" });
                }
                if let Some(suppressed) = core.warn_hit(out.upstream, status) {
                    tracing::warn!(
                        status, %upstream, %pool, %reason,
                        method = %out.method, target = %target.escape_debug(), suppressed,
                        "answering the client with an upstream error"
                    );
                }
            }
            if let Some((addr, started)) = &last {
                responder.note_upstream(addr, started.elapsed());
            }
            responder.send(Response::error(status));
        }
        // Mid-body: dropping the unfinished writer closes the client's connection, so it
        // sees a truncated body, never a wrong one.
        None => {
            if let Some(suppressed) = core.warn_hit(out.upstream, 0) {
                tracing::warn!(
                    %upstream, %pool, %reason,
                    method = %out.method, target = %target.escape_debug(), suppressed,
                    "upstream failed after the response head; truncating the response"
                );
            }
            if let Some(metrics) = &core.metrics {
                metrics.record_upstream_error(&pool, "truncated");
            }
            drop(writer);
        }
    }
}

/// The upstream request for one attempt on `addr` (over TLS if `tls`); a host name is
/// resolved by the client when it opens a connection.
fn upstream_request(out: &Outgoing, addr: &ServerAddr, tls: Option<TlsTarget>) -> ClientRequest {
    let method = out.method.clone();
    let mut request = match addr {
        ServerAddr::Addr(addr) => ClientRequest::new(method, *addr, out.target.clone()),
        ServerAddr::Host { name, port } => {
            ClientRequest::to_host(method, name, *port, out.target.clone())
        }
    }
    .tls(tls);
    request.headers = out.headers.clone();
    if let Some(authority) = &out.authority {
        request.authority = authority.clone();
    }
    if let Some(body) = &out.body {
        request = request.body_stream(body.clone());
    }
    request
}

/// The client's side of one proxied exchange, shared by the sink and the forwarding task.
struct Downstream {
    /// Until the response head arrived.
    responder: Option<Responder>,
    /// The streamed response body, after the head.
    writer: Option<BodyWriter>,
}

/// Streams an upstream response to the client.
struct ProxySink {
    down: Rc<RefCell<Downstream>>,
    /// The server of this attempt and when it started, when the access log wants them
    /// (`None`: no copy of the address per request).
    upstream: Option<(ServerAddr, Instant)>,
}

impl ResponseSink for ProxySink {
    fn head(&mut self, ctx: &mut Context<'_>, head: ResponseHead) {
        if head.status == 101 {
            // Never asked for (Upgrade is stripped): not a response this proxy can relay.
            ctx.abort();
            return;
        }
        let mut headers = head.headers;
        strip_hop_by_hop(&mut headers);
        let mut response = Response::new(head.status);
        *response.headers_mut() = headers;
        let mut down = self.down.borrow_mut();
        if let Some(responder) = down.responder.take() {
            if responder.is_closed() {
                // The client is gone: stop reading the upstream response.
                drop(down);
                drop(responder);
                ctx.abort();
                return;
            }
            if let Some((upstream, started)) = &self.upstream {
                responder.note_upstream(upstream, started.elapsed());
            }
            down.writer = Some(responder.stream(response));
        }
    }

    fn data(&mut self, _ctx: &mut Context<'_>, data: Bytes) -> Flow {
        let down = &mut *self.down.borrow_mut();
        let Some(writer) = down.writer.as_mut() else {
            return Flow::Continue;
        };
        if writer.write(data) {
            return Flow::Continue;
        }
        // The client's connection is full: hold the upstream until it drains (or the
        // client is gone: then the upstream response is not worth reading).
        let ready = writer.when_ready();
        Flow::Pause(Box::pin(async move { ready.await.is_ok() }))
    }

    fn end(&mut self, _ctx: &mut Context<'_>, trailers: Option<Headers>) {
        let writer = self.down.borrow_mut().writer.take();
        if let Some(writer) = writer {
            let mut trailers = trailers.unwrap_or_default();
            strip_hop_by_hop(&mut trailers);
            writer.finish_with_trailers(trailers);
        }
    }
}

#[cfg(test)]
mod tests;
