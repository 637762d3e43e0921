//! Putting SQEs in the submission queue: one at a time ([`Uring::push`]) or a reconcile's
//! whole batch at once ([`Uring::push_batch`]), submitting early when the queue is full.
//!
//! Owns: the backlog of SQEs the kernel refused while its CQ overflowed, and the count of
//! operations in flight that each push adds to.
//! Contract: SQEs reach the kernel in the order they were pushed, the backlog first; none is
//! ever dropped (its memory and state are committed when it is built).

use io_uring::squeue;

use super::Uring;
use crate::table::Core;

impl Uring {
    /// Queues one SQE, submitting early if the queue is full. Never loses it: when the kernel
    /// refuses submissions (CQ overflowing) it waits in `backlog` until the next turn.
    pub(super) fn push(&mut self, core: &mut Core, entry: squeue::Entry) {
        core.stats.submitted += 1;
        self.inflight += 1;
        if self.backlog.is_empty() && self.try_push(core, &entry) {
            return;
        }
        self.backlog.push_back(entry);
    }

    /// Queues `entries` in order and empties it: with one view of the SQ (its head read and
    /// its tail published once) when they all fit, else one by one as [`Uring::push`] does.
    /// (Issue 16: made and synced per SQE, the SQ cost ~43 instructions a push.)
    pub(super) fn push_batch(&mut self, core: &mut Core, entries: &mut Vec<squeue::Entry>) {
        if entries.is_empty() {
            return;
        }
        if self.backlog.is_empty() {
            // SAFETY: every entry built in this module points only at memory that stays
            // alive until its CQE (see the module's safety model).
            if unsafe { self.ring.submission().push_multiple(entries) }.is_ok() {
                core.stats.submitted += entries.len() as u64;
                self.inflight += entries.len();
                entries.clear();
                return;
            }
        }
        for entry in entries.drain(..) {
            self.push(core, entry);
        }
    }

    /// Moves backlogged SQEs into the SQ, in order, as far as the kernel takes them.
    pub(super) fn flush_backlog(&mut self, core: &mut Core) {
        while let Some(entry) = self.backlog.pop_front() {
            if !self.try_push(core, &entry) {
                self.backlog.push_front(entry);
                return;
            }
        }
    }

    /// Puts `entry` in the SQ, submitting to make room if needed; `false` if the kernel
    /// refuses to take more now.
    fn try_push(&mut self, core: &mut Core, entry: &squeue::Entry) -> bool {
        loop {
            // SAFETY: every entry built in this module points only at memory that stays
            // alive until its CQE (see the module's safety model).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return true;
            }
            core.stats.enters += 1;
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // EBUSY/EAGAIN: the CQ is full; anything else: the ring itself is broken,
                // which the enter of this turn reports.
                Err(_) => return false,
            }
        }
    }
}
