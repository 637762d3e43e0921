//! The write-stall (send) timeout: a connection with bytes to send whose peer takes none
//! of them for its timeout is aborted with [`LostReason::WriteStalled`].
//!
//! Owns: the per-connection stall clock ([`Conn::progress_at`], [`Conn::stall_timer`]),
//! arming it, and what its timer does when it fires.
//! Contract:
//! - "Pending" means bytes not yet taken by the kernel: the write buffer, bytes queued in
//!   the driver, or bytes a splice into the connection holds in its pipe.
//! - "Progress" is the driver taking bytes ([`State::sent`], one store of the per-turn
//!   clock) or a splice moving bytes into the connection ([`crate::splice::spliced`]).
//! - No timer-wheel operation per write: one timer is armed when the connection starts
//!   having unsent bytes (at the end-of-turn flush), and when it fires it checks whether
//!   progress was made since and re-arms for the time left; with nothing pending it stays
//!   disarmed until the next write (a connection that drains is never cancelled early).
//! - The clock starts when a connection goes from nothing pending to something pending, so
//!   a peer that was idle (nothing to send) is given the whole timeout for new bytes.
//!   Outbound connections start counting once connected (the connect timeout covers the
//!   connect).
//! - A splice destination is watched for the splice's life (its pipe can fill without
//!   the engine writing anything): its timer re-arms every timeout while nothing is
//!   pending, and a stall is counted from the last progress.
//!
//! Does not: bound how long a whole transfer takes (a slow reader that keeps taking bytes
//! is never cut), or time reads (protocols own their idle and read timeouts).
//!
//! [`Conn::progress_at`]: crate::state::Conn::progress_at
//! [`Conn::stall_timer`]: crate::state::Conn::stall_timer

use std::time::{Duration, Instant};

use crate::io::Io;
use crate::protocol::{ConnId, LostReason};
use crate::state::{Conn, Phase, State};
use crate::timers::{Timers, deadline};

/// A zero timeout means none.
pub(crate) fn normalize(timeout: Option<Duration>) -> Option<Duration> {
    timeout.filter(|d| !d.is_zero())
}

/// A connection's write-stall timeout in 8 bytes (an `Option<Duration>` takes 16 in every
/// connection's slot, issue 16): nanoseconds, 0 for none (a zero timeout means none),
/// saturating at about 584 years.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub(crate) struct Timeout(u64);

impl Timeout {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        Self(normalize(timeout).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }

    /// The timeout, `None` for none.
    pub(crate) fn get(self) -> Option<Duration> {
        (self.0 != 0).then(|| Duration::from_nanos(self.0))
    }
}

/// A time of a core's clock in 8 bytes: nanoseconds since the core's
/// [`State::epoch`] (an `Instant` takes 16 in every connection's slot, issue 16: memory per
/// idle connection). Saturates at about 584 years; never before the epoch (the clock is
/// monotonic).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub(crate) struct Moment(u64);

impl Moment {
    /// `at` as a moment of the clock that started at `epoch`.
    pub(crate) fn of(epoch: Instant, at: Instant) -> Self {
        Self(u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX))
    }

    /// The instant of this moment of the clock that started at `epoch`.
    pub(crate) fn instant(self, epoch: Instant) -> Instant {
        epoch
            .checked_add(Duration::from_nanos(self.0))
            .unwrap_or(epoch)
    }
}

/// The connection now has unsent bytes after having none: its stall clock starts, and its
/// timer is armed unless it already is.
pub(crate) fn start(conn: &mut Conn, timers: &mut Timers, now: Instant, moment: Moment) {
    conn.progress_at = moment;
    arm(conn, timers, now);
}

/// Arms the connection's stall timer one timeout after `from`, unless it is armed or the
/// connection has no timeout.
fn arm(conn: &mut Conn, timers: &mut Timers, from: Instant) {
    if let Some(after) = conn.write_timeout.get()
        && conn.stall_timer.is_none()
    {
        conn.stall_timer = Some(timers.add_write_stall(conn.id, deadline(from, after)));
    }
}

/// Sets (or, with `None` or zero, removes) connection `id`'s write-stall timeout; a
/// connection with bytes pending starts counting now.
pub(crate) fn set(state: &mut State, io: &dyn Io, id: ConnId, timeout: Option<Duration>) {
    let (now, moment) = (state.now, state.moment);
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    conn.write_timeout = Timeout::new(timeout);
    if let Some(key) = conn.stall_timer.take() {
        state.timers.cancel_key(key);
    }
    if conn.buffered() > 0
        || conn.file_queued > 0
        || conn.spliced_from().is_some()
        || io.splice_backlog(id.0)
    {
        start(conn, &mut state.timers, now, moment);
    }
}

/// Connection `id`'s stall timer fired: abort it if it has bytes pending and made no
/// progress for its timeout; otherwise re-arm for the time left (or stay disarmed).
pub(crate) fn fired(state: &mut State, io: &mut dyn Io, id: ConnId) {
    let (now, moment, epoch) = (state.now, state.moment, state.epoch);
    let Some(conn) = state.conns.active_mut(id) else {
        return;
    };
    conn.stall_timer = None;
    let Some(after) = conn.write_timeout.get() else {
        return;
    };
    if matches!(conn.phase, Phase::Connecting { .. }) {
        // Counted from the connect on.
        start(conn, &mut state.timers, now, moment);
        return;
    }
    let pending = conn.buffered() > 0 || conn.file_queued > 0 || io.splice_backlog(id.0);
    if !pending {
        if conn.spliced_from().is_some() {
            arm(conn, &mut state.timers, now);
        }
        return;
    }
    let stalled_at = deadline(conn.progress_at.instant(epoch), after);
    if now >= stalled_at {
        tracing::debug!(conn = %id, ?after, buffered = conn.buffered(), "write stalled; aborting");
        state.stats.write_stalls += 1;
        state.lose(io, id, LostReason::WriteStalled { after }, true);
    } else {
        arm(conn, &mut state.timers, stalled_at - after);
    }
}
