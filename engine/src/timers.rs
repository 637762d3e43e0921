//! The core's timers: one timer wheel shared by the reactor's state and every
//! [`LocalHandle`](crate::LocalHandle) of the core, holding protocol timers ([`TimerId`]s
//! that stay valid across repeats), reactor calls ([`CallId`]), sleeps and the engine's own
//! timeouts.
//!
//! Owns: [`Timers`] (the wheel behind an `Rc<RefCell<_>>`, so a handle arms and cancels a
//! call at once, from a future or a value that holds no borrow of the reactor) and what
//! each wheel entry does when it fires ([`Target`]).
//! Contract: no method runs foreign code while the wheel is borrowed: values leaving the
//! wheel (a cancelled call's closure, a sleep's resolver) are returned and dropped by the
//! caller after the borrow ends, so a destructor may use the timers again.
//! Does not: fire anything itself (the reactor and `testing` take due entries with
//! [`Timers::expire`] and run them).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::executor::Resolver;
use crate::protocol::ConnId;
use crate::reactor::Reactor;
use crate::timer::{TimerKey, TimerWheel};

/// A timer of one connection, from [`Context::call_later`](crate::Context::call_later) or
/// [`Context::call_every`](crate::Context::call_every). A repeating timer keeps its id.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct TimerId(std::num::NonZeroU64);

/// A reactor call armed with [`LocalHandle::call_later`](crate::LocalHandle::call_later),
/// [`LocalHandle::call_at`](crate::LocalHandle::call_at) or
/// [`Reactor::call_later`](crate::Reactor::call_later): Twisted's `IDelayedCall`. Cancel it
/// or move it with the handle or the reactor; an id whose call fired or was cancelled is
/// stale and ignored.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct CallId(TimerKey);

/// What a reactor call runs.
pub(crate) type CallFn = Box<dyn FnOnce(&mut Reactor)>;

/// `now + delay`, saturating at about a century from `now` (an `Instant` cannot hold
/// `Duration::MAX`; such a timer simply never fires in practice).
pub(crate) fn deadline(now: Instant, delay: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(delay.min(FAR)).unwrap_or(now)
}

/// What a wheel entry does when it fires.
pub(crate) enum Target {
    /// A protocol timer.
    Conn {
        conn: ConnId,
        id: TimerId,
        every: Option<Duration>,
    },
    /// An outbound connect that has not completed.
    ConnectTimeout(ConnId),
    /// A TLS handshake or a listener preamble that has not completed.
    Handshake(ConnId),
    /// A connection's write-stall check (see `stall.rs`).
    WriteStall(ConnId),
    /// A [`LocalHandle::sleep`](crate::LocalHandle::sleep): resolves its `Deferred`.
    Sleep(Resolver<()>),
    /// A reactor call: runs with the reactor (see [`CallId`]).
    Call(CallFn),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conn { conn, id, every } => f
                .debug_struct("Conn")
                .field("conn", conn)
                .field("id", id)
                .field("every", every)
                .finish(),
            Self::ConnectTimeout(conn) => f.debug_tuple("ConnectTimeout").field(conn).finish(),
            Self::Handshake(conn) => f.debug_tuple("Handshake").field(conn).finish(),
            Self::WriteStall(conn) => f.debug_tuple("WriteStall").field(conn).finish(),
            Self::Sleep(_) => f.write_str("Sleep"),
            Self::Call(_) => f.write_str("Call"),
        }
    }
}

/// The core's timers: cheap to clone, every clone is the same wheel (the reactor's state
/// and each [`LocalHandle`](crate::LocalHandle) hold one).
#[derive(Clone)]
pub(crate) struct Timers {
    table: Rc<RefCell<Table>>,
}

/// The wheel and the next protocol timer id. A protocol timer's wheel key (which changes when
/// a repeating timer re-arms) is kept with its id in its connection's list
/// (`Conn::timers`), not in a map here: no table entry and no hash per timer.
struct Table {
    wheel: TimerWheel<Target>,
    /// Counts from 1: ids are never zero, so an `Option<TimerId>` is 8 bytes (a protocol
    /// keeps one per idle connection, issue 16).
    next_id: std::num::NonZeroU64,
    /// The wheel's tick: the shortest interval of a repeating call.
    tick: Duration,
    /// Bumped by every insert and reset (never by a cancel): see [`Timers::arms`].
    arms: u64,
}

impl Timers {
    pub(crate) fn new(now: Instant, tick: Duration) -> Self {
        Self {
            table: Rc::new(RefCell::new(Table {
                wheel: TimerWheel::new(now, tick),
                next_id: std::num::NonZeroU64::MIN,
                tick,
                arms: 0,
            })),
        }
    }

    /// The wheel's tick (its resolution; timers still fire at their exact deadline).
    pub(crate) fn tick(&self) -> Duration {
        self.table.borrow().tick
    }

    /// Arms a protocol timer; the caller keeps the key with the id on the connection.
    pub(crate) fn add(
        &mut self,
        conn: ConnId,
        at: Instant,
        every: Option<Duration>,
    ) -> (TimerId, TimerKey) {
        let mut t = self.table.borrow_mut();
        let id = TimerId(t.next_id);
        // 2^64 timers would take centuries to arm; saturating keeps ids non-zero regardless.
        t.next_id = t.next_id.saturating_add(1);
        t.arms = t.arms.wrapping_add(1);
        let key = t.wheel.insert(at, Target::Conn { conn, id, every });
        (id, key)
    }

    /// Re-arms a repeating timer that just fired; returns its new wheel key.
    pub(crate) fn rearm(
        &mut self,
        conn: ConnId,
        id: TimerId,
        at: Instant,
        every: Duration,
    ) -> TimerKey {
        self.insert(
            at,
            Target::Conn {
                conn,
                id,
                every: Some(every),
            },
        )
    }

    /// Arms a connect timeout.
    pub(crate) fn add_connect_timeout(&mut self, conn: ConnId, at: Instant) -> TimerKey {
        self.insert(at, Target::ConnectTimeout(conn))
    }

    /// Arms a TLS handshake timeout.
    pub(crate) fn add_handshake_timeout(&mut self, conn: ConnId, at: Instant) -> TimerKey {
        self.insert(at, Target::Handshake(conn))
    }

    /// Arms a write-stall check.
    pub(crate) fn add_write_stall(&mut self, conn: ConnId, at: Instant) -> TimerKey {
        self.insert(at, Target::WriteStall(conn))
    }

    /// Arms a sleep: `resolver` is resolved at `at` unless [`Timers::cancel_sleep`] comes
    /// first.
    pub(crate) fn add_sleep(&self, at: Instant, resolver: Resolver<()>) -> TimerKey {
        self.insert(at, Target::Sleep(resolver))
    }

    /// Cancels a pending sleep; returns its resolver (drop it after this returns).
    #[must_use]
    pub(crate) fn cancel_sleep(&self, key: TimerKey) -> Option<Resolver<()>> {
        let mut t = self.table.borrow_mut();
        if !matches!(t.wheel.get(key), Some((Target::Sleep(_), _))) {
            return None;
        }
        match t.wheel.cancel(key) {
            Some(Target::Sleep(resolver)) => Some(resolver),
            _ => None,
        }
    }

    /// Arms a reactor call at `at`.
    pub(crate) fn add_call(&self, at: Instant, call: CallFn) -> CallId {
        CallId(self.insert(at, Target::Call(call)))
    }

    /// Cancels a pending call; returns its closure (drop it after this returns).
    #[must_use]
    pub(crate) fn cancel_call(&self, id: CallId) -> Option<CallFn> {
        let mut t = self.table.borrow_mut();
        if !matches!(t.wheel.get(id.0), Some((Target::Call(_), _))) {
            return None;
        }
        match t.wheel.cancel(id.0) {
            Some(Target::Call(call)) => Some(call),
            _ => None,
        }
    }

    /// Moves a pending call to `at`; `false` if it fired or was cancelled.
    pub(crate) fn reset_call(&self, id: CallId, at: Instant) -> bool {
        let mut t = self.table.borrow_mut();
        t.arms = t.arms.wrapping_add(1);
        matches!(t.wheel.get(id.0), Some((Target::Call(_), _))) && t.wheel.reset(id.0, at)
    }

    /// When a pending call is due; `None` if it fired or was cancelled.
    pub(crate) fn call_deadline(&self, id: CallId) -> Option<Instant> {
        match self.table.borrow().wheel.get(id.0) {
            Some((Target::Call(_), at)) => Some(at),
            _ => None,
        }
    }

    /// Cancels a protocol timer by its wheel key; `false` if it already fired (one-shot) or
    /// was cancelled.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> bool {
        self.table.borrow_mut().wheel.cancel(key).is_some()
    }

    /// Cancels a wheel entry by key (an engine timeout: no foreign value to drop).
    pub(crate) fn cancel_key(&mut self, key: TimerKey) {
        let removed = self.table.borrow_mut().wheel.cancel(key);
        drop(removed);
    }

    /// When the next timer may fire.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.table.borrow().wheel.next_deadline()
    }

    /// A count of the timers armed (inserted or moved) so far: while it stays the same, no
    /// timer can fall due before a [`Timers::next_deadline`] read meanwhile (cancelling
    /// one only makes the next deadline later).
    pub(crate) fn arms(&self) -> u64 {
        self.table.borrow().arms
    }

    /// Takes the timers due at `now`, in deadline order.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<(TimerKey, Target)>) {
        self.table.borrow_mut().wheel.expire(now, out);
    }

    /// Removes every pending timer and returns what they hold (drop it after this returns):
    /// a reactor being dropped breaks the cycles of calls whose closures hold a handle.
    pub(crate) fn drain(&self) -> Vec<Target> {
        self.table.borrow_mut().wheel.drain()
    }

    fn insert(&self, at: Instant, target: Target) -> TimerKey {
        let mut t = self.table.borrow_mut();
        t.arms = t.arms.wrapping_add(1);
        t.wheel.insert(at, target)
    }
}
