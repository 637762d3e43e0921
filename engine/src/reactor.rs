//! [`Reactor`]: one core's event loop — a driver, a timer wheel, a table of connections.
//!
//! Owns: listeners and their factories, UDP sockets and their protocols, dispatch of driver
//! completions to protocol callbacks (one at a time, never nested), panic isolation, the
//! end-of-turn flush, connection limits (accepting and its limits: `reactor/accept.rs`) and
//! graceful shutdown.
//! Contract: one turn = flush what callbacks wrote, one driver turn (submit + wait), dispatch
//! completions, fire due timers, run cross-core messages. Nothing is shared with other cores
//! except the message inbox (see `runtime.rs`).

mod accept;

use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringwork_platform::{
    Completion, Driver, DriverConfig, ListenOptions, OpError, ReusePort, SockAddr, SocketId,
};

use crate::config::ReactorConfig;
use crate::context::Context;
use crate::datagram::{DatagramContext, DatagramProtocol, UdpId};
use crate::dispatch;
use crate::error::EngineError;
use crate::executor::{Executor, JoinHandle};
use crate::local::LocalHandle;
use crate::preamble::ListenerOptions;
use crate::process::{ProcessContext, ProcessId, ProcessProtocol};
use crate::protocol::{ConnId, Factory, LostReason, Protocol};
use crate::runtime::{CoreMessage, Cores};
use crate::state::State;
use crate::stats::CoreStats;
use crate::threads::{ThreadPool, ThreadPoolError, ThreadResult};
use crate::timers::Target;
use ringwork_platform::ProcessCommand;

/// How long accepting pauses after a resource error (EMFILE, ENFILE, ENOBUFS, ENOMEM).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A listening socket of this core.
struct Listener {
    socket: SocketId,
    factory: Box<dyn Factory>,
    /// This core's copy of the listener's TLS configuration, and its preamble.
    options: crate::preamble::ListenerOptions,
}

/// A UDP socket of this core.
struct Udp {
    socket: SocketId,
    protocol: Option<Box<dyn DatagramProtocol>>,
}

/// Run once by [`Reactor::run`] when it returns (see [`Reactor::on_stop`]).
type StopHook = Box<dyn FnOnce(&mut Reactor)>;

/// Graceful shutdown in progress.
#[derive(Clone, Copy, Debug)]
struct Stopping {
    deadline: Instant,
}

/// Most connections a retiring listener's queue gives up at its close (see
/// `Reactor::close_retired`); the rest are reset, as at any close.
const RETIRED_BACKLOG_LIMIT: usize = 4096;

/// One core's event loop. Create one per thread (it is `!Send`) with [`Reactor::new`], or let
/// a [`Runtime`](crate::Runtime) create one per core.
pub struct Reactor {
    driver: Driver,
    state: State,
    listeners: Vec<Listener>,
    /// Listeners a hand-over ([`Reactor::hand_over`]) stopped, kept until their accept has
    /// left the kernel: a connection the kernel accepted for them meanwhile, or still
    /// queued, is served, not reset (the queue is shared with another process).
    retiring: Vec<Listener>,
    udp: Vec<Udp>,
    accepting: bool,
    completions: Vec<Completion>,
    expired: Vec<(crate::timer::TimerKey, Target)>,
    /// The earliest timer when this turn's wait was chosen, and [`Timers::arms`] then
    /// (see [`Reactor::fire_timers`]).
    ///
    /// [`Timers::arms`]: crate::timers::Timers::arms
    timers_seen: (Option<Instant>, u64),
    inbox: Option<crossbeam_channel::Receiver<CoreMessage>>,
    executor: Executor,
    /// Connections accepted past the per-core limit, started when room frees up.
    waiting: std::collections::VecDeque<(SocketId, SocketId)>,
    /// Accepting is paused until then after a resource error (EMFILE, ...).
    accept_backoff: Option<Instant>,
    stopping: Option<Stopping>,
    /// The grace period ended and the remaining child processes got SIGKILL.
    killed_children: bool,
    stopped: bool,
    /// Run by [`Reactor::run`] when it returns.
    stop_hooks: Vec<StopHook>,
    /// File operations in the driver's ring, by id (see `fs/ring.rs`).
    ring_ops: crate::fs::ring::RingOps,
    /// The manual clock this reactor's driver is registered with, and the registration.
    clock_registration: Option<(crate::ManualClock, u64)>,
}

impl Reactor {
    /// A reactor on the calling thread (single-threaded mode: tests, small tools).
    ///
    /// # Errors
    /// Invalid configuration, or the driver could not be created.
    pub fn new(config: ReactorConfig, driver: DriverConfig) -> Result<Self, EngineError> {
        config
            .validate()
            .map_err(|what| EngineError::Config { what })?;
        let driver = Driver::with_config(driver)?;
        let executor = Executor::new(Some(driver.waker()));
        let clock_registration = match &config.clock {
            crate::Clock::Manual(clock) => Some((clock.clone(), clock.register(driver.waker()))),
            crate::Clock::System => None,
        };
        let state = State::new(config);
        state.local.set_file_ring(driver.capabilities().file_ops);
        Ok(Self {
            driver,
            state,
            clock_registration,
            listeners: Vec::new(),
            retiring: Vec::new(),
            udp: Vec::new(),
            accepting: true,
            completions: Vec::new(),
            expired: Vec::new(),
            timers_seen: (None, u64::MAX),
            inbox: None,
            executor,
            waiting: std::collections::VecDeque::new(),
            accept_backoff: None,
            stopping: None,
            killed_children: false,
            stopped: false,
            stop_hooks: Vec::new(),
            ring_ops: crate::fs::ring::RingOps::default(),
        })
    }

    /// Submits a file operation of `ringwork::fs` to the driver's ring (`slot`: its future).
    pub(crate) fn submit_file(
        &mut self,
        request: ringwork_platform::FileRequest,
        slot: Option<std::rc::Rc<crate::fs::ring::RingSlot>>,
    ) {
        self.ring_ops.submit(&mut self.driver, request, slot);
    }

    /// The future of file operation `id` was dropped.
    pub(crate) fn forget_file(&mut self, id: ringwork_platform::FileOpId) {
        self.ring_ops.forget(&mut self.driver, id);
    }

    /// File operations of `ringwork::fs` in the driver's ring whose future waits.
    #[doc(hidden)]
    #[must_use]
    pub fn file_ops_waiting(&self) -> usize {
        self.ring_ops.len()
    }

    /// File operations in the driver's ring, waited for or not (the kernel may still use
    /// their memory).
    #[doc(hidden)]
    #[must_use]
    pub fn file_ops_in_flight(&self) -> usize {
        self.driver.file_ops_in_flight()
    }

    pub(crate) fn set_total_limit(
        &mut self,
        total: Option<std::sync::Arc<crate::runtime::TotalLimit>>,
    ) {
        self.state.total = total;
    }

    pub(crate) fn set_cores(
        &mut self,
        cores: Cores,
        inbox: crossbeam_channel::Receiver<CoreMessage>,
    ) {
        self.state.cores = Some(cores);
        self.inbox = Some(inbox);
    }

    /// The platform driver's waker for this reactor (used by the runtime).
    pub(crate) fn waker(&self) -> ringwork_platform::Waker {
        self.driver.waker()
    }

    /// The other cores of the runtime this reactor belongs to (`None` in single-threaded
    /// mode): send them messages with [`Cores::send`] or [`Cores::broadcast`].
    #[must_use]
    pub fn cores(&self) -> Option<&Cores> {
        self.state.cores.as_ref()
    }

    /// This core's index in its runtime (0 in single-threaded mode).
    #[must_use]
    pub fn core_index(&self) -> usize {
        self.state.cores.as_ref().map_or(0, Cores::this_core)
    }

    /// The backend the driver runs on.
    #[must_use]
    pub fn backend(&self) -> ringwork_platform::BackendKind {
        self.driver.backend()
    }

    /// Counters of this core, including the driver's batching figures.
    #[must_use]
    pub fn stats(&self) -> CoreStats {
        let driver = self.driver.stats();
        CoreStats {
            connections: self.state.conns.live() as u64,
            turns: driver.turns,
            submissions: driver.submitted,
            completions: driver.completions,
            enters: driver.enters,
            buffer_starvations: driver.buffer_starvations,
            cq_overflows: driver.cq_overflows,
            ..self.state.stats
        }
    }

    /// A handle to this reactor for futures and for code that cannot borrow it.
    #[must_use]
    pub fn handle(&self) -> LocalHandle {
        self.state.local.clone()
    }

    /// The core's time: the current turn's (the clock is read once per turn; see
    /// [`LocalHandle::now`]), or the clock read now between turns. With a
    /// [`ManualClock`](crate::ManualClock), the manual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.state.local.now()
    }

    /// The reactor's configuration.
    pub(crate) fn config(&self) -> &ReactorConfig {
        &self.state.config
    }

    /// When the earliest pending timer of this core falls due (a protocol timer, a call, a
    /// sleep or an engine timeout), if any: with a [`ManualClock`](crate::ManualClock), how
    /// far to move it for the next one (Twisted's `Clock.getDelayedCalls`).
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.state.timers.next_deadline()
    }

    /// Runs `f` with the reactor once `delay` has passed: Twisted's `reactor.callLater` (see
    /// [`LocalHandle::call_later`]; the same as `reactor.handle().call_later(..)`).
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Reactor) + 'static,
    ) -> crate::CallId {
        self.state.local.call_later(delay, f)
    }

    /// Runs `f` with the reactor at `at` (see [`LocalHandle::call_at`]).
    pub fn call_at(
        &mut self,
        at: Instant,
        f: impl FnOnce(&mut Reactor) + 'static,
    ) -> crate::CallId {
        self.state.local.call_at(at, f)
    }

    /// Cancels a call (see [`LocalHandle::cancel`]); `false` if it already ran or was
    /// cancelled.
    pub fn cancel_call(&mut self, call: crate::CallId) -> bool {
        self.state.local.cancel(call)
    }

    /// Moves a pending call to `delay` from now (see [`LocalHandle::reset`]); `false` if it
    /// already ran or was cancelled.
    pub fn reset_call(&mut self, call: crate::CallId, delay: Duration) -> bool {
        self.state.local.reset(call, delay)
    }

    /// Spawns a future on this core's executor (first polled in the next turn).
    pub fn spawn_local<F>(&mut self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.executor.spawn_local(future)
    }

    /// Connections open on this core (including those being torn down).
    #[must_use]
    pub fn connections(&self) -> usize {
        self.state.conns.live()
    }

    /// Listens on a TCP address with SO_REUSEPORT (every core of a runtime listens on the
    /// same address and the kernel spreads connections). Returns the bound address (useful
    /// with port 0). The address is shared only within this process
    /// ([`ReusePort::Process`](crate::platform::ReusePort::Process)); to join another
    /// process's listeners, use [`Reactor::listen_with`] and [`ListenerOptions::reuse_port`].
    ///
    /// # Errors
    /// The OS error of bind or listen: "Address already in use" when another process (or
    /// any non-SO_REUSEPORT socket) holds the address.
    pub fn listen_tcp(
        &mut self,
        addr: SocketAddr,
        factory: impl Factory,
    ) -> Result<SocketAddr, EngineError> {
        let bound = self.listen(&addr.into(), Box::new(factory), ListenerOptions::default())?;
        bound.as_socket().ok_or(EngineError::Config {
            what: "listener has no IP address".into(),
        })
    }

    /// Listens on a TCP address (as [`Reactor::listen_tcp`]) for TLS connections: each one's
    /// protocol gets `connection_made` after its handshake (see [`crate::tls`]). This core
    /// gets its own copy of `acceptor`'s session cache and ticketer
    /// ([`TlsAcceptor::for_core`](crate::tls::TlsAcceptor::for_core)).
    ///
    /// # Errors
    /// The OS error of bind or listen.
    pub fn listen_tls(
        &mut self,
        addr: SocketAddr,
        acceptor: &crate::tls::TlsAcceptor,
        factory: impl Factory,
    ) -> Result<SocketAddr, EngineError> {
        let options = ListenerOptions::default().tls(acceptor.clone());
        self.listen_with(&addr.into(), &options, factory)?
            .as_socket()
            .ok_or(EngineError::Config {
                what: "listener has no IP address".into(),
            })
    }

    /// [`Reactor::listen_unix`] for TLS connections (see [`Reactor::listen_tls`]).
    ///
    /// # Errors
    /// The OS error of bind or listen.
    pub fn listen_unix_tls(
        &mut self,
        path: impl AsRef<Path>,
        acceptor: &crate::tls::TlsAcceptor,
        factory: impl Factory,
    ) -> Result<(), EngineError> {
        let addr = SockAddr::unix(path.as_ref()).map_err(|e| EngineError::Io {
            what: "unix address",
            source: e,
        })?;
        let options = ListenerOptions::default().tls(acceptor.clone());
        self.listen_with(&addr, &options, factory).map(drop)
    }

    /// Listens on a TCP address or Unix socket path with `options`: TLS, a preamble (a
    /// PROXY protocol header) read before the protocol starts, and who may share the
    /// address ([`ListenerOptions::reuse_port`]). This core gets its own copy of the TLS
    /// configuration. Returns the bound address.
    ///
    /// # Errors
    /// The OS error of bind or listen ("Address already in use" when another process holds
    /// the address and `options` do not ask to share it).
    pub fn listen_with(
        &mut self,
        addr: &SockAddr,
        options: &ListenerOptions,
        factory: impl Factory,
    ) -> Result<SockAddr, EngineError> {
        let mut options = options.clone();
        options.tls = options.tls.as_ref().map(crate::tls::TlsAcceptor::for_core);
        if let Some(path) = addr.as_pathname() {
            remove_stale_socket(path);
        }
        self.listen(addr, Box::new(factory), options)
    }

    /// Listens on a Unix stream socket path (removed first if it is a stale socket file).
    ///
    /// # Errors
    /// The OS error of bind or listen.
    pub fn listen_unix(
        &mut self,
        path: impl AsRef<Path>,
        factory: impl Factory,
    ) -> Result<(), EngineError> {
        let path = path.as_ref();
        remove_stale_socket(path);
        let addr = SockAddr::unix(path).map_err(|e| EngineError::Io {
            what: "unix address",
            source: e,
        })?;
        self.listen(&addr, Box::new(factory), ListenerOptions::default())
            .map(drop)
    }

    fn listen(
        &mut self,
        addr: &SockAddr,
        factory: Box<dyn Factory>,
        options: ListenerOptions,
    ) -> Result<SockAddr, EngineError> {
        let listen = ListenOptions {
            // Out of range values are refused by the driver, naming the backlog.
            backlog: i32::try_from(options.backlog).unwrap_or(i32::MAX),
            reuse_port: options.reuse_port,
            socket: options.socket.clone(),
            fastopen: options.fastopen,
            ..ListenOptions::default()
        };
        let socket = self.driver.listen(addr, &listen)?;
        self.add_listener(socket, factory, options)
    }

    /// Listens on a socket inherited from the parent process: one systemd passed
    /// (`LISTEN_FDS`, as `systemd-socket-activate` or a `.socket` unit does) or descriptor
    /// `N` (see [`Inherited`](crate::platform::inherit::Inherited)). This core accepts on its
    /// own duplicate of the descriptor; call it on every core to share the socket's accept
    /// queue between them. `options` give TLS and a preamble; the socket's backlog and
    /// socket options stay as its parent set them. Returns the socket's address.
    ///
    /// # Errors
    /// The socket is not passed, not a listening stream socket, or of another family than
    /// asked ([`InheritError`](crate::platform::inherit::InheritError), as the error's
    /// source).
    pub fn listen_inherited(
        &mut self,
        inherited: &crate::platform::inherit::Inherited,
        options: &ListenerOptions,
        factory: impl Factory,
    ) -> Result<SockAddr, EngineError> {
        let mut options = options.clone();
        options.tls = options.tls.as_ref().map(crate::tls::TlsAcceptor::for_core);
        let socket = self.driver.listen_inherited(inherited)?;
        self.add_listener(socket, Box::new(factory), options)
    }

    /// Listens on `socket`, a listening stream socket made elsewhere: received from another
    /// process or reactor ([`fdpass::recv_fds`](crate::platform::fdpass::recv_fds), Unix),
    /// or set up by the caller. `options` give TLS and a preamble; the backlog and socket
    /// options stay as the socket has them. Returns its address.
    ///
    /// # Errors
    /// `socket` is not a listening stream socket, or registering it failed.
    pub fn listen_socket(
        &mut self,
        socket: crate::platform::Socket,
        options: &ListenerOptions,
        factory: impl Factory,
    ) -> Result<SockAddr, EngineError> {
        let mut options = options.clone();
        options.tls = options.tls.as_ref().map(crate::tls::TlsAcceptor::for_core);
        let socket = self.driver.listen_socket(socket)?;
        self.add_listener(socket, Box::new(factory), options)
    }

    /// Duplicates of this core's stream listening sockets (close-on-exec descriptors of the
    /// same kernel sockets, sharing their accept queues), in the order they were added: for
    /// handing them to another process (a zero-downtime restart passes them with
    /// [`fdpass::send_fds`](crate::platform::fdpass::send_fds)). The listeners keep
    /// accepting; after a [`Reactor::shutdown`] there are none.
    ///
    /// # Errors
    /// Duplicating a descriptor failed (the descriptor limit).
    pub fn duplicate_listeners(&self) -> Result<Vec<crate::platform::Socket>, EngineError> {
        self.listeners
            .iter()
            .map(|listener| {
                self.driver
                    .with_socket(listener.socket, |socket| socket.try_clone())
                    .map_err(EngineError::from)
            })
            .collect()
    }

    /// Stops this core's listener bound to `addr` (the address [`Reactor::listen_with`] and
    /// the other `listen_*` calls returned) and closes its socket (by the end of the turn:
    /// the driver closes it with its next submission): the connections it accepted go on;
    /// connections still in its accept queue are reset, as at any close.
    /// `false` when no listener of this core has that address. For listeners that live as
    /// long as something else, not the process — an SSH remote forward (`ssh -R`) lasts as
    /// long as its SSH connection.
    pub fn close_listener(&mut self, addr: &SockAddr) -> bool {
        let driver = &self.driver;
        let Some(index) = self.listeners.iter().position(|listener| {
            driver
                .local_addr(listener.socket)
                .is_ok_and(|bound| bound == *addr)
        }) else {
            return false;
        };
        let listener = self.listeners.remove(index);
        self.driver.close(listener.socket);
        true
    }

    /// Starts accepting on listener `socket` (if the reactor accepts) with `factory`.
    fn add_listener(
        &mut self,
        socket: SocketId,
        factory: Box<dyn Factory>,
        options: ListenerOptions,
    ) -> Result<SockAddr, EngineError> {
        let bound = self.driver.local_addr(socket)?;
        if self.accepting {
            self.driver.accept(socket);
        }
        self.listeners.push(Listener {
            socket,
            factory,
            options,
        });
        Ok(bound)
    }

    /// Opens an outbound connection from outside any callback, as [`Context::connect`] does:
    /// to `addr`, run by `protocol`, with `options` (connect timeout, TLS). The connect
    /// timeout counts from now.
    ///
    /// # Errors
    /// Creating the socket failed, or rustls could not start a session (see
    /// [`Context::connect`]).
    ///
    /// # Examples
    /// ```no_run
    /// use ringwork::tls::{Roots, TlsConnector, server_name};
    /// use ringwork::{ConnectOptions, Context, DriverConfig, Protocol, Reactor, ReactorConfig};
    ///
    /// struct Client;
    ///
    /// impl Protocol for Client {
    ///     fn connection_made(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.write(b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
    ///     }
    ///     fn data_received(&mut self, _ctx: &mut Context<'_>, data: &[u8]) {
    ///         print!("{}", String::from_utf8_lossy(data));
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
    /// let connector = TlsConnector::builder().roots(Roots::System).build()?;
    /// // example.com's address (names are resolved with `ringwork::resolve`).
    /// let addr = "192.0.2.1:443".parse::<std::net::SocketAddr>()?.into();
    /// let options = ConnectOptions::new().tls(connector, server_name("example.com")?);
    /// reactor.connect(&addr, Client, options)?;
    /// reactor.run()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(
        &mut self,
        addr: &SockAddr,
        protocol: impl Protocol,
        options: crate::ConnectOptions,
    ) -> Result<ConnId, EngineError> {
        self.refresh_now();
        crate::connect::start(
            &mut self.state,
            &mut self.driver,
            addr,
            Box::new(protocol),
            options,
        )
    }

    /// Binds a UDP socket run by `protocol` (the address is this socket's alone).
    ///
    /// # Errors
    /// The OS error of bind.
    pub fn bind_udp(
        &mut self,
        addr: SocketAddr,
        protocol: impl DatagramProtocol,
    ) -> Result<UdpId, EngineError> {
        self.bind_udp_with(addr, protocol, ReusePort::Off)
    }

    /// [`Reactor::bind_udp`] sharing the address as `reuse` says: with
    /// [`ReusePort::Process`] every core of this process can bind the same address (the
    /// kernel spreads datagrams over the sockets by their source), while an address another
    /// process holds still fails with "Address already in use" (a UDP server on every
    /// core, as DNS wants).
    ///
    /// # Errors
    /// The OS error of bind.
    pub fn bind_udp_with(
        &mut self,
        addr: SocketAddr,
        protocol: impl DatagramProtocol,
        reuse: ReusePort,
    ) -> Result<UdpId, EngineError> {
        let socket = self.driver.bind_udp_with(addr, reuse)?;
        self.driver.recv(socket);
        self.udp.push(Udp {
            socket,
            protocol: Some(Box::new(protocol)),
        });
        let id = UdpId(socket);
        self.call_udp(socket, |p, ctx| p.started(ctx));
        Ok(id)
    }

    /// Binds a Unix datagram socket at `path` (a stale socket file there is removed first)
    /// run by `protocol`: datagrams arrive in its
    /// [`DatagramProtocol::unix_datagram_received`] with the sender's address; answers go
    /// with [`DatagramContext::send_to_addr`]. The returned id works with
    /// [`Reactor::close_udp`] and [`Reactor::udp_local_addr`]. The path is not removed on
    /// close.
    ///
    /// # Errors
    /// The OS error of creating or binding the socket.
    pub fn bind_unix_datagram(
        &mut self,
        path: impl AsRef<Path>,
        protocol: impl DatagramProtocol,
    ) -> Result<UdpId, EngineError> {
        let path = path.as_ref();
        remove_stale_socket(path);
        let addr = SockAddr::unix(path).map_err(|e| EngineError::Io {
            what: "unix address",
            source: e,
        })?;
        let socket = self.driver.bind_unix_datagram(Some(&addr))?;
        self.driver.recv(socket);
        self.udp.push(Udp {
            socket,
            protocol: Some(Box::new(protocol)),
        });
        self.call_udp(socket, |p, ctx| p.started(ctx));
        Ok(UdpId(socket))
    }

    /// Closes UDP socket `id`: datagrams in flight or queued for sending are dropped, its
    /// protocol is dropped, and it gets no callback any more. Returns whether it was open.
    /// (A socket per exchange, as a DNS resolver opens for a random source port, is closed
    /// this way once its answer is in.)
    pub fn close_udp(&mut self, id: UdpId) -> bool {
        let Some(index) = self.udp.iter().position(|u| u.socket == id.0) else {
            return false;
        };
        self.udp.swap_remove(index);
        self.driver.close(id.0)
    }

    /// The local address of a UDP socket.
    ///
    /// # Errors
    /// The OS error.
    pub fn udp_local_addr(&self, id: UdpId) -> Result<SockAddr, OpError> {
        self.driver.local_addr(id.0)
    }

    /// Changes a multicast setting of UDP socket `id` (see
    /// [`Multicast`](crate::platform::multicast::Multicast)): join a group after
    /// [`Reactor::bind_udp`] to receive it in the protocol's `datagram_received`.
    ///
    /// # Errors
    /// As [`Driver::multicast`](crate::platform::Driver::multicast).
    pub fn udp_multicast(
        &mut self,
        id: UdpId,
        setting: &crate::platform::multicast::Multicast,
    ) -> Result<(), OpError> {
        self.driver.multicast(id.0, setting)
    }

    /// Runs `f` with a [`Context`] for connection `id` (from outside callbacks: tests,
    /// cross-core messages). Callbacks it causes run before this returns. The context's
    /// [`Context::now`] is read anew, so timers armed here count from now.
    pub fn with_conn<R>(&mut self, id: ConnId, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
        self.refresh_now();
        let result = f(&mut Context::new(&mut self.state, &mut self.driver, id));
        self.run_notices();
        result
    }

    /// Starts a child process (Twisted's `spawnProcess`): `command` says what runs (program,
    /// arguments, environment, directory, user and group, pipes or a pseudo-terminal),
    /// `protocol` gets its output, exit and end (see [`ProcessProtocol`]). Its streams are
    /// connections of this core (counted in [`Reactor::connections`] and
    /// [`ReactorConfig::max_connections`](crate::ReactorConfig::max_connections)); a
    /// graceful shutdown waits for the child as for a connection. Its protocol's
    /// `connection_made` runs before this returns.
    ///
    /// # Errors
    /// `Unsupported` off Linux; the OS error of starting it (`NotFound` for a missing
    /// program); a child that started is killed and reaped then.
    ///
    /// # Examples
    /// ```no_run
    /// use ringwork::{
    ///     DriverConfig, ExitStatus, ProcessCommand, ProcessContext, ProcessProtocol, Reactor,
    ///     ReactorConfig,
    /// };
    ///
    /// struct Print;
    ///
    /// impl ProcessProtocol for Print {
    ///     fn out_received(&mut self, _ctx: &mut ProcessContext<'_>, data: &[u8]) {
    ///         print!("{}", String::from_utf8_lossy(data));
    ///     }
    ///
    ///     fn process_ended(&mut self, _ctx: &mut ProcessContext<'_>, status: ExitStatus) {
    ///         println!("[{status}]");
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
    /// reactor.spawn_process(&ProcessCommand::new("ls").arg("-l"), Print)?;
    /// # Ok::<(), ringwork::EngineError>(())
    /// ```
    pub fn spawn_process(
        &mut self,
        command: &ProcessCommand,
        protocol: impl ProcessProtocol,
    ) -> Result<ProcessId, EngineError> {
        self.refresh_now();
        let id = crate::process::spawn(
            &mut self.state,
            &mut self.driver,
            command,
            Box::new(protocol),
        )?;
        self.run_notices();
        Ok(id)
    }

    /// Runs `f` with a [`ProcessContext`] for child `id` (from outside callbacks: tests,
    /// cross-core messages). Callbacks it causes run before this returns.
    pub fn with_process<R>(
        &mut self,
        id: ProcessId,
        f: impl FnOnce(&mut ProcessContext<'_>) -> R,
    ) -> R {
        self.refresh_now();
        let result = f(&mut ProcessContext::new(
            &mut self.state,
            &mut self.driver,
            id,
        ));
        self.run_notices();
        result
    }

    /// The pool for blocking work: the runtime's (see
    /// [`RuntimeBuilder::thread_pool`](crate::RuntimeBuilder::thread_pool)), or for a reactor
    /// made alone its own ([`DEFAULT_THREADS`](crate::DEFAULT_THREADS) threads, started at
    /// the first job). Clone it into futures.
    #[must_use]
    pub fn thread_pool(&self) -> &ThreadPool {
        &self.state.threads
    }

    pub(crate) fn set_thread_pool(&mut self, pool: ThreadPool) {
        self.state.local.set_thread_pool(pool.clone());
        self.state.threads = pool;
    }

    /// Installs `resolver` as this core's [`NameResolver`](crate::names::NameResolver):
    /// every later connect by name ([`LocalHandle::connect_host`], [`Context::connect_host`],
    /// a client endpoint) and lookup through [`LocalHandle::name_resolver`] uses it. The
    /// default is a [`SystemResolver`](crate::names::SystemResolver) on this core's
    /// thread pool. Lookups already running finish with the resolver they started with.
    pub fn set_name_resolver(&mut self, resolver: std::rc::Rc<dyn crate::names::NameResolver>) {
        self.state.local.set_name_resolver(resolver);
    }

    /// This core's name resolver (see [`Reactor::set_name_resolver`]).
    #[must_use]
    pub fn name_resolver(&self) -> std::rc::Rc<dyn crate::names::NameResolver> {
        self.state.local.name_resolver()
    }

    /// Runs `f` on the thread pool (Twisted's `deferToThread`); the future yields its value
    /// on this core (await it in a task: [`Reactor::spawn_local`]).
    ///
    /// # Errors
    /// [`ThreadPoolError::Busy`] when the pool's queue is full (see [`ThreadPool::spawn`]).
    ///
    /// # Examples
    /// ```no_run
    /// use ringwork::{DriverConfig, Reactor, ReactorConfig};
    ///
    /// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
    /// let digest = reactor.defer_to_thread(|| std::fs::read("/etc/hostname"))?;
    /// reactor.spawn_local(async move {
    ///     if let Ok(Ok(bytes)) = digest.await {
    ///         println!("{} bytes, read off the core", bytes.len());
    ///     }
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn defer_to_thread<T, F>(&self, f: F) -> Result<ThreadResult<T>, ThreadPoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.state.threads.spawn(f)
    }

    /// Child processes of this core that have not ended yet (running, or exited with
    /// output still being read).
    #[must_use]
    pub fn processes(&self) -> usize {
        self.state.processes.len()
    }

    /// The ids of this core's child processes that have not ended yet.
    #[must_use]
    pub fn process_ids(&self) -> Vec<ProcessId> {
        self.state.processes.ids()
    }

    /// Outside a turn, the turn's time may be old (the program did other work since):
    /// timers and connect timeouts armed from outside callbacks must count from now.
    fn refresh_now(&mut self) {
        let now = self.state.now.max(self.state.local.clock().now());
        self.state.set_now(now);
    }

    /// Stops accepting, lets connections finish for up to `grace`, then aborts the rest with
    /// [`LostReason::Shutdown`]; [`Reactor::run`] returns once no connection is left.
    /// Called again while stopping, it can only bring the deadline forward (a second
    /// signal: zero grace stops at once).
    pub fn shutdown(&mut self, grace: Duration) {
        self.begin_shutdown(grace, false);
    }

    /// As [`Reactor::shutdown`], when another process now accepts on this core's listening
    /// sockets too (their descriptors were passed to it: a zero-downtime restart). A
    /// listener is closed only once its io_uring accept has come back (a connection it
    /// accepted meanwhile is served), and the connections still queued on it are taken and
    /// served: the kernel wakes one waiting io_uring accept per connection, and when it
    /// woke this one as it was cancelled, the other process's was not woken for it. (A
    /// plain shutdown closes at once: what is queued is reset.)
    pub fn hand_over(&mut self, grace: Duration) {
        self.begin_shutdown(grace, true);
    }

    fn begin_shutdown(&mut self, grace: Duration, hand_over: bool) {
        if let Some(stopping) = self.stopping.as_mut() {
            let now = self.state.local.clock().now();
            stopping.deadline = stopping.deadline.min(now + grace);
            return;
        }
        for listener in self.listeners.drain(..) {
            if hand_over {
                self.driver.stop_accept(listener.socket);
                self.retiring.push(listener);
            } else {
                self.driver.close(listener.socket);
            }
        }
        self.close_retired();
        for (_, socket) in self.waiting.drain(..) {
            self.driver.close(socket);
        }
        for udp in std::mem::take(&mut self.udp) {
            self.driver.close(udp.socket);
        }
        self.stopping = Some(Stopping {
            deadline: self.state.local.clock().now() + grace,
        });
        // Tell every connection, so keep-alive servers can close idle ones early, and every
        // child process (by default it gets SIGTERM).
        for id in self.state.conns.ids() {
            self.state
                .notices
                .push_back((id, crate::state::Notice::ShutdownStarted));
        }
        crate::process::shutdown_started(&mut self.state);
        self.run_notices();
    }

    /// Closes the retiring listeners whose accept has completed (under poll: all at once;
    /// under io_uring once the cancel of the multishot accept came back), after taking the
    /// connections still queued on them: the kernel wakes one waiting io_uring accept per
    /// connection, and when it woke this one just as it was cancelled, no other process's
    /// accept on the same socket (a takeover's successor) was woken for that connection.
    /// They are served like the others during the shutdown. At most
    /// [`RETIRED_BACKLOG_LIMIT`] per listener.
    fn close_retired(&mut self) {
        let mut i = 0;
        while i < self.retiring.len() {
            let socket = self.retiring[i].socket;
            if self.driver.accept_in_flight(socket) {
                i += 1;
                continue;
            }
            for _ in 0..RETIRED_BACKLOG_LIMIT {
                let queued = self
                    .driver
                    .with_socket(socket, |listener| listener.accept().map(|(conn, _)| conn));
                let Ok(conn) = queued else { break };
                match self
                    .driver
                    .adopt(conn, ringwork_platform::SocketKind::Stream)
                {
                    Ok(id) => self.start_accepted(socket, id),
                    Err(error) => tracing::debug!(%error, "a queued connection failed"),
                }
            }
            let listener = self.retiring.swap_remove(i);
            self.driver.close(listener.socket);
        }
    }

    /// Stops [`Reactor::run`] after the current turn, without closing anything.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Whether a graceful [`Reactor::shutdown`] is in progress (nothing new should start).
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.stopping.is_some()
    }

    /// Whether [`Reactor::run`] would return now.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.stopped
            || (self.stopping.is_some()
                && self.state.conns.live() == 0
                && self.state.processes.is_empty()
                && self.retiring.is_empty())
    }

    /// Runs turns until [`Reactor::stop`] or a finished [`Reactor::shutdown`], then the
    /// [`Reactor::on_stop`] hooks.
    ///
    /// # Errors
    /// The driver's wait failed (the reactor cannot continue).
    pub fn run(&mut self) -> Result<(), EngineError> {
        let result = loop {
            if self.is_finished() {
                break Ok(());
            }
            if let Err(error) = self.turn(None) {
                break Err(error);
            }
        };
        for hook in std::mem::take(&mut self.stop_hooks) {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook(self))) {
                self.state.stats.panics += 1;
                tracing::error!(panic = %dispatch::panic_message(&*panic), "a stop hook panicked");
            }
        }
        result
    }

    /// Runs `f` when [`Reactor::run`] returns — after a finished [`Reactor::shutdown`] (also
    /// one a [`Runtime`](crate::Runtime) started), a [`Reactor::stop`] or a driver error —
    /// for example to report this core's final [`Reactor::stats`]. Hooks run once, in the
    /// order they were added; a hook that panics is logged and the next one runs.
    pub fn on_stop(&mut self, f: impl FnOnce(&mut Reactor) + 'static) {
        self.stop_hooks.push(Box::new(f));
    }

    /// Runs turns until `done` returns true or `limit` passes; returns whether `done` held.
    ///
    /// # Errors
    /// The driver's wait failed.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut Reactor) -> bool,
    ) -> Result<bool, EngineError> {
        let deadline = Instant::now() + limit;
        loop {
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline || self.is_finished() {
                return Ok(done(self));
            }
            self.turn(Some(deadline - now))?;
        }
    }

    /// One loop turn: flush, wait (at most `timeout`, or until the next timer), dispatch.
    ///
    /// # Errors
    /// The driver's wait failed.
    pub fn turn(&mut self, timeout: Option<Duration>) -> Result<(), EngineError> {
        self.flush();
        let manual = self.state.local.clock().is_manual();
        let now = self.state.local.clock().now();
        let mut wait = timeout;
        // Engine deadlines bound the wait. On a manual clock they pass only when the clock
        // is moved (which wakes the driver), so only one already due does.
        // One at a time, not as an array of three `Option<Instant>`s flattened (issue 16:
        // ~30 instructions per turn).
        let mut bound = |deadline: Instant| {
            let until = deadline.saturating_duration_since(now);
            if !manual || until.is_zero() {
                wait = Some(wait.map_or(until, |w| w.min(until)));
            }
        };
        let next_timer = self.state.timers.next_deadline();
        if let Some(deadline) = next_timer {
            bound(deadline);
        }
        if let Some(stopping) = self.stopping {
            bound(stopping.deadline);
        }
        if let Some(until) = self.accept_backoff {
            bound(until);
        }
        let busy_poll = self.state.config.busy_poll;
        if !manual && wait.is_some_and(|w| w <= busy_poll) {
            wait = Some(Duration::ZERO);
        }
        if self.executor.has_ready() || !self.state.local.is_idle() {
            wait = Some(Duration::ZERO);
        }
        // What the timers were when the wait was chosen: unless one is armed meanwhile, none
        // is due before `next_timer` (see `fire_timers`).
        self.timers_seen = (next_timer, self.state.timers.arms());
        let mut completions = std::mem::take(&mut self.completions);
        self.driver.turn(wait, &mut completions)?;
        let now = self.state.local.clock().now();
        self.state.set_now(now);
        self.state.local.begin_turn(now);
        let mut batch = completions.drain(..);
        for completion in batch.by_ref() {
            // A keep-alive request's two completions, handled here: through `dispatch` (a
            // large frame, and the drop glue of the whole `Completion` after a `Sent`) they
            // cost ~90 instructions more per request (issue 16).
            match completion {
                Completion::Received { socket, buf } => {
                    dispatch::received(&mut self.state, &mut self.driver, ConnId(socket), &buf);
                }
                // Every field named, no `..`: a field added to `Sent` stops the build here,
                // so whoever adds it sees the `forget` below, which is only right while
                // every field is a plain value with nothing to drop.
                Completion::Sent {
                    socket,
                    queued,
                    bytes: _,
                } => {
                    self.state.sent(&mut self.driver, ConnId(socket), queued);
                    // A `Sent` holds nothing to drop (ids and counts): forgotten, it skips
                    // the call to the whole enum's drop glue (23 instructions per request).
                    std::mem::forget(completion);
                }
                completion => self.dispatch(completion),
            }
            // Only callbacks queued by the completion can change the connection count here
            // (a loss; an accept checks the limit itself; a connect made by a callback is
            // seen by the check after the loop, before the next wait): without notices the
            // accept check is left to it (issue 16: ~18 instructions per completion).
            if !self.state.notices.is_empty() {
                self.run_notices();
            }
        }
        // Every completion was taken: the drain holds nothing, so its drop (a call that
        // would move a tail there is none of) is skipped (issue 16: ~13 per request).
        std::mem::forget(batch);
        self.completions = completions;
        if !self.retiring.is_empty() {
            self.close_retired();
        }
        self.fire_timers();
        self.update_accepting();
        self.run_messages();
        self.run_local();
        self.check_shutdown();
        self.flush();
        self.state.local.end_turn();
        Ok(())
    }

    /// Fires the timers due at the turn's time, in deadline order, each one's callbacks
    /// before the next; reactor calls run here with the reactor.
    fn fire_timers(&mut self) {
        // Nothing armed since the wait was chosen and the earliest timer then is not due:
        // nothing is, and the wheel is not asked (issue 16: its `expire` costs a clock
        // subtraction and a walk of its levels, ~45 instructions per keep-alive request).
        // The wheel catches up at the next `expire` (it takes idle gaps of any length).
        let (next, arms) = self.timers_seen;
        if arms == self.state.timers.arms() && next.is_none_or(|next| self.state.now < next) {
            return;
        }
        let mut expired = std::mem::take(&mut self.expired);
        self.state.timers.expire(self.state.now, &mut expired);
        if expired.is_empty() {
            // Most turns: nothing due, no drain to make and drop (issue 16).
            self.expired = expired;
            return;
        }
        for (_, target) in expired.drain(..) {
            match target {
                Target::Call(call) => {
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| call(self))) {
                        self.state.stats.panics += 1;
                        if let Some(suppressed) = self.state.warnings.panic.hit(self.state.now) {
                            tracing::error!(
                                panic = %dispatch::panic_message(&*panic),
                                suppressed,
                                "a reactor call panicked"
                            );
                        }
                    }
                }
                target => dispatch::fire(&mut self.state, &mut self.driver, target),
            }
            self.run_notices();
        }
        self.expired = expired;
    }

    /// The end-of-turn flush. A flush can end connections (a close that completes once a
    /// TLS alert is queued): their callbacks run now, not after the next wait.
    fn flush(&mut self) {
        self.state.flush(&mut self.driver);
        while !self.state.notices.is_empty() {
            self.run_notices();
            self.state.flush(&mut self.driver);
        }
    }

    /// Hands a completion to its connection, listener or socket (received bytes and sends
    /// are handled in [`Reactor::turn`] itself).
    fn dispatch(&mut self, completion: Completion) {
        match completion {
            Completion::Accepted { listener, result } => self.accepted(listener, result),
            Completion::Connected { socket, result } => {
                dispatch::connected(&mut self.state, &mut self.driver, ConnId(socket), result);
            }
            Completion::Eof { socket } => {
                dispatch::eof(&mut self.state, &mut self.driver, ConnId(socket));
            }
            Completion::RecvError { socket, error } | Completion::SendError { socket, error } => {
                dispatch::failed(&mut self.state, &mut self.driver, ConnId(socket), error);
            }
            Completion::ReceivedFrom {
                socket, buf, from, ..
            } => {
                self.state.stats.bytes_in += buf.len() as u64;
                self.call_udp(socket, |p, ctx| p.datagram_received(ctx, &buf, from));
            }
            Completion::ReceivedFromUnix {
                socket, buf, from, ..
            } => {
                self.state.stats.bytes_in += buf.len() as u64;
                self.call_udp(socket, |p, ctx| {
                    p.unix_datagram_received(ctx, &buf, &from);
                });
            }
            Completion::FileSent {
                socket,
                file_queued,
                ..
            } => {
                self.state
                    .file_sent(&mut self.driver, ConnId(socket), file_queued);
            }
            Completion::Spliced { socket, bytes } => {
                crate::splice::spliced(&mut self.state, ConnId(socket), bytes);
            }
            Completion::Exited { child, status } => {
                crate::process::exited(&mut self.state, &mut self.driver, child, status);
            }
            Completion::File { op, result } => self.ring_ops.complete(op, result),
            Completion::ShutdownDone { .. } | Completion::Timer { .. } | Completion::Woken => {}
            _ => {}
        }
    }

    /// Runs queued callbacks, then re-checks the connection limit (closes free room).
    fn run_notices(&mut self) {
        if !self.state.notices.is_empty() {
            dispatch::run_notices(&mut self.state, &mut self.driver);
        }
        self.update_accepting();
    }

    fn call_udp(
        &mut self,
        socket: SocketId,
        f: impl FnOnce(&mut dyn DatagramProtocol, &mut DatagramContext<'_>),
    ) {
        let Some(index) = self.udp.iter().position(|u| u.socket == socket) else {
            return;
        };
        let Some(mut protocol) = self.udp[index].protocol.take() else {
            return;
        };
        let mut ctx = DatagramContext::new(&mut self.driver, socket, self.state.now);
        let result = catch_unwind(AssertUnwindSafe(|| f(&mut *protocol, &mut ctx)));
        match result {
            Ok(()) => {
                if let Some(udp) = self.udp.iter_mut().find(|u| u.socket == socket) {
                    udp.protocol = Some(protocol);
                }
            }
            Err(_) => {
                self.state.stats.panics += 1;
                tracing::error!("datagram protocol panicked; its socket is closed");
                self.driver.close(socket);
                self.udp.retain(|u| u.socket != socket);
            }
        }
    }

    fn run_messages(&mut self) {
        if self
            .inbox
            .as_ref()
            .is_none_or(crossbeam_channel::Receiver::is_empty)
        {
            // Most turns (issue 16: cheaper than a `try_recv` that finds nothing).
            return;
        }
        // A bounded batch per turn, so a flood of messages cannot starve connections.
        for _ in 0..1024 {
            let Some(Ok(message)) = self
                .inbox
                .as_ref()
                .map(crossbeam_channel::Receiver::try_recv)
            else {
                break;
            };
            match message {
                CoreMessage::Run(f) => {
                    if catch_unwind(AssertUnwindSafe(|| f(self))).is_err() {
                        self.state.stats.panics += 1;
                        tracing::error!("a cross-core message panicked");
                    }
                    self.run_notices();
                }
                CoreMessage::Shutdown(grace) => self.shutdown(grace),
                CoreMessage::HandOver(grace) => self.hand_over(grace),
            }
        }
    }

    /// Runs queued jobs, spawns queued futures and polls ready tasks — in rounds, since each
    /// may queue more, with a bound so a task that keeps waking itself cannot stall the turn.
    fn run_local(&mut self) {
        if self.state.local.is_idle() && !self.executor.has_ready() {
            // Nothing queued, nothing ready: the round below would only re-check the
            // accept state, which the turn just did (issue 16).
            return;
        }
        for _ in 0..16 {
            let (jobs, spawns, wakes) = {
                let mut queue = self.state.local.local.queue.borrow_mut();
                (
                    std::mem::take(&mut queue.jobs),
                    std::mem::take(&mut queue.spawns),
                    std::mem::take(&mut queue.wakes),
                )
            };
            dispatch::queue_wakes(&mut self.state, wakes);
            self.run_notices();
            for task in spawns {
                drop(self.executor.spawn_local(task));
            }
            for job in jobs {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| job(self))) {
                    self.state.stats.panics += 1;
                    tracing::error!(panic = %dispatch::panic_message(&*panic), "a reactor job panicked");
                }
                self.run_notices();
            }
            self.executor.run_ready(1024);
            self.run_notices();
            if !self.executor.has_ready() && self.state.local.is_idle() {
                break;
            }
        }
    }

    fn check_shutdown(&mut self) {
        let Some(stopping) = self.stopping else {
            return;
        };
        if self.state.now >= stopping.deadline && self.state.conns.live() > 0 {
            for id in self.state.conns.ids() {
                self.state
                    .lose(&mut self.driver, id, LostReason::Shutdown, true);
            }
            self.run_notices();
        }
        if self.state.now >= stopping.deadline && !self.killed_children {
            // Children still running get SIGKILL once; their exits end them as usual.
            self.killed_children = true;
            crate::process::kill_all(&mut self.state, &mut self.driver);
        }
    }

    /// Sends a datagram from outside callbacks.
    pub fn send_to(&mut self, id: UdpId, data: Bytes, to: SocketAddr) {
        self.driver.send_to(id.0, data, to);
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        if let Some((clock, registration)) = self.clock_registration.take() {
            clock.unregister(registration);
        }
        // Pending calls and queued jobs may hold handles to this core: drop them now, so
        // the core's shared state does not outlive the reactor in a cycle.
        self.state.local.clear();
    }
}

#[cfg(unix)]
fn is_socket(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_socket()
}

#[cfg(not(unix))]
fn is_socket(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Removes a socket file left by an earlier process at `path` (never any other file).
fn remove_stale_socket(path: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && is_socket(&meta)
    {
        let _ = std::fs::remove_file(path);
    }
}
