//! [`Deferred`]: a one-shot value that a callback produces later and a future awaits.
//!
//! Owns: the shared cell between one [`Deferred`] and its [`Resolver`] (one `Rc`
//! allocation; none for [`Deferred::resolved`]).
//! Contract: the [`Resolver`] moves the cell from pending to resolved, or to canceled when
//! it is dropped unresolved, and wakes the task awaiting the [`Deferred`]; the
//! [`Deferred`] takes the outcome once.
//! Does not: cross threads (both halves are `!Send`: callbacks and futures of one core
//! share its thread), or chain callbacks as Twisted's `addCallback` does (await instead).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The error of a [`Deferred`] or [`JoinHandle`](super::JoinHandle) whose value will never
/// be produced: its [`Resolver`] was dropped unresolved, or its task was dropped or
/// panicked.
///
/// The display text is not stable.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[error("the deferred value will never be produced")]
pub struct Canceled;

/// A value that a callback produces later, awaited by a future (Twisted's `Deferred`).
///
/// 1. [`Deferred::new`] returns the [`Deferred`] and its [`Resolver`];
/// 2. the future awaits the [`Deferred`], the callback keeps the [`Resolver`];
/// 3. [`Resolver::resolve`] hands the value over and wakes the awaiting task, which then
///    gets `Ok(value)`. Dropping the [`Resolver`] unresolved gives `Err(Canceled)`.
///
/// Dropping the [`Deferred`] tells the producer that nobody waits any more
/// ([`Resolver::is_canceled`]).
///
/// # Panics
/// Polling it again after it returned `Poll::Ready` panics.
///
/// # Examples
/// ```
/// use ringwork::Deferred;
///
/// let (deferred, resolver) = Deferred::new();
/// // ... a callback, later:
/// resolver.resolve(42);
/// // `deferred.await` in a task now yields `Ok(42)`.
/// # drop(deferred);
/// ```
pub struct Deferred<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    /// Built by [`Deferred::resolved`]; `None` once taken.
    Ready(Option<T>),
    /// Shared with a [`Resolver`].
    Waiting(Rc<Shared<T>>),
}

/// The producing half of a [`Deferred`]; see there.
pub struct Resolver<T> {
    shared: Rc<Shared<T>>,
}

struct Shared<T> {
    /// A `Cell`, not a `RefCell`: every access moves the state out and back, so no borrow
    /// is held while a waker (foreign code) runs.
    state: Cell<State<T>>,
}

enum State<T> {
    /// No outcome yet; the waker of the task that last polled the [`Deferred`].
    Pending(Option<Waker>),
    Resolved(T),
    /// The [`Resolver`] was dropped unresolved.
    Canceled,
    /// The [`Deferred`] took the outcome (or a state is momentarily moved out).
    Taken,
}

impl<T> Deferred<T> {
    /// Creates a pending [`Deferred`] and the [`Resolver`] that completes it.
    #[must_use]
    pub fn new() -> (Deferred<T>, Resolver<T>) {
        let shared = Rc::new(Shared {
            state: Cell::new(State::Pending(None)),
        });
        let deferred = Deferred {
            inner: Inner::Waiting(Rc::clone(&shared)),
        };
        (deferred, Resolver { shared })
    }

    /// Creates a [`Deferred`] that already holds `value` (no allocation).
    #[must_use]
    pub fn resolved(value: T) -> Deferred<T> {
        Deferred {
            inner: Inner::Ready(Some(value)),
        }
    }
}

// The value is never pinned: it is moved out by `poll`.
impl<T> Unpin for Deferred<T> {}

impl<T> Future for Deferred<T> {
    type Output = Result<T, Canceled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = match &mut self.get_mut().inner {
            Inner::Ready(value) => match value.take() {
                Some(value) => return Poll::Ready(Ok(value)),
                None => panic!("Deferred polled after it completed"),
            },
            Inner::Waiting(shared) => shared,
        };
        match shared.state.replace(State::Taken) {
            State::Pending(old) => {
                let waker = match old {
                    Some(old) if old.will_wake(cx.waker()) => old,
                    _ => cx.waker().clone(),
                };
                shared.state.set(State::Pending(Some(waker)));
                Poll::Pending
            }
            State::Resolved(value) => Poll::Ready(Ok(value)),
            State::Canceled => Poll::Ready(Err(Canceled)),
            State::Taken => panic!("Deferred polled after it completed"),
        }
    }
}

impl<T> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.inner {
            Inner::Ready(Some(_)) => "resolved",
            Inner::Ready(None) => "taken",
            Inner::Waiting(shared) => shared.describe(),
        };
        f.debug_struct("Deferred").field("state", &state).finish()
    }
}

impl<T> Resolver<T> {
    /// Hands `value` to the [`Deferred`] and wakes the task awaiting it. If the [`Deferred`]
    /// was dropped, `value` is dropped here.
    pub fn resolve(self, value: T) {
        if self.is_canceled() {
            return;
        }
        self.finish(State::Resolved(value));
    }

    /// Whether the [`Deferred`] was dropped, so that nobody will see the value: the
    /// producer may stop working on it.
    #[must_use]
    pub fn is_canceled(&self) -> bool {
        Rc::strong_count(&self.shared) == 1
    }

    /// Moves a pending cell to `outcome` and wakes the awaiting task; leaves a finished
    /// cell as it is.
    fn finish(&self, outcome: State<T>) {
        match self.shared.state.replace(State::Taken) {
            State::Pending(waker) => {
                self.shared.state.set(outcome);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            finished => self.shared.state.set(finished),
        }
    }
}

impl<T> Drop for Resolver<T> {
    fn drop(&mut self) {
        // After `resolve` the cell is no longer pending and this does nothing.
        self.finish(State::Canceled);
    }
}

impl<T> fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("state", &self.shared.describe())
            .field("canceled", &self.is_canceled())
            .finish()
    }
}

impl<T> Shared<T> {
    fn describe(&self) -> &'static str {
        let state = self.state.replace(State::Taken);
        let name = match &state {
            State::Pending(_) => "pending",
            State::Resolved(_) => "resolved",
            State::Canceled => "canceled",
            State::Taken => "taken",
        };
        self.state.set(state);
        name
    }
}
