//! Per-core engine state shared by every callback: connections, their write buffers and
//! states, timers, and the notices queued for delivery after the running callback.
//!
//! Owns: [`State`] and [`Conn`], whose state is four small enums whose variants carry
//! their data, so impossible combinations cannot be written:
//! - [`Phase`]: connecting (with its connect timeout), open, lost;
//! - [`Stage`]: what input goes through before the protocol — a listener preamble, TLS
//!   (with the session and the handshake's timer or result), plain, or spliced into
//!   another connection (with its byte count);
//! - [`Reading`]: active, paused (with the input held meanwhile and a held end of stream),
//!   or resumed with held input still to deliver;
//! - [`Writing`]: open, shutting down, shut, or closing (with the FIN of a half-close and
//!   the reason its `connection_lost` gets).
//!
//! Every change a [`Context`](crate::Context) makes lands here
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
    /// Outbound, connect in progress; `timer` is its connect timeout.
    Connecting { timer: TimerKey },
    /// Established.
    Open,
    /// Gone; `connection_lost` is queued or running. Operations on it are ignored.
    Lost,
}

/// What a connection's input goes through before it reaches the protocol, in the order a
/// connection can pass the stages: `Preamble` -> `Tls` or `Plain`; `Plain` -> `Tls`
/// (STARTTLS) or `Spliced`. A spliced connection never runs TLS and a TLS one is never
/// spliced (its bytes must pass through rustls); neither reads a preamble.
pub(crate) enum Stage {
    /// A listener preamble (PROXY header) is still being read: the protocol (and TLS) have
    /// not started (see `preamble.rs`).
    Preamble(Box<crate::preamble::Pending>),
    /// Ciphertext goes into rustls, plaintext to the protocol (see `tls/session.rs`).
    Tls(Box<Tls>),
    /// Input goes to the protocol as it arrives.
    Plain,
    /// Input goes to another connection inside the kernel (see `splice.rs`); bytes a
    /// receive already had in flight still reach the protocol. Boxed like the others: rare,
    /// and inline it made every connection's slot 8 bytes larger (issue 16).
    Spliced(Box<Spliced>),
}

/// Where a spliced connection's input goes.
pub(crate) struct Spliced {
    /// The destination.
    pub(crate) to: ConnId,
    /// Bytes of the input spliced so far.
    pub(crate) bytes: u64,
}

/// The TLS stage of a connection.
pub(crate) struct Tls {
    /// The rustls session; `None` while it is out of its slot — plaintext is being handed to
    /// the protocol, which gets the whole core state (writes made meanwhile wait in the
    /// write buffer) — and once the connection is lost.
    pub(crate) session: Option<Box<crate::tls::session::Session>>,
    pub(crate) handshake: Handshake,
    /// This turn's large `write_bytes` pieces, kept without a copy until sealed (the write
    /// buffer holds what was written after the last of them).
    pub(crate) pieces: crate::tls::records::Pieces,
}

impl Tls {
    /// A session still handshaking.
    pub(crate) fn new(session: crate::tls::session::Session) -> Self {
        Self {
            session: Some(Box::new(session)),
            handshake: Handshake::Running { timer: None },
            pieces: crate::tls::records::Pieces::default(),
        }
    }
}

/// Where a connection's TLS handshake is.
pub(crate) enum Handshake {
    /// Running; `timer` is its timeout (a client's is armed once TCP is connected).
    Running { timer: Option<TimerKey> },
    /// Done: what the protocol learns about the session.
    Done(Box<crate::tls::TlsInfo>),
}

/// The read side of a connection. Independent of [`Stage`]: a spliced connection can be
/// paused too (its splice then stops). What is held while paused is boxed: rare (flow
/// control), and this enum is in every connection's slot (issue 16: memory per idle
/// connection; inline it was 40 bytes, boxed 16).
pub(crate) enum Reading {
    /// Input is delivered as it arrives.
    Active,
    /// `pause_reading`: no receive is armed. Bytes that were already in flight are held in
    /// `stash`, and an end of stream that arrives meanwhile in `eof`; `eof_received` never
    /// comes while paused.
    Paused(Box<Held>),
    /// Resumed with input still held: a queued [`Notice::Stash`] delivers it (the bytes,
    /// then the end of stream) before anything newer.
    Resumed(Box<Held>),
}

/// Input held while reading is paused (or resumed and not yet delivered).
#[derive(Default)]
pub(crate) struct Held {
    /// Bytes received meanwhile, oldest first.
    pub(crate) stash: BytesMut,
    /// An end of stream arrived after them.
    pub(crate) eof: bool,
}

impl Reading {
    /// Whether reading is paused.
    pub(crate) fn is_paused(&self) -> bool {
        matches!(self, Reading::Paused(_))
    }

    /// The held bytes, if any are (paused, or resumed and not yet delivered).
    pub(crate) fn stash_mut(&mut self) -> Option<&mut BytesMut> {
        match self {
            Reading::Active => None,
            Reading::Paused(held) | Reading::Resumed(held) => Some(&mut held.stash),
        }
    }

    /// Where input arriving now must wait instead of being delivered: while paused, and
    /// after a resume while held bytes are still being delivered (newer input goes after
    /// them). `None`: deliver it.
    pub(crate) fn holding(&mut self) -> Option<&mut Held> {
        match self {
            Reading::Paused(held) => Some(held),
            Reading::Resumed(held) if !held.stash.is_empty() => Some(held),
            Reading::Active | Reading::Resumed(_) => None,
        }
    }

    /// Whether an end of stream is held (until the held bytes are delivered).
    pub(crate) fn eof_pending(&self) -> bool {
        match self {
            Reading::Active => false,
            Reading::Paused(held) | Reading::Resumed(held) => held.eof,
        }
    }

    /// `pause_reading`: whatever is held stays held. `false` if it was paused already.
    fn pause(&mut self) -> bool {
        match std::mem::replace(self, Reading::Active) {
            Reading::Paused(held) => {
                *self = Reading::Paused(held);
                false
            }
            Reading::Active => {
                *self = Reading::Paused(Box::default());
                true
            }
            Reading::Resumed(held) => {
                *self = Reading::Paused(held);
                true
            }
        }
    }

    /// `resume_reading`: held input is left for a [`Notice::Stash`]. `None` if it was not
    /// paused, else whether anything is held.
    fn resume(&mut self) -> Option<bool> {
        let Reading::Paused(held) = std::mem::replace(self, Reading::Active) else {
            return None;
        };
        if held.stash.is_empty() && !held.eof {
            return Some(false);
        }
        *self = Reading::Resumed(held);
        Some(true)
    }

    /// Takes up to `max` held bytes for delivery after a resume (`None` while paused
    /// again); the rest, and the end of stream, stay held (see [`Reading::take_due_eof`]).
    pub(crate) fn take_resumed(&mut self, max: usize) -> Option<BytesMut> {
        match self {
            Reading::Paused(_) => None,
            Reading::Active => Some(BytesMut::new()),
            Reading::Resumed(held) => {
                let data = held.stash.split_to(max.min(held.stash.len()));
                if held.stash.is_empty() && !held.eof {
                    *self = Reading::Active;
                }
                Some(data)
            }
        }
    }

    /// Whether held bytes still wait for delivery after a resume.
    pub(crate) fn has_resumed_bytes(&self) -> bool {
        matches!(self, Reading::Resumed(held) if !held.stash.is_empty())
    }

    /// Whether a held end of stream is due now (resumed, nothing held before it); it is
    /// then no longer held.
    pub(crate) fn take_due_eof(&mut self) -> bool {
        match self {
            Reading::Resumed(held) if held.eof && held.stash.is_empty() => {
                *self = Reading::Active;
                true
            }
            _ => false,
        }
    }
}

/// The write side of a connection (whether it is above its high watermark is apart, in
/// [`Conn::write_paused`]: a half-closed connection still drains and gets `write_drained`).
/// Writes are taken only while it is `Open`.
#[derive(Debug)]
pub(crate) enum Writing {
    /// Writes are taken.
    Open,
    /// `shutdown_write`: the FIN follows the buffered bytes at the next flush.
    ShuttingDown,
    /// The FIN went to the driver (after every byte written before it).
    Shut,
    /// `close` (or a TLS error): the connection closes once everything is sent.
    Closing {
        /// A `shutdown_write` asked before or after the close.
        fin: Fin,
        /// What `connection_lost` gets when the close completes; `None`: `Done`. Boxed: a
        /// reason is 72 bytes and rare (an error), and this enum is in every connection's
        /// slot (issue 16: memory per idle connection).
        reason: Option<Box<LostReason>>,
    },
}

/// The FIN of a `shutdown_write` on a closing connection.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Fin {
    /// None was asked for.
    NotAsked,
    /// Asked: the next flush sends it.
    Pending,
    /// Sent.
    Sent,
}

impl Writing {
    /// Whether writes are taken.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self, Writing::Open)
    }

    /// Whether the connection closes once everything is sent.
    pub(crate) fn is_closing(&self) -> bool {
        matches!(self, Writing::Closing { .. })
    }

    /// `close`, with the reason `connection_lost` gets (replacing one set before);
    /// `None` keeps the one set before, if any.
    pub(crate) fn close(&mut self, reason: Option<LostReason>) {
        let fin = match self {
            Writing::Open => Fin::NotAsked,
            Writing::ShuttingDown => Fin::Pending,
            Writing::Shut => Fin::Sent,
            Writing::Closing { reason: old, .. } => {
                if let Some(reason) = reason {
                    *old = Some(Box::new(reason));
                }
                return;
            }
        };
        *self = Writing::Closing {
            fin,
            reason: reason.map(Box::new),
        };
    }

    /// `shutdown_write`.
    fn shutdown(&mut self) {
        match self {
            Writing::Open => *self = Writing::ShuttingDown,
            Writing::Closing { fin, .. } if *fin == Fin::NotAsked => *fin = Fin::Pending,
            _ => {}
        }
    }

    /// Whether a FIN is to be sent now; it is then recorded as sent.
    fn take_fin(&mut self) -> bool {
        match self {
            Writing::ShuttingDown => *self = Writing::Shut,
            Writing::Closing { fin, .. } if *fin == Fin::Pending => *fin = Fin::Sent,
            _ => return false,
        }
        true
    }

    /// Why a completed close ended the connection.
    fn take_close_reason(&mut self) -> LostReason {
        match self {
            Writing::Closing { reason, .. } => reason.take().map_or(LostReason::Done, |r| *r),
            _ => LostReason::Done,
        }
    }
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
    /// Deliver input held while reading was paused (then a held-back EOF).
    Stash,
    /// `woken` (asked for through [`LocalHandle::wake`](crate::LocalHandle::wake)).
    Wake,
    /// `connection_lost`, then the connection is removed.
    Lost(LostReason),
    /// A callback of the child process whose exit watcher has this id (see `process/`).
    Process(crate::process::ProcessNotice),
}

/// What few connections have, boxed together out of every connection's slot (issue 16:
/// memory per idle connection; a socket address inline is 136 bytes).
#[derive(Debug, Default)]
pub(crate) struct Rare {
    /// The peer address a preamble (PROXY protocol) named, reported instead of the socket's.
    pub(crate) peer: Option<ringwork_platform::SockAddr>,
    /// The local address a preamble named.
    pub(crate) local: Option<ringwork_platform::SockAddr>,
    /// The connection spliced into this one, if any.
    pub(crate) spliced_from: Option<ConnId>,
}

/// One connection.
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    /// `None` while one of its callbacks runs.
    pub(crate) protocol: Option<Box<dyn Protocol>>,
    pub(crate) phase: Phase,
    pub(crate) stage: Stage,
    pub(crate) reading: Reading,
    pub(crate) writing: Writing,
    /// Above the high watermark since `pause_writing` (until `write_drained`).
    pub(crate) write_paused: bool,
    /// This turn's writes, flushed at the end of the turn.
    pub(crate) wbuf: BytesMut,
    /// Listed in [`State`]'s flush queue.
    pub(crate) in_flush: bool,
    /// Bytes queued in the driver (from its `Sent` completions).
    pub(crate) queued: usize,
    /// Bytes of file ranges queued in the driver ([`crate::Context::send_file`]; from its
    /// `FileSent` completions). Not part of [`Conn::buffered`]: no memory holds them.
    pub(crate) file_queued: u64,
    /// Counted in the runtime-wide connection total (accepted connections only).
    pub(crate) in_total: bool,
    /// Its pending protocol timers, cancelled when it is lost (so a closed connection leaves
    /// no entries in the wheel), each with its current wheel key. Inline up to one: an idle
    /// server connection has one (its read timeout) and no allocation for it.
    pub(crate) timers: smallvec::SmallVec<[(crate::timers::TimerId, TimerKey); 1]>,
    /// Preamble addresses and the connection spliced into this one, if any of them.
    pub(crate) rare: Option<Box<Rare>>,
    /// Write-stall timeout (see `stall.rs`); `None`: none.
    pub(crate) write_timeout: crate::stall::Timeout,
    /// The last time the peer took bytes, or when bytes became pending after none were.
    pub(crate) progress_at: crate::stall::Moment,
    /// The armed write-stall check.
    pub(crate) stall_timer: Option<TimerKey>,
}

impl Conn {
    pub(crate) fn new(
        id: ConnId,
        protocol: Box<dyn Protocol>,
        phase: Phase,
        write_timeout: Option<Duration>,
        now: crate::stall::Moment,
    ) -> Self {
        Self {
            id,
            protocol: Some(protocol),
            phase,
            stage: Stage::Plain,
            reading: Reading::Active,
            writing: Writing::Open,
            write_paused: false,
            wbuf: BytesMut::new(),
            in_flush: false,
            queued: 0,
            in_total: false,
            timers: smallvec::SmallVec::new(),
            rare: None,
            file_queued: 0,
            write_timeout: crate::stall::Timeout::new(write_timeout),
            progress_at: now,
            stall_timer: None,
        }
    }

    /// The connection spliced into this one, if any.
    pub(crate) fn spliced_from(&self) -> Option<ConnId> {
        self.rare.as_ref()?.spliced_from
    }

    /// Sets (or clears) the connection spliced into this one.
    pub(crate) fn set_spliced_from(&mut self, from: Option<ConnId>) {
        if from.is_some() || self.rare.is_some() {
            self.rare.get_or_insert_with(Box::default).spliced_from = from;
        }
    }

    /// Whether the connection is open: not lost, not closing.
    pub(crate) fn is_open(&self) -> bool {
        self.phase != Phase::Lost && !self.writing.is_closing()
    }

    /// Whether the connection runs TLS (or a STARTTLS upgrade is under way).
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.stage, Stage::Tls(_))
    }

    /// Whether everything is sent, including a TLS `close_notify` still to be queued.
    fn drained(&self) -> bool {
        self.buffered() == 0
            && self.file_queued == 0
            && match &self.stage {
                Stage::Tls(tls) => tls.session.as_ref().is_some_and(|s| s.is_drained()),
                _ => true,
            }
    }

    fn socket(&self) -> SocketId {
        self.id.0
    }

    /// Outgoing bytes not yet taken by the kernel.
    pub(crate) fn buffered(&self) -> usize {
        let pieces = match &self.stage {
            Stage::Tls(tls) => tls.pieces.len(),
            _ => 0,
        };
        self.wbuf.len() + pieces + self.queued
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
    /// The core's timer wheel, shared with its handles (`local`).
    pub(crate) timers: Timers,
    /// Child processes of this core (see `process/`).
    pub(crate) processes: crate::process::Processes,
    /// The runtime's pool for blocking work (this reactor's own when it runs alone).
    pub(crate) threads: crate::threads::ThreadPool,
    /// The time of this turn, read once per turn from the reactor's clock (a manual clock
    /// in tests); set with [`State::set_now`].
    pub(crate) now: Instant,
    /// When the core's clock started (at [`State::new`]): [`State::moment`] counts from it.
    pub(crate) epoch: Instant,
    /// [`State::now`] as nanoseconds since [`State::epoch`], in 8 bytes: what connections
    /// store (see [`crate::stall::Moment`]).
    pub(crate) moment: crate::stall::Moment,
    pub(crate) stats: CoreStats,
    /// Limits on this core's repeated warnings.
    pub(crate) warnings: Warnings,
    /// Told every connection's end reason just before its `connection_lost` (also when a
    /// panicked protocol gets none). Only [`testing`](crate::testing) sets it.
    pub(crate) lost_observer: Option<LostObserver>,
}

impl State {
    /// A core's state; its time starts at `config.clock`'s.
    pub(crate) fn new(config: ReactorConfig) -> Self {
        let threads = crate::threads::ThreadPool::default();
        let local = crate::local::LocalHandle::new(
            config.clock.clone(),
            config.timer_tick,
            threads.clone(),
        );
        let now = local.now();
        let timers = local.local.timers.clone();
        let warnings = Warnings::new(config.warning_interval);
        Self {
            config,
            conns: ConnTable::default(),
            cores: None,
            total: None,
            local,
            flush: Vec::new(),
            notices: VecDeque::new(),
            timers,
            processes: crate::process::Processes::default(),
            threads,
            now,
            epoch: now,
            moment: crate::stall::Moment::default(),
            stats: CoreStats::default(),
            warnings,
            lost_observer: None,
        }
    }

    /// Sets the turn's time (also what the core's handles answer).
    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.moment = crate::stall::Moment::of(self.epoch, now);
        self.local.set_now(now);
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
            .insert(Conn::new(id, protocol, phase, timeout, self.moment));
        id
    }

    /// Removes a lost connection (after its `connection_lost`).
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.conns.remove(id)?;
        self.stats.closed += 1;
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
        if !conn.writing.is_open() || data.is_empty() {
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
        if !conn.writing.is_open() || bytes.is_empty() {
            return;
        }
        if let Stage::Tls(tls) = &mut conn.stage {
            // Encrypted at the end of the turn with everything else written in it; a large
            // piece as it is (rustls copies it once, into the record it encrypts in place).
            if bytes.len() >= crate::tls::records::PIECE_MIN {
                tls.pieces.push(&mut conn.wbuf, bytes);
            } else {
                conn.wbuf.extend_from_slice(&bytes);
            }
            if !conn.in_flush {
                conn.in_flush = true;
                self.flush.push(id);
            }
            self.check_high(io, id);
            return;
        }
        if conn.queued == 0 {
            crate::stall::start(conn, &mut self.timers, self.now, self.moment);
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
        // `check_high` looks the connection up again: only past a watermark it acts on
        // (issue 16: once per keep-alive answer, ~35 instructions).
        let watch = self
            .config
            .write_high_watermark
            .min(self.config.write_buffer_limit);
        if conn.buffered() > watch {
            self.check_high(io, id);
        }
    }

    /// Queues `len` bytes of `file` from `offset` after everything written so far (see
    /// [`crate::Context::send_file`]).
    pub(crate) fn send_file(
        &mut self,
        io: &mut dyn Io,
        id: ConnId,
        file: std::sync::Arc<std::fs::File>,
        offset: u64,
        len: u64,
    ) -> Result<(), crate::EngineError> {
        let refuse = |why: &str| Err(crate::EngineError::SendFile { why: why.into() });
        let Some(conn) = self.conns.active_mut(id) else {
            return refuse("the connection is not open");
        };
        if !conn.writing.is_open() {
            return refuse("the connection's write side is closing or shut");
        }
        if conn.is_tls() {
            return refuse("TLS connections cannot send files (their bytes pass through rustls)");
        }
        if len == 0 {
            return Ok(());
        }
        let socket = conn.socket();
        // Bytes written earlier in this turn go first.
        let earlier = (!conn.wbuf.is_empty()).then(|| conn.wbuf.split().freeze());
        if let Some(earlier) = earlier {
            conn.queued += earlier.len();
            self.stats.bytes_out += earlier.len() as u64;
            io.send(socket, earlier);
        }
        io.send_file(socket, file, offset, len)?;
        if conn.queued == 0 && conn.file_queued == 0 {
            crate::stall::start(conn, &mut self.timers, self.now, self.moment);
        }
        conn.file_queued += len;
        self.stats.bytes_out += len;
        Ok(())
    }

    /// The driver sent file bytes; `file_queued` remain below the engine.
    pub(crate) fn file_sent(&mut self, io: &mut dyn Io, id: ConnId, file_queued: u64) {
        let Some(conn) = self.conns.active_mut(id) else {
            return;
        };
        conn.file_queued = file_queued;
        conn.progress_at = self.moment;
        if conn.writing.is_closing() && conn.drained() {
            let reason = conn.writing.take_close_reason();
            self.lose(io, id, reason, false);
        }
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
        conn.progress_at = self.moment;
        if conn.write_paused && conn.buffered() <= low {
            conn.write_paused = false;
            self.notices.push_back((id, Notice::WriteDrained));
        }
        if conn.writing.is_closing() && conn.drained() {
            let reason = conn.writing.take_close_reason();
            self.lose(io, id, reason, false);
        }
    }

    /// Closes once every byte is sent.
    pub(crate) fn close(&mut self, io: &mut dyn Io, id: ConnId) {
        let Some(conn) = self.conns.active_mut(id) else {
            return;
        };
        if matches!(conn.phase, Phase::Connecting { .. }) && conn.buffered() == 0 {
            // Nothing to send: closing cancels the connect.
            self.lose(io, id, LostReason::Done, false);
            return;
        }
        // Still connecting with bytes written: they are sent once it connects, then it closes.
        conn.writing.close(None);
        if conn.drained() {
            let reason = conn.writing.take_close_reason();
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
        conn.writing.shutdown();
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
        if let Phase::Connecting { timer } = std::mem::replace(&mut conn.phase, Phase::Lost) {
            self.timers.cancel_key(timer);
        }
        for (_, key) in conn.timers.drain(..) {
            self.timers.cancel(key);
        }
        // Closing drops whatever the driver still queued: nothing is buffered any more.
        conn.wbuf.clear();
        conn.queued = 0;
        let mut splice_to = None;
        match &mut conn.stage {
            Stage::Preamble(pending) => self.timers.cancel_key(pending.timer),
            Stage::Tls(tls) => {
                // Nothing more is sent or decrypted; what the handshake told stays readable.
                tls.session = None;
                tls.pieces.clear();
                if let Handshake::Running { timer } = &mut tls.handshake
                    && let Some(key) = timer.take()
                {
                    self.timers.cancel_key(key);
                }
            }
            Stage::Plain => {}
            Stage::Spliced(spliced) => splice_to = Some(spliced.to),
        }
        if let Some(key) = conn.stall_timer.take() {
            self.timers.cancel_key(key);
        }
        if reset {
            io.abort(id.0);
        } else {
            io.close(id.0);
        }
        // The splice into `splice_to` ends with this connection: no more watching it.
        if let Some(dest) = splice_to.and_then(|to| self.conns.get_mut(to))
            && dest.spliced_from() == Some(id)
        {
            dest.set_spliced_from(None);
        }
        self.notices.push_back((id, Notice::Lost(reason)));
    }

    /// Stops reading (bytes already in flight are stashed until resumed).
    pub(crate) fn pause_reading(&mut self, io: &mut dyn Io, id: ConnId) {
        if let Some(conn) = self.conns.active_mut(id)
            && conn.reading.pause()
        {
            io.stop_recv(id.0);
        }
    }

    /// Resumes reading; stashed bytes are delivered first.
    pub(crate) fn resume_reading(&mut self, io: &mut dyn Io, id: ConnId) {
        if let Some(conn) = self.conns.active_mut(id)
            && let Some(held) = conn.reading.resume()
        {
            // A TLS session may hold decrypted bytes the protocol has not seen yet.
            if held || conn.is_tls() {
                self.notices.push_back((id, Notice::Stash));
            }
            if conn.phase == Phase::Open {
                io.recv(id.0);
            }
        }
    }

    /// Sends every buffer written this turn; runs half-closes and closes that waited for it.
    pub(crate) fn flush(&mut self, io: &mut dyn Io) {
        if self.flush.is_empty() {
            // The turn's first flush, most of the time (issue 16).
            return;
        }
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
            if let Stage::Tls(tls) = &mut conn.stage {
                // The session is in its slot: the flush runs between callbacks.
                if let Some(session) = tls.session.as_mut() {
                    let ending = !conn.writing.is_open();
                    let mut sent = 0;
                    crate::tls::session::seal(
                        session,
                        &mut tls.pieces,
                        &mut conn.wbuf,
                        ending,
                        self.now,
                        &mut |bytes| {
                            sent += bytes.len();
                            io.send(id.0, bytes);
                        },
                    );
                    conn.queued += sent;
                    self.stats.bytes_out += sent as u64;
                }
            } else if !conn.wbuf.is_empty() {
                let bytes = conn.wbuf.split().freeze();
                conn.queued += bytes.len();
                self.stats.bytes_out += bytes.len() as u64;
                io.send(id.0, bytes);
            }
            if was_idle && conn.queued > 0 {
                crate::stall::start(conn, &mut self.timers, self.now, self.moment);
            }
            if conn.writing.take_fin() {
                io.shutdown_write(id.0);
            }
            if conn.writing.is_closing() && conn.drained() {
                let reason = conn.writing.take_close_reason();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The held-input box is made by `pause_reading` and dropped once nothing is held any
    /// more (issue 16: a connection that reads normally carries none).
    #[test]
    fn held_input_is_boxed_only_while_held() {
        let mut reading = Reading::Active;
        assert!(reading.pause());
        assert!(matches!(reading, Reading::Paused(_)));
        assert_eq!(reading.resume(), Some(false));
        assert!(matches!(reading, Reading::Active), "nothing held: no box");

        assert!(reading.pause());
        reading
            .holding()
            .expect("paused: input is held")
            .stash
            .extend_from_slice(b"abc");
        assert_eq!(reading.resume(), Some(true));
        assert!(reading.has_resumed_bytes());
        assert_eq!(reading.take_resumed(2).as_deref(), Some(&b"ab"[..]));
        assert!(matches!(reading, Reading::Resumed(_)));
        assert_eq!(reading.take_resumed(2).as_deref(), Some(&b"c"[..]));
        assert!(
            matches!(reading, Reading::Active),
            "all delivered: box dropped"
        );
    }

    /// Memory per idle connection (issue 16): the connection table holds one `Option<Conn>`
    /// per slot, so every byte here is paid by each connection, idle or not. Rare, large
    /// parts (a close reason, preamble addresses, TLS state) are boxed; this keeps them so.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn connection_slot_stays_small() {
        assert!(
            size_of::<Writing>() <= 24,
            "Writing: {}",
            size_of::<Writing>()
        );
        assert!(
            size_of::<Reading>() <= 16,
            "Reading: {}",
            size_of::<Reading>()
        );
        assert!(size_of::<Stage>() <= 16, "Stage: {}", size_of::<Stage>());
        assert!(
            size_of::<Option<Conn>>() <= 192,
            "Option<Conn>: {} bytes",
            size_of::<Option<Conn>>()
        );
    }
}
