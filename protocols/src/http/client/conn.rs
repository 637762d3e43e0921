//! One client connection on the kit adapter: the [`ClientConn`] machine's events become
//! [`Exchange`] (sink) calls, and what the pool, the upload pump and paused sinks post
//! becomes machine calls.
//!
//! Owns: [`ClientApp`] (the glue of one connection), its [`Command`]s and the
//! [`ConnStatus`] it publishes (idle, reserved by the pool, ready for upload pieces), the
//! [`Exchange`] in flight (type-erased over its [`ResponseSink`]), and the mapping of a lost
//! connection to a [`ClientError`].
//! Contract: one exchange at a time. A connection whose response ended reusable goes back
//! to the pool (or straight to a waiting request); anything else closes it. Every failure
//! reaches the exchange once, marked retryable when it happened on a reused connection
//! before any response byte; an exchange posted to a connection that never connected fails
//! with the connect's error. Commands carry the exchange they belong to: one that arrives
//! after its exchange ended (a sink's late resume) is dropped, so it can never touch the
//! next request on the same connection.
//! Does not: parse or frame (the machine does), pick connections or retry (`pool.rs`,
//! `mod.rs`).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use ringwork::{Context, LostReason, Resolver};

use crate::http::client::body::{self, Upload};
use crate::http::client::error::ClientError;
use crate::http::client::pool::{self, PoolKey, Release};
use crate::http::client::{Flow, Inner, ResponseSink};
use crate::http::proto::client::{ClientConn, ClientEvent, ExchangeError, OutgoingRequest};
use crate::http::proto::{Headers, ResponseHead};
use crate::kit::adapter::{Application, Mailbox, MailboxSender};

/// The pool's and the pumps' handle on a connection.
pub(crate) type Conn = MailboxSender<Command, ConnStatus>;

/// What the pool, an upload pump or a paused sink asks of a connection.
pub(crate) enum Command {
    /// Start an exchange (the connection was opened or reserved for it).
    Send {
        exchange: Box<dyn Exchange>,
        request: OutgoingRequest,
        upload: Option<Upload>,
        reused: bool,
    },
    /// A piece of the streamed request body of exchange `n`.
    UploadPiece(u64, Bytes),
    /// The streamed request body of exchange `n` ended.
    UploadEnd(u64),
    /// The streamed request body of exchange `n` failed: abort with this error.
    UploadFailed(u64, ClientError),
    /// The sink of exchange `n` may take more body (`true`), or gave up (`false`).
    Resume(u64, bool),
    /// Close an idle connection (the pool evicts it).
    Close,
}

/// What a connection publishes to the pool and its pumps.
#[derive(Debug, Default)]
pub(crate) struct ConnStatus {
    /// It can take a request (no exchange, not closing).
    pub(crate) idle: bool,
    /// The pool handed it to a request whose `Send` is on its way.
    pub(crate) reserved: bool,
    /// The exchange whose upload may send another piece now.
    pub(crate) upload_ready: Option<u64>,
}

/// The exchange in flight on a connection, seen without its sink's type.
pub(crate) trait Exchange {
    /// Whether the caller stopped waiting (its future was dropped).
    fn is_canceled(&self) -> bool;
    /// The final response head arrived.
    fn head(&mut self, ctx: &mut Context<'_>, head: ResponseHead);
    /// Body bytes arrived.
    fn data(&mut self, ctx: &mut Context<'_>, data: Bytes) -> Flow;
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
    pub(crate) sink: S,
    pub(crate) resolver: Resolver<Outcome<S>>,
}

impl<S: ResponseSink> Exchange for Pending<S> {
    fn is_canceled(&self) -> bool {
        self.resolver.is_canceled()
    }

    fn head(&mut self, ctx: &mut Context<'_>, head: ResponseHead) {
        self.sink.head(ctx, head);
    }

    fn data(&mut self, ctx: &mut Context<'_>, data: Bytes) -> Flow {
        self.sink.data(ctx, data)
    }

    fn finish(self: Box<Self>, ctx: &mut Context<'_>, trailers: Option<Headers>) {
        let Pending { mut sink, resolver } = *self;
        sink.end(ctx, trailers);
        resolver.resolve(Outcome::Done(sink));
    }

    fn fail(self: Box<Self>, error: ClientError, retryable: bool) {
        let Pending { sink, resolver } = *self;
        let retry = retryable.then_some(sink);
        resolver.resolve(Outcome::Failed { error, retry });
    }
}

/// The glue of one client connection.
pub(crate) struct ClientApp {
    client: Rc<Inner>,
    /// The server (address and TLS identity) whose pool this connection belongs to.
    key: PoolKey,
    exchange: Option<Box<dyn Exchange>>,
    /// Counts exchanges on this connection; commands name the one they belong to.
    serial: u64,
    /// Whether the current exchange runs on a connection that served an earlier one.
    reused: bool,
    /// Why the connection was aborted on purpose (a failed upload), for the exchange.
    abort_reason: Option<ClientError>,
    /// Why the connection ended when no exchange was there to take it (a connect that
    /// failed before the first `Send` ran): for that `Send`.
    lost_reason: Option<ClientError>,
    /// Its own handle, for the pool.
    conn: Option<Conn>,
    /// Whether the pool was told this connection is gone.
    gone: bool,
}

impl ClientApp {
    /// The glue of a new connection to `key`. It holds a connection slot of the pool from
    /// now on and frees it when lost or dropped.
    pub(crate) fn new(client: Rc<Inner>, key: PoolKey) -> Self {
        Self {
            client,
            key,
            exchange: None,
            serial: 0,
            reused: false,
            abort_reason: None,
            lost_reason: None,
            conn: None,
            gone: false,
        }
    }

    /// Gives the glue its own handle (before the connection is opened).
    pub(crate) fn set_conn(&mut self, conn: Conn) {
        self.conn = Some(conn);
    }

    /// Fails the exchange in flight, if any.
    fn fail(&mut self, error: ClientError, received: bool) {
        if let Some(exchange) = self.exchange.take() {
            exchange.fail(error, self.reused && !received);
        }
    }

    fn start(
        &mut self,
        machine: &mut ClientConn,
        exchange: Box<dyn Exchange>,
        request: OutgoingRequest,
        upload: Option<Upload>,
        reused: bool,
    ) {
        if machine.send_request(request).is_err() {
            // Gone before the request could go out: with the connect's error if it never
            // connected; else as if it failed at once, before any byte (safe to resend).
            match self.lost_reason.take() {
                Some(error) => exchange.fail(error, false),
                None => exchange.fail(ClientError::Closed, reused),
            }
            return;
        }
        self.serial += 1;
        self.exchange = Some(exchange);
        self.reused = reused;
        self.abort_reason = None;
        self.client.count(|s| {
            s.requests_sent += 1;
            if reused {
                s.reused += 1;
            }
        });
        if let (Some(upload), Some(conn)) = (upload, &self.conn) {
            let pump = body::pump(conn.clone(), self.serial, upload);
            drop(self.client.handle.spawn_local(pump));
        }
    }

    /// The response ended: finish the exchange, then pool or close the connection.
    fn end(
        &mut self,
        machine: &mut ClientConn,
        ctx: &mut Context<'_>,
        trailers: Option<Headers>,
        reusable: bool,
    ) {
        if let Some(exchange) = self.exchange.take() {
            exchange.finish(ctx, trailers);
        }
        // The sink may have closed the connection; during a shutdown nothing is kept.
        if !reusable || !ctx.is_open() || self.client.stopping.get() {
            machine.close();
            return;
        }
        let Some(conn) = self.conn.clone() else {
            machine.close();
            return;
        };
        match pool::release(&self.client, &self.key, &conn) {
            Release::Pooled => {}
            Release::Close => machine.close(),
            Release::Waiter(resolver) => {
                conn.status_mut().reserved = true;
                resolver.resolve(pool::Lease::reuse(&self.client, self.key.clone(), &conn));
            }
        }
    }

    /// A sink asked to hold the body: pause until its future says go on.
    fn pause(
        &mut self,
        machine: &mut ClientConn,
        ctx: &Context<'_>,
        until: Pin<Box<dyn Future<Output = bool>>>,
    ) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        machine.set_paused(true);
        let serial = self.serial;
        drop(ctx.handle().spawn_local(async move {
            let go_on = until.await;
            let _ = conn.post(Command::Resume(serial, go_on));
        }));
    }
}

/// The client error for a machine's.
fn client_error(error: ExchangeError) -> ClientError {
    match error {
        ExchangeError::Protocol(error) => ClientError::Protocol(error),
        ExchangeError::BodyTooLarge { limit } => ClientError::BodyTooLarge { limit },
        ExchangeError::ResponseTimeout { timeout } => ClientError::ResponseTimeout { timeout },
        ExchangeError::BodyTimeout { timeout } => ClientError::BodyTimeout { timeout },
        ExchangeError::Closed => ClientError::Closed,
        ExchangeError::RequestBodyLength { declared, sent } => {
            ClientError::RequestBodyLength { declared, sent }
        }
    }
}

impl Application<ClientConn> for ClientApp {
    type Command = Command;
    type Status = ConnStatus;

    fn connected(
        &mut self,
        machine: &mut ClientConn,
        ctx: &mut Context<'_>,
        _mailbox: &Mailbox<Command, ConnStatus>,
    ) {
        // RFC 7301 §3.2: the protocol ALPN picked is the one spoken; HTTP/1.1 bytes on a
        // connection the server now reads as HTTP/2 would be answered with a GOAWAY.
        if ctx.tls().and_then(|t| t.alpn.as_deref()) == Some(b"h2") {
            // The request waiting in the mailbox fails with this (nothing was sent).
            self.lost_reason = Some(ClientError::Http1NotNegotiated {
                addr: self.key.addr,
            });
            machine.abort();
            ctx.abort();
        }
    }

    fn event(
        &mut self,
        machine: &mut ClientConn,
        event: ClientEvent,
        ctx: &mut Context<'_>,
        _mailbox: &Mailbox<Command, ConnStatus>,
    ) {
        if self.exchange.as_ref().is_some_and(|e| e.is_canceled())
            && !matches!(event, ClientEvent::Failed { .. })
        {
            // Nobody waits for this response: stop reading it.
            self.exchange = None;
            machine.abort();
            return;
        }
        match event {
            ClientEvent::Head(head) => {
                if let Some(exchange) = self.exchange.as_mut() {
                    exchange.head(ctx, head);
                }
            }
            ClientEvent::Data(data) => {
                let flow = match self.exchange.as_mut() {
                    Some(exchange) => exchange.data(ctx, data),
                    None => Flow::Continue,
                };
                if let Flow::Pause(until) = flow {
                    self.pause(machine, ctx, until);
                }
            }
            ClientEvent::End { trailers, reusable } => self.end(machine, ctx, trailers, reusable),
            ClientEvent::Failed { error, received } => {
                let error = self
                    .abort_reason
                    .take()
                    .unwrap_or_else(|| client_error(error));
                // A timeout is not retryable: the server may be working on the request.
                let received = received
                    || matches!(
                        error,
                        ClientError::ResponseTimeout { .. } | ClientError::BodyTimeout { .. }
                    );
                self.fail(error, received);
            }
        }
    }

    fn command(&mut self, machine: &mut ClientConn, command: Command, _ctx: &mut Context<'_>) {
        match command {
            Command::Send {
                exchange,
                request,
                upload,
                reused,
            } => self.start(machine, exchange, request, upload, reused),
            Command::UploadPiece(serial, piece) if serial == self.serial => {
                if let Err(error) = machine.send_body(piece) {
                    self.abort_reason = Some(client_error(error));
                }
            }
            Command::UploadEnd(serial) if serial == self.serial => {
                if let Err(error) = machine.finish_body() {
                    self.abort_reason = Some(client_error(error));
                }
            }
            Command::UploadFailed(serial, error) if serial == self.serial => {
                self.abort_reason = Some(error);
                machine.abort();
            }
            Command::Resume(serial, go_on) if serial == self.serial && self.exchange.is_some() => {
                if go_on {
                    machine.set_paused(false);
                } else {
                    // The sink's side is gone: the rest of the response is not worth reading.
                    machine.abort();
                }
            }
            Command::Close => {
                if machine.is_idle() {
                    machine.close();
                }
            }
            // For an exchange that is over.
            Command::UploadPiece(..)
            | Command::UploadEnd(_)
            | Command::UploadFailed(..)
            | Command::Resume(..) => {}
        }
    }

    fn settled(
        &mut self,
        machine: &mut ClientConn,
        _ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, ConnStatus>,
    ) {
        {
            let mut status = mailbox.status_mut();
            status.idle = machine.is_idle();
            if !status.idle {
                status.reserved = false;
            }
            status.upload_ready = machine.upload_ready().then_some(self.serial);
        }
        mailbox.wake_waiters();
    }

    fn lost(&mut self, machine: &mut ClientConn, _ctx: &mut Context<'_>, reason: LostReason) {
        let error = match (self.abort_reason.take(), reason) {
            (Some(error), _) => error,
            (None, LostReason::ConnectTimeout) => ClientError::ConnectTimeout {
                addr: self.key.addr,
                timeout: self.client.config.connect_timeout,
            },
            (None, LostReason::ConnectFailed(error)) => ClientError::Connect {
                addr: self.key.addr,
                source: error.source,
            },
            // A server reached whose TLS handshake failed is a TLS error, as for an address.
            (None, LostReason::HostConnect(error)) => {
                match error
                    .attempts
                    .iter()
                    .rev()
                    .find_map(|a| Some((a.addr, a.tls.clone()?)))
                {
                    Some((addr, error)) => ClientError::Tls { addr, error },
                    None => ClientError::ConnectHost(error),
                }
            }
            // A failed handshake (never connected), or a TLS error later.
            (None, LostReason::Tls(error)) => ClientError::Tls {
                addr: self.key.addr,
                error,
            },
            (None, _) => ClientError::Closed,
        };
        // The machine reports the failure as an event right after this, which then finds
        // no exchange: the engine's reason is the better one. Without an exchange (a
        // connect that failed), it is kept for the `Send` still in the mailbox.
        if self.exchange.is_some() {
            self.fail(error, machine.received());
        } else {
            self.lost_reason = Some(error);
        }
        self.gone = true;
        if let Some(conn) = &self.conn {
            pool::conn_gone(&self.client, &self.key, conn);
        }
    }
}

impl Drop for ClientApp {
    /// Frees the slot of a connection dropped without `connection_lost`: its socket could
    /// not be created, or a sink callback panicked (the engine then drops the protocol).
    /// The exchange's resolver drops with it, so its future fails with `Closed`.
    fn drop(&mut self) {
        if !self.gone {
            self.gone = true;
            if let Some(conn) = &self.conn {
                pool::conn_gone(&self.client, &self.key, conn);
            }
        }
    }
}
