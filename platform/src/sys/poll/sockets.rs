//! The poll backend's socket table: readiness bookkeeping and which socket is served when.
//!
//! Owns: one [`Entry`] per table slot (the mio source, the readiness it last showed, list
//! memberships), the ready list (sockets with known readiness and wanted work), the starved
//! list (reads waiting for a pool buffer) and the deferred list (listeners whose accept
//! failed), reconciliation of the wanted state in [`Core`], and accepting.
//! Contract:
//! - mio is edge-triggered, so readiness is remembered here and cleared only when a call
//!   returns `WouldBlock` (or, on Unix, after a short stream read, as tokio does: any later
//!   data or end of stream raises a new edge). A socket whose wanted state changes while it
//!   is known ready is served in that turn, without waiting for a new edge.
//! - Completions are produced only for current, non-closing sockets; a closing socket is
//!   deregistered, closed and released during reconciliation, before any I/O of the turn.
//! - A read never starts without a free pool buffer, so memory never grows: a socket that
//!   wants to read while the pool is empty joins the starved list (FIFO) and resumes once
//!   buffers return, its bytes waiting in the kernel in order.
//! - Reads are limited to `poll_reads_per_turn` per socket per turn and accepts to
//!   [`MAX_ACCEPTS_PER_TURN`]; a socket cut short stays on the ready list for the next turn.
//!
//! Does not: wait for readiness or handle timers (see `mod.rs` and `timers.rs`), or make
//! the system calls of connecting, sending and receiving (see `ops.rs`).
//!
//! Safety model: no `unsafe`; see `ops.rs` for the memory system calls touch.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::mem;

use mio::event::Event;
use mio::{Registry, Token};

use super::ops::{
    GatherRoom, Tally, finish_connect, read_stream, recv_datagrams, send_datagrams, send_stream,
    start_connect, transient_accept_error,
};
use super::source::Source;
use crate::buf::BufPool;
use crate::completion::Completion;
use crate::config::DriverConfig;
use crate::error::OpError;
use crate::id::{OpKind, SocketId};
use crate::table::{Core, Shutdown, SocketKind, SocketState};

/// Most connections one listener accepts per turn, so an accept flood cannot starve the
/// other sockets; the listener stays ready and continues in the next turn.
pub(super) const MAX_ACCEPTS_PER_TURN: usize = 256;

/// Backend state of one table slot.
#[derive(Debug)]
pub(super) struct Entry {
    /// The socket this entry belongs to (its generation tells a reused slot apart).
    pub(super) id: SocketId,
    pub(super) source: Source,
    /// A read or accept may succeed (no `WouldBlock` since the last readable edge).
    pub(super) readable: bool,
    /// A write may succeed (no `WouldBlock` since the last writable edge).
    pub(super) writable: bool,
    /// The peer closed its side or an error is pending: read until 0 or the error, even
    /// after a short read.
    pub(super) read_closed: bool,
    /// In `Sockets::ready`.
    in_ready: bool,
    /// In `Sockets::starved`.
    in_starved: bool,
    /// In `Sockets::deferred`: skipped by the ready list until the next wait is over.
    deferred: bool,
    /// Send runs of datagrams with UDP GSO ([`DriverConfig::udp_gso`], until the kernel
    /// refuses it for this socket). Read only where UDP GSO exists (Linux).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(super) gso: bool,
}

impl Entry {
    fn new(id: SocketId, source: Source, gso: bool) -> Self {
        Self {
            id,
            source,
            readable: false,
            writable: false,
            read_closed: false,
            in_ready: false,
            in_starved: false,
            deferred: false,
            gso,
        }
    }
}

/// Sockets of one driver, indexed by table slot.
#[derive(Debug)]
pub(super) struct Sockets {
    entries: Vec<Option<Entry>>,
    pool: BufPool,
    /// Sockets with known readiness and wanted work, in the order they became so.
    ready: Vec<SocketId>,
    /// The ready list being served (kept to reuse its capacity).
    batch: Vec<SocketId>,
    /// Sockets whose read found no free buffer, oldest first.
    starved: VecDeque<SocketId>,
    /// Listeners whose accept failed with a lasting error (EMFILE, ...): retried after the
    /// next wait instead of spinning.
    deferred: Vec<SocketId>,
    /// Scratch for the dirty list of `Core`.
    dirty: Vec<u32>,
    /// Scratch for vectored sends (empty between sends; only its allocation is kept).
    iov: Vec<IoSlice<'static>>,
    reads_per_turn: usize,
    max_iovecs: usize,
    /// [`DriverConfig::udp_gso`], for each new socket.
    udp_gso: bool,
    /// [`DriverConfig::udp_gso_gather`].
    udp_gso_gather: bool,
    /// Room for gathering a run (`DriverConfig::udp_gso_gather`).
    gather: GatherRoom,
}

impl Sockets {
    pub(super) fn new(pool: BufPool, config: &DriverConfig) -> Self {
        Self {
            entries: Vec::new(),
            pool,
            ready: Vec::new(),
            batch: Vec::new(),
            starved: VecDeque::new(),
            deferred: Vec::new(),
            dirty: Vec::new(),
            iov: Vec::with_capacity(config.max_send_iovecs),
            reads_per_turn: config.poll_reads_per_turn,
            max_iovecs: config.max_send_iovecs,
            udp_gso: config.udp_gso,
            udp_gso_gather: config.udp_gso_gather,
            gather: GatherRoom::default(),
        }
    }

    /// Receive buffers not lent out.
    pub(super) fn buffers_available(&self) -> u32 {
        self.pool.available()
    }

    /// Registers `source` and stores it in `id`'s slot.
    ///
    /// # Errors
    /// The OS error of registering (the source is dropped, closing the socket).
    pub(super) fn insert(
        &mut self,
        registry: &Registry,
        id: SocketId,
        mut source: Source,
    ) -> io::Result<()> {
        source.register(registry, token(id))?;
        let index = id.slot() as usize;
        if self.entries.len() <= index {
            self.entries.resize_with(index + 1, || None);
        }
        debug_assert!(
            self.entries[index].is_none(),
            "slot reused while still attached"
        );
        self.entries[index] = Some(Entry::new(id, source, self.udp_gso));
        Ok(())
    }

    /// The source of `id`, if attached.
    pub(super) fn source(&self, id: SocketId) -> Option<&Source> {
        self.entries
            .get(id.slot() as usize)?
            .as_ref()
            .filter(|entry| entry.id == id)
            .map(|entry| &entry.source)
    }

    /// Whether some socket can make progress without waiting.
    pub(super) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Carries out what changed in `core` since the last turn: closes closing sockets,
    /// starts connects, and lists sockets whose new wanted work can run at once. Returns
    /// whether a socket was closed (descriptors were freed).
    pub(super) fn reconcile(
        &mut self,
        registry: &Registry,
        core: &mut Core,
        out: &mut Vec<Completion>,
    ) -> bool {
        let mut dirty = mem::take(&mut self.dirty);
        core.take_dirty(&mut dirty);
        let buffers = self.pool.available() > 0;
        let mut closed = false;
        let (mut submitted, mut starvations) = (0, 0);
        for &slot in &dirty {
            let Some((id, state)) = core.slot_mut(slot) else {
                continue;
            };
            if state.closing {
                // Nothing is in flight under readiness: close now. No completion of this
                // socket is delivered any more; list entries for it go stale by id.
                let attached = self.entries.get_mut(slot as usize);
                if let Some(mut entry) = attached.and_then(|e| e.take_if(|e| e.id == id)) {
                    // Best effort: closing the descriptor below unregisters it anyway.
                    let _ = entry.source.deregister(registry);
                }
                core.release(slot);
                closed = true;
                continue;
            }
            let Some(entry) = entry_mut(&mut self.entries, id) else {
                continue;
            };
            if let Some(addr) = state.connect_to.take() {
                submitted += 1;
                start_connect(registry, entry, state, id, &addr, out);
            }
            if place(&mut self.ready, &mut self.starved, entry, state, buffers) {
                starvations += 1;
            }
        }
        core.stats.submitted += submitted;
        core.stats.buffer_starvations += starvations;
        dirty.clear();
        self.dirty = dirty;
        closed
    }

    /// Puts starved sockets back on the ready list, one per free buffer, oldest first (a
    /// served socket that starves again goes to the back: round robin).
    pub(super) fn relieve_starved(&mut self, core: &mut Core) {
        let mut budget = self.pool.available() as usize;
        while budget > 0 {
            let Some(id) = self.starved.pop_front() else {
                break;
            };
            if let Some(entry) = entry_mut(&mut self.entries, id) {
                entry.in_starved = false;
                budget -= 1;
                self.schedule(core, id);
            }
        }
    }

    /// Makes deferred listeners eligible again.
    pub(super) fn promote_deferred(&mut self, core: &mut Core) {
        while let Some(id) = self.deferred.pop() {
            if let Some(entry) = entry_mut(&mut self.entries, id) {
                entry.deferred = false;
                self.schedule(core, id);
            }
        }
    }

    /// Records the readiness `event` reports for its socket.
    pub(super) fn on_event(&mut self, core: &mut Core, event: &Event) {
        let Some(Some(entry)) = self.entries.get_mut(event.token().0) else {
            // Closed (and deregistered) after the event was queued.
            core.stats.stale += 1;
            return;
        };
        // Errors and hang-ups count as readiness: the next call reports them.
        let closed = event.is_read_closed() || event.is_error();
        if event.is_readable() || closed {
            entry.readable = true;
        }
        if closed {
            entry.read_closed = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            entry.writable = true;
        }
        let id = entry.id;
        self.schedule(core, id);
    }

    /// Serves every socket on the ready list once: finishes connects, sends, shuts down,
    /// reads and accepts. Sockets with work left go back on the list for the next turn.
    pub(super) fn run(&mut self, registry: &Registry, core: &mut Core, out: &mut Vec<Completion>) {
        let mut batch = mem::replace(&mut self.ready, mem::take(&mut self.batch));
        for &id in &batch {
            let Some(entry) = entry_mut(&mut self.entries, id) else {
                continue;
            };
            entry.in_ready = false;
            let Some(kind) = core.open(id).map(|state| state.kind) else {
                continue;
            };
            match kind {
                SocketKind::Listener => self.accept(registry, core, out, id),
                SocketKind::Stream => self.stream(core, out, id),
                SocketKind::Datagram => self.datagram(core, out, id),
                SocketKind::Child => self.child(core, out, id),
            }
            self.schedule(core, id);
        }
        batch.clear();
        self.batch = batch;
    }

    /// Lists `id` where its next step belongs (see [`place`]).
    fn schedule(&mut self, core: &mut Core, id: SocketId) {
        let buffers = self.pool.available() > 0;
        let (Some(entry), Some(state)) = (entry_mut(&mut self.entries, id), core.open(id)) else {
            return;
        };
        if place(&mut self.ready, &mut self.starved, entry, state, buffers) {
            core.stats.buffer_starvations += 1;
        }
    }

    /// Accepts connections on listener `id` until `WouldBlock`, an error or the limit.
    fn accept(
        &mut self,
        registry: &Registry,
        core: &mut Core,
        out: &mut Vec<Completion>,
        id: SocketId,
    ) {
        if !core.open(id).is_some_and(|state| state.want_accept) {
            return;
        }
        for _ in 0..MAX_ACCEPTS_PER_TURN {
            let Some(entry) = entry_mut(&mut self.entries, id) else {
                return;
            };
            if !entry.readable {
                return;
            }
            core.stats.submitted += 1;
            let result = match entry.source.accept() {
                Ok(source) => {
                    let accepted = core.insert(SocketKind::Stream);
                    match self.insert(registry, accepted, source) {
                        Ok(()) => Ok(accepted),
                        Err(e) => {
                            // Never handed out: release the slot at once.
                            if let Some(state) = core.open_mut(accepted) {
                                state.closing = true;
                            }
                            core.release(accepted.slot());
                            Err(OpError::new(OpKind::Accept, Some(id), e))
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    entry.readable = false;
                    return;
                }
                Err(e) => {
                    if !transient_accept_error(&e) {
                        // EMFILE and friends would fail again at once: wait for the next
                        // turn's wait (or a close) before retrying, instead of spinning.
                        entry.deferred = true;
                        self.deferred.push(id);
                    }
                    out.push(Completion::Accepted {
                        listener: id,
                        result: Err(OpError::new(OpKind::Accept, Some(id), e)),
                    });
                    return;
                }
            };
            out.push(Completion::Accepted {
                listener: id,
                result,
            });
        }
    }

    /// Serves stream socket `id`: connect completion, sends, shutdown, reads.
    fn stream(&mut self, core: &mut Core, out: &mut Vec<Completion>, id: SocketId) {
        let Sockets {
            entries,
            pool,
            starved,
            iov,
            reads_per_turn,
            max_iovecs,
            ..
        } = self;
        let (Some(entry), Some(state)) = (entry_mut(entries, id), open_mut(core, id)) else {
            return;
        };
        let mut io = Tally::default();
        if state.connecting {
            if entry.writable && state.connect_to.is_none() {
                finish_connect(entry, state, id, out, &mut io);
            }
            if state.connecting {
                return;
            }
        }
        if entry.writable && !state.send.is_empty() && !state.send_failed {
            send_stream(entry, state, id, out, &mut io, iov, *max_iovecs);
        }
        if state.shutdown == Shutdown::Wanted && state.send.is_empty() {
            state.shutdown = Shutdown::Started;
            io.submitted += 1;
            let result = entry
                .source
                .shutdown_write()
                .map_err(|e| OpError::new(OpKind::Shutdown, Some(id), e));
            out.push(Completion::ShutdownDone { socket: id, result });
        }
        if state.want_recv && entry.readable && !state.splicing() {
            read_stream(entry, state, id, pool, *reads_per_turn, out, &mut io);
            if io.starved && !entry.in_starved {
                entry.in_starved = true;
                starved.push_back(id);
            }
        }
        let (splice_read, splice_write) = (splice_read(entry, state), splice_write(entry, state));
        let feeder = state.splice_from;
        io.add_to(core);
        #[cfg(uring)]
        {
            if splice_read {
                self.pump_splice(core, out, id);
            }
            if let (true, Some(src)) = (splice_write, feeder) {
                self.pump_splice(core, out, src);
            }
        }
        #[cfg(not(uring))]
        let _ = (splice_read, splice_write, feeder);
    }

    /// Moves what it can through the splice whose source is `src` (see `sys/splice.rs`),
    /// records the readiness it used up, and lists both sockets for what comes next.
    #[cfg(uring)]
    fn pump_splice(&mut self, core: &mut Core, out: &mut Vec<Completion>, src: SocketId) {
        use std::os::fd::AsRawFd;
        let Some((dst, _)) = core.open(src).and_then(|s| s.splice_target()) else {
            return;
        };
        let raw = |entries: &mut [Option<Entry>], id| {
            entry_mut(entries, id).map(|e| e.source.sock_ref().as_raw_fd())
        };
        let (Some(src_fd), Some(dst_fd)) =
            (raw(&mut self.entries, src), raw(&mut self.entries, dst))
        else {
            return;
        };
        match crate::sys::splice::run(core, src, src_fd, dst_fd, out) {
            crate::sys::splice::Wait::Readable => {
                if let Some(entry) = entry_mut(&mut self.entries, src) {
                    entry.readable = false;
                }
            }
            crate::sys::splice::Wait::Writable => {
                if let Some(entry) = entry_mut(&mut self.entries, dst) {
                    entry.writable = false;
                }
            }
            _ => {}
        }
        self.schedule(core, src);
        self.schedule(core, dst);
    }

    /// Serves child exit watcher `id`: once readable, reaps the child (see
    /// `sys/process.rs`); a child still running (a spurious edge) waits for the next one.
    fn child(&mut self, core: &mut Core, out: &mut Vec<Completion>, id: SocketId) {
        let (Some(entry), Some(state)) = (entry_mut(&mut self.entries, id), open_mut(core, id))
        else {
            return;
        };
        if !(state.want_recv && entry.readable) {
            return;
        }
        entry.readable = false;
        #[cfg(processes)]
        if let Some(completion) = crate::sys::process::reap_completion(id, state) {
            out.push(completion);
        }
        #[cfg(not(processes))]
        let _ = out;
        core.stats.submitted += 1;
    }

    /// Serves datagram socket `id`: queued datagrams, then receives.
    fn datagram(&mut self, core: &mut Core, out: &mut Vec<Completion>, id: SocketId) {
        let Sockets {
            entries,
            pool,
            starved,
            reads_per_turn,
            udp_gso_gather,
            gather,
            ..
        } = self;
        let (Some(entry), Some(state)) = (entry_mut(entries, id), open_mut(core, id)) else {
            return;
        };
        let mut io = Tally::default();
        if entry.writable && !state.datagrams.is_empty() {
            let gather = udp_gso_gather.then_some(gather);
            send_datagrams(entry, state, id, gather, out, &mut io);
        }
        if state.want_recv && entry.readable {
            recv_datagrams(entry, state, id, pool, *reads_per_turn, out, &mut io);
            if io.starved && !entry.in_starved {
                entry.in_starved = true;
                starved.push_back(id);
            }
        }
        io.add_to(core);
    }
}

/// The mio token of `id`: its slot (the waker uses `usize::MAX`, which no slot reaches).
pub(super) fn token(id: SocketId) -> Token {
    Token(id.slot() as usize)
}

/// The entry of `id` if its slot holds that socket (not an older or newer one).
fn entry_mut(entries: &mut [Option<Entry>], id: SocketId) -> Option<&mut Entry> {
    entries
        .get_mut(id.slot() as usize)?
        .as_mut()
        .filter(|entry| entry.id == id)
}

/// The wanted state of `id` if it is current and not closing.
fn open_mut(core: &mut Core, id: SocketId) -> Option<&mut SocketState> {
    core.current_mut(id.slot(), id.generation())
        .filter(|state| !state.closing)
}

/// Lists a socket where its next step belongs: on the ready list if its known readiness
/// lets it do wanted work now, on the starved list if it only lacks a free buffer to read
/// into (`buffers`: the pool has one). Either way it is served again without a new edge,
/// which edge-triggered readiness may never send. Returns whether it was parked as starved.
fn place(
    ready: &mut Vec<SocketId>,
    starved: &mut VecDeque<SocketId>,
    entry: &mut Entry,
    state: &SocketState,
    buffers: bool,
) -> bool {
    if state.closing || entry.deferred {
        return false;
    }
    let read = can_read(entry, state);
    if (read && buffers) || other_work(entry, state) {
        if !entry.in_ready {
            entry.in_ready = true;
            ready.push(entry.id);
        }
        false
    } else if read && !entry.in_starved {
        entry.in_starved = true;
        starved.push_back(entry.id);
        true
    } else {
        false
    }
}

/// Whether the socket wants to receive into pool buffers and may have bytes (buffers
/// aside).
fn can_read(entry: &Entry, state: &SocketState) -> bool {
    state.want_recv
        && entry.readable
        && match state.kind {
            SocketKind::Listener | SocketKind::Child => false,
            SocketKind::Stream => !state.connecting && !state.splicing(),
            SocketKind::Datagram => true,
        }
}

/// Whether a spliced source can read into its (empty) pipe now.
fn splice_read(entry: &Entry, state: &SocketState) -> bool {
    state.want_recv
        && entry.readable
        && !state.connecting
        && state
            .splice_target()
            .is_some_and(|(_, pipe_empty)| pipe_empty)
}

/// Whether the splice into this socket can write its pipe's bytes now (its own send queue
/// goes first).
fn splice_write(entry: &Entry, state: &SocketState) -> bool {
    state.splice_backlog && entry.writable && state.send.is_empty() && !state.send_failed
}

/// Whether the socket has wanted work other than receiving that its readiness allows now.
fn other_work(entry: &Entry, state: &SocketState) -> bool {
    match state.kind {
        SocketKind::Listener => state.want_accept && entry.readable,
        // A connect in progress: its outcome is known once the socket turns writable.
        SocketKind::Stream if state.connecting => entry.writable && state.connect_to.is_none(),
        SocketKind::Stream => {
            (entry.writable && !state.send.is_empty() && !state.send_failed)
                || (state.shutdown == Shutdown::Wanted && state.send.is_empty())
                || splice_read(entry, state)
                || splice_write(entry, state)
        }
        SocketKind::Datagram => entry.writable && !state.datagrams.is_empty(),
        SocketKind::Child => state.want_recv && entry.readable,
    }
}
