//! Listener preambles: bytes a connection carries before its protocol's own — a PROXY
//! protocol header from a load balancer — read by the engine before the protocol starts.
//!
//! Owns: [`Preamble`] (a sans-IO parser, given as a plain function), [`PreambleStatus`],
//! [`ListenerOptions`] (TLS, preamble and address sharing of a listener) and the engine steps of a pending
//! preamble (input, end of stream, timeout).
//! Contract: on a listener with a preamble, the engine collects the first bytes and asks the
//! parser after each read; nothing reaches the protocol (or TLS) until it says `Done`.
//! Then the addresses it names become [`Context::peer_addr`](crate::Context::peer_addr) and
//! [`Context::local_addr`](crate::Context::local_addr) (the socket's own stay available as
//! [`Context::socket_peer_addr`](crate::Context::socket_peer_addr)), TLS starts if the
//! listener has it, `connection_made` follows, and the bytes after the preamble are
//! delivered. A parser that says `Invalid`, a peer that closes first, or a preamble not
//! complete within the timeout ends the connection with [`LostReason::Preamble`] and a
//! log line — the protocol is never started.
//! Does not: know any preamble format (the PROXY protocol codec is in
//! `ringwork-protocols`).
//!
//! [`PreambleStatus`] is the engine's verdict on a connection (wait, close with a reason,
//! or start with these addresses), not a parser's result: parsers in `ringwork-protocols`
//! follow that crate's convention (`Result<Status<Parsed<T>>, E>`, `Status::Partial` for
//! "need more bytes"), which the engine cannot name since it does not depend on them. The
//! one preamble there, the PROXY protocol, follows it; its `proxy_protocol::preamble`
//! adapts the result to this hook (`Partial` → `Incomplete`, an error → `Invalid` with its
//! text, a header → `Done` with its length and addresses).

use std::time::Duration;

use bytes::BytesMut;
use ringwork_platform::{ReusePort, SockAddr, SocketOptions};

use crate::dispatch;
use crate::io::Io;
use crate::logging::escape;
use crate::protocol::{ConnId, LostReason};
use crate::state::{Stage, State};
use crate::timer::TimerKey;
use crate::tls::TlsAcceptor;

/// What a [`Preamble`] parser says about the bytes received so far.
// Returned once per read of a pending preamble, never stored: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum PreambleStatus {
    /// More bytes are needed.
    Incomplete,
    /// The preamble is the first `consumed` bytes; what follows is the protocol's.
    Done {
        /// Length of the preamble.
        consumed: usize,
        /// The real client, if the preamble names one (`None`: keep the socket's peer, as
        /// for a PROXY `LOCAL` health check).
        peer: Option<SockAddr>,
        /// The address the client connected to, if named.
        local: Option<SockAddr>,
    },
    /// Not a valid preamble: the connection is closed.
    Invalid(String),
}

/// A preamble parser: called with every byte received so far (from the first), after each
/// read. It must bound what it accepts (say `Invalid` past its maximum length).
pub type Preamble = fn(&[u8]) -> PreambleStatus;

/// Default time a peer has to send its whole preamble.
pub const DEFAULT_PREAMBLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a listener shares its address, and treats its connections before their protocol
/// starts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// Run TLS (after the preamble, if any).
    pub tls: Option<TlsAcceptor>,
    /// Read a preamble first (e.g. the PROXY protocol).
    pub preamble: Option<Preamble>,
    /// Time allowed for the preamble.
    pub preamble_timeout: Duration,
    /// Who may share the TCP address through SO_REUSEPORT. The default,
    /// [`ReusePort::Process`], lets every core of this process listen on it but fails with
    /// "Address already in use" when another process holds it; [`ReusePort::Shared`] joins
    /// another process's listeners on purpose (zero-downtime restarts).
    pub reuse_port: ReusePort,
    /// Length of the kernel's accept queue, 1 to 65,535 (the kernel caps it at
    /// `net.core.somaxconn`); default 1024.
    pub backlog: u32,
    /// Socket options of the listener, inherited by its connections on Linux: buffer
    /// sizes, TCP keepalive, IP_TOS / IPV6_TCLASS, SO_BINDTODEVICE (see [`SocketOptions`]).
    pub socket: SocketOptions,
    /// TCP Fast Open (Linux, TCP_FASTOPEN): accept data in the SYN, with at most this many
    /// such connections waiting for their handshake (1 to 65,535). Takes effect when the
    /// `net.ipv4.tcp_fastopen` sysctl has its server bit (2); `None`: off.
    pub fastopen: Option<u32>,
}

/// The default accept queue length of a listener.
pub const DEFAULT_BACKLOG: u32 = 1024;

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            tls: None,
            preamble: None,
            preamble_timeout: DEFAULT_PREAMBLE_TIMEOUT,
            reuse_port: ReusePort::default(),
            backlog: DEFAULT_BACKLOG,
            socket: SocketOptions::default(),
            fastopen: None,
        }
    }
}

impl ListenerOptions {
    /// Options sharing the address as `reuse` says (see [`ListenerOptions::reuse_port`]).
    #[must_use]
    pub fn reuse_port(mut self, reuse: ReusePort) -> Self {
        self.reuse_port = reuse;
        self
    }

    /// Options with this accept queue length (see [`ListenerOptions::backlog`]).
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Options with these socket options (see [`ListenerOptions::socket`]).
    #[must_use]
    pub fn socket(mut self, socket: SocketOptions) -> Self {
        self.socket = socket;
        self
    }

    /// Options with a TCP Fast Open queue of `queue` (see [`ListenerOptions::fastopen`]).
    #[must_use]
    pub fn fastopen(mut self, queue: u32) -> Self {
        self.fastopen = Some(queue);
        self
    }

    /// Options with TLS.
    #[must_use]
    pub fn tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// Options with a preamble.
    #[must_use]
    pub fn preamble(mut self, parser: Preamble) -> Self {
        self.preamble = Some(parser);
        self
    }
}

/// A preamble not yet complete on a connection (its [`Stage`]).
pub(crate) struct Pending {
    parse: Preamble,
    buf: BytesMut,
    /// TLS to start once the preamble is read.
    tls: Option<TlsAcceptor>,
    /// The preamble's timeout.
    pub(crate) timer: TimerKey,
}

impl Pending {
    pub(crate) fn new(parse: Preamble, tls: Option<TlsAcceptor>, timer: TimerKey) -> Self {
        Self {
            parse,
            buf: BytesMut::new(),
            tls,
            timer,
        }
    }
}

/// Bytes arrived on a connection whose preamble is pending.
pub(crate) fn input(state: &mut State, io: &mut dyn Io, id: ConnId, data: &[u8]) {
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    let Stage::Preamble(pending) = &mut conn.stage else {
        return;
    };
    pending.buf.extend_from_slice(data);
    match (pending.parse)(&pending.buf) {
        PreambleStatus::Incomplete => {}
        PreambleStatus::Invalid(reason) => {
            let peer = io.peer_addr(id.0).ok().and_then(|a| a.as_socket());
            if let Some(suppressed) = state.warnings.preamble_invalid.hit(state.now) {
                // The parser's reason may quote the peer's bytes.
                tracing::warn!(
                    conn = %id,
                    ?peer,
                    reason = %escape(reason.as_bytes()),
                    suppressed,
                    "invalid preamble; connection closed"
                );
            }
            state.lose(io, id, LostReason::Preamble(reason), false);
        }
        PreambleStatus::Done {
            consumed,
            peer,
            local,
        } => {
            let Stage::Preamble(mut pending) = std::mem::replace(&mut conn.stage, Stage::Plain)
            else {
                return;
            };
            let rest = pending.buf.split_off(consumed.min(pending.buf.len()));
            if peer.is_some() || local.is_some() {
                let rare = conn.rare.get_or_insert_with(Box::default);
                rare.peer = peer;
                rare.local = local;
            }
            state.timers.cancel_key(pending.timer);
            start(state, io, id, pending.tls.as_ref(), &rest);
        }
    }
}

/// The preamble is read: TLS or the protocol starts, with the bytes that followed it.
fn start(state: &mut State, io: &mut dyn Io, id: ConnId, tls: Option<&TlsAcceptor>, rest: &[u8]) {
    use crate::tls::session::{input, start_server};
    match tls {
        Some(acceptor) => {
            if !start_server(state, io, id, acceptor) {
                return;
            }
            if !rest.is_empty() {
                input(state, io, id, rest);
            }
        }
        None => {
            dispatch::call(state, io, id, |p, ctx| p.connection_made(ctx));
            if !rest.is_empty() {
                dispatch::received_after_preamble(state, io, id, rest);
            }
        }
    }
}

/// The peer ended its stream before its preamble was complete.
pub(crate) fn eof(state: &mut State, io: &mut dyn Io, id: ConnId) {
    if let Some(suppressed) = state.warnings.preamble_eof.hit(state.now) {
        tracing::warn!(
            conn = %id,
            suppressed,
            "peer closed before sending its whole preamble"
        );
    }
    state.lose(
        io,
        id,
        LostReason::Preamble("peer closed before the preamble ended".into()),
        false,
    );
}

/// The preamble timeout fired (`true` if it applied to a pending preamble).
pub(crate) fn timed_out(state: &mut State, io: &mut dyn Io, id: ConnId) -> bool {
    let Some(conn) = state.conns.active_mut(id) else {
        return false;
    };
    if !matches!(conn.stage, Stage::Preamble(_)) {
        return false;
    }
    if let Some(suppressed) = state.warnings.preamble_timeout.hit(state.now) {
        tracing::warn!(conn = %id, suppressed, "preamble timed out; connection closed");
    }
    state.lose(io, id, LostReason::Preamble("timed out".into()), false);
    true
}
