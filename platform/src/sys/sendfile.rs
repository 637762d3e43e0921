//! File ranges sent by the kernel: sendfile(2) from a regular file to a stream socket (Linux).
//!
//! Owns: [`pump`], one sending step for the file range at the front of a socket's send
//! queue (queued by [`Driver::send_file`](crate::Driver::send_file)), and [`pump_queue`],
//! both backends' way of serving a queue that holds file ranges (its bytes in memory by
//! sendmsg(2) too, so a response head and its file leave from one place, in order, in one
//! segment, without a ring round trip between them under io_uring).
//! Contract:
//! - The range's bytes go from the page cache to the socket without passing through user
//!   memory, in the queue's order: a backend calls [`pump`] only while a file range is at
//!   the queue's front (bytes queued before it are sent), and bytes queued after it wait.
//! - The socket is non-blocking: a full socket buffer stops the step ([`Wait::Writable`]);
//!   nothing is read ahead, so a slow reader costs no memory (the range is an offset and a
//!   length).
//! - The file ending before the range does (truncated while being sent) or any other error
//!   fails the socket's sending: the queue is dropped and `SendError` reported, so the peer
//!   sees the connection end early, never fewer bytes than announced followed by more data.
//! - Progress is reported as `FileSent`; each step moves at most [`BUDGET`] bytes so one
//!   busy socket cannot starve the others.
//!
//! Why sendfile(2) on the core's thread, also under io_uring (the queue is served when the
//! socket is reconciled; a full socket waits for a POLLOUT poll): io_uring has no sendfile
//! operation; `IORING_OP_SPLICE` file → pipe → socket would take two operations and a pipe
//! per connection and runs the socket leg on an io-wq worker. A file in the page cache is
//! read without blocking; a read from disk blocks the core for that read, as it does
//! nginx's worker with `sendfile on` and without `aio threads`.
//!
//! Safety model: one system call (`sendfile`) on descriptors the caller keeps open for it;
//! the offset is a local variable.
#![allow(unsafe_code)] // the sendfile system call; its block has a SAFETY note.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::completion::Completion;
use crate::error::OpError;
use crate::id::{OpKind, SocketId};
use crate::table::SocketState;

/// Most bytes one [`pump`] moves before letting other sockets go.
pub(crate) const BUDGET: u64 = 1024 * 1024;

/// The most one sendfile(2) call transfers (Linux caps a call at 0x7ffff000 bytes).
const MAX_CALL: u64 = 0x7fff_f000;

/// Why a step stopped.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Wait {
    /// The socket buffer is full: wait until the socket is writable.
    Writable,
    /// The budget ran out with a file range still at the front: go on next turn.
    Budget,
    /// No file range at the front any more (bytes, or nothing, are next), or sending failed.
    Done,
}

/// sendfile(2) of up to `len` bytes of `file` at `offset` into `socket`.
fn sendfile_call(socket: RawFd, file: RawFd, offset: u64, len: u64) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset out of range"))?;
    // INVARIANT: at most MAX_CALL, which fits in usize on every Linux target.
    let count = len.min(MAX_CALL) as usize;
    // SAFETY: both descriptors are open for the call (the socket is the driver's, the file is
    // held by the queued range); `off` is a local the kernel updates.
    let n = unsafe { libc::sendfile(socket, file, &raw mut off, count) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.unsigned_abs())
    }
}

/// Sends from the file ranges at the front of `state`'s send queue into `socket` (`id`'s
/// descriptor) until the socket is full, the budget is spent, a non-file entry is next or
/// sending fails. Pushes `FileSent` for progress and `SendError` on failure. Returns why it
/// stopped and the system calls made.
pub(crate) fn pump(
    state: &mut SocketState,
    id: SocketId,
    socket: RawFd,
    out: &mut Vec<Completion>,
) -> (Wait, u64) {
    let (mut moved, mut calls) = (0u64, 0u64);
    let mut failed = None;
    let wait = loop {
        if state.send_failed {
            break Wait::Done;
        }
        let Some(range) = state.send.front_file() else {
            break Wait::Done;
        };
        if moved >= BUDGET {
            break Wait::Budget;
        }
        calls += 1;
        let want = range.len.min(BUDGET - moved);
        match sendfile_call(socket, range.file.as_raw_fd(), range.offset, want) {
            Ok(0) => {
                failed = Some(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file ended at {} with {} bytes of its range unsent (truncated?)",
                        range.offset, range.len
                    ),
                ));
                break Wait::Done;
            }
            Ok(n) => {
                state.send.advance_file(n as u64);
                moved += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Wait::Writable,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                failed = Some(e);
                break Wait::Done;
            }
        }
    };
    if moved > 0 {
        out.push(Completion::FileSent {
            socket: id,
            bytes: moved,
            file_queued: state.send.file_len(),
        });
    }
    if let Some(error) = failed {
        state.send_failed = true;
        state.send.clear();
        out.push(Completion::SendError {
            socket: id,
            error: OpError::new(OpKind::Send, Some(id), error),
        });
    }
    (wait, calls)
}

/// Sends the bytes in memory at the front of `state`'s queue (those before its first file
/// range) with one non-blocking sendmsg(2); `MSG_MORE` when a file range follows them, so a
/// response head and the first bytes of its file leave in one segment (nginx's
/// `tcp_nopush`). Returns the bytes sent, `Ok(0)` when nothing was there.
fn send_front_bytes(state: &SocketState, socket: RawFd, max_iovecs: usize) -> io::Result<usize> {
    let iov: Vec<libc::iovec> = state
        .send
        .slices(max_iovecs)
        .map(|b| libc::iovec {
            iov_base: b.as_ptr().cast_mut().cast(),
            iov_len: b.len(),
        })
        .collect();
    if iov.is_empty() {
        return Ok(0);
    }
    // SAFETY: a zeroed msghdr is valid (null name and control, no flags).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr().cast_mut();
    msg.msg_iovlen = iov.len() as _;
    let mut flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    if state.send.file_len() > 0 {
        flags |= libc::MSG_MORE;
    }
    // SAFETY: `msg` points at `iov`, whose entries borrow the queue's buffers; both outlive
    // the call, and the kernel only reads them.
    let n = unsafe { libc::sendmsg(socket, &raw const msg, flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.unsigned_abs())
    }
}

/// Serves a send queue holding file ranges on the core's thread (io_uring: no SEND in
/// flight, the socket not known to be full; poll: the socket writable): bytes in memory by
/// sendmsg(2), file ranges by [`pump`], in order, until no file range is left (the rest
/// goes as the backend's usual sends), the socket is full, the budget is spent or sending
/// fails. Pushes `Sent`, `FileSent` and
/// `SendError` as the steps go. Returns why it stopped and the system calls made.
pub(crate) fn pump_queue(
    state: &mut SocketState,
    id: SocketId,
    socket: RawFd,
    max_iovecs: usize,
    out: &mut Vec<Completion>,
) -> (Wait, u64) {
    let (mut calls, mut sent) = (0u64, 0u64);
    loop {
        if state.send_failed || state.send.file_len() == 0 {
            return (Wait::Done, calls);
        }
        if sent >= BUDGET {
            return (Wait::Budget, calls);
        }
        if state.send.front_file().is_some() {
            let before = state.send.file_len();
            let (wait, n) = pump(state, id, socket, out);
            calls += n;
            sent += before - state.send.file_len();
            match wait {
                Wait::Done => continue,
                other => return (other, calls),
            }
        }
        calls += 1;
        let error = match send_front_bytes(state, socket, max_iovecs) {
            Ok(0) => io::Error::from(io::ErrorKind::WriteZero),
            Ok(n) => {
                state.send.advance(n);
                sent += n as u64;
                out.push(Completion::Sent {
                    socket: id,
                    bytes: n,
                    queued: state.send.len(),
                });
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (Wait::Writable, calls),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => e,
        };
        state.send_failed = true;
        state.send.clear();
        out.push(Completion::SendError {
            socket: id,
            error: OpError::new(OpKind::Send, Some(id), error),
        });
        return (Wait::Done, calls);
    }
}
