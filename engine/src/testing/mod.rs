//! Test helpers: a protocol on an in-memory connection under a manual clock — what Twisted's
//! trial gives with `StringTransport` and `task.Clock`. Enabled by the `testing` feature.
//!
//! Owns: [`StringTransport`] (one core's engine state over in-memory sockets, with its own
//! clock), [`Remote`] (the test's end of one of its connections) and
//! [`StringTransportBuilder`].
//! Contract: every step runs the reactor's own code — the engine state for writes,
//! watermarks, close, abort and half-close, and the reactor's dispatch for callbacks, panics,
//! paused reading, connects and timers — and ends as a reactor turn does: queued callbacks
//! run, written bytes are flushed, the in-memory kernel takes them (unless the peer is
//! stalled) and reports them sent, and this repeats until nothing is left to do. Time moves
//! only with [`StringTransport::advance`].
//! Does not: open sockets, read the system clock, sleep, or run [`LocalHandle::run`](crate::LocalHandle::run) jobs
//! (they need a real [`Reactor`](crate::Reactor); the transport panics when one is queued).
//! Futures spawned with [`LocalHandle::spawn_local`](crate::LocalHandle::spawn_local) do
//! run, and [`LocalHandle::wake`](crate::LocalHandle::wake) reaches its connection.
//! Tests: `tests.rs` (the engine's protocol-level tests).
//!
//! # Examples
//! ```
//! use std::time::Duration;
//!
//! use ringwork::testing::StringTransport;
//! use ringwork::{Context, LostReason, Protocol, TimerId};
//!
//! /// Echoes lines; closes after 30 s without input.
//! struct Echo {
//!     idle: Option<TimerId>,
//! }
//!
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, ctx: &mut Context<'_>) {
//!         self.idle = Some(ctx.call_later(Duration::from_secs(30)));
//!     }
//!     fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
//!         ctx.write(data);
//!         if let Some(idle) = self.idle.take() {
//!             ctx.cancel_timer(idle);
//!         }
//!         self.idle = Some(ctx.call_later(Duration::from_secs(30)));
//!     }
//!     fn timer_fired(&mut self, ctx: &mut Context<'_>, _timer: TimerId) {
//!         ctx.write(b"bye\n");
//!         ctx.close();
//!     }
//! }
//!
//! let mut t = StringTransport::new(Echo { idle: None });
//! t.feed(b"hello\n");
//! assert_eq!(t.take_written(), b"hello\n");
//! t.advance(Duration::from_secs(29));
//! assert!(t.is_open());
//! t.advance(Duration::from_secs(1));
//! assert_eq!(t.take_written(), b"bye\n");
//! assert!(matches!(t.lost_reason(), Some(LostReason::Done)));
//! ```

pub mod certs;
mod memory;
mod resolver;

pub use self::resolver::FakeResolver;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringwork_platform::{OpError, OpKind, SockAddr};

use crate::clock::{Clock, ManualClock};
use crate::config::ReactorConfig;
use crate::context::Context;
use crate::dispatch;
use crate::executor::Executor;
use crate::protocol::{ConnId, LostReason, Protocol};
use crate::state::State;
use crate::stats::CoreStats;
use crate::timer::TimerKey;
use crate::timers::Target;

use self::memory::{Ended, MemoryIo, Shutdown};

/// The peer address of a [`StringTransport`]'s connection unless the builder sets one.
pub const DEFAULT_PEER_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50_000));

/// The local address of a [`StringTransport`]'s connection unless the builder sets one.
pub const DEFAULT_LOCAL_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8_000));

/// Rounds of callbacks and flushes one step may take before the transport gives up: a
/// protocol that writes again every time its bytes are sent never goes idle.
const MAX_ROUNDS: usize = 100_000;

/// End reasons as the engine reports them, shared with the state's lost observer.
type LostLog = Rc<RefCell<Vec<(ConnId, LostReason)>>>;

/// A protocol on an in-memory connection: feed it bytes and EOF, read what it wrote, stall
/// its peer, and move a manual clock.
///
/// The transport is one core's engine — the same connection table, write buffers, watermarks,
/// timer wheel and callback dispatch as a [`Reactor`](crate::Reactor) — over sockets that
/// live in memory. The protocol given to [`StringTransport::new`] runs on an accepted
/// connection ([`StringTransport::id`]); connections it opens with [`Context::connect`] live
/// here too and are reached with [`StringTransport::remote`].
///
/// Each method that drives the connection (`feed*`, `advance`, `drain*`, `with_context`, ...)
/// runs a whole turn before it returns:
/// 1. the input is dispatched (the callback runs);
/// 2. follow-up callbacks run (`pause_writing`, `connection_lost`, ...);
/// 3. written bytes are flushed to the in-memory kernel, which takes them at once unless the
///    peer is stalled ([`StringTransport::stall_peer`]), and reports them sent — which may
///    complete a close or fire `write_drained`;
/// 4. steps 2–3 repeat until nothing is left to do.
///
/// So after `feed`, [`StringTransport::written`] holds the reply and a `close` with nothing
/// left to send has finished.
///
/// Time starts at [`StringTransport::now`] (the real time at creation) and moves only with
/// [`StringTransport::advance`].
///
/// # Examples
/// ```
/// use ringwork::testing::StringTransport;
/// use ringwork::{Context, Protocol};
///
/// struct Echo;
///
/// impl Protocol for Echo {
///     fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
///         ctx.write(data);
///     }
/// }
///
/// let mut t = StringTransport::new(Echo);
/// t.feed(b"ping");
/// assert_eq!(t.written(), b"ping");
/// t.feed_eof(); // the default `eof_received` closes
/// assert!(t.is_closed());
/// assert!(t.lost_reason().unwrap().is_clean());
/// ```
pub struct StringTransport {
    state: State,
    io: MemoryIo,
    executor: Executor,
    expired: Vec<(TimerKey, Target)>,
    /// The accepted connection the transport was built around.
    conn: ConnId,
    start: Instant,
    /// The transport's time, as its handles see it between steps (`state.now` leads).
    clock: ManualClock,
    /// Filled by the state's lost observer during a step; moved to `lost` after it.
    lost_log: LostLog,
    lost: HashMap<ConnId, LostReason>,
    turns: u64,
}

/// Settings of a [`StringTransport`]: engine limits and the connection's addresses.
///
/// # Examples
/// ```
/// use ringwork::ReactorConfig;
/// use ringwork::testing::StringTransport;
/// # struct Quiet;
/// # impl ringwork::Protocol for Quiet {
/// #     fn data_received(&mut self, _: &mut ringwork::Context<'_>, _: &[u8]) {}
/// # }
///
/// let config = ReactorConfig {
///     write_high_watermark: 1024,
///     write_low_watermark: 256,
///     write_buffer_limit: 4096,
///     ..ReactorConfig::default()
/// };
/// let t = StringTransport::builder()
///     .config(config)
///     .peer_addr("192.0.2.7:4242".parse::<std::net::SocketAddr>().unwrap())
///     .build(Quiet);
/// assert!(t.is_open());
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct StringTransportBuilder {
    config: ReactorConfig,
    peer: Option<SockAddr>,
    local: Option<SockAddr>,
}

impl StringTransportBuilder {
    /// Engine limits (watermarks, write-buffer limit, connect timeout, timer tick).
    pub fn config(mut self, config: ReactorConfig) -> Self {
        self.config = config;
        self
    }

    /// What [`Context::peer_addr`] answers (default [`DEFAULT_PEER_ADDR`]).
    pub fn peer_addr(mut self, addr: impl Into<SockAddr>) -> Self {
        self.peer = Some(addr.into());
        self
    }

    /// What [`Context::local_addr`] answers (default [`DEFAULT_LOCAL_ADDR`]).
    pub fn local_addr(mut self, addr: impl Into<SockAddr>) -> Self {
        self.local = Some(addr.into());
        self
    }

    /// Accepts a connection run by `protocol`; its `connection_made` runs before this
    /// returns.
    ///
    /// # Panics
    /// If the configuration is invalid (watermarks out of order, zero timer tick).
    pub fn build(self, protocol: impl Protocol) -> StringTransport {
        if let Err(what) = self.config.validate() {
            panic!("invalid ReactorConfig for StringTransport: {what}");
        }
        let clock = ManualClock::new();
        let start = clock.now();
        let config = ReactorConfig {
            clock: Clock::Manual(clock.clone()),
            ..self.config
        };
        let mut state = State::new(config);
        let lost_log = LostLog::default();
        let log = Rc::clone(&lost_log);
        state.lost_observer = Some(Box::new(move |id, reason| {
            log.borrow_mut().push((id, duplicate(reason)));
        }));
        let mut io = MemoryIo::default();
        let socket = io.add_accepted(
            self.local.unwrap_or_else(|| DEFAULT_LOCAL_ADDR.into()),
            self.peer.unwrap_or_else(|| DEFAULT_PEER_ADDR.into()),
        );
        let conn = dispatch::accepted(&mut state, &mut io, socket, Box::new(protocol), None, None);
        let mut transport = StringTransport {
            state,
            io,
            executor: Executor::new(None),
            expired: Vec::new(),
            conn,
            start,
            clock,
            lost_log,
            lost: HashMap::new(),
            turns: 0,
        };
        transport.settle();
        transport
    }
}

impl StringTransport {
    /// Accepts an in-memory connection run by `protocol`, with default limits and addresses;
    /// `connection_made` runs before this returns.
    #[must_use]
    pub fn new(protocol: impl Protocol) -> Self {
        Self::builder().build(protocol)
    }

    /// [`StringTransport::new`] with engine limits.
    ///
    /// # Panics
    /// If the configuration is invalid (watermarks out of order, zero timer tick).
    #[must_use]
    pub fn with_config(protocol: impl Protocol, config: ReactorConfig) -> Self {
        Self::builder().config(config).build(protocol)
    }

    /// Settings beyond the limits: the connection's addresses.
    pub fn builder() -> StringTransportBuilder {
        StringTransportBuilder::default()
    }

    /// The id of the connection the transport was built around (what its protocol's
    /// [`Context::id`] says).
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.conn
    }

    /// The test's end of connection `id` — this transport's own connection or one its
    /// protocols opened with [`Context::connect`]: the same operations as on the transport,
    /// for that connection.
    ///
    /// # Examples
    /// ```
    /// use ringwork::testing::StringTransport;
    /// use ringwork::{ConnectOptions, Context, Protocol};
    ///
    /// /// Opens a connection upstream and relays what it receives there.
    /// struct Relay;
    ///
    /// impl Protocol for Relay {
    ///     fn connection_made(&mut self, ctx: &mut Context<'_>) {
    ///         let me = ctx.id();
    ///         let upstream = ringwork::SockAddr::from(
    ///             "10.0.0.1:6379".parse::<std::net::SocketAddr>().unwrap(),
    ///         );
    ///         ctx.connect(&upstream, Upstream(me), ConnectOptions::default())
    ///             .unwrap();
    ///     }
    ///     fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
    /// }
    ///
    /// struct Upstream(ringwork::ConnId);
    ///
    /// impl Protocol for Upstream {
    ///     fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
    ///         ctx.other(self.0).write(data);
    ///     }
    /// }
    ///
    /// let mut t = StringTransport::new(Relay);
    /// let (upstream, addr) = t.pending_connects().remove(0);
    /// assert_eq!(addr.as_socket().unwrap().port(), 6379);
    /// t.complete_connect(upstream, Ok(()));
    /// t.remote(upstream).feed(b"+PONG\r\n");
    /// assert_eq!(t.written(), b"+PONG\r\n");
    /// ```
    pub fn remote(&mut self, id: ConnId) -> Remote<'_> {
        Remote {
            transport: self,
            id,
        }
    }

    /// Every connection still in the table (including ones whose close waits for a stalled
    /// peer), in slot order.
    #[must_use]
    pub fn connections(&self) -> Vec<ConnId> {
        self.state.conns.ids()
    }

    /// Outbound connects a protocol started that are not completed, failed or timed out yet,
    /// with the addresses asked for, oldest first. Finish one with
    /// [`StringTransport::complete_connect`]; advancing past the connect timeout fails it
    /// with [`LostReason::ConnectTimeout`].
    #[must_use]
    pub fn pending_connects(&self) -> Vec<(ConnId, SockAddr)> {
        self.io
            .pending_connects()
            .into_iter()
            .map(|(socket, addr)| (ConnId(socket), addr))
            .collect()
    }

    /// Completes the pending outbound connect `id`: `Ok` runs `connection_made` (and sends
    /// what the protocol wrote while connecting); `Err(kind)` ends it with
    /// [`LostReason::ConnectFailed`] carrying that error kind.
    ///
    /// # Panics
    /// If `id` is not a pending connect (see [`StringTransport::pending_connects`]).
    pub fn complete_connect(&mut self, id: ConnId, result: Result<(), io::ErrorKind>) {
        let socket = self
            .io
            .socket_mut(id.0)
            .filter(|s| s.connecting && s.ended.is_none())
            .unwrap_or_else(|| {
                panic!("{id} has no pending connect (completed, failed or timed out)")
            });
        socket.connecting = false;
        let result = result.map_err(|kind| OpError {
            op: OpKind::Connect,
            socket: Some(id.0),
            source: io::Error::from(kind),
        });
        dispatch::connected(&mut self.state, &mut self.io, id, result);
        self.settle();
    }

    /// Makes [`Context::connect`] itself fail with `kind` (as when creating the socket
    /// fails), or succeed again with `None`.
    pub fn set_connect_error(&mut self, kind: Option<io::ErrorKind>) {
        self.io.connect_error = kind;
    }

    /// Delivers bytes from the peer: `data_received`, or — while the protocol paused reading
    /// — held and delivered, in order, when it resumes (as the reactor does with bytes
    /// already in flight). Empty input does nothing, and so does input after the connection
    /// closed.
    ///
    /// # Panics
    /// After [`StringTransport::feed_eof`] (the peer finished sending), or on a connect that
    /// is still pending.
    pub fn feed(&mut self, data: &[u8]) {
        self.feed_on(self.conn, data);
    }

    /// The peer finished sending: `eof_received`, after any bytes held while reading is
    /// paused (on resume, if it is paused). The default `eof_received` closes.
    pub fn feed_eof(&mut self) {
        self.feed_eof_on(self.conn);
    }

    /// The peer reset the connection: `connection_lost(Reset)`, as the reactor reports
    /// `ECONNRESET`.
    pub fn reset_by_peer(&mut self) {
        self.fail_on(self.conn, io::ErrorKind::ConnectionReset);
    }

    /// Receiving failed with `kind`: the connection is lost with the reason the reactor
    /// gives (`Reset` for a reset, broken pipe or abort, else [`LostReason::Error`]).
    pub fn fail(&mut self, kind: io::ErrorKind) {
        self.fail_on(self.conn, kind);
    }

    /// Every byte the peer received so far, in order (minus what
    /// [`StringTransport::take_written`] took). With the peer stalled, bytes still queued
    /// are not here yet.
    #[must_use]
    pub fn written(&self) -> &[u8] {
        self.written_of(self.conn)
    }

    /// Takes what [`StringTransport::written`] holds.
    pub fn take_written(&mut self) -> Vec<u8> {
        self.take_written_of(self.conn)
    }

    /// Simulates a peer that stops reading (`true`): written bytes stay queued below the
    /// engine, count toward the watermarks and the write-buffer limit, and reach
    /// [`StringTransport::written`] only with [`StringTransport::drain`]. `false` resumes
    /// reading: everything queued is taken at once.
    pub fn stall_peer(&mut self, stalled: bool) {
        self.stall_on(self.conn, stalled);
    }

    /// The stalled peer reads everything queued: the engine is told the bytes were sent
    /// (`write_drained` fires if the protocol was paused above the high watermark, a pending
    /// close completes). Returns the bytes taken, which are also appended to
    /// [`StringTransport::written`].
    ///
    /// # Examples
    /// ```
    /// use ringwork::testing::StringTransport;
    /// use ringwork::{Context, Protocol};
    ///
    /// struct Send3;
    ///
    /// impl Protocol for Send3 {
    ///     fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
    ///         ctx.write(b"abc");
    ///         ctx.close();
    ///     }
    /// }
    ///
    /// let mut t = StringTransport::new(Send3);
    /// t.stall_peer(true);
    /// t.feed(b"go");
    /// assert_eq!(t.queued(), 3);
    /// assert!(!t.is_closed(), "close waits until every byte is sent");
    /// assert_eq!(t.drain(), b"abc");
    /// assert!(t.is_closed());
    /// ```
    pub fn drain(&mut self) -> Vec<u8> {
        self.drain_on(self.conn, usize::MAX)
    }

    /// [`StringTransport::drain`] of at most `max` bytes (a peer reading slowly).
    pub fn drain_up_to(&mut self, max: usize) -> Vec<u8> {
        self.drain_on(self.conn, max)
    }

    /// Bytes queued below the engine and not yet read by the (stalled) peer.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queued_of(self.conn)
    }

    /// Whether the connection is open: not closed, closing, or lost (as
    /// [`Context::is_open`]).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.is_open_of(self.conn)
    }

    /// Whether the connection is gone: `connection_lost` ran (or the protocol panicked and
    /// was dropped). A close waiting for a stalled peer is not closed yet.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.is_closed_of(self.conn)
    }

    /// Why the connection ended, once it has ([`LostReason::Panicked`] when its own protocol
    /// panicked and got no `connection_lost`).
    #[must_use]
    pub fn lost_reason(&self) -> Option<&LostReason> {
        self.lost_reason_of(self.conn)
    }

    /// Whether the socket was closed with a reset ([`Context::abort`], the write-buffer
    /// limit, a panic, a connect timeout) rather than a clean close.
    #[must_use]
    pub fn is_aborted(&self) -> bool {
        self.is_aborted_of(self.conn)
    }

    /// Whether the write side was half-closed: [`Context::shutdown_write`] was called and
    /// every byte written before it reached the peer.
    #[must_use]
    pub fn is_write_shut_down(&self) -> bool {
        self.is_write_shut_down_of(self.conn)
    }

    /// Whether the protocol paused reading ([`Context::pause_reading`]).
    #[must_use]
    pub fn is_reading_paused(&self) -> bool {
        self.is_reading_paused_of(self.conn)
    }

    /// Runs `f` with the connection's [`Context`], as the reactor would from outside a
    /// callback (a cross-core message, a test poking the connection); the callbacks it
    /// causes run, and the turn is flushed, before this returns.
    ///
    /// # Examples
    /// ```
    /// use ringwork::testing::StringTransport;
    /// # struct Quiet;
    /// # impl ringwork::Protocol for Quiet {
    /// #     fn data_received(&mut self, _: &mut ringwork::Context<'_>, _: &[u8]) {}
    /// # }
    ///
    /// let mut t = StringTransport::new(Quiet);
    /// let peer = t.with_context(|ctx| {
    ///     ctx.write(b"pushed");
    ///     ctx.peer_addr().unwrap()
    /// });
    /// assert_eq!(peer.as_socket(), Some(ringwork::testing::DEFAULT_PEER_ADDR));
    /// assert_eq!(t.written(), b"pushed");
    /// ```
    pub fn with_context<R>(&mut self, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
        self.with_context_on(self.conn, f)
    }

    /// Moves the manual clock forward by `by`, firing every timer that falls due on the way
    /// in deadline order, each at its own deadline ([`Context::now`] inside the callback is
    /// the timer's deadline), each followed by a turn. A timer repeating every second fires
    /// ten times in `advance(10 s)`, as on an idle reactor.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// use ringwork::testing::StringTransport;
    /// use ringwork::{Context, Protocol, TimerId};
    ///
    /// struct Ticker;
    ///
    /// impl Protocol for Ticker {
    ///     fn connection_made(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.call_every(Duration::from_secs(1));
    ///     }
    ///     fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
    ///     fn timer_fired(&mut self, ctx: &mut Context<'_>, _timer: TimerId) {
    ///         ctx.write(b".");
    ///     }
    /// }
    ///
    /// let mut t = StringTransport::new(Ticker);
    /// t.advance(Duration::from_millis(2500));
    /// assert_eq!(t.written(), b"..");
    /// assert_eq!(t.elapsed(), Duration::from_millis(2500));
    /// ```
    pub fn advance(&mut self, by: Duration) {
        let target = self.state.now + by;
        while let Some(deadline) = self.state.timers.next_deadline()
            && deadline <= target
        {
            let now = self.state.now.max(deadline);
            self.state.set_now(now);
            self.clock.advance_to(now);
            self.fire_timers();
            self.settle();
        }
        self.state.set_now(target);
        self.clock.advance_to(target);
        self.settle();
    }

    /// The manual clock's time (what [`Context::now`] answers).
    #[must_use]
    pub fn now(&self) -> Instant {
        self.state.now
    }

    /// How far the clock moved since the transport was created.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.state.now - self.start
    }

    /// When the next timer (protocol timer or connect timeout) falls due, if any.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.state.timers.next_deadline()
    }

    /// The engine's counters: connections in the table, bytes in and out (handed to the
    /// in-memory kernel), panics, accepted connections and connects. `turns` counts this
    /// transport's turns; the driver figures are zero.
    #[must_use]
    pub fn stats(&self) -> CoreStats {
        CoreStats {
            connections: self.state.conns.live() as u64,
            turns: self.turns,
            ..self.state.stats
        }
    }

    // ---- per-connection operations, shared with `Remote` ----

    fn feed_on(&mut self, id: ConnId, data: &[u8]) {
        let Some(socket) = self.io.socket(id.0) else {
            panic!("{id} is not a connection of this transport");
        };
        assert!(
            !socket.connecting,
            "{id}: feed before its connect completed"
        );
        assert!(!socket.eof_fed, "{id}: feed after feed_eof");
        if socket.ended.is_some() || data.is_empty() {
            return;
        }
        dispatch::received(&mut self.state, &mut self.io, id, data);
        self.settle();
    }

    fn feed_eof_on(&mut self, id: ConnId) {
        let Some(socket) = self.io.socket_mut(id.0) else {
            panic!("{id} is not a connection of this transport");
        };
        assert!(
            !socket.connecting,
            "{id}: feed_eof before its connect completed"
        );
        if socket.ended.is_some() || socket.eof_fed {
            return;
        }
        // As the driver: receiving ends with the end of stream.
        socket.eof_fed = true;
        socket.receiving = false;
        dispatch::eof(&mut self.state, &mut self.io, id);
        self.settle();
    }

    fn fail_on(&mut self, id: ConnId, kind: io::ErrorKind) {
        if self.io.socket(id.0).is_none_or(|s| s.ended.is_some()) {
            return;
        }
        let error = OpError {
            op: OpKind::Recv,
            socket: Some(id.0),
            source: io::Error::from(kind),
        };
        dispatch::failed(&mut self.state, &mut self.io, id, error);
        self.settle();
    }

    fn written_of(&self, id: ConnId) -> &[u8] {
        self.io.socket(id.0).map_or(&[], |s| &s.received)
    }

    fn take_written_of(&mut self, id: ConnId) -> Vec<u8> {
        self.io
            .socket_mut(id.0)
            .map(|s| std::mem::take(&mut s.received))
            .unwrap_or_default()
    }

    fn stall_on(&mut self, id: ConnId, stalled: bool) {
        if let Some(socket) = self.io.socket_mut(id.0) {
            socket.stalled = stalled;
        }
        // A peer that reads again takes what is queued now.
        self.settle();
    }

    fn drain_on(&mut self, id: ConnId, max: usize) -> Vec<u8> {
        let (taken, queued) = self.io.drain(id.0, max);
        if !taken.is_empty() {
            self.state.sent(&mut self.io, id, queued);
        }
        self.settle();
        taken
    }

    fn queued_of(&self, id: ConnId) -> usize {
        self.io.socket(id.0).map_or(0, memory::MemSocket::queued)
    }

    fn is_open_of(&self, id: ConnId) -> bool {
        // As `Context::is_open`.
        self.state
            .conns
            .get(id)
            .is_some_and(crate::state::Conn::is_open)
    }

    fn is_closed_of(&self, id: ConnId) -> bool {
        self.state.conns.get(id).is_none()
    }

    fn lost_reason_of(&self, id: ConnId) -> Option<&LostReason> {
        self.lost.get(&id)
    }

    fn is_aborted_of(&self, id: ConnId) -> bool {
        self.io
            .socket(id.0)
            .is_some_and(|s| s.ended == Some(Ended::Aborted))
    }

    fn is_write_shut_down_of(&self, id: ConnId) -> bool {
        self.io
            .socket(id.0)
            .is_some_and(|s| s.shutdown == Shutdown::Done)
    }

    fn is_reading_paused_of(&self, id: ConnId) -> bool {
        self.state
            .conns
            .get(id)
            .is_some_and(|c| c.reading.is_paused())
    }

    fn with_context_on<R>(&mut self, id: ConnId, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
        let result = f(&mut Context::new(&mut self.state, &mut self.io, id));
        self.settle();
        result
    }

    // ---- the turn ----

    /// Fires the timers due now, each one's callbacks before the next.
    ///
    /// # Panics
    /// If a reactor call ([`LocalHandle::call_later`](crate::LocalHandle::call_later)) is
    /// due: it needs a [`Reactor`](crate::Reactor).
    fn fire_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.state.timers.expire(self.state.now, &mut expired);
        for (_, target) in expired.drain(..) {
            assert!(
                !matches!(target, Target::Call(_)),
                "StringTransport cannot run LocalHandle::call_later calls (they need a \
                 Reactor: use one with a ManualClock)"
            );
            dispatch::fire(&mut self.state, &mut self.io, target);
            dispatch::run_notices(&mut self.state, &mut self.io);
        }
        self.expired = expired;
    }

    /// Runs callbacks, flushes and reports sent bytes until nothing is left to do.
    ///
    /// # Panics
    /// If a [`LocalHandle::run`](crate::LocalHandle::run) job was queued, or the protocol never goes idle.
    fn settle(&mut self) {
        self.turns += 1;
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(
                rounds <= MAX_ROUNDS,
                "StringTransport: still busy after {MAX_ROUNDS} rounds of callbacks and \
                 sends; the protocol writes again whenever its bytes are sent (stall the \
                 peer to bound it)"
            );
            dispatch::run_notices(&mut self.state, &mut self.io);
            self.run_local();
            dispatch::run_notices(&mut self.state, &mut self.io);
            self.state.flush(&mut self.io);
            let sent = self.io.transmit();
            for socket in &sent {
                // The kernel took everything: nothing is left queued below the engine.
                self.state.sent(&mut self.io, ConnId(*socket), 0);
                dispatch::run_notices(&mut self.state, &mut self.io);
            }
            if sent.is_empty()
                && self.state.notices.is_empty()
                && !self.executor.has_ready()
                && self.state.local.is_idle()
            {
                break;
            }
        }
        for (id, reason) in self.lost_log.borrow_mut().drain(..) {
            self.lost.insert(id, reason);
        }
    }

    /// Spawns the futures queued through [`LocalHandle`](crate::LocalHandle) and polls ready tasks.
    fn run_local(&mut self) {
        let (spawns, wakes) = {
            let mut queue = self.state.local.local.queue.borrow_mut();
            assert!(
                queue.jobs.is_empty(),
                "StringTransport cannot run LocalHandle::run jobs (they need a Reactor)"
            );
            (
                std::mem::take(&mut queue.spawns),
                std::mem::take(&mut queue.wakes),
            )
        };
        dispatch::queue_wakes(&mut self.state, wakes);
        dispatch::run_notices(&mut self.state, &mut self.io);
        for task in spawns {
            drop(self.executor.spawn_local(task));
        }
        self.executor.run_ready(1024);
    }
}

/// The test's end of one connection of a [`StringTransport`] (from
/// [`StringTransport::remote`]): the transport's per-connection operations, for this
/// connection. Each one runs a turn, as on the transport.
pub struct Remote<'a> {
    transport: &'a mut StringTransport,
    id: ConnId,
}

impl Remote<'_> {
    /// The connection.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// See [`StringTransport::feed`].
    ///
    /// # Panics
    /// After [`Remote::feed_eof`], on a pending connect, or if `id` is not a connection of
    /// this transport.
    pub fn feed(&mut self, data: &[u8]) {
        self.transport.feed_on(self.id, data);
    }

    /// See [`StringTransport::feed_eof`].
    ///
    /// # Panics
    /// On a pending connect, or if `id` is not a connection of this transport.
    pub fn feed_eof(&mut self) {
        self.transport.feed_eof_on(self.id);
    }

    /// See [`StringTransport::reset_by_peer`].
    pub fn reset_by_peer(&mut self) {
        self.transport
            .fail_on(self.id, io::ErrorKind::ConnectionReset);
    }

    /// See [`StringTransport::fail`].
    pub fn fail(&mut self, kind: io::ErrorKind) {
        self.transport.fail_on(self.id, kind);
    }

    /// See [`StringTransport::written`].
    #[must_use]
    pub fn written(&self) -> &[u8] {
        self.transport.written_of(self.id)
    }

    /// See [`StringTransport::take_written`].
    pub fn take_written(&mut self) -> Vec<u8> {
        self.transport.take_written_of(self.id)
    }

    /// See [`StringTransport::stall_peer`].
    pub fn stall_peer(&mut self, stalled: bool) {
        self.transport.stall_on(self.id, stalled);
    }

    /// See [`StringTransport::drain`].
    pub fn drain(&mut self) -> Vec<u8> {
        self.transport.drain_on(self.id, usize::MAX)
    }

    /// See [`StringTransport::drain_up_to`].
    pub fn drain_up_to(&mut self, max: usize) -> Vec<u8> {
        self.transport.drain_on(self.id, max)
    }

    /// See [`StringTransport::queued`].
    #[must_use]
    pub fn queued(&self) -> usize {
        self.transport.queued_of(self.id)
    }

    /// See [`StringTransport::is_open`].
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.transport.is_open_of(self.id)
    }

    /// See [`StringTransport::is_closed`].
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.transport.is_closed_of(self.id)
    }

    /// See [`StringTransport::lost_reason`].
    #[must_use]
    pub fn lost_reason(&self) -> Option<&LostReason> {
        self.transport.lost_reason_of(self.id)
    }

    /// See [`StringTransport::is_aborted`].
    #[must_use]
    pub fn is_aborted(&self) -> bool {
        self.transport.is_aborted_of(self.id)
    }

    /// See [`StringTransport::is_write_shut_down`].
    #[must_use]
    pub fn is_write_shut_down(&self) -> bool {
        self.transport.is_write_shut_down_of(self.id)
    }

    /// See [`StringTransport::is_reading_paused`].
    #[must_use]
    pub fn is_reading_paused(&self) -> bool {
        self.transport.is_reading_paused_of(self.id)
    }

    /// See [`StringTransport::complete_connect`].
    ///
    /// # Panics
    /// If this connection has no pending connect.
    pub fn complete_connect(&mut self, result: Result<(), io::ErrorKind>) {
        self.transport.complete_connect(self.id, result);
    }

    /// See [`StringTransport::with_context`].
    pub fn with_context<R>(&mut self, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
        self.transport.with_context_on(self.id, f)
    }
}

/// A copy of `reason` (it holds an `io::Error`, which is not `Clone`): same variant, same
/// error kind, OS code and message.
fn duplicate(reason: &LostReason) -> LostReason {
    let op_error = |e: &OpError| OpError {
        op: e.op,
        socket: e.socket,
        source: e.source.raw_os_error().map_or_else(
            || io::Error::new(e.source.kind(), e.source.to_string()),
            io::Error::from_raw_os_error,
        ),
    };
    match reason {
        LostReason::Done => LostReason::Done,
        LostReason::Aborted => LostReason::Aborted,
        LostReason::Reset => LostReason::Reset,
        LostReason::ConnectTimeout => LostReason::ConnectTimeout,
        LostReason::ConnectFailed(e) => LostReason::ConnectFailed(op_error(e)),
        LostReason::Error(e) => LostReason::Error(op_error(e)),
        LostReason::WriteBufferFull { limit } => LostReason::WriteBufferFull { limit: *limit },
        LostReason::WriteStalled { after } => LostReason::WriteStalled { after: *after },
        LostReason::Shutdown => LostReason::Shutdown,
        LostReason::Panicked => LostReason::Panicked,
        LostReason::Tls(e) => LostReason::Tls(e.clone()),
        LostReason::Preamble(r) => LostReason::Preamble(r.clone()),
        LostReason::HostConnect(e) => LostReason::HostConnect(e.clone()),
    }
}

#[cfg(test)]
mod tests;
