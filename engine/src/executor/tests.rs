use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use ringwork_platform::{Completion, Driver};

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

/// A future that counts its polls and stays pending until `wake()` made it ready; it keeps
/// its latest waker where a test (on any thread) can reach it.
#[derive(Clone, Default)]
struct Parked {
    polls: Rc<Cell<usize>>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Parked {
    fn wait(&self, until: usize) -> impl Future<Output = usize> + 'static {
        let this = self.clone();
        poll_fn(move |cx| {
            this.polls.set(this.polls.get() + 1);
            *this.waker.lock().unwrap() = Some(cx.waker().clone());
            if this.polls.get() >= until {
                Poll::Ready(this.polls.get())
            } else {
                Poll::Pending
            }
        })
    }

    fn waker(&self) -> Waker {
        self.waker
            .lock()
            .unwrap()
            .clone()
            .expect("polled at least once")
    }
}

/// A task that wakes itself on every poll and never finishes.
fn yield_forever(polls: Rc<Cell<usize>>) -> impl Future<Output = ()> + 'static {
    poll_fn(move |cx| {
        polls.set(polls.get() + 1);
        cx.waker().wake_by_ref();
        Poll::Pending
    })
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

// ---- Executor ----

#[test]
fn spawn_and_join() {
    let mut executor = Executor::new(None);
    let mut handle = executor.spawn_local(async { 40 + 2 });
    assert_eq!(executor.len(), 1);
    assert!(executor.has_ready());
    assert_eq!(poll_once(&mut handle), Poll::Pending);
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(executor.len(), 0);
    assert!(!executor.has_ready());
    assert_eq!(poll_once(&mut handle), Poll::Ready(Ok(42)));
}

#[test]
fn a_task_awaits_another_tasks_join_handle() {
    let mut executor = Executor::new(None);
    let (deferred, resolver) = Deferred::new();
    let inner = executor.spawn_local(async move { deferred.await.map(|v: u32| v * 2) });
    let mut outer = executor.spawn_local(async move { inner.await.map(|r| r.map(|v| v + 1)) });
    executor.run_ready(usize::MAX);
    assert_eq!(executor.len(), 2);
    resolver.resolve(20);
    executor.run_ready(usize::MAX); // the inner task finishes and wakes the outer one
    executor.run_ready(usize::MAX);
    assert_eq!(executor.len(), 0);
    assert_eq!(poll_once(&mut outer), Poll::Ready(Ok(Ok(Ok(41)))));
}

#[test]
fn deferred_resolved_by_a_callback_after_the_task_waits() {
    let mut executor = Executor::new(None);
    let (deferred, resolver) = Deferred::new();
    let seen = Rc::new(Cell::new(None));
    let seen_in_task = Rc::clone(&seen);
    let mut handle = executor.spawn_local(async move {
        let value = deferred.await;
        seen_in_task.set(Some(value));
        "done"
    });
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(seen.get(), None);
    assert!(!executor.has_ready(), "the task waits; nothing to poll");

    // The "callback": plain code outside any future.
    resolver.resolve(5_u32);

    assert!(executor.has_ready());
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(seen.get(), Some(Ok(5)));
    assert_eq!(executor.len(), 0);
    assert_eq!(poll_once(&mut handle), Poll::Ready(Ok("done")));
}

#[test]
fn dropped_resolver_reaches_the_task_as_canceled() {
    let mut executor = Executor::new(None);
    let (deferred, resolver) = Deferred::<u32>::new();
    let mut handle = executor.spawn_local(deferred);
    executor.run_ready(usize::MAX);
    drop(resolver);
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(poll_once(&mut handle), Poll::Ready(Ok(Err(Canceled))));
}

#[test]
fn dropping_the_join_handle_detaches_the_task() {
    let mut executor = Executor::new(None);
    let (deferred, resolver) = Deferred::new();
    let ran = Rc::new(Cell::new(false));
    let ran_in_task = Rc::clone(&ran);
    drop(executor.spawn_local(async move {
        let _ = deferred.await;
        ran_in_task.set(true);
    }));
    executor.run_ready(usize::MAX);
    resolver.resolve(());
    executor.run_ready(usize::MAX);
    assert!(ran.get());
    assert_eq!(executor.len(), 0);
}

#[test]
fn dropping_the_executor_cancels_its_tasks() {
    let mut executor = Executor::new(None);
    let (deferred, resolver) = Deferred::<()>::new();
    let mut handle = executor.spawn_local(deferred);
    executor.run_ready(usize::MAX);
    drop(executor);
    assert!(
        resolver.is_canceled(),
        "the task, and its Deferred, are gone"
    );
    assert_eq!(poll_once(&mut handle), Poll::Ready(Err(Canceled)));
}

#[test]
fn many_tasks() {
    const TASKS: usize = 1000;
    let mut executor = Executor::new(None);
    let mut resolvers = Vec::new();
    let mut handles = Vec::new();
    let sum = Rc::new(Cell::new(0));
    for i in 0..TASKS {
        let (deferred, resolver) = Deferred::new();
        resolvers.push(resolver);
        let sum = Rc::clone(&sum);
        handles.push(executor.spawn_local(async move {
            let value: usize = deferred.await.unwrap();
            sum.set(sum.get() + value);
            i
        }));
    }
    assert_eq!(executor.run_ready(usize::MAX), TASKS);
    assert_eq!(executor.len(), TASKS);
    // Resolve in reverse order.
    for (i, resolver) in resolvers.into_iter().enumerate().rev() {
        resolver.resolve(i);
    }
    assert_eq!(executor.run_ready(usize::MAX), TASKS);
    assert_eq!(executor.len(), 0);
    assert_eq!(sum.get(), TASKS * (TASKS - 1) / 2);
    for (i, mut handle) in handles.into_iter().enumerate() {
        assert_eq!(poll_once(&mut handle), Poll::Ready(Ok(i)));
    }
    // Slots are reused: a second round allocates none.
    let slots = executor.slots.len();
    for _ in 0..TASKS {
        drop(executor.spawn_local(async {}));
    }
    assert_eq!(executor.run_ready(usize::MAX), TASKS);
    assert_eq!(executor.slots.len(), slots);
}

#[test]
fn budget_is_respected() {
    let mut executor = Executor::new(None);
    let done = Rc::new(Cell::new(0));
    for _ in 0..10 {
        let done = Rc::clone(&done);
        drop(executor.spawn_local(async move { done.set(done.get() + 1) }));
    }
    assert_eq!(executor.run_ready(0), 0);
    assert_eq!(executor.run_ready(4), 4);
    assert_eq!(done.get(), 4);
    assert!(executor.has_ready());
    assert_eq!(executor.run_ready(4), 4);
    assert_eq!(executor.run_ready(4), 2);
    assert_eq!(done.get(), 10);
    assert!(!executor.has_ready());
    assert_eq!(executor.run_ready(4), 0);
}

#[test]
fn a_self_waking_task_is_polled_once_per_run() {
    let mut executor = Executor::new(None);
    let polls = Rc::new(Cell::new(0));
    drop(executor.spawn_local(yield_forever(Rc::clone(&polls))));
    let (deferred, resolver) = Deferred::new();
    let other = executor.spawn_local(deferred);
    for run in 1..=3 {
        assert!(executor.has_ready());
        let expected = if run == 1 { 2 } else { 1 };
        assert_eq!(executor.run_ready(usize::MAX), expected);
        assert_eq!(polls.get(), run);
    }
    // Another task woken meanwhile still gets its turn.
    resolver.resolve(3);
    assert_eq!(executor.run_ready(usize::MAX), 2);
    assert_eq!(executor.len(), 1);
    assert_eq!(polls.get(), 4);
    let mut other = other;
    assert_eq!(poll_once(&mut other), Poll::Ready(Ok(Ok(3))));
}

#[test]
fn duplicate_wakes_queue_a_task_once() {
    let mut executor = Executor::new(None);
    let parked = Parked::default();
    drop(executor.spawn_local(parked.wait(usize::MAX)));
    executor.run_ready(usize::MAX);
    let waker = parked.waker();
    for _ in 0..5 {
        waker.wake_by_ref();
    }
    assert_eq!(executor.shared.lock_ready().len(), 1);
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(parked.polls.get(), 2);
    // Woken again after its poll: queued again.
    waker.wake_by_ref();
    assert_eq!(executor.run_ready(usize::MAX), 1);
}

#[test]
fn a_panicking_task_is_dropped_and_others_continue() {
    let mut executor = Executor::new(None);
    let (deferred, resolver) = Deferred::new();
    let before = executor.spawn_local(async { 1 });
    // Holds a Resolver: the unwind must drop it (its Deferred is then canceled).
    let (held, held_resolver) = Deferred::<()>::new();
    let mut panicking = executor.spawn_local(async move {
        let _keep = held_resolver;
        let value: u32 = deferred.await.unwrap();
        if value > 0 {
            panic!("task failed on purpose");
        }
        value
    });
    let after = executor.spawn_local(async { 3 });
    assert_eq!(executor.run_ready(usize::MAX), 3);
    assert_eq!(executor.len(), 1);

    resolver.resolve(9);
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(executor.len(), 0);
    assert_eq!(poll_once(&mut panicking), Poll::Ready(Err(Canceled)));
    let mut held = held;
    assert_eq!(poll_once(&mut held), Poll::Ready(Err(Canceled)));

    // The executor keeps working.
    let mut later = executor.spawn_local(async { 4 });
    assert_eq!(executor.run_ready(usize::MAX), 1);
    for (mut handle, expected) in [(before, 1), (after, 3)] {
        assert_eq!(poll_once(&mut handle), Poll::Ready(Ok(expected)));
    }
    assert_eq!(poll_once(&mut later), Poll::Ready(Ok(4)));
}

#[test]
fn a_panic_on_first_poll_among_others() {
    let mut executor = Executor::new(None);
    fn boom() -> u32 {
        panic!("{}", String::from("boom"))
    }
    let mut first = executor.spawn_local(async { boom() });
    let mut second = executor.spawn_local(async { "fine" });
    assert_eq!(executor.run_ready(usize::MAX), 2);
    assert_eq!(poll_once(&mut first), Poll::Ready(Err(Canceled)));
    assert_eq!(poll_once(&mut second), Poll::Ready(Ok("fine")));
}

#[test]
fn a_stale_waker_after_slot_reuse_is_ignored() {
    let mut executor = Executor::new(None);

    // Task A hands out its waker and finishes on its second poll.
    let parked = Parked::default();
    drop(executor.spawn_local(parked.wait(2)));
    executor.run_ready(usize::MAX);
    let stale = parked.waker();
    stale.wake_by_ref();
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(executor.len(), 0);

    // Task B reuses A's slot.
    let b = Parked::default();
    drop(executor.spawn_local(b.wait(usize::MAX)));
    assert_eq!(executor.slots.len(), 1, "B took A's slot");
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(b.polls.get(), 1);

    stale.wake_by_ref();
    assert!(
        !executor.has_ready(),
        "a finished task's wake queues nothing"
    );
    assert_eq!(executor.run_ready(usize::MAX), 0);
    assert_eq!(b.polls.get(), 1);
}

#[test]
fn a_wake_queued_before_the_task_finished_misses_the_new_occupant() {
    let mut executor = Executor::new(None);
    // Wakes itself, then finishes: its queue entry outlives it.
    let polls = Rc::new(Cell::new(0));
    let polls_in_task = Rc::clone(&polls);
    drop(executor.spawn_local(poll_fn(move |cx| {
        polls_in_task.set(polls_in_task.get() + 1);
        cx.waker().wake_by_ref();
        Poll::Ready(())
    })));
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(executor.shared.lock_ready().len(), 1, "the stale entry");

    let b = Parked::default();
    drop(executor.spawn_local(b.wait(usize::MAX)));
    assert_eq!(executor.slots.len(), 1, "B took the slot");
    // B's first poll counts; the stale entry for the same slot does not poll it again.
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(b.polls.get(), 1);
    assert!(!executor.has_ready());
    assert_eq!(polls.get(), 1);
}

#[test]
fn a_task_woken_from_another_thread_runs_and_wakes_the_reactor() {
    let mut driver = Driver::new().expect("a driver (uring or poll)");
    let mut executor = Executor::new(Some(driver.waker()));
    let parked = Parked::default();
    let mut handle = executor.spawn_local(parked.wait(2));
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert!(!executor.has_ready());

    let mut out = Vec::new();
    driver.turn(Some(Duration::ZERO), &mut out).unwrap();
    assert!(
        !out.iter().any(|c| matches!(c, Completion::Woken)),
        "no wake yet: {out:?}"
    );

    let waker = parked.waker();
    thread::spawn(move || waker.wake()).join().unwrap();

    assert!(executor.has_ready());
    out.clear();
    driver.turn(Some(Duration::from_secs(5)), &mut out).unwrap();
    assert!(
        out.iter().any(|c| matches!(c, Completion::Woken)),
        "the {:?} reactor was woken: {out:?}",
        driver.backend()
    );
    assert_eq!(executor.run_ready(usize::MAX), 1);
    assert_eq!(poll_once(&mut handle), Poll::Ready(Ok(2)));
}

#[test]
fn a_wake_on_the_reactor_thread_does_not_wake_the_reactor() {
    let mut driver = Driver::new().expect("a driver (uring or poll)");
    let mut executor = Executor::new(Some(driver.waker()));
    let parked = Parked::default();
    drop(executor.spawn_local(parked.wait(usize::MAX)));
    executor.run_ready(usize::MAX);

    parked.waker().wake();
    assert!(executor.has_ready());
    let mut out = Vec::new();
    driver.turn(Some(Duration::ZERO), &mut out).unwrap();
    assert!(
        !out.iter().any(|c| matches!(c, Completion::Woken)),
        "no syscall for a local wake: {out:?}"
    );
    assert_eq!(executor.run_ready(usize::MAX), 1);
}

#[test]
fn a_task_can_own_shared_state_across_polls() {
    // `!Send` state (Rc/RefCell) lives in tasks and callbacks alike.
    let mut executor = Executor::new(None);
    let log = Rc::new(RefCell::new(Vec::new()));
    let (first, resolve_first) = Deferred::new();
    let (second, resolve_second) = Deferred::new();
    let log_in_task = Rc::clone(&log);
    drop(executor.spawn_local(async move {
        let value = first.await.unwrap();
        log_in_task.borrow_mut().push(value);
        let value = second.await.unwrap();
        log_in_task.borrow_mut().push(value);
    }));
    executor.run_ready(usize::MAX);
    resolve_first.resolve("a");
    executor.run_ready(usize::MAX);
    resolve_second.resolve("b");
    executor.run_ready(usize::MAX);
    assert_eq!(*log.borrow(), ["a", "b"]);
    assert_eq!(executor.len(), 0);
}

#[test]
fn pending_handle_gets_woken_when_the_task_finishes() {
    let mut executor = Executor::new(None);
    let (deferred, resolver) = Deferred::new();
    let handle = executor.spawn_local(deferred);
    let mut handle = pin!(handle);
    let waker = Arc::new(CountingWaker::default());
    let std_waker = Waker::from(Arc::clone(&waker));
    executor.run_ready(usize::MAX);
    assert!(
        handle
            .as_mut()
            .poll(&mut Context::from_waker(&std_waker))
            .is_pending()
    );
    resolver.resolve(1);
    executor.run_ready(usize::MAX);
    assert_eq!(waker.count(), 1);
    assert_eq!(
        handle.as_mut().poll(&mut Context::from_waker(&std_waker)),
        Poll::Ready(Ok(Ok(1)))
    );
}
