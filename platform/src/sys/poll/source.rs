//! One OS socket of the poll backend, as the mio type that matches its kind and family.
//!
//! Owns: the conversion of a caller's `socket2::Socket` into a mio source (TCP listener or
//! stream, UDP socket, and on Unix the AF_UNIX listener or stream), its registration, and
//! the one non-blocking system call behind each backend step (read, vectored send, accept,
//! datagram receive and send, shutdown, connect).
//! Contract: every call is non-blocking and returns `WouldBlock` when the socket is not
//! ready; `Interrupted` is retried here, so callers never see it. On Windows all I/O goes
//! through mio's own methods, which re-arm its emulated readiness after `WouldBlock`.
//! Does not: track readiness, count statistics or produce completions (see `sockets.rs`).
//!
//! Safety model: the kernel touches caller memory only inside a synchronous system call (the
//! read buffer, the send slices), never after it returns. One `unsafe` block views a pool
//! buffer as `[MaybeUninit<u8>]` for socket2's recvmsg, which reports truncation.
#![allow(unsafe_code)] // One layout-identical slice cast for recvmsg; see its SAFETY note.

use std::io::{self, IoSlice, Read};
use std::mem::MaybeUninit;
use std::net::Shutdown;

use mio::{Interest, Registry, Token};
use socket2::{MaybeUninitSlice, SockAddr, SockRef, Socket};

use crate::table::{Dest, SocketKind};

/// `send` flags: never raise SIGPIPE on a closed connection (the error is reported instead).
/// Apple systems have no MSG_NOSIGNAL; sockets there get SO_NOSIGPIPE instead.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris"
))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(all(
    unix,
    not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos",
        target_os = "solaris"
    ))
))]
const SEND_FLAGS: libc::c_int = 0;

/// A socket registered with (or about to be registered with) the poll instance.
#[derive(Debug)]
pub(super) enum Source {
    /// A listening TCP socket.
    TcpListener(mio::net::TcpListener),
    /// A TCP stream.
    TcpStream(mio::net::TcpStream),
    /// A UDP socket.
    Udp(mio::net::UdpSocket),
    /// A listening AF_UNIX stream socket.
    #[cfg(unix)]
    UnixListener(mio::net::UnixListener),
    /// An AF_UNIX stream.
    #[cfg(unix)]
    UnixStream(mio::net::UnixStream),
    /// An AF_UNIX datagram socket.
    #[cfg(unix)]
    UnixDatagram(mio::net::UnixDatagram),
    /// A pipe end or a terminal's master side, read and written like a stream.
    #[cfg(processes)]
    File {
        file: std::fs::File,
        /// A terminal: EIO on read is its end of stream (the child side is gone).
        pty: bool,
    },
    /// A child process's exit descriptor (readable once it exited).
    #[cfg(processes)]
    Child(std::fs::File),
}

impl Source {
    /// Wraps `socket` (already non-blocking) as the mio type for `kind` and its family.
    ///
    /// # Errors
    /// `Unsupported` on Windows for any AF_UNIX socket (mio has none there); the OS error
    /// when the family cannot be read.
    pub(super) fn new(socket: Socket, kind: SocketKind) -> io::Result<Self> {
        if is_unix(&socket)? {
            return Self::unix(socket, kind);
        }
        Ok(match kind {
            SocketKind::Listener => {
                Source::TcpListener(mio::net::TcpListener::from_std(socket.into()))
            }
            SocketKind::Stream => Source::TcpStream(mio::net::TcpStream::from_std(socket.into())),
            SocketKind::Datagram => Source::Udp(mio::net::UdpSocket::from_std(socket.into())),
            SocketKind::Child => return Err(wrong_kind()),
        })
    }

    #[cfg(unix)]
    fn unix(socket: Socket, kind: SocketKind) -> io::Result<Self> {
        match kind {
            SocketKind::Listener => Ok(Source::UnixListener(mio::net::UnixListener::from_std(
                socket.into(),
            ))),
            SocketKind::Stream => Ok(Source::UnixStream(mio::net::UnixStream::from_std(
                socket.into(),
            ))),
            SocketKind::Datagram => Ok(Source::UnixDatagram(mio::net::UnixDatagram::from_std(
                socket.into(),
            ))),
            SocketKind::Child => Err(wrong_kind()),
        }
    }

    #[cfg(not(unix))]
    fn unix(_socket: Socket, _kind: SocketKind) -> io::Result<Self> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unix sockets are not supported by the poll backend on this platform",
        ))
    }

    /// Wraps a pipe end or terminal (`file`, for a stream) or a child's exit descriptor
    /// (kind `Child`), already non-blocking.
    ///
    /// # Errors
    /// `Unsupported` for listener and datagram kinds.
    #[cfg(processes)]
    pub(super) fn file(
        fd: std::os::fd::OwnedFd,
        kind: SocketKind,
        file: Option<crate::process::FileKind>,
    ) -> io::Result<Self> {
        let handle = std::fs::File::from(fd);
        match (kind, file) {
            (SocketKind::Stream, Some(file)) => Ok(Source::File {
                file: handle,
                pty: file == crate::process::FileKind::Pty,
            }),
            (SocketKind::Child, _) => Ok(Source::Child(handle)),
            _ => Err(wrong_kind()),
        }
    }

    /// The readiness to watch: listeners and exit descriptors only ever become readable.
    pub(super) fn interest(&self) -> Interest {
        match self {
            Source::TcpListener(_) => Interest::READABLE,
            #[cfg(unix)]
            Source::UnixListener(_) => Interest::READABLE,
            #[cfg(processes)]
            Source::Child(_) => Interest::READABLE,
            _ => Interest::READABLE | Interest::WRITABLE,
        }
    }

    /// Registers with `registry` under `token` (edge-triggered, as mio always is).
    pub(super) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let interest = self.interest();
        #[cfg(processes)]
        if let Some(fd) = self.raw_file() {
            return registry.register(&mut mio::unix::SourceFd(&fd), token, interest);
        }
        registry.register(self.event_source(), token, interest)
    }

    /// Removes the registration.
    pub(super) fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        #[cfg(processes)]
        if let Some(fd) = self.raw_file() {
            return registry.deregister(&mut mio::unix::SourceFd(&fd));
        }
        registry.deregister(self.event_source())
    }

    /// The descriptor of a pipe, terminal or exit descriptor.
    #[cfg(processes)]
    pub(super) fn raw_file(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match self {
            Source::File { file, .. } | Source::Child(file) => Some(file.as_raw_fd()),
            _ => None,
        }
    }

    fn event_source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Source::TcpListener(s) => s,
            Source::TcpStream(s) => s,
            Source::Udp(s) => s,
            #[cfg(unix)]
            Source::UnixListener(s) => s,
            #[cfg(unix)]
            Source::UnixStream(s) => s,
            #[cfg(unix)]
            Source::UnixDatagram(s) => s,
            // Registered through their descriptor (see `register`).
            #[cfg(processes)]
            Source::File { file, .. } | Source::Child(file) => {
                unreachable!("descriptor {file:?} has no mio source")
            }
        }
    }

    /// The OS socket, for options, addresses, `connect` and `take_error`.
    pub(super) fn sock_ref(&self) -> SockRef<'_> {
        match self {
            Source::TcpListener(s) => SockRef::from(s),
            Source::TcpStream(s) => SockRef::from(s),
            Source::Udp(s) => SockRef::from(s),
            #[cfg(unix)]
            Source::UnixListener(s) => SockRef::from(s),
            #[cfg(unix)]
            Source::UnixStream(s) => SockRef::from(s),
            #[cfg(unix)]
            Source::UnixDatagram(s) => SockRef::from(s),
            // Socket options and addresses fail on them (ENOTSOCK), as they should.
            #[cfg(processes)]
            Source::File { file, .. } | Source::Child(file) => SockRef::from(file),
        }
    }

    /// Starts connecting to `addr`. `Ok` means connected already; see
    /// [`connect_in_progress`] for the error that means "started".
    pub(super) fn connect(&self, addr: &SockAddr) -> io::Result<()> {
        self.sock_ref().connect(addr)
    }

    /// Accepts one connection: the new stream, non-blocking, with TCP_NODELAY set for TCP.
    pub(super) fn accept(&self) -> io::Result<Source> {
        let accepted = retry(|| match self {
            Source::TcpListener(l) => l.accept().map(|(s, _)| Source::TcpStream(s)),
            #[cfg(unix)]
            Source::UnixListener(l) => l.accept().map(|(s, _)| Source::UnixStream(s)),
            _ => Err(wrong_kind()),
        })?;
        if let Source::TcpStream(stream) = &accepted {
            // Best effort: it fails only on a connection the peer already reset, and the
            // next read or write reports that.
            let _ = stream.set_nodelay(true);
        }
        #[cfg(target_vendor = "apple")]
        {
            // No MSG_NOSIGNAL on Apple systems; best effort as above.
            let _ = accepted.sock_ref().set_nosigpipe(true);
        }
        Ok(accepted)
    }

    /// Reads stream bytes into `buf` (0: end of stream).
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        retry(|| match self {
            Source::TcpStream(s) => (&*s).read(buf),
            #[cfg(unix)]
            Source::UnixStream(s) => (&*s).read(buf),
            #[cfg(processes)]
            Source::File { file, pty } => match (&*file).read(buf) {
                // The terminal's child side is closed: its end of stream.
                Err(e) if *pty && e.raw_os_error() == Some(libc::EIO) => Ok(0),
                result => result,
            },
            _ => Err(wrong_kind()),
        })
    }

    /// Sends `bufs` as one vectored send; returns the bytes the kernel took.
    pub(super) fn send(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        retry(|| match self {
            // sendmsg for its flags, inside `try_io` so mio still sees a `WouldBlock`.
            #[cfg(unix)]
            Source::TcpStream(s) => {
                s.try_io(|| SockRef::from(s).send_vectored_with_flags(bufs, SEND_FLAGS))
            }
            #[cfg(unix)]
            Source::UnixStream(s) => {
                s.try_io(|| SockRef::from(s).send_vectored_with_flags(bufs, SEND_FLAGS))
            }
            #[cfg(not(unix))]
            Source::TcpStream(s) => io::Write::write_vectored(&mut &*s, bufs),
            #[cfg(processes)]
            Source::File { file, .. } => io::Write::write_vectored(&mut &*file, bufs),
            _ => Err(wrong_kind()),
        })
    }

    /// Shuts down the write side of a stream.
    pub(super) fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Source::TcpStream(s) => s.shutdown(Shutdown::Write),
            #[cfg(unix)]
            Source::UnixStream(s) => s.shutdown(Shutdown::Write),
            _ => Err(wrong_kind()),
        }
    }

    /// Receives one datagram into `buf`, with its sender (an IP address for UDP; a Unix
    /// address, possibly unnamed, for a Unix datagram socket).
    pub(super) fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SockAddr, bool)> {
        // recvmsg (WSARecvFrom on Windows) rather than recvfrom: it reports truncation
        // (MSG_TRUNC / WSAEMSGSIZE) exactly. Inside `try_io` so mio still sees a WouldBlock.
        // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and the slice is only
        // handed to recvmsg, which writes initialised bytes and never de-initialises any.
        let uninit = unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) };
        let mut bufs = [MaybeUninitSlice::new(uninit)];
        let (len, flags, from) = match self {
            Source::Udp(s) => {
                retry(|| s.try_io(|| SockRef::from(s).recv_from_vectored(&mut bufs)))?
            }
            #[cfg(unix)]
            Source::UnixDatagram(s) => {
                retry(|| s.try_io(|| SockRef::from(s).recv_from_vectored(&mut bufs)))?
            }
            _ => return Err(wrong_kind()),
        };
        Ok((len, from, flags.is_truncated()))
    }

    /// The descriptor of a UDP socket (`None` for other kinds).
    #[cfg(target_os = "linux")]
    pub(super) fn udp_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match self {
            Source::Udp(s) => Some(s.as_raw_fd()),
            _ => None,
        }
    }

    /// Whether this is a UDP socket.
    #[cfg(target_os = "linux")]
    pub(super) fn is_udp(&self) -> bool {
        matches!(self, Source::Udp(_))
    }

    /// Sends `run` (a GSO run to one destination: see `sys/udp_gso.rs`) with one `sendmsg`,
    /// as that many datagrams of the first one's size (the last possibly shorter).
    #[cfg(target_os = "linux")]
    pub(super) fn send_segments<'a>(
        &self,
        mut run: impl Iterator<Item = &'a (bytes::Bytes, Dest)>,
    ) -> io::Result<usize> {
        use crate::sys::udp_gso::{MAX_SEGMENTS, SegmentControl};
        let Source::Udp(s) = self else {
            return Err(wrong_kind());
        };
        let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
        let Some((first, to)) = run.next() else {
            return Ok(0);
        };
        slices[0] = IoSlice::new(first);
        let mut count = 1;
        for ((bytes, _), slice) in run.zip(slices[1..].iter_mut()) {
            *slice = IoSlice::new(bytes);
            count += 1;
        }
        // A segment is at most udp_gso's MAX_SEGMENT_SIZE bytes: it fits a u16.
        let control = SegmentControl::new(slices[0].len() as u16);
        let to = to.sock_addr();
        let msg = socket2::MsgHdr::new()
            .with_addr(&to)
            .with_buffers(&slices[..count])
            .with_control(control.as_bytes());
        retry(|| s.try_io(|| SockRef::from(s).sendmsg(&msg, SEND_FLAGS)))
    }

    /// Sends one datagram to `to`.
    pub(super) fn send_to(&self, buf: &[u8], to: &Dest) -> io::Result<usize> {
        match self {
            Source::Udp(s) => {
                let Dest::Ip(to) = *to else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a UDP datagram to a non-IP address",
                    ));
                };
                retry(|| s.send_to(buf, to))
            }
            #[cfg(unix)]
            Source::UnixDatagram(s) => {
                let to = to.sock_addr();
                retry(|| s.try_io(|| SockRef::from(s).send_to(buf, &to)))
            }
            _ => Err(wrong_kind()),
        }
    }
}

/// Whether a non-blocking `connect` error means the connect started and finishes later
/// (EINPROGRESS on Unix, WSAEWOULDBLOCK on Windows; EINTR: it continues asynchronously).
pub(super) fn connect_in_progress(error: &io::Error) -> bool {
    #[cfg(unix)]
    if error.raw_os_error() == Some(libc::EINPROGRESS) {
        return true;
    }
    #[cfg(windows)]
    if error.kind() == io::ErrorKind::WouldBlock {
        return true;
    }
    error.kind() == io::ErrorKind::Interrupted
}

/// Runs `op` again while it fails with `Interrupted` (a signal arrived mid-call).
fn retry<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

/// An operation that does not apply to this kind of socket (the caller checks kinds first).
fn wrong_kind() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "operation does not apply to this kind of socket",
    )
}

/// Whether `socket` is AF_UNIX (unbound sockets report their family too).
#[cfg(unix)]
fn is_unix(socket: &Socket) -> io::Result<bool> {
    Ok(socket.local_addr()?.is_unix())
}

/// Whether `socket` is AF_UNIX. Windows fails `getsockname` on unbound sockets (which
/// `Driver::connect` creates), so those are taken for TCP or UDP.
#[cfg(not(unix))]
fn is_unix(socket: &Socket) -> io::Result<bool> {
    Ok(socket.local_addr().is_ok_and(|addr| addr.is_unix()))
}
