use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use super::*;

/// A waker that counts its wakes.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `future` once with `waker`.
fn poll_with<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(waker))
}

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    poll_with(future, Waker::noop())
}

// ---- Deferred ----

#[test]
fn deferred_resolved_later_wakes_the_awaiting_task() {
    let (mut deferred, resolver) = Deferred::new();
    let waker = Arc::new(CountingWaker::default());
    let std_waker = Waker::from(Arc::clone(&waker));
    assert_eq!(poll_with(&mut deferred, &std_waker), Poll::Pending);
    assert!(!resolver.is_canceled());
    resolver.resolve("value");
    assert_eq!(waker.count(), 1);
    assert_eq!(
        poll_with(&mut deferred, &std_waker),
        Poll::Ready(Ok("value"))
    );
}

#[test]
fn deferred_resolved_before_first_poll() {
    let (mut deferred, resolver) = Deferred::new();
    resolver.resolve(7);
    assert_eq!(poll_once(&mut deferred), Poll::Ready(Ok(7)));
}

#[test]
fn deferred_keeps_only_the_latest_waker() {
    let (mut deferred, resolver) = Deferred::<()>::new();
    let first = Arc::new(CountingWaker::default());
    let second = Arc::new(CountingWaker::default());
    assert!(poll_with(&mut deferred, &Waker::from(Arc::clone(&first))).is_pending());
    assert!(poll_with(&mut deferred, &Waker::from(Arc::clone(&second))).is_pending());
    resolver.resolve(());
    assert_eq!((first.count(), second.count()), (0, 1));
}

#[test]
fn dropped_resolver_cancels_the_deferred() {
    let (mut deferred, resolver) = Deferred::<u32>::new();
    let waker = Arc::new(CountingWaker::default());
    assert!(poll_with(&mut deferred, &Waker::from(Arc::clone(&waker))).is_pending());
    drop(resolver);
    assert_eq!(waker.count(), 1);
    assert_eq!(poll_once(&mut deferred), Poll::Ready(Err(Canceled)));
}

#[test]
fn dropped_deferred_is_seen_by_the_resolver() {
    let (deferred, resolver) = Deferred::new();
    assert!(!resolver.is_canceled());
    drop(deferred);
    assert!(resolver.is_canceled());
    let value = Rc::new(());
    resolver.resolve(Rc::clone(&value));
    assert_eq!(
        Rc::strong_count(&value),
        1,
        "the value is dropped, not kept"
    );
}

#[test]
fn deferred_resolved_is_ready_at_once() {
    let mut deferred = Deferred::resolved(String::from("now"));
    assert_eq!(
        poll_once(&mut deferred),
        Poll::Ready(Ok(String::from("now")))
    );
}

#[test]
#[should_panic(expected = "Deferred polled after it completed")]
fn deferred_polled_after_completion_panics() {
    let (mut deferred, resolver) = Deferred::new();
    resolver.resolve(1);
    assert!(poll_once(&mut deferred).is_ready());
    let _ = poll_once(&mut deferred);
}

#[test]
fn canceled_displays_its_meaning() {
    assert_eq!(
        Canceled.to_string(),
        "the deferred value will never be produced"
    );
}
