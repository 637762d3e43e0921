//! Deferred-style composition of futures: Twisted's `DeferredList`, `gatherResults` and
//! `addTimeout`, as futures.
//!
//! Owns: [`gather`] (all outputs), [`try_gather`] (all values, or the first error at once),
//! [`first_of`] (the first output; the rest are dropped) and the [`TimedOut`] error of
//! [`LocalHandle::with_timeout`](crate::LocalHandle::with_timeout).
//! Contract: a future that loses (a `first_of` that another won, the rest of a
//! `try_gather` after an error, a timed-out one) is dropped at once, and dropping is how an
//! operation is cancelled here: a [`Sleep`](crate::Sleep) leaves the timer wheel, a
//! [`Connecting`](crate::Connecting) aborts its socket, a [`Deferred`](super::Deferred)
//! tells its producer ([`Resolver::is_canceled`](super::Resolver::is_canceled)).
//! Does not: spawn anything (the futures run inside the one that awaits them) or time
//! anything itself. The polling is `futures-util`'s (`join_all`, `try_join_all`,
//! `select_all`), a well-kept crate, rather than hand-written.

use std::future::Future;
use std::time::Duration;

/// A [`LocalHandle::with_timeout`](crate::LocalHandle::with_timeout) whose future did not
/// finish in time (and was dropped).
///
/// The display text is not stable.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[error("timed out after {after:?}")]
pub struct TimedOut {
    /// The time allowed.
    pub after: Duration,
}

/// Awaits every future and yields their outputs in the order given (Twisted's
/// `DeferredList` with `consumeErrors`): an output that is an error does not stop the
/// others. See [`try_gather`] to stop at the first error.
///
/// # Examples
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// use ringwork::{Deferred, Reactor, gather};
///
/// let mut reactor = Reactor::new(Default::default(), Default::default())?;
/// let (a, resolve_a) = Deferred::new();
/// let (b, resolve_b) = Deferred::<u32>::new();
/// let all = Rc::new(RefCell::new(None));
/// let seen = Rc::clone(&all);
/// reactor.spawn_local(async move { *seen.borrow_mut() = Some(gather([a, b]).await) });
/// resolve_b.resolve(2);
/// drop(resolve_a); // `a` will never be produced
/// reactor.run_until(Duration::from_secs(5), |_| all.borrow().is_some())?;
/// assert_eq!(*all.borrow(), Some(vec![Err(ringwork::Canceled), Ok(2)]));
/// # Ok::<(), ringwork::EngineError>(())
/// ```
pub fn gather<I>(futures: I) -> impl Future<Output = Vec<<I::Item as Future>::Output>>
where
    I: IntoIterator,
    I::Item: Future,
{
    futures_util::future::join_all(futures)
}

/// Awaits every future and yields their values in the order given, or the first error as
/// soon as one fails — the others are then dropped, which cancels them (Twisted's
/// `gatherResults` with `consumeErrors`, failing fast).
///
/// # Errors
/// The first error a future yields.
pub fn try_gather<I, T, E>(futures: I) -> impl Future<Output = Result<Vec<T>, E>>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<T, E>>,
{
    futures_util::future::try_join_all(futures)
}

/// Awaits the first of `futures` to finish and yields its index and output; the others are
/// dropped, which cancels them (Twisted's `DeferredList` with `fireOnOneCallback`, or
/// `race`). Yields `None` for no futures. For futures of different types, box them
/// (`Pin<Box<dyn Future<Output = T>>>`) or map them to one output type.
///
/// When several are ready at the same poll, the first in the given order wins.
pub async fn first_of<I>(futures: I) -> Option<(usize, <I::Item as Future>::Output)>
where
    I: IntoIterator,
    I::Item: Future,
{
    let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    if futures.is_empty() {
        return None;
    }
    let (output, index, rest) = futures_util::future::select_all(futures).await;
    // The losers are cancelled by dropping them, now rather than with the caller's frame.
    drop(rest);
    Some((index, output))
}
