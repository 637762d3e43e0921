//! Protocol timers: [`TimerId`]s that stay valid across repeats, scheduled on the core's
//! timer wheel.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::executor::Resolver;
use crate::protocol::ConnId;
use crate::timer::{TimerKey, TimerWheel};

/// A timer of one connection, from [`Context::call_later`](crate::Context::call_later) or
/// [`Context::call_every`](crate::Context::call_every). A repeating timer keeps its id.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct TimerId(u64);

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
        }
    }
}

/// The core's timers.
pub(crate) struct Timers {
    wheel: TimerWheel<Target>,
    /// Protocol timers by id (the wheel key changes when a repeating timer re-arms).
    keys: HashMap<TimerId, TimerKey>,
    next_id: u64,
}

impl Timers {
    pub(crate) fn new(now: Instant, tick: Duration) -> Self {
        Self {
            wheel: TimerWheel::new(now, tick),
            keys: HashMap::new(),
            next_id: 0,
        }
    }

    /// Arms a protocol timer.
    pub(crate) fn add(&mut self, conn: ConnId, at: Instant, every: Option<Duration>) -> TimerId {
        let id = TimerId(self.next_id);
        self.next_id += 1;
        let key = self.wheel.insert(at, Target::Conn { conn, id, every });
        self.keys.insert(id, key);
        id
    }

    /// Re-arms a repeating timer that just fired.
    pub(crate) fn rearm(&mut self, conn: ConnId, id: TimerId, at: Instant, every: Duration) {
        let key = self.wheel.insert(
            at,
            Target::Conn {
                conn,
                id,
                every: Some(every),
            },
        );
        self.keys.insert(id, key);
    }

    /// Arms a connect timeout.
    pub(crate) fn add_connect_timeout(&mut self, conn: ConnId, at: Instant) -> TimerKey {
        self.wheel.insert(at, Target::ConnectTimeout(conn))
    }

    /// Arms a TLS handshake timeout.
    pub(crate) fn add_handshake_timeout(&mut self, conn: ConnId, at: Instant) -> TimerKey {
        self.wheel.insert(at, Target::Handshake(conn))
    }

    /// Arms a write-stall check.
    pub(crate) fn add_write_stall(&mut self, conn: ConnId, at: Instant) -> TimerKey {
        self.wheel.insert(at, Target::WriteStall(conn))
    }

    /// Arms a sleep: `resolver` is resolved at `at`.
    pub(crate) fn add_sleep(&mut self, at: Instant, resolver: Resolver<()>) {
        self.wheel.insert(at, Target::Sleep(resolver));
    }

    /// Cancels a protocol timer; `false` if it already fired (one-shot) or was cancelled.
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        self.keys
            .remove(&id)
            .is_some_and(|key| self.wheel.cancel(key).is_some())
    }

    /// Cancels a wheel entry by key.
    pub(crate) fn cancel_key(&mut self, key: TimerKey) {
        self.wheel.cancel(key);
    }

    /// When the next timer may fire.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.wheel.next_deadline()
    }

    /// Takes the timers due at `now`, in deadline order.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<(TimerKey, Target)>) {
        self.wheel.expire(now, out);
        for (_, target) in out.iter() {
            if let Target::Conn { id, .. } = target {
                self.keys.remove(id);
            }
        }
    }
}
