//! The steps of serving one socket: one non-blocking system call each, turned into
//! completions.
//!
//! Owns: connect start and outcome, vectored stream sends, stream reads into pool buffers,
//! datagram sends and receives, and which errors end an operation and which do not.
//! Contract: each step updates the socket's readiness (`WouldBlock` clears it), its wanted
//! state in `Core` (the send queue, `connecting`, `want_recv`, `send_failed`) and pushes the
//! completions it produced; the caller has checked that the socket is current, not closing
//! and wants the step. Counters go into a [`Tally`], added to `Stats` by the caller.
//! Does not: decide which socket runs when (see `sockets.rs`).
//!
//! Safety model: no `unsafe` here (one view cast in `source.rs`). The kernel writes a pool buffer only during the synchronous
//! read inside [`BufPool::read_with`]; sent bytes are borrowed from the send queue for the
//! duration of one system call.

use std::io::{self, IoSlice};
use std::mem;

use mio::Registry;
use socket2::SockAddr;

#[cfg(target_os = "linux")]
use super::mmsg;
use super::sockets::{Entry, token};
use super::source::connect_in_progress;
use crate::buf::BufPool;
use crate::completion::Completion;
use crate::error::OpError;
use crate::id::{OpKind, SocketId};
use crate::table::{Core, SocketState};

/// Counters of one socket's service, added to `Stats` once the socket state is released.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) submitted: u64,
    /// Sends of several datagrams at once (UDP GSO).
    pub(super) gso_sends: u64,
    pub(super) starvations: u64,
    /// A read found no free buffer.
    pub(super) starved: bool,
}

impl Tally {
    pub(super) fn add_to(&self, core: &mut Core) {
        core.stats.submitted += self.submitted;
        core.stats.gso_sends += self.gso_sends;
        core.stats.buffer_starvations += self.starvations;
    }
}

/// Starts a non-blocking connect to `addr`; a [`Completion::Connected`] follows now if it
/// finished (or failed) at once, else when the socket turns writable.
pub(super) fn start_connect(
    registry: &Registry,
    entry: &mut Entry,
    state: &mut SocketState,
    id: SocketId,
    addr: &SockAddr,
    out: &mut Vec<Completion>,
) {
    // Connect while unregistered and register afterwards, the order mio itself uses: the
    // readiness of a not-yet-connected socket (a hang-up under epoll) is never reported,
    // and readiness edges after the registration belong to this connect.
    entry.readable = false;
    entry.writable = false;
    entry.read_closed = false;
    // Best effort: a socket that was not registered needs no deregistration.
    let _ = entry.source.deregister(registry);
    let started = entry.source.connect(addr);
    let registered = entry.source.register(registry, token(id));
    let result = match (started, registered) {
        // Without a registration the outcome could never be learned.
        (_, Err(e)) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) if connect_in_progress(&e) => return,
        (Err(e), Ok(())) => Err(e),
    };
    state.connect_done(result.is_ok());
    out.push(Completion::Connected {
        socket: id,
        result: result.map_err(|e| OpError::new(OpKind::Connect, Some(id), e)),
    });
}

/// Learns the outcome of a connect in progress after a writable edge: the pending socket
/// error if any, else connected if the socket has a peer, else (a spurious edge) still
/// connecting.
pub(super) fn finish_connect(
    entry: &mut Entry,
    state: &mut SocketState,
    id: SocketId,
    out: &mut Vec<Completion>,
    io: &mut Tally,
) {
    io.submitted += 1;
    let socket = entry.source.sock_ref();
    let result = match socket.take_error() {
        Ok(Some(e)) | Err(e) => Err(e),
        Ok(None) => match socket.peer_addr() {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                entry.writable = false;
                return;
            }
            Err(e) => Err(e),
        },
    };
    state.connect_done(result.is_ok());
    out.push(Completion::Connected {
        socket: id,
        result: result.map_err(|e| OpError::new(OpKind::Connect, Some(id), e)),
    });
}

/// Sends the queue with vectored sends until it is empty, the socket would block or a send
/// fails (then the queue is dropped and later sends are refused). One `Sent` per send.
pub(super) fn send_stream(
    entry: &mut Entry,
    state: &mut SocketState,
    id: SocketId,
    out: &mut Vec<Completion>,
    io: &mut Tally,
    iov_store: &mut Vec<IoSlice<'static>>,
    max_iovecs: usize,
) {
    while !state.send.is_empty() {
        if state.send.file_len() > 0 {
            // File ranges queued: the queue is served as io_uring serves it (see
            // `sys/sendfile.rs`): the bytes before a range with `MSG_MORE`, so a response
            // head leaves in one segment with its file's first bytes, the ranges by
            // sendfile(2), until no range is left.
            #[cfg(uring)]
            {
                use std::os::fd::AsRawFd;
                let fd = entry.source.sock_ref().as_raw_fd();
                let (wait, calls) =
                    crate::sys::sendfile::pump_queue(state, id, fd, max_iovecs, out);
                io.submitted += calls;
                match wait {
                    crate::sys::sendfile::Wait::Writable => {
                        entry.writable = false;
                        return;
                    }
                    // Writable still: the socket goes back on the ready list.
                    crate::sys::sendfile::Wait::Budget => return,
                    crate::sys::sendfile::Wait::Done if state.send_failed => return,
                    crate::sys::sendfile::Wait::Done => continue,
                }
            }
            // Not reached: `Driver::send_file` refuses off Linux.
            #[cfg(not(uring))]
            return;
        }
        let mut iov: Vec<IoSlice<'_>> = mem::take(iov_store);
        state.send.io_slices(max_iovecs, &mut iov);
        io.submitted += 1;
        let result = entry.source.send(&iov);
        *iov_store = recycle(iov);
        let error = match result {
            Ok(0) => io::Error::from(io::ErrorKind::WriteZero),
            Ok(bytes) => {
                state.send.advance(bytes);
                out.push(Completion::Sent {
                    socket: id,
                    bytes,
                    queued: state.send.len(),
                });
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                entry.writable = false;
                return;
            }
            Err(e) => e,
        };
        state.send_failed = true;
        state.send.clear();
        out.push(Completion::SendError {
            socket: id,
            error: OpError::new(OpKind::Send, Some(id), error),
        });
        return;
    }
}

/// Empties a slice list and keeps its allocation for the next send (an empty vector holds
/// no borrow, so it can outlive the bytes it pointed at).
fn recycle(mut iov: Vec<IoSlice<'_>>) -> Vec<IoSlice<'static>> {
    iov.clear();
    // In-place collection: no element is produced, the allocation is reused.
    iov.into_iter().map(|_| IoSlice::new(&[])).collect()
}

/// Reads up to `limit` buffers from a stream: `Received` each, then `Eof` (0 bytes) or
/// `RecvError`, which both stop receiving. Sets `io.starved` if the pool ran dry.
pub(super) fn read_stream(
    entry: &mut Entry,
    state: &mut SocketState,
    id: SocketId,
    pool: &BufPool,
    limit: usize,
    out: &mut Vec<Completion>,
    io: &mut Tally,
) {
    let full = pool.buf_size() as usize;
    for _ in 0..limit {
        let source = &entry.source;
        let Some(result) = pool.read_with(|buf| source.read(buf)) else {
            io.starvations += 1;
            io.starved = true;
            return;
        };
        io.submitted += 1;
        match result {
            Ok(buf) if buf.is_empty() => {
                state.end_recv();
                out.push(Completion::Eof { socket: id });
                return;
            }
            Ok(buf) => {
                let short = buf.len() < full;
                out.push(Completion::Received { socket: id, buf });
                // A short read took everything the kernel had; epoll and kqueue raise a new
                // edge for anything that arrives later, so skip the read that would only
                // return WouldBlock. Not after a hang-up (its edge is already spent) and not
                // on Windows, where mio re-arms readiness only on WouldBlock.
                if short && !entry.read_closed && cfg!(unix) {
                    entry.readable = false;
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                entry.readable = false;
                return;
            }
            Err(e) => {
                state.end_recv();
                out.push(Completion::RecvError {
                    socket: id,
                    error: OpError::new(OpKind::Recv, Some(id), e),
                });
                return;
            }
        }
    }
}

/// Room for grouping a datagram queue before it is sent (`sys/udp_gso.rs`, Linux only:
/// nothing elsewhere).
#[cfg(target_os = "linux")]
pub(super) type GatherRoom = crate::sys::udp_gso::Gather;
/// Room for grouping a datagram queue before it is sent (`sys/udp_gso.rs`, Linux only:
/// nothing elsewhere).
#[cfg(not(target_os = "linux"))]
pub(super) type GatherRoom = ();

/// Sends queued datagrams in order until the queue is empty or the socket would block. A
/// failed datagram is reported (`SendError`) and dropped; the others still go out. On Linux,
/// runs of same-size datagrams to one destination go as one GSO send (see `sys/udp_gso.rs`);
/// a refused one is sent again one datagram at a time, and the socket stops trying. With
/// `gather` (room for it: `DriverConfig::udp_gso_gather`), the queue is first grouped by
/// destination and size so each run takes a whole group.
pub(super) fn send_datagrams(
    entry: &mut Entry,
    state: &mut SocketState,
    id: SocketId,
    gather: Option<&mut GatherRoom>,
    out: &mut Vec<Completion>,
    io: &mut Tally,
) {
    #[cfg(not(target_os = "linux"))]
    let _ = gather;
    let mut queued: usize = state.datagrams.iter().map(|(bytes, _)| bytes.len()).sum();
    #[cfg(target_os = "linux")]
    if entry.gso
        && entry.source.is_udp()
        && let Some(room) = gather
    {
        crate::sys::udp_gso::gather(&mut state.datagrams, room);
    }
    while !state.datagrams.is_empty() {
        #[cfg(target_os = "linux")]
        if entry.gso && entry.source.is_udp() {
            let run = crate::sys::udp_gso::run_len(&state.datagrams, true);
            if run > 1 {
                io.submitted += 1;
                io.gso_sends += 1;
                let result = entry.source.send_segments(state.datagrams.range(..run));
                match result {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        entry.writable = false;
                        return;
                    }
                    Err(e) if e.raw_os_error().is_some_and(crate::sys::udp_gso::refused) => {
                        tracing::debug!(socket = ?id, error = %e, "UDP GSO refused: sending datagrams one by one");
                        entry.gso = false;
                    }
                    result => {
                        for (bytes, _) in state.datagrams.drain(..run) {
                            queued -= bytes.len();
                            out.push(match &result {
                                Ok(_) => Completion::Sent {
                                    socket: id,
                                    bytes: bytes.len(),
                                    queued,
                                },
                                Err(e) => Completion::SendError {
                                    socket: id,
                                    error: OpError::new(
                                        OpKind::SendTo,
                                        Some(id),
                                        e.raw_os_error().map_or_else(
                                            || io::Error::new(e.kind(), e.to_string()),
                                            io::Error::from_raw_os_error,
                                        ),
                                    ),
                                },
                            });
                        }
                    }
                }
                continue;
            }
        }
        let Some((bytes, to)) = state.datagrams.front() else {
            break;
        };
        let len = bytes.len();
        io.submitted += 1;
        let result = entry.source.send_to(bytes, to);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            entry.writable = false;
            return;
        }
        state.datagrams.pop_front();
        queued -= len;
        out.push(match result {
            Ok(_) => Completion::Sent {
                socket: id,
                bytes: len,
                queued,
            },
            Err(e) => Completion::SendError {
                socket: id,
                error: OpError::new(OpKind::SendTo, Some(id), e),
            },
        });
    }
}

/// Receives up to `limit` datagrams as `ReceivedFrom`. Sets `io.starved` if the pool ran dry.
/// Truncation (a datagram longer than a pool buffer) is reported exactly, from recvmsg's
/// flags (MSG_TRUNC; WSAEMSGSIZE on Windows).
pub(super) fn recv_datagrams(
    entry: &mut Entry,
    state: &mut SocketState,
    id: SocketId,
    pool: &BufPool,
    limit: usize,
    out: &mut Vec<Completion>,
    io: &mut Tally,
) {
    #[cfg(target_os = "linux")]
    if let Some(fd) = entry.source.udp_fd() {
        recv_udp_batches(fd, entry, state, id, pool, limit, out, io);
        return;
    }
    for _ in 0..limit {
        let source = &entry.source;
        let mut meta = None;
        let Some(result) = pool.read_with(|buf| {
            let (len, from, truncated) = source.recv_from(buf)?;
            meta = Some((from, truncated));
            Ok(len)
        }) else {
            io.starvations += 1;
            io.starved = true;
            return;
        };
        io.submitted += 1;
        match (result, meta) {
            (Ok(buf), Some((from, truncated))) => out.push(match from.as_socket() {
                Some(from) => Completion::ReceivedFrom {
                    socket: id,
                    buf,
                    from,
                    truncated,
                },
                None => Completion::ReceivedFromUnix {
                    socket: id,
                    buf,
                    from: Box::new(crate::completion::unix_sender(from)),
                    truncated,
                },
            }),
            // Unreachable (the closure sets `meta` whenever it succeeds); nothing to deliver.
            (Ok(_), None) => {}
            (Err(e), _) => {
                if datagram_error_stops(e, entry, state, id, out) {
                    return;
                }
            }
        }
    }
}

/// [`recv_datagrams`] for a UDP socket on Linux: `recvmmsg`, up to [`mmsg::BATCH`]
/// datagrams per system call.
#[cfg(target_os = "linux")]
#[allow(clippy::too_many_arguments)] // recv_datagrams' arguments and the descriptor
fn recv_udp_batches(
    fd: std::os::fd::RawFd,
    entry: &mut Entry,
    state: &mut SocketState,
    id: SocketId,
    pool: &BufPool,
    limit: usize,
    out: &mut Vec<Completion>,
    io: &mut Tally,
) {
    let mut left = limit;
    while left > 0 {
        let Some(result) = mmsg::recv_batch(fd, pool, left, |buf, received| {
            // A UDP socket's senders are IP addresses; anything else has nobody to answer.
            if let Some(from) = received.from {
                out.push(Completion::ReceivedFrom {
                    socket: id,
                    buf,
                    from,
                    truncated: received.truncated,
                });
            }
        }) else {
            io.starvations += 1;
            io.starved = true;
            return;
        };
        io.submitted += 1;
        match result {
            Ok(received) => left = left.saturating_sub(received.max(1)),
            Err(e) => {
                if datagram_error_stops(e, entry, state, id, out) {
                    return;
                }
                left -= 1;
            }
        }
    }
}

/// A datagram receive's error, for both receive paths: would-block clears readiness, a
/// skippable error (see [`skippable_datagram_error`]) is logged and passed over, any other
/// ends receiving with `RecvError`. Returns whether receiving stops.
fn datagram_error_stops(
    error: io::Error,
    entry: &mut Entry,
    state: &mut SocketState,
    id: SocketId,
    out: &mut Vec<Completion>,
) -> bool {
    if error.kind() == io::ErrorKind::WouldBlock {
        entry.readable = false;
        return true;
    }
    if skippable_datagram_error(&error) {
        tracing::debug!(socket = %id, error = %error, "datagram receive error skipped");
        return false;
    }
    state.end_recv();
    out.push(Completion::RecvError {
        socket: id,
        error: OpError::new(OpKind::RecvFrom, Some(id), error),
    });
    true
}

/// Errors a datagram receive reports about one earlier datagram, not about the socket: ICMP
/// errors of an earlier send (Windows reports port-unreachable as WSAECONNRESET on the next
/// receive) and, on Windows, an oversized datagram. Receiving continues after them.
fn skippable_datagram_error(error: &io::Error) -> bool {
    #[cfg(windows)]
    if error.raw_os_error() == Some(WSAEMSGSIZE) {
        return true;
    }
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

/// Winsock's "message too long" (a datagram longer than the receive buffer).
#[cfg(windows)]
const WSAEMSGSIZE: i32 = 10040;

/// Accept errors about one connection that died in the backlog: accepting the next one may
/// well succeed, so the listener stays ready. Anything else (EMFILE, ENFILE, ENOBUFS, ...)
/// is deferred.
pub(super) fn transient_accept_error(error: &io::Error) -> bool {
    #[cfg(unix)]
    if error.raw_os_error() == Some(libc::EPROTO) {
        return true;
    }
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
