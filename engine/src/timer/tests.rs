//! Tests of [`TimerWheel`]: examples, cost bounds, and a seeded comparison against a sorted
//! reference model. Time is synthetic: a base `Instant` plus offsets; nothing sleeps.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(24 * 3600);
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// A wheel with 1 ms ticks starting at the returned base.
fn wheel<T>() -> (Instant, TimerWheel<T>) {
    let base = Instant::now();
    (base, TimerWheel::new(base, MS))
}

/// Runs `expire(now)` and returns the fired values.
fn expire<T>(wheel: &mut TimerWheel<T>, now: Instant) -> Vec<T> {
    let mut out = Vec::new();
    wheel.expire(now, &mut out);
    check_invariants(wheel);
    out.into_iter().map(|(_, value)| value).collect()
}

/// Checks every structural invariant the wheel documents.
fn check_invariants<T>(wheel: &TimerWheel<T>) {
    let mut linked = 0;
    for (list, slot) in wheel.lists.iter().enumerate() {
        let mut prev = NIL;
        let mut index = slot.head;
        let mut min: Option<i64> = None;
        while index != NIL {
            let timer = wheel.timer(index);
            assert_eq!(
                usize::from(timer.list),
                list,
                "timer in the wrong list field"
            );
            assert_eq!(timer.prev, prev, "broken prev link");
            assert_eq!(
                wheel.list_for(wheel.tick_of_timer(timer)),
                list,
                "timer not where place puts it"
            );
            min = Some(min.map_or(timer.at, |m| m.min(timer.at)));
            linked += 1;
            prev = index;
            index = timer.next;
        }
        if let Some(cached) = slot.min.get() {
            assert_eq!(Some(cached), min, "stale min cache in list {list}");
        }
        if list < OVERFLOW {
            let bit = wheel.occupied[list / SLOTS] >> (list % SLOTS) & 1;
            assert_eq!(bit == 1, slot.head != NIL, "occupancy bit of list {list}");
        }
    }
    assert_eq!(linked, wheel.len(), "linked timers vs len");
    let occupied = wheel.entries.iter().filter(|e| e.value.is_some()).count();
    assert_eq!(occupied, wheel.len(), "occupied entries vs len");
    let mut free = 0;
    let mut index = wheel.free_head;
    while index != NIL {
        let entry = &wheel.entries[index as usize];
        assert!(entry.value.is_none(), "free list reaches an occupied entry");
        index = entry.next;
        free += 1;
    }
    assert_eq!(free + wheel.len(), wheel.entries.len(), "free list length");
    assert!(wheel.fired.is_empty(), "fired scratch left non-empty");
}

#[test]
#[should_panic(expected = "tick must be non-zero")]
fn new_panics_on_zero_tick() {
    let _ = TimerWheel::<()>::new(Instant::now(), Duration::ZERO);
}

#[test]
fn fires_in_deadline_order_then_insertion_order() {
    let (base, mut wheel) = wheel();
    // Same coarse slot at level 1 (ticks 64..128), different deadlines, two ties.
    let offsets_us = [100_500, 70_000, 100_500, 64_001, 127_999, 70_000, 64_000];
    for (value, &us) in offsets_us.iter().enumerate() {
        wheel.insert(base + Duration::from_micros(us), value);
    }
    check_invariants(&wheel);
    assert_eq!(expire(&mut wheel, base + SECOND), [6, 3, 1, 5, 0, 2, 4]);
    assert!(wheel.is_empty());
}

#[test]
fn never_fires_early() {
    let (base, mut wheel) = wheel();
    let deadline = base + 10 * MS + Duration::from_nanos(1);
    let key = wheel.insert(deadline, "late");
    assert!(expire(&mut wheel, base + 10 * MS).is_empty());
    assert!(expire(&mut wheel, deadline - Duration::from_nanos(1)).is_empty());
    assert!(wheel.contains(key));
    assert_eq!(expire(&mut wheel, deadline), ["late"]);
    assert!(!wheel.contains(key));
}

#[test]
fn one_tick_can_fire_in_parts() {
    let (base, mut wheel) = wheel();
    for us in [5_900, 5_100, 5_500] {
        wheel.insert(base + Duration::from_micros(us), us);
    }
    assert_eq!(
        expire(&mut wheel, base + Duration::from_micros(5_500)),
        [5_100, 5_500]
    );
    assert_eq!(
        wheel.next_deadline(),
        Some(base + Duration::from_micros(5_900))
    );
    // A timer inserted into the tick being fired, then the rest of the tick.
    wheel.insert(base + Duration::from_micros(5_700), 5_700);
    assert_eq!(
        expire(&mut wheel, base + Duration::from_micros(5_800)),
        [5_700]
    );
    assert_eq!(expire(&mut wheel, base + 6 * MS), [5_900]);
}

#[test]
fn past_deadlines_fire_on_next_expire() {
    let (base, mut wheel) = wheel();
    assert!(expire(&mut wheel, base + 10 * SECOND).is_empty());
    wheel.insert(base + 5 * SECOND, "past");
    wheel.insert(base + 10 * SECOND, "now");
    wheel.insert(base - SECOND, "before start");
    wheel.insert(base + 10 * SECOND + MS, "future");
    assert_eq!(wheel.next_deadline(), Some(base - SECOND));
    assert_eq!(
        expire(&mut wheel, base + 10 * SECOND),
        ["before start", "past", "now"]
    );
    assert_eq!(wheel.len(), 1);
}

#[test]
fn time_going_backwards_fires_nothing_early() {
    let (base, mut wheel) = wheel();
    assert!(expire(&mut wheel, base + 10 * SECOND).is_empty());
    wheel.insert(base + 2 * SECOND, 2);
    wheel.insert(base + 4 * SECOND, 4);
    wheel.insert(base + 11 * SECOND, 11);
    assert_eq!(expire(&mut wheel, base + 3 * SECOND), [2]);
    assert_eq!(expire(&mut wheel, base + 10 * SECOND), [4]);
    assert_eq!(expire(&mut wheel, base + 11 * SECOND), [11]);
}

#[test]
fn cancel_returns_the_value_once() {
    let (base, mut wheel) = wheel();
    let key = wheel.insert(base + SECOND, String::from("a"));
    let other = wheel.insert(base + SECOND, String::from("b"));
    assert_eq!(wheel.cancel(key).as_deref(), Some("a"));
    assert_eq!(wheel.cancel(key), None);
    assert!(!wheel.contains(key));
    assert!(wheel.contains(other));
    check_invariants(&wheel);
    assert_eq!(expire(&mut wheel, base + SECOND), ["b"]);
    assert_eq!(
        wheel.cancel(other),
        None,
        "a fired timer cannot be cancelled"
    );
}

#[test]
fn stale_key_after_reuse_is_rejected() {
    let (base, mut wheel) = wheel();
    let old = wheel.insert(base + SECOND, 1);
    assert_eq!(wheel.cancel(old), Some(1));
    let new = wheel.insert(base + 2 * SECOND, 2);
    assert_eq!(new.index, old.index, "the entry is reused");
    assert_ne!(new, old);
    assert!(!wheel.contains(old));
    assert_eq!(wheel.cancel(old), None);
    assert!(wheel.contains(new));
    // The same after the timer fired rather than being cancelled.
    assert_eq!(expire(&mut wheel, base + 2 * SECOND), [2]);
    let newer = wheel.insert(base + 3 * SECOND, 3);
    assert_eq!(newer.index, new.index);
    assert_eq!(wheel.cancel(new), None);
    assert_eq!(wheel.cancel(newer), Some(3));
    // A key from another, larger wheel names no entry here.
    let stranger = TimerKey {
        index: 1000,
        generation: FIRST_GENERATION,
    };
    assert!(!wheel.contains(stranger));
    assert_eq!(wheel.cancel(stranger), None);
}

/// Generations are never zero (so an `Option<TimerKey>` needs no tag): after the last one
/// an entry starts again at the first, and the old key is stale.
#[test]
fn generation_wraps_past_zero() {
    let (base, mut wheel) = wheel();
    let old = wheel.insert(base + SECOND, 1);
    wheel.entries[old.index as usize].generation = NonZeroU32::MAX;
    let old = wheel.key_of(old.index);
    assert_eq!(wheel.cancel(old), Some(1));
    let new = wheel.insert(base + SECOND, 2);
    assert_eq!(new.index, old.index);
    assert_eq!(new.generation, FIRST_GENERATION);
    assert!(!wheel.contains(old));
    assert!(wheel.contains(new));
    check_invariants(&wheel);
}

#[test]
fn len_tracks_insert_cancel_and_expire() {
    let (base, mut wheel) = wheel();
    assert!(wheel.is_empty());
    let keys: Vec<_> = (0..10u32)
        .map(|i| wheel.insert(base + i * SECOND, i))
        .collect();
    assert_eq!(wheel.len(), 10);
    wheel.cancel(keys[3]);
    wheel.cancel(keys[3]);
    assert_eq!(wheel.len(), 9);
    assert_eq!(expire(&mut wheel, base + 4 * SECOND), [0, 1, 2, 4]);
    assert_eq!(wheel.len(), 5);
    assert!(!wheel.is_empty());
    expire(&mut wheel, base + 9 * SECOND);
    assert_eq!(wheel.len(), 0);
    assert!(wheel.is_empty());
}

#[test]
fn next_deadline_is_the_earliest_pending_deadline() {
    let (base, mut wheel) = wheel();
    assert_eq!(wheel.next_deadline(), None);
    let far = base + 5 * YEAR;
    wheel.insert(far, ());
    assert_eq!(wheel.next_deadline(), Some(far), "from the overflow list");
    let day = base + DAY + Duration::from_micros(1);
    let day_key = wheel.insert(day, ());
    assert_eq!(wheel.next_deadline(), Some(day));
    // Same level-3 slot as `day`, later: cancelling `day` forces a rescan of the slot.
    let later = day + 5 * SECOND;
    wheel.insert(later, ());
    wheel.cancel(day_key);
    assert_eq!(wheel.next_deadline(), Some(later));
    assert!(expire(&mut wheel, later - MS).is_empty());
    assert_eq!(wheel.next_deadline(), Some(later));
    assert_eq!(expire(&mut wheel, later).len(), 1);
    assert_eq!(wheel.next_deadline(), Some(far));
    assert!(expire(&mut wheel, far - Duration::from_nanos(1)).is_empty());
    assert_eq!(wheel.next_deadline(), Some(far));
    assert_eq!(expire(&mut wheel, far).len(), 1);
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn deadlines_at_every_level_and_beyond_fire_on_time() {
    // A fine tick makes the overflow list reachable in a few days (2^36 us ~ 19 hours).
    for tick in [MS, Duration::from_micros(1), Duration::from_micros(7_300)] {
        let base = Instant::now();
        let mut wheel = TimerWheel::new(base, tick);
        let mut deadlines = Vec::new();
        for digit in 0..=LEVELS as u32 + 1 {
            let ticks = 1u64 << (digit * SLOT_BITS).min(38);
            for ticks in [ticks - 1, ticks, ticks + 1, 3 * ticks + 17] {
                let nanos = u128::from(ticks) * tick.as_nanos() + 1;
                deadlines.push(base + Duration::from_nanos(u64::try_from(nanos).unwrap()));
            }
        }
        deadlines.sort();
        deadlines.dedup();
        for (value, &deadline) in deadlines.iter().enumerate().rev() {
            wheel.insert(deadline, value);
        }
        check_invariants(&wheel);
        for (value, &deadline) in deadlines.iter().enumerate() {
            assert_eq!(wheel.next_deadline(), Some(deadline));
            assert!(expire(&mut wheel, deadline - Duration::from_nanos(1)).is_empty());
            assert_eq!(expire(&mut wheel, deadline), [value], "tick {tick:?}");
        }
        assert!(wheel.is_empty());
    }
}

#[test]
fn idle_jump_of_a_year_visits_few_slots() {
    let (base, mut wheel) = wheel();
    assert!(expire(&mut wheel, base + YEAR).is_empty());
    assert_eq!(wheel.slot_visits, 0, "an empty wheel visits nothing");

    let start = base + YEAR;
    let mut rng = SmallRng::seed_from_u64(7);
    let count = 10u64;
    for value in 0..count {
        let offset = Duration::from_millis(rng.random_range(0..YEAR.as_millis() as u64));
        wheel.insert(start + offset, value);
    }
    wheel.insert(start + YEAR, count);
    let fired = expire(&mut wheel, start + YEAR);
    assert_eq!(fired.len() as u64, count + 1);
    // Each timer is cascaded at most once per level above 0, then fired once.
    let bound = (count + 1) * LEVELS as u64;
    assert!(
        wheel.slot_visits <= bound,
        "{} slot visits for {} timers over a year",
        wheel.slot_visits,
        count + 1
    );
}

#[test]
fn values_are_dropped_with_the_wheel() {
    let (base, mut wheel) = wheel();
    let value = Rc::new(());
    let key = wheel.insert(base + SECOND, Rc::clone(&value));
    wheel.insert(base + YEAR * 3, Rc::clone(&value));
    drop(wheel.cancel(key));
    assert_eq!(Rc::strong_count(&value), 2);
    drop(wheel);
    assert_eq!(Rc::strong_count(&value), 1);
}

/// A sorted reference model of the wheel: pending timers by (deadline, order), where order
/// counts insertions and resets (as the wheel's sequence does); values are kept apart.
#[derive(Default)]
struct Model {
    by_deadline: BTreeMap<(Instant, u64), (TimerKey, u64)>,
    by_key: HashMap<TimerKey, (Instant, u64, u64)>,
    order: u64,
}

impl Model {
    fn insert(&mut self, key: TimerKey, deadline: Instant, value: u64) {
        let order = self.order;
        self.order += 1;
        self.by_deadline.insert((deadline, order), (key, value));
        assert!(
            self.by_key.insert(key, (deadline, order, value)).is_none(),
            "key reused while live"
        );
    }

    fn cancel(&mut self, key: TimerKey) -> Option<u64> {
        let (deadline, order, value) = self.by_key.remove(&key)?;
        self.by_deadline.remove(&(deadline, order));
        Some(value)
    }

    fn reset(&mut self, key: TimerKey, deadline: Instant) -> bool {
        match self.cancel(key) {
            Some(value) => {
                self.insert(key, deadline, value);
                true
            }
            None => false,
        }
    }

    fn expire(&mut self, now: Instant) -> Vec<(TimerKey, u64)> {
        let mut fired = Vec::new();
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (_, (key, value)) = entry.remove_entry();
            self.by_key.remove(&key);
            fired.push((key, value));
        }
        fired
    }

    fn earliest(&self) -> Option<Instant> {
        self.by_deadline
            .keys()
            .next()
            .map(|&(deadline, _)| deadline)
    }
}

/// Random operations against the model; values are insertion sequence numbers.
fn run_against_model(seed: u64, tick: Duration, steps: usize) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let base = Instant::now();
    let mut wheel = TimerWheel::new(base, tick);
    let mut model = Model::default();
    let mut now = base;
    let mut seq = 0u64;
    let mut dead_keys: Vec<TimerKey> = Vec::new();
    let nanos = |range: std::ops::Range<u64>, rng: &mut SmallRng| {
        Duration::from_nanos(rng.random_range(range))
    };
    let tick_nanos = u64::try_from(tick.as_nanos()).unwrap();
    let mut out = Vec::new();

    for _ in 0..steps {
        match rng.random_range(0..100) {
            0..50 => {
                let deadline = match rng.random_range(0..10) {
                    0 => now
                        .checked_sub(nanos(0..10 * tick_nanos, &mut rng))
                        .unwrap_or(now),
                    1 => now,
                    2 => match model.by_key.values().next() {
                        Some(&(deadline, _, _)) => deadline,
                        None => now,
                    },
                    3 | 4 => now + nanos(0..3 * tick_nanos, &mut rng),
                    5 | 6 => now + nanos(0..100 * SECOND.as_nanos() as u64, &mut rng),
                    7 => now + nanos(0..60 * DAY.as_nanos() as u64, &mut rng),
                    _ => now + nanos(0..5 * YEAR.as_nanos() as u64, &mut rng),
                };
                let key = wheel.insert(deadline, seq);
                model.insert(key, deadline, seq);
                seq += 1;
            }
            50..62 => {
                let live = model.by_key.len();
                if live > 0 {
                    let nth = rng.random_range(0..live);
                    let key = *model.by_key.keys().nth(nth).unwrap();
                    assert_eq!(wheel.cancel(key), model.cancel(key));
                    dead_keys.push(key);
                }
            }
            62..68 => {
                // Move a live timer (half the time), or try a dead key.
                let live = model.by_key.len();
                let key = if live > 0 && rng.random_bool(0.5) {
                    *model.by_key.keys().nth(rng.random_range(0..live)).unwrap()
                } else if !dead_keys.is_empty() {
                    dead_keys[rng.random_range(0..dead_keys.len())]
                } else {
                    continue;
                };
                let deadline = now + nanos(0..100 * SECOND.as_nanos() as u64, &mut rng);
                let moved = model.reset(key, deadline);
                assert_eq!(wheel.reset(key, deadline), moved);
                if moved {
                    assert_eq!(wheel.get(key).map(|(_, at)| at), Some(deadline));
                } else {
                    assert!(wheel.get(key).is_none());
                }
            }
            68..71 => {
                if !dead_keys.is_empty() {
                    let key = dead_keys[rng.random_range(0..dead_keys.len())];
                    assert!(!wheel.contains(key));
                    assert_eq!(wheel.cancel(key), None);
                }
            }
            _ => {
                // Mostly short steps, so that hundreds of timers are pending at once.
                let advance = match rng.random_range(0..100) {
                    0..10 => Duration::ZERO,
                    10..60 => nanos(0..3 * tick_nanos, &mut rng),
                    60..90 => nanos(0..30 * SECOND.as_nanos() as u64, &mut rng),
                    90..97 => nanos(0..10 * DAY.as_nanos() as u64, &mut rng),
                    _ => nanos(0..YEAR.as_nanos() as u64, &mut rng),
                };
                now += advance;
                wheel.expire(now, &mut out);
                let fired = mem::take(&mut out);
                let expected = model.expire(now);
                assert_eq!(fired, expected, "seed {seed}, tick {tick:?}, now {now:?}");
                dead_keys.extend(fired.iter().map(|&(key, _)| key));
            }
        }
        assert_eq!(wheel.len(), model.by_key.len());
        // Exact, which is within the contract's one tick [floor(earliest), earliest].
        assert_eq!(wheel.next_deadline(), model.earliest(), "seed {seed}");
        check_invariants(&wheel);
    }

    // Drain: everything fires, in order, by ten years on.
    now += 10 * YEAR;
    wheel.expire(now, &mut out);
    assert_eq!(out, model.expire(now));
    assert!(wheel.is_empty());
    check_invariants(&wheel);
}

#[test]
fn drain_takes_every_pending_timer() {
    let (base, mut wheel) = wheel();
    let keys: Vec<_> = [MS, SECOND, DAY, 3 * YEAR]
        .iter()
        .enumerate()
        .map(|(i, &d)| wheel.insert(base + d, i))
        .collect();
    wheel.cancel(keys[1]);
    let mut drained = wheel.drain();
    drained.sort_unstable();
    assert_eq!(drained, [0, 2, 3]);
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline(), None);
    check_invariants(&wheel);
    assert!(keys.iter().all(|&k| wheel.get(k).is_none()));
}

#[test]
fn reset_moves_a_timer_and_keeps_its_key() {
    let (base, mut wheel) = wheel();
    let a = wheel.insert(base + SECOND, "a");
    let b = wheel.insert(base + 2 * SECOND, "b");
    assert!(wheel.reset(b, base + MS));
    assert_eq!(wheel.get(b).map(|(v, at)| (*v, at)), Some(("b", base + MS)));
    assert_eq!(wheel.next_deadline(), Some(base + MS));
    assert_eq!(expire(&mut wheel, base + MS), ["b"]);
    assert!(!wheel.reset(b, base + DAY), "a fired timer cannot move");
    // Later than planned, and behind a timer inserted after it with the same deadline.
    let c = wheel.insert(base + DAY, "c");
    assert!(wheel.reset(a, base + DAY));
    assert_eq!(expire(&mut wheel, base + SECOND), Vec::<&str>::new());
    assert_eq!(expire(&mut wheel, base + DAY), ["c", "a"]);
    assert!(wheel.get(c).is_none());
}

#[test]
fn matches_reference_model_with_millisecond_ticks() {
    for seed in 0..6 {
        run_against_model(seed, MS, 5_000);
    }
}

#[test]
fn matches_reference_model_with_microsecond_ticks() {
    // 2^36 us is about 19 hours: far deadlines go through the overflow list.
    for seed in 10..16 {
        run_against_model(seed, Duration::from_micros(1), 5_000);
    }
}

#[test]
fn matches_reference_model_with_an_odd_tick() {
    for seed in 20..26 {
        run_against_model(seed, Duration::from_nanos(7_654_321), 5_000);
    }
}

#[test]
fn dense_slots_match_reference_model() {
    // Thousands of timers within a few coarse slots: many share a tick or a deadline.
    let mut rng = SmallRng::seed_from_u64(99);
    let (base, mut wheel) = wheel();
    let mut model = Model::default();
    for seq in 0..5_000u64 {
        let offset = match rng.random_range(0..3) {
            0 => Duration::from_millis(rng.random_range(0..300)),
            _ => Duration::from_nanos(rng.random_range(0..300_000_000)),
        };
        let key = wheel.insert(base + offset, seq);
        model.insert(key, base + offset, seq);
    }
    let keys: Vec<TimerKey> = model.by_key.keys().copied().collect();
    for &key in keys.iter().filter(|_| rng.random_range(0..3) == 0) {
        assert_eq!(wheel.cancel(key), model.cancel(key));
    }
    check_invariants(&wheel);
    let mut now = base;
    let mut out = Vec::new();
    while !model.by_key.is_empty() {
        assert_eq!(wheel.next_deadline(), model.earliest());
        now += Duration::from_nanos(rng.random_range(0..2_000_000));
        wheel.expire(now, &mut out);
        assert_eq!(out, model.expire(now));
        out.clear();
        check_invariants(&wheel);
    }
    assert!(wheel.is_empty());
}

/// Memory per idle connection (issue 16): an idle HTTP connection has its read timeout
/// armed, so every connection pays for one entry of the core's wheel.
#[cfg(target_pointer_width = "64")]
#[test]
fn wheel_entry_stays_small() {
    let size = size_of::<Entry<crate::timers::Target>>();
    assert!(size <= 64, "timer wheel entry: {size} bytes");
    // A connection's stall timer and connect timeout are `Option<TimerKey>`s.
    assert_eq!(size_of::<Option<TimerKey>>(), 8);
}
