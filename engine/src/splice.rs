//! Kernel-side forwarding between two connections of one core ([`Context::splice_into`]).
//!
//! Owns: the checks that make a splice safe at the engine's level and its start-up (bytes
//! the engine already holds for the source go to the destination first).
//! Contract: once spliced, the source's bytes go to the destination inside the kernel
//! (splice(2) through a pipe, see `ringwork_platform::Driver::splice`) and are counted in
//! [`Context::spliced_bytes`] and `CoreStats::bytes_spliced` instead of reaching
//! `data_received`; end of stream, errors, `pause_reading`/`resume_reading`, `close` and
//! `connection_lost` work as before. Bytes a receive already in flight picked up still
//! arrive in `data_received` (under io_uring, at most one batch): the protocol forwards
//! them as it did before the call, and the driver keeps them ahead of spliced bytes.
//! A spliced connection (either way) refuses STARTTLS (`tls::session::install`).
//! Does not: splice TLS connections (their bytes must pass through rustls), connections
//! still reading a preamble, or anything on the in-memory transport of
//! `ringwork::testing` (`Err`, so protocols keep copying there).
//!
//! [`Context::splice_into`]: crate::Context::splice_into
//! [`Context::spliced_bytes`]: crate::Context::spliced_bytes

use crate::EngineError;
use crate::io::Io;
use crate::protocol::ConnId;
use crate::state::{Phase, Spliced, Stage, State};

fn refuse(why: &str) -> Result<(), EngineError> {
    Err(EngineError::Splice { why: why.into() })
}

/// Starts splicing `from` into `to` (see the module docs).
pub(crate) fn start(
    state: &mut State,
    io: &mut dyn Io,
    from: ConnId,
    to: ConnId,
) -> Result<(), EngineError> {
    if from == to {
        return refuse("a connection cannot be spliced into itself");
    }
    let usable = |c: &&crate::state::Conn| {
        c.phase == Phase::Open && !c.writing.is_closing() && !matches!(c.stage, Stage::Preamble(_))
    };
    let (Some(source), Some(dest)) = (
        state.conns.get(from).filter(usable),
        state.conns.get(to).filter(usable),
    ) else {
        return refuse("both connections must be open (connected, not closing)");
    };
    if source.is_tls() || dest.is_tls() {
        return refuse("TLS connections cannot be spliced (their bytes pass through rustls)");
    }
    if let Stage::Spliced(_) = source.stage {
        return refuse("the connection is spliced already");
    }
    if source.reading.eof_pending() {
        return refuse("the connection's stream has ended");
    }
    if !dest.writing.is_open() {
        // Not closing (checked above): shutting down or shut.
        return refuse("the destination's write side is shut down");
    }
    io.splice(from.0, to.0)?;
    // Bytes that arrived while reading was paused are older than anything spliced: they go
    // to the destination's buffer, which the driver sends before the pipe's bytes.
    let stashed = state
        .conns
        .get_mut(from)
        .and_then(|c| c.reading.stash_mut().map(|s| s.split().freeze()));
    // They count as spliced input: the protocol never sees them (a stash delivered in
    // pieces may be handed over midway).
    let handed = stashed.as_ref().map_or(0, bytes::Bytes::len) as u64;
    if let Some(bytes) = stashed.filter(|b| !b.is_empty()) {
        state.write_bytes(io, to, bytes);
    }
    if let Some(conn) = state.conns.get_mut(from) {
        conn.stage = Stage::Spliced(Box::new(Spliced { to, bytes: handed }));
    }
    // The destination's pipe can fill up without the engine writing anything: its
    // write-stall timeout watches it for the splice's life (see `stall.rs`).
    if let Some(dest) = state.conns.get_mut(to) {
        dest.set_spliced_from(Some(from));
        crate::stall::start(dest, &mut state.timers, state.now, state.moment);
    }
    state.stats.splices += 1;
    Ok(())
}

/// The driver moved `bytes` of `id`'s input to its splice destination: progress for the
/// destination's write-stall timeout.
pub(crate) fn spliced(state: &mut State, id: ConnId, bytes: usize) {
    state.stats.bytes_spliced += bytes as u64;
    let moment = state.moment;
    let Some(conn) = state.conns.get_mut(id) else {
        return;
    };
    let Stage::Spliced(spliced) = &mut conn.stage else {
        return;
    };
    spliced.bytes += bytes as u64;
    let to = spliced.to;
    if let Some(dest) = state.conns.get_mut(to) {
        dest.progress_at = moment;
    }
}
