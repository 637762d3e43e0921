//! One client connection: the [`Protocol`] that sends requests and reads responses.
//!
//! Owns: [`ClientConn`] and the state it shares with the pool ([`ConnState`]), the
//! [`Exchange`] in flight (type-erased over its [`ResponseSink`]), the response and idle
//! timers.
//! Contract: at most one exchange per connection (no pipelining). Response bytes go
//! through `parse_response` (1xx interim heads skipped) and a `BodyDecoder`; the sink gets
//! the head, each data slice (a view of the receive buffer, no copy, except body bytes that
//! arrived in the same read as the head), then the end. A connection returns to the pool
//! only when the body ended exactly at the end of the input, both sides allow keep-alive
//! and the sink left it open; anything else closes it. Every failure reaches the exchange
//! once, marked retryable when it happened on a reused connection before any response byte.
//! Does not: pick connections or retry (see `pool.rs` and `mod.rs`).
//! Spec: RFC 9112 §6.3 (message length), §9.3 (persistence), §9.6 (closing);
//! RFC 9110 §15.2 (1xx).

use std::cell::RefCell;
use std::rc::Rc;

use std::task::Waker;

use bytes::{Bytes, BytesMut};
use ringwork::{ConnId, Context, LostReason, Protocol, Resolver, TimerId};

use crate::http::client::body::{self, Upload};

use crate::http::client::error::ClientError;
use crate::http::client::pool::{self, PoolKey, Release};
use crate::http::client::{Inner, ResponseSink};
use crate::http::proto::{
    BodyDecoder, BodyKind, Headers, Method, ResponseHead, Status as ParseStatus, parse_response,
};

/// Where a connection is in its life.
pub(crate) enum Phase {
    /// Connecting, with its first exchange waiting.
    Connecting,
    /// Request sent; reading the response head (bytes so far).
    Head(BytesMut),
    /// Reading the body.
    Body {
        decoder: BodyDecoder,
        /// Whether the connection may be reused after this response.
        keep_alive: bool,
    },
    /// In the pool, no exchange.
    Idle,
    /// Taken from the pool for a request that is about to be sent.
    Reserved,
    /// Closing or gone.
    Closed,
}

impl Phase {
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self, Phase::Idle)
    }
}

/// The state a connection shares with the pool and with requests being dispatched.
pub(crate) struct ConnState {
    /// The connection (set once `connect` returns).
    pub(crate) id: Option<ConnId>,
    pub(crate) phase: Phase,
    /// The exchange in flight.
    pub(crate) exchange: Option<Box<dyn Exchange>>,
    /// The request to write once connected (first exchange only): head and body.
    pub(crate) first_request: Option<(Bytes, Bytes)>,
    /// Whether the current exchange runs on a connection that served an earlier one.
    pub(crate) reused: bool,
    /// Whether any byte of the current response arrived.
    pub(crate) received: bool,
    /// The request asked for `Connection: close`.
    pub(crate) wants_close: bool,
    /// The response timeout while reading the head, the body timeout while reading the
    /// body.
    pub(crate) read_timer: Option<TimerId>,
    pub(crate) idle_timer: Option<TimerId>,
    /// A streamed request body to start once the head is written.
    pub(crate) upload: Option<Upload>,
    /// Whether the current request's body has been written whole (true without a stream).
    pub(crate) upload_done: bool,
    /// The upload waits for `write_drained`.
    pub(crate) upload_blocked: bool,
    /// The connection is gone: the upload stops.
    pub(crate) upload_closed: bool,
    /// Wakes the upload pump (`write_drained`, `connection_lost`).
    pub(crate) upload_waker: Option<Waker>,
    /// Why the upload aborted the connection.
    pub(crate) upload_error: Option<ClientError>,
}

impl ConnState {
    /// A connection about to connect, carrying its first exchange.
    pub(crate) fn connecting(
        exchange: Box<dyn Exchange>,
        request: (Bytes, Bytes),
        wants_close: bool,
        upload: Option<Upload>,
    ) -> Self {
        Self {
            id: None,
            phase: Phase::Connecting,
            exchange: Some(exchange),
            first_request: Some(request),
            reused: false,
            received: false,
            wants_close,
            read_timer: None,
            idle_timer: None,
            upload_done: upload.is_none(),
            upload,
            upload_blocked: false,
            upload_closed: false,
            upload_waker: None,
            upload_error: None,
        }
    }

    /// Prepares a reused connection for an exchange with `upload` (if any).
    pub(crate) fn begin_upload(&mut self, upload: Option<Upload>) {
        self.upload_done = upload.is_none();
        self.upload = upload;
        self.upload_blocked = false;
        self.upload_error = None;
    }

    /// Spawns the upload pump, if this exchange streams its body (call right after the
    /// head is written).
    pub(crate) fn start_upload(this: &Rc<RefCell<Self>>, client: &Rc<Inner>, id: ConnId) {
        let upload = this.borrow_mut().upload.take();
        if let Some(upload) = upload {
            let pump = body::pump(Rc::clone(client), Rc::clone(this), id, upload);
            drop(client.handle.spawn_local(pump));
        }
    }

    /// Wakes the upload pump.
    fn wake_upload(&mut self) {
        if let Some(waker) = self.upload_waker.take() {
            waker.wake();
        }
    }
}

/// The exchange in flight on a connection, seen without its sink's type.
pub(crate) trait Exchange {
    /// The request's method (response framing depends on it).
    fn method(&self) -> &Method;
    /// Whether the caller stopped waiting (its future was dropped).
    fn is_canceled(&self) -> bool;
    /// The final response head arrived.
    fn head(&mut self, ctx: &mut Context<'_>, head: ResponseHead);
    /// Body bytes arrived.
    fn data(&mut self, ctx: &mut Context<'_>, data: &[u8]);
    /// The response is complete.
    fn finish(self: Box<Self>, ctx: &mut Context<'_>, trailers: Option<Headers>);
    /// The exchange failed; `retryable` if nothing of a response arrived on a reused
    /// connection.
    fn fail(self: Box<Self>, error: ClientError, retryable: bool);
}

/// How an exchange ended, as its future sees it.
pub(crate) enum Outcome<S> {
    /// Complete; the sink saw everything.
    Done(S),
    /// Failed; `retry` holds the untouched sink when the request may be sent again.
    Failed {
        error: ClientError,
        retry: Option<S>,
    },
}

/// An [`Exchange`] feeding a typed sink and resolving its future.
pub(crate) struct Pending<S> {
    pub(crate) method: Method,
    pub(crate) sink: S,
    pub(crate) resolver: Resolver<Outcome<S>>,
}

impl<S: ResponseSink> Exchange for Pending<S> {
    fn method(&self) -> &Method {
        &self.method
    }

    fn is_canceled(&self) -> bool {
        self.resolver.is_canceled()
    }

    fn head(&mut self, ctx: &mut Context<'_>, head: ResponseHead) {
        self.sink.head(ctx, head);
    }

    fn data(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.sink.data(ctx, data);
    }

    fn finish(self: Box<Self>, ctx: &mut Context<'_>, trailers: Option<Headers>) {
        let Pending {
            mut sink, resolver, ..
        } = *self;
        sink.end(ctx, trailers);
        resolver.resolve(Outcome::Done(sink));
    }

    fn fail(self: Box<Self>, error: ClientError, retryable: bool) {
        let Pending { sink, resolver, .. } = *self;
        let retry = retryable.then_some(sink);
        resolver.resolve(Outcome::Failed { error, retry });
    }
}

/// The protocol of one client connection.
pub(crate) struct ClientConn {
    state: Rc<RefCell<ConnState>>,
    client: Rc<Inner>,
    /// The server (address and TLS identity) whose pool this connection belongs to.
    key: PoolKey,
    /// Whether the pool was told this connection is gone.
    gone: bool,
}

impl ClientConn {
    /// The protocol of a new connection to `key`. It holds a connection slot of the pool
    /// from now on and frees it when lost or dropped.
    pub(crate) fn new(state: Rc<RefCell<ConnState>>, client: Rc<Inner>, key: PoolKey) -> Self {
        Self {
            state,
            client,
            key,
            gone: false,
        }
    }

    /// Fails the exchange in flight (if any) and marks the connection closed; the caller
    /// closes or aborts it.
    fn fail(&self, state: &mut ConnState, error: ClientError) {
        state.phase = Phase::Closed;
        if let Some(exchange) = state.exchange.take() {
            let retryable = state.reused && !state.received;
            exchange.fail(error, retryable);
        }
    }

    /// Feeds response-head bytes (`buf` holds everything not yet parsed).
    fn on_head(&self, state: &mut ConnState, ctx: &mut Context<'_>, mut buf: BytesMut) {
        let limits = &self.client.config.limits;
        loop {
            let Some(exchange) = state.exchange.as_ref() else {
                // Bytes without a request.
                state.phase = Phase::Closed;
                ctx.abort();
                return;
            };
            let parsed = match parse_response(&buf, limits, exchange.method()) {
                Ok(ParseStatus::Complete(parsed)) => parsed,
                Ok(ParseStatus::Partial) => {
                    state.phase = Phase::Head(buf);
                    return;
                }
                Err(error) => {
                    self.fail(state, ClientError::Protocol(error));
                    ctx.abort();
                    return;
                }
            };
            let rest = buf.split_off(parsed.consumed);
            // RFC 9110 §15.2: a client MUST be able to parse one or more 1xx responses
            // received prior to a final response, even if the client does not expect one.
            // 101 (Switching Protocols) is final: this client never asks for an upgrade,
            // so it ends the exchange and the connection.
            if parsed.head.status < 200 && parsed.head.status != 101 {
                buf = rest;
                continue;
            }
            if let Some(timer) = state.read_timer.take() {
                ctx.cancel_timer(timer);
            }
            state.read_timer = Some(ctx.call_later(self.client.config.body_timeout));
            // The decoder counts a sized body as it arrives; refuse one announced too
            // large before any of it is read.
            if matches!(parsed.body, BodyKind::Length(n) if n > limits.max_body) {
                let limit = limits.max_body;
                self.fail(state, ClientError::BodyTooLarge { limit });
                ctx.abort();
                return;
            }
            let keep_alive = parsed.keep_alive && !state.wants_close && parsed.head.status != 101;
            if let Some(exchange) = state.exchange.as_mut() {
                exchange.head(ctx, parsed.head);
            }
            state.phase = Phase::Body {
                decoder: BodyDecoder::new(parsed.body, limits),
                keep_alive,
            };
            self.on_body(state, ctx, &rest);
            return;
        }
    }

    /// Feeds body bytes.
    fn on_body(&self, state: &mut ConnState, ctx: &mut Context<'_>, mut input: &[u8]) {
        loop {
            let Phase::Body {
                decoder,
                keep_alive,
            } = &mut state.phase
            else {
                return;
            };
            let step = match decoder.decode(input) {
                Ok(step) => step,
                Err(error) => {
                    self.fail(state, ClientError::from_response(error));
                    ctx.abort();
                    return;
                }
            };
            let (finished, keep_alive) = (step.finished, *keep_alive);
            if !step.data.is_empty() {
                if let Some(exchange) = state.exchange.as_mut() {
                    exchange.data(ctx, step.data);
                }
                if !ctx.is_open() {
                    // The sink closed the connection: `connection_lost` fails the exchange.
                    return;
                }
            }
            input = &input[step.consumed..];
            if finished {
                let trailers = decoder.take_trailers();
                // Bytes after the response were not asked for: the connection is not in
                // a known state any more.
                let reusable = keep_alive && input.is_empty();
                self.complete(state, ctx, trailers, reusable);
                return;
            }
            if input.is_empty() || step.consumed == 0 && step.data.is_empty() {
                return;
            }
        }
    }

    /// The response is complete: finish the exchange, then pool or close the connection.
    fn complete(
        &self,
        state: &mut ConnState,
        ctx: &mut Context<'_>,
        trailers: Option<Headers>,
        reusable: bool,
    ) {
        state.phase = Phase::Closed;
        if let Some(timer) = state.read_timer.take() {
            ctx.cancel_timer(timer);
        }
        if let Some(exchange) = state.exchange.take() {
            exchange.finish(ctx, trailers);
        }
        // A body still being uploaded: the server answered early and may not read the rest.
        // During a graceful shutdown nothing is kept idle.
        if !reusable || !ctx.is_open() || !state.upload_done || self.client.stopping.get() {
            ctx.close();
            return;
        }
        if ctx.is_reading_paused() {
            ctx.resume_reading();
        }
        state.phase = Phase::Idle;
        state.reused = true;
        state.received = false;
        state.idle_timer = Some(ctx.call_later(self.client.config.idle_timeout));
        match pool::release(&self.client, &self.key, &self.state) {
            Release::Pooled => {}
            Release::Close => {
                state.phase = Phase::Closed;
                ctx.close();
            }
            Release::Waiter(resolver) => {
                state.phase = Phase::Reserved;
                let lease = pool::Lease::reuse(&self.client, self.key.clone(), &self.state);
                resolver.resolve(lease);
            }
        }
    }
}

impl Protocol for ClientConn {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let mut state = self.state.borrow_mut();
        state.id = Some(ctx.id());
        if let Some((head, body)) = state.first_request.take() {
            ctx.write_bytes(head);
            if !body.is_empty() {
                ctx.write_bytes(body);
            }
            drop(state);
            ConnState::start_upload(&self.state, &self.client, ctx.id());
            state = self.state.borrow_mut();
        }
        if matches!(state.phase, Phase::Connecting) {
            state.phase = Phase::Head(BytesMut::new());
            state.read_timer = Some(ctx.call_later(self.client.config.response_timeout));
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let state = &mut *self.state.borrow_mut();
        if state.exchange.as_ref().is_some_and(|e| e.is_canceled()) {
            // Nobody waits for this response: stop reading it.
            state.exchange = None;
            state.phase = Phase::Closed;
            ctx.abort();
            return;
        }
        match std::mem::replace(&mut state.phase, Phase::Closed) {
            Phase::Head(mut buf) => {
                state.received = true;
                buf.extend_from_slice(data);
                self.on_head(state, ctx, buf);
            }
            phase @ Phase::Body { .. } => {
                state.phase = phase;
                if let Some(timer) = state.read_timer.take() {
                    ctx.cancel_timer(timer);
                }
                state.read_timer = Some(ctx.call_later(self.client.config.body_timeout));
                self.on_body(state, ctx, data);
            }
            Phase::Idle | Phase::Reserved => {
                // RFC 9112 §9.3: bytes on an idle connection (often a 408 before the server
                // closes it) cannot belong to a request: the connection is done.
                ctx.abort();
            }
            phase @ (Phase::Connecting | Phase::Closed) => state.phase = phase,
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        let state = &mut *self.state.borrow_mut();
        match std::mem::replace(&mut state.phase, Phase::Closed) {
            Phase::Body { mut decoder, .. } => match decoder.finish_at_eof() {
                // A close-delimited body ends here.
                Ok(()) => self.complete(state, ctx, None, false),
                Err(error) => self.fail(state, ClientError::from_response(error)),
            },
            Phase::Head(_) => self.fail(state, ClientError::Closed),
            _ => {}
        }
        ctx.close();
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let state = &mut *self.state.borrow_mut();
        if state.read_timer == Some(timer) {
            state.read_timer = None;
            let config = &self.client.config;
            let error = match state.phase {
                // A sink that paused reading (a proxy whose client is slow) is waiting on
                // purpose: the body is not stalled.
                Phase::Body { .. } if ctx.is_reading_paused() => {
                    state.read_timer = Some(ctx.call_later(config.body_timeout));
                    return;
                }
                Phase::Body { .. } => ClientError::BodyTimeout {
                    timeout: config.body_timeout,
                },
                _ => ClientError::ResponseTimeout {
                    timeout: config.response_timeout,
                },
            };
            // Not retryable: the server may be working on the request.
            state.reused = false;
            self.fail(state, error);
            ctx.abort();
        } else if state.idle_timer == Some(timer) {
            state.idle_timer = None;
            if state.phase.is_idle() {
                state.phase = Phase::Closed;
                ctx.close();
            }
        }
    }

    /// Graceful shutdown: idle connections close now (so the reactor need not wait for
    /// the grace period); busy ones finish their exchange and then close.
    fn shutdown_started(&mut self, ctx: &mut Context<'_>) {
        self.client.stopping.set(true);
        let mut state = self.state.borrow_mut();
        if state.phase.is_idle() {
            state.phase = Phase::Closed;
            ctx.close();
        }
    }

    fn write_drained(&mut self, _ctx: &mut Context<'_>) {
        let mut state = self.state.borrow_mut();
        state.upload_blocked = false;
        state.wake_upload();
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        {
            let state = &mut *self.state.borrow_mut();
            state.upload_closed = true;
            state.wake_upload();
            let error = match (&state.phase, reason) {
                _ if state.upload_error.is_some() => {
                    state.upload_error.take().unwrap_or(ClientError::Closed)
                }
                (Phase::Connecting, LostReason::ConnectTimeout) => ClientError::ConnectTimeout {
                    addr: self.key.addr,
                    timeout: self.client.config.connect_timeout,
                },
                (Phase::Connecting, LostReason::ConnectFailed(error)) => ClientError::Connect {
                    addr: self.key.addr,
                    source: error.source,
                },
                // A failed handshake (never connected), or a TLS error later.
                (_, LostReason::Tls(error)) => ClientError::Tls {
                    addr: self.key.addr,
                    error,
                },
                _ => ClientError::Closed,
            };
            self.fail(state, error);
        }
        self.gone = true;
        pool::conn_gone(&self.client, &self.key, &self.state);
    }
}

impl Drop for ClientConn {
    /// Frees the slot of a protocol dropped without `connection_lost`: its socket could
    /// not be created, or a sink callback panicked (the engine then drops the protocol).
    /// The exchange's resolver drops with the state, so its future fails with `Closed`.
    fn drop(&mut self) {
        if !self.gone {
            self.gone = true;
            pool::conn_gone(&self.client, &self.key, &self.state);
        }
    }
}
