//! Helpers shared by the engine integration tests: reactors per backend, a bounded wait,
//! a protocol wrapper that records every callback, a comparable copy of [`LostReason`],
//! runtimes run on a background thread, and deterministic byte patterns.
//!
//! Every wait is bounded by [`LIMIT`] and fails saying what was still missing. Nothing here
//! sleeps: waits turn the reactor (single-threaded tests) or block on a channel with a
//! timeout (runtime tests).
#![allow(dead_code)] // Each test binary uses a different subset.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use ringwork::platform::{BackendChoice, testing};
use ringwork::{
    Clock, ConnId, Context, DriverConfig, EngineError, LostReason, ManualClock, Protocol, Reactor,
    ReactorConfig, Runtime, ShutdownHandle, TimerId,
};

/// Overall deadline of one wait: past it the test fails, saying what was missing.
pub const LIMIT: Duration = Duration::from_secs(20);

/// `127.0.0.1:0`: listen on a free loopback port.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Whether `backend` can run here (says `skipped: uring (...)` on stderr when it cannot,
/// and fails when `RINGWORK_REQUIRE_URING` is set).
pub fn available(backend: BackendChoice) -> bool {
    testing::driver(backend, DriverConfig::default()).is_some()
}

/// A single-threaded reactor on `backend` with default settings, or `None` when the backend
/// cannot run here (skipped loudly).
pub fn reactor(backend: BackendChoice) -> Option<Reactor> {
    reactor_with(backend, ReactorConfig::default())
}

/// [`reactor`] with `config`.
pub fn reactor_with(backend: BackendChoice, config: ReactorConfig) -> Option<Reactor> {
    if !available(backend) {
        return None;
    }
    let driver = DriverConfig {
        backend,
        ..DriverConfig::default()
    };
    Some(Reactor::new(config, driver).expect("create a reactor"))
}

/// A single-threaded reactor on `backend` whose time is a [`ManualClock`] the test moves,
/// or `None` when the backend cannot run here.
pub fn manual_reactor(backend: BackendChoice) -> Option<(Reactor, ManualClock)> {
    manual_reactor_with(backend, ReactorConfig::default())
}

/// [`manual_reactor`] with `config` (its clock is replaced).
pub fn manual_reactor_with(
    backend: BackendChoice,
    config: ReactorConfig,
) -> Option<(Reactor, ManualClock)> {
    let clock = ManualClock::new();
    let config = ReactorConfig {
        clock: Clock::Manual(clock.clone()),
        ..config
    };
    reactor_with(backend, config).map(|reactor| (reactor, clock))
}

/// Runs one turn that does not wait: what a moved [`ManualClock`] made due fires in it.
pub fn turn_now(reactor: &mut Reactor) {
    reactor.turn(Some(Duration::ZERO)).expect("reactor turn");
}

/// Turns `reactor` until `done` holds; after [`LIMIT`] fails with `missing()`.
#[track_caller]
pub fn wait(
    reactor: &mut Reactor,
    done: impl FnMut(&mut Reactor) -> bool,
    missing: impl FnOnce() -> String,
) {
    let backend = reactor.backend();
    let finished = reactor.run_until(LIMIT, done).expect("reactor turn");
    assert!(
        finished,
        "{backend} backend: still waiting after {LIMIT:?}: {}",
        missing()
    );
}

/// [`wait`] with its own bound, for a test whose peer is slow on purpose (a paced reader
/// of many megabytes takes several times longer on a loaded machine).
pub fn wait_longer(
    reactor: &mut Reactor,
    limit: Duration,
    done: impl FnMut(&mut Reactor) -> bool,
    missing: impl FnOnce() -> String,
) {
    let backend = reactor.backend();
    let finished = reactor.run_until(limit, done).expect("reactor turn");
    assert!(
        finished,
        "{backend} backend: still waiting after {limit:?}: {}",
        missing()
    );
}

/// A comparable, cloneable, `Send` copy of a [`LostReason`] (which is none of these).
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Lost {
    Done,
    Aborted,
    Reset,
    ConnectTimeout,
    ConnectFailed(io::ErrorKind),
    Error(io::ErrorKind),
    WriteBufferFull {
        limit: usize,
    },
    Shutdown,
    Panicked,
    /// A variant added after these tests were written.
    Other(String),
}

impl From<&LostReason> for Lost {
    fn from(reason: &LostReason) -> Self {
        match reason {
            LostReason::Done => Lost::Done,
            LostReason::Aborted => Lost::Aborted,
            LostReason::Reset => Lost::Reset,
            LostReason::ConnectTimeout => Lost::ConnectTimeout,
            LostReason::ConnectFailed(e) => Lost::ConnectFailed(e.kind()),
            LostReason::Error(e) => Lost::Error(e.kind()),
            LostReason::WriteBufferFull { limit } => Lost::WriteBufferFull { limit: *limit },
            LostReason::Shutdown => Lost::Shutdown,
            LostReason::Panicked => Lost::Panicked,
            other => Lost::Other(other.to_string()),
        }
    }
}

/// One callback, as [`Recorded`] saw it.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Event {
    Made,
    /// `data_received` with this many bytes (the bytes go to [`Record::bytes`]).
    Data(usize),
    Eof,
    PauseWriting,
    WriteDrained,
    Timer(TimerId),
    Lost(Lost),
}

/// Everything one connection's protocol was told.
#[derive(Debug, Default)]
pub struct Record {
    /// The connection, from the first callback on.
    pub id: Option<ConnId>,
    pub events: Vec<Event>,
    /// Every byte received, in order.
    pub bytes: Vec<u8>,
    /// `ctx.now()` at `connection_lost`.
    pub lost_at: Option<Instant>,
}

impl Record {
    /// How many events match `f`.
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }

    /// How many times `connection_made` ran.
    pub fn made(&self) -> usize {
        self.count(|e| *e == Event::Made)
    }

    /// How many times `eof_received` ran.
    pub fn eofs(&self) -> usize {
        self.count(|e| *e == Event::Eof)
    }

    /// The reasons of every `connection_lost` (exactly one is expected).
    pub fn losses(&self) -> Vec<Lost> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Lost(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether `connection_lost` ran.
    pub fn is_lost(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Lost(_)))
    }

    /// The single `connection_lost` reason; fails if there were several.
    #[track_caller]
    pub fn lost(&self) -> Option<Lost> {
        let losses = self.losses();
        assert!(
            losses.len() <= 1,
            "connection_lost ran {} times: {}",
            losses.len(),
            self.summary()
        );
        losses.into_iter().next()
    }

    /// A compact description of the events, for failure messages.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mut data = (0, 0);
        let flush = |out: &mut String, data: &mut (usize, usize)| {
            if data.0 > 0 {
                let _ = write!(out, "data x{} ({} bytes), ", data.0, data.1);
                *data = (0, 0);
            }
        };
        for event in &self.events {
            if let Event::Data(n) = event {
                data.0 += 1;
                data.1 += n;
                continue;
            }
            flush(&mut out, &mut data);
            let _ = write!(out, "{event:?}, ");
        }
        flush(&mut out, &mut data);
        format!(
            "[{}] ({} bytes in total)",
            out.trim_end_matches(", "),
            self.bytes.len()
        )
    }
}

/// A shared [`Record`]: the test keeps one handle, the protocol another.
pub type Log = Rc<RefCell<Record>>;

/// Logs of every connection a [`recording_factory`] built, in accept order.
pub type Logs = Rc<RefCell<Vec<Log>>>;

/// Wraps a protocol and records each callback before passing it on.
pub struct Recorded<P> {
    pub inner: P,
    log: Log,
}

/// `inner`, recorded; returns the wrapper and its log.
pub fn recorded<P: Protocol>(inner: P) -> (Recorded<P>, Log) {
    let log = Log::default();
    (
        Recorded {
            inner,
            log: Rc::clone(&log),
        },
        log,
    )
}

/// A factory building `make()` for each connection, recorded; the logs land in the returned
/// list in accept order.
pub fn recording_factory<P: Protocol>(
    mut make: impl FnMut() -> P + 'static,
) -> (impl FnMut() -> Recorded<P> + 'static, Logs) {
    let logs = Logs::default();
    let list = Rc::clone(&logs);
    let factory = move || {
        let (protocol, log) = recorded(make());
        list.borrow_mut().push(log);
        protocol
    };
    (factory, logs)
}

/// The log of the `i`th connection a [`recording_factory`] built.
#[track_caller]
pub fn nth(logs: &Logs, i: usize) -> Log {
    let logs = logs.borrow();
    let log = logs
        .get(i)
        .unwrap_or_else(|| panic!("connection {i} was never built ({} were)", logs.len()));
    Rc::clone(log)
}

/// Whether the `i`th connection of `logs` exists and got `connection_lost`.
pub fn nth_lost(logs: &Logs, i: usize) -> bool {
    logs.borrow().get(i).is_some_and(|l| l.borrow().is_lost())
}

/// A summary of every connection in `logs`, for failure messages.
pub fn summaries(logs: &Logs) -> String {
    let logs = logs.borrow();
    if logs.is_empty() {
        return "none built".into();
    }
    logs.iter()
        .enumerate()
        .map(|(i, l)| format!("#{i}: {}", l.borrow().summary()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl<P> Recorded<P> {
    fn push(&self, ctx: &Context<'_>, event: Event) {
        let mut log = self.log.borrow_mut();
        log.id.get_or_insert(ctx.id());
        log.events.push(event);
    }
}

impl<P: Protocol> Protocol for Recorded<P> {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.push(ctx, Event::Made);
        self.inner.connection_made(ctx);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.push(ctx, Event::Data(data.len()));
        self.log.borrow_mut().bytes.extend_from_slice(data);
        self.inner.data_received(ctx, data);
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.push(ctx, Event::Eof);
        self.inner.eof_received(ctx);
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        self.push(ctx, Event::PauseWriting);
        self.inner.pause_writing(ctx);
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        self.push(ctx, Event::WriteDrained);
        self.inner.write_drained(ctx);
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.push(ctx, Event::Timer(timer));
        self.inner.timer_fired(ctx, timer);
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        self.push(ctx, Event::Lost(Lost::from(&reason)));
        self.log.borrow_mut().lost_at = Some(ctx.now());
        self.inner.connection_lost(ctx, reason);
    }
}

/// Writes back what it receives; closes after the peer's end of stream (the default).
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(data);
    }
}

/// Takes what it receives and does nothing (closes after the peer's end of stream).
pub struct Sink;

impl Protocol for Sink {
    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// Writes `message` once connected, then reads (closes after the peer's end of stream).
pub struct Hello(pub Vec<u8>);

impl Protocol for Hello {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(&self.0);
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// `len` bytes of a deterministic pattern without short periods (splitmix64 of the word
/// index), so lost, duplicated or reordered chunks are detected.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    for (i, word) in bytes.chunks_mut(8).enumerate() {
        let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        word.copy_from_slice(&z.to_le_bytes()[..word.len()]);
    }
    bytes
}

/// The first index where `got` differs from `want` (for failure messages about streams).
pub fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    got.iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .or((got.len() != want.len()).then(|| got.len().min(want.len())))
}

/// Keeps panics whose message contains `marker` (deliberate ones) off stderr; every other
/// panic is reported by the default hook as usual.
pub fn quiet_panics(marker: &'static str) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !message.contains(marker) {
                default(info);
            }
        }));
    });
}

/// Receives from `rx` within [`LIMIT`], failing with what was expected.
#[track_caller]
pub fn recv<T>(rx: &Receiver<T>, what: &str) -> T {
    match rx.recv_timeout(LIMIT) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("still waiting after {LIMIT:?} for {what}"),
        Err(RecvTimeoutError::Disconnected) => {
            panic!("waiting for {what}: every sender is gone (did a core stop?)")
        }
    }
}

/// A [`Runtime`] running on a background thread. Dropping it (a failed test) shuts the
/// runtime down at once, so the cores do not outlive the test.
pub struct Running {
    pub handle: ShutdownHandle,
    done: Receiver<Result<(), EngineError>>,
}

impl Running {
    /// Starts `runtime.run(init)` on a new thread.
    pub fn start<F>(runtime: Runtime, init: F) -> Running
    where
        F: Fn(&mut Reactor) -> Result<(), EngineError> + Send + Sync + 'static,
    {
        let handle = runtime.shutdown_handle();
        let (tx, done) = crossbeam_channel::bounded(1);
        thread::Builder::new()
            .name("runtime".into())
            .spawn(move || {
                let _ = tx.send(runtime.run(init));
            })
            .expect("start the runtime thread");
        Running { handle, done }
    }

    /// Waits (at most [`LIMIT`]) for [`Runtime::run`] to return, and returns its result.
    #[track_caller]
    pub fn join(&self) -> Result<(), EngineError> {
        recv(&self.done, "Runtime::run to return")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown(Duration::ZERO);
    }
}

/// A loopback listener that never accepts and whose accept queue is full, so the kernel
/// drops further SYNs and a connect to it hangs (no traffic leaves the host). Keep the value
/// alive while the hanging connect is wanted.
pub struct FullBacklog {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _fillers: Vec<socket2::Socket>,
}

impl FullBacklog {
    /// A listener with backlog 0 (Linux then queues one connection) plus connections that
    /// fill its queue: one completed, and a few more whose SYNs are dropped.
    pub fn new() -> FullBacklog {
        Self::at(any_port()).expect("a full backlog on a free loopback port")
    }

    /// A full backlog at `addr` (IPv4 or IPv6, port 0 for any); fails if `addr` is taken.
    pub fn at(addr: SocketAddr) -> io::Result<FullBacklog> {
        use socket2::{Domain, Socket, Type};
        let domain = Domain::for_address(addr);
        let listener = Socket::new(domain, Type::STREAM, None)?;
        if addr.is_ipv6() {
            listener.set_only_v6(true)?;
        }
        listener.bind(&addr.into())?;
        listener.listen(0)?;
        let addr = listener
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP address"))?;
        let mut fillers = Vec::new();
        // Completes (the queue has room for one): the queue is now full.
        let first = Socket::new(domain, Type::STREAM, None)?;
        first.connect(&addr.into())?;
        fillers.push(first);
        // Their SYNs are dropped; they only make sure the queue stays full.
        for _ in 0..2 {
            let socket = Socket::new(domain, Type::STREAM, None)?;
            socket.set_nonblocking(true)?;
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(115) => {} // EINPROGRESS
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            fillers.push(socket);
        }
        Ok(FullBacklog {
            addr,
            _listener: listener,
            _fillers: fillers,
        })
    }
}

impl Default for FullBacklog {
    fn default() -> Self {
        Self::new()
    }
}
