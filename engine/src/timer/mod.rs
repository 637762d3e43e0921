//! Per-core hierarchical timer wheel (sans-IO).
//!
//! Owns: the pending timers of one reactor, keyed by [`TimerKey`], and the order in which
//! they fire.
//! Contract: [`TimerWheel::insert`] and [`TimerWheel::cancel`] are O(1);
//! [`TimerWheel::expire`] returns exactly the timers whose deadline is `<= now`, in
//! (deadline, insertion) order, and never one whose deadline is later; an idle gap of any
//! length costs O(levels) per pending timer, not one step per tick;
//! [`TimerWheel::next_deadline`] is the exact earliest pending deadline.
//! Does not: read the clock (time is always an argument), wake a thread, or run callbacks.
//! Design: a hashed hierarchical timing wheel (Varghese & Lauck 1987, as in tokio's time
//! driver): [`LEVELS`] levels of [`SLOTS`] slots, one tick per level-0 slot, each level's
//! slot spanning a whole lower level; deadlines beyond the top level wait in one overflow
//! list. Tests: `tests.rs`.
//!
//! # How it works
//! Time is counted in whole ticks since `start`. `elapsed` is the tick the wheel has been
//! advanced to. A timer due at tick `t >= elapsed` lives at the level given by the highest
//! 6-bit digit in which `t` and `elapsed` differ, in the slot named by `t`'s digit at that
//! level (a timer already due lives in `elapsed`'s level-0 slot). Hence every timer of a
//! lower level is due before every timer of a higher one, and within a level the occupied
//! slots lie at or after `elapsed`'s digit: the earliest timer is in the first occupied
//! slot of the lowest occupied level, found with one `u64` occupancy bitmap per level.
//!
//! `expire` repeatedly takes that slot while it starts at or before `now`'s tick: a slot
//! above level 0 is cascaded (its timers are placed again, one level lower at least), a
//! level-0 slot fires the timers due by `now`. Timers sharing a tick may straddle `now`;
//! those not yet due stay in their slot, so firing is exact to the `Instant`, not to the
//! tick. Fired timers are sorted by (deadline, insertion sequence) before they are handed
//! out.
//!
//! Entries live in a slab (a `Vec` with a free list). A slot is an intrusive doubly-linked
//! list through the entries, so cancelling unlinks in O(1). Each list caches its earliest
//! deadline; cancelling that timer only marks the cache stale, and `next_deadline`
//! rescans that one list when it is the earliest one.

use std::cell::Cell;
use std::mem;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

/// The tick in which a deadline `at` nanoseconds from the wheel's start falls, with ticks
/// of `tick_nanos` (0 before the start).
fn tick_at(at: i64, tick_nanos: u64) -> u64 {
    at.max(0).unsigned_abs() / tick_nanos
}

/// Bits of a tick consumed by one level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels of the wheel: with 1 ms ticks they cover 2^36 ms, about 2.2 years.
const LEVELS: usize = 6;
/// Ticks covered by the whole wheel, as a bit count.
const WHEEL_BITS: u32 = SLOT_BITS * LEVELS as u32;
/// Index of the overflow list in [`TimerWheel::lists`], after the `LEVELS * SLOTS` slots.
const OVERFLOW: usize = LEVELS * SLOTS;
/// Lists: every slot of every level, then the overflow list.
const LISTS: usize = OVERFLOW + 1;
/// "No entry": the end of a list or of the free list. Never a valid entry index.
const NIL: u32 = u32::MAX;
/// `Timer::list` of a timer that is in no list (being fired by `expire`).
const DETACHED: u16 = u16::MAX;

/// A hierarchical timer wheel holding values of type `T` until their deadline.
///
/// Use it from a reactor loop, in this order:
/// 1. [`insert`](Self::insert) timers, keeping each [`TimerKey`] to
///    [`cancel`](Self::cancel) it;
/// 2. wait for I/O no later than [`next_deadline`](Self::next_deadline);
/// 3. after the wait, [`expire`](Self::expire) with the current time and handle what it
///    returns.
///
/// The wheel is `Send` when `T` is, but not `Sync`: each slot caches its earliest
/// deadline in a `Cell`, refreshed by `next_deadline`.
///
/// `now` should not go backwards between calls. If it does, `expire` still never returns a
/// timer that is not due yet, but a timer due before the earlier `now` may wait until time
/// catches up.
pub(crate) struct TimerWheel<T> {
    /// Origin of the tick count.
    start: Instant,
    /// Tick length in nanoseconds.
    // INVARIANT: non-zero (checked in `new`).
    tick_nanos: u64,
    /// Ticks since `start` the wheel has been advanced to by `expire`.
    // INVARIANT: every linked timer sits in the list `place` would pick for it now, and no
    // list lies wholly before `elapsed` (see the module docs).
    elapsed: u64,
    /// Timer storage; `TimerKey::index` points here.
    entries: Vec<Entry<T>>,
    /// Head of the free list of vacant entries, or `NIL`.
    free_head: u32,
    /// Pending timers (occupied entries).
    len: usize,
    /// Insertion counter; orders timers with equal deadlines.
    next_seq: u64,
    /// Level-major slot lists (`level * SLOTS + slot`), then the overflow list.
    lists: Box<[List; LISTS]>,
    /// Per level, bit `s` is set when slot `s` is non-empty.
    // INVARIANT: bit set <=> the slot's list is non-empty.
    occupied: [u64; LEVELS],
    /// Scratch for `expire`: entries being fired, kept to reuse its allocation.
    fired: Vec<u32>,
    /// Slots taken by `expire` (fired or cascaded), for the tests' cost assertions.
    #[cfg(test)]
    slot_visits: u64,
}

/// Handle to a timer in a [`TimerWheel`].
///
/// Holds the entry's index and its generation, so a key whose timer fired or was cancelled
/// never reaches the timer that later reuses the entry (until the generation wraps after
/// 2^32 - 1 reuses of one entry). The generation is never zero, so an `Option<TimerKey>`
/// (a connection's stall timer, say) is 8 bytes, not 12 (issue 16: memory per idle
/// connection).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub(crate) struct TimerKey {
    /// Index in `TimerWheel::entries`.
    index: u32,
    /// `Entry::generation` when the timer was inserted.
    generation: NonZeroU32,
}

/// The first generation of an entry.
const FIRST_GENERATION: NonZeroU32 = NonZeroU32::MIN;

/// One slab entry: a pending timer, or (`value` `None`) a vacant entry whose `next` links
/// the free list. Every pending timer has one (an idle HTTP connection has its read timeout
/// armed), so it is kept small (issue 16): the deadline is nanoseconds from `start` (8
/// bytes, not an `Instant`'s 16), its tick is computed from it, not stored, and vacancy is
/// the value's own niche, not an enum tag beside it (64 bytes with the engine's values,
/// 72 as an enum).
struct Entry<T> {
    /// The caller's value; `None` while the entry is vacant.
    value: Option<T>,
    /// Exact deadline, in nanoseconds since `start` (negative before it; saturating about
    /// 292 years either way, beyond any deadline `timers::deadline` makes).
    at: i64,
    /// Insertion order among all timers of the wheel.
    seq: u64,
    /// Bumped each time the entry is vacated.
    generation: NonZeroU32,
    /// Index of the list holding the timer, or `DETACHED`.
    list: u16,
    /// Previous entry in the list, or `NIL` at the head.
    prev: u32,
    /// Next entry in the list, or `NIL` at the tail; in a vacant entry, the next free
    /// entry or `NIL`.
    next: u32,
}

/// A slot (or the overflow list): an intrusive list through `Timer::prev`/`next`.
struct List {
    /// First entry, or `NIL` when empty.
    head: u32,
    /// Earliest deadline in the list (as `Timer::at`), or `None` when unknown (stale) or
    /// empty.
    // INVARIANT: when `Some`, equals the earliest `at` of the list's timers.
    min: Cell<Option<i64>>,
}

impl<T> TimerWheel<T> {
    /// Creates an empty wheel whose tick 0 begins at `start`, with ticks of `tick`.
    ///
    /// `tick` is the resolution of the wheel's buckets, not of firing: timers fire exactly
    /// at their deadline. A coarser tick makes cascades rarer; with a 1 ms tick the levels
    /// span about 2.2 years, and later deadlines wait in an overflow list.
    ///
    /// # Panics
    /// If `tick` is zero.
    pub(crate) fn new(start: Instant, tick: Duration) -> Self {
        assert!(!tick.is_zero(), "timer wheel tick must be non-zero");
        Self {
            start,
            tick_nanos: u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX),
            elapsed: 0,
            entries: Vec::new(),
            free_head: NIL,
            len: 0,
            next_seq: 0,
            lists: Box::new(std::array::from_fn(|_| List {
                head: NIL,
                min: Cell::new(None),
            })),
            occupied: [0; LEVELS],
            fired: Vec::new(),
            #[cfg(test)]
            slot_visits: 0,
        }
    }

    /// Adds a timer due at `deadline` holding `value`, in O(1).
    ///
    /// A deadline at or before the time of the last [`expire`](Self::expire) fires on the
    /// next one.
    ///
    /// # Panics
    /// If `u32::MAX` timers are pending at once.
    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.alloc(value, self.at_of(deadline), seq);
        self.place(key.index);
        key
    }

    /// Removes the timer of `key` and returns its value, in O(1).
    ///
    /// Returns `None` if the timer already fired or was cancelled, or if `key` is stale.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<T> {
        if !self.contains(key) {
            return None;
        }
        self.unlink(key.index);
        Some(self.free(key.index))
    }

    /// Moves the pending timer of `key` to `deadline`, keeping its key and value, in O(1).
    /// It then orders after every timer inserted before the move (as a new insertion).
    ///
    /// Returns `false` (and does nothing) if the timer already fired or was cancelled.
    pub(crate) fn reset(&mut self, key: TimerKey, deadline: Instant) -> bool {
        if !self.contains(key) {
            return false;
        }
        self.unlink(key.index);
        let seq = self.next_seq;
        self.next_seq += 1;
        let at = self.at_of(deadline);
        let timer = self.timer_mut(key.index);
        timer.at = at;
        timer.seq = seq;
        self.place(key.index);
        true
    }

    /// The value and deadline of the pending timer of `key`.
    pub(crate) fn get(&self, key: TimerKey) -> Option<(&T, Instant)> {
        let entry = self.entries.get(key.index as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        Some((entry.value.as_ref()?, self.instant_of(entry.at)))
    }

    /// Removes every pending timer and returns their values (in no particular order).
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let mut values = Vec::with_capacity(self.len);
        for index in 0..self.entries.len() {
            // `entries.len() <= NIL` (checked in `alloc`), so the cast is lossless.
            let index = index as u32;
            if self.entries[index as usize].value.is_some() {
                self.unlink(index);
                values.push(self.free(index));
            }
        }
        values
    }

    /// Whether the timer of `key` is still pending.
    pub(crate) fn contains(&self, key: TimerKey) -> bool {
        self.entries
            .get(key.index as usize)
            .is_some_and(|e| e.generation == key.generation && e.value.is_some())
    }

    /// Number of pending timers.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Earliest time at which [`expire`](Self::expire) could return something, or `None`
    /// when no timer is pending.
    ///
    /// This is exactly the earliest pending deadline (it may lie in the past), so a
    /// reactor that waits until then neither wakes early for nothing nor fires late.
    ///
    /// Cost: O(levels), plus one scan of the earliest slot after the timer holding that
    /// slot's earliest deadline was cancelled (the result is cached).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let (list, _) = self.next_list()?;
        let cached = &self.lists[list].min;
        if let Some(min) = cached.get() {
            return Some(self.instant_of(min));
        }
        let mut min: Option<i64> = None;
        let mut index = self.lists[list].head;
        while index != NIL {
            let timer = self.timer(index);
            min = Some(min.map_or(timer.at, |m| m.min(timer.at)));
            index = timer.next;
        }
        cached.set(min);
        min.map(|at| self.instant_of(at))
    }

    /// Removes every timer whose deadline is `<= now` and appends `(key, value)` to `out`
    /// in deadline order (equal deadlines: insertion order).
    ///
    /// Never returns a timer whose deadline is later than `now`. Slots are skipped with the
    /// occupancy bitmaps, so a long idle gap costs at most one slot visit per level for
    /// each timer it reaches, not one per tick. Timers in `now`'s own tick that are not
    /// due yet are looked at again by each call within that tick.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<(TimerKey, T)>) {
        // The last tick that may be taken: ticks before it are wholly due, ticks after it
        // wholly not. If `now` went backwards, `elapsed` stays put.
        let now_at = self.at_of(now);
        let horizon = tick_at(now_at, self.tick_nanos).max(self.elapsed);
        let mut fired = mem::take(&mut self.fired);
        let mut partial = false;
        while let Some((list, first_tick)) = self.next_list() {
            if first_tick > horizon {
                break;
            }
            #[cfg(test)]
            {
                self.slot_visits += 1;
            }
            debug_assert!(first_tick >= self.elapsed, "a slot lies before elapsed");
            self.elapsed = first_tick;
            if list < SLOTS {
                if self.fire_slot(list, now_at, &mut fired) {
                    // Timers of this tick that are due after `now`: nothing later is due.
                    debug_assert_eq!(first_tick, horizon, "a wholly due tick kept a timer");
                    partial = true;
                    break;
                }
            } else {
                self.cascade(list);
            }
        }
        if !partial {
            self.elapsed = horizon;
        }

        fired.sort_unstable_by_key(|&index| {
            let timer = self.timer(index);
            (timer.at, timer.seq)
        });
        out.reserve(fired.len());
        for &index in &fired {
            let key = self.key_of(index);
            out.push((key, self.free(index)));
        }
        fired.clear();
        self.fired = fired;
    }

    /// `instant` as nanoseconds since `start` (negative before it, saturating). Exact for
    /// any instant within about 292 years of `start`.
    fn at_of(&self, instant: Instant) -> i64 {
        match instant.checked_duration_since(self.start) {
            Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            None => {
                let before = self.start.duration_since(instant).as_nanos();
                i64::try_from(before).map_or(i64::MIN, |n| -n)
            }
        }
    }

    /// The instant `at` nanoseconds from `start` (the inverse of [`Self::at_of`]).
    fn instant_of(&self, at: i64) -> Instant {
        let offset = Duration::from_nanos(at.unsigned_abs());
        let instant = if at >= 0 {
            self.start.checked_add(offset)
        } else {
            self.start.checked_sub(offset)
        };
        // Only a saturated `at` can fall outside what an `Instant` holds.
        instant.unwrap_or(self.start)
    }

    /// The tick of a timer (from its deadline: not stored, see [`Entry`]).
    fn tick_of_timer(&self, timer: &Entry<T>) -> u64 {
        tick_at(timer.at, self.tick_nanos)
    }

    /// The earliest non-empty list and the first tick it covers, or `None` when empty.
    ///
    /// Every timer of a lower level is due before every timer of a higher level, and
    /// within a level occupied slots lie at or after `elapsed`'s digit (module docs).
    fn next_list(&self) -> Option<(usize, u64)> {
        for (level, &occupied) in self.occupied.iter().enumerate() {
            if occupied == 0 {
                continue;
            }
            let shift = level as u32 * SLOT_BITS;
            let current = (self.elapsed >> shift) & (SLOTS as u64 - 1);
            let ahead = occupied & (u64::MAX << current);
            debug_assert_eq!(ahead, occupied, "level {level} has a slot behind elapsed");
            let slot = if ahead != 0 { ahead } else { occupied }.trailing_zeros();
            // The block of this level containing `elapsed`, then the slot within it.
            let block = self.elapsed & !((1u64 << (shift + SLOT_BITS)).wrapping_sub(1));
            let first_tick = block | (u64::from(slot) << shift);
            return Some((level * SLOTS + slot as usize, first_tick));
        }
        if self.lists[OVERFLOW].head == NIL {
            return None;
        }
        // Overflowed timers are due in a later top-level block: look again at its start.
        let next_block = (self.elapsed | ((1u64 << WHEEL_BITS) - 1)).saturating_add(1);
        Some((OVERFLOW, next_block))
    }

    /// Links entry `index` into the list its tick maps to, relative to `elapsed`.
    fn place(&mut self, index: u32) {
        let list = self.list_for(self.tick_of_timer(self.timer(index)));
        self.link(index, list);
    }

    /// The list for a timer due at `tick`, relative to `elapsed`.
    fn list_for(&self, tick: u64) -> usize {
        // A timer already due goes with the current tick.
        let tick = tick.max(self.elapsed);
        // The highest base-64 digit in which `tick` differs from `elapsed` (0 if none).
        let significant = 63 - ((tick ^ self.elapsed) | (SLOTS as u64 - 1)).leading_zeros();
        let level = (significant / SLOT_BITS) as usize;
        if level < LEVELS {
            let slot = (tick >> (level as u32 * SLOT_BITS)) & (SLOTS as u64 - 1);
            level * SLOTS + slot as usize
        } else {
            OVERFLOW
        }
    }

    /// Pushes entry `index` at the head of `list`.
    fn link(&mut self, index: u32, list: usize) {
        let head = self.lists[list].head;
        let timer = self.timer_mut(index);
        // `list < LISTS <= u16::MAX`, so the cast is lossless.
        timer.list = list as u16;
        timer.prev = NIL;
        timer.next = head;
        let deadline = timer.at;
        if head != NIL {
            self.timer_mut(head).prev = index;
        }
        let slot = &mut self.lists[list];
        slot.head = index;
        let min = if head == NIL {
            Some(deadline)
        } else {
            slot.min.get().map(|m| m.min(deadline))
        };
        slot.min.set(min);
        if list < OVERFLOW {
            self.occupied[list / SLOTS] |= 1 << (list % SLOTS);
        }
    }

    /// Removes entry `index` from its list, in O(1).
    fn unlink(&mut self, index: u32) {
        let timer = self.timer_mut(index);
        let (list, prev, next, deadline) =
            (usize::from(timer.list), timer.prev, timer.next, timer.at);
        timer.list = DETACHED;
        debug_assert!(list < LISTS, "unlinking a detached timer");
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.timer_mut(prev).next = next;
        }
        if next != NIL {
            self.timer_mut(next).prev = prev;
        }
        let slot = &self.lists[list];
        if slot.head == NIL {
            slot.min.set(None);
            if list < OVERFLOW {
                self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
            }
        } else if slot.min.get() == Some(deadline) {
            // Possibly the earliest one left: recomputed by `next_deadline` when needed.
            slot.min.set(None);
        }
    }

    /// Detaches the whole of `list`, returning its first entry (the rest follow `next`).
    fn take_list(&mut self, list: usize) -> u32 {
        let slot = &mut self.lists[list];
        let head = mem::replace(&mut slot.head, NIL);
        slot.min.set(None);
        if list < OVERFLOW {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
        head
    }

    /// Moves every timer of `list` to the list it maps to now that `elapsed` reached the
    /// list's first tick (a lower level, or the overflow list again).
    fn cascade(&mut self, list: usize) {
        let mut index = self.take_list(list);
        while index != NIL {
            let next = self.timer(index).next;
            self.place(index);
            index = next;
        }
    }

    /// Detaches the timers of level-0 slot `list` due by `now` into `fired`.
    ///
    /// Returns whether timers not yet due remain in the slot.
    fn fire_slot(&mut self, list: usize, now: i64, fired: &mut Vec<u32>) -> bool {
        let mut remaining_min: Option<i64> = None;
        let mut index = self.lists[list].head;
        while index != NIL {
            let timer = self.timer(index);
            let (next, deadline) = (timer.next, timer.at);
            if deadline <= now {
                self.unlink(index);
                fired.push(index);
            } else {
                remaining_min = Some(remaining_min.map_or(deadline, |m| m.min(deadline)));
            }
            index = next;
        }
        // Every remaining timer was seen: refresh the cache that `unlink` may have cleared.
        self.lists[list].min.set(remaining_min);
        remaining_min.is_some()
    }

    /// Stores a timer in a vacant entry and returns its key.
    fn alloc(&mut self, value: T, at: i64, seq: u64) -> TimerKey {
        self.len += 1;
        if self.free_head != NIL {
            let index = self.free_head;
            let entry = &mut self.entries[index as usize];
            // INVARIANT: the free list links vacant entries only (see `free`).
            debug_assert!(entry.value.is_none(), "free list reached an occupied entry");
            self.free_head = entry.next;
            *entry = Entry {
                value: Some(value),
                at,
                seq,
                generation: entry.generation,
                list: DETACHED,
                prev: NIL,
                next: NIL,
            };
            return TimerKey {
                index,
                generation: entry.generation,
            };
        }
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&index| index != NIL)
            .unwrap_or_else(|| panic!("more than {} pending timers", NIL - 1));
        self.entries.push(Entry {
            value: Some(value),
            at,
            seq,
            generation: FIRST_GENERATION,
            list: DETACHED,
            prev: NIL,
            next: NIL,
        });
        TimerKey {
            index,
            generation: FIRST_GENERATION,
        }
    }

    /// Vacates entry `index` (already unlinked) and returns its value.
    fn free(&mut self, index: u32) -> T {
        let entry = &mut self.entries[index as usize];
        let Some(value) = entry.value.take() else {
            // INVARIANT: callers free only entries they found occupied (a checked key, a
            // list member, or a fired index).
            unreachable!("freeing a vacant timer entry")
        };
        debug_assert_eq!(entry.list, DETACHED, "freeing a linked timer");
        entry.next = self.free_head;
        entry.generation = entry.generation.checked_add(1).unwrap_or(FIRST_GENERATION);
        self.free_head = index;
        self.len -= 1;
        value
    }

    /// The key of occupied entry `index`.
    fn key_of(&self, index: u32) -> TimerKey {
        TimerKey {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// The timer in entry `index`.
    fn timer(&self, index: u32) -> &Entry<T> {
        let entry = &self.entries[index as usize];
        // INVARIANT: lists, `fired` and checked keys name occupied entries only.
        debug_assert!(entry.value.is_some(), "timer list reached a vacant entry");
        entry
    }

    /// The timer in entry `index`, mutably.
    fn timer_mut(&mut self, index: u32) -> &mut Entry<T> {
        let entry = &mut self.entries[index as usize];
        // INVARIANT: lists, `fired` and checked keys name occupied entries only.
        debug_assert!(entry.value.is_some(), "timer list reached a vacant entry");
        entry
    }
}
