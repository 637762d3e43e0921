//! Running protocol callbacks: one at a time, panics contained, follow-up callbacks queued.
//!
//! Owns: how a callback is invoked on a connection's protocol (taken out of its slot for the
//! call so the [`Context`] can borrow the whole core state), what a panic does, the notice
//! queue, incoming data (with stashing while reading is paused), connect outcomes and timer
//! expiry. Shared by the [`Reactor`](crate::Reactor) and by
//! [`testing`](crate::testing), which runs the same code over an in-memory transport.

use std::any::Any;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};

use ringwork_platform::{OpError, SocketId};

use crate::context::{self, Context};
use crate::io::Io;
use crate::logging::escape;
use crate::protocol::{ConnId, LostReason, Protocol};
use crate::state::{Notice, Phase, Stage, State};
use crate::timers::Target;

/// Runs one callback of connection `id`'s protocol; a panic drops the protocol and aborts
/// the connection. Does nothing for a lost connection or one whose callback is running.
pub(crate) fn call(
    state: &mut State,
    io: &mut dyn Io,
    id: ConnId,
    f: impl FnOnce(&mut dyn Protocol, &mut Context<'_>),
) {
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    let Some(protocol) = conn.protocol.take() else {
        return;
    };
    call_taken(state, io, id, protocol, f);
}

/// [`call`] with the protocol already taken out of its connection's slot (the caller looked
/// the connection up): runs `f`, then puts the protocol back.
fn call_taken(
    state: &mut State,
    io: &mut dyn Io,
    id: ConnId,
    mut protocol: Box<dyn Protocol>,
    f: impl FnOnce(&mut dyn Protocol, &mut Context<'_>),
) {
    let mut ctx = Context::new(state, io, id);
    match catch_unwind(AssertUnwindSafe(|| f(&mut *protocol, &mut ctx))) {
        Ok(()) => {
            if let Some(conn) = state.conns.get_mut(id) {
                conn.protocol = Some(protocol);
            }
        }
        Err(panic) => panicked(state, io, id, protocol, &*panic),
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

fn panicked(
    state: &mut State,
    io: &mut dyn Io,
    id: ConnId,
    protocol: Box<dyn Protocol>,
    panic: &(dyn Any + Send),
) {
    state.stats.panics += 1;
    if let Some(suppressed) = state.warnings.panic.hit(state.now) {
        let message = panic_message(panic);
        tracing::error!(
            conn = %id,
            panic = %escape(message.as_bytes()),
            suppressed,
            "protocol panicked; connection aborted"
        );
    }
    // Its state may be broken: drop it without further callbacks (a panicking Drop is
    // contained too). The connection is reset; the core serves everyone else as before.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(protocol)));
    if let Some(conn) = state.conns.get_mut(id) {
        conn.protocol = None;
    }
    state.lose(io, id, LostReason::Panicked, true);
}

/// Runs queued callbacks (made, pause/drain, stashed data, lost) until none is left.
pub(crate) fn run_notices(state: &mut State, io: &mut dyn Io) {
    while let Some((id, notice)) = state.notices.pop_front() {
        match notice {
            Notice::Made => call(state, io, id, |p, ctx| p.connection_made(ctx)),
            // Backpressure callbacks are moot once the protocol asked to close.
            Notice::PauseWriting | Notice::WriteDrained if closing(state, id) => {}
            Notice::PauseWriting => call(state, io, id, |p, ctx| p.pause_writing(ctx)),
            Notice::WriteDrained => call(state, io, id, |p, ctx| p.write_drained(ctx)),
            Notice::ShutdownStarted => call(state, io, id, |p, ctx| p.shutdown_started(ctx)),
            Notice::Stash => deliver_stash(state, io, id),
            Notice::Wake => call(state, io, id, |p, ctx| p.woken(ctx)),
            Notice::Lost(reason) => lost(state, io, id, reason),
            Notice::Process(notice) => {
                crate::process::notice(state, io, crate::process::ProcessId(id.0), notice);
            }
        }
    }
}

/// Held input is delivered in pieces of at most this size, one callback each.
const STASH_PIECE: usize = 64 * 1024;

/// Queues a `woken` callback for each connection asked for with
/// [`LocalHandle::wake`](crate::LocalHandle::wake) that is still there.
pub(crate) fn queue_wakes(state: &mut State, wakes: Vec<ConnId>) {
    for id in wakes {
        if state.conns.active_mut(id).is_some() {
            state.notices.push_back((id, Notice::Wake));
        }
    }
}

/// Delivers what arrived while reading was paused: the bytes, then the end of stream —
/// unless reading is paused (again) by then.
fn deliver_stash(state: &mut State, io: &mut dyn Io, id: ConnId) {
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    let Some(data) = conn.reading.take_resumed(STASH_PIECE) else {
        // Paused again since.
        return;
    };
    if conn.reading.has_resumed_bytes() {
        // The rest goes in later pieces, after the callbacks this one causes (a
        // `pause_writing` on the connection it is relayed to pauses this one again): a
        // stash that grew large while paused never lands in one callback.
        state.notices.push_back((id, Notice::Stash));
    }
    let data = data.freeze();
    let tls = conn.is_tls();
    if tls {
        // Decrypted bytes rustls still holds, then the stashed ciphertext.
        crate::tls::session::input(state, io, id, &data);
    } else if !data.is_empty() {
        call(state, io, id, |p, ctx| p.data_received(ctx, &data));
    }
    // The end of stream, unless reading was paused again (or more was held) meanwhile.
    if let Some(conn) = state.conns.active_mut(id)
        && conn.reading.take_due_eof()
    {
        if tls {
            crate::tls::session::eof(state, io, id);
        } else {
            call(state, io, id, |p, ctx| p.eof_received(ctx));
        }
    }
}

fn closing(state: &State, id: ConnId) -> bool {
    state.conns.get(id).is_some_and(|c| c.writing.is_closing())
}

/// `connection_lost`, then the connection leaves the table.
fn lost(state: &mut State, io: &mut dyn Io, id: ConnId, reason: LostReason) {
    let Some(conn) = state.conns.get_mut(id) else {
        return;
    };
    let protocol = conn.protocol.take();
    if let Some(observe) = state.lost_observer.as_mut() {
        observe(id, &reason);
    }
    if let Some(mut protocol) = protocol {
        let mut ctx = Context::new(state, io, id);
        let result = catch_unwind(AssertUnwindSafe(|| {
            protocol.connection_lost(&mut ctx, reason)
        }));
        if let Err(panic) = result {
            state.stats.panics += 1;
            if let Some(suppressed) = state.warnings.panic.hit(state.now) {
                let message = panic_message(&*panic);
                tracing::error!(
                    conn = %id,
                    panic = %escape(message.as_bytes()),
                    suppressed,
                    "protocol panicked in connection_lost"
                );
            }
        }
        let _ = catch_unwind(AssertUnwindSafe(move || drop(protocol)));
    }
    state.remove(id);
}

/// A new connection was accepted on `socket`: it joins the table, starts receiving and gets
/// `connection_made` (queued: run by the next [`run_notices`]) — on a TLS listener once its
/// handshake completes.
pub(crate) fn accepted(
    state: &mut State,
    io: &mut dyn Io,
    socket: SocketId,
    protocol: Box<dyn Protocol>,
    tls: Option<&crate::tls::TlsAcceptor>,
    preamble: Option<(crate::preamble::Preamble, std::time::Duration)>,
) -> ConnId {
    let id = state.insert(socket, protocol, Phase::Open);
    state.stats.accepted += 1;
    io.recv(socket);
    if let Some((parse, timeout)) = preamble {
        // The protocol (and TLS) start once the preamble is read.
        let timer = state
            .timers
            .add_handshake_timeout(id, crate::timers::deadline(state.now, timeout));
        if let Some(conn) = state.conns.get_mut(id) {
            let pending = crate::preamble::Pending::new(parse, tls.cloned(), timer);
            conn.stage = Stage::Preamble(Box::new(pending));
        }
        return id;
    }
    match tls {
        None => context::made(state, id),
        Some(acceptor) => {
            crate::tls::session::start_server(state, io, id, acceptor);
        }
    }
    id
}

/// Bytes arrived for `id`: delivered, or stashed while reading is paused.
pub(crate) fn received(state: &mut State, io: &mut dyn Io, id: ConnId, data: &[u8]) {
    state.stats.bytes_in += data.len() as u64;
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    // Already in flight when reading was paused, or held bytes are still being delivered
    // (in pieces): held, after them.
    if let Some(held) = conn.reading.holding() {
        held.stash.extend_from_slice(data);
        return;
    }
    match conn.stage {
        // A spliced connection's receive that was in flight: to the protocol as before.
        // The connection found above is used as it is (issue 16: a second lookup per read).
        Stage::Plain | Stage::Spliced(_) => {
            if let Some(protocol) = conn.protocol.take() {
                call_taken(state, io, id, protocol, |p, ctx| p.data_received(ctx, data));
            }
        }
        Stage::Tls(_) => crate::tls::session::input(state, io, id, data),
        Stage::Preamble(_) => crate::preamble::input(state, io, id, data),
    }
}

/// The bytes that followed a preamble in its last read (the protocol just started): as if
/// they had just arrived.
pub(crate) fn received_after_preamble(state: &mut State, io: &mut dyn Io, id: ConnId, data: &[u8]) {
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    if let Some(held) = conn.reading.holding() {
        held.stash.extend_from_slice(data);
        return;
    }
    call(state, io, id, |p, ctx| p.data_received(ctx, data));
}

/// The peer finished sending: `eof_received`, but only after every byte that arrived before
/// it. While reading is paused (bytes stashed, or none yet), the EOF waits too and is
/// delivered after the stash on resume.
pub(crate) fn eof(state: &mut State, io: &mut dyn Io, id: ConnId) {
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    if let Stage::Preamble(_) = conn.stage {
        crate::preamble::eof(state, io, id);
        return;
    }
    if let Some(held) = conn.reading.holding() {
        held.eof = true;
        return;
    }
    if conn.is_tls() {
        crate::tls::session::eof(state, io, id);
        return;
    }
    call(state, io, id, |p, ctx| p.eof_received(ctx));
}

/// Sending or receiving on `id` failed: the connection is lost with the matching reason.
pub(crate) fn failed(state: &mut State, io: &mut dyn Io, id: ConnId, error: OpError) {
    state.lose(io, id, lost_reason(error), false);
}

/// Maps a send/receive error to a reason.
fn lost_reason(error: OpError) -> LostReason {
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => LostReason::Reset,
        _ => LostReason::Error(error),
    }
}

/// An outbound connect finished.
pub(crate) fn connected(
    state: &mut State,
    io: &mut dyn Io,
    id: ConnId,
    result: Result<(), OpError>,
) {
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    let Phase::Connecting { timer } = conn.phase else {
        return;
    };
    match result {
        Ok(()) => {
            conn.phase = Phase::Open;
            state.timers.cancel_key(timer);
            if !conn.reading.is_paused() {
                io.recv(id.0);
            }
            let tls_timeout = match &conn.stage {
                Stage::Tls(tls) => tls.session.as_ref().map(|s| s.handshake_timeout()),
                _ => None,
            };
            state.schedule_flush(id);
            match tls_timeout {
                // TLS: the ClientHello goes out with the flush; `connection_made` follows
                // the handshake.
                Some(timeout) => crate::tls::session::arm_timeout(state, id, timeout),
                None => context::made(state, id),
            }
        }
        // Losing it cancels the connect timeout.
        Err(error) => state.lose(io, id, LostReason::ConnectFailed(error), false),
    }
}

/// Runs one due timer that needs no reactor (every [`Target`] but [`Target::Call`], which
/// the reactor runs itself); the caller runs the notices it queued.
pub(crate) fn fire(state: &mut State, io: &mut dyn Io, target: Target) {
    match target {
        Target::Conn { conn, id, every } => {
            let Some(c) = state.conns.active_mut(conn) else {
                return;
            };
            match every {
                None => c.timers.retain(|(t, _)| *t != id),
                Some(every) => {
                    let at = crate::timers::deadline(state.now, every);
                    let key = state.timers.rearm(conn, id, at, every);
                    if let Some(entry) = c.timers.iter_mut().find(|(t, _)| *t == id) {
                        entry.1 = key;
                    }
                }
            }
            call(state, io, conn, |p, ctx| p.timer_fired(ctx, id));
        }
        Target::ConnectTimeout(conn) => {
            if let Some(c) = state.conns.active_mut(conn)
                && matches!(c.phase, Phase::Connecting { .. })
            {
                state.lose(io, conn, LostReason::ConnectTimeout, true);
            }
        }
        Target::Handshake(conn) => {
            if !crate::preamble::timed_out(state, io, conn) {
                crate::tls::session::timed_out(state, io, conn);
            }
        }
        Target::WriteStall(conn) => crate::stall::fired(state, io, conn),
        Target::Sleep(resolver) => resolver.resolve(()),
        Target::Call(_) => {
            debug_assert!(false, "a reactor call reached dispatch::fire");
        }
    }
}
