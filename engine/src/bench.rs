//! Internals for `ringwork-benches` (feature `bench-internals`): not a stable API.
//!
//! Owns: thin wrappers that make crate-private pieces callable from the benches crate:
//! [`TimerWheel`] over the reactor's timer wheel.
//! Contract: each method forwards to the crate-private one (inlined), so a bench measures
//! the engine's own code.
//! Does not: add behaviour, or promise anything across versions.

use std::time::{Duration, Instant};

use crate::timer;

/// The per-core hierarchical timer wheel (`timer::TimerWheel`), holding values of type `T`.
pub struct TimerWheel<T> {
    wheel: timer::TimerWheel<T>,
    /// Reused output of the inner `expire`, whose keys are crate-private.
    fired: Vec<(timer::TimerKey, T)>,
}

/// Handle to a timer in a [`TimerWheel`].
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct TimerKey(timer::TimerKey);

impl<T> TimerWheel<T> {
    /// An empty wheel whose tick 0 begins at `start`, with ticks of `tick`.
    ///
    /// # Panics
    /// If `tick` is zero.
    #[must_use]
    pub fn new(start: Instant, tick: Duration) -> Self {
        Self {
            wheel: timer::TimerWheel::new(start, tick),
            fired: Vec::new(),
        }
    }

    /// Adds a timer due at `deadline`.
    #[inline]
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        TimerKey(self.wheel.insert(deadline, value))
    }

    /// Removes a pending timer and returns its value; `None` if it fired or was cancelled.
    #[inline]
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.wheel.cancel(key.0)
    }

    /// Removes the timers due by `now` and appends them to `out` in deadline order.
    #[inline]
    pub fn expire(&mut self, now: Instant, out: &mut Vec<(TimerKey, T)>) {
        // The inner wheel appends crate-private keys: wrapping them costs one move per
        // fired timer through a reused buffer (no allocation once warm).
        self.wheel.expire(now, &mut self.fired);
        out.extend(
            self.fired
                .drain(..)
                .map(|(key, value)| (TimerKey(key), value)),
        );
    }

    /// The earliest pending deadline, or `None` when empty.
    #[inline]
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.wheel.next_deadline()
    }

    /// Number of pending timers.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.wheel.len()
    }

    /// Whether no timer is pending.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.wheel.is_empty()
    }
}
