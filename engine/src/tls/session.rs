//! The TLS layer of one connection: a rustls session and what the engine does with it.
//!
//! Owns: [`Session`] (in a connection's [`Stage::Tls`]) and the engine steps that go
//! through it — ciphertext in ([`input`]), the end of the peer's stream ([`eof`]), the
//! end-of-turn encryption of what the protocol wrote ([`seal`]), the handshake timeout and
//! STARTTLS ([`install`]).
//! Contract: while plaintext is handed to the protocol the session is taken out of the
//! connection (the callback gets the whole core state); writes made meanwhile wait as
//! plaintext in the connection's buffer like every write, and are encrypted by [`seal`] at
//! the end of the turn. Nothing reaches the socket except rustls output.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rustls::{ClientConnection, Connection, ServerConnection};
use rustls_pki_types::ServerName;

use super::records::{self, Pieces, RecordSizing, SealSink, Sizer};
use super::{TlsAcceptor, TlsConnector, TlsError, TlsInfo, version_name};
use crate::dispatch;
use crate::io::Io;
use crate::protocol::{ConnId, LostReason};
use crate::state::{Handshake, Phase, Reading, Stage, State, Tls};
use crate::timers::deadline;

/// How a session began, which decides what its handshake completion calls.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Start {
    /// A TLS listener or a connect with TLS: `connection_made` follows the handshake.
    Endpoint,
    /// STARTTLS on an open connection: `handshake_completed` follows it.
    Upgrade,
}

/// One connection's rustls session and the engine's flags about it.
pub(crate) struct Session {
    conn: Connection,
    start: Start,
    handshaking: bool,
    timeout: std::time::Duration,
    /// The client side's verified name (rustls keeps it private).
    server_name: Option<String>,
    /// `close_notify` queued (or an error alert instead: nothing more is sent).
    pub(crate) close_sent: bool,
    /// The peer sent `close_notify`.
    peer_closed: bool,
    /// `eof_received` was delivered.
    eof_delivered: bool,
    /// A TLS error ended the session: input is ignored, only the alert goes out.
    pub(crate) failed: bool,
    /// How application data is cut into records.
    sizer: Sizer,
}

impl Session {
    /// A server session.
    pub(crate) fn server(acceptor: &TlsAcceptor, start: Start) -> Result<Self, TlsError> {
        let conn =
            ServerConnection::new(Arc::clone(acceptor.rustls_config())).map_err(TlsError::Setup)?;
        Ok(Self::new(
            conn.into(),
            start,
            acceptor.handshake_timeout(),
            None,
            acceptor.record_sizing(),
        ))
    }

    /// A client session for `name`.
    pub(crate) fn client(
        connector: &TlsConnector,
        name: ServerName<'static>,
        start: Start,
    ) -> Result<Self, TlsError> {
        let shown = name.to_str().into_owned();
        let conn = ClientConnection::new(Arc::clone(connector.rustls_config()), name)
            .map_err(TlsError::Setup)?;
        // A client's writes (requests, uploads) go in full records: small first records
        // help a browser parse a page early, which is a server's concern.
        Ok(Self::new(
            conn.into(),
            start,
            connector.handshake_timeout(),
            Some(shown),
            RecordSizing::FULL,
        ))
    }

    fn new(
        mut conn: Connection,
        start: Start,
        timeout: std::time::Duration,
        server_name: Option<String>,
        sizing: RecordSizing,
    ) -> Self {
        // The engine bounds memory itself (write-buffer limit, paused reading); rustls must
        // never refuse plaintext, or a write would be lost.
        conn.set_buffer_limit(None);
        Self {
            conn,
            start,
            handshaking: true,
            timeout,
            server_name,
            close_sent: false,
            peer_closed: false,
            eof_delivered: false,
            failed: false,
            sizer: Sizer::new(sizing),
        }
    }

    /// Whether nothing more will leave: `close_notify` (or an alert) queued and taken.
    pub(crate) fn is_drained(&self) -> bool {
        self.close_sent && !self.conn.wants_write()
    }

    /// The handshake timeout to arm.
    pub(crate) fn handshake_timeout(&self) -> std::time::Duration {
        self.timeout
    }

    /// Whether the handshake is still running.
    fn info(&self) -> TlsInfo {
        let server_name = match &self.conn {
            Connection::Server(s) => s.server_name().map(str::to_owned),
            Connection::Client(_) => self.server_name.clone(),
        };
        TlsInfo {
            version: version_name(self.conn.protocol_version()),
            cipher_suite: self
                .conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("unknown")
                .to_owned(),
            alpn: self.conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name,
            handshake_kind: self
                .conn
                .handshake_kind()
                .unwrap_or(rustls::HandshakeKind::Full),
            peer_certificates: self
                .conn
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
            close_notify_received: false,
        }
    }

    /// Hands rustls's pending output (handshake messages, records, alerts) to `send`, in
    /// buffers of at most [`records::SEAL_CHUNK`] bytes; `expected` sizes them.
    fn drain(&mut self, expected: usize, send: &mut dyn FnMut(Bytes)) {
        let mut sink = SealSink::new(expected, send);
        while self.conn.wants_write() {
            // Writing into memory cannot fail.
            if self.conn.write_tls(&mut sink).is_err() {
                break;
            }
        }
        sink.finish();
    }
}

/// Installs a session on an open connection (STARTTLS) or one being set up; arms the
/// handshake timeout. Bytes written before it go out in the clear first.
pub(crate) fn install(
    state: &mut State,
    io: &mut dyn Io,
    id: ConnId,
    session: Session,
) -> Result<(), TlsError> {
    let Some(conn) = state.conns.active_mut(id) else {
        return Err(TlsError::NotOpen);
    };
    match conn.stage {
        Stage::Plain => {}
        Stage::Tls(_) => return Err(TlsError::AlreadyTls),
        // The protocol has not started; or the input bypasses user space.
        Stage::Preamble(_) | Stage::Spliced(_) => return Err(TlsError::NotOpen),
    }
    // Bytes spliced into it would bypass rustls.
    if !conn.writing.is_open() || conn.spliced_from().is_some() {
        return Err(TlsError::NotOpen);
    }
    if !conn.wbuf.is_empty() {
        if conn.phase != Phase::Open {
            return Err(TlsError::NotOpen);
        }
        let clear = conn.wbuf.split().freeze();
        conn.queued += clear.len();
        state.stats.bytes_out += clear.len() as u64;
        io.send(id.0, clear);
    }
    let timeout = session.handshake_timeout();
    let connecting = matches!(conn.phase, Phase::Connecting { .. });
    conn.stage = Stage::Tls(Box::new(Tls::new(session)));
    if !connecting {
        arm_timeout(state, id, timeout);
    }
    // A client's ClientHello is ready now; sent at the end of the turn (or once connected).
    state.schedule_flush(id);
    Ok(())
}

/// Starts the server side of TLS on an accepted connection (a TLS listener, after its
/// preamble if any); `false` if rustls could not start a session (the connection is then
/// aborted with the reason).
pub(crate) fn start_server(
    state: &mut State,
    io: &mut dyn Io,
    id: ConnId,
    acceptor: &TlsAcceptor,
) -> bool {
    let started =
        Session::server(acceptor, Start::Endpoint).and_then(|s| install(state, io, id, s));
    match started {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(conn = %id, %error, "tls session could not start");
            state.lose(io, id, LostReason::Tls(error), true);
            false
        }
    }
}

/// Arms the handshake timeout of `id` (for a client: once TCP is connected).
pub(crate) fn arm_timeout(state: &mut State, id: ConnId, timeout: std::time::Duration) {
    let at = deadline(state.now, timeout);
    let key = state.timers.add_handshake_timeout(id, at);
    let handshake = match state.conns.get_mut(id).map(|c| &mut c.stage) {
        Some(Stage::Tls(tls)) => Some(&mut tls.handshake),
        _ => None,
    };
    match handshake {
        Some(Handshake::Running { timer }) => {
            if let Some(old) = timer.replace(key) {
                state.timers.cancel_key(old);
            }
        }
        // Not handshaking (cannot happen: called when one starts): nothing to time.
        _ => state.timers.cancel_key(key),
    }
}

/// The handshake timeout fired.
pub(crate) fn timed_out(state: &mut State, io: &mut dyn Io, id: ConnId) {
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    let Stage::Tls(tls) = &mut conn.stage else {
        return;
    };
    if let Handshake::Running { timer } = &mut tls.handshake {
        *timer = None;
    }
    if tls
        .session
        .as_ref()
        .is_some_and(|s| s.handshaking && !s.failed)
    {
        tracing::debug!(conn = %id, "tls handshake timed out");
        state.stats.tls_failures += 1;
        state.lose(io, id, LostReason::Tls(TlsError::HandshakeTimeout), false);
    }
}

/// Encrypts what the protocol wrote this turn (`pieces`, then `wbuf`; and `close_notify`
/// when closing) and hands the ciphertext to `send`, in records sized by the session's
/// [`RecordSizing`]. Called by the end-of-turn flush for TLS connections.
///
/// Copies: rustls copies each byte of plaintext once, into the record it encrypts in place;
/// the records are copied once into the buffers handed to `send` (at most
/// [`records::SEAL_CHUNK`] bytes each, sized to the turn's output).
pub(crate) fn seal(
    session: &mut Session,
    pieces: &mut Pieces,
    wbuf: &mut BytesMut,
    closing: bool,
    now: Instant,
    send: &mut dyn FnMut(Bytes),
) {
    let plaintext = pieces.len() + wbuf.len();
    if session.failed {
        // Nothing more from the protocol after a TLS error; only the alert leaves.
        pieces.clear();
        wbuf.clear();
    } else {
        if plaintext > 0
            && let Err(error) =
                records::encrypt(&mut session.conn, &mut session.sizer, pieces, wbuf, now)
        {
            tracing::error!(%error, "rustls refused plaintext; connection will be closed");
            session.failed = true;
            pieces.clear();
            wbuf.clear();
        }
        if closing && !session.close_sent {
            session.close_sent = true;
            session.conn.send_close_notify();
        }
    }
    // The records of this turn, and a handshake flight or a few tickets besides.
    session.drain(records::sealed_estimate(plaintext, 4096), send);
}

/// Ciphertext arrived for `id` (reading is not paused): feeds rustls, completes the
/// handshake, hands plaintext to the protocol, and stashes what is left if the protocol
/// pauses reading.
pub(crate) fn input(state: &mut State, io: &mut dyn Io, id: ConnId, data: &[u8]) {
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    let Stage::Tls(tls) = &mut conn.stage else {
        return;
    };
    // Out of its slot while the protocol runs (see `Tls::session`).
    let Some(mut session) = tls.session.take() else {
        return;
    };
    run_input(state, io, id, &mut session, data);
    if let Some(conn) = state.conns.active_mut(id)
        && let Stage::Tls(tls) = &mut conn.stage
    {
        let wants_write = session.conn.wants_write();
        tls.session = Some(session);
        if wants_write {
            state.schedule_flush(id);
        }
    }
}

/// Whether plaintext may go to the protocol now.
fn deliverable(state: &mut State, id: ConnId) -> Option<()> {
    let conn = state.conns.active_mut(id)?;
    (!conn.reading.is_paused()).then_some(())
}

fn run_input(
    state: &mut State,
    io: &mut dyn Io,
    id: ConnId,
    session: &mut Session,
    mut data: &[u8],
) {
    if session.failed {
        return;
    }
    loop {
        // Plaintext rustls holds (from this input or from before a pause).
        while !session.handshaking && deliverable(state, id).is_some() {
            let mut reader = session.conn.reader();
            let chunk = match reader.fill_buf() {
                Ok(chunk) if !chunk.is_empty() => chunk,
                _ => break,
            };
            let n = chunk.len();
            dispatch::call(state, io, id, |p, ctx| p.data_received(ctx, chunk));
            session.conn.reader().consume(n);
        }
        let Some(conn) = state.conns.active_mut(id) else {
            return;
        };
        if let Reading::Paused(held) = &mut conn.reading {
            let stash = &mut held.stash;
            // Later ciphertext waits, still encrypted, until reading resumes: before what is
            // held already (the rest of a stash being delivered in pieces is newer).
            if stash.is_empty() {
                stash.extend_from_slice(data);
            } else if !data.is_empty() {
                let mut joined = BytesMut::with_capacity(data.len() + stash.len());
                joined.extend_from_slice(data);
                joined.extend_from_slice(stash);
                *stash = joined;
            }
            return;
        }
        if session.peer_closed && !session.eof_delivered && !has_plaintext(session) {
            session.eof_delivered = true;
            if let Stage::Tls(tls) = &mut conn.stage
                && let Handshake::Done(info) = &mut tls.handshake
            {
                info.close_notify_received = true;
            }
            dispatch::call(state, io, id, |p, ctx| p.eof_received(ctx));
            return;
        }
        if data.is_empty() {
            return;
        }
        match session.conn.read_tls(&mut data) {
            Ok(n) if n > 0 => {}
            Ok(_) | Err(_) => {
                // rustls takes input whenever its plaintext has been drained, as here.
                fail(
                    state,
                    id,
                    session,
                    TlsError::Protocol(rustls::Error::General("tls input refused".into())),
                );
                return;
            }
        }
        match session.conn.process_new_packets() {
            Ok(io_state) => {
                if io_state.peer_has_closed() {
                    session.peer_closed = true;
                }
            }
            Err(error) => {
                let error = if session.handshaking {
                    TlsError::Handshake(error)
                } else {
                    TlsError::Protocol(error)
                };
                fail(state, id, session, error);
                return;
            }
        }
        if session.handshaking && !session.conn.is_handshaking() {
            handshake_done(state, io, id, session);
        }
    }
}

fn has_plaintext(session: &mut Session) -> bool {
    session
        .conn
        .reader()
        .fill_buf()
        .is_ok_and(|b| !b.is_empty())
}

/// The handshake finished: the protocol learns the session and starts (`connection_made`)
/// or is told the upgrade is done (`handshake_completed`).
fn handshake_done(state: &mut State, io: &mut dyn Io, id: ConnId, session: &mut Session) {
    session.handshaking = false;
    let info = session.info();
    tracing::trace!(conn = %id, tls = %info, "tls handshake complete");
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    let Stage::Tls(tls) = &mut conn.stage else {
        return;
    };
    let done = Handshake::Done(Box::new(info));
    if let Handshake::Running { timer: Some(key) } = std::mem::replace(&mut tls.handshake, done) {
        state.timers.cancel_key(key);
    }
    state.stats.tls_handshakes += 1;
    if session.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        state.stats.tls_resumed += 1;
    }
    if session.conn.wants_write() {
        state.schedule_flush(id);
    }
    match session.start {
        Start::Endpoint => dispatch::call(state, io, id, |p, ctx| p.connection_made(ctx)),
        Start::Upgrade => dispatch::call(state, io, id, |p, ctx| p.handshake_completed(ctx)),
    }
}

/// A TLS error: the alert rustls prepared is sent, then the connection closes with the
/// reason. Nothing the protocol wrote is sent any more.
fn fail(state: &mut State, id: ConnId, session: &mut Session, error: TlsError) {
    tracing::debug!(conn = %id, %error, "tls failed; closing");
    session.failed = true;
    session.close_sent = true;
    state.stats.tls_failures += 1;
    // The session is out of its slot here: the close completes in the end-of-turn flush,
    // after the alert is sealed and sent.
    if let Some(conn) = state.conns.active_mut(id) {
        conn.writing.close(Some(LostReason::Tls(error)));
        conn.wbuf.clear();
        if let Stage::Tls(tls) = &mut conn.stage {
            tls.pieces.clear();
        }
    }
    state.schedule_flush(id);
}

/// The peer ended its stream (reading not paused, nothing stashed).
pub(crate) fn eof(state: &mut State, io: &mut dyn Io, id: ConnId) {
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    let Stage::Tls(tls) = &mut conn.stage else {
        return;
    };
    let Some(session) = &mut tls.session else {
        return;
    };
    if session.failed || session.eof_delivered {
        return;
    }
    if session.handshaking {
        state.stats.tls_failures += 1;
        state.lose(
            io,
            id,
            LostReason::Tls(TlsError::ClosedDuringHandshake),
            false,
        );
        return;
    }
    // No close_notify (or it came and was delivered already, handled above): a bare TCP
    // end. Delivered as the end of stream; `close_notify_received` stays false.
    session.eof_delivered = true;
    tracing::trace!(conn = %id, "tls peer closed without close_notify");
    dispatch::call(state, io, id, |p, ctx| p.eof_received(ctx));
}
