//! Engine settings with safe defaults.

use std::time::Duration;

use crate::clock::Clock;
use crate::io::DEFAULT_CONNECT_TIMEOUT;
use crate::logging::DEFAULT_WARNING_INTERVAL;

/// Per-connection and per-core limits of a reactor.
#[derive(Clone, Debug)]
pub struct ReactorConfig {
    /// Above this many buffered outgoing bytes a connection is not writable and its protocol
    /// gets `pause_writing`.
    pub write_high_watermark: usize,
    /// After a pause, `write_drained` fires once buffered bytes fall to this many or fewer.
    pub write_low_watermark: usize,
    /// Hard limit on buffered outgoing bytes per connection: past it the connection is
    /// aborted with `LostReason::WriteBufferFull`, so a peer that never reads cannot make the
    /// process grow without bound.
    pub write_buffer_limit: usize,
    /// Most connections open on one core (accepted and outbound). At the limit the core stops
    /// accepting (connections wait in the kernel's backlog) and resumes below it.
    pub max_connections: usize,
    /// Timeout of outbound connects unless one is given per connect.
    pub connect_timeout: Duration,
    /// Timer resolution.
    pub timer_tick: Duration,
    /// Write-stall (send) timeout of every connection unless set per connection
    /// ([`Context::set_write_timeout`](crate::Context::set_write_timeout)): a connection
    /// with bytes to send whose peer takes none of them for this long is aborted with
    /// [`LostReason::WriteStalled`](crate::LostReason::WriteStalled), so a peer that never
    /// reads cannot hold a connection (and its descriptor) forever. `None` (the default)
    /// or zero: no timeout. The servers of `ringwork-protocols` set their own (60 s).
    pub write_timeout: Option<Duration>,
    /// Repeated warnings of one kind on a core (accept failures at the descriptor limit,
    /// invalid preambles, panicking protocols) are logged the first time, then at most once
    /// per this interval with a `suppressed` count of those not logged (see
    /// [`RateLimit`](crate::logging::RateLimit)). Zero logs every one.
    pub warning_interval: Duration,
    /// Where the reactor's time comes from: the system clock (the default), or a
    /// [`ManualClock`](crate::ManualClock) a test moves, so timeouts fire without waiting.
    pub clock: Clock,
    /// Spin instead of sleeping when the next timer falls due within this: the reactor then
    /// polls its driver without waiting (one non-blocking `io_uring_enter` or `epoll_wait`
    /// per turn) until the timer is due, so the timer fires within a turn of its deadline
    /// instead of after the wake-up of a sleeping thread (tens of µs in a VM, more when the
    /// CPU had halted). Zero (the default): always sleep. For a load generator on a CPU of
    /// its own (`ringwork-load --busy-poll`): it costs the whole CPU while timers are that
    /// close together.
    pub busy_poll: Duration,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        Self {
            write_high_watermark: 256 * 1024,
            write_low_watermark: 64 * 1024,
            write_buffer_limit: 16 * 1024 * 1024,
            max_connections: 100_000,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timer_tick: Duration::from_millis(1),
            write_timeout: None,
            warning_interval: DEFAULT_WARNING_INTERVAL,
            clock: Clock::System,
            busy_poll: Duration::ZERO,
        }
    }
}

impl ReactorConfig {
    /// Checks the watermarks are ordered (`low <= high <= limit`).
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.write_low_watermark > self.write_high_watermark {
            return Err("write_low_watermark must not exceed write_high_watermark".into());
        }
        if self.write_high_watermark > self.write_buffer_limit {
            return Err("write_high_watermark must not exceed write_buffer_limit".into());
        }
        if self.timer_tick.is_zero() {
            return Err("timer_tick must be positive".into());
        }
        Ok(())
    }
}
