//! [`Clock`]: where a reactor's time comes from — the system's monotonic clock, or a
//! [`ManualClock`] that a test moves (Twisted's `task.Clock`, driving a real reactor).
//!
//! Owns: the clock choice of a reactor ([`ReactorConfig::clock`](crate::ReactorConfig::clock))
//! and the manual clock's time and the wakers of the reactors that use it.
//! Contract: a reactor reads its clock once per turn (after its driver's wait) and at the
//! few entry points called from outside a turn; everything in the turn sees that one time
//! (`Context::now`, `Reactor::now`, `LocalHandle::now`). With a manual clock, time moves
//! only with [`ManualClock::advance`], which wakes every reactor built with it; their
//! driver waits are bounded by I/O and by the caller, never by a timer (a timer falls due
//! only when the clock is moved past it).
//! Does not: sleep, or pace anything by the system clock when manual.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where a reactor's time comes from. The default is the system's monotonic clock.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// use ringwork::{Clock, ManualClock, ReactorConfig};
///
/// let clock = ManualClock::new();
/// let config = ReactorConfig {
///     clock: Clock::Manual(clock.clone()),
///     ..ReactorConfig::default()
/// };
/// # let _ = config;
/// // ... build a reactor with `config`, arm timers, then:
/// clock.advance(Duration::from_secs(30)); // timers due by then fire on the next turn
/// ```
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// [`Instant::now`].
    #[default]
    System,
    /// A clock that moves only when told ([`ManualClock::advance`]): for tests of timeouts
    /// that must not wait.
    Manual(ManualClock),
}

impl Clock {
    /// The clock's time now.
    #[must_use]
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(clock) => clock.now(),
        }
    }

    /// Whether this is a [`ManualClock`].
    #[must_use]
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}

/// A clock that moves only when told: Twisted's `task.Clock`, for a real reactor.
///
/// A reactor built with [`Clock::Manual`] takes all its time from it — timers
/// ([`Context::call_later`](crate::Context::call_later), [`LocalHandle::call_later`](crate::LocalHandle::call_later),
/// sleeps, [`LoopingCall`](crate::LoopingCall)), connect, handshake and write-stall
/// timeouts, the shutdown grace period — while its sockets stay real. So a test arms a
/// 30 s timeout, calls [`ManualClock::advance`] and sees it fire on the next turn without
/// waiting.
///
/// Moving the clock wakes every reactor built with it (also on other threads, as the
/// cores of a [`Runtime`](crate::Runtime)); each fires what fell due on its next turn, all
/// at the new time, as a real reactor that woke up late would (a repeating timer does not
/// fire once per interval it skipped: advance step by step for that). Cheap to clone:
/// clones are the same clock.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// use ringwork::ManualClock;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now() - start, Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Inner>,
}

struct Inner {
    /// Time zero of the clock.
    base: Instant,
    /// Nanoseconds since `base`; only grows.
    elapsed_nanos: AtomicU64,
    /// The drivers of the reactors built with this clock, by registration number.
    wakers: Mutex<Wakers>,
}

#[derive(Default)]
struct Wakers {
    next: u64,
    list: Vec<(u64, ringwork_platform::Waker)>,
}

impl ManualClock {
    /// A clock that starts at the system's current time and stays there until moved.
    #[must_use]
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A clock that starts at `start`.
    #[must_use]
    pub fn starting_at(start: Instant) -> Self {
        Self {
            inner: Arc::new(Inner {
                base: start,
                elapsed_nanos: AtomicU64::new(0),
                wakers: Mutex::new(Wakers::default()),
            }),
        }
    }

    /// The clock's time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.inner.base + Duration::from_nanos(self.inner.elapsed_nanos.load(Ordering::Acquire))
    }

    /// How far the clock moved since it started.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.elapsed_nanos.load(Ordering::Acquire))
    }

    /// Moves the clock forward by `by` (saturating after about 584 years) and wakes every
    /// reactor built with it: each fires the timers that fell due on its next turn.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // `fetch_update` never fails with a closure that always returns `Some`.
        let _ = self
            .inner
            .elapsed_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
        self.wake_all();
    }

    /// Moves the clock forward to `at` (nothing if it is already there or later) and wakes
    /// the reactors built with it.
    pub fn advance_to(&self, at: Instant) {
        let now = self.now();
        if at > now {
            self.advance(at - now);
        }
    }

    /// Registers the driver of a reactor built with this clock; the number is for
    /// [`ManualClock::unregister`] when the reactor is dropped (a waker holds its driver's
    /// descriptor open).
    pub(crate) fn register(&self, waker: ringwork_platform::Waker) -> u64 {
        let mut wakers = self.lock_wakers();
        let number = wakers.next;
        wakers.next += 1;
        wakers.list.push((number, waker));
        number
    }

    /// Forgets a reactor's driver.
    pub(crate) fn unregister(&self, number: u64) {
        self.lock_wakers().list.retain(|(n, _)| *n != number);
    }

    fn wake_all(&self) {
        for (_, waker) in self.lock_wakers().list.iter() {
            if let Err(error) = waker.wake() {
                tracing::warn!(%error, "waking a reactor for its manual clock failed");
            }
        }
    }

    /// The wakers; a poisoned lock still holds a consistent `Vec` (nothing panics while
    /// holding it).
    fn lock_wakers(&self) -> std::sync::MutexGuard<'_, Wakers> {
        self.inner
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &self.elapsed())
            .finish_non_exhaustive()
    }
}
