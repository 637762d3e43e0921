//! [`Driver`]: the one completion-style interface over both backends.
//!
//! Owns: backend selection (configuration, `RINGWORK_BACKEND`, automatic fallback with one
//! log line), socket creation, and the caller-facing operations, which record intent in the
//! shared [`Core`] for the backend to carry out in the next [`Driver::turn`].

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use crate::completion::Completion;
use crate::config::{BackendChoice, BackendKind, Capabilities, DriverConfig, Stats};
use crate::error::{OpError, SetupError, UringUnavailable};
use crate::id::{OpKind, SocketId, TimerId};
use crate::inherit::Inherited;
use crate::multicast::Multicast;
use crate::options::{self, SocketOptionError, SocketOptions};
#[cfg(processes)]
use crate::process::ChildGuard;
use crate::process::{FileKind, ProcessCommand, Spawned, WindowSize};
use crate::reuse_port::{self, ReusePort};
use crate::sys;
use crate::table::{Core, Dest, Shutdown, SocketKind};
use crate::waker::Waker;

/// Options for [`Driver::listen`].
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// Length of the kernel's accept queue (1 to 65,535; the kernel caps it at
    /// `net.core.somaxconn`).
    pub backlog: i32,
    /// SO_REUSEPORT (Unix, TCP only): whether several listeners may share the address (every
    /// core opens its own and the kernel spreads connections between them), and whose.
    /// The default, [`ReusePort::Process`], shares only among this process's listeners: an
    /// address someone else holds fails with EADDRINUSE.
    pub reuse_port: ReusePort,
    /// IPV6_V6ONLY for IPv6 listeners (`None` keeps the OS default).
    pub only_v6: Option<bool>,
    /// Buffer sizes, keepalive, TOS and device, set before bind (accepted connections
    /// inherit them on Linux).
    pub socket: SocketOptions,
    /// TCP Fast Open (Linux, TCP_FASTOPEN): accept data in the SYN, with at most this many
    /// such connections waiting for their handshake (1 to 65,535). Takes effect when the
    /// `net.ipv4.tcp_fastopen` sysctl has its server bit (2); `None`: off.
    pub fastopen: Option<u32>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            backlog: 1024,
            reuse_port: ReusePort::Process,
            only_v6: None,
            socket: SocketOptions::default(),
            fastopen: None,
        }
    }
}

/// Options for [`Driver::connect_with`].
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// Connect from this local address (an IP address of the target's family, port 0 for
    /// any; Twisted's `bindAddress`).
    pub bind: Option<SockAddr>,
    /// Buffer sizes, keepalive, TOS and device, set before bind and connect.
    pub socket: SocketOptions,
    /// TCP Fast Open for the client side (Linux 4.11, TCP_FASTOPEN_CONNECT): the connect
    /// completes at once and the SYN goes with the first send, carrying its bytes when the
    /// kernel holds a Fast Open cookie of the server (from an earlier connection; the
    /// first one only asks for it). A refused connect then shows as the first send's or
    /// receive's error, not as [`Completion::Connected`]'s. For protocols whose client
    /// speaks first; needs the client bit (1) of `net.ipv4.tcp_fastopen`.
    pub fastopen: bool,
}

enum Backend {
    #[cfg(uring)]
    Uring(Box<sys::uring::Uring>),
    Poll(Box<sys::poll::Poll>),
}

/// Runs `$body` with `$b` bound to the active backend.
macro_rules! with_backend {
    ($backend:expr, $b:ident => $body:expr) => {
        match $backend {
            #[cfg(uring)]
            Backend::Uring($b) => $body,
            Backend::Poll($b) => $body,
        }
    };
}

/// A per-thread I/O driver: sockets, timers and a wake-up, with completions delivered in
/// batches by [`Driver::turn`].
///
/// Use it in this order:
/// 1. create sockets ([`Driver::listen`], [`Driver::connect`], [`Driver::bind_udp`]);
/// 2. say what you want of them ([`Driver::accept`], [`Driver::recv`], [`Driver::send`], ...):
///    nothing reaches the kernel yet;
/// 3. call [`Driver::turn`], which submits everything in one go, waits, and returns
///    completions; react to them (more of step 2) and turn again.
///
/// A driver belongs to the thread that made it (it is `!Send`): io_uring is set up with
/// SINGLE_ISSUER, and receive buffers are lent without locks.
pub struct Driver {
    // Field order is drop order: the backend closes the descriptors before the socket
    // table drops the listeners' SO_REUSEPORT group tokens (see `reuse_port.rs`).
    backend: Backend,
    core: Core,
}

impl Driver {
    /// A driver with the default configuration (backend chosen automatically).
    ///
    /// # Errors
    /// See [`Driver::with_config`].
    pub fn new() -> Result<Self, SetupError> {
        Self::with_config(DriverConfig::default())
    }

    /// A driver with `config`. When `config.backend` is `Auto` (the default),
    /// `RINGWORK_BACKEND=uring|poll|auto` chooses instead; `RINGWORK_URING_PATHS`, when set,
    /// chooses the optional io_uring data paths ([`DriverConfig::DATA_PATHS_ENV`]).
    ///
    /// # Errors
    /// [`SetupError::UringUnavailable`] when io_uring was required and cannot work here,
    /// [`SetupError::InvalidConfig`] for inconsistent settings, [`SetupError::Io`] when the
    /// poll backend cannot be created.
    pub fn with_config(config: DriverConfig) -> Result<Self, SetupError> {
        let config = config.with_data_paths_env()?;
        config.validate()?;
        let choice = config.backend.with_env_override()?;
        let backend = match choice {
            BackendChoice::Poll => Backend::Poll(Box::new(sys::poll::Poll::new(&config, None)?)),
            BackendChoice::Uring => match Self::uring(&config) {
                Ok(backend) => backend,
                Err(reason) => return Err(SetupError::UringUnavailable { reason }),
            },
            BackendChoice::Auto => match Self::uring(&config) {
                Ok(backend) => backend,
                Err(reason) => {
                    tracing::warn!(%reason, "io_uring unavailable, using the poll backend");
                    Backend::Poll(Box::new(sys::poll::Poll::new(&config, Some(reason))?))
                }
            },
        };
        Ok(Self {
            core: Core::new(config),
            backend,
        })
    }

    #[cfg(uring)]
    fn uring(config: &DriverConfig) -> Result<Backend, UringUnavailable> {
        sys::uring::Uring::new(config).map(|uring| Backend::Uring(Box::new(uring)))
    }

    #[cfg(not(uring))]
    fn uring(_config: &DriverConfig) -> Result<Backend, UringUnavailable> {
        Err(UringUnavailable::NotLinux)
    }

    /// The backend in use.
    #[must_use]
    pub fn backend(&self) -> BackendKind {
        self.capabilities().backend.unwrap_or(BackendKind::Poll)
    }

    /// What the backend found and uses (and, after a fallback, why io_uring was not used).
    #[must_use]
    pub fn capabilities(&self) -> &Capabilities {
        with_backend!(&self.backend, b => b.capabilities())
    }

    /// Counters: turns, kernel enters, submissions, completions, overflows, ...
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.core.stats
    }

    /// The configuration the driver runs with.
    #[must_use]
    pub fn config(&self) -> &DriverConfig {
        &self.core.config
    }

    /// Sockets in the table, including closed ones whose operations are still in flight.
    #[must_use]
    pub fn live_sockets(&self) -> usize {
        self.core.live_sockets()
    }

    /// Receive buffers not currently lent out.
    #[must_use]
    pub fn buffers_available(&self) -> u32 {
        with_backend!(&self.backend, b => b.buffers_available())
    }

    /// A handle other threads use to wake this driver's [`Driver::turn`].
    #[must_use]
    pub fn waker(&self) -> Waker {
        with_backend!(&self.backend, b => b.waker())
    }

    /// Opens a listening socket on `addr` (IPv4, IPv6 or a Unix path). Call
    /// [`Driver::accept`] to start accepting. How the address is shared with other
    /// listeners follows [`ListenOptions::reuse_port`] (see [`ReusePort`]).
    ///
    /// # Errors
    /// The OS error of socket, bind or listen, with context: EADDRINUSE
    /// ([`io::ErrorKind::AddrInUse`]) when another socket holds the address and
    /// [`ReusePort::Shared`] was not asked for.
    pub fn listen(
        &mut self,
        addr: &SockAddr,
        options: &ListenOptions,
    ) -> Result<SocketId, OpError> {
        let open = |e| OpError::new(OpKind::Open, None, e);
        let option = |e: SocketOptionError| open(e.into_io());
        let backlog =
            options::queue_len("listen backlog", options.backlog.max(0) as u32).map_err(option)?;
        let socket = Socket::new(addr.domain(), Type::STREAM, None).map_err(open)?;
        let ip = options::ip_family(addr);
        options.socket.apply(&socket, ip).map_err(option)?;
        if ip.is_some() {
            socket.set_reuse_address(true).map_err(open)?;
            // Accepted sockets inherit it on Linux; request/response protocols want it.
            socket.set_tcp_nodelay(true).map_err(open)?;
            if let (Some(false), Some(only_v6)) = (ip, options.only_v6) {
                socket.set_only_v6(only_v6).map_err(open)?;
            }
        }
        if let Some(queue) = options.fastopen {
            let queue = options::queue_len("TCP_FASTOPEN", queue).map_err(option)?;
            if ip.is_none() {
                return Err(option(SocketOptionError::Unsupported {
                    option: "TCP_FASTOPEN",
                    why: "only TCP listeners take it",
                }));
            }
            sys::sockopt::set_fastopen(&SockRef::from(&socket), queue).map_err(|source| {
                option(SocketOptionError::Set {
                    option: "TCP_FASTOPEN",
                    value: queue.to_string(),
                    source,
                })
            })?;
        }
        let group =
            reuse_port::bind_listener(&socket, addr, backlog, options.reuse_port).map_err(open)?;
        let id = self.adopt(socket, SocketKind::Listener)?;
        // Released with the socket's slot, after its descriptor is closed.
        self.core.open_mut(id).expect("just added").group = group;
        Ok(id)
    }

    /// Listens on a socket inherited from the parent process (systemd socket activation,
    /// `fd:N`): a duplicate of its descriptor, checked to be a listening stream socket, is
    /// added as a listener (see [`inherit`](crate::inherit)). Call it once per driver to
    /// accept on every core: the duplicates share the kernel's one accept queue.
    ///
    /// # Errors
    /// The [`InheritError`](crate::inherit::InheritError) (as the `io::Error`'s source):
    /// not passed, not open, not a listening stream socket, of another family; or the OS
    /// error of registering it.
    pub fn listen_inherited(&mut self, inherited: &Inherited) -> Result<SocketId, OpError> {
        let socket = inherited
            .open()
            .map_err(|e| OpError::new(OpKind::Open, None, e.into_io()))?;
        self.adopt(socket, SocketKind::Listener)
    }

    /// Listens on `socket`, a listening stream socket made elsewhere (received with
    /// [`fdpass::recv_fds`](crate::fdpass::recv_fds), or set up by the caller): checked,
    /// then added as a listener.
    ///
    /// # Errors
    /// `InvalidInput` when `socket` is not a stream socket or not listening; the OS error
    /// of registering it.
    pub fn listen_socket(&mut self, socket: Socket) -> Result<SocketId, OpError> {
        let invalid = |why: &str| {
            OpError::new(
                OpKind::Open,
                None,
                io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()),
            )
        };
        if socket.r#type().ok() != Some(Type::STREAM) {
            return Err(invalid("not a stream socket"));
        }
        if !sys::inherit::is_listening(&socket).unwrap_or(false) {
            return Err(invalid("a stream socket that is not listening"));
        }
        self.adopt(socket, SocketKind::Listener)
    }

    /// Starts connecting a stream socket to `addr` (TCP or a Unix path); a
    /// [`Completion::Connected`] follows. [`Driver::send`] and [`Driver::recv`] may be called
    /// before it connects: they take effect once connected.
    ///
    /// # Errors
    /// The OS error of creating the socket.
    pub fn connect(&mut self, addr: &SockAddr) -> Result<SocketId, OpError> {
        self.connect_with(addr, &ConnectOptions::default())
    }

    /// [`Driver::connect`] from a local address: the socket is bound to `bind` first (an
    /// IP address of `addr`'s family, port 0 for any; Twisted's `bindAddress`).
    ///
    /// # Errors
    /// As [`Driver::connect`], and the OS error of bind (EADDRNOTAVAIL for an address
    /// this host does not have, EAFNOSUPPORT for the other family).
    pub fn connect_from(
        &mut self,
        addr: &SockAddr,
        bind: Option<&SockAddr>,
    ) -> Result<SocketId, OpError> {
        let options = ConnectOptions {
            bind: bind.cloned(),
            ..ConnectOptions::default()
        };
        self.connect_with(addr, &options)
    }

    /// [`Driver::connect`] with `options`: a local address, socket options and TCP Fast
    /// Open, all set before the connect starts.
    ///
    /// # Errors
    /// As [`Driver::connect_from`]; a socket option out of range, not taken by the
    /// socket's family (keepalive on a Unix socket), or refused by the kernel, with the
    /// option's name (the error's source is a [`SocketOptionError`]).
    pub fn connect_with(
        &mut self,
        addr: &SockAddr,
        options: &ConnectOptions,
    ) -> Result<SocketId, OpError> {
        let open = |e| OpError::new(OpKind::Open, None, e);
        let option = |e: SocketOptionError| open(e.into_io());
        let socket = Socket::new(addr.domain(), Type::STREAM, None).map_err(open)?;
        let ip = options::ip_family(addr);
        options.socket.apply(&socket, ip).map_err(option)?;
        if ip.is_some() {
            socket.set_tcp_nodelay(true).map_err(open)?;
        }
        if options.fastopen {
            if ip.is_none() {
                return Err(option(SocketOptionError::Unsupported {
                    option: "TCP_FASTOPEN_CONNECT",
                    why: "only TCP connections take it",
                }));
            }
            sys::sockopt::set_fastopen_connect(&SockRef::from(&socket), true).map_err(
                |source| {
                    option(SocketOptionError::Set {
                        option: "TCP_FASTOPEN_CONNECT",
                        value: "1".into(),
                        source,
                    })
                },
            )?;
        }
        if let Some(local) = &options.bind {
            socket.bind(local).map_err(open)?;
        }
        let id = self.adopt(socket, SocketKind::Stream)?;
        let state = self.core.open_mut(id).expect("just added");
        state.connect_to = Some(Box::new(addr.clone()));
        state.connecting = true;
        self.core.mark_dirty(id);
        Ok(id)
    }

    /// Opens a UDP socket bound to `addr`. Call [`Driver::recv`] to receive datagrams.
    ///
    /// # Errors
    /// The OS error of socket or bind.
    pub fn bind_udp(&mut self, addr: SocketAddr) -> Result<SocketId, OpError> {
        self.bind_udp_with(addr, ReusePort::Off)
    }

    /// [`Driver::bind_udp`] sharing the address as `reuse` says: with
    /// [`ReusePort::Process`], this process's sockets on one address form an SO_REUSEPORT
    /// group (the kernel spreads datagrams over them by their source), and an address
    /// anyone else holds fails with EADDRINUSE (see `reuse_port.rs`).
    ///
    /// # Errors
    /// The OS error of creating or binding the socket.
    pub fn bind_udp_with(
        &mut self,
        addr: SocketAddr,
        reuse: ReusePort,
    ) -> Result<SocketId, OpError> {
        let open = |e| OpError::new(OpKind::Open, None, e);
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None).map_err(open)?;
        let group = reuse_port::bind_datagram(&socket, &addr.into(), reuse).map_err(open)?;
        let id = self.adopt(socket, SocketKind::Datagram)?;
        // Released with the socket's slot, after its descriptor is closed.
        self.core.open_mut(id).expect("just added").group = group;
        Ok(id)
    }

    /// Opens a Unix datagram socket, bound to `bind` (a path, or on Linux an abstract name)
    /// or unnamed (`None`: it can send, but its datagrams reach their receiver from an
    /// unnamed address that cannot be answered). Its datagrams arrive as
    /// [`Completion::ReceivedFromUnix`]; send with [`Driver::send_to_addr`]. A path is not
    /// removed on close.
    ///
    /// # Errors
    /// `InvalidInput` for a non-Unix address; the OS error of creating or binding it
    /// (`AddrInUse` for a path that exists).
    pub fn bind_unix_datagram(&mut self, bind: Option<&SockAddr>) -> Result<SocketId, OpError> {
        let open = |e| OpError::new(OpKind::Open, None, e);
        if bind.is_some_and(|a| !a.is_unix()) {
            return Err(open(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Unix datagram socket binds to a Unix address",
            )));
        }
        let socket = Socket::new(Domain::UNIX, Type::DGRAM, None).map_err(open)?;
        if let Some(addr) = bind {
            socket.bind(addr).map_err(open)?;
        }
        self.adopt(socket, SocketKind::Datagram)
    }

    /// Adds an existing socket (for example one inherited from a parent process).
    ///
    /// # Errors
    /// The OS error of making it non-blocking or registering it.
    pub fn adopt(&mut self, socket: Socket, kind: SocketKind) -> Result<SocketId, OpError> {
        socket
            .set_nonblocking(true)
            .map_err(|e| OpError::new(OpKind::Open, None, e))?;
        let id = self.core.insert(kind);
        if let Err(error) = with_backend!(&mut self.backend, b => b.attach(id, socket, kind)) {
            self.core.open_mut(id).expect("just added").closing = true;
            self.core.release(id.slot());
            return Err(OpError::new(OpKind::Open, Some(id), error));
        }
        Ok(id)
    }

    /// Keeps accepting connections on listener `id` (multishot under io_uring) until
    /// [`Driver::stop_accept`]. Returns `false` if `id` is not an open listener.
    pub fn accept(&mut self, id: SocketId) -> bool {
        self.update(
            id,
            |s| s.kind == SocketKind::Listener,
            |s| s.want_accept = true,
        )
    }

    /// Stops accepting on listener `id` (connections queue in the kernel's backlog).
    pub fn stop_accept(&mut self, id: SocketId) -> bool {
        self.update(
            id,
            |s| s.kind == SocketKind::Listener,
            |s| s.want_accept = false,
        )
    }

    /// Whether an accept of listener `id` is still with the kernel: under io_uring, one
    /// submitted (or being cancelled after [`Driver::stop_accept`]) whose last completion has
    /// not come back; a connection it accepts meanwhile is still delivered, so close the
    /// listener only once this is `false` to lose none. Always `false` under poll, which
    /// accepts only in a turn, on readiness.
    #[must_use]
    pub fn accept_in_flight(&self, id: SocketId) -> bool {
        self.core.open(id).is_some() && with_backend!(&self.backend, b => b.accept_in_flight(id))
    }

    /// Keeps receiving on stream or datagram socket `id` until [`Driver::stop_recv`], end of
    /// stream or an error. Returns `false` if `id` is not open, is a listener, or is a stream
    /// whose receiving already ended with [`Completion::Eof`] or [`Completion::RecvError`]
    /// (delivered, or about to be in this batch).
    pub fn recv(&mut self, id: SocketId) -> bool {
        self.update(
            id,
            |s| s.kind != SocketKind::Listener && !s.recv_ended,
            |s| s.want_recv = true,
        )
    }

    /// Stops receiving on `id`. Bytes the kernel already received may still be delivered in
    /// the next turn (they are never dropped).
    pub fn stop_recv(&mut self, id: SocketId) -> bool {
        self.update(
            id,
            |s| s.kind != SocketKind::Listener,
            |s| s.want_recv = false,
        )
    }

    /// Queues `bytes` on stream socket `id` (no copy). Sends of one turn go out together as
    /// one vectored send. Returns `false` (and drops the bytes) if `id` is not an open stream
    /// or sending already failed.
    pub fn send(&mut self, id: SocketId, bytes: Bytes) -> bool {
        self.update(
            id,
            |s| s.kind == SocketKind::Stream && !s.send_failed && s.shutdown == Shutdown::No,
            |s| s.send.push(bytes),
        )
    }

    /// Queues `len` bytes of `file` from `offset` on stream socket `id`, after everything
    /// queued before and before everything queued after: the kernel reads them from the
    /// file into the socket (Linux: sendfile(2) on the core's thread, under both backends;
    /// see `sys/sendfile.rs`), never through user memory. Progress is reported as
    /// [`Completion::FileSent`] (and is not part of `Sent`'s `queued` or
    /// [`Driver::send_queued`]: see [`Driver::send_file_queued`]).
    ///
    /// - Backpressure: a range is an offset and a length; nothing is read ahead while the
    ///   peer is slow.
    /// - The file is read when sent, not when queued: if it ends before the range does
    ///   (truncated meanwhile), sending fails with `UnexpectedEof` ([`Completion::SendError`],
    ///   the queue is dropped), so the peer sees the connection end early rather than
    ///   other bytes in place of the missing ones. Bytes changed in place are sent as found.
    /// - `file` stays open until the range is sent or dropped (closing the socket drops it).
    ///
    /// # Errors
    /// `Unsupported` off Linux; `InvalidInput` unless `id` is an open stream socket (not a
    /// child's pipe or terminal) that still sends. The caller then sends the bytes itself.
    pub fn send_file(
        &mut self,
        id: SocketId,
        file: std::sync::Arc<std::fs::File>,
        offset: u64,
        len: u64,
    ) -> Result<(), OpError> {
        let refuse = |kind: io::ErrorKind, why: &str| {
            Err(OpError::new(
                OpKind::Send,
                Some(id),
                io::Error::new(kind, why.to_string()),
            ))
        };
        if !cfg!(uring) {
            return refuse(io::ErrorKind::Unsupported, "sendfile needs Linux");
        }
        let range = crate::table::FileRange { file, offset, len };
        if self.update(
            id,
            |s| {
                s.kind == SocketKind::Stream
                    && s.file.is_none()
                    && !s.send_failed
                    && s.shutdown == Shutdown::No
            },
            |s| s.send.push_file(range),
        ) {
            Ok(())
        } else {
            refuse(
                io::ErrorKind::InvalidInput,
                "not an open stream socket that still sends",
            )
        }
    }

    /// Bytes of file ranges ([`Driver::send_file`]) queued on `id` and not yet sent (`None`
    /// if not open).
    #[must_use]
    pub fn send_file_queued(&self, id: SocketId) -> Option<u64> {
        self.core.open(id).map(|s| s.send.file_len())
    }

    /// From now on, bytes arriving on stream `from` go to stream `to` inside the kernel
    /// (Linux: splice(2) through a pipe of [`DriverConfig::splice_pipe_size`] bytes, under
    /// both backends) instead of being delivered as [`Completion::Received`]. Progress is
    /// reported as [`Completion::Spliced`]; `from`'s end of stream or receive error arrives
    /// as its `Eof` / `RecvError` once every byte before it reached `to`; a failure to
    /// write `to` arrives as `to`'s `SendError` and stops reading `from`.
    ///
    /// - Order: bytes already queued on `to` (with [`Driver::send`]) go first; spliced
    ///   bytes are written only while `to`'s send queue is empty. Under io_uring, bytes a
    ///   receive already in flight on `from` picked up still arrive as `Received`: send
    ///   those to `to` before the next turn to keep the stream in order.
    /// - [`Driver::stop_recv`] / [`Driver::recv`] on `from` pause and resume it; the pipe
    ///   still empties into `to`. Backpressure needs nothing else: while `to` is full the
    ///   pipe stays full and `from` is not read, so TCP's window stops the sender.
    /// - It lasts until `from`'s stream ends or either socket closes (bytes in the pipe are
    ///   then dropped, like a send queue on close). Shutting down or closing `to` while the
    ///   pipe holds bytes drops them too: wait for `from`'s `Eof` first.
    ///
    /// # Errors
    /// `Unsupported` off Linux; `InvalidInput` unless both are distinct open stream
    /// sockets, `from` still receives and is not spliced already, and `to` still sends and
    /// has no other splice into it; the OS error of creating the pipe (EMFILE, ...).
    pub fn splice(&mut self, from: SocketId, to: SocketId) -> Result<(), OpError> {
        let refuse = |why: &str| {
            Err(OpError::new(
                OpKind::Splice,
                Some(from),
                io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
            ))
        };
        if from == to {
            return refuse("a socket cannot be spliced into itself");
        }
        let Some(source) = self.core.open(from) else {
            return refuse("the source is not open");
        };
        if source.kind != SocketKind::Stream
            || source.recv_ended
            || source.splicing()
            || source.file.is_some()
        {
            return refuse("the source is not a receiving stream, or is spliced already");
        }
        let Some(dest) = self.core.open(to) else {
            return refuse("the destination is not open");
        };
        if dest.kind != SocketKind::Stream
            || dest.file.is_some()
            || dest.send_failed
            || dest.shutdown != Shutdown::No
            || dest.splice_from.is_some()
        {
            return refuse("the destination does not send, or has a splice into it already");
        }
        self.splice_pipe(from, to)
    }

    #[cfg(uring)]
    fn splice_pipe(&mut self, from: SocketId, to: SocketId) -> Result<(), OpError> {
        let size = self.core.config.splice_pipe_size;
        let splice = sys::splice::Splice::new(to, size)
            .map_err(|e| OpError::new(OpKind::Splice, Some(from), e))?;
        self.core.open_mut(from).expect("checked open").splice = Some(Box::new(splice));
        self.core.open_mut(to).expect("checked open").splice_from = Some(from);
        self.core.mark_dirty(from);
        self.core.mark_dirty(to);
        Ok(())
    }

    #[cfg(not(uring))]
    fn splice_pipe(&mut self, from: SocketId, _to: SocketId) -> Result<(), OpError> {
        Err(OpError::new(
            OpKind::Splice,
            Some(from),
            io::Error::new(io::ErrorKind::Unsupported, "splice needs Linux"),
        ))
    }

    /// Whether a splice into stream `id` ([`Driver::splice`]) holds bytes (or the source's
    /// end) in its pipe, waiting for `id` to take them: a destination whose peer does not
    /// read shows it, although nothing is queued with [`Driver::send`].
    #[must_use]
    pub fn splice_backlog(&self, id: SocketId) -> bool {
        self.core.open(id).is_some_and(|s| s.splice_backlog)
    }

    /// Queues a datagram to `to` on UDP socket `id`.
    pub fn send_to(&mut self, id: SocketId, bytes: Bytes, to: SocketAddr) -> bool {
        self.queue_datagram(id, bytes, Dest::Ip(to))
    }

    /// Queues a datagram to `to` on datagram socket `id`: an IP address for UDP, a path or
    /// (Linux) abstract name for a Unix datagram socket. A destination of the wrong family
    /// fails when sent ([`Completion::SendError`]).
    pub fn send_to_addr(&mut self, id: SocketId, bytes: Bytes, to: SockAddr) -> bool {
        self.queue_datagram(id, bytes, Dest::from(to))
    }

    /// Queues a datagram on datagram socket `id` (`false` if it is not one, or not open).
    fn queue_datagram(&mut self, id: SocketId, bytes: Bytes, to: Dest) -> bool {
        self.update(
            id,
            |s| s.kind == SocketKind::Datagram,
            |s| s.datagrams.push_back((bytes, to)),
        )
    }

    /// Bytes queued on `id` and not yet taken by the kernel (`None` if not open).
    #[must_use]
    pub fn send_queued(&self, id: SocketId) -> Option<usize> {
        self.core
            .open(id)
            .map(|s| s.send.len() + s.datagrams.iter().map(|d| d.0.len()).sum::<usize>())
    }

    /// Shuts down the write side of stream socket `id` once every queued byte is sent (a
    /// [`Completion::ShutdownDone`] follows); receiving continues. Refused (`false`) for a
    /// child's pipe or terminal: close a pipe instead.
    pub fn shutdown_write(&mut self, id: SocketId) -> bool {
        self.update(
            id,
            |s| s.kind == SocketKind::Stream && s.shutdown == Shutdown::No && s.file.is_none(),
            |s| s.shutdown = Shutdown::Wanted,
        )
    }

    /// Closes `id` now: operations in flight are cancelled, unsent bytes are dropped, and no
    /// completion for `id` is delivered any more. The slot is reused only after the kernel
    /// finished with every operation of `id`. To close after the send queue drains, wait
    /// for a [`Completion::Sent`] with `queued == 0` first.
    pub fn close(&mut self, id: SocketId) -> bool {
        self.update(id, |_| true, |s| s.closing = true)
    }

    /// Closes `id` with a reset (SO_LINGER 0): the peer sees ECONNRESET, not a clean end.
    pub fn abort(&mut self, id: SocketId) -> bool {
        if self.core.open(id).is_none() {
            return false;
        }
        // A failure only loses the RST (the close still happens), so it is not reported.
        let _ = self.with_socket(id, |s| s.set_linger(Some(Duration::ZERO)));
        self.close(id)
    }

    /// The local address of `id`.
    ///
    /// # Errors
    /// `NotFound` if `id` is not open, else the OS error.
    pub fn local_addr(&self, id: SocketId) -> Result<SockAddr, OpError> {
        self.with_socket(id, |s| s.local_addr())
    }

    /// The peer address of `id`.
    ///
    /// # Errors
    /// `NotFound` if `id` is not open, else the OS error (ENOTCONN, ...).
    pub fn peer_addr(&self, id: SocketId) -> Result<SockAddr, OpError> {
        self.with_socket(id, |s| s.peer_addr())
    }

    /// Runs `f` on the OS socket of `id`, for socket options this API does not cover.
    ///
    /// # Errors
    /// `NotFound` if `id` is not open, else what `f` returns.
    pub fn with_socket<R>(
        &self,
        id: SocketId,
        f: impl FnOnce(SockRef<'_>) -> io::Result<R>,
    ) -> Result<R, OpError> {
        let not_open = || io::Error::new(io::ErrorKind::NotFound, "socket is not open");
        if self.core.open(id).is_none() {
            return Err(OpError::new(OpKind::Open, Some(id), not_open()));
        }
        with_backend!(&self.backend, b => b.with_socket(id, f))
            .unwrap_or_else(|| Err(not_open()))
            .map_err(|e| OpError::new(OpKind::Open, Some(id), e))
    }

    /// Changes a multicast setting of UDP socket `id`: joins or leaves a group, sets the
    /// TTL / hop limit, loopback or sending interface of what it sends (see [`Multicast`]).
    /// Takes effect at once on either backend.
    ///
    /// # Errors
    /// `id` not open; a [`MulticastError`](crate::multicast::MulticastError) (as the
    /// `io::Error`'s source): not a multicast group, a group of the other family, a TTL
    /// above 255, an unknown interface, or the kernel's refusal naming the option.
    pub fn multicast(&mut self, id: SocketId, setting: &Multicast) -> Result<(), OpError> {
        self.with_socket(id, |socket| {
            setting
                .apply(socket)
                .map_err(crate::multicast::MulticastError::into_io)
        })
    }

    /// Starts a child process (Linux): see [`ProcessCommand`] for what runs and
    /// [`Spawned`] for what comes back — an exit watcher ([`SocketKind::Child`], already
    /// waiting: a [`Completion::Exited`] follows the exit, the child then reaped) and its
    /// pipes or terminal as non-blocking streams in this driver's table (call
    /// [`Driver::recv`] on stdout and stderr to read them).
    ///
    /// The exit is watched through a pidfd (Linux 5.3), readable once the child exited
    /// (`POLL_ADD` under io_uring, epoll under poll); without pidfd, a thread per child
    /// waits for the exit (without reaping it) and closes a pipe the driver watches
    /// instead. No zombie is left: the driver reaps the child when the exit is seen, and a
    /// watcher closed (or a driver dropped) before that kills the child (SIGKILL) and a
    /// reaper thread collects it.
    ///
    /// # Errors
    /// `Unsupported` off Linux; the OS error of creating pipes or the terminal, of the fork
    /// or exec (`NotFound` for a missing program), or of watching the child. A child that
    /// started is killed and reaped on an error.
    pub fn spawn(&mut self, command: &ProcessCommand) -> Result<Spawned, OpError> {
        self.spawn_child(command)
    }

    #[cfg(processes)]
    fn spawn_child(&mut self, command: &ProcessCommand) -> Result<Spawned, OpError> {
        let spawn_error = |e| OpError::new(OpKind::Spawn, None, e);
        let fds = sys::process::spawn(command, !self.core.config.simulate_no_pidfd)
            .map_err(spawn_error)?;
        let sys::process::SpawnedFds {
            pid,
            exit,
            pidfd,
            stdin,
            stdout,
            stderr,
            pty,
        } = fds;
        // The watcher first: from here on, releasing its slot kills and reaps the child.
        let guard = ChildGuard {
            pid,
            pidfd,
            reaped: false,
        };
        let child = self.adopt_fd(exit, SocketKind::Child, None, Some(guard))?;
        if let Some(state) = self.core.open_mut(child) {
            state.want_recv = true;
        }
        self.core.mark_dirty(child);
        let mut adopted = Vec::with_capacity(3);
        let mut streams = [None; 3];
        let ends = [
            (stdin.or(pty), FileKind::Pipe),
            (stdout, FileKind::Pipe),
            (stderr, FileKind::Pipe),
        ];
        for (index, (fd, mut kind)) in ends.into_iter().enumerate() {
            let Some(fd) = fd else { continue };
            if index == 0 && command.pty.is_some() {
                kind = FileKind::Pty;
            }
            match self.adopt_fd(fd, SocketKind::Stream, Some(kind), None) {
                Ok(id) => {
                    adopted.push(id);
                    streams[index] = Some(id);
                }
                Err(error) => {
                    for id in adopted {
                        self.close(id);
                    }
                    self.close(child);
                    return Err(error);
                }
            }
        }
        let is_pty = command.pty.is_some();
        Ok(Spawned {
            child,
            pid,
            stdin: streams[0],
            stdout: if is_pty { streams[0] } else { streams[1] },
            stderr: streams[2],
            pty: is_pty,
        })
    }

    #[cfg(not(processes))]
    fn spawn_child(&mut self, _command: &ProcessCommand) -> Result<Spawned, OpError> {
        Err(OpError::new(
            OpKind::Spawn,
            None,
            io::Error::new(io::ErrorKind::Unsupported, "child processes need Linux"),
        ))
    }

    /// Adds descriptor `fd` (a pipe end, terminal or exit descriptor) to the table.
    #[cfg(processes)]
    fn adopt_fd(
        &mut self,
        fd: std::os::fd::OwnedFd,
        kind: SocketKind,
        file: Option<FileKind>,
        child: Option<ChildGuard>,
    ) -> Result<SocketId, OpError> {
        let id = self.core.insert(kind);
        let state = self.core.open_mut(id).expect("just added");
        state.file = file;
        state.child = child;
        let attached = match &mut self.backend {
            #[cfg(uring)]
            Backend::Uring(b) => b.attach_file(id, fd, kind),
            Backend::Poll(b) => b.attach_file(id, fd, kind, file),
        };
        if let Err(error) = attached {
            self.core.open_mut(id).expect("just added").closing = true;
            self.core.release(id.slot());
            return Err(OpError::new(OpKind::Open, Some(id), error));
        }
        Ok(id)
    }

    /// The process id of the child watched by `child`, until it was reaped.
    #[must_use]
    pub fn child_pid(&self, child: SocketId) -> Option<u32> {
        let guard = self.core.open(child)?.child.as_ref()?;
        (!guard.reaped).then_some(guard.pid)
    }

    /// Sends signal `signal` (`libc::SIGTERM`, ...) to the child watched by `child`: through
    /// its pidfd, or by pid while it is not reaped (its pid cannot be reused before), so a
    /// signal never reaches another process.
    ///
    /// # Errors
    /// `NotFound` if `child` is not an open watcher; ESRCH once the child exited (and was
    /// reaped); EINVAL for an invalid signal; `Unsupported` off Linux.
    pub fn signal(&mut self, child: SocketId, signal: i32) -> Result<(), OpError> {
        let error = |e| Err(OpError::new(OpKind::Signal, Some(child), e));
        let Some(state) = self.core.open(child) else {
            return error(io::Error::new(
                io::ErrorKind::NotFound,
                "no such child watcher",
            ));
        };
        let Some(guard) = state.child.as_ref() else {
            return error(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a child watcher",
            ));
        };
        if guard.reaped {
            return error(exited());
        }
        #[cfg(processes)]
        {
            let Some(fd) = self.raw_fd(child) else {
                return error(exited());
            };
            sys::process::signal(fd, guard.pidfd, guard.pid, signal)
                .map_err(|e| OpError::new(OpKind::Signal, Some(child), e))
        }
        #[cfg(not(processes))]
        {
            let _ = signal;
            error(io::Error::new(
                io::ErrorKind::Unsupported,
                "child processes need Linux",
            ))
        }
    }

    /// Sets the window size of the terminal whose master side is stream `pty` (the child's
    /// foreground process group gets SIGWINCH).
    ///
    /// # Errors
    /// `InvalidInput` unless `pty` is an open terminal stream of [`Driver::spawn`]; the OS
    /// error of `ioctl(TIOCSWINSZ)`; `Unsupported` off Linux.
    pub fn set_window_size(&mut self, pty: SocketId, size: WindowSize) -> Result<(), OpError> {
        let error = |e| Err(OpError::new(OpKind::Signal, Some(pty), e));
        if self.core.open(pty).and_then(|s| s.file) != Some(FileKind::Pty) {
            return error(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a terminal",
            ));
        }
        #[cfg(processes)]
        {
            let Some(fd) = self.raw_fd(pty) else {
                return error(io::Error::new(io::ErrorKind::NotFound, "terminal closed"));
            };
            sys::process::set_window_size(fd, size)
                .map_err(|e| OpError::new(OpKind::Signal, Some(pty), e))
        }
        #[cfg(not(processes))]
        {
            let _ = size;
            error(io::Error::new(
                io::ErrorKind::Unsupported,
                "terminals need Linux",
            ))
        }
    }

    #[cfg(processes)]
    fn raw_fd(&self, id: SocketId) -> Option<std::os::fd::RawFd> {
        with_backend!(&self.backend, b => b.raw_fd(id))
    }

    /// Submits a file operation (open, stat, read, close: [`FileRequest`]) to run in the
    /// ring; a [`Completion::File`] with the returned id brings its result. Only where
    /// [`Capabilities::file_ops`] says so (io_uring): elsewhere use a thread.
    ///
    /// # Errors
    /// `Unsupported` when the backend has no file operations (the request is handed back
    /// dropped: a `Close` request's file is closed here).
    ///
    /// # Cancellation
    /// [`Driver::forget_file`]: the driver keeps the request's memory (buffer, path, file)
    /// until the kernel is done with it, then drops it.
    ///
    /// [`FileRequest`]: crate::FileRequest
    /// [`Completion::File`]: crate::Completion::File
    /// [`Capabilities::file_ops`]: crate::Capabilities::file_ops
    pub fn file(&mut self, request: crate::FileRequest) -> Result<crate::FileOpId, OpError> {
        match &mut self.backend {
            #[cfg(uring)]
            Backend::Uring(uring) if uring.capabilities().file_ops => {
                Ok(uring.file(&mut self.core, request))
            }
            _ => {
                drop(request);
                Err(OpError::new(
                    OpKind::File,
                    None,
                    io::Error::new(
                        io::ErrorKind::Unsupported,
                        "file operations need the io_uring backend",
                    ),
                ))
            }
        }
    }

    /// The caller will not wait for file operation `op` ([`Driver::file`]): its completion
    /// is not delivered, and its memory is dropped when the kernel is done with it. `false`
    /// if it is not in flight.
    pub fn forget_file(&mut self, op: crate::FileOpId) -> bool {
        match &mut self.backend {
            #[cfg(uring)]
            Backend::Uring(uring) => uring.forget_file(op),
            _ => {
                let _ = op;
                false
            }
        }
    }

    /// File operations in flight ([`Driver::file`]).
    #[must_use]
    pub fn file_ops_in_flight(&self) -> usize {
        match &self.backend {
            #[cfg(uring)]
            Backend::Uring(uring) => uring.file_ops_in_flight(),
            _ => 0,
        }
    }

    /// Arms a one-shot timer; a [`Completion::Timer`] follows at or after `deadline`.
    pub fn timer(&mut self, deadline: Instant) -> TimerId {
        self.core.insert_timer(deadline)
    }

    /// Cancels a timer; `false` if it already fired or was cancelled. A cancelled timer is
    /// never delivered.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.core.cancel_timer(id)
    }

    /// Submits everything asked for since the last turn, waits until a completion is ready,
    /// `timeout` passes (`None`: no limit) or a [`Waker`] fires, and appends completions to
    /// `out`. Under io_uring, submitting and waiting is one `io_uring_enter`.
    ///
    /// # Errors
    /// A failure of the wait itself (not of an operation: those arrive as completions).
    pub fn turn(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<Completion>,
    ) -> Result<(), OpError> {
        self.core.stats.turns += 1;
        let before = out.len();
        let result = with_backend!(&mut self.backend, b => b.turn(&mut self.core, timeout, out));
        self.core.stats.delivered += (out.len() - before) as u64;
        result.map_err(|e| OpError::new(OpKind::Wait, None, e))
    }

    /// Applies `change` to socket `id` if it is open and `allowed`, and marks it dirty.
    fn update(
        &mut self,
        id: SocketId,
        allowed: impl FnOnce(&crate::table::SocketState) -> bool,
        change: impl FnOnce(&mut crate::table::SocketState),
    ) -> bool {
        self.core.update_open(id, allowed, change)
    }
}

/// The error of signalling a child that already exited (ESRCH, as the kernel says it).
fn exited() -> io::Error {
    #[cfg(unix)]
    return io::Error::from_raw_os_error(libc::ESRCH);
    #[cfg(not(unix))]
    io::Error::new(io::ErrorKind::NotFound, "the process has exited")
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The kernel may still use memory of in-flight operations: cancel and reap them
        // before the socket table (send queues) and buffers go away.
        #[cfg(uring)]
        if let Backend::Uring(uring) = &mut self.backend {
            uring.drain(&mut self.core);
        }
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("backend", &self.backend())
            .field("live_sockets", &self.core.live_sockets())
            .field("stats", &self.core.stats)
            .finish()
    }
}
