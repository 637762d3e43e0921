//! The Protocol API: what a user implements (Twisted's `Protocol` and `Factory`, in Rust).
//!
//! Owns: [`Protocol`], [`Factory`], [`ConnId`] and [`LostReason`].
//! Contract: per connection, callbacks arrive in this order: `connection_made` once, then any
//! number of `data_received`, `eof_received` (at most once), `pause_writing` /
//! `write_drained` pairs and `timer_fired`, then `connection_lost` exactly once — also for
//! an outbound connection that never connected and for a TLS connection whose handshake
//! failed (then without `connection_made`). One
//! exception: an outbound connection written to before it connected can get `pause_writing`
//! (and `write_drained`) before `connection_made`, so a producer learns of backpressure while
//! connecting (a proxy pausing its client). A protocol
//! whose callback panics is dropped without `connection_lost` (see [`LostReason::Panicked`]
//! for what its peers are told).

use std::fmt;

use ringwork_platform::{OpError, SocketId};

use crate::context::Context;
use crate::timers::TimerId;

/// A connection on one core's reactor; valid on that core only. Stale ids (the connection
/// is gone) are ignored by every operation that takes one.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct ConnId(pub(crate) SocketId);

impl ConnId {
    /// An id that names no connection (a slot no driver hands out): the context of a
    /// failure that came before any connection existed.
    pub(crate) fn none() -> Self {
        ConnId(SocketId::from_parts(u32::MAX, 0))
    }

    /// A dense index (the driver's slot): use it to index per-connection tables.
    #[must_use]
    pub fn index(self) -> u32 {
        self.0.slot()
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn {}#{}", self.0.slot(), self.0.generation())
    }
}

/// Why a connection ended, given to [`Protocol::connection_lost`].
#[derive(Debug)]
#[non_exhaustive]
pub enum LostReason {
    /// Closed cleanly: by [`Context::close`] after every byte was sent, or by the default
    /// [`Protocol::eof_received`] after the peer finished.
    Done,
    /// Closed at once by [`Context::abort`] (a reset is sent; unsent bytes are dropped).
    Aborted,
    /// The peer reset the connection (ECONNRESET, EPIPE).
    Reset,
    /// An outbound connection did not connect within its connect timeout.
    ConnectTimeout,
    /// An outbound connection failed to connect (refused, unreachable, ...).
    ConnectFailed(OpError),
    /// Sending or receiving failed with another error.
    Error(OpError),
    /// The peer did not read and the write buffer passed its hard limit; the connection was
    /// aborted to keep memory bounded.
    WriteBufferFull {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection had bytes to send and its peer took none of them for its write-stall
    /// timeout ([`ReactorConfig::write_timeout`](crate::ReactorConfig::write_timeout),
    /// [`Context::set_write_timeout`]); the connection was aborted (a reset is sent).
    WriteStalled {
        /// The timeout.
        after: std::time::Duration,
    },
    /// The reactor shut down before the connection finished.
    Shutdown,
    /// The protocol on the *other* end of a relationship panicked. A protocol that panics
    /// itself is dropped without any callback; its connection is aborted.
    Panicked,
    /// TLS ended the connection: a failed or timed-out handshake (then `connection_made` was
    /// never called), or an error after it. The peer got rustls's alert first.
    Tls(crate::tls::TlsError),
    /// A listener preamble (PROXY protocol header) was invalid, incomplete when the peer
    /// closed, or late; the protocol never started.
    Preamble(String),
    /// A connect by name ([`Context::connect_host`], a client endpoint) made no connection:
    /// the name has no address, every attempt failed, or its connect timeout passed. The
    /// error names the host and says what happened to each address; its
    /// [`kind`](crate::HostConnectError::kind) is this reason's kind
    /// ([`LostKind::ConnectFailed`] or [`LostKind::ConnectTimeout`]). `connection_made` was
    /// never called, and the context of this `connection_lost` names no connection.
    HostConnect(Box<crate::HostConnectError>),
}

/// The kind of a [`LostReason`], without its data: `Copy` and comparable (for matching,
/// counting and tests).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum LostKind {
    /// [`LostReason::Done`].
    Done,
    /// [`LostReason::Aborted`].
    Aborted,
    /// [`LostReason::Reset`].
    Reset,
    /// [`LostReason::ConnectTimeout`].
    ConnectTimeout,
    /// [`LostReason::ConnectFailed`].
    ConnectFailed,
    /// [`LostReason::Error`].
    Error,
    /// [`LostReason::WriteBufferFull`].
    WriteBufferFull,
    /// [`LostReason::WriteStalled`].
    WriteStalled,
    /// [`LostReason::Shutdown`].
    Shutdown,
    /// [`LostReason::Panicked`].
    Panicked,
    /// [`LostReason::Tls`].
    Tls,
    /// [`LostReason::Preamble`].
    Preamble,
}

impl LostReason {
    /// The reason's kind (comparable, without the error it may carry).
    #[must_use]
    pub fn kind(&self) -> LostKind {
        match self {
            LostReason::Done => LostKind::Done,
            LostReason::Aborted => LostKind::Aborted,
            LostReason::Reset => LostKind::Reset,
            LostReason::ConnectTimeout => LostKind::ConnectTimeout,
            LostReason::ConnectFailed(_) => LostKind::ConnectFailed,
            LostReason::Error(_) => LostKind::Error,
            LostReason::WriteBufferFull { .. } => LostKind::WriteBufferFull,
            LostReason::WriteStalled { .. } => LostKind::WriteStalled,
            LostReason::Shutdown => LostKind::Shutdown,
            LostReason::Panicked => LostKind::Panicked,
            LostReason::Tls(_) => LostKind::Tls,
            LostReason::Preamble(_) => LostKind::Preamble,
            LostReason::HostConnect(error) => error.kind(),
        }
    }

    /// Whether the connection ended cleanly ([`LostReason::Done`]).
    #[must_use]
    pub fn is_clean(&self) -> bool {
        matches!(self, LostReason::Done)
    }
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Done => f.write_str("closed cleanly"),
            LostReason::Aborted => f.write_str("aborted"),
            LostReason::Reset => f.write_str("reset by peer"),
            LostReason::ConnectTimeout => f.write_str("connect timed out"),
            LostReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            LostReason::Error(e) => write!(f, "{e}"),
            LostReason::WriteBufferFull { limit } => {
                write!(
                    f,
                    "write buffer passed its {limit}-byte limit (peer not reading)"
                )
            }
            LostReason::WriteStalled { after } => {
                write!(f, "no byte sent for {after:?} (peer not reading)")
            }
            LostReason::Shutdown => f.write_str("reactor shut down"),
            LostReason::Panicked => f.write_str("a protocol panicked"),
            LostReason::Tls(e) => write!(f, "{e}"),
            LostReason::Preamble(reason) => write!(f, "invalid preamble: {reason}"),
            LostReason::HostConnect(error) => write!(f, "{error}"),
        }
    }
}

/// What a connection does: the callbacks of one connection's life.
///
/// Every callback gets a [`Context`], the connection's transport: write, close, timers,
/// pause reading, and the reactor of this core (other connections, outbound connections).
/// Callbacks run on the core's thread and must not block.
pub trait Protocol: 'static {
    /// The connection is established (accepted, or an outbound connect succeeded).
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// Bytes arrived. `data` is a view of the receive buffer, valid only during this call: a
    /// protocol that must keep bytes copies just those.
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]);

    /// The peer finished sending (half-close). The default closes the connection once every
    /// queued byte is sent; override to keep writing and close later.
    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        ctx.close();
    }

    /// The write buffer passed its high watermark: stop producing until
    /// [`Protocol::write_drained`]. [`Context::is_writable`] says the same.
    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// After [`Protocol::pause_writing`], the write buffer fell below its low watermark.
    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// The reactor began a graceful shutdown: it accepts nothing new and will abort what is
    /// left when the grace period ends. A server with idle keep-alive connections should
    /// close them now (and finish in-flight work first). The default does nothing.
    fn shutdown_started(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// A STARTTLS upgrade ([`Context::start_tls_server`], [`Context::start_tls_client`])
    /// finished its handshake: from now on [`Context::tls`] describes the session. (On a
    /// connection that was TLS from the start, `connection_made` follows the handshake
    /// instead.) The default does nothing.
    fn handshake_completed(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// Someone asked this connection to look at work queued for it, through
    /// [`LocalHandle::wake`](crate::LocalHandle::wake) (a future that answered a request, a
    /// value handed to an application, another connection's callback). Runs in the same turn,
    /// after the callback or task poll that asked. The default does nothing.
    fn woken(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// A timer set with [`Context::call_later`] or [`Context::call_every`] fired.
    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let _ = (ctx, timer);
    }

    /// The connection is gone; the last callback. `ctx` can still reach other connections
    /// and the reactor, but writes to this connection are ignored.
    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        let _ = (ctx, reason);
    }
}

/// Builds a [`Protocol`] for each accepted connection. One factory value lives on each core
/// (the runtime clones or rebuilds it per core), so it needs no locking.
///
/// Any `FnMut() -> P` closure is a factory: `reactor.listen_tcp(addr, || Echo)`.
pub trait Factory: 'static {
    /// A protocol for a new connection.
    fn build_protocol(&mut self) -> Box<dyn Protocol>;
}

impl<F, P> Factory for F
where
    F: FnMut() -> P + 'static,
    P: Protocol,
{
    fn build_protocol(&mut self) -> Box<dyn Protocol> {
        Box::new(self())
    }
}
