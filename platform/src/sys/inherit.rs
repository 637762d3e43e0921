//! The system calls behind [`inherit`](crate::inherit): duplicating an inherited
//! descriptor and asking whether a socket listens.
//!
//! Owns: `fcntl` on a descriptor number this process did not open, and SO_ACCEPTCONN.
//! Contract: the inherited descriptor is only marked close-on-exec, never closed; the
//! duplicate is a new descriptor owned by the returned [`Socket`]. Off Unix each call
//! answers `Unsupported`.
//!
//! Safety model: `fcntl` on any number is memory-safe (a closed one gives EBADF); the one
//! ownership claim is over the fresh descriptor `F_DUPFD_CLOEXEC` returned, which nothing
//! else in the process knows of.
#![allow(unsafe_code)] // fcntl on a descriptor number, and owning the duplicate it returns.

use std::io;

use socket2::Socket;

/// Marks `fd` close-on-exec and returns a duplicate of it (close-on-exec too), as a socket.
#[cfg(unix)]
pub(crate) fn duplicate(fd: i32) -> io::Result<Socket> {
    use std::os::fd::FromRawFd;

    // SAFETY: fcntl reads and sets descriptor flags only; on a number that is not open it
    // fails with EBADF. No memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; the result is a new descriptor (or -1).
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` was just returned by F_DUPFD_CLOEXEC: an open descriptor that nothing
    // else in this process holds, so the socket may own (and close) it.
    Ok(unsafe { Socket::from_raw_fd(copy) })
}

#[cfg(not(unix))]
pub(crate) fn duplicate(_fd: i32) -> io::Result<Socket> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "inherited sockets need Unix",
    ))
}

/// Whether `socket` is listening (SO_ACCEPTCONN).
#[cfg(unix)]
pub(crate) fn is_listening(socket: &Socket) -> io::Result<bool> {
    use std::os::fd::AsRawFd;

    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes given; the kernel writes at
    // most `len` bytes into `value` during the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value != 0)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
pub(crate) fn is_listening(_socket: &Socket) -> io::Result<bool> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "inherited sockets need Unix",
    ))
}
