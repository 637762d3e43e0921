//! WebSocket pass-through: an `Upgrade: websocket` request goes to the upstream on a
//! connection of its own, and after the upstream's `101 Switching Protocols` the client's
//! connection and the upstream's are joined as a byte tunnel by the TCP proxy's
//! [`Relay`] (backpressure, half-close, splicing of bulk directions, an idle timeout).
//!
//! Owns: [`forward_upgrade`] (picks a server, connects, retries the next server of the
//! pool while connecting fails), the upstream connection's protocol until the join
//! (request head out, response head in, a non-101 answer collected and relayed as a
//! normal response), and the client side's protocol after the 101.
//! Contract:
//! - the request head is the proxy's rewritten head with `Connection: Upgrade` and the
//!   client's `Upgrade` put back; `Sec-WebSocket-*` fields pass unchanged (end to end);
//! - `101`: the response (hop-by-hop fields stripped, `Upgrade` kept; the server adds
//!   `Connection: Upgrade`) goes to the client, upstream reading pauses, and once the 101
//!   is out [`Relay::join`] starts relaying, upstream bytes that followed the 101 first;
//! - any other final status: the response and its body (at most [`MAX_REFUSAL_BODY`]
//!   bytes, else 502) are relayed as a normal response and the upstream closes;
//! - no response head within `timeouts.response_head`: 504; an upstream that closes or
//!   sends an invalid head first: 502; unreachable servers as for other requests.
//!
//! - an `https://` pool: the upgrade's connection is TLS with the pool's settings (SNI and
//!   verification as `tls_server_name`/`tls_ca`/`tls_verify` say, its client certificate,
//!   ALPN `http/1.1` only); after the 101 the relay copies (no splice over TLS); a failed
//!   handshake is 502 like a failed connect.
//!
//! Does not: pass other upgrades (`h2c` ...: their `Upgrade` is stripped as before).
//! Tests (both backends): `protocols/cli/tests/ws_interop.rs` (Python websockets through
//! `serve http-proxy` to `serve ws-echo`, a refusing upstream, the idle timeout) and
//! `protocols/tests/reverse_proxy.rs` (the head sent upstream, 502/504, a spliced 4 MiB
//! message).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ringwork::{ConnId, ConnectOptions, Context, LostReason, Protocol, TimerId};

use super::h2_bridge::{self, Bridge, StreamBridge};
use super::{Core, Outgoing, ServerAddr, status_for, strip_hop_by_hop};
use crate::http::client::{ClientError, ClientRequest, TlsTarget, encode_head};
use crate::http::proto::{BodyDecoder, Method, Status, Version, parse_response};
use crate::http::server::{Request, Responder, Response};
use crate::proxy::{Relay, RelayConfig, RelayUpstream};

/// The largest body of a refusal (a non-101 answer to an upgrade) relayed to the client.
pub const MAX_REFUSAL_BODY: usize = 1 << 20;

/// Whether the proxy tunnels `request`: an HTTP/1.1 request that asks to switch to
/// WebSocket (`Connection: upgrade`, `Upgrade: websocket`) without a body.
pub(super) fn is_websocket_upgrade(request: &Request) -> bool {
    let headers = request.headers();
    // The server holds the connection for a 101 only for an HTTP/1.1 request.
    request.version() == Version::Http11
        && headers.has_token("connection", "upgrade")
        && headers.has_token("upgrade", "websocket")
        && !headers.contains("content-length")
        && !headers.contains("transfer-encoding")
}

/// The upgrade request's head as sent upstream: the proxy's rewritten `out.headers` with
/// `Connection: Upgrade` and the client's `upgrade` value put back.
/// For an HTTP/2 extended CONNECT (`h2_key`: the upstream leg's key): a `GET` with that
/// `Sec-WebSocket-Key`.
fn request_head(
    out: &Outgoing,
    upgrade: &Bytes,
    addr: &ServerAddr,
    h2_key: Option<&str>,
) -> Result<Bytes, ClientError> {
    let method = match h2_key {
        Some(_) => Method::Get,
        None => out.method.clone(),
    };
    let mut request = match addr {
        ServerAddr::Addr(addr) => ClientRequest::new(method, *addr, out.target.clone()),
        ServerAddr::Host { name, port } => {
            ClientRequest::to_host(method, name, *port, out.target.clone())
        }
    };
    request.headers = out.headers.clone();
    request
        .headers
        .insert("Connection", Bytes::from_static(b"Upgrade"));
    request.headers.insert("Upgrade", upgrade.clone());
    if let Some(key) = h2_key {
        request
            .headers
            .insert("Sec-WebSocket-Key", Bytes::copy_from_slice(key.as_bytes()));
    }
    if let Some(authority) = &out.authority {
        request.authority = authority.clone();
    }
    encode_head(&request, None)
}

/// Forwards an upgrade request (see the module docs); `upgrade` is the client's `Upgrade`
/// value; `h2`: the request is an HTTP/2 extended CONNECT (RFC 8441, `h2_bridge.rs`).
pub(super) async fn forward_upgrade(
    core: Rc<Core>,
    out: Outgoing,
    upgrade: Bytes,
    respond: Responder,
    handle: ringwork::LocalHandle,
    h2: bool,
) {
    let pool = out.tables.pools.borrow()[out.upstream].name.clone();
    let h2_key = match h2 {
        false => None,
        true => match h2_bridge::upstream_key() {
            Some(key) => Some(key),
            None => {
                tracing::error!("no randomness for a Sec-WebSocket-Key; answering 502");
                return respond.send(Response::error(502));
            }
        },
    };
    let shared = Rc::new(RefCell::new(Shared {
        responder: Some(respond),
        upstream: None,
        relay: None,
        rest: BytesMut::new(),
        join_timer: None,
        bridge: None,
    }));
    let attempts = out.tables.pools.borrow()[out.upstream].len();
    let mut failure = None;
    for _ in 0..attempts {
        let Some(addr) =
            out.tables.pools.borrow_mut()[out.upstream].pick_for(handle.now(), out.key)
        else {
            break;
        };
        let head = match request_head(&out, &upgrade, &addr, h2_key.as_deref()) {
            Ok(head) => head,
            Err(error) => {
                failure = Some(error);
                break;
            }
        };
        let protocol = UpgradeUpstream {
            shared: Rc::clone(&shared),
            core: Rc::clone(&core),
            head: Some(head),
            buf: BytesMut::new(),
            state: State::Head,
            timer: None,
            addr: addr.clone(),
            h2_key: h2_key.clone(),
        };
        let mut options = ConnectOptions::new().timeout(core.timeouts.connect);
        // An `https://` pool: the upgrade goes over TLS (its SNI, verification and client
        // certificate, ALPN `http/1.1`); the relay copies (the engine splices only
        // plaintext).
        if let Some(tls) = out.tables.tls.get(out.upstream).and_then(Option::as_ref) {
            match tls.target(&addr, true) {
                Ok(TlsTarget {
                    server_name,
                    connector: Some(connector),
                }) => options = options.tls(connector, server_name),
                Ok(TlsTarget {
                    connector: None, ..
                }) => {
                    failure = Some(ClientError::BadUrl {
                        reason: "no TLS connector for this upstream",
                    });
                    break;
                }
                Err(error) => {
                    tracing::warn!(upstream = %addr, %pool, %error, "no TLS to this upstream");
                    failure = Some(error);
                    break;
                }
            }
        }
        let connecting = match &addr {
            ServerAddr::Addr(ip) => handle.connect(*ip, protocol, options),
            // Resolved at each connect, addresses raced (Happy Eyeballs), as the HTTP
            // client does for the proxy's other requests.
            ServerAddr::Host { name, port } => handle.connect_host(name, *port, protocol, options),
        };
        match connecting.await {
            Ok(_) => {
                out.tables.pools.borrow_mut()[out.upstream].mark_ok(&addr);
                return;
            }
            Err(error) => {
                tracing::warn!(upstream = %addr, %pool, %error, "upstream unreachable; backing off");
                out.tables.pools.borrow_mut()[out.upstream].mark_failed(&addr, handle.now());
                failure = Some(connect_failure(&addr, error));
            }
        }
    }
    let status = failure.as_ref().map_or(502, status_for);
    if let Some(responder) = shared.borrow_mut().responder.take() {
        tracing::warn!(status, %pool, "no upstream for a WebSocket upgrade; answering the client");
        responder.send(Response::error(status));
    }
}

/// The client error of a failed connect to `addr` (504 for a timeout, 502 otherwise, as
/// for the proxy's other requests).
fn connect_failure(addr: &ServerAddr, error: ringwork::ConnectError) -> ClientError {
    match (error, addr) {
        (ringwork::ConnectError::Host(error), _) => ClientError::ConnectHost(error),
        (ringwork::ConnectError::TimedOut { after }, ServerAddr::Addr(addr)) => {
            ClientError::ConnectTimeout {
                addr: *addr,
                timeout: after,
            }
        }
        (other, ServerAddr::Addr(addr)) => ClientError::Connect {
            addr: *addr,
            source: std::io::Error::other(other.to_string()),
        },
        // A connect by name reports its failures as `Host`; what else ends one (it could
        // not start, the reactor is going) has no address to name: 502 all the same.
        (_, ServerAddr::Host { .. }) => ClientError::Closed,
    }
}

/// What the two protocols of one tunnel share.
struct Shared {
    /// Until the upstream's answer is passed on.
    responder: Option<Responder>,
    /// The upstream connection, from its 101 until it is lost.
    upstream: Option<ConnId>,
    /// The upstream side of the joined pair.
    relay: Option<RelayUpstream>,
    /// Upstream bytes that followed its 101.
    rest: BytesMut,
    /// The upstream's timer bounding the wait for the client's side to take over.
    join_timer: Option<TimerId>,
    /// An HTTP/2 client's bridge, from the upstream's 101.
    bridge: Option<Rc<RefCell<Bridge>>>,
}

#[derive(Debug)]
enum State {
    /// Waiting for the response head.
    Head,
    /// Collecting a refusal's body.
    Refusal(Box<(Response, BodyDecoder, BytesMut)>),
    /// The 101 went to the client; waiting for the join (reading paused), then relaying:
    /// once joined, every callback goes to the relay.
    Switching,
    /// Answered or failed.
    Done,
}

/// The upstream connection's protocol.
struct UpgradeUpstream {
    shared: Rc<RefCell<Shared>>,
    core: Rc<Core>,
    head: Option<Bytes>,
    buf: BytesMut,
    state: State,
    timer: Option<TimerId>,
    addr: ServerAddr,
    /// The key sent for an HTTP/2 client (the 101 is checked against it and bridged).
    h2_key: Option<String>,
}

impl UpgradeUpstream {
    fn relay(&self) -> Option<RelayUpstream> {
        self.shared.borrow().relay.clone()
    }

    fn bridge(&self) -> Option<Rc<RefCell<Bridge>>> {
        self.shared.borrow().bridge.clone()
    }

    /// Answers the client `status` (if not answered yet) and closes the upstream.
    fn fail(&mut self, ctx: &mut Context<'_>, status: u16, reason: &str) {
        self.state = State::Done;
        if let Some(responder) = self.shared.borrow_mut().responder.take() {
            tracing::warn!(status, upstream = %self.addr, reason, "WebSocket upgrade failed upstream; answering the client");
            responder.send(Response::error(status));
        }
        ctx.close();
    }

    /// Parses what arrived while waiting for the head.
    fn on_head(&mut self, ctx: &mut Context<'_>) {
        let limits = &self.core.limits;
        loop {
            let parsed = match parse_response(&self.buf, limits, &Method::Get) {
                Ok(Status::Partial) => return,
                Ok(Status::Complete(parsed)) => parsed,
                Err(error) => {
                    return self.fail(ctx, 502, &format!("invalid response head: {error}"));
                }
            };
            let rest = self.buf.split_off(parsed.consumed);
            self.buf = rest;
            let status = parsed.head.status;
            if status == 101 {
                return self.switch(ctx, parsed.head.headers);
            }
            if status < 200 {
                // An interim response (RFC 9110 §15.2): the final one follows.
                continue;
            }
            if let Some(timer) = self.timer.take() {
                ctx.cancel_timer(timer);
            }
            let mut headers = parsed.head.headers;
            strip_hop_by_hop(&mut headers);
            headers.remove("content-length");
            let mut response = Response::new(status);
            *response.headers_mut() = headers;
            let decoder = BodyDecoder::new(parsed.body, limits);
            self.state = State::Refusal(Box::new((response, decoder, BytesMut::new())));
            let input = std::mem::take(&mut self.buf);
            return self.on_refusal(ctx, &input, false);
        }
    }

    /// Collects a refusal's body; sends the response when it ended.
    fn on_refusal(&mut self, ctx: &mut Context<'_>, mut input: &[u8], eof: bool) {
        let State::Refusal(refusal) = &mut self.state else {
            return;
        };
        let (_, decoder, body) = &mut **refusal;
        let mut finished = decoder.is_finished();
        while !input.is_empty() && !finished {
            match decoder.decode(input) {
                Ok(step) => {
                    if body.len() + step.data.len() > MAX_REFUSAL_BODY {
                        return self.fail(ctx, 502, "refusal body over 1 MiB");
                    }
                    body.extend_from_slice(step.data);
                    input = &input[step.consumed..];
                    finished = step.finished;
                    if step.consumed == 0 {
                        break;
                    }
                }
                Err(error) => {
                    return self.fail(ctx, 502, &format!("invalid refusal body: {error}"));
                }
            }
        }
        if !finished && eof {
            if decoder.finish_at_eof().is_err() {
                return self.fail(ctx, 502, "upstream closed inside the refusal body");
            }
            finished = true;
        }
        if !finished {
            return;
        }
        let State::Refusal(refusal) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        let (response, _, body) = *refusal;
        if let Some(responder) = self.shared.borrow_mut().responder.take() {
            responder.send(response.with_body(body.freeze()));
        }
        ctx.close();
    }

    /// The upstream switched: the 101 goes to the client, which takes over when it is out.
    fn switch(&mut self, ctx: &mut Context<'_>, mut headers: crate::http::proto::Headers) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
        ctx.pause_reading();
        let upgrade = headers.get("upgrade").map(Bytes::copy_from_slice);
        strip_hop_by_hop(&mut headers);
        if let Some(upgrade) = upgrade {
            headers.insert("Upgrade", upgrade);
        }
        if let Some(key) = &self.h2_key {
            return self.bridge_h2(ctx, key.clone(), headers);
        }
        let mut response = Response::new(101);
        *response.headers_mut() = headers;
        let mut shared = self.shared.borrow_mut();
        let Some(responder) = shared.responder.take().filter(|r| !r.is_closed()) else {
            drop(shared);
            self.state = State::Done;
            ctx.close();
            return;
        };
        shared.upstream = Some(ctx.id());
        shared.rest = std::mem::take(&mut self.buf);
        // If the client's connection goes before it takes over, nothing else ends this one.
        shared.join_timer = Some(ctx.call_later(self.core.timeouts.response_head));
        drop(shared);
        self.state = State::Switching;
        responder.upgrade(
            response,
            TunnelClient {
                shared: Rc::clone(&self.shared),
                relay: None,
                config: self.core.tunnel.clone(),
                stats: self.core.tunnel_stats.clone(),
            },
        );
    }

    /// An HTTP/2 client's upstream switched: its 101 checked against the key sent and
    /// answered `200` on the stream, which then carries the bridge (`h2_bridge.rs`).
    fn bridge_h2(
        &mut self,
        ctx: &mut Context<'_>,
        key: String,
        headers: crate::http::proto::Headers,
    ) {
        let response = match h2_bridge::accept_response(&key, headers) {
            Ok(response) => response,
            Err(reason) => return self.fail(ctx, 502, reason),
        };
        let mut shared = self.shared.borrow_mut();
        let Some(responder) = shared.responder.take().filter(|r| !r.is_closed()) else {
            drop(shared);
            self.state = State::Done;
            ctx.close();
            return;
        };
        let bridge = Bridge::new(
            ctx.id(),
            std::mem::take(&mut self.buf),
            self.core.tunnel.idle_timeout,
        );
        // If the client's stream goes before it takes over, nothing else ends this one.
        bridge.borrow_mut().join_timer = Some(ctx.call_later(self.core.timeouts.response_head));
        shared.bridge = Some(Rc::clone(&bridge));
        drop(shared);
        self.state = State::Switching;
        responder.carry(response, StreamBridge::new(bridge));
    }
}

impl Protocol for UpgradeUpstream {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        if let Some(head) = self.head.take() {
            ctx.write_bytes(head);
        }
        self.timer = Some(ctx.call_later(self.core.timeouts.response_head));
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if let Some(relay) = self.relay() {
            return relay.data_received(ctx, data);
        }
        if let Some(bridge) = self.bridge() {
            return bridge.borrow_mut().upstream_data(ctx, data);
        }
        match &self.state {
            State::Head => {
                if self.buf.len() + data.len() > self.core.limits.max_head + 64 * 1024 {
                    return self.fail(ctx, 502, "response head too large");
                }
                self.buf.extend_from_slice(data);
                self.on_head(ctx);
            }
            State::Refusal(..) => self.on_refusal(ctx, data, false),
            // Reading is paused until the join; anything here came in the same read.
            State::Switching => self.shared.borrow_mut().rest.extend_from_slice(data),
            State::Done => {}
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        if let Some(relay) = self.relay() {
            return relay.eof_received(ctx);
        }
        if let Some(bridge) = self.bridge() {
            return bridge.borrow_mut().upstream_eof(ctx);
        }
        match &self.state {
            State::Head => self.fail(ctx, 502, "upstream closed before its response head"),
            State::Refusal(..) => self.on_refusal(ctx, &[], true),
            State::Switching | State::Done => ctx.close(),
        }
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        if let Some(relay) = self.relay() {
            relay.pause_writing(ctx);
        }
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if let Some(relay) = self.relay() {
            relay.write_drained(ctx);
        }
        if let Some(bridge) = self.bridge() {
            bridge.borrow().upstream_drained(ctx);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if let Some(bridge) = self.bridge() {
            let mut b = bridge.borrow_mut();
            if b.idle_timer_fired(ctx, timer) {
                return;
            }
            if b.join_timer == Some(timer) {
                b.join_timer = None;
                if !b.started() {
                    // The client's stream never took over (it went before the 200).
                    drop(b);
                    self.state = State::Done;
                    ctx.close();
                }
                return;
            }
        }
        if self.timer == Some(timer) {
            self.timer = None;
            if matches!(self.state, State::Head | State::Refusal(..)) {
                self.fail(ctx, 504, "no response head in time");
            }
            return;
        }
        let mut shared = self.shared.borrow_mut();
        if shared.join_timer == Some(timer) {
            shared.join_timer = None;
            if shared.relay.is_none() {
                // The client's side never took over (it went away after the 101 was queued).
                shared.upstream = None;
                drop(shared);
                self.state = State::Done;
                ctx.close();
            }
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        if let Some(relay) = self.relay() {
            return relay.connection_lost(ctx, reason);
        }
        if let Some(bridge) = self.bridge() {
            return bridge.borrow_mut().upstream_lost(ctx, &reason);
        }
        self.shared.borrow_mut().upstream = None;
        // Before connection_made the connect failed: `forward_upgrade` answers.
        if matches!(self.state, State::Head | State::Refusal(..)) && self.head.is_none() {
            self.fail(
                ctx,
                502,
                &format!("upstream lost before its answer: {reason}"),
            );
        }
    }
}

/// The client connection's protocol after the 101.
struct TunnelClient {
    shared: Rc<RefCell<Shared>>,
    relay: Option<Relay>,
    config: RelayConfig,
    stats: crate::proxy::RelayStats,
}

impl Protocol for TunnelClient {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let mut shared = self.shared.borrow_mut();
        let Some(upstream) = shared.upstream else {
            // The upstream went away before the client's side took over.
            drop(shared);
            ctx.close();
            return;
        };
        if let Some(timer) = shared.join_timer.take() {
            ctx.other(upstream).cancel_timer(timer);
        }
        let rest = std::mem::take(&mut shared.rest);
        let (relay, upstream_side) =
            Relay::join(ctx, upstream, true, &rest, &self.config, &self.stats);
        shared.relay = Some(upstream_side);
        self.relay = Some(relay);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if let Some(relay) = &self.relay {
            relay.data_received(ctx, data);
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        match &self.relay {
            Some(relay) => relay.eof_received(ctx),
            None => ctx.close(),
        }
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        if let Some(relay) = &self.relay {
            relay.pause_writing(ctx);
        }
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if let Some(relay) = &self.relay {
            relay.write_drained(ctx);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if let Some(relay) = &self.relay {
            relay.timer_fired(ctx, timer);
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        if let Some(relay) = &self.relay {
            relay.connection_lost(ctx, reason);
        }
    }
}

/// The relay settings of tunnels: `timeouts.tunnel` idle, `timeouts.write` stalls.
pub(super) fn relay_config(tunnel: Duration, write: Duration) -> RelayConfig {
    RelayConfig {
        idle_timeout: Some(tunnel).filter(|d| !d.is_zero()),
        write_timeout: Some(write).filter(|d| !d.is_zero()),
        ..RelayConfig::default()
    }
}
