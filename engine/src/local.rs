//! [`LocalHandle`]: how futures (and callbacks) on a core reach its reactor and its clock.
//!
//! Owns: what a core shares with its handles ([`Local`]): a same-thread queue of closures to
//! run on the reactor and futures to spawn on its executor, the core's timer wheel, its
//! clock and the time of the current turn. The reactor drains the queue after callbacks
//! and task polls, within the same turn, and never blocks while it holds work.
//! Contract: time-based calls arm the wheel at once (so a call can be cancelled or moved
//! before the reactor runs again) and count from [`LocalHandle::now`]: the turn's time
//! inside a turn (read once per turn, no clock read per call), a fresh read outside one.
//! Tests: `engine/tests/calls.rs` (on both backends, with a manual clock).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::executor::{Canceled, Deferred, JoinHandle, TimedOut};
use crate::names::{NameResolver, SystemResolver};
use crate::protocol::ConnId;
use crate::reactor::Reactor;
use crate::threads::ThreadPool;
use crate::timer::TimerKey;
use crate::timers::{CallId, Timers, deadline};

type Job = Box<dyn FnOnce(&mut Reactor)>;
type Task = Pin<Box<dyn Future<Output = ()>>>;

#[derive(Default)]
pub(crate) struct LocalQueue {
    pub(crate) jobs: Vec<Job>,
    pub(crate) spawns: Vec<Task>,
    /// Connections whose protocol gets [`Protocol::woken`](crate::Protocol::woken).
    pub(crate) wakes: Vec<ConnId>,
}

/// What a core shares with its [`LocalHandle`]s.
pub(crate) struct Local {
    pub(crate) queue: RefCell<LocalQueue>,
    /// The core's timer wheel (the state holds a clone).
    pub(crate) timers: Timers,
    clock: Clock,
    /// The turn's time (kept equal to the state's `now` by `State::set_now`).
    now: Cell<Instant>,
    /// Whether the reactor is in a turn: `now` is then the time to count from.
    in_turn: Cell<bool>,
    /// The core's name resolver (see [`NameResolver`]).
    resolver: RefCell<Rc<dyn NameResolver>>,
    /// Whether `resolver` was installed by the user (else it is the default, rebuilt when
    /// the core gets its runtime's thread pool).
    resolver_installed: Cell<bool>,
    /// The core's pool for blocking work (the file API runs there, see [`crate::fs`]).
    pool: RefCell<ThreadPool>,
    /// The core's driver runs file operations in its ring (see [`crate::fs`]).
    file_ring: Cell<bool>,
}

/// A cheap, cloneable handle to this core's reactor for code that cannot borrow it: futures
/// spawned with [`LocalHandle::spawn_local`] and values kept by protocols. `!Send`: it works
/// on its core's thread only (use [`Cores`](crate::Cores) to reach other cores).
///
/// Besides queueing work for the reactor, it reaches the core's clock and timer wheel:
/// [`LocalHandle::call_later`] (Twisted's `reactor.callLater`), [`LocalHandle::sleep`],
/// [`LocalHandle::with_timeout`], [`LoopingCall`](crate::LoopingCall).
#[derive(Clone)]
pub struct LocalHandle {
    pub(crate) local: Rc<Local>,
}

impl LocalHandle {
    /// A handle for a new core: its wheel starts at the clock's time; names are resolved
    /// by the system resolver on `pool`.
    pub(crate) fn new(clock: Clock, tick: Duration, pool: ThreadPool) -> Self {
        let now = clock.now();
        Self {
            local: Rc::new(Local {
                queue: RefCell::default(),
                timers: Timers::new(now, tick),
                clock,
                now: Cell::new(now),
                in_turn: Cell::new(false),
                resolver: RefCell::new(Rc::new(SystemResolver::new(pool.clone()))),
                resolver_installed: Cell::new(false),
                pool: RefCell::new(pool),
                file_ring: Cell::new(false),
            }),
        }
    }

    /// This core's name resolver: the one installed with
    /// [`Reactor::set_name_resolver`] (or built by
    /// [`RuntimeBuilder::name_resolver`](crate::RuntimeBuilder::name_resolver)), else a
    /// [`SystemResolver`] on the core's thread pool.
    #[must_use]
    pub fn name_resolver(&self) -> Rc<dyn NameResolver> {
        Rc::clone(&self.local.resolver.borrow())
    }

    /// Installs `resolver` for every later lookup of this core (see
    /// [`Reactor::set_name_resolver`]).
    pub(crate) fn set_name_resolver(&self, resolver: Rc<dyn NameResolver>) {
        *self.local.resolver.borrow_mut() = resolver;
        self.local.resolver_installed.set(true);
    }

    /// The core now uses `pool` for blocking work: so does the default resolver.
    pub(crate) fn set_thread_pool(&self, pool: ThreadPool) {
        if !self.local.resolver_installed.get() {
            *self.local.resolver.borrow_mut() = Rc::new(SystemResolver::new(pool.clone()));
        }
        *self.local.pool.borrow_mut() = pool;
    }

    /// This core's pool for blocking work (the runtime's, shared by every core; see
    /// [`Reactor::defer_to_thread`]).
    #[must_use]
    pub fn thread_pool(&self) -> ThreadPool {
        self.local.pool.borrow().clone()
    }

    /// This core's file API: open, stat, read and close without blocking the core (see
    /// [`crate::fs`]): in the driver's io_uring ring when it has file operations, else on
    /// the core's thread pool.
    #[must_use]
    pub fn files(&self) -> crate::fs::Files {
        let files = crate::fs::Files::new(self.thread_pool());
        if self.local.file_ring.get() {
            files.with_ring(self.clone())
        } else {
            files
        }
    }

    /// Whether the core's driver runs file operations in its ring.
    pub(crate) fn set_file_ring(&self, ring: bool) {
        self.local.file_ring.set(ring);
    }

    /// Runs `f` on the reactor after the current callback or task poll, in the same turn.
    pub fn run(&self, f: impl FnOnce(&mut Reactor) + 'static) {
        self.local.queue.borrow_mut().jobs.push(Box::new(f));
    }

    /// Calls [`Protocol::woken`](crate::Protocol::woken) on connection `conn`'s protocol after
    /// the current callback or task poll, in the same turn: how code that holds no borrow of
    /// a protocol (a future, a value handed to a handler, another connection's callback) asks
    /// it to look at work queued for it. Each call is one `woken` callback (coalesce on your
    /// side when that matters); a connection that is gone, or is lost by then, gets none.
    pub fn wake(&self, conn: ConnId) {
        self.local.queue.borrow_mut().wakes.push(conn);
    }

    /// Spawns a future on this core's executor. It is first polled in this turn, after the
    /// current callback or task poll.
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let (deferred, resolver) = Deferred::new();
        self.local
            .queue
            .borrow_mut()
            .spawns
            .push(Box::pin(async move { resolver.resolve(future.await) }));
        JoinHandle::from_deferred(deferred)
    }

    /// The core's time: inside a turn, the turn's time (the clock is read once per turn, and
    /// this is what [`Context::now`](crate::Context::now) and [`Reactor::now`] answer);
    /// outside one (code that runs between [`Reactor::run_until`] calls), the clock read
    /// now. With a [`ManualClock`](crate::ManualClock), the manual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        let local = &self.local;
        if local.in_turn.get() {
            return local.now.get();
        }
        let now = local.now.get().max(local.clock.now());
        local.now.set(now);
        now
    }

    /// Runs `f` with the reactor once `delay` has passed (counted from [`LocalHandle::now`]):
    /// Twisted's `reactor.callLater`. No connection is needed; `f` reaches connections with
    /// [`Reactor::with_conn`]. The returned id cancels ([`LocalHandle::cancel`]) or moves
    /// ([`LocalHandle::reset`]) the call until it runs. A call that panics is logged and
    /// counted ([`CoreStats::panics`](crate::CoreStats::panics)); the core goes on.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// use ringwork::{DriverConfig, Reactor, ReactorConfig};
    ///
    /// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
    /// let handle = reactor.handle();
    /// let call = handle.call_later(Duration::from_millis(10), |reactor| reactor.stop());
    /// assert!(handle.is_pending(call));
    /// reactor.run()?; // returns once the call stopped it
    /// assert!(!handle.is_pending(call));
    /// # Ok::<(), ringwork::EngineError>(())
    /// ```
    pub fn call_later(&self, delay: Duration, f: impl FnOnce(&mut Reactor) + 'static) -> CallId {
        self.call_at(deadline(self.now(), delay), f)
    }

    /// Runs `f` with the reactor at `at` (at once, in the next turn, if `at` has passed). See
    /// [`LocalHandle::call_later`].
    pub fn call_at(&self, at: Instant, f: impl FnOnce(&mut Reactor) + 'static) -> CallId {
        self.local.timers.add_call(at, Box::new(f))
    }

    /// Cancels a call: it will not run. `false` if it already ran or was cancelled (its
    /// closure is dropped here when it was pending).
    pub fn cancel(&self, call: CallId) -> bool {
        let removed = self.local.timers.cancel_call(call);
        let pending = removed.is_some();
        drop(removed);
        pending
    }

    /// Moves a pending call to `delay` from [`LocalHandle::now`] (Twisted's
    /// `DelayedCall.reset`); `false` if it already ran or was cancelled.
    pub fn reset(&self, call: CallId, delay: Duration) -> bool {
        self.reset_at(call, deadline(self.now(), delay))
    }

    /// Moves a pending call to `at`; `false` if it already ran or was cancelled.
    pub fn reset_at(&self, call: CallId, at: Instant) -> bool {
        self.local.timers.reset_call(call, at)
    }

    /// Whether a call is still to run (Twisted's `DelayedCall.active`).
    #[must_use]
    pub fn is_pending(&self, call: CallId) -> bool {
        self.local.timers.call_deadline(call).is_some()
    }

    /// When a pending call is due (Twisted's `DelayedCall.getTime`); `None` if it already
    /// ran or was cancelled.
    #[must_use]
    pub fn deadline(&self, call: CallId) -> Option<Instant> {
        self.local.timers.call_deadline(call)
    }

    /// A future that completes once `delay` has passed (counted from
    /// [`LocalHandle::now`]), on this core's timer wheel: how a future waits
    /// (`handle.sleep(d).await`). Dropping it before then removes its wheel entry. It yields
    /// `Err(Canceled)` only if the reactor is dropped first.
    pub fn sleep(&self, delay: Duration) -> Sleep {
        self.sleep_until(deadline(self.now(), delay))
    }

    /// A future that completes at `at` (see [`LocalHandle::sleep`]).
    pub fn sleep_until(&self, at: Instant) -> Sleep {
        let (deferred, resolver) = Deferred::new();
        let key = self.local.timers.add_sleep(at, resolver);
        Sleep {
            deferred,
            key: Some(key),
            timers: self.local.timers.clone(),
        }
    }

    /// Runs `future` for at most `after` (on this core's timer wheel): its output, or
    /// [`TimedOut`] — then `future` is dropped, which cancels what it was doing (a
    /// [`Connecting`](crate::Connecting) aborts its connection, a [`Sleep`] leaves the
    /// wheel). Twisted's `Deferred.addTimeout`. The time counts from this call.
    ///
    /// # Examples
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    ///
    /// use ringwork::{Clock, Deferred, DriverConfig, ManualClock, Reactor, ReactorConfig, TimedOut};
    ///
    /// let clock = ManualClock::new();
    /// let config = ReactorConfig { clock: Clock::Manual(clock.clone()), ..Default::default() };
    /// let mut reactor = Reactor::new(config, DriverConfig::default())?;
    /// let handle = reactor.handle();
    /// // A reply that never comes (nobody resolves it), bounded by 5 s.
    /// let (reply, _resolver) = Deferred::<u32>::new();
    /// let bounded = handle.with_timeout(Duration::from_secs(5), reply); // counts from now
    /// let outcome = Rc::new(Cell::new(None));
    /// let seen = Rc::clone(&outcome);
    /// reactor.spawn_local(async move { seen.set(Some(bounded.await)) });
    /// clock.advance(Duration::from_secs(5)); // no waiting: the clock is manual
    /// reactor.run_until(Duration::from_secs(10), |_| outcome.get().is_some())?;
    /// assert_eq!(outcome.get(), Some(Err(TimedOut { after: Duration::from_secs(5) })));
    /// # Ok::<(), ringwork::EngineError>(())
    /// ```
    pub fn with_timeout<F: Future>(
        &self,
        after: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, TimedOut>> + use<F> {
        let sleep = self.sleep(after);
        async move {
            let future = std::pin::pin!(future);
            match futures_util::future::select(future, sleep).await {
                futures_util::future::Either::Left((output, _sleep)) => Ok(output),
                futures_util::future::Either::Right(_) => Err(TimedOut { after }),
            }
        }
    }

    /// The clock read now (never before the turn's time), without changing the turn's time.
    pub(crate) fn clock_now(&self) -> Instant {
        self.local.now.get().max(self.local.clock.now())
    }

    /// Opens an outbound connection to `addr` run by `protocol`, as a future (the async
    /// form of [`Reactor::connect`]): it yields the connection's id once `protocol` got
    /// `connection_made`, or a [`ConnectError`](crate::ConnectError) saying why it never
    /// will (then `protocol` got `connection_lost` only, or nothing if the connect could not
    /// start). The connect starts in this turn, whether or not the future is polled.
    ///
    /// Dropping the future before it yields cancels the connect: one not started yet never
    /// starts, one in progress is aborted (its socket closed; `protocol` gets
    /// `connection_lost(Aborted)`, never `connection_made`). So
    /// `handle.with_timeout(d, handle.connect(..))` bounds a connect and cleans up after it.
    pub fn connect(
        &self,
        addr: impl Into<ringwork_platform::SockAddr>,
        protocol: impl crate::Protocol,
        options: crate::ConnectOptions,
    ) -> crate::Connecting {
        crate::connecting::start(self, addr.into(), protocol, options)
    }

    /// Marks the start of a turn at `now` (the reactor, after reading its clock).
    pub(crate) fn begin_turn(&self, now: Instant) {
        self.local.now.set(now);
        self.local.in_turn.set(true);
    }

    /// Marks the end of a turn.
    pub(crate) fn end_turn(&self) {
        self.local.in_turn.set(false);
    }

    /// Keeps the handles' time equal to the state's.
    pub(crate) fn set_now(&self, now: Instant) {
        self.local.now.set(now);
    }

    /// The core's clock.
    pub(crate) fn clock(&self) -> &Clock {
        &self.local.clock
    }

    pub(crate) fn is_idle(&self) -> bool {
        let queue = self.local.queue.borrow();
        queue.jobs.is_empty() && queue.spawns.is_empty() && queue.wakes.is_empty()
    }

    /// Drops every pending timer and queued job (a reactor being dropped): closures that
    /// hold a handle would otherwise keep the core's shared state alive in a cycle.
    pub(crate) fn clear(&self) {
        let timers = self.local.timers.drain();
        let queue = std::mem::take(&mut *self.local.queue.borrow_mut());
        drop(timers);
        drop(queue);
    }
}

impl fmt::Debug for LocalHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalHandle")
            .field("now", &self.local.now.get())
            .field("clock", &self.local.clock)
            .finish_non_exhaustive()
    }
}

/// A future that completes at a deadline on its core's timer wheel, from
/// [`LocalHandle::sleep`]. Dropping it before then removes its wheel entry.
///
/// Yields `Err(Canceled)` only if the reactor was dropped first.
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep {
    deferred: Deferred<()>,
    /// The wheel entry, until it fired.
    key: Option<TimerKey>,
    timers: Timers,
}

impl Future for Sleep {
    type Output = Result<(), Canceled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = Pin::new(&mut self.deferred).poll(cx);
        if result.is_ready() {
            self.key = None;
        }
        result
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let resolver = self.timers.cancel_sleep(key);
            drop(resolver);
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("pending", &self.key.is_some())
            .finish()
    }
}
