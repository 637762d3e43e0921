//! The portable backend: mio readiness (epoll, kqueue, IOCP) turned into completions.
//!
//! Owns: the mio poll instance and waker, the receive buffer pool (a free list), the socket
//! table (`sockets.rs`) of mio sources (`source.rs`), the per-socket I/O steps (`ops.rs`)
//! and the timer heap (`timers.rs`).
//! Contract: see `sys/mod.rs`. Each [`Poll::turn`]:
//! 1. reconciles: closes closing sockets (releasing their slots at once: under readiness
//!    nothing is ever in flight), starts connects, arms and cancels timers, and lists the
//!    sockets that can do newly wanted work with the readiness they already showed;
//! 2. waits in one `Poll::poll` (counted in `Stats::enters`), for no time at all if
//!    completions or ready work are already pending, else until the caller's timeout, the
//!    earliest timer or a wake-up;
//! 3. records readiness, then serves every ready socket once (connect outcomes, sends,
//!    shutdowns, up to `poll_reads_per_turn` reads, accepts) and fires expired timers in
//!    deadline order.
//!
//! Does not: use a second thread, allocate receive memory beyond the pool, or wait more
//! than once per turn (a spurious wake-up returns an empty turn, as under io_uring).
//!
//! Safety model: `unsafe` only for system calls socket2 and mio do not wrap (`source.rs`'s
//! recvmsg slice, `mmsg.rs`'s recvmmsg). The kernel touches caller memory only inside
//! synchronous system calls (pool buffers during a read, the send queue's bytes during a
//! send); nothing is shared with it between calls.
//! Tests: `tests.rs`, through the public [`Driver`](crate::Driver).

#[cfg(target_os = "linux")]
mod mmsg;
mod ops;
mod sockets;
mod source;
mod timers;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{SockRef, Socket};

use self::sockets::Sockets;
use self::source::Source;
use self::timers::Timers;
use crate::buf::BufPool;
use crate::completion::Completion;
use crate::config::{BackendKind, Capabilities, DriverConfig};
use crate::error::{SetupError, UringUnavailable};
use crate::id::SocketId;
use crate::table::{Core, SocketKind};
use crate::waker::Waker;

/// The waker's token; socket tokens are table slots, which never reach it.
const WAKE_TOKEN: mio::Token = mio::Token(usize::MAX);
/// Readiness events taken from the OS per wait (more wait for the next turn).
const EVENTS_PER_WAIT: usize = 1024;

/// The poll backend of one driver.
pub(crate) struct Poll {
    poll: mio::Poll,
    events: mio::Events,
    waker: Arc<mio::Waker>,
    sockets: Sockets,
    timers: Timers,
    capabilities: Capabilities,
}

impl Poll {
    /// Creates the poll instance, its waker and the buffer pool. `fallback` says why
    /// io_uring is not in use when the choice was automatic.
    ///
    /// # Errors
    /// [`SetupError::Io`] when the OS refuses one of them.
    pub(crate) fn new(
        config: &DriverConfig,
        fallback: Option<UringUnavailable>,
    ) -> Result<Self, SetupError> {
        let io = |what| move |source| SetupError::Io { what, source };
        let poll = mio::Poll::new().map_err(io("creating the poll instance"))?;
        let waker = Arc::new(
            mio::Waker::new(poll.registry(), WAKE_TOKEN).map_err(io("creating the waker"))?,
        );
        let pool = BufPool::new_list(config.buf_size, config.buf_count)
            .map_err(io("allocating receive buffers"))?;
        let capabilities = Capabilities {
            backend: Some(BackendKind::Poll),
            uring_unavailable: fallback,
            ..Capabilities::default()
        };
        Ok(Self {
            poll,
            events: mio::Events::with_capacity(EVENTS_PER_WAIT),
            waker,
            sockets: Sockets::new(pool, config),
            timers: Timers::default(),
            capabilities,
        })
    }

    /// What the backend uses.
    pub(crate) fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Receive buffers not lent out.
    pub(crate) fn buffers_available(&self) -> u32 {
        self.sockets.buffers_available()
    }

    /// A handle that interrupts [`Poll::turn`] from any thread.
    pub(crate) fn waker(&self) -> Waker {
        Waker::mio(Arc::clone(&self.waker))
    }

    /// Takes `socket` (non-blocking) for slot `id` and registers it for both readiness
    /// directions (listeners: readable only).
    ///
    /// # Errors
    /// `Unsupported` for AF_UNIX datagram sockets anywhere and AF_UNIX sockets on Windows;
    /// the OS error of reading the socket's family or registering it.
    pub(crate) fn attach(
        &mut self,
        id: SocketId,
        socket: Socket,
        kind: SocketKind,
    ) -> io::Result<()> {
        let source = Source::new(socket, kind)?;
        self.sockets.insert(self.poll.registry(), id, source)
    }

    /// Takes a pipe end or terminal (a `Stream` with `file`) or a child's exit descriptor
    /// (`Child`) for slot `id`, already non-blocking, and registers it.
    ///
    /// # Errors
    /// `Unsupported` for other kinds; the OS error of registering.
    #[cfg(processes)]
    pub(crate) fn attach_file(
        &mut self,
        id: SocketId,
        fd: std::os::fd::OwnedFd,
        kind: SocketKind,
        file: Option<crate::process::FileKind>,
    ) -> io::Result<()> {
        let source = Source::file(fd, kind, file)?;
        self.sockets.insert(self.poll.registry(), id, source)
    }

    /// The descriptor of pipe, terminal or exit descriptor `id`.
    #[cfg(processes)]
    pub(crate) fn raw_fd(&self, id: SocketId) -> Option<std::os::fd::RawFd> {
        self.sockets.source(id).and_then(Source::raw_file)
    }

    /// Runs `f` on the OS socket of `id`; `None` if no socket is attached as `id`.
    pub(crate) fn with_socket<R>(
        &self,
        id: SocketId,
        f: impl FnOnce(SockRef<'_>) -> io::Result<R>,
    ) -> Option<io::Result<R>> {
        self.sockets.source(id).map(|source| f(source.sock_ref()))
    }

    /// Always `false`: poll accepts only within a turn, on readiness.
    #[allow(clippy::unused_self)]
    pub(crate) fn accept_in_flight(&self, _id: SocketId) -> bool {
        false
    }

    /// One loop turn: reconcile, wait once, perform the ready I/O, fire timers.
    ///
    /// # Errors
    /// A failure of the wait itself (EINTR is not one: it ends the wait with no events).
    pub(crate) fn turn(
        &mut self,
        core: &mut Core,
        timeout: Option<Duration>,
        out: &mut Vec<Completion>,
    ) -> io::Result<()> {
        let before = out.len();
        let registry = self.poll.registry();
        let closed = self.sockets.reconcile(registry, core, out);
        self.timers.reconcile(core);
        self.sockets.relieve_starved(core);
        debug_assert!(!core.has_dirty(), "reconciliation left changes behind");
        if closed {
            // Freed descriptors may let a listener that hit EMFILE accept again.
            self.sockets.promote_deferred(core);
        }

        let now = Instant::now();
        let wait = if out.len() > before || self.sockets.has_ready() {
            Some(Duration::ZERO)
        } else {
            let until_timer = self
                .timers
                .next_deadline(core)
                .map(|deadline| deadline.saturating_duration_since(now));
            match (timeout, until_timer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        core.stats.enters += 1;
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            // A signal ended the wait: a turn with no events, not an error.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(e),
        }

        let mut woken = false;
        for event in self.events.iter() {
            core.stats.completions += 1;
            if event.token() == WAKE_TOKEN {
                woken = true;
            } else {
                self.sockets.on_event(core, event);
            }
        }
        if woken {
            out.push(Completion::Woken);
        }
        self.sockets.promote_deferred(core);
        let registry = self.poll.registry();
        self.sockets.run(registry, core, out);
        self.timers.fire(core, Instant::now(), out);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
