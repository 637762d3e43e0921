//! The one `io_uring_enter` of a turn: submit what is queued, wait for completions.
//!
//! Owns: the wait's arguments, including [`DriverConfig::batch_wait`](crate::DriverConfig::batch_wait)'s: when a turn would
//! sleep, it asks the kernel for `min_completions` completions with `min_wait_usec` =
//! `max_wait` (IORING_FEAT_MIN_TIMEOUT, 6.12): the kernel returns once that many are in,
//! or when `max_wait` has passed and at least one is, else at the first one after that, and
//! always at the caller's timeout.

#![allow(unsafe_code)] // io_uring_enter with an argument that points at our stack.

use std::io;
use std::time::Duration;

use io_uring::Parameters;
use io_uring::types::{SubmitArgs, Timespec};

use super::{ENTER_EXT_ARG, ENTER_GETEVENTS, Uring};
use crate::config::BatchWait;
use crate::table::Core;

/// With a minimum wait, a wait without a timeout would end (ETIME) at the minimum wait even
/// with no completion (the kernel treats "no timeout" as "the minimum wait is the timeout"):
/// such waits get this one instead, so an idle driver still sleeps.
const NO_TIMEOUT: Duration = Duration::from_secs(3600);

/// [`DriverConfig::batch_wait`](crate::DriverConfig::batch_wait) as the kernel takes it,
/// and whether it is engaged: only after a turn that delivered at least `engage_at`
/// completions (a quarter of the batch, at least 2). A lightly loaded driver, whose turns
/// carry one or two completions, then waits as without the setting: a batch wait that ends
/// at its minimum wait costs a timer expiry (a wake-up of its own, and in a VM an exit)
/// for every turn, more than it saves when there is nothing to gather.
#[derive(Clone, Copy, Debug)]
pub(super) struct BatchWaitArgs {
    min_completions: u32,
    min_wait_usec: u32,
    engage_at: usize,
    engaged: bool,
}

impl BatchWaitArgs {
    /// The arguments for `config`, `None` when it is off, a no-op, or the kernel lacks
    /// IORING_FEAT_MIN_TIMEOUT.
    pub(super) fn new(config: Option<BatchWait>, params: &Parameters) -> Option<Self> {
        let config = config?;
        // `DriverConfig::validate` bounds max_wait to BatchWait::MAX_WAIT (1 s): it fits.
        let min_wait_usec = u32::try_from(config.max_wait.as_micros()).unwrap_or(u32::MAX);
        (config.min_completions > 1 && min_wait_usec > 0 && params.is_feature_min_timeout())
            .then_some(Self {
                min_completions: config.min_completions,
                min_wait_usec,
                engage_at: (config.min_completions as usize / 4).max(2),
                engaged: false,
            })
    }
}

impl Uring {
    /// Submits what is queued and waits for `want` completions (or the timeout), in one
    /// `io_uring_enter`.
    pub(super) fn enter(
        &mut self,
        core: &mut Core,
        want: u32,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.enter_with(core, want, timeout, None)
    }

    /// [`Uring::enter`] for a turn: a wait for one completion becomes a batch wait when
    /// [`DriverConfig::batch_wait`](crate::DriverConfig::batch_wait) is on. A driver timer
    /// ([`Driver::timer`](crate::Driver::timer), an IORING_OP_TIMEOUT) still ends the wait
    /// when it fires: the kernel wakes a waiter at any timeout's completion, whatever the
    /// minimum (`io_should_wake`'s `cq_timeouts` check); a reactor's own timers bound
    /// `timeout` instead.
    pub(super) fn enter_turn(
        &mut self,
        core: &mut Core,
        want: u32,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let batch = self.batch_wait.filter(|b| want == 1 && b.engaged);
        self.enter_with(core, want, timeout, batch)
    }

    /// Engages or disengages the batch wait after a turn that delivered `delivered`
    /// completions.
    pub(super) fn note_turn(&mut self, delivered: usize) {
        if let Some(batch) = &mut self.batch_wait {
            batch.engaged = delivered >= batch.engage_at;
        }
    }

    fn enter_with(
        &mut self,
        core: &mut Core,
        want: u32,
        timeout: Option<Duration>,
        batch: Option<BatchWaitArgs>,
    ) -> io::Result<()> {
        let to_submit = self.ring.submission().len() as u32;
        // GETEVENTS always: with DEFER_TASKRUN, completion work runs only inside an enter
        // that asks for events, even when not waiting.
        let flags = ENTER_GETEVENTS;
        core.stats.enters += 1;
        let submitter = self.ring.submitter();
        let result = match (timeout, batch) {
            (timeout, Some(batch)) => {
                let timeout = timeout.unwrap_or(NO_TIMEOUT);
                // Never past the caller's timeout (the next timer): the kernel ends the wait
                // at the minimum wait when that is not shorter than the timeout.
                let until_timeout = u32::try_from(timeout.as_micros()).unwrap_or(u32::MAX);
                let ts = Timespec::from(timeout);
                let args = SubmitArgs::new()
                    .timespec(&ts)
                    .min_wait_usec(batch.min_wait_usec.min(until_timeout));
                // SAFETY: `args` and `ts` outlive the call; EXT_ARG tells the kernel that
                // the argument is an io_uring_getevents_arg (the type `SubmitArgs` wraps).
                unsafe {
                    submitter.enter(
                        to_submit,
                        batch.min_completions,
                        flags | ENTER_EXT_ARG,
                        Some(&args),
                    )
                }
            }
            (Some(timeout), None) if want > 0 => {
                let ts = Timespec::from(timeout);
                let args = SubmitArgs::new().timespec(&ts);
                // SAFETY: as above.
                unsafe { submitter.enter(to_submit, want, flags | ENTER_EXT_ARG, Some(&args)) }
            }
            // SAFETY: no argument is passed (null with size 0 is what the kernel expects).
            _ => unsafe { submitter.enter::<libc::sigset_t>(to_submit, want, flags, None) },
        };
        match result {
            Ok(_) => Ok(()),
            // ETIME: the wait timed out; EINTR: a signal; EBUSY/EAGAIN: the CQ is
            // overflowing and must be reaped before more can be submitted.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_op_settings_make_no_batch_wait() {
        let ring = io_uring::IoUring::new(8).expect("a ring");
        let params = ring.params();
        let wait = |min_completions, max_wait| {
            BatchWaitArgs::new(
                Some(BatchWait {
                    min_completions,
                    max_wait,
                }),
                params,
            )
        };
        assert!(BatchWaitArgs::new(None, params).is_none());
        assert!(wait(1, Duration::from_micros(100)).is_none());
        assert!(wait(16, Duration::ZERO).is_none());
        assert!(wait(16, Duration::from_nanos(999)).is_none());
        let on = wait(16, Duration::from_micros(100));
        assert_eq!(on.is_some(), params.is_feature_min_timeout());
        if let Some(on) = on {
            assert_eq!((on.min_completions, on.min_wait_usec), (16, 100));
            assert_eq!((on.engage_at, on.engaged), (4, false));
        }
        if let Some(small) = wait(2, Duration::from_micros(100)) {
            assert_eq!(small.engage_at, 2);
        }
    }
}
