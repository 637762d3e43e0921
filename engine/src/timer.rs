//! Placeholder timer queue with the wheel's interface (a binary heap); replaced by the
//! hierarchical timing wheel from the `timer` branch.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// A timer in the wheel.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub(crate) struct TimerKey(u64);

/// Timers ordered by deadline.
pub(crate) struct TimerWheel<T> {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    values: HashMap<u64, T>,
    next: u64,
}

impl<T> TimerWheel<T> {
    pub(crate) fn new(_start: Instant, _tick: Duration) -> Self {
        Self {
            heap: BinaryHeap::new(),
            values: HashMap::new(),
            next: 0,
        }
    }

    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        let seq = self.next;
        self.next += 1;
        self.heap.push(Reverse((deadline, seq)));
        self.values.insert(seq, value);
        TimerKey(seq)
    }

    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.values.remove(&key.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap
            .iter()
            .filter(|Reverse((_, s))| self.values.contains_key(s))
            .map(|Reverse((d, _))| *d)
            .min()
    }

    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<(TimerKey, T)>) {
        while let Some(Reverse((deadline, seq))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if let Some(value) = self.values.remove(&seq) {
                out.push((TimerKey(seq), value));
            }
        }
    }
}
