//! The backend-neutral half of a driver: the socket and timer tables.
//!
//! Owns: per-socket wanted state (accepting, receiving, the send queue, shutdown, close),
//! per-timer state, the list of entries changed since the backend last looked (`dirty`), and
//! slot/generation bookkeeping.
//! Contract: [`Driver`](crate::Driver) methods only record what the caller wants here; the
//! backend reconciles dirty entries at the start of each turn (submitting or performing the
//! operations) and calls [`Core::release`] once nothing of a closed socket is in flight.
//! Does not: perform any I/O.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Buf, Bytes};
use socket2::SockAddr;

use crate::config::{DriverConfig, Stats};
use crate::id::{GENERATION_MASK, SocketId, TimerId};

/// What a socket in a driver's table is for.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum SocketKind {
    /// A listening stream socket (TCP or Unix).
    Listener,
    /// A connected (or connecting) stream socket.
    Stream,
    /// A datagram socket (UDP).
    Datagram,
    /// A child process's exit watcher (see [`Driver::spawn`](crate::Driver::spawn)):
    /// "receiving" on it waits for the exit, delivered as
    /// [`Completion::Exited`](crate::Completion::Exited).
    Child,
}

/// Progress of a write-side shutdown.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Shutdown {
    /// Not asked for.
    No,
    /// Asked for; happens once the send queue is empty.
    Wanted,
    /// Submitted or done.
    Started,
}

/// A range of a regular file queued for sending ([`Driver::send_file`](crate::Driver::send_file)).
/// Sent only on Linux (sendfile); elsewhere `send_file` is refused before one is queued.
#[derive(Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct FileRange {
    /// The file (shared with its owner above the driver; closed when the last holder drops).
    pub(crate) file: std::sync::Arc<std::fs::File>,
    /// Where the next byte to send is read.
    pub(crate) offset: u64,
    /// Bytes left to send.
    pub(crate) len: u64,
}

/// One entry of a send queue: bytes in memory, or a file range the kernel reads itself.
#[derive(Debug)]
enum Segment {
    Bytes(Bytes),
    File(FileRange),
}

/// What waits to be sent on a stream socket, oldest first: bytes in memory and file ranges
/// (sent by the kernel, see `sys/sendfile.rs`), in the order queued.
///
/// Boxed, made at the first push: a socket that has sent nothing (an idle connection) has
/// no queue, and one inline is 48 bytes in every socket's slot (issue 16: memory per idle
/// connection). Once made, the box (and its deque's capacity) is kept until [`clear`], so
/// steady sending allocates nothing.
///
/// [`clear`]: SendQueue::clear
#[derive(Debug, Default)]
pub(crate) struct SendQueue(Option<Box<Queued>>);

/// The contents of a [`SendQueue`] that was pushed to.
#[derive(Debug, Default)]
struct Queued {
    bufs: VecDeque<Segment>,
    /// Bytes in memory.
    queued: usize,
    /// Bytes of file ranges.
    file_queued: u64,
}

impl Queued {
    /// A queue with room for one segment, not the four a first push reserves: a connection
    /// that answers one request at a time queues one buffer per turn (issue 16: memory per
    /// keep-alive idle connection); more room is made once when needed, and kept.
    fn new() -> Box<Self> {
        Box::new(Self {
            bufs: VecDeque::with_capacity(1),
            queued: 0,
            file_queued: 0,
        })
    }
}

impl SendQueue {
    pub(crate) fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            let q = self.0.get_or_insert_with(Queued::new);
            q.queued += bytes.len();
            q.bufs.push_back(Segment::Bytes(bytes));
        }
    }

    /// Queues `range` after everything queued so far.
    pub(crate) fn push_file(&mut self, range: FileRange) {
        if range.len > 0 {
            let q = self.0.get_or_insert_with(Queued::new);
            q.file_queued += range.len;
            q.bufs.push_back(Segment::File(range));
        }
    }

    /// Bytes in memory waiting (file ranges aside).
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.queued)
    }

    /// Bytes of file ranges waiting.
    pub(crate) fn file_len(&self) -> u64 {
        self.0.as_ref().map_or(0, |q| q.file_queued)
    }

    /// Nothing waits, neither bytes nor file ranges.
    pub(crate) fn is_empty(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|q| q.queued == 0 && q.file_queued == 0)
    }

    /// The file range at the front, if the next bytes to send come from a file.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn front_file(&self) -> Option<&FileRange> {
        match self.0.as_ref()?.bufs.front() {
            Some(Segment::File(range)) => Some(range),
            _ => None,
        }
    }

    /// The kernel sent `n` bytes of the file range at the front; drops it once done.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn advance_file(&mut self, n: u64) {
        let Some(q) = self.0.as_deref_mut() else {
            debug_assert!(false, "advance_file on an empty queue");
            return;
        };
        let Some(Segment::File(range)) = q.bufs.front_mut() else {
            debug_assert!(false, "advance_file without a file range at the front");
            return;
        };
        let n = n.min(range.len);
        range.offset += n;
        range.len -= n;
        q.file_queued -= n;
        if range.len == 0 {
            q.bufs.pop_front();
        }
    }

    /// Drops the first `n` bytes in memory (they were sent); they lie before any file range.
    pub(crate) fn advance(&mut self, mut n: usize) {
        debug_assert!(n <= self.len(), "sent more than was queued");
        let Some(q) = self.0.as_mut() else {
            return;
        };
        n = n.min(q.queued);
        q.queued -= n;
        while n > 0 {
            let Some(Segment::Bytes(front)) = q.bufs.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                q.bufs.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Moves the first `n` bytes (they were sent) to the back of `into`, sharing their
    /// memory: for a zero-copy send, which the kernel may read after it completes.
    /// They lie before any file range (zero-copy sends never carry file ranges).
    #[cfg_attr(not(uring), allow(dead_code))] // zero-copy sends exist only in the io_uring backend
    pub(crate) fn advance_into(&mut self, mut n: usize, into: &mut SendQueue) {
        let Some(q) = self.0.as_mut() else {
            return;
        };
        n = n.min(q.queued);
        q.queued -= n;
        while n > 0 {
            let Some(Segment::Bytes(front)) = q.bufs.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                if let Some(Segment::Bytes(whole)) = q.bufs.pop_front() {
                    into.push(whole);
                }
            } else {
                into.push(front.split_to(n));
                n = 0;
            }
        }
    }

    /// The only thing queued, when it is one buffer of bytes (no file range). io_uring's
    /// send fast path: unused where that backend is not built.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn only_bytes(&self) -> Option<&[u8]> {
        let q = self.0.as_deref()?;
        match q.bufs.front() {
            Some(Segment::Bytes(b)) if q.bufs.len() == 1 => Some(b),
            _ => None,
        }
    }

    /// The first `max` buffers before any file range, for a vectored send.
    pub(crate) fn slices(&self, max: usize) -> impl Iterator<Item = &[u8]> {
        // No `flat_map` over the `Option`: an empty deque iterator stands in for no queue.
        let bufs = self
            .0
            .as_deref()
            .map_or_else(Default::default, |q| q.bufs.iter());
        bufs.take(max).map_while(|segment| match segment {
            Segment::Bytes(b) => Some(&b[..]),
            Segment::File(_) => None,
        })
    }

    /// The first `max` buffers as `IoSlice`s, written into `out`.
    pub(crate) fn io_slices<'a>(&'a self, max: usize, out: &mut Vec<IoSlice<'a>>) {
        out.clear();
        out.extend(self.slices(max).map(IoSlice::new));
    }

    /// Drops everything queued, and the queue's memory with it (sending is over: a failed
    /// send, a failed connect, a splice that took the socket over).
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }
}

/// Where a queued datagram goes: an IP address inline (every UDP datagram), any other
/// address (a Unix path or abstract name) boxed. A queue entry is then 64 bytes with its
/// `Bytes` where a `SockAddr` alone is 132 (queues are moved and reordered per datagram:
/// see `sys/udp_gso.rs`), and IP destinations compare field by field, without a `memcmp`
/// of two `sockaddr_storage`s.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) enum Dest {
    /// A UDP destination.
    Ip(SocketAddr),
    /// Any other address (a Unix datagram socket's).
    Other(Box<SockAddr>),
}

impl Dest {
    /// Whether it is an IP address (a UDP destination).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn is_ip(&self) -> bool {
        matches!(self, Dest::Ip(_))
    }

    /// The address as the kernel takes it (made for an IP one, borrowed otherwise).
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) fn sock_addr(&self) -> Cow<'_, SockAddr> {
        match self {
            Dest::Ip(ip) => Cow::Owned(SockAddr::from(*ip)),
            Dest::Other(addr) => Cow::Borrowed(addr),
        }
    }
}

impl From<SockAddr> for Dest {
    fn from(addr: SockAddr) -> Self {
        match addr.as_socket() {
            Some(ip) => Dest::Ip(ip),
            None => Dest::Other(Box::new(addr)),
        }
    }
}

/// A datagram socket's queue of payloads to send, with their destinations: a `VecDeque`
/// made at the first send. Boxed: only datagram sockets have one, and a queue inline is 32
/// bytes in every socket's slot (issue 16: memory per idle connection). Reads of a queue
/// never made see an empty one; a mutable access makes it.
#[derive(Debug, Default)]
// The box is the point: one word in the slot instead of a VecDeque's four.
#[allow(clippy::box_collection)]
pub(crate) struct Datagrams(Option<Box<VecDeque<(Bytes, Dest)>>>);

/// What an unmade [`Datagrams`] reads as.
static NO_DATAGRAMS: VecDeque<(Bytes, Dest)> = VecDeque::new();

impl std::ops::Deref for Datagrams {
    type Target = VecDeque<(Bytes, Dest)>;

    fn deref(&self) -> &Self::Target {
        self.0.as_deref().unwrap_or(&NO_DATAGRAMS)
    }
}

impl std::ops::DerefMut for Datagrams {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.get_or_insert_with(Box::default)
    }
}

/// The wanted state of one socket.
#[derive(Debug)]
pub(crate) struct SocketState {
    pub(crate) kind: SocketKind,
    /// Listener: keep accepting.
    pub(crate) want_accept: bool,
    /// Stream/datagram: keep receiving.
    pub(crate) want_recv: bool,
    /// Stream: receiving ended for good (end of stream or an error was delivered, or is
    /// about to be): `recv` is refused from then on, so a caller re-enabling receiving while
    /// handling earlier completions of the same batch cannot cause a second `Eof`.
    pub(crate) recv_ended: bool,
    /// Stream: connect to this address (the poll backend takes it when it starts the
    /// connect; the io_uring backend keeps it here until the connect completes, as the
    /// kernel may read it until then).
    /// Boxed: a socket address inline is 128 bytes in every socket's slot, and only an
    /// outbound connect has one, for a moment (issue 16: memory per idle connection).
    pub(crate) connect_to: Option<Box<SockAddr>>,
    /// Stream: a connect was started and has not completed.
    pub(crate) connecting: bool,
    /// Stream: bytes to send.
    pub(crate) send: SendQueue,
    /// Datagram: payloads to send, with their destinations.
    pub(crate) datagrams: Datagrams,
    /// Sending failed; further sends are discarded.
    pub(crate) send_failed: bool,
    pub(crate) shutdown: Shutdown,
    /// Closing: no more completions are delivered; the backend frees the slot when done.
    pub(crate) closing: bool,
    /// Stream: bytes received here go to another socket through a pipe, not to the caller.
    #[cfg(uring)]
    pub(crate) splice: Option<Box<crate::sys::splice::Splice>>,
    /// Stream: the socket splicing into this one.
    pub(crate) splice_from: Option<SocketId>,
    /// Stream: that splice holds bytes (or an end) waiting for this socket to take them.
    pub(crate) splice_backlog: bool,
    /// Stream: not a socket but a pipe or a terminal (read and written with read/write).
    pub(crate) file: Option<crate::process::FileKind>,
    /// Child: the process watched; dropping it unreaped kills and reaps the child.
    pub(crate) child: Option<crate::process::ChildGuard>,
    /// Listener or datagram socket: its SO_REUSEPORT group's token (see `reuse_port.rs`), dropped when the
    /// slot is released, after the descriptor is closed.
    pub(crate) group: Option<std::sync::Arc<crate::reuse_port::Group>>,
    /// Already in the dirty list.
    in_dirty: bool,
}

impl SocketState {
    /// The connect finished. A failed one leaves the socket dead: queued bytes are dropped
    /// and nothing more is sent, received or shut down, so `Connected(Err)` is the socket's
    /// last completion and the caller only has to close it.
    pub(crate) fn connect_done(&mut self, ok: bool) {
        self.connecting = false;
        if !ok {
            self.send_failed = true;
            self.send.clear();
            self.end_recv();
            if self.shutdown == Shutdown::Wanted {
                self.shutdown = Shutdown::Started;
            }
        }
    }

    /// Whether bytes received here are spliced to another socket.
    pub(crate) fn splicing(&self) -> bool {
        #[cfg(uring)]
        return self.splice.is_some();
        #[cfg(not(uring))]
        false
    }

    /// The socket this one splices into, and whether its pipe is empty (so reading can go
    /// on without waiting for the destination).
    pub(crate) fn splice_target(&self) -> Option<(SocketId, bool)> {
        #[cfg(uring)]
        return self.splice.as_ref().map(|s| (s.to, !s.backlog()));
        #[cfg(not(uring))]
        None
    }

    /// Receiving ended for good: end of stream or an error.
    pub(crate) fn end_recv(&mut self) {
        self.want_recv = false;
        if self.kind == SocketKind::Stream {
            self.recv_ended = true;
        }
    }

    fn new(kind: SocketKind) -> Self {
        Self {
            kind,
            want_accept: false,
            want_recv: false,
            recv_ended: false,
            connect_to: None,
            connecting: false,
            send: SendQueue::default(),
            datagrams: Datagrams::default(),
            send_failed: false,
            shutdown: Shutdown::No,
            closing: false,
            #[cfg(uring)]
            splice: None,
            splice_from: None,
            splice_backlog: false,
            file: None,
            child: None,
            group: None,
            in_dirty: false,
        }
    }
}

#[derive(Debug)]
struct SocketSlot {
    generation: u32,
    state: Option<SocketState>,
}

/// Lifecycle of a timer slot.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum TimerState {
    Vacant,
    /// Asked for, not yet handed to the backend.
    Pending {
        deadline: Instant,
    },
    /// Handed to the backend.
    Armed {
        deadline: Instant,
    },
    /// Cancelled while armed; the backend frees the slot once its operation is gone.
    Cancelling,
}

#[derive(Debug)]
struct TimerSlot {
    generation: u32,
    state: TimerState,
    /// Already in the dirty list (each slot is listed once, in the order first changed).
    in_dirty: bool,
}

/// Socket and timer tables shared by both backends.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) config: DriverConfig,
    pub(crate) stats: Stats,
    sockets: Vec<SocketSlot>,
    free_sockets: Vec<u32>,
    dirty: Vec<u32>,
    live_sockets: usize,
    timers: Vec<TimerSlot>,
    free_timers: Vec<u32>,
    dirty_timers: Vec<u32>,
}

impl Core {
    pub(crate) fn new(config: DriverConfig) -> Self {
        Self {
            config,
            stats: Stats::default(),
            sockets: Vec::new(),
            free_sockets: Vec::new(),
            dirty: Vec::new(),
            live_sockets: 0,
            timers: Vec::new(),
            free_timers: Vec::new(),
            dirty_timers: Vec::new(),
        }
    }

    /// Adds a socket and returns its id; the backend must attach its handle to the same slot.
    pub(crate) fn insert(&mut self, kind: SocketKind) -> SocketId {
        self.live_sockets += 1;
        let state = Some(SocketState::new(kind));
        if let Some(slot) = self.free_sockets.pop() {
            let entry = &mut self.sockets[slot as usize];
            entry.state = state;
            return SocketId::new(slot, entry.generation);
        }
        let slot = u32::try_from(self.sockets.len()).expect("fewer than 2^32 sockets");
        self.sockets.push(SocketSlot {
            generation: 0,
            state,
        });
        SocketId::new(slot, 0)
    }

    /// Sockets in the table, including those still closing.
    pub(crate) fn live_sockets(&self) -> usize {
        self.live_sockets
    }

    /// The socket if `id` is current and not closing: what caller-facing methods act on.
    pub(crate) fn open_mut(&mut self, id: SocketId) -> Option<&mut SocketState> {
        self.current_mut(id.slot(), id.generation())
            .filter(|s| !s.closing)
    }

    /// See [`Core::open_mut`].
    pub(crate) fn open(&self, id: SocketId) -> Option<&SocketState> {
        let entry = self.sockets.get(id.slot() as usize)?;
        if entry.generation != id.generation() {
            return None;
        }
        entry.state.as_ref().filter(|s| !s.closing)
    }

    /// The socket in `slot` if its generation is `generation` (closing or not): what the
    /// backend uses to match a completion to its socket.
    pub(crate) fn current_mut(&mut self, slot: u32, generation: u32) -> Option<&mut SocketState> {
        let entry = self.sockets.get_mut(slot as usize)?;
        if entry.generation != generation {
            return None;
        }
        entry.state.as_mut()
    }

    /// The socket in `slot`, whatever its generation (for reconciling dirty slots).
    pub(crate) fn slot_mut(&mut self, slot: u32) -> Option<(SocketId, &mut SocketState)> {
        let entry = self.sockets.get_mut(slot as usize)?;
        let id = SocketId::new(slot, entry.generation);
        entry.state.as_mut().map(|state| (id, state))
    }

    /// Applies `change` to socket `id` if it is open and `allowed`, and queues it for the
    /// backend's next reconciliation: one lookup for both (a send queues bytes this way for
    /// every answer, issue 16).
    pub(crate) fn update_open(
        &mut self,
        id: SocketId,
        allowed: impl FnOnce(&SocketState) -> bool,
        change: impl FnOnce(&mut SocketState),
    ) -> bool {
        let Some(entry) = self.sockets.get_mut(id.slot() as usize) else {
            return false;
        };
        if entry.generation != id.generation() {
            return false;
        }
        match entry.state.as_mut() {
            Some(state) if !state.closing && allowed(state) => {
                change(state);
                if !state.in_dirty {
                    state.in_dirty = true;
                    self.dirty.push(id.slot());
                }
                true
            }
            _ => false,
        }
    }

    /// Queues the socket for the backend's next reconciliation.
    pub(crate) fn mark_dirty(&mut self, id: SocketId) {
        if let Some(state) = self.current_mut(id.slot(), id.generation())
            && !state.in_dirty
        {
            state.in_dirty = true;
            self.dirty.push(id.slot());
        }
    }

    /// Takes the dirty list (swapped with `spare`, which must be empty, to reuse capacity).
    pub(crate) fn take_dirty(&mut self, spare: &mut Vec<u32>) {
        debug_assert!(spare.is_empty());
        std::mem::swap(&mut self.dirty, spare);
        for &slot in spare.iter() {
            if let Some(state) = self.sockets[slot as usize].state.as_mut() {
                state.in_dirty = false;
            }
        }
    }

    /// Whether anything waits for reconciliation.
    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty() || !self.dirty_timers.is_empty()
    }

    /// Frees a closed socket's slot: nothing of it is in flight any more. Its send queue is
    /// dropped here, after the kernel stopped reading it.
    pub(crate) fn release(&mut self, slot: u32) {
        let entry = &mut self.sockets[slot as usize];
        debug_assert!(
            entry.state.as_ref().is_some_and(|s| s.closing),
            "release of an open socket"
        );
        if entry.state.take().is_some() {
            self.live_sockets -= 1;
            entry.generation = (entry.generation + 1) & GENERATION_MASK;
            self.free_sockets.push(slot);
        }
    }

    /// Forgets every socket without dropping it: the kernel may still read their send
    /// queues (a driver dropped with operations that would not finish).
    #[cfg(uring)]
    pub(crate) fn leak_all(&mut self) {
        for entry in &mut self.sockets {
            if let Some(state) = entry.state.take() {
                std::mem::forget(state);
            }
        }
    }

    /// Adds a timer for `deadline`.
    pub(crate) fn insert_timer(&mut self, deadline: Instant) -> TimerId {
        let state = TimerState::Pending { deadline };
        let (slot, generation) = if let Some(slot) = self.free_timers.pop() {
            let entry = &mut self.timers[slot as usize];
            entry.state = state;
            (slot, entry.generation)
        } else {
            let slot = u32::try_from(self.timers.len()).expect("fewer than 2^32 timers");
            self.timers.push(TimerSlot {
                generation: 0,
                state,
                in_dirty: false,
            });
            (slot, 0)
        };
        self.mark_timer_dirty(slot);
        TimerId::new(slot, generation)
    }

    fn mark_timer_dirty(&mut self, slot: u32) {
        let entry = &mut self.timers[slot as usize];
        if !entry.in_dirty {
            entry.in_dirty = true;
            self.dirty_timers.push(slot);
        }
    }

    /// The state of timer `slot` if its generation matches.
    pub(crate) fn timer_state(&self, slot: u32, generation: u32) -> Option<TimerState> {
        let entry = self.timers.get(slot as usize)?;
        (entry.generation == generation).then_some(entry.state)
    }

    pub(crate) fn set_timer_state(&mut self, slot: u32, state: TimerState) {
        self.timers[slot as usize].state = state;
    }

    /// Cancels a timer: `false` if it already fired or was cancelled.
    pub(crate) fn cancel_timer(&mut self, id: TimerId) -> bool {
        match self.timer_state(id.slot(), id.generation()) {
            Some(TimerState::Pending { .. }) => {
                // Never handed to the backend (its dirty entry will find it vacant).
                self.release_timer(id.slot());
                true
            }
            Some(TimerState::Armed { .. }) => {
                self.set_timer_state(id.slot(), TimerState::Cancelling);
                self.mark_timer_dirty(id.slot());
                true
            }
            _ => false,
        }
    }

    /// Frees a timer slot.
    pub(crate) fn release_timer(&mut self, slot: u32) {
        let entry = &mut self.timers[slot as usize];
        if entry.state != TimerState::Vacant {
            entry.state = TimerState::Vacant;
            entry.generation = (entry.generation + 1) & GENERATION_MASK;
            self.free_timers.push(slot);
        }
    }

    /// Takes the timers changed since the last call, with their ids and states.
    pub(crate) fn take_dirty_timers(&mut self, out: &mut Vec<(TimerId, TimerState)>) {
        out.clear();
        for slot in self.dirty_timers.drain(..) {
            let entry = &mut self.timers[slot as usize];
            entry.in_dirty = false;
            if entry.state != TimerState::Vacant {
                out.push((TimerId::new(slot, entry.generation), entry.state));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory per idle connection (issue 16): one `SocketSlot` per socket slot, paid by every
    /// connection; the connect address (128 bytes inline), a datagram socket's send queue and
    /// a stream's (until its first send) are boxed and this keeps them so.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn socket_slot_stays_small() {
        assert!(
            size_of::<SocketSlot>() <= 80,
            "SocketSlot: {} bytes",
            size_of::<SocketSlot>()
        );
    }

    /// A socket that has sent nothing has no queue (issue 16: memory per idle connection);
    /// the first push makes it, and it is kept while sending goes on (no allocation per
    /// send), until `clear`.
    #[test]
    fn send_queue_is_made_at_the_first_push_and_kept() {
        let mut q = SendQueue::default();
        q.advance(0);
        q.push(Bytes::new());
        assert!(q.0.is_none(), "nothing queued yet: no queue");
        assert!(q.is_empty());
        assert_eq!(q.slices(8).count(), 0);
        q.push(Bytes::from_static(b"abc"));
        let made = q.0.as_deref().map(std::ptr::from_ref);
        assert!(made.is_some());
        q.advance(3);
        assert!(q.is_empty());
        q.push(Bytes::from_static(b"d"));
        assert_eq!(
            q.0.as_deref().map(std::ptr::from_ref),
            made,
            "the same queue serves the next send"
        );
        q.clear();
        assert!(q.0.is_none(), "cleared: the memory goes");
    }

    #[test]
    fn send_queue_advances_across_buffers() {
        let mut q = SendQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::new());
        q.push(Bytes::from_static(b"defg"));
        assert_eq!(q.len(), 7);
        q.advance(4);
        assert_eq!(q.slices(8).collect::<Vec<_>>(), [&b"efg"[..]]);
        q.advance(3);
        assert!(q.is_empty());
        assert_eq!(q.slices(8).count(), 0);
    }

    #[test]
    fn only_bytes_is_the_one_buffer_queued_and_nothing_else() {
        let mut q = SendQueue::default();
        assert_eq!(q.only_bytes(), None, "no queue yet");
        q.push(Bytes::from_static(b"abc"));
        assert_eq!(q.only_bytes(), Some(&b"abc"[..]));
        q.push(Bytes::from_static(b"de"));
        assert_eq!(q.only_bytes(), None, "two buffers");
        q.advance(3);
        assert_eq!(q.only_bytes(), Some(&b"de"[..]));
        q.advance(2);
        assert_eq!(q.only_bytes(), None, "empty");
        let file = std::sync::Arc::new(std::fs::File::open("/dev/null").expect("open"));
        q.push_file(FileRange {
            file,
            offset: 0,
            len: 5,
        });
        assert_eq!(q.only_bytes(), None, "a file range is not bytes");
    }

    #[test]
    fn sent_bytes_move_to_the_held_queue_sharing_their_memory() {
        let mut q = SendQueue::default();
        let first = Bytes::from_static(b"abc");
        q.push(first.clone());
        q.push(Bytes::from_static(b"defg"));
        let mut held = SendQueue::default();
        q.advance_into(5, &mut held);
        assert_eq!(held.len(), 5);
        assert_eq!(q.len(), 2);
        let held_slices: Vec<&[u8]> = held.slices(8).collect();
        assert_eq!(held_slices, [&b"abc"[..], &b"de"[..]]);
        assert_eq!(held_slices[0].as_ptr(), first.as_ptr(), "moved, not copied");
        assert_eq!(q.slices(8).collect::<Vec<_>>(), [&b"fg"[..]]);
    }

    #[test]
    fn send_queue_keeps_file_ranges_in_order() {
        let file = std::sync::Arc::new(std::fs::File::open("/dev/null").expect("open"));
        let mut q = SendQueue::default();
        q.push(Bytes::from_static(b"head"));
        q.push_file(FileRange {
            file: std::sync::Arc::clone(&file),
            offset: 10,
            len: 5,
        });
        q.push(Bytes::from_static(b"tail"));
        assert_eq!((q.len(), q.file_len()), (8, 5));
        assert_eq!(q.slices(8).collect::<Vec<_>>(), [&b"head"[..]]);
        assert!(q.front_file().is_none());
        q.advance(4);
        let front = q.front_file().expect("the file range is next");
        assert_eq!((front.offset, front.len), (10, 5));
        assert_eq!(q.slices(8).count(), 0, "no bytes go before the file range");
        q.advance_file(2);
        assert_eq!(q.front_file().map(|r| (r.offset, r.len)), Some((12, 3)));
        q.advance_file(3);
        assert!(q.front_file().is_none());
        assert_eq!(q.slices(8).collect::<Vec<_>>(), [&b"tail"[..]]);
        assert!(!q.is_empty());
        q.advance(4);
        assert!(q.is_empty());
    }

    #[test]
    fn released_slots_come_back_with_a_new_generation() {
        let mut core = Core::new(DriverConfig::default());
        let a = core.insert(SocketKind::Stream);
        core.open_mut(a).unwrap().closing = true;
        assert!(core.open(a).is_none(), "closing sockets are not open");
        assert!(core.current_mut(a.slot(), a.generation()).is_some());
        core.release(a.slot());
        let b = core.insert(SocketKind::Stream);
        assert_eq!(b.slot(), a.slot());
        assert_ne!(b.generation(), a.generation());
        assert!(
            core.current_mut(a.slot(), a.generation()).is_none(),
            "stale id never matches"
        );
        assert_eq!(core.live_sockets(), 1);
    }

    #[test]
    fn dirty_list_holds_each_slot_once() {
        let mut core = Core::new(DriverConfig::default());
        let a = core.insert(SocketKind::Stream);
        core.mark_dirty(a);
        core.mark_dirty(a);
        let mut spare = Vec::new();
        core.take_dirty(&mut spare);
        assert_eq!(spare, [a.slot()]);
        spare.clear();
        core.mark_dirty(a);
        core.take_dirty(&mut spare);
        assert_eq!(spare, [a.slot()]);
    }

    #[test]
    fn timers_cancel_before_and_after_arming() {
        let mut core = Core::new(DriverConfig::default());
        let now = Instant::now();
        let t = core.insert_timer(now);
        assert!(core.cancel_timer(t));
        assert!(!core.cancel_timer(t), "second cancel is a no-op");
        let mut dirty = Vec::new();
        core.take_dirty_timers(&mut dirty);
        assert!(
            dirty.is_empty(),
            "a timer cancelled before arming never reaches the backend"
        );
        let u = core.insert_timer(now);
        assert_eq!(u.slot(), t.slot());
        assert_ne!(u.generation(), t.generation());
        core.take_dirty_timers(&mut dirty);
        assert_eq!(dirty, [(u, TimerState::Pending { deadline: now })]);
        core.set_timer_state(u.slot(), TimerState::Armed { deadline: now });
        assert!(core.cancel_timer(u));
        core.take_dirty_timers(&mut dirty);
        assert_eq!(dirty, [(u, TimerState::Cancelling)]);
    }
}
