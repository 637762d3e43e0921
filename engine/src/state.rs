//! Per-core engine state shared by every callback: connections, their write buffers and
//! flags, timers, and the notices queued for delivery after the running callback.
//!
//! Owns: [`State`] and [`Conn`]. Every change a [`Context`](crate::Context) makes lands here
//! (or in the [`Io`] below it); protocol callbacks are never nested — a callback that must
//! follow another (a connection closed by another's callback, `pause_writing` after a
//! write) is queued as a [`Notice`] and run by the reactor once the current one returns.
//! Contract: writes of one turn accumulate in the connection's buffer and go to the driver
//! once, in [`State::flush`] at the end of the turn (one vectored send per connection).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ringwork_platform::SocketId;

use crate::config::ReactorConfig;
use crate::io::Io;
use crate::logging::Warnings;
use crate::protocol::{ConnId, LostReason, Protocol};
use crate::stats::CoreStats;
use crate::timer::TimerKey;
use crate::timers::Timers;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Phase {
    /// Outbound, connect in progress.
    Connecting,
    /// Established.
    Open,
    /// Gone; `connection_lost` is queued or running. Operations on it are ignored.
    Lost,
}

/// A callback to run after the current one.
#[derive(Debug)]
pub(crate) enum Notice {
    /// `connection_made` (an accepted connection, or a connect that succeeded).
    Made,
    /// `pause_writing`.
    PauseWriting,
    /// `shutdown_started`.
    ShutdownStarted,
    /// `write_drained`.
    WriteDrained,
    /// Deliver bytes stashed while reading was paused (then a held-back EOF).
    Stash,
    /// `woken` (asked for through [`LocalHandle::wake`](crate::LocalHandle::wake)).
    Wake,
    /// `connection_lost`, then the connection is removed.
    Lost(LostReason),
}

/// One connection.
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    /// `None` while one of its callbacks runs.
    pub(crate) protocol: Option<Box<dyn Protocol>>,
    pub(crate) phase: Phase,
    /// This turn's writes, flushed at the end of the turn.
    pub(crate) wbuf: BytesMut,
    pub(crate) in_flush: bool,
    /// Close once everything is sent.
    pub(crate) closing: bool,
    /// Half-close once everything is sent.
    pub(crate) shutdown: bool,
    pub(crate) shutdown_sent: bool,
    /// Above the high watermark since `pause_writing`.
    pub(crate) write_paused: bool,
    pub(crate) read_paused: bool,
    /// Bytes that arrived after `pause_reading` (already in flight), delivered on resume.
    pub(crate) stash: BytesMut,
    /// The peer's EOF arrived while reading was paused: `eof_received` follows the stash.
    pub(crate) eof_pending: bool,
    /// Bytes queued in the driver (from its `Sent` completions).
    pub(crate) queued: usize,
    pub(crate) connect_timer: Option<TimerKey>,
    /// Counted in the runtime-wide connection total (accepted connections only).
    pub(crate) in_total: bool,
    /// Its pending protocol timers, cancelled when it is lost (so a closed connection leaves
    /// no entries in the wheel).
    pub(crate) timers: Vec<crate::timers::TimerId>,
    /// The TLS layer, if any (see `tls/session.rs`); `None` while plaintext is handed to the
    /// protocol (then `tls_busy`).
    pub(crate) tls: Option<Box<crate::tls::session::Session>>,
    /// The TLS session is out of its slot for a callback.
    pub(crate) tls_busy: bool,
    /// What the protocol learns about TLS, set when the handshake completes.
    pub(crate) tls_info: Option<Box<crate::tls::TlsInfo>>,
    /// The timeout of a pending preamble or TLS handshake.
    pub(crate) handshake_timer: Option<TimerKey>,
    /// A listener preamble (PROXY header) still being read: the protocol has not started.
    pub(crate) preamble: Option<crate::preamble::Pending>,
    /// Addresses named by the preamble, reported instead of the socket's.
    pub(crate) peer_override: Option<ringwork_platform::SockAddr>,
    pub(crate) local_override: Option<ringwork_platform::SockAddr>,
    /// The reason `connection_lost` gets when a close the engine started (after a TLS
    /// error's alert) completes; `Done` if none.
    pub(crate) close_reason: Option<LostReason>,
    /// Where this connection's input is spliced (see `splice.rs`).
    pub(crate) splice_to: Option<ConnId>,
    /// Bytes of its input spliced so far.
    pub(crate) spliced: u64,
    /// The connection spliced into this one, if any.
    pub(crate) spliced_from: Option<ConnId>,
    /// Write-stall timeout (see `stall.rs`); `None`: none.
    pub(crate) write_timeout: Option<Duration>,
    /// The last time the peer took bytes, or when bytes became pending after none were.
    pub(crate) progress_at: Instant,
    /// The armed write-stall check.
    pub(crate) stall_timer: Option<TimerKey>,
}

impl Conn {
    pub(crate) fn new(
        id: ConnId,
        protocol: Box<dyn Protocol>,
        phase: Phase,
        write_timeout: Option<Duration>,
        now: Instant,
    ) -> Self {
        Self {
            id,
            protocol: Some(protocol),
            phase,
            wbuf: BytesMut::new(),
            in_flush: false,
            closing: false,
            shutdown: false,
            shutdown_sent: false,
            write_paused: false,
            read_paused: false,
            stash: BytesMut::new(),
            eof_pending: false,
            queued: 0,
            connect_timer: None,
            in_total: false,
            timers: Vec::new(),
            tls: None,
            tls_busy: false,
            tls_info: None,
            handshake_timer: None,
            preamble: None,
            peer_override: None,
            local_override: None,
            close_reason: None,
            splice_to: None,
            spliced: 0,
            spliced_from: None,
            write_timeout,
            progress_at: now,
            stall_timer: None,
        }
    }

    /// Whether the connection runs TLS (or a STARTTLS upgrade is under way).
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some() || self.tls_busy
    }

    /// Whether everything is sent, including a TLS `close_notify` still to be queued.
    fn drained(&self) -> bool {
        self.buffered() == 0 && !self.tls_busy && self.tls.as_ref().is_none_or(|s| s.is_drained())
    }

    /// Why a completed close ended the connection.
    fn close_reason(&mut self) -> LostReason {
        self.close_reason.take().unwrap_or(LostReason::Done)
    }

    fn socket(&self) -> SocketId {
        self.id.0
    }

    /// Outgoing bytes not yet taken by the kernel.
    pub(crate) fn buffered(&self) -> usize {
        self.wbuf.len() + self.queued
    }
}

/// Connections by slot (the driver's socket slot), with generation-checked lookups.
#[derive(Default)]
pub(crate) struct ConnTable {
    slots: Vec<Option<Conn>>,
    live: usize,
}

impl ConnTable {
    /// Connections in the table (including those whose `connection_lost` is pending).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    fn insert(&mut self, conn: Conn) {
        let index = conn.id.index() as usize;
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        debug_assert!(
            self.slots[index].is_none(),
            "driver reused a slot the engine still holds"
        );
        self.slots[index] = Some(conn);
        self.live += 1;
    }

    /// The connection `id` if it is still the one in its slot.
    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slots
            .get(id.index() as usize)?
            .as_ref()
            .filter(|c| c.id == id)
    }

    /// See [`ConnTable::get`].
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slots
            .get_mut(id.index() as usize)?
            .as_mut()
            .filter(|c| c.id == id)
    }

    /// The connection `id` unless it is lost: what every caller-facing operation acts on.
    pub(crate) fn active_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.get_mut(id).filter(|c| c.phase != Phase::Lost)
    }

    /// Removes connection `id`.
    fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let slot = self.slots.get_mut(id.index() as usize)?;
        if slot.as_ref().is_some_and(|c| c.id == id) {
            self.live -= 1;
            return slot.take();
        }
        None
    }

    /// Every connection id.
    pub(crate) fn ids(&self) -> Vec<ConnId> {
        self.slots.iter().flatten().map(|c| c.id).collect()
    }
}

/// Sees each connection's end reason (see [`State::lost_observer`]).
pub(crate) type LostObserver = Box<dyn FnMut(ConnId, &LostReason)>;

/// The engine state of one core (everything but the I/O layer).
pub(crate) struct State {
    pub(crate) config: ReactorConfig,
    pub(crate) conns: ConnTable,
    /// The runtime's cores (`None` in single-threaded mode).
    pub(crate) cores: Option<crate::runtime::Cores>,
    /// The runtime-wide limit on accepted connections, if any.
    pub(crate) total: Option<std::sync::Arc<crate::runtime::TotalLimit>>,
    /// Queue of work for the reactor from futures and protocols.
    pub(crate) local: crate::local::LocalHandle,
    flush: Vec<ConnId>,
    pub(crate) notices: VecDeque<(ConnId, Notice)>,
    pub(crate) timers: Timers,
    /// The time of this turn (a manual clock in tests).
    pub(crate) now: Instant,
    pub(crate) stats: CoreStats,
    /// Limits on this core's repeated warnings.
    pub(crate) warnings: Warnings,
    /// Told every connection's end reason just before its `connection_lost` (also when a
    /// panicked protocol gets none). Only [`testing`](crate::testing) sets it.
    pub(crate) lost_observer: Option<LostObserver>,
}

impl State {
    pub(crate) fn new(config: ReactorConfig, now: Instant) -> Self {
        let timers = Timers::new(now, config.timer_tick);
        let warnings = Warnings::new(config.warning_interval);
        Self {
            config,
            conns: ConnTable::default(),
            cores: None,
            total: None,
            local: crate::local::LocalHandle::default(),
            flush: Vec::new(),
            notices: VecDeque::new(),
            timers,
            now,
            stats: CoreStats::default(),
            warnings,
            lost_observer: None,
        }
    }

    /// Adds a connection for `socket`.
    pub(crate) fn insert(
        &mut self,
        socket: SocketId,
        protocol: Box<dyn Protocol>,
        phase: Phase,
    ) -> ConnId {
        let id = ConnId(socket);
        let timeout = crate::stall::normalize(self.config.write_timeout);
        self.conns
            .insert(Conn::new(id, protocol, phase, timeout, self.now));
        id
    }

    /// Removes a lost connection (after its `connection_lost`).
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.conns.remove(id)?;
        if conn.in_total
            && let Some(total) = &self.total
        {
            total.release();
        }
        Some(conn)
    }

    /// Appends `data` to the connection's buffer (flushed at the end of the turn).
    pub(crate) fn write(&mut self, io: &mut dyn Io, id: ConnId, data: &[u8]) {
        let Some(conn) = self.conns.active_mut(id) else {
            return;
        };
        if conn.closing || conn.shutdown || data.is_empty() {
            return;
        }
        conn.wbuf.extend_from_slice(data);
        if !conn.in_flush {
            conn.in_flush = true;
            self.flush.push(id);
        }
        self.check_high(io, id);
    }

    /// Queues `bytes` without a copy, after anything written before it.
    pub(crate) fn write_bytes(&mut self, io: &mut dyn Io, id: ConnId, bytes: Bytes) {
        let Some(conn) = self.conns.active_mut(id) else {
            return;
        };
        if conn.closing || conn.shutdown || bytes.is_empty() {
            return;
        }
        if conn.is_tls() {
            // Encrypted at the end of the turn with everything else written in it.
            conn.wbuf.extend_from_slice(&bytes);
            if !conn.in_flush {
                conn.in_flush = true;
                self.flush.push(id);
            }
            self.check_high(io, id);
            return;
        }
        if conn.queued == 0 {
            crate::stall::start(conn, &mut self.timers, self.now);
        }
        if !conn.wbuf.is_empty() {
            let earlier = conn.wbuf.split().freeze();
            conn.queued += earlier.len();
            self.stats.bytes_out += earlier.len() as u64;
            io.send(conn.socket(), earlier);
        }
        conn.queued += bytes.len();
        self.stats.bytes_out += bytes.len() as u64;
        io.send(conn.socket(), bytes);
        self.check_high(io, id);
    }

    /// Enforces the high watermark and the hard limit after a write.
    fn check_high(&mut self, io: &mut dyn Io, id: ConnId) {
        let limit = self.config.write_buffer_limit;
        let high = self.config.write_high_watermark;
        let Some(conn) = self.conns.active_mut(id) else {
            return;
        };
        let buffered = conn.buffered();
        if buffered > limit {
            self.lose(io, id, LostReason::WriteBufferFull { limit }, true);
        } else if buffered > high && !conn.write_paused {
            conn.write_paused = true;
            self.notices.push_back((id, Notice::PauseWriting));
        }
    }

    /// The driver took `bytes`; `queued` remain below the engine.
    pub(crate) fn sent(&mut self, io: &mut dyn Io, id: ConnId, queued: usize) {
        let low = self.config.write_low_watermark;
        let Some(conn) = self.conns.active_mut(id) else {
            return;
        };
        conn.queued = queued;
        // Progress for the write-stall timeout (see `stall.rs`): one store, no timer work.
        conn.progress_at = self.now;
        if conn.write_paused && conn.buffered() <= low {
            conn.write_paused = false;
            self.notices.push_back((id, Notice::WriteDrained));
        }
        if conn.closing && conn.drained() {
            let reason = conn.close_reason();
            self.lose(io, id, reason, false);
        }
    }

    /// Closes once every byte is sent.
    pub(crate) fn close(&mut self, io: &mut dyn Io, id: ConnId) {
        let Some(conn) = self.conns.active_mut(id) else {
            return;
        };
        if conn.phase == Phase::Connecting && conn.buffered() == 0 {
            // Nothing to send: closing cancels the connect.
            self.lose(io, id, LostReason::Done, false);
            return;
        }
        // Still connecting with bytes written: they are sent once it connects, then it closes.
        conn.closing = true;
        if conn.drained() {
            let reason = conn.close_reason();
            self.lose(io, id, reason, false);
        } else if !conn.in_flush {
            conn.in_flush = true;
            self.flush.push(id);
        }
    }

    /// Half-closes once every byte is sent.
    pub(crate) fn shutdown_write(&mut self, id: ConnId) {
        let Some(conn) = self.conns.active_mut(id) else {
            return;
        };
        conn.shutdown = true;
        if !conn.in_flush {
            conn.in_flush = true;
            self.flush.push(id);
        }
    }

    /// Ends a connection: closes (or resets) the socket now and queues `connection_lost`.
    pub(crate) fn lose(&mut self, io: &mut dyn Io, id: ConnId, reason: LostReason, reset: bool) {
        let Some(conn) = self.conns.active_mut(id) else {
            return;
        };
        conn.phase = Phase::Lost;
        for timer in conn.timers.drain(..) {
            self.timers.cancel(timer);
        }
        // Closing drops whatever the driver still queued: nothing is buffered any more.
        conn.wbuf.clear();
        conn.queued = 0;
        if let Some(key) = conn.connect_timer.take() {
            self.timers.cancel_key(key);
        }
        if let Some(key) = conn.handshake_timer.take() {
            self.timers.cancel_key(key);
        }
        if let Some(key) = conn.stall_timer.take() {
            self.timers.cancel_key(key);
        }
        let splice_to = conn.splice_to;
        conn.tls = None;
        if reset {
            io.abort(id.0);
        } else {
            io.close(id.0);
        }
        // The splice into `splice_to` ends with this connection: no more watching it.
        if let Some(dest) = splice_to.and_then(|to| self.conns.get_mut(to))
            && dest.spliced_from == Some(id)
        {
            dest.spliced_from = None;
        }
        self.notices.push_back((id, Notice::Lost(reason)));
    }

    /// Stops reading (bytes already in flight are stashed until resumed).
    pub(crate) fn pause_reading(&mut self, io: &mut dyn Io, id: ConnId) {
        if let Some(conn) = self.conns.active_mut(id)
            && !conn.read_paused
        {
            conn.read_paused = true;
            io.stop_recv(id.0);
        }
    }

    /// Resumes reading; stashed bytes are delivered first.
    pub(crate) fn resume_reading(&mut self, io: &mut dyn Io, id: ConnId) {
        if let Some(conn) = self.conns.active_mut(id)
            && conn.read_paused
        {
            conn.read_paused = false;
            // A TLS session may hold decrypted bytes the protocol has not seen yet.
            if !conn.stash.is_empty() || conn.eof_pending || conn.is_tls() {
                self.notices.push_back((id, Notice::Stash));
            }
            if conn.phase == Phase::Open {
                io.recv(id.0);
            }
        }
    }

    /// Sends every buffer written this turn; runs half-closes and closes that waited for it.
    pub(crate) fn flush(&mut self, io: &mut dyn Io) {
        let pending = std::mem::take(&mut self.flush);
        for id in &pending {
            let Some(conn) = self.conns.active_mut(*id) else {
                continue;
            };
            conn.in_flush = false;
            if conn.phase != Phase::Open {
                // Connecting: flushed once connected (the reactor re-queues it).
                continue;
            }
            // Nothing was pending: if bytes go out now, the stall clock starts.
            let was_idle = conn.queued == 0;
            if let Some(session) = conn.tls.as_mut() {
                let ending = conn.closing || conn.shutdown;
                let sealed = crate::tls::session::seal(session, &mut conn.wbuf, ending);
                if !sealed.is_empty() {
                    let bytes = sealed.freeze();
                    conn.queued += bytes.len();
                    self.stats.bytes_out += bytes.len() as u64;
                    io.send(id.0, bytes);
                }
            } else if !conn.wbuf.is_empty() {
                let bytes = conn.wbuf.split().freeze();
                conn.queued += bytes.len();
                self.stats.bytes_out += bytes.len() as u64;
                io.send(id.0, bytes);
            }
            if was_idle && conn.queued > 0 {
                crate::stall::start(conn, &mut self.timers, self.now);
            }
            if conn.shutdown && !conn.shutdown_sent {
                conn.shutdown_sent = true;
                io.shutdown_write(id.0);
            }
            if conn.closing && conn.drained() {
                let reason = conn.close_reason();
                self.lose(io, *id, reason, false);
            }
        }
        let mut pending = pending;
        pending.clear();
        if self.flush.is_empty() {
            self.flush = pending;
        }
    }

    /// Queues a flush of `id` (after it connected).
    pub(crate) fn schedule_flush(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.active_mut(id)
            && !conn.in_flush
        {
            conn.in_flush = true;
            self.flush.push(id);
        }
    }
}
