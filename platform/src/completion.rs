//! What a driver turn reports back.

use std::net::SocketAddr;

use socket2::SockAddr;

use crate::buf::RecvBuf;
use crate::error::OpError;
use crate::id::{SocketId, TimerId};
use crate::process::ExitStatus;

/// One completed event, delivered by [`Driver::turn`](crate::Driver::turn).
///
/// Completions for a socket arrive in the order the kernel produced them; none arrive for a
/// socket after [`Driver::close`](crate::Driver::close) was called on it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Completion {
    /// A listener accepted a connection; the new socket is already in the driver's table
    /// (call [`Driver::recv`](crate::Driver::recv) to start reading it). An error does not
    /// stop the listener (EMFILE, ECONNABORTED, ...): it keeps accepting while wanted.
    Accepted {
        /// The listening socket.
        listener: SocketId,
        /// The accepted socket, or why accepting failed.
        result: Result<SocketId, OpError>,
    },
    /// An outbound connection finished connecting, or failed to.
    Connected {
        /// The connecting socket (close it after a failure).
        socket: SocketId,
        /// `Ok` once connected.
        result: Result<(), OpError>,
    },
    /// Bytes arrived on a stream socket, in a pool buffer lent to the caller (drop it soon:
    /// it goes back to the pool on drop).
    Received {
        /// The socket.
        socket: SocketId,
        /// The bytes.
        buf: RecvBuf,
    },
    /// A datagram arrived.
    ReceivedFrom {
        /// The datagram socket.
        socket: SocketId,
        /// The payload.
        buf: RecvBuf,
        /// The sender.
        from: SocketAddr,
        /// The datagram was longer than a pool buffer and was cut to fit.
        truncated: bool,
    },
    /// A datagram arrived on a Unix datagram socket (see
    /// [`Driver::bind_unix_datagram`](crate::Driver::bind_unix_datagram)).
    ReceivedFromUnix {
        /// The datagram socket.
        socket: SocketId,
        /// The payload.
        buf: RecvBuf,
        /// The sender: its path (`from.as_pathname()`), its abstract name (Linux), or, for a
        /// sender that never bound a name, an unnamed address (`from.is_unnamed()`), which
        /// cannot be answered. Boxed: a `SockAddr` is 136 bytes, and inline it made every
        /// completion that large (each is moved twice per turn, two per UDP query answered).
        from: Box<SockAddr>,
        /// The datagram was longer than a pool buffer and was cut to fit.
        truncated: bool,
    },
    /// The peer shut down its sending side (a read returned 0). Receiving has stopped; the
    /// socket can still send.
    Eof {
        /// The socket.
        socket: SocketId,
    },
    /// Receiving failed (ECONNRESET, ...); receiving has stopped.
    RecvError {
        /// The socket.
        socket: SocketId,
        /// What failed.
        error: OpError,
    },
    /// `bytes` received on `socket` were spliced into its destination (see
    /// [`Driver::splice`](crate::Driver::splice)): they left the pipe for the destination's
    /// socket buffer.
    Spliced {
        /// The source socket.
        socket: SocketId,
        /// Bytes moved in this step.
        bytes: usize,
    },
    /// The kernel took `bytes` from the socket's send queue; `queued` bytes remain in it.
    Sent {
        /// The socket.
        socket: SocketId,
        /// Bytes accepted by the kernel in this completion.
        bytes: usize,
        /// Bytes still queued in the driver for this socket.
        queued: usize,
    },
    /// The kernel sent `bytes` of file ranges queued on the socket with
    /// [`Driver::send_file`](crate::Driver::send_file); `file_queued` bytes of file ranges
    /// remain (bytes in memory are reported by `Sent`).
    FileSent {
        /// The socket.
        socket: SocketId,
        /// File bytes the kernel took in this step.
        bytes: u64,
        /// File bytes still queued on the socket.
        file_queued: u64,
    },
    /// Sending failed (EPIPE, ECONNRESET, ...): the send queue was discarded and later sends
    /// on this socket are discarded too.
    SendError {
        /// The socket.
        socket: SocketId,
        /// What failed.
        error: OpError,
    },
    /// The write side was shut down (after every queued byte was sent), or that failed.
    ShutdownDone {
        /// The socket.
        socket: SocketId,
        /// `Ok` once shut down.
        result: Result<(), OpError>,
    },
    /// A file operation of [`Driver::file`](crate::Driver::file) finished (never delivered
    /// for one the caller forgot).
    File {
        /// The operation.
        op: crate::file::FileOpId,
        /// What it gave back, or why it failed.
        result: Result<crate::file::FileDone, OpError>,
    },
    /// A child process exited and was reaped (see [`Driver::spawn`](crate::Driver::spawn)):
    /// the last completion of its watcher, which the caller closes. Its streams may still
    /// deliver output it wrote before.
    Exited {
        /// The child's watcher.
        child: SocketId,
        /// How it ended.
        status: ExitStatus,
    },
    /// A timer expired.
    Timer {
        /// The timer.
        timer: TimerId,
    },
    /// Another thread called [`Waker::wake`](crate::Waker::wake). Several wakes may merge
    /// into one completion.
    Woken,
}

/// The sender of a datagram that is not an IP address: as given, except that no address at
/// all (Linux reports an unnamed Unix sender with an address length of 0) becomes an unnamed
/// `AF_UNIX` address, so [`SockAddr::is_unnamed`] says what it is.
pub(crate) fn unix_sender(from: SockAddr) -> SockAddr {
    match from.len() {
        0 => unnamed_unix().unwrap_or(from),
        _ => from,
    }
}

/// The unnamed `AF_UNIX` address (an empty path: the family, no path bytes).
pub(crate) fn unnamed_unix() -> Option<SockAddr> {
    SockAddr::unix("").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Completions are pushed and drained per datagram (a UDP server's turn moves two per
    /// query): no variant may make them all large.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_completion_stays_small() {
        let size = size_of::<Completion>();
        assert!(size <= 80, "Completion: {size} bytes");
    }
}
