//! Kernel-side forwarding between two stream sockets: splice(2) through a pipe (Linux).
//!
//! Owns: [`Splice`] (the pipe between a source socket and its destination, the bytes held
//! in it, and how the source ended) and [`run`], one pumping step shared by both backends.
//! Contract:
//! - Bytes read from the source go into the pipe and from the pipe into the destination,
//!   never through user memory: on loopback and most NICs the kernel moves page references
//!   instead of copying.
//! - The destination's send queue goes first: the pipe is emptied into it only while its
//!   queue is empty, so bytes sent before the splice started (or in between) keep their
//!   order.
//! - The source's end (EOF or an error) is reported as the source's `Eof` / `RecvError`,
//!   only once the pipe is empty: every byte read before it has reached the destination.
//!   A failure to write the destination is its `SendError`; the splice ends and reading
//!   the source stops.
//! - Memory: one pipe per spliced direction (its capacity, 64 KiB by default); nothing
//!   else is buffered, so a stalled destination stops the source through TCP's own window.
//! - Each step moves at most [`BUDGET`] bytes, so one busy pair cannot starve the others.
//!
//! Why readiness plus synchronous splice calls, also under io_uring: `IORING_OP_SPLICE`
//! is always run by an io-wq worker thread, which blocks while the socket has no data —
//! one kernel thread per idle spliced connection. A poll request (one-shot, no thread)
//! followed by non-blocking splice calls keeps everything on the core's own thread.
//!
//! Safety model: two system calls on descriptors this driver owns (`pipe2`, `splice`), no
//! user memory handed to the kernel.
#![allow(unsafe_code)] // pipe2 and splice system calls; each block has a SAFETY note.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::completion::Completion;
use crate::error::OpError;
use crate::id::{OpKind, SocketId};
use crate::table::{Core, Shutdown, SocketKind};

/// Most bytes one [`run`] moves before letting other sockets go.
pub(crate) const BUDGET: usize = 512 * 1024;

/// The pipe of one spliced direction.
#[derive(Debug)]
pub(crate) struct Splice {
    /// Where the bytes go.
    pub(crate) to: SocketId,
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe (read from the source, not yet written to the destination).
    held: usize,
    /// The most bytes asked of one read from the source (the pipe's capacity).
    capacity: usize,
    /// How the source ended, reported once the pipe is empty.
    end: Option<io::Result<()>>,
}

/// What a step is waiting for when it stops.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Wait {
    /// The source has no data (a read would block): wait until it is readable.
    Readable,
    /// The destination's socket buffer is full: wait until it is writable.
    Writable,
    /// The destination's send queue must empty first (its `Sent` re-evaluates).
    Queue,
    /// Nothing more to do now: reading is off, or the splice ended.
    Idle,
    /// The budget ran out with data possibly left: run again next turn.
    Budget,
}

impl Splice {
    /// A splice into `to` through a new pipe of (at least) `capacity` bytes.
    ///
    /// # Errors
    /// The OS error of creating the pipe (EMFILE, ...).
    pub(crate) fn new(to: SocketId, capacity: usize) -> io::Result<Self> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes on success.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are new and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let wanted = libc::c_int::try_from(capacity).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ / F_GETPIPE_SZ on a pipe descriptor we own; no memory passed.
        let size = unsafe {
            // Best effort: above /proc/sys/fs/pipe-max-size an unprivileged process is
            // refused, and the default (16 pages) still works.
            libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, wanted);
            libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ)
        };
        Ok(Self {
            to,
            read,
            write,
            held: 0,
            capacity: usize::try_from(size)
                .ok()
                .filter(|&s| s > 0)
                .unwrap_or(65_536),
            end: None,
        })
    }

    /// Bytes read from the source and not yet written (or an end not yet reported).
    pub(crate) fn backlog(&self) -> bool {
        self.held > 0 || self.end.is_some()
    }
}

/// splice(2) without offsets, non-blocking on the pipe (the sockets are non-blocking).
fn splice_call(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both descriptors are open and owned by this driver for the call; null offsets
    // are required for sockets and pipes; no user memory is involved.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.unsigned_abs())
    }
}

/// How a step ended the splice, if it did.
enum Ended {
    /// The source's EOF or receive error (pipe empty).
    Source(io::Result<()>),
    /// Writing the destination failed.
    Destination(io::Error),
    /// The destination went away (closed, shut down or failed): stop quietly.
    Gone,
}

/// One step of the splice whose source is `src`: empties the pipe into the destination,
/// then refills it from the source, until something would block, the budget is spent or
/// the splice ends. `src_fd` and `dst_fd` are the descriptors of `src` and of the
/// destination. Pushes `Spliced`, and at the end `Eof`, `RecvError` or `SendError`.
/// Returns what it waits for.
pub(crate) fn run(
    core: &mut Core,
    src: SocketId,
    src_fd: RawFd,
    dst_fd: RawFd,
    out: &mut Vec<Completion>,
) -> Wait {
    let Some(state) = core.open_mut(src) else {
        return Wait::Idle;
    };
    let reading = state.want_recv && !state.connecting;
    let Some(mut splice) = state.splice.take() else {
        return Wait::Idle;
    };
    let dst = splice.to;
    let (dst_ok, queue_empty) = match core.open(dst) {
        Some(d) => (
            d.kind == SocketKind::Stream && !d.send_failed && d.shutdown == Shutdown::No,
            d.send.is_empty(),
        ),
        None => (false, false),
    };
    let (mut moved, mut calls) = (0usize, 0u64);
    let (wait, ended) = if dst_ok {
        let mut count = Count {
            moved: &mut moved,
            calls: &mut calls,
        };
        step(
            &mut splice,
            src_fd,
            dst_fd,
            reading,
            queue_empty,
            &mut count,
        )
    } else {
        (Wait::Idle, Some(Ended::Gone))
    };
    core.stats.submitted += calls;
    if moved > 0 {
        out.push(Completion::Spliced {
            socket: src,
            bytes: moved,
        });
    }
    let backlog = splice.backlog();
    match ended {
        None => {
            if let Some(state) = core.open_mut(src) {
                state.splice = Some(splice);
            }
            if let Some(d) = core.open_mut(dst) {
                d.splice_backlog = backlog;
            }
            return wait;
        }
        Some(Ended::Source(result)) => {
            if let Some(state) = core.open_mut(src) {
                state.end_recv();
            }
            out.push(match result {
                Ok(()) => Completion::Eof { socket: src },
                Err(e) => Completion::RecvError {
                    socket: src,
                    error: OpError::new(OpKind::Recv, Some(src), e),
                },
            });
        }
        Some(Ended::Destination(error)) => {
            if let Some(state) = core.open_mut(src) {
                state.want_recv = false;
            }
            if let Some(d) = core.open_mut(dst) {
                d.send_failed = true;
                d.send.clear();
            }
            out.push(Completion::SendError {
                socket: dst,
                error: OpError::new(OpKind::Send, Some(dst), error),
            });
        }
        Some(Ended::Gone) => {
            if let Some(state) = core.open_mut(src) {
                state.want_recv = false;
            }
        }
    }
    if let Some(d) = core.open_mut(dst) {
        d.splice_backlog = false;
        d.splice_from = None;
    }
    core.mark_dirty(dst);
    core.mark_dirty(src);
    Wait::Idle
}

/// What a step did: bytes written to the destination, system calls made.
struct Count<'a> {
    moved: &'a mut usize,
    calls: &'a mut u64,
}

/// The system calls of one step (see [`run`]).
fn step(
    splice: &mut Splice,
    src_fd: RawFd,
    dst_fd: RawFd,
    reading: bool,
    queue_empty: bool,
    count: &mut Count<'_>,
) -> (Wait, Option<Ended>) {
    let Count { moved, calls } = count;
    loop {
        while splice.held > 0 {
            if !queue_empty {
                return (Wait::Queue, None);
            }
            **calls += 1;
            match splice_call(splice.read.as_raw_fd(), dst_fd, splice.held) {
                Ok(0) => {
                    let error = io::Error::from(io::ErrorKind::WriteZero);
                    return (Wait::Idle, Some(Ended::Destination(error)));
                }
                Ok(n) => {
                    splice.held -= n.min(splice.held);
                    **moved += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (Wait::Writable, None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Wait::Idle, Some(Ended::Destination(e))),
            }
        }
        if let Some(end) = splice.end.take() {
            return (Wait::Idle, Some(Ended::Source(end)));
        }
        if !reading {
            return (Wait::Idle, None);
        }
        if **moved >= BUDGET {
            return (Wait::Budget, None);
        }
        **calls += 1;
        match splice_call(src_fd, splice.write.as_raw_fd(), splice.capacity) {
            Ok(0) => splice.end = Some(Ok(())),
            Ok(n) => splice.held += n,
            // The pipe is empty here, so this is the socket: no data yet.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (Wait::Readable, None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => splice.end = Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let a = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (b, _) = listener.accept().expect("accept");
        (a, b)
    }

    /// Waits (up to 10 s) until `fd` shows `events`.
    fn wait_for(fd: RawFd, events: libc::c_short) {
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&raw mut pfd, 1, 10_000) };
        assert_eq!(n, 1, "descriptor never became ready");
    }

    fn step_once(
        splice: &mut Splice,
        src: RawFd,
        dst: RawFd,
        queue_empty: bool,
    ) -> (Wait, Option<Ended>, usize) {
        let (mut moved, mut calls) = (0, 0);
        let mut count = Count {
            moved: &mut moved,
            calls: &mut calls,
        };
        let (wait, ended) = step(splice, src, dst, true, queue_empty, &mut count);
        assert!(calls > 0);
        (wait, ended, moved)
    }

    #[test]
    fn step_moves_bytes_then_reports_the_end_after_the_pipe_empties() {
        let (mut client, src) = pair();
        let (dst, mut sink) = pair();
        src.set_nonblocking(true).expect("nonblocking");
        dst.set_nonblocking(true).expect("nonblocking");
        sink.set_nonblocking(true).expect("nonblocking");
        let mut splice = Splice::new(SocketId::from_parts(0, 0), 65_536).expect("pipe");
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let payload = payload.clone();
            std::thread::spawn(move || {
                client.write_all(&payload).expect("write");
                client
                    .shutdown(std::net::Shutdown::Write)
                    .expect("shutdown");
            })
        };
        let (mut received, mut total) = (Vec::new(), 0);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let (wait, ended, moved) =
                step_once(&mut splice, src.as_raw_fd(), dst.as_raw_fd(), true);
            total += moved;
            if let Some(Ended::Source(result)) = ended {
                result.expect("clean end");
                break;
            }
            assert!(ended.is_none(), "the destination failed");
            while let Ok(n) = sink.read(&mut buf) {
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&buf[..n]);
            }
            match wait {
                Wait::Readable => wait_for(src.as_raw_fd(), libc::POLLIN),
                Wait::Writable => wait_for(sink.as_raw_fd(), libc::POLLIN),
                Wait::Budget => {}
                other => panic!("unexpected wait {other:?}"),
            }
        }
        writer.join().expect("writer");
        assert_eq!(splice.held, 0);
        drop(dst);
        sink.set_nonblocking(false).expect("blocking");
        sink.read_to_end(&mut received).expect("read rest");
        assert_eq!(total, payload.len());
        assert!(received == payload, "bytes differ");
    }

    #[test]
    fn a_non_empty_send_queue_holds_the_pipe_back() {
        let (mut client, src) = pair();
        let (dst, _sink) = pair();
        src.set_nonblocking(true).expect("nonblocking");
        let mut splice = Splice::new(SocketId::from_parts(0, 0), 65_536).expect("pipe");
        client.write_all(b"hello").expect("write");
        wait_for(src.as_raw_fd(), libc::POLLIN);
        let (wait, ended, moved) = step_once(&mut splice, src.as_raw_fd(), dst.as_raw_fd(), false);
        assert!(ended.is_none());
        assert_eq!(wait, Wait::Queue);
        assert_eq!((moved, splice.held), (0, 5));
        assert!(splice.backlog());
        // Once the queue is empty the held bytes go out.
        let (_, ended, moved) = step_once(&mut splice, src.as_raw_fd(), dst.as_raw_fd(), true);
        assert!(ended.is_none());
        assert_eq!((moved, splice.held), (5, 0));
    }
}
