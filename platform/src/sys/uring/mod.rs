//! The io_uring backend.
//!
//! Owns: one ring per driver (so per thread), its provided buffer ring, the per-socket
//! memory that in-flight operations point at, and the translation of CQEs into
//! [`Completion`]s.
//! Contract: see `sys/mod.rs`. Everything queued during a loop turn is submitted by the one
//! `io_uring_enter` that also waits (an extra enter happens only when the SQ fills up).
//!
//! Safety model — memory the kernel may touch, and until when:
//! - Receive buffers: the provided buffer ring (see `buf/`); the kernel writes only buffers
//!   published in the ring, and hands each back with exactly one CQE (`IORING_CQE_F_BUFFER`),
//!   which this module claims exactly once.
//! - Per-socket operation memory (`SendOp`, `UdpOps`) lives in boxes in `slots[slot]`; the
//!   connect address in its box in the socket's state in `Core` (`connect_to`), cleared at
//!   the connect's CQE or dropped with the state when the slot is released. A box is reused
//!   only when its operation's final CQE arrived. A slot is
//!   freed only when no operation of it is in flight: closing a socket first cancels its
//!   operations (lifecycle: Submitted -> Cancelling -> Completed; a closed socket's
//!   operations are Orphaned: their CQEs are reaped and dropped, never delivered).
//! - Bytes being sent belong to the socket's send queue in `Core`, which is dropped only when
//!   the slot is released, so after the send's CQE. A datagram being sent is moved with its
//!   header into `datagram_sends` (see `datagram.rs`) and dropped at its own CQE.
//! - Timer timespecs live in `timers[slot]` until the timer's CQE.
//! - On drop, every in-flight operation is cancelled and reaped; if the kernel does not
//!   finish within a bound, all of the memory above is leaked rather than freed.
#![allow(unsafe_code)] // Submitting SQEs that point at memory we own; each block has a SAFETY note.

/// Evaluates `$build` with `$fd` bound to the socket's fixed file table entry when it has
/// one (`types::Fixed`), else to its descriptor (`types::Fd`): both name a file in an SQE.
macro_rules! with_fd {
    ($target:expr, |$fd:ident| $build:expr) => {
        match $target {
            SockFd::Fixed(index) => {
                let $fd = io_uring::types::Fixed(index);
                $build
            }
            SockFd::Raw(raw) => {
                let $fd = io_uring::types::Fd(raw);
                $build
            }
        }
    };
}

mod datagram;
mod file;
mod fixed;
mod send;
mod setup;
mod submit;
mod wait;

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use io_uring::types::{CancelBuilder, Fd, TimeoutFlags, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};
use socket2::{SockRef, Socket};

use crate::buf::{BufPool, RecvBuf};
use crate::completion::Completion;
use crate::config::{Capabilities, DriverConfig};
use crate::error::{OpError, UringUnavailable};
use crate::id::{OpId, OpKind, SocketId, TimerId};
use crate::process::FileKind;
use crate::table::{Core, SendQueue, Shutdown, SocketKind, TimerState};
use crate::waker::Waker;

use datagram::{DatagramSends, UdpOps};
use file::FileOps;
use fixed::{FixedFiles, SockFd};
use send::{SendOp, ZcOrphans};

/// `IORING_ENTER_GETEVENTS` (io_uring.h): wait for / reap completions.
const ENTER_GETEVENTS: u32 = 1 << 0;
/// `IORING_ENTER_EXT_ARG` (io_uring.h, 5.11): the argument is an `io_uring_getevents_arg`.
const ENTER_EXT_ARG: u32 = 1 << 3;
/// Buffer group id of the driver's provided buffer ring.
const BGID: u16 = 0;
/// How long dropping a driver waits for cancelled operations before leaking their memory.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Writes to the wake-up eventfd (called from any thread through [`Waker`]).
pub(crate) fn signal_eventfd(fd: &OwnedFd) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local to an fd we own; eventfd needs exactly 8.
    let n = unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
    if n == 8 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    // EAGAIN: the counter is saturated, so a wake-up is already pending.
    if error.raw_os_error() == Some(libc::EAGAIN) {
        Ok(())
    } else {
        Err(error)
    }
}

/// Backend state of one socket slot.
struct Slot {
    /// `None` once a close was submitted (the kernel owns the descriptor then).
    fd: Option<OwnedFd>,
    raw: RawFd,
    /// Its entry in the ring's fixed file table (see `fixed.rs`), or `FIXED_UNTRIED` (none
    /// asked for yet: it is at the socket's first reconcile) or `FIXED_NONE` (none to have).
    /// One `u32`, not an `Option<u32>` and a `bool` (issue 16: memory per idle connection).
    fixed: u32,
    /// `OpKind::bit`s of operations in flight.
    inflight: u32,
    /// `OpKind::bit`s of in-flight operations we asked the kernel to cancel.
    cancelling: u32,
    /// Multishot recv ended with ENOBUFS; re-armed once buffers come back.
    starved: bool,
    /// The last send (stream or datagram) finished with `EAGAIN`: io_uring gives up its own
    /// poll-and-retry on a non-blocking socket after enough wake-ups without progress (a
    /// peer that stops reading for a while). The bytes stay queued; a `SendPoll` waits for
    /// room and the send is submitted again.
    send_blocked: bool,
    send: Option<Box<SendOp>>,
    /// Zero-copy flags (see [`Zc`]).
    zc: Zc,
    /// Boxed, made at the first zero-copy send: zero-copy sends are off by default, and a
    /// queue inline is 48 bytes in every socket's slot (issue 16: memory per idle
    /// connection).
    zc_held: Option<Box<SendQueue>>,
    udp: Option<Box<UdpOps>>,
}

/// `Slot::fixed` before the socket's first reconcile asked for an entry.
const FIXED_UNTRIED: u32 = u32::MAX;
/// `Slot::fixed` of a socket without an entry (not a plain stream, or the table was full).
const FIXED_NONE: u32 = u32::MAX - 1;

/// A socket's zero-copy state, one bit each (as `bool`s they made every slot 8 bytes
/// larger, issue 16: memory per idle connection).
#[derive(Clone, Copy, Debug, Default)]
struct Zc(u8);

impl Zc {
    /// A zero-copy send's result came and its notification did not: the kernel may still
    /// read the sent bytes, kept in `zc_held` (see `send.rs`). Later sends are plain ones
    /// until the notification.
    const WAITING: u8 = 1;
    /// The send in flight is a zero-copy one.
    const IN_FLIGHT: u8 = 2;
    /// The socket refused a zero-copy send (EOPNOTSUPP: a Unix socket, say): plain sends
    /// only.
    const REFUSED: u8 = 4;

    fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }
}

impl Slot {
    fn has(&self, kind: OpKind) -> bool {
        self.inflight & kind.bit() != 0
    }

    /// Its entry in the ring's fixed file table, if it has one.
    fn fixed(&self) -> Option<u32> {
        (self.fixed < FIXED_NONE).then_some(self.fixed)
    }
}

/// Builds a zeroed `msghdr` (all pointers null, lengths 0), a valid empty header.
fn empty_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is plain old data; all-zero is a valid value (null pointers, 0 lengths).
    unsafe { mem::zeroed() }
}

/// The io_uring backend of one driver.
pub(crate) struct Uring {
    ring: IoUring,
    pool: BufPool,
    capabilities: Capabilities,
    slots: Vec<Option<Slot>>,
    timer_specs: Vec<Option<Box<Timespec>>>,
    eventfd: Arc<OwnedFd>,
    wake_buf: Box<u64>,
    wake_armed: bool,
    /// SQEs queued or submitted whose final CQE has not arrived.
    inflight: usize,
    /// SQEs that did not fit while the kernel refused submissions (CQ overflowing); they
    /// go first next turn. Never dropped: each one's memory and state are already committed.
    backlog: std::collections::VecDeque<squeue::Entry>,
    /// Datagram sends in flight (their `OpId` slot is their key here, not a socket's).
    datagram_sends: DatagramSends,
    /// File operations in flight (their `OpId` slot is their key here).
    file_ops: FileOps,
    /// Stream sends of at least this many bytes are zero-copy (`None`: none are).
    zc_min: Option<usize>,
    /// Send queues of closed sockets waiting for a zero-copy notification.
    zc_orphans: ZcOrphans,
    /// The ring's fixed file table (empty when off).
    fixed_files: FixedFiles,
    /// The SQEs made while reconciling the dirty sockets (kept for their room: an array of
    /// eight `Option`s per socket cost a 576-byte copy per reconcile, issue 16), pushed
    /// together after the last one.
    scratch_sqes: Vec<squeue::Entry>,
    /// The datagrams of the next datagram send, while it is gathered (kept for its room).
    scratch_run: Vec<Bytes>,
    /// Room for gathering a run (`DriverConfig::udp_gso_gather`).
    scratch_gather: crate::sys::udp_gso::Gather,
    /// Sockets whose recv waits for free buffers, oldest first.
    starved: Vec<SocketId>,
    max_iovecs: usize,
    /// [`DriverConfig::udp_gso`], for each new datagram socket.
    udp_gso: bool,
    /// [`DriverConfig::udp_gso_gather`].
    udp_gso_gather: bool,
    dropped_seen: u32,
    scratch_dirty: Vec<u32>,
    scratch_timers: Vec<(TimerId, TimerState)>,
    scratch_cqes: Vec<(u64, i32, u32)>,
    scratch_timer_slots: Vec<(usize, Instant)>,
    /// [`DriverConfig::batch_wait`] when the kernel can do it.
    batch_wait: Option<wait::BatchWaitArgs>,
}

impl Uring {
    pub(crate) fn new(config: &DriverConfig) -> Result<Self, UringUnavailable> {
        let (ring, mut capabilities) = setup::build_ring(config)?;
        setup::probe(&ring, &mut capabilities)?;
        if config.simulate_no_file_ops {
            capabilities.file_ops = false;
        }
        capabilities.send_zc &= config.send_zc_min.is_some();
        let zc_min = config.send_zc_min.filter(|_| capabilities.send_zc);
        let fixed_files = FixedFiles::register(&ring, config.fixed_files);
        capabilities.fixed_files = fixed_files.size();
        capabilities.recv_bundle = config.recv_bundle && ring.params().is_feature_recvsend_bundle();
        let batch_wait = wait::BatchWaitArgs::new(config.batch_wait, ring.params());
        capabilities.batch_wait = batch_wait.is_some();
        let failed = |step| {
            move |e: io::Error| UringUnavailable::SetupFailed {
                step,
                error: e.to_string(),
            }
        };
        // Each buffer has room for a multishot recvmsg's header and sender address before a
        // datagram of `buf_size` bytes (a stream receive may use that room too).
        let size = config.buf_size.saturating_add(datagram::RECV_HEADROOM);
        let pool = BufPool::new_ring(size, config.buf_count)
            .map_err(failed("allocating the buffer ring"))?;
        // SAFETY: the ring entries live in `pool`, which `self` keeps until the ring is gone
        // (field order: `ring` drops first) or leaks on an unclean drop.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(pool.ring_addr(), pool.count(), BGID, 0)
        }
        .map_err(failed("registering the buffer ring"))?;
        capabilities.buf_ring = true;
        // Blocking on purpose: io_uring reads it without blocking and waits by polling, while
        // an O_NONBLOCK eventfd could complete with EAGAIN at once on kernels whose eventfd
        // lacks nowait support, turning every wait into a spin.
        // SAFETY: plain syscall; the result is checked before use.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(failed("creating the wake-up eventfd")(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `efd` is a fresh descriptor nobody else owns.
        let eventfd = Arc::new(unsafe { OwnedFd::from_raw_fd(efd) });
        Ok(Self {
            ring,
            pool,
            capabilities,
            slots: Vec::new(),
            timer_specs: Vec::new(),
            eventfd,
            wake_buf: Box::new(0),
            wake_armed: false,
            inflight: 0,
            backlog: std::collections::VecDeque::new(),
            datagram_sends: DatagramSends::default(),
            file_ops: FileOps::default(),
            zc_min,
            zc_orphans: ZcOrphans::default(),
            fixed_files,
            scratch_sqes: Vec::new(),
            scratch_run: Vec::new(),
            scratch_gather: crate::sys::udp_gso::Gather::default(),
            starved: Vec::new(),
            max_iovecs: config.max_send_iovecs,
            udp_gso: config.udp_gso,
            udp_gso_gather: config.udp_gso_gather,
            dropped_seen: 0,
            scratch_dirty: Vec::new(),
            scratch_timers: Vec::new(),
            scratch_cqes: Vec::new(),
            scratch_timer_slots: Vec::new(),
            batch_wait,
        })
    }

    pub(crate) fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    pub(crate) fn buffers_available(&self) -> u32 {
        self.pool.available()
    }

    pub(crate) fn waker(&self) -> Waker {
        Waker::eventfd(Arc::clone(&self.eventfd))
    }

    pub(crate) fn attach(
        &mut self,
        id: SocketId,
        socket: Socket,
        kind: SocketKind,
    ) -> io::Result<()> {
        self.attach_file(id, OwnedFd::from(socket), kind)
    }

    /// Takes descriptor `fd` for slot `id`: a socket, or a pipe end, terminal or exit
    /// descriptor (which operations a slot gets comes from its wanted state in `Core`).
    pub(crate) fn attach_file(
        &mut self,
        id: SocketId,
        fd: OwnedFd,
        kind: SocketKind,
    ) -> io::Result<()> {
        let index = id.slot() as usize;
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        debug_assert!(
            self.slots[index].is_none(),
            "slot reused while still attached"
        );
        let udp =
            (kind == SocketKind::Datagram).then(|| UdpOps::new(self.udp_gso, self.udp_gso_gather));
        self.slots[index] = Some(Slot {
            raw: fd.as_raw_fd(),
            fd: Some(fd),
            fixed: FIXED_UNTRIED,
            inflight: 0,
            cancelling: 0,
            starved: false,
            send_blocked: false,
            send: None,
            zc: Zc::default(),
            zc_held: None,
            udp,
        });
        Ok(())
    }

    /// The descriptor of `id`, while this backend holds it.
    pub(crate) fn raw_fd(&self, id: SocketId) -> Option<RawFd> {
        let slot = self.slots.get(id.slot() as usize)?.as_ref()?;
        slot.fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    pub(crate) fn with_socket<R>(
        &self,
        id: SocketId,
        f: impl FnOnce(SockRef<'_>) -> io::Result<R>,
    ) -> Option<io::Result<R>> {
        let fd = self.slots.get(id.slot() as usize)?.as_ref()?.fd.as_ref()?;
        Some(f(SockRef::from(fd)))
    }

    /// Whether listener `id` has an accept with the kernel (see `Driver::accept_in_flight`).
    pub(crate) fn accept_in_flight(&self, id: SocketId) -> bool {
        self.slots
            .get(id.slot() as usize)
            .and_then(Option::as_ref)
            .is_some_and(|slot| slot.has(OpKind::Accept))
    }

    pub(crate) fn turn(
        &mut self,
        core: &mut Core,
        timeout: Option<Duration>,
        out: &mut Vec<Completion>,
    ) -> io::Result<()> {
        let before = out.len();
        self.flush_backlog(core);
        self.reconcile(core, out);
        let ready =
            out.len() > before || !self.ring.completion().is_empty() || !self.backlog.is_empty();
        let want = if ready || timeout == Some(Duration::ZERO) {
            0
        } else {
            1
        };
        self.enter_turn(core, want, timeout)?;
        let reaped = self.reap(core, out);
        self.note_turn(out.len() - before);
        reaped
    }

    /// Turns what the caller asked for into SQEs.
    fn reconcile(&mut self, core: &mut Core, out: &mut Vec<Completion>) {
        if !self.wake_armed {
            let entry = opcode::Read::new(
                Fd(self.eventfd.as_raw_fd()),
                (&raw mut *self.wake_buf).cast(),
                8,
            )
            .build()
            .user_data(
                OpId {
                    slot: 0,
                    generation: 0,
                    kind: OpKind::Wake,
                }
                .encode(),
            );
            self.push(core, entry);
            self.wake_armed = true;
        }
        self.rearm_starved(core);
        self.reconcile_timers(core);
        let mut dirty = mem::take(&mut self.scratch_dirty);
        core.take_dirty(&mut dirty);
        let mut sqes = mem::take(&mut self.scratch_sqes);
        for &slot in &dirty {
            self.reconcile_socket(core, slot, &mut sqes, out);
        }
        // Every socket's SQEs in one batch, in order (issue 16: one SQ view per reconcile,
        // not one per SQE).
        self.push_batch(core, &mut sqes);
        self.scratch_sqes = sqes;
        dirty.clear();
        self.scratch_dirty = dirty;
    }

    /// Re-arms receives that ran out of buffers, as many as there are buffers back.
    fn rearm_starved(&mut self, core: &mut Core) {
        let budget = self.pool.available() as usize;
        if budget == 0 || self.starved.is_empty() {
            return;
        }
        let take = budget.min(self.starved.len());
        for id in self.starved.drain(..take) {
            if let Some(Some(slot)) = self.slots.get_mut(id.slot() as usize)
                && core.current_mut(id.slot(), id.generation()).is_some()
            {
                slot.starved = false;
                core.mark_dirty(id);
            }
        }
    }

    fn reconcile_timers(&mut self, core: &mut Core) {
        let mut timers = mem::take(&mut self.scratch_timers);
        core.take_dirty_timers(&mut timers);
        // Deadlines become absolute CLOCK_MONOTONIC times (IORING_TIMEOUT_ABS), from one
        // reading of both clocks: a timer then fires at its deadline however long this thread
        // is preempted before submitting, and timers keep their deadline order.
        let mut clocks = None;
        for &(id, state) in &timers {
            let index = id.slot() as usize;
            let entry = match state {
                TimerState::Pending { deadline } => {
                    let (now, monotonic) =
                        *clocks.get_or_insert_with(|| (Instant::now(), monotonic_now()));
                    let at = monotonic + deadline.saturating_duration_since(now);
                    if self.timer_specs.len() <= index {
                        self.timer_specs.resize_with(index + 1, || None);
                    }
                    let spec = self.timer_specs[index].insert(Box::new(
                        Timespec::new().sec(at.as_secs()).nsec(at.subsec_nanos()),
                    ));
                    core.set_timer_state(id.slot(), TimerState::Armed { deadline });
                    opcode::Timeout::new(&raw const **spec)
                        .flags(TimeoutFlags::ABS)
                        .build()
                        .user_data(OpId::timer(id, OpKind::Timeout).encode())
                }
                TimerState::Cancelling => {
                    opcode::TimeoutRemove::new(OpId::timer(id, OpKind::Timeout).encode())
                        .build()
                        .user_data(OpId::timer(id, OpKind::TimeoutRemove).encode())
                }
                TimerState::Armed { .. } | TimerState::Vacant => continue,
            };
            self.push(core, entry);
        }
        self.scratch_timers = timers;
    }

    /// Turns what the caller asked of socket `slot_index` into SQEs, appended to `sqes`
    /// (pushed by the caller once every dirty socket is done).
    fn reconcile_socket(
        &mut self,
        core: &mut Core,
        slot_index: u32,
        sqes: &mut Vec<squeue::Entry>,
        out: &mut Vec<Completion>,
    ) {
        // System calls made here for a queue holding file ranges, and whether its budget
        // ran out (it goes on next turn).
        let (mut pumped, mut again) = (0u64, false);
        let mut gso_sends = 0;
        let Some((id, state)) = core.slot_mut(slot_index) else {
            return;
        };
        let Some(slot) = self
            .slots
            .get_mut(slot_index as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let fd = Fd(slot.raw);
        let mut table_full = 0;
        if slot.fixed == FIXED_UNTRIED {
            slot.fixed = FIXED_NONE;
            if state.kind == SocketKind::Stream
                && state.file.is_none()
                && !state.closing
                && self.fixed_files.size() > 0
            {
                let entry = self.fixed_files.install(&self.ring, slot.raw);
                table_full += u64::from(entry.is_none());
                slot.fixed = entry.unwrap_or(FIXED_NONE);
            }
        }
        // Receives, sends, connects and shutdowns name the socket by its fixed table entry.
        let target = slot.fixed().map_or(SockFd::Raw(slot.raw), SockFd::Fixed);
        let op = |kind| OpId::socket(id, kind).encode();
        let mut zc_sends = 0;

        if state.closing {
            if slot.zc.has(Zc::WAITING) && !slot.has(OpKind::Send) {
                // A zero-copy send is done but its notification is not: the kernel may
                // still read its bytes (until the peer acknowledges them, which a peer that
                // stops reading may never do). Keep them aside until it comes and close now
                // rather than wait on the peer. The queue goes too: a close may have come
                // before the send's result moved its bytes to `zc_held`.
                slot.zc.set(Zc::WAITING, false);
                let mut held = slot.zc_held.take().map_or_else(SendQueue::default, |q| *q);
                let unsent = state.send.len();
                state.send.advance_into(unsent, &mut held);
                self.zc_orphans.keep(op(OpKind::Send), held);
                if self.zc_orphans.given_up() {
                    self.inflight -= 1;
                }
            }
            let open_ops = slot.inflight & !OpKind::Close.bit();
            if slot.has(OpKind::Close) {
                // Waiting for the close CQE.
            } else if open_ops == 0 {
                // Nothing of this socket is in flight: hand the descriptor to the kernel.
                let fd = slot
                    .fd
                    .take()
                    .map(IntoRawFd::into_raw_fd)
                    .unwrap_or(slot.raw);
                slot.inflight |= OpKind::Close.bit();
                if let Some(index) = slot.fixed() {
                    // The table's reference first (hard-linked: the descriptor's close
                    // follows it whatever its result), so the socket is closed by the
                    // second close and the entry is free when its CQE comes.
                    sqes.push(
                        opcode::Close::new(io_uring::types::Fixed(index))
                            .build()
                            .flags(squeue::Flags::IO_HARDLINK)
                            .user_data(op(OpKind::Cancel)),
                    );
                }
                sqes.push(
                    opcode::Close::new(Fd(fd))
                        .build()
                        .user_data(op(OpKind::Close)),
                );
            } else {
                for kind in [
                    OpKind::Accept,
                    OpKind::Recv,
                    OpKind::Send,
                    OpKind::Connect,
                    OpKind::Shutdown,
                    OpKind::RecvFrom,
                    OpKind::SplicePollIn,
                    OpKind::SplicePollOut,
                    OpKind::SendPoll,
                    OpKind::ChildExit,
                ] {
                    if slot.has(kind) && slot.cancelling & kind.bit() == 0 {
                        slot.cancelling |= kind.bit();
                        sqes.push(cancel(op(kind), op(OpKind::Cancel)));
                    }
                }
                // Datagram sends each have their own user_data: cancel them by descriptor.
                let kind = OpKind::SendTo;
                if slot.has(kind) && slot.cancelling & kind.bit() == 0 {
                    slot.cancelling |= kind.bit();
                    sqes.push(
                        opcode::AsyncCancel2::new(CancelBuilder::fd(fd).all())
                            .build()
                            .user_data(op(OpKind::Cancel)),
                    );
                }
            }
        } else {
            match state.kind {
                SocketKind::Listener => {
                    if state.want_accept && !slot.has(OpKind::Accept) {
                        slot.inflight |= OpKind::Accept.bit();
                        sqes.push(
                            opcode::AcceptMulti::new(fd)
                                .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
                                .build()
                                .user_data(op(OpKind::Accept)),
                        );
                    } else if !state.want_accept
                        && slot.has(OpKind::Accept)
                        && slot.cancelling & OpKind::Accept.bit() == 0
                    {
                        slot.cancelling |= OpKind::Accept.bit();
                        sqes.push(
                            opcode::AsyncCancel::new(op(OpKind::Accept))
                                .build()
                                .user_data(op(OpKind::Cancel)),
                        );
                    }
                }
                SocketKind::Stream => {
                    // The address stays in the table until the connect completes (the kernel
                    // may read it until then): not copied into every slot (issue 16).
                    if let Some(addr) = state
                        .connect_to
                        .as_deref()
                        .filter(|_| !slot.has(OpKind::Connect))
                    {
                        slot.inflight |= OpKind::Connect.bit();
                        sqes.push(with_fd!(target, |fd| opcode::Connect::new(
                            fd,
                            addr.as_ptr().cast(),
                            addr.len()
                        )
                        .build()
                        .user_data(op(OpKind::Connect))));
                    }
                    if !state.connecting {
                        let splicing = state.splicing();
                        if state.want_recv && !splicing && !slot.has(OpKind::Recv) && !slot.starved
                        {
                            slot.inflight |= OpKind::Recv.bit();
                            let entry = if state.file.is_some() {
                                // A pipe or terminal: no recv(2). One read into a ring buffer
                                // per submission (re-armed when it completes; the kernel
                                // polls the descriptor while it is empty).
                                opcode::Read::new(fd, std::ptr::null_mut(), 0)
                                    .buf_group(BGID)
                                    .build()
                                    .flags(squeue::Flags::BUFFER_SELECT)
                            } else {
                                with_fd!(target, |fd| if self.capabilities.recv_bundle {
                                    opcode::RecvMultiBundle::new(fd, BGID).build()
                                } else {
                                    opcode::RecvMulti::new(fd, BGID).build()
                                })
                            };
                            sqes.push(entry.user_data(op(OpKind::Recv)));
                        } else if (!state.want_recv || splicing)
                            && slot.has(OpKind::Recv)
                            && slot.cancelling & OpKind::Recv.bit() == 0
                        {
                            slot.cancelling |= OpKind::Recv.bit();
                            sqes.push(
                                opcode::AsyncCancel::new(op(OpKind::Recv))
                                    .build()
                                    .user_data(op(OpKind::Cancel)),
                            );
                        }
                        // A queue holding file ranges is served here, on the core's thread
                        // (bytes by sendmsg, ranges by sendfile: `sys/sendfile.rs`), once no
                        // SEND is in flight, until no range is left; a full socket waits
                        // for a poll.
                        if state.send.file_len() > 0
                            && !state.send_failed
                            && !slot.send_blocked
                            && !slot.has(OpKind::Send)
                        {
                            let (wait, calls) = super::sendfile::pump_queue(
                                state,
                                id,
                                slot.raw,
                                self.max_iovecs,
                                &mut *out,
                            );
                            pumped += calls;
                            match wait {
                                super::sendfile::Wait::Writable => slot.send_blocked = true,
                                super::sendfile::Wait::Budget => again = true,
                                super::sendfile::Wait::Done => {}
                            }
                        }
                        let want_send = !state.send.is_empty() && !state.send_failed;
                        let file_first = state.send.file_len() > 0;
                        if want_send && slot.send_blocked && !slot.has(OpKind::SendPoll) {
                            slot.inflight |= OpKind::SendPoll.bit();
                            sqes.push(
                                opcode::PollAdd::new(fd, libc::POLLOUT as u32)
                                    .build()
                                    .user_data(op(OpKind::SendPoll)),
                            );
                        }
                        if want_send && !slot.send_blocked && !file_first && !slot.has(OpKind::Send)
                        {
                            let send = slot.send.get_or_insert_with(|| Box::new(SendOp::new()));
                            let bytes = send.fill(&state.send, self.max_iovecs);
                            let file = state.file.is_some();
                            let zero_copy = !file
                                && !slot.zc.has(Zc::REFUSED)
                                && !slot.zc.has(Zc::WAITING)
                                && self.zc_min.is_some_and(|min| bytes >= min);
                            slot.zc.set(Zc::IN_FLIGHT, zero_copy);
                            zc_sends += u64::from(zero_copy);
                            slot.inflight |= OpKind::Send.bit();
                            let entry = send.entry(target, file, zero_copy);
                            sqes.push(entry.user_data(op(OpKind::Send)));
                        }
                        // Splicing: wait for bytes to read (once a receive in flight is gone,
                        // so no byte is both received and spliced) and, as a destination, for
                        // room to write the pipe's bytes (after the send queue).
                        if state.want_recv
                            && state
                                .splice_target()
                                .is_some_and(|(_, pipe_empty)| pipe_empty)
                            && !slot.has(OpKind::Recv)
                            && !slot.has(OpKind::SplicePollIn)
                        {
                            slot.inflight |= OpKind::SplicePollIn.bit();
                            sqes.push(
                                opcode::PollAdd::new(fd, libc::POLLIN as u32)
                                    .build()
                                    .user_data(op(OpKind::SplicePollIn)),
                            );
                        }
                        if state.splice_backlog
                            && state.send.is_empty()
                            && !slot.has(OpKind::Send)
                            && !slot.has(OpKind::SplicePollOut)
                        {
                            slot.inflight |= OpKind::SplicePollOut.bit();
                            sqes.push(
                                opcode::PollAdd::new(fd, libc::POLLOUT as u32)
                                    .build()
                                    .user_data(op(OpKind::SplicePollOut)),
                            );
                        }
                        if state.shutdown == Shutdown::Wanted
                            && state.send.is_empty()
                            && !slot.has(OpKind::Send)
                        {
                            state.shutdown = Shutdown::Started;
                            slot.inflight |= OpKind::Shutdown.bit();
                            sqes.push(with_fd!(target, |fd| opcode::Shutdown::new(
                                fd,
                                libc::SHUT_WR
                            )
                            .build()
                            .user_data(op(OpKind::Shutdown))));
                        }
                    }
                }
                SocketKind::Child => {
                    // The exit descriptor (pidfd or a waiter's pipe) turns readable at the
                    // child's exit; the completion reaps it.
                    if state.want_recv && !slot.has(OpKind::ChildExit) {
                        slot.inflight |= OpKind::ChildExit.bit();
                        sqes.push(
                            opcode::PollAdd::new(fd, libc::POLLIN as u32)
                                .build()
                                .user_data(op(OpKind::ChildExit)),
                        );
                    }
                }
                SocketKind::Datagram => {
                    let Slot {
                        udp,
                        inflight,
                        cancelling,
                        starved,
                        send_blocked,
                        ..
                    } = slot;
                    let udp = udp.as_mut().expect("datagram slots have UdpOps");
                    let recv_in_flight = *inflight & OpKind::RecvFrom.bit() != 0;
                    if state.want_recv && !recv_in_flight && !*starved {
                        *inflight |= OpKind::RecvFrom.bit();
                        sqes.push(udp.recv_entry(fd, BGID).user_data(op(OpKind::RecvFrom)));
                    } else if !state.want_recv
                        && recv_in_flight
                        && *cancelling & OpKind::RecvFrom.bit() == 0
                    {
                        *cancelling |= OpKind::RecvFrom.bit();
                        sqes.push(
                            opcode::AsyncCancel::new(op(OpKind::RecvFrom))
                                .build()
                                .user_data(op(OpKind::Cancel)),
                        );
                    }
                    if *send_blocked
                        && !state.datagrams.is_empty()
                        && *inflight & OpKind::SendPoll.bit() == 0
                    {
                        *inflight |= OpKind::SendPoll.bit();
                        sqes.push(
                            opcode::PollAdd::new(fd, libc::POLLOUT as u32)
                                .build()
                                .user_data(op(OpKind::SendPoll)),
                        );
                    }
                    // Every queued datagram goes now (up to MAX_SENDS in flight): a burst of
                    // answers costs one io_uring_enter. Runs of same-size datagrams to one
                    // destination go as one GSO send each.
                    let mut run = mem::take(&mut self.scratch_run);
                    if !*send_blocked && udp.sends < datagram::MAX_SENDS {
                        datagram::gather(&mut state.datagrams, udp, &mut self.scratch_gather);
                    }
                    while !*send_blocked
                        && udp.sends < datagram::MAX_SENDS
                        && let Some(to) = datagram::take_run(&mut state.datagrams, udp, &mut run)
                    {
                        udp.sends += 1;
                        udp.send_bytes += run.iter().map(Bytes::len).sum::<usize>();
                        gso_sends += u64::from(run.len() > 1);
                        *inflight |= OpKind::SendTo.bit();
                        let entry = self.datagram_sends.start(id, fd, &mut run, to);
                        sqes.push(entry);
                    }
                    self.scratch_run = run;
                }
            }
        }
        core.stats.zc_sends += zc_sends;
        core.stats.fixed_table_full += table_full;
        core.stats.submitted += pumped;
        if again {
            core.mark_dirty(id);
        }
        core.stats.gso_sends += gso_sends;
    }

    /// Reaps every available CQE into completions, flushing a CQ overflow if one happened.
    fn reap(&mut self, core: &mut Core, out: &mut Vec<Completion>) -> io::Result<()> {
        let mut cqes = mem::take(&mut self.scratch_cqes);
        let mut timer_slots = mem::take(&mut self.scratch_timer_slots);
        loop {
            cqes.clear();
            {
                let mut cq = self.ring.completion();
                let dropped = cq.overflow();
                if dropped != self.dropped_seen {
                    let lost = dropped.wrapping_sub(self.dropped_seen);
                    core.stats.cq_dropped += u64::from(lost);
                    self.dropped_seen = dropped;
                    tracing::error!(
                        lost,
                        "io_uring dropped completions on CQ overflow (no IORING_FEAT_NODROP)"
                    );
                }
                cqes.extend(cq.by_ref().map(|e| (e.user_data(), e.result(), e.flags())));
            }
            core.stats.completions += cqes.len() as u64;
            for &(user_data, result, flags) in &cqes {
                self.complete(core, out, &mut timer_slots, user_data, result, flags);
            }
            if !self.ring.submission().cq_overflow() {
                break;
            }
            // The kernel holds completions that did not fit: flush them into the CQ.
            core.stats.cq_overflows += 1;
            core.stats.enters += 1;
            // SAFETY: no argument is passed.
            match unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(0, 0, ENTER_GETEVENTS, None)
            } {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                    ) => {}
                Err(e) => {
                    self.scratch_cqes = cqes;
                    return Err(e);
                }
            }
        }
        // Timers that expired in one batch are delivered in deadline order.
        if timer_slots.len() > 1 {
            let mut sorted: Vec<(usize, Instant)> = timer_slots.clone();
            sorted.sort_by_key(|&(position, deadline)| (deadline, position));
            let timers: Vec<Completion> = sorted
                .iter()
                .map(|&(position, _)| mem::replace(&mut out[position], Completion::Woken))
                .collect();
            for ((position, _), timer) in timer_slots.iter().zip(timers) {
                out[*position] = timer;
            }
        }
        timer_slots.clear();
        self.scratch_timer_slots = timer_slots;
        self.scratch_cqes = cqes;
        Ok(())
    }

    /// Handles one CQE.
    fn complete(
        &mut self,
        core: &mut Core,
        out: &mut Vec<Completion>,
        timer_slots: &mut Vec<(usize, Instant)>,
        user_data: u64,
        result: i32,
        flags: u32,
    ) {
        let more = cqueue::more(flags);
        // An orphan's notification no longer counted (see `drain`) is not in flight.
        let uncounted = cqueue::notif(flags) && self.zc_orphans.uncounted(user_data);
        if !more && !uncounted {
            self.inflight -= 1;
        }
        // A buffer handed back with any CQE is claimed exactly once, here; a receive bundle
        // (more bytes than one buffer holds) brings the buffers after it in `bundle`. An
        // `Option`: dropping an empty `Vec` of buffers cost a call per CQE (issue 16).
        let mut bundle: Option<Vec<RecvBuf>> = None;
        let buf = cqueue::buffer_select(flags).map(|bid| {
            let len = result.max(0) as u32;
            if len > self.pool.buf_size() {
                core.stats.recv_bundles += 1;
                let rest = bundle.insert(Vec::new());
                // SAFETY: a bundle's first buffer id from this CQE of our ring, claimed only
                // here; only stream receives are bundles.
                unsafe { self.pool.claim_bundle(bid, len, rest) }
            } else {
                // SAFETY: the buffer id comes from this CQE of our ring, claimed only here.
                unsafe { self.pool.claim(bid, len) }
            }
        });
        let Some(op) = OpId::decode(user_data) else {
            tracing::error!(user_data, "completion with an unknown user_data");
            return;
        };
        match op.kind {
            OpKind::Wake => {
                self.wake_armed = false;
                if result >= 0 {
                    out.push(Completion::Woken);
                }
                return;
            }
            OpKind::Timeout => {
                let id = op.timer_id();
                if let Some(spec) = self.timer_specs.get_mut(id.slot() as usize) {
                    *spec = None;
                }
                match core.timer_state(id.slot(), id.generation()) {
                    Some(TimerState::Armed { deadline }) => {
                        core.release_timer(id.slot());
                        if result == -libc::ETIME || result == 0 {
                            timer_slots.push((out.len(), deadline));
                            out.push(Completion::Timer { timer: id });
                        }
                    }
                    Some(TimerState::Cancelling) => core.release_timer(id.slot()),
                    _ => core.stats.stale += 1,
                }
                return;
            }
            OpKind::TimeoutRemove | OpKind::Cancel => return,
            OpKind::SendTo => {
                self.complete_datagram_send(core, out, op.slot, result);
                return;
            }
            OpKind::File => {
                if let Some((op, result)) = self.file_ops.complete(op, result) {
                    out.push(Completion::File { op, result });
                }
                return;
            }
            OpKind::Send if cqueue::notif(flags) => {
                core.stats.zc_notifications += 1;
                core.stats.zc_copied += u64::from(result as u32 & send::ZC_COPIED != 0);
                if self.zc_orphans.release(user_data) {
                    return;
                }
            }
            _ => {}
        }

        let id = op.socket_id();
        let Some(slot) = self
            .slots
            .get_mut(op.slot as usize)
            .and_then(Option::as_mut)
        else {
            core.stats.stale += 1;
            return;
        };
        let Some(state) = core.current_mut(op.slot, op.generation) else {
            core.stats.stale += 1;
            return;
        };
        // A zero-copy send ends with its result (flagged MORE: the notification follows,
        // on its own, see `send.rs`); every other operation with its last CQE.
        let notif = cqueue::notif(flags);
        let op_done = if op.kind == OpKind::Send {
            !notif
        } else {
            !more
        };
        if op_done {
            slot.inflight &= !op.kind.bit();
            slot.cancelling &= !op.kind.bit();
        }
        if op.kind == OpKind::Send && more {
            slot.zc.set(Zc::WAITING, true);
        }
        if op.kind == OpKind::Send && notif {
            // The kernel is done with the zero-copy send's bytes.
            slot.zc.set(Zc::WAITING, false);
            slot.zc_held = None;
            core.mark_dirty(id);
            return;
        }
        if state.closing {
            core.stats.stale += 1;
            match op.kind {
                OpKind::Close => {
                    if let Some(index) = slot.fixed() {
                        self.fixed_files.release(index);
                    }
                    self.slots[op.slot as usize] = None;
                    core.release(op.slot);
                }
                // An accepted connection nobody will own: close it.
                OpKind::Accept if result >= 0 => {
                    // SAFETY: a successful accept CQE carries a new descriptor we now own.
                    drop(unsafe { OwnedFd::from_raw_fd(result) });
                }
                _ => core.mark_dirty(id),
            }
            drop(buf);
            return;
        }
        let error =
            |errno: i32| OpError::new(op.kind, Some(id), io::Error::from_raw_os_error(errno));
        // A splice to pump once this completion's borrows end.
        let mut pump = None;
        // The operation left nothing for a reconcile to do (see the `Send` arm).
        let mut settled = false;
        match op.kind {
            // Readiness for a splice (an error, ECANCELED aside, is found by the splice call).
            OpKind::SplicePollIn if result != -libc::ECANCELED => pump = Some(id),
            OpKind::SplicePollOut if result != -libc::ECANCELED => pump = state.splice_from,
            // Room to send again (an error, ECANCELED aside, is found by the send itself).
            OpKind::SendPoll => slot.send_blocked = false,
            // The operation ended without doing anything; marked dirty below, it is
            // submitted again next turn (with a fresh poll inside the kernel).
            OpKind::Accept | OpKind::Recv | OpKind::RecvFrom if result == -libc::EAGAIN => {
                core.stats.eagain_retries += 1;
            }
            // This socket has no zero-copy (not TCP or UDP): nothing was sent; plain sends
            // from now on.
            OpKind::Send if result == -libc::EOPNOTSUPP && slot.zc.has(Zc::IN_FLIGHT) => {
                slot.zc.set(Zc::REFUSED, true);
            }
            OpKind::Send if result == -libc::EAGAIN => {
                core.stats.eagain_retries += 1;
                slot.send_blocked = true;
            }
            OpKind::ChildExit if result != -libc::ECANCELED => {
                if let Some(exited) = super::process::reap_completion(id, state) {
                    out.push(exited);
                }
            }
            OpKind::Accept => {
                if result >= 0 {
                    // SAFETY: a successful accept CQE carries a new descriptor we now own.
                    let socket = Socket::from(unsafe { OwnedFd::from_raw_fd(result) });
                    let accepted = core.insert(SocketKind::Stream);
                    match self.attach(accepted, socket, SocketKind::Stream) {
                        Ok(()) => out.push(Completion::Accepted {
                            listener: id,
                            result: Ok(accepted),
                        }),
                        Err(e) => {
                            core.open_mut(accepted).expect("just added").closing = true;
                            core.release(accepted.slot());
                            out.push(Completion::Accepted {
                                listener: id,
                                result: Err(OpError::new(OpKind::Accept, Some(id), e)),
                            });
                        }
                    }
                } else if result != -libc::ECANCELED {
                    out.push(Completion::Accepted {
                        listener: id,
                        result: Err(error(-result)),
                    });
                }
            }
            OpKind::Recv => {
                if result > 0
                    && let Some(buf) = buf
                {
                    out.push(Completion::Received { socket: id, buf });
                    if let Some(rest) = bundle {
                        for buf in rest {
                            out.push(Completion::Received { socket: id, buf });
                        }
                    }
                } else if result == 0 || (result == -libc::EIO && state.file == Some(FileKind::Pty))
                {
                    // EIO from a terminal's master side: the child side is closed.
                    state.end_recv();
                    out.push(Completion::Eof { socket: id });
                } else if result == -libc::ENOBUFS {
                    core.stats.buffer_starvations += 1;
                    slot.starved = true;
                    self.starved.push(id);
                } else if result != -libc::ECANCELED {
                    let errno = if result < 0 { -result } else { libc::EIO };
                    state.end_recv();
                    out.push(Completion::RecvError {
                        socket: id,
                        error: error(errno),
                    });
                }
            }
            OpKind::Send => {
                if result >= 0 {
                    let bytes = result as usize;
                    if more {
                        let held = slot.zc_held.get_or_insert_with(Box::default);
                        state.send.advance_into(bytes, held);
                    } else {
                        state.send.advance(bytes);
                        // The queue is empty and nothing waited for the send to end (a
                        // shutdown, a splice's bytes): a reconcile would find nothing to
                        // submit, as the receive side does not depend on sends (issue 16:
                        // one reconcile per keep-alive answer saved).
                        settled = state.send.is_empty()
                            && state.shutdown != Shutdown::Wanted
                            && !state.splice_backlog;
                    }
                    out.push(Completion::Sent {
                        socket: id,
                        bytes,
                        queued: state.send.len(),
                    });
                } else {
                    state.send_failed = true;
                    if more {
                        let unsent = state.send.len();
                        let held = slot.zc_held.get_or_insert_with(Box::default);
                        state.send.advance_into(unsent, held);
                    }
                    state.send.clear();
                    out.push(Completion::SendError {
                        socket: id,
                        error: error(-result),
                    });
                }
            }
            OpKind::Connect => {
                state.connect_to = None;
                state.connect_done(result == 0);
                let result = if result == 0 {
                    Ok(())
                } else {
                    Err(error(-result))
                };
                out.push(Completion::Connected { socket: id, result });
            }
            OpKind::Shutdown => {
                let result = if result == 0 {
                    Ok(())
                } else {
                    Err(error(-result))
                };
                out.push(Completion::ShutdownDone { socket: id, result });
            }
            OpKind::RecvFrom => match (result, buf) {
                // Each datagram comes in its own ring buffer, after the kernel's header.
                (n, Some(buf)) if n >= 0 => {
                    let udp = slot.udp.as_ref().expect("datagram slots have UdpOps");
                    match udp.parse(buf) {
                        Some((buf, datagram::Sender::Ip(from), truncated)) => {
                            out.push(Completion::ReceivedFrom {
                                socket: id,
                                buf,
                                from,
                                truncated,
                            });
                        }
                        Some((buf, datagram::Sender::Other(from), truncated)) => {
                            out.push(Completion::ReceivedFromUnix {
                                socket: id,
                                buf,
                                from: Box::new(from),
                                truncated,
                            });
                        }
                        None => core.stats.stale += 1,
                    }
                }
                (r, _) if r == -libc::ENOBUFS => {
                    core.stats.buffer_starvations += 1;
                    slot.starved = true;
                    self.starved.push(id);
                }
                (r, _) if r == -libc::ECANCELED => {}
                (r, _) => {
                    let errno = if r < 0 { -r } else { libc::EIO };
                    state.end_recv();
                    out.push(Completion::RecvError {
                        socket: id,
                        error: error(errno),
                    });
                }
            },
            OpKind::Close => {
                // Only submitted for closing sockets (handled above).
                core.stats.stale += 1;
            }
            _ => {}
        }
        if op_done && !settled {
            // Re-evaluate the socket next turn: re-arm, send more, shut down...
            core.mark_dirty(id);
        }
        if let Some(src) = pump {
            self.pump_splice(core, src, out);
        }
    }

    /// Moves what it can through the splice whose source is `src` (see `sys/splice.rs`);
    /// both sockets are re-evaluated next turn (polls re-armed as needed).
    fn pump_splice(&mut self, core: &mut Core, src: SocketId, out: &mut Vec<Completion>) {
        let Some((dst, _)) = core.open(src).and_then(|s| s.splice_target()) else {
            return;
        };
        let raw = |id: SocketId| {
            self.slots
                .get(id.slot() as usize)
                .and_then(Option::as_ref)
                .filter(|slot| slot.fd.is_some())
                .map(|slot| slot.raw)
        };
        let (Some(src_fd), Some(dst_fd)) = (raw(src), raw(dst)) else {
            return;
        };
        super::splice::run(core, src, src_fd, dst_fd, out);
        core.mark_dirty(src);
        core.mark_dirty(dst);
    }

    /// Cancels every operation and waits (bounded) for the kernel to finish with them; if it
    /// does not, leaks everything it might still touch.
    pub(crate) fn drain(&mut self, core: &mut Core) {
        if self.inflight == 0 {
            return;
        }
        let cancel_all = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(
                OpId {
                    slot: 0,
                    generation: 0,
                    kind: OpKind::Cancel,
                }
                .encode(),
            );
        // Closing every socket keeps `complete` from delivering or accepting anything while
        // the cancelled operations are reaped.
        for slot in 0..self.slots.len() as u32 {
            if let Some((_, state)) = core.slot_mut(slot) {
                state.closing = true;
            }
        }
        let deadline = Instant::now() + DRAIN_LIMIT;
        let mut sink = Vec::new();
        self.flush_backlog(core);
        self.push(core, cancel_all);
        // Zero-copy notifications can wait on a peer that does not read: their bytes are
        // leaked (see below) rather than waited for.
        self.inflight -= self.zc_orphans.give_up();
        while self.inflight > 0 && Instant::now() < deadline {
            self.orphan_zc_sends(core);
            if self.inflight == 0 {
                break;
            }
            self.flush_backlog(core);
            let waited = self.enter(core, 1, Some(Duration::from_millis(50)));
            if waited.is_err() || self.reap(core, &mut sink).is_err() {
                break;
            }
            sink.clear();
        }
        if self.inflight > 0 {
            tracing::error!(
                inflight = self.inflight,
                "io_uring operations still in flight at drop: leaking their memory"
            );
            self.pool.leak();
            core.leak_all();
            self.datagram_sends.leak();
            self.file_ops.leak();
            self.zc_orphans.leak();
            mem::forget(mem::take(&mut self.slots));
            mem::forget(mem::take(&mut self.timer_specs));
            mem::forget(mem::replace(&mut self.wake_buf, Box::new(0)));
        }
        // The kernel may still read orphaned bytes after the ring is gone.
        self.zc_orphans.leak();
    }

    /// Hands the held bytes (and the rest of the send queue) of every socket whose
    /// zero-copy notification is pending to `zc_orphans` (at drop: see `drain`).
    fn orphan_zc_sends(&mut self, core: &mut Core) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot
                .as_mut()
                .filter(|slot| slot.zc.has(Zc::WAITING) && !slot.has(OpKind::Send))
            else {
                continue;
            };
            let Some((id, state)) = core.slot_mut(index as u32) else {
                continue;
            };
            slot.zc.set(Zc::WAITING, false);
            let mut held = slot.zc_held.take().map_or_else(SendQueue::default, |q| *q);
            let unsent = state.send.len();
            state.send.advance_into(unsent, &mut held);
            self.zc_orphans
                .keep(OpId::socket(id, OpKind::Send).encode(), held);
            // No longer waited for (given up: see `ZcOrphans::give_up`).
            self.inflight -= 1;
        }
    }

    /// Submits a file operation (see [`Driver::file`](crate::Driver::file)).
    pub(crate) fn file(
        &mut self,
        core: &mut Core,
        request: crate::file::FileRequest,
    ) -> crate::file::FileOpId {
        let (id, entry) = self.file_ops.start(request);
        self.push(core, entry);
        id
    }

    /// The caller will not wait for file operation `id`.
    pub(crate) fn forget_file(&mut self, id: crate::file::FileOpId) -> bool {
        self.file_ops.forget(id)
    }

    /// File operations in flight.
    pub(crate) fn file_ops_in_flight(&self) -> usize {
        self.file_ops.len()
    }
}

/// A cancel of operation `target` (a closing socket's), completing as `user_data`.
fn cancel(target: u64, user_data: u64) -> squeue::Entry {
    opcode::AsyncCancel::new(target)
        .build()
        .user_data(user_data)
}

/// CLOCK_MONOTONIC now, the clock io_uring's absolute timeouts use (and `Instant`'s on Linux).
fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) cannot fail");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Converts a kernel-filled `sockaddr_storage` of `len` bytes to a `SocketAddr`.
fn sockaddr_to_std(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET if len as usize >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in it and
            // has a lower alignment requirement.
            let sin = unsafe { &*(&raw const *storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(&raw const *storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // `Driver::drop` drains with access to the socket table; this is the last line of
        // defence if the backend is dropped alone (construction errors).
        if self.inflight > 0 {
            self.pool.leak();
            self.datagram_sends.leak();
            self.file_ops.leak();
            self.zc_orphans.leak();
            mem::forget(mem::take(&mut self.slots));
            mem::forget(mem::take(&mut self.timer_specs));
            mem::forget(mem::replace(&mut self.wake_buf, Box::new(0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory per idle connection (issue 16): every socket has one `Slot` (as an
    /// `Option<Slot>` in the backend's table); rare parts (zero-copy held bytes, a connect
    /// address, UDP state) are boxed and this keeps them so.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn socket_slot_stays_small() {
        let size = size_of::<Option<Slot>>();
        assert!(size <= 48, "Option<Slot>: {size} bytes");
    }
}
