//! [`LoopingCall`]: a function run again and again on the core's timer wheel (Twisted's
//! `task.LoopingCall`).
//!
//! Owns: the schedule of one repeating call ([`Repeat`]: fixed rate with a policy for
//! missed ticks, or fixed delay), its next wheel entry and its counters.
//! Contract: one wheel entry at a time; each tick runs the function with the reactor, then
//! arms the next tick — fixed rate: on the grid `start + k * interval` (no drift; late ticks
//! are skipped or run one after another per [`MissedTicks`]), fixed delay: `delay` after the
//! function returned. [`LoopingCall::stop`] (or the function returning
//! [`ControlFlow::Break`]) removes the entry and drops the function.
//! Does not: run two ticks at once, or wait for work a tick started (spawn a task and
//! `sleep` in it for that).
//! Tests: `engine/tests/calls.rs`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::local::LocalHandle;
use crate::reactor::Reactor;
use crate::timers::{CallId, deadline};

/// How a [`LoopingCall`] repeats.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Repeat {
    /// Ticks at `start + k * interval` (no drift). A tick that runs late does not move the
    /// later ones; `missed` says what happens to ticks whose time passed meanwhile.
    FixedRate {
        /// Time between ticks.
        interval: Duration,
        /// What to do with ticks whose time passed.
        missed: MissedTicks,
    },
    /// Each tick `delay` after the previous tick's function returned (the time it takes
    /// and any lateness add up).
    FixedDelay {
        /// Time from the end of one tick to the next.
        delay: Duration,
    },
}

impl Repeat {
    /// A fixed rate that skips ticks missed while the core was busy (Twisted's default).
    #[must_use]
    pub fn every(interval: Duration) -> Self {
        Self::FixedRate {
            interval,
            missed: MissedTicks::Skip,
        }
    }

    /// A fixed rate with the given policy for missed ticks.
    #[must_use]
    pub fn fixed_rate(interval: Duration, missed: MissedTicks) -> Self {
        Self::FixedRate { interval, missed }
    }

    /// A fixed delay between the end of one tick and the next.
    #[must_use]
    pub fn fixed_delay(delay: Duration) -> Self {
        Self::FixedDelay { delay }
    }

    /// The period, at least `tick` (a zero period would never let the loop go idle).
    fn period(self, tick: Duration) -> Duration {
        match self {
            Self::FixedRate { interval, .. } => interval,
            Self::FixedDelay { delay } => delay,
        }
        .max(tick)
    }
}

/// What a fixed-rate [`LoopingCall`] does with ticks whose time passed before it could run
/// them (the core was busy, or a [`ManualClock`](crate::ManualClock) jumped).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum MissedTicks {
    /// Run once for the latest tick that is due and skip the others; [`Tick::missed`]
    /// counts them (Twisted's `LoopingCall` with `withCount` reports the same).
    Skip,
    /// Run every missed tick, one per reactor turn, until the loop is on time again.
    Burst,
}

/// What a [`LoopingCall`]'s function is told about the tick it runs for.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct Tick {
    /// The tick's number: 0 for the first, counting skipped ticks too.
    pub index: u64,
    /// When the tick was due.
    pub scheduled: Instant,
    /// The turn's time (at or after `scheduled`).
    pub now: Instant,
    /// Ticks skipped just before this one ([`MissedTicks::Skip`]); 0 when on time.
    pub missed: u64,
}

/// The function of a [`LoopingCall`].
type LoopFn = Box<dyn FnMut(&mut Reactor, &Tick) -> ControlFlow<()>>;

/// A function run again and again on the core's timer wheel: Twisted's `task.LoopingCall`.
///
/// The function gets the reactor and a [`Tick`]; it returns [`ControlFlow::Continue`] to go
/// on or [`ControlFlow::Break`] to stop. Stop it from outside with [`LoopingCall::stop`].
/// Dropping every `LoopingCall` handle does not stop it (the wheel keeps the next tick);
/// a panicking function stops it (the panic is logged and counted as any reactor call's).
///
/// # Examples
/// ```
/// use std::ops::ControlFlow;
/// use std::time::Duration;
///
/// use ringwork::{DriverConfig, LoopingCall, Reactor, ReactorConfig, Repeat};
///
/// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
/// // Each tick 5 ms after the last one ran: no tick is ever skipped, so the third run is
/// // tick 2 however busy the machine is (`Repeat::every` would skip late ticks).
/// let heartbeat = LoopingCall::start(
///     &reactor.handle(),
///     Repeat::fixed_delay(Duration::from_millis(5)),
///     |reactor, tick| {
///         if tick.index == 2 {
///             reactor.stop(); // ends `run` below
///             return ControlFlow::Break(());
///         }
///         ControlFlow::Continue(())
///     },
/// );
/// reactor.run()?;
/// assert_eq!(heartbeat.ticks(), 3);
/// assert!(!heartbeat.is_running());
/// # Ok::<(), ringwork::EngineError>(())
/// ```
#[derive(Clone)]
#[must_use = "keep the LoopingCall to stop it (dropping it does not)"]
pub struct LoopingCall {
    inner: Rc<Inner>,
}

struct Inner {
    handle: LocalHandle,
    repeat: Repeat,
    /// `repeat`'s period, at least the wheel's tick.
    period: Duration,
    /// `None` while it runs (taken out, so it can stop its own loop) and once stopped.
    f: RefCell<Option<LoopFn>>,
    /// The next tick's wheel entry.
    call: Cell<Option<CallId>>,
    running: Cell<bool>,
    /// Functions run.
    ticks: Cell<u64>,
    /// Ticks skipped.
    missed: Cell<u64>,
}

impl LoopingCall {
    /// Starts running `f` on this core with `repeat`, the first tick one period from
    /// [`LocalHandle::now`].
    pub fn start(
        handle: &LocalHandle,
        repeat: Repeat,
        f: impl FnMut(&mut Reactor, &Tick) -> ControlFlow<()> + 'static,
    ) -> Self {
        Self::begin(handle, repeat, Box::new(f), false)
    }

    /// Starts running `f` with `repeat`, the first tick at once (in the next turn; Twisted's
    /// `start(interval, now=True)`).
    pub fn start_now(
        handle: &LocalHandle,
        repeat: Repeat,
        f: impl FnMut(&mut Reactor, &Tick) -> ControlFlow<()> + 'static,
    ) -> Self {
        Self::begin(handle, repeat, Box::new(f), true)
    }

    fn begin(handle: &LocalHandle, repeat: Repeat, f: LoopFn, now: bool) -> Self {
        let period = repeat.period(handle.local.timers.tick());
        let inner = Rc::new(Inner {
            handle: handle.clone(),
            repeat,
            period,
            f: RefCell::new(Some(f)),
            call: Cell::new(None),
            running: Cell::new(true),
            ticks: Cell::new(0),
            missed: Cell::new(0),
        });
        let start = handle.now();
        let first = if now { start } else { deadline(start, period) };
        arm(&inner, 0, first);
        Self { inner }
    }

    /// Stops the loop: no further tick runs and the function is dropped (at once, or when
    /// the tick running now returns). `false` if it was already stopped.
    pub fn stop(&self) -> bool {
        let inner = &self.inner;
        if !inner.running.replace(false) {
            return false;
        }
        if let Some(call) = inner.call.take() {
            inner.handle.cancel(call);
        }
        let f = inner.f.borrow_mut().take();
        drop(f);
        true
    }

    /// Whether the loop is running (not stopped).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// How many times the function ran.
    #[must_use]
    pub fn ticks(&self) -> u64 {
        self.inner.ticks.get()
    }

    /// How many ticks were skipped ([`MissedTicks::Skip`]).
    #[must_use]
    pub fn missed(&self) -> u64 {
        self.inner.missed.get()
    }

    /// When the next tick is due (`None` once stopped, or while a tick runs).
    #[must_use]
    pub fn next_tick(&self) -> Option<Instant> {
        let call = self.inner.call.get()?;
        self.inner.handle.deadline(call)
    }
}

impl fmt::Debug for LoopingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopingCall")
            .field("repeat", &self.inner.repeat)
            .field("running", &self.inner.running.get())
            .field("ticks", &self.inner.ticks.get())
            .field("missed", &self.inner.missed.get())
            .finish()
    }
}

/// Arms tick `index`, due at `at`.
fn arm(inner: &Rc<Inner>, index: u64, at: Instant) {
    let this = Rc::clone(inner);
    let call = inner
        .handle
        .call_at(at, move |reactor| fire(&this, reactor, index, at));
    inner.call.set(Some(call));
}

/// Runs tick `index` (due at `scheduled`) and arms the next one.
fn fire(inner: &Rc<Inner>, reactor: &mut Reactor, index: u64, scheduled: Instant) {
    inner.call.set(None);
    if !inner.running.get() {
        return;
    }
    let now = reactor.now();
    let (index, scheduled, missed) = match inner.repeat {
        Repeat::FixedRate {
            missed: MissedTicks::Skip,
            ..
        } => {
            let behind =
                now.saturating_duration_since(scheduled).as_nanos() / inner.period.as_nanos();
            let behind = u64::try_from(behind).unwrap_or(u64::MAX);
            (
                index.saturating_add(behind),
                advance(scheduled, inner.period, behind),
                behind,
            )
        }
        _ => (index, scheduled, 0),
    };
    let tick = Tick {
        index,
        scheduled,
        now,
        missed,
    };
    inner.ticks.set(inner.ticks.get() + 1);
    inner.missed.set(inner.missed.get() + missed);
    let Some(mut f) = inner.f.borrow_mut().take() else {
        return;
    };
    // A panic unwinds to the reactor's call boundary: `f` is dropped and the guard marks
    // the loop stopped.
    let guard = StopOnUnwind(inner);
    let flow = f(reactor, &tick);
    std::mem::forget(guard);
    if flow.is_break() || !inner.running.get() {
        inner.running.set(false);
        drop(f);
        return;
    }
    *inner.f.borrow_mut() = Some(f);
    let next = match inner.repeat {
        Repeat::FixedRate { .. } => advance(scheduled, inner.period, 1),
        // After the function returned: read the clock (once per tick, not per operation).
        Repeat::FixedDelay { .. } => deadline(inner.handle.clock_now(), inner.period),
    };
    arm(inner, index.saturating_add(1), next);
}

/// `from + period * times`, saturating far ahead.
fn advance(from: Instant, period: Duration, times: u64) -> Instant {
    let nanos = period.as_nanos().saturating_mul(u128::from(times));
    let offset = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
    deadline(from, offset)
}

/// Marks a loop stopped when its function unwinds.
struct StopOnUnwind<'a>(&'a Inner);

impl Drop for StopOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.running.set(false);
    }
}
