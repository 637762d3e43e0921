//! Timers of the poll backend: a min-heap of deadlines.
//!
//! Owns: the heap of armed timers, ordered by deadline and then by the order the backend
//! armed them, so timers with equal deadlines fire in arming order.
//! Contract: `reconcile` moves `Pending` timers of [`Core`] into the heap (state `Armed`)
//! and frees `Cancelling` ones at once; their heap entries go stale (the slot's generation
//! or state no longer matches) and are skipped, never delivered. `fire` delivers every
//! expired live timer in deadline order and frees its slot.
//! Does not: wait (the poll timeout is derived from [`Timers::next_deadline`]).
//!
//! Safety model: no `unsafe`; no memory is shared with the kernel.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::completion::Completion;
use crate::id::TimerId;
use crate::table::{Core, TimerState};

/// Below this many heap entries, stale ones are left to expire on their own.
const COMPACT_MIN: usize = 64;

/// One armed timer. Field order is the heap order: deadline, then arming sequence.
#[derive(Clone, Copy, Debug, Eq, Ord, PartialEq, PartialOrd)]
struct Armed {
    deadline: Instant,
    seq: u64,
    slot: u32,
    generation: u32,
}

/// The armed timers of one driver.
#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Armed>>,
    /// Arming sequence number of the next timer.
    seq: u64,
    /// Entries in `heap` that were cancelled (an upper bound: some may have been popped).
    stale: usize,
    scratch: Vec<(TimerId, TimerState)>,
}

impl Timers {
    /// Arms new timers and frees cancelled ones.
    pub(super) fn reconcile(&mut self, core: &mut Core) {
        core.take_dirty_timers(&mut self.scratch);
        for &(id, state) in &self.scratch {
            match state {
                TimerState::Pending { deadline } => {
                    core.set_timer_state(id.slot(), TimerState::Armed { deadline });
                    self.heap.push(Reverse(Armed {
                        deadline,
                        seq: self.seq,
                        slot: id.slot(),
                        generation: id.generation(),
                    }));
                    self.seq += 1;
                }
                TimerState::Cancelling => {
                    // Nothing is in flight for a heap entry: the slot is free at once, and
                    // the entry is recognised as stale by its generation.
                    core.release_timer(id.slot());
                    self.stale += 1;
                }
                TimerState::Armed { .. } | TimerState::Vacant => {}
            }
        }
        self.scratch.clear();
        self.compact(core);
    }

    /// The earliest deadline of a live timer, dropping stale entries at the top.
    pub(super) fn next_deadline(&mut self, core: &Core) -> Option<Instant> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if is_live(core, top) {
                return Some(top.deadline);
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
        None
    }

    /// Delivers every live timer whose deadline is at or before `now`, in deadline order.
    pub(super) fn fire(&mut self, core: &mut Core, now: Instant, out: &mut Vec<Completion>) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.deadline > now {
                break;
            }
            let top = *top;
            self.heap.pop();
            if is_live(core, &top) {
                core.release_timer(top.slot);
                out.push(Completion::Timer {
                    timer: TimerId::new(top.slot, top.generation),
                });
            } else {
                self.stale = self.stale.saturating_sub(1);
            }
        }
    }

    /// Drops stale entries once they are most of the heap, so a program that keeps
    /// re-arming long timers (idle timeouts) does not grow the heap without bound.
    fn compact(&mut self, core: &Core) {
        if self.heap.len() >= COMPACT_MIN && self.stale * 2 > self.heap.len() {
            self.heap.retain(|Reverse(timer)| is_live(core, timer));
            self.stale = 0;
        }
    }

    /// Entries in the heap, live or stale (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

/// Whether the timer slot still holds this armed timer (not cancelled, not reused).
fn is_live(core: &Core, timer: &Armed) -> bool {
    matches!(
        core.timer_state(timer.slot, timer.generation),
        Some(TimerState::Armed { .. })
    )
}
