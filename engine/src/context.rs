//! [`Context`]: the transport given to every protocol callback.
//!
//! Owns: the caller-facing operations on one connection (write, close, timers, reading
//! control, addresses) and the way to reach other connections of the same core
//! ([`Context::other`]) and to open outbound ones ([`Context::connect`], see `connect.rs`).
//! Contract: nothing here blocks or calls another protocol; writes are buffered until the end
//! of the turn; callbacks that follow from an operation (another connection's
//! `connection_lost`, `pause_writing`) run after the current callback returns.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ringwork_platform::{OpError, SockAddr};

use crate::io::Io;
use crate::protocol::{ConnId, LostReason, Protocol};
use crate::state::{Handshake, Notice, Phase, Stage, State};
use crate::timers::TimerId;

/// One connection's transport, plus the reactor of its core.
///
/// Operations on a connection that is gone are ignored (and queries answer "closed"), so a
/// protocol never has to check before writing to a peer connection that may have closed.
pub struct Context<'a> {
    pub(crate) state: &'a mut State,
    pub(crate) io: &'a mut dyn Io,
    pub(crate) conn: ConnId,
}

impl<'a> Context<'a> {
    pub(crate) fn new(state: &'a mut State, io: &'a mut dyn Io, conn: ConnId) -> Self {
        Self { state, io, conn }
    }

    /// This connection's id.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.conn
    }

    /// The time of the current loop turn (read once per turn; a manual clock in tests). From
    /// outside a turn ([`Reactor::with_conn`](crate::Reactor::with_conn)) it is read anew.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.state.now
    }

    /// A context for another connection of this core, with the same operations. Use it to
    /// write to, pause, resume or close a peer connection (a proxy's other side).
    pub fn other(&mut self, id: ConnId) -> Context<'_> {
        Context {
            state: self.state,
            io: self.io,
            conn: id,
        }
    }

    /// The runtime's cores, to send work to another core (`None` in single-threaded mode).
    #[must_use]
    pub fn cores(&self) -> Option<&crate::runtime::Cores> {
        self.state.cores.as_ref()
    }

    /// A handle to this core's reactor for futures and for later (see [`LocalHandle`]).
    ///
    /// [`LocalHandle`]: crate::LocalHandle
    #[must_use]
    pub fn handle(&self) -> crate::local::LocalHandle {
        self.state.local.clone()
    }

    /// This core's index in its runtime (0 in single-threaded mode).
    #[must_use]
    pub fn core_index(&self) -> usize {
        self.state
            .cores
            .as_ref()
            .map_or(0, crate::runtime::Cores::this_core)
    }

    /// Whether the connection is open (not closed, closing or lost).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.state
            .conns
            .get(self.conn)
            .is_some_and(crate::state::Conn::is_open)
    }

    /// Writes a copy of `data` (buffered; sent at the end of the turn with everything else
    /// written to this connection in the turn).
    pub fn write(&mut self, data: &[u8]) {
        self.state.write(self.io, self.conn, data);
    }

    /// Writes `data` without copying it.
    pub fn write_bytes(&mut self, data: Bytes) {
        self.state.write_bytes(self.io, self.conn, data);
    }

    /// Sends `len` bytes of `file` from `offset` after everything written so far, and
    /// before anything written after: the kernel reads them from the file into the socket
    /// (sendfile(2) on Linux, both backends), never through this process's memory.
    ///
    /// - Backpressure: nothing is read ahead. The range does not count in
    ///   [`Context::buffered`] or the write watermarks (no memory holds it), but closing
    ///   waits for it and the write-stall timeout watches it like buffered bytes.
    /// - The file is read when sent: if it ends before the range does (truncated meanwhile)
    ///   the connection is lost with a write error (the peer sees it end early, never
    ///   other bytes in place of the missing ones).
    ///
    /// # Errors
    /// [`EngineError::SendFile`](crate::EngineError::SendFile) on a TLS connection, a
    /// closed or closing one, or a file that is closed (or has a test read hook);
    /// [`EngineError::Op`](crate::EngineError::Op) when the driver refuses (not Linux, the
    /// in-memory transport of `ringwork::testing`). Nothing was queued then: write the
    /// bytes instead.
    pub fn send_file(
        &mut self,
        file: &crate::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<(), crate::EngineError> {
        let Some(descriptor) = file.descriptor() else {
            return Err(crate::EngineError::SendFile {
                why: "the file is closed or reads through a test hook".into(),
            });
        };
        self.state
            .send_file(self.io, self.conn, descriptor, offset, len)
    }

    /// Whether the write buffer is below its high watermark. Above it, stop producing until
    /// [`Protocol::write_drained`].
    #[must_use]
    pub fn is_writable(&self) -> bool {
        self.state
            .conns
            .get(self.conn)
            .is_some_and(|c| c.phase != Phase::Lost && !c.write_paused)
    }

    /// Outgoing bytes not yet taken by the kernel.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.state.conns.get(self.conn).map_or(0, |c| c.buffered())
    }

    /// Closes the connection once everything written is sent; `connection_lost` follows with
    /// [`LostReason::Done`]. Later writes are ignored.
    pub fn close(&mut self) {
        self.state.close(self.io, self.conn);
    }

    /// Closes the connection now with a reset; unsent bytes are dropped and
    /// `connection_lost` follows with [`LostReason::Aborted`].
    pub fn abort(&mut self) {
        self.state
            .lose(self.io, self.conn, LostReason::Aborted, true);
    }

    /// Half-closes: the peer sees end of stream once everything written is sent; reading
    /// continues. Later writes are ignored.
    pub fn shutdown_write(&mut self) {
        self.state.shutdown_write(self.conn);
    }

    /// Stops reading (the kernel's buffer fills and the peer is slowed down). Bytes already
    /// received are held and delivered after [`Context::resume_reading`], and so is an end of
    /// stream that arrives meanwhile: `eof_received` never comes while reading is paused.
    pub fn pause_reading(&mut self) {
        self.state.pause_reading(self.io, self.conn);
    }

    /// Resumes reading after [`Context::pause_reading`].
    pub fn resume_reading(&mut self) {
        self.state.resume_reading(self.io, self.conn);
    }

    /// From now on, bytes arriving on this connection go to connection `to` inside the
    /// kernel (Linux: splice(2) through a 64 KiB pipe) instead of reaching
    /// [`Protocol::data_received`]: no copy into or out of user memory, and backpressure by
    /// construction (while `to` is full, this connection is not read). It suits bulk
    /// relaying (proxies, tunnels); for small messages two system calls per chunk cost
    /// more than the copies they save (see `docs/proxy.md` for measurements).
    ///
    /// - Bytes written to `to` before the call (and bytes held while reading was paused)
    ///   go out first. Bytes a receive already in flight picked up may still reach
    ///   `data_received` once: forward them to `to` as before.
    /// - [`Protocol::eof_received`] comes after every byte before the end reached `to`'s
    ///   socket: call `shutdown_write` on `to` then to pass the end on. Errors and
    ///   `connection_lost` are as before; a failure to write `to` is `to`'s loss.
    /// - `pause_reading`/`resume_reading` work; progress shows in
    ///   [`Context::spliced_bytes`] (for idle timeouts) and `CoreStats::bytes_spliced`.
    /// - It lasts for the connection's life. Writing to `to` meanwhile interleaves at
    ///   chunk boundaries; closing or shutting down `to` drops bytes still in the pipe.
    ///
    /// # Errors
    /// [`EngineError::Splice`](crate::EngineError::Splice) when either connection is not
    /// open, runs TLS, is still reading a preamble, or this one is spliced already or its
    /// stream ended; [`EngineError::Op`](crate::EngineError::Op) when the driver refuses
    /// (not Linux, the in-memory transport of `ringwork::testing`, out of
    /// descriptors for the pipe). Nothing changed then: keep copying.
    pub fn splice_into(&mut self, to: ConnId) -> Result<(), crate::EngineError> {
        crate::splice::start(self.state, self.io, self.conn, to)
    }

    /// Bytes of this connection's input moved by a splice so far
    /// ([`Context::splice_into`]), counting the held bytes (received while reading was
    /// paused, or not yet delivered after a resume) that the splice took over at its start.
    #[must_use]
    pub fn spliced_bytes(&self) -> u64 {
        match self.state.conns.get(self.conn).map(|c| &c.stage) {
            Some(Stage::Spliced(spliced)) => spliced.bytes,
            _ => 0,
        }
    }

    /// Sets this connection's write-stall (send) timeout, replacing
    /// [`ReactorConfig::write_timeout`](crate::ReactorConfig::write_timeout): while it has
    /// bytes to send (buffered here, queued in the kernel driver, or held by a splice into
    /// it) and its peer takes none of them for `timeout`, it is aborted with
    /// [`LostReason::WriteStalled`]. A peer that reads slowly but keeps taking bytes is never
    /// cut. `None` or zero: no timeout. Bytes already pending count from now.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        crate::stall::set(self.state, self.io, self.conn, timeout);
    }

    /// This connection's write-stall timeout (see [`Context::set_write_timeout`]; kept in
    /// nanoseconds, so one beyond about 584 years reads back as that).
    #[must_use]
    pub fn write_timeout(&self) -> Option<Duration> {
        self.state.conns.get(self.conn)?.write_timeout.get()
    }

    /// Whether reading is paused.
    #[must_use]
    pub fn is_reading_paused(&self) -> bool {
        self.state
            .conns
            .get(self.conn)
            .is_some_and(|c| c.reading.is_paused())
    }

    /// Calls [`Protocol::timer_fired`] once, `delay` from now.
    pub fn call_later(&mut self, delay: Duration) -> TimerId {
        let at = crate::timers::deadline(self.state.now, delay);
        let timer = self.state.timers.add(self.conn, at, None);
        self.own_timer(timer)
    }

    /// Calls [`Protocol::timer_fired`] every `interval` until cancelled or the connection is
    /// gone. The id stays the same across repeats.
    pub fn call_every(&mut self, interval: Duration) -> TimerId {
        let interval = interval.max(self.state.config.timer_tick);
        let at = crate::timers::deadline(self.state.now, interval);
        let timer = self.state.timers.add(self.conn, at, Some(interval));
        self.own_timer(timer)
    }

    /// Cancels a timer of this connection (use [`Context::other`] for another's); `false` if
    /// it already fired (one-shot), was cancelled or is not this connection's.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        let Some(conn) = self.state.conns.get_mut(self.conn) else {
            return false;
        };
        let Some(at) = conn.timers.iter().position(|(id, _)| *id == timer) else {
            return false;
        };
        let (_, key) = conn.timers.remove(at);
        self.state.timers.cancel(key)
    }

    /// Records `timer` on its connection, so losing the connection cancels it; a timer set
    /// on a connection that is already gone is cancelled at once (it would never fire).
    fn own_timer(&mut self, (timer, key): (TimerId, crate::timer::TimerKey)) -> TimerId {
        match self.state.conns.active_mut(self.conn) {
            Some(conn) => conn.timers.push((timer, key)),
            None => {
                self.state.timers.cancel(key);
            }
        }
        timer
    }

    /// The peer's address: the client a listener preamble (PROXY protocol) names, if any,
    /// else the socket's peer.
    ///
    /// # Errors
    /// The OS error, or `NotFound` if the connection is gone.
    pub fn peer_addr(&self) -> Result<SockAddr, OpError> {
        match self
            .state
            .conns
            .get(self.conn)
            .and_then(|c| c.rare.as_ref()?.peer.clone())
        {
            Some(addr) => Ok(addr),
            None => self.io.peer_addr(self.conn.0),
        }
    }

    /// The local address (the one a listener preamble names, if any).
    ///
    /// # Errors
    /// The OS error, or `NotFound` if the connection is gone.
    pub fn local_addr(&self) -> Result<SockAddr, OpError> {
        match self
            .state
            .conns
            .get(self.conn)
            .and_then(|c| c.rare.as_ref()?.local.clone())
        {
            Some(addr) => Ok(addr),
            None => self.io.local_addr(self.conn.0),
        }
    }

    /// The socket's own peer address, even when a listener preamble (PROXY protocol) named
    /// the real client: the load balancer's address.
    ///
    /// # Errors
    /// The OS error, or `NotFound` if the connection is gone.
    pub fn socket_peer_addr(&self) -> Result<SockAddr, OpError> {
        self.io.peer_addr(self.conn.0)
    }

    /// Opens an outbound stream connection (TCP or Unix) to `addr`, run by `protocol`, as
    /// `options` say: its connect timeout (default: the reactor's), TLS from the start. On
    /// success `protocol` gets `connection_made` — with TLS once the handshake is done,
    /// when [`Context::tls`] tells the session; on failure or timeout only
    /// `connection_lost` ([`LostReason::ConnectFailed`], [`LostReason::ConnectTimeout`],
    /// [`LostReason::Tls`]). Writes before that are sent (encrypted, with TLS) once it is.
    ///
    /// # Errors
    /// Creating the socket failed ([`EngineError::Op`](crate::EngineError::Op)), or rustls
    /// could not start a session ([`EngineError::Tls`](crate::EngineError::Tls)): then
    /// nothing was started and `protocol` is dropped without callbacks.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// use ringwork::{ConnId, ConnectOptions, Context, Protocol, SockAddr};
    ///
    /// /// Relays what its client sends to an upstream opened when the client connects.
    /// struct Relay {
    ///     upstream: SockAddr,
    ///     peer: Option<ConnId>,
    /// }
    ///
    /// /// The upstream side (a real relay forwards its bytes back).
    /// struct Upstream;
    ///
    /// impl Protocol for Upstream {
    ///     fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
    /// }
    ///
    /// impl Protocol for Relay {
    ///     fn connection_made(&mut self, ctx: &mut Context<'_>) {
    ///         let options = ConnectOptions::new().timeout(Duration::from_secs(2));
    ///         match ctx.connect(&self.upstream, Upstream, options) {
    ///             Ok(id) => self.peer = Some(id),
    ///             Err(error) => {
    ///                 eprintln!("cannot connect upstream: {error}");
    ///                 ctx.close();
    ///             }
    ///         }
    ///     }
    ///     fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
    ///         if let Some(peer) = self.peer {
    ///             // Sent once the upstream is connected.
    ///             ctx.other(peer).write(data);
    ///         }
    ///     }
    /// }
    ///
    /// let mut t = ringwork::testing::StringTransport::new(Relay {
    ///     upstream: SockAddr::from("192.0.2.1:80".parse::<std::net::SocketAddr>().unwrap()),
    ///     peer: None,
    /// });
    /// let (upstream, _addr) = t.pending_connects().remove(0);
    /// t.feed(b"hello");
    /// t.complete_connect(upstream, Ok(()));
    /// assert_eq!(t.remote(upstream).take_written(), b"hello");
    /// ```
    pub fn connect(
        &mut self,
        addr: &SockAddr,
        protocol: impl Protocol,
        options: crate::ConnectOptions,
    ) -> Result<ConnId, crate::EngineError> {
        crate::connect::start(self.state, self.io, addr, Box::new(protocol), options)
    }

    /// What the connection's TLS session negotiated, once its handshake is done (`None` on a
    /// plain connection, and during a STARTTLS handshake).
    #[must_use]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        match &self.state.conns.get(self.conn)?.stage {
            Stage::Tls(tls) => match &tls.handshake {
                Handshake::Done(info) => Some(info),
                Handshake::Running { .. } => None,
            },
            _ => None,
        }
    }

    /// STARTTLS, server side: from now on this connection runs TLS as a server. Bytes
    /// written before the call are sent in the clear first (the "go ahead" reply); the
    /// client's handshake follows. [`Protocol::handshake_completed`] says when it is done.
    ///
    /// Input the protocol already received after the STARTTLS command (in the same read)
    /// was sent in the clear and must be discarded, not treated as protected (RFC 3207 §4.2,
    /// the STARTTLS command-injection flaw).
    ///
    /// # Errors
    /// The connection already runs TLS, is not open (see [`TlsError::NotOpen`]; also when it
    /// is spliced, either way), or rustls could not start a session.
    ///
    /// [`TlsError::NotOpen`]: crate::tls::TlsError::NotOpen
    pub fn start_tls_server(
        &mut self,
        acceptor: &crate::tls::TlsAcceptor,
    ) -> Result<(), crate::tls::TlsError> {
        use crate::tls::session::{Session, Start, install};
        let session = Session::server(acceptor, Start::Upgrade)?;
        install(self.state, self.io, self.conn, session)
    }

    /// STARTTLS, client side: from now on this connection runs TLS as a client verifying
    /// `server_name`; the ClientHello goes out at the end of the callback.
    /// [`Protocol::handshake_completed`] says when the handshake is done.
    ///
    /// # Errors
    /// The connection already runs TLS, is not open (see [`TlsError::NotOpen`]; also when it
    /// is spliced, either way), or rustls could not start a session.
    ///
    /// [`TlsError::NotOpen`]: crate::tls::TlsError::NotOpen
    pub fn start_tls_client(
        &mut self,
        connector: &crate::tls::TlsConnector,
        server_name: crate::tls::ServerName<'static>,
    ) -> Result<(), crate::tls::TlsError> {
        use crate::tls::session::{Session, Start, install};
        let session = Session::client(connector, server_name, Start::Upgrade)?;
        install(self.state, self.io, self.conn, session)
    }

    /// Starts a child process run by `protocol` (see [`Reactor::spawn_process`]);
    /// `connection_made` runs after this callback.
    ///
    /// [`Reactor::spawn_process`]: crate::Reactor::spawn_process
    ///
    /// # Errors
    /// As [`Reactor::spawn_process`](crate::Reactor::spawn_process).
    pub fn spawn_process(
        &mut self,
        command: &ringwork_platform::ProcessCommand,
        protocol: impl crate::process::ProcessProtocol,
    ) -> Result<crate::process::ProcessId, crate::EngineError> {
        crate::process::spawn(self.state, self.io, command, Box::new(protocol))
    }

    /// A [`ProcessContext`](crate::ProcessContext) for child process `id` of this core:
    /// write to its stdin, signal it, pause its output (a network peer relayed to a child).
    pub fn process(&mut self, id: crate::process::ProcessId) -> crate::process::ProcessContext<'_> {
        crate::process::ProcessContext::new(self.state, self.io, id)
    }

    /// Runs `f` on the thread pool (Twisted's `deferToThread`); the future yields its value
    /// on this core. Await it in a task and wake this connection with the answer (see
    /// [`LocalHandle::wake`](crate::LocalHandle::wake)).
    ///
    /// # Errors
    /// [`ThreadPoolError::Busy`](crate::ThreadPoolError::Busy) when the pool's queue is full.
    pub fn defer_to_thread<T, F>(
        &self,
        f: F,
    ) -> Result<crate::threads::ThreadResult<T>, crate::threads::ThreadPoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.state.threads.spawn(f)
    }

    /// The pool for blocking work (clone it into futures).
    #[must_use]
    pub fn thread_pool(&self) -> &crate::threads::ThreadPool {
        &self.state.threads
    }
}

/// Queues `connection_made` for a connection that just became open.
pub(crate) fn made(state: &mut State, id: ConnId) {
    state.notices.push_back((id, Notice::Made));
}
