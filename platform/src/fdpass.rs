//! Passing descriptors between processes or reactors (SCM_RIGHTS, Unix): a listening socket
//! sent over a Unix stream socket to another reactor, which then accepts on it
//! ([`Driver::adopt`](crate::Driver::adopt) with
//! [`SocketKind::Listener`](crate::SocketKind::Listener)), or any socket handed to a
//! worker process.
//!
//! Owns: [`send_fds`] and [`recv_fds`] on a Unix stream socket the caller holds (a
//! `std::os::unix::net::UnixStream`, or any socket by [`SockRef`]).
//! Contract: a send passes all its descriptors, with at least one byte (a stream carries
//! descriptors only with data), or fails; the bytes read by a receive come with the
//! descriptors sent with them, each a new close-on-exec descriptor owned by the caller.
//! The calls are as blocking as the socket is (a non-blocking one answers `WouldBlock`).
//! Does not: pass descriptors on the driver's own stream connections (it owns their reads
//! and writes): use a socket outside the driver, such as one end of
//! `UnixStream::pair()` given to another thread or process.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use socket2::SockRef;

/// Most descriptors one call passes (Linux's `SCM_MAX_FD`).
pub const MAX_FDS: usize = crate::sys::fdpass::MAX_FDS;

/// Sends `data` (at least one byte) with `fds` over Unix stream socket `socket`; the number
/// of bytes sent (the descriptors go with the first of them).
///
/// # Errors
/// `InvalidInput` for empty `data` or more than [`MAX_FDS`] descriptors; the OS error
/// (`EPIPE`, `WouldBlock`, ...).
pub fn send_fds(socket: SockRef<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    if data.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors go with at least one byte of data",
        ));
    }
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} descriptors: at most {MAX_FDS} per call", fds.len()),
        ));
    }
    crate::sys::fdpass::send(socket.as_raw_fd(), data, fds)
}

/// Receives into `buf` from Unix stream socket `socket`, with the descriptors (at most
/// `max_fds`) that came with those bytes. `(0, [])` is the end of the stream.
///
/// # Errors
/// `InvalidData` when more descriptors came than `max_fds` (those that did arrive are
/// closed, the bytes are lost); the OS error.
pub fn recv_fds(
    socket: SockRef<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    crate::sys::fdpass::recv(socket.as_raw_fd(), buf, max_fds)
}
