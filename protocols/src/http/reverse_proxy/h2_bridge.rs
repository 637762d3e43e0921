//! WebSocket over HTTP/2 (RFC 8441) bridged to an HTTP/1.1 upstream: a client's extended
//! CONNECT (`:protocol websocket`) becomes an `Upgrade: websocket` request on a connection
//! of its own to the upstream (`tunnel.rs` connects, sends it and reads the answer), and
//! after the upstream's `101` the stream's DATA and the upstream's bytes are relayed both
//! ways.
//!
//! Owns: the handshake's translation ([`upstream_key`] for the upstream leg's
//! `Sec-WebSocket-Key`, [`accept_response`]: the 101 checked against that key and turned
//! into the stream's `200`), [`Bridge`] (the state both legs share) and [`StreamBridge`],
//! the [`StreamProtocol`] the HTTP/2 connection runs on the stream.
//! Contract:
//! - the upstream request is a `GET` of the CONNECT's `:path` with `Host` from
//!   `:authority`, `Connection: Upgrade`, `Upgrade: websocket`, a fresh key, and the
//!   client's `Sec-WebSocket-Version`, `-Protocol` and `-Extensions` (end to end: the
//!   proxy does not parse frames, so what the upstream negotiates holds for the client);
//! - a `101` whose `Sec-WebSocket-Accept` is not the key's is 502; a valid one becomes
//!   `200` with the upstream's `Sec-WebSocket-Protocol`/`-Extensions` (and its other
//!   end-to-end fields), the stream then carries the bridge;
//! - backpressure both ways: the client's DATA is written to the upstream and its window
//!   given back ([`Carrier::release`]) only while the upstream connection is writable; the
//!   upstream's bytes wait in at most [`MAX_PENDING`] (then its reading pauses) until the
//!   stream can take them (its flow-control window);
//! - ends: the upstream's EOF is the stream's END_STREAM (after what was pending), the
//!   client's END_STREAM a half-close of the upstream; the upstream lost by an error is a
//!   RST_STREAM; the stream reset or the HTTP/2 connection lost closes the upstream.
//!
//! - idle: after `timeouts.tunnel` without a byte either way the stream is reset and the
//!   upstream closed (checked by a timer on the upstream connection).
//!
//! Does not: splice (bytes cross an HTTP/2 framing), parse WebSocket frames, or bridge to
//! an HTTP/2 upstream (extended CONNECT on both legs).
//! Tests: `protocols/cli/tests/ws_interop.rs` (our HTTP/2 client through `serve
//! http-proxy` to Python's `websockets`, both backends).

use std::cell::RefCell;
use std::rc::Rc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use ring::rand::SecureRandom;
use std::time::{Duration, Instant};

use ringwork::{ConnId, Context, LostReason, TimerId};

use crate::http::proto::Headers;
use crate::http::server::Response;
use crate::kit::nested::{Carrier, StreamProtocol};
use crate::websocket::proto::handshake::accept_key;

/// Upstream bytes held for the stream before the upstream's reading pauses.
pub const MAX_PENDING: usize = 256 * 1024;

/// A fresh `Sec-WebSocket-Key` for the upstream leg (16 random bytes, base64); `None` if
/// the system's generator fails.
pub(super) fn upstream_key() -> Option<String> {
    let mut raw = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut raw).ok()?;
    Some(BASE64.encode(raw))
}

/// The stream's `200` for the upstream's `101` (RFC 8441 §5: a 2xx accepts; no
/// `Sec-WebSocket-Accept` on HTTP/2), or why the 101 is not acceptable.
pub(super) fn accept_response(key: &str, mut headers: Headers) -> Result<Response, &'static str> {
    let expected = accept_key(key.as_bytes());
    if headers.get_str("sec-websocket-accept").map(str::trim) != Some(expected.as_str()) {
        return Err("the upstream's Sec-WebSocket-Accept does not match the key sent");
    }
    if !headers.has_token("upgrade", "websocket") {
        return Err("the upstream's 101 is not to websocket");
    }
    // Hop-by-hop fields were stripped by the caller; these belong to the HTTP/1.1 leg.
    headers.remove("upgrade");
    headers.remove("sec-websocket-accept");
    let mut response = Response::new(200);
    *response.headers_mut() = headers;
    Ok(response)
}

/// What the upstream connection and the stream share.
#[derive(Debug, Default)]
pub(super) struct Bridge {
    /// The HTTP/2 connection carrying the stream, once the stream started.
    carrier: Option<ConnId>,
    /// The upstream connection, until it is lost.
    upstream: Option<ConnId>,
    /// Upstream bytes not yet given to the stream.
    to_client: BytesMut,
    /// The upstream ended its side.
    upstream_eof: bool,
    /// The upstream was lost by an error (not after its EOF): the stream is reset.
    upstream_failed: bool,
    /// The upstream's reading is paused by the bridge (`to_client` is full, or the stream
    /// has not started).
    reading_paused: bool,
    /// Client bytes written upstream and not yet released to the stream's window.
    held: usize,
    /// The client ended its side of the stream.
    client_eof: bool,
    /// The upstream's timer bounding the wait for the stream to start.
    pub(super) join_timer: Option<TimerId>,
    /// `timeouts.tunnel`: the bridge ends after this long without a byte either way.
    idle: Option<Duration>,
    /// The last byte either way.
    last_activity: Option<Instant>,
    /// The upstream's timer checking `idle`.
    idle_timer: Option<TimerId>,
    /// The bridge was idle too long: the stream is reset, the upstream closed.
    expired: bool,
}

impl Bridge {
    /// A bridge for `upstream`, whose reading is paused, holding `rest` (bytes that came
    /// behind the 101).
    /// `idle`: the idle timeout (`None`: none).
    pub(super) fn new(
        upstream: ConnId,
        rest: BytesMut,
        idle: Option<Duration>,
    ) -> Rc<RefCell<Bridge>> {
        Rc::new(RefCell::new(Bridge {
            upstream: Some(upstream),
            to_client: rest,
            reading_paused: true,
            idle,
            ..Bridge::default()
        }))
    }

    /// The upstream's timer `timer` fired (`ctx` is the upstream's): whether it was the
    /// idle timer (then the bridge ends, or the timer is armed for the rest of the period).
    pub(super) fn idle_timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) -> bool {
        if self.idle_timer != Some(timer) {
            return false;
        }
        self.idle_timer = None;
        let (Some(idle), Some(last)) = (self.idle, self.last_activity) else {
            return true;
        };
        let quiet = ctx.now().saturating_duration_since(last);
        if quiet >= idle {
            tracing::debug!(upstream = %ctx.id(), ?idle, "idle WebSocket bridge closed");
            self.expired = true;
            self.wake(ctx);
        } else {
            self.idle_timer = Some(ctx.call_later(idle - quiet));
        }
        true
    }

    /// Whether the stream took over.
    pub(super) fn started(&self) -> bool {
        self.carrier.is_some()
    }

    /// Asks the carrying connection to drive the stream (from the upstream's callbacks).
    fn wake(&self, ctx: &Context<'_>) {
        if let Some(carrier) = self.carrier {
            ctx.handle().wake(carrier);
        }
    }

    /// The upstream sent `data` (`ctx` is the upstream's).
    pub(super) fn upstream_data(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.last_activity = Some(ctx.now());
        self.to_client.extend_from_slice(data);
        if self.to_client.len() >= MAX_PENDING && !self.reading_paused {
            ctx.pause_reading();
            self.reading_paused = true;
        }
        self.wake(ctx);
    }

    /// The upstream ended its side.
    pub(super) fn upstream_eof(&mut self, ctx: &mut Context<'_>) {
        self.upstream_eof = true;
        if self.client_eof {
            ctx.close();
        }
        self.wake(ctx);
    }

    /// The upstream's writes drained: the stream may release more of the client's window.
    pub(super) fn upstream_drained(&self, ctx: &Context<'_>) {
        self.wake(ctx);
    }

    /// The upstream connection is gone.
    pub(super) fn upstream_lost(&mut self, ctx: &Context<'_>, reason: &LostReason) {
        self.upstream = None;
        if !self.upstream_eof && !matches!(reason, LostReason::Done) {
            self.upstream_failed = true;
        }
        self.upstream_eof = true;
        self.wake(ctx);
    }
}

/// The stream's side of a [`Bridge`], run by the HTTP/2 connection.
#[derive(Debug)]
pub(super) struct StreamBridge {
    bridge: Rc<RefCell<Bridge>>,
    /// Our END_STREAM went out.
    ended: bool,
    done: bool,
}

impl StreamBridge {
    pub(super) fn new(bridge: Rc<RefCell<Bridge>>) -> Self {
        Self {
            bridge,
            ended: false,
            done: false,
        }
    }

    /// Ends the bridge: the upstream (if still there) is closed, or aborted when `abort`.
    fn finish(&mut self, ctx: &mut Context<'_>, abort: bool) {
        self.done = true;
        let upstream = self.bridge.borrow_mut().upstream.take();
        if let Some(upstream) = upstream {
            let mut up = ctx.other(upstream);
            if abort { up.abort() } else { up.close() }
        }
    }
}

impl StreamProtocol for StreamBridge {
    fn start(&mut self, ctx: &mut Context<'_>) {
        let mut b = self.bridge.borrow_mut();
        b.carrier = Some(ctx.id());
        let upstream = b.upstream;
        b.last_activity = Some(ctx.now());
        if let Some(upstream) = upstream {
            if let Some(timer) = b.join_timer.take() {
                ctx.other(upstream).cancel_timer(timer);
            }
            if let Some(idle) = b.idle {
                b.idle_timer = Some(ctx.other(upstream).call_later(idle));
            }
            if b.to_client.len() < MAX_PENDING {
                ctx.other(upstream).resume_reading();
                b.reading_paused = false;
            }
        }
    }

    fn input(&mut self, data: &[u8], ctx: &mut Context<'_>) {
        let mut b = self.bridge.borrow_mut();
        // Counted even when the upstream is gone: the stream ends soon, and a window that
        // never reopens would hold the client's last bytes.
        b.held += data.len();
        b.last_activity = Some(ctx.now());
        if let Some(upstream) = b.upstream {
            ctx.other(upstream).write(data);
        }
    }

    fn eof(&mut self, ctx: &mut Context<'_>) {
        let mut b = self.bridge.borrow_mut();
        b.client_eof = true;
        if let Some(upstream) = b.upstream {
            let mut up = ctx.other(upstream);
            if b.upstream_eof {
                up.close();
            } else {
                up.shutdown_write();
            }
        }
    }

    fn lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        if !self.done {
            self.finish(ctx, !matches!(reason, LostReason::Done));
        }
    }

    fn timer_fired(&mut self, _ctx: &mut Context<'_>, _timer: TimerId) -> bool {
        false
    }

    fn drive(&mut self, ctx: &mut Context<'_>, carrier: &mut dyn Carrier) -> bool {
        if self.done {
            return false;
        }
        let mut progressed = false;
        let mut b = self.bridge.borrow_mut();
        if !b.to_client.is_empty() && carrier.writable() {
            carrier.send(b.to_client.split().freeze());
            progressed = true;
        }
        let upstream = b.upstream;
        if let Some(upstream) = upstream {
            let mut up = ctx.other(upstream);
            if b.reading_paused && b.to_client.is_empty() && carrier.writable() {
                up.resume_reading();
                b.reading_paused = false;
            }
            // Flow control as backpressure: the client's window reopens only as the
            // upstream takes its bytes.
            if b.held > 0 && up.is_writable() {
                carrier.release(std::mem::take(&mut b.held));
                progressed = true;
            }
        } else if b.held > 0 {
            carrier.release(std::mem::take(&mut b.held));
        }
        if b.upstream_failed || b.expired {
            drop(b);
            carrier.reset();
            self.finish(ctx, true);
            return true;
        }
        if b.upstream_eof && b.to_client.is_empty() && !self.ended {
            self.ended = true;
            carrier.end();
            progressed = true;
        }
        let finished = self.ended && (b.client_eof || b.upstream.is_none());
        drop(b);
        if finished {
            self.finish(ctx, false);
            progressed = true;
        }
        progressed
    }

    fn is_done(&self) -> bool {
        self.done
    }
}
