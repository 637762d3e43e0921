//! The per-core executor: runs `!Send` futures on the reactor's thread, without work stealing.
//!
//! Owns: the tasks of one core (a slab of boxed futures, indexed by slot and generation),
//! their wakers and the queue of tasks ready to be polled; [`Deferred`] (in `deferred.rs`),
//! the bridge from callbacks to futures; and composition of futures ([`gather`],
//! [`try_gather`], [`first_of`], in `compose.rs`).
//! Contract: the reactor calls `Executor::run_ready` every loop turn and must not block
//! in its driver's wait while `Executor::has_ready` is true. A wake from another thread
//! enqueues the task and, when it makes the queue non-empty, wakes the reactor through its
//! [`ringwork_platform::Waker`]; a wake on the reactor's own thread never does (the reactor
//! is running and checks `Executor::has_ready` before it blocks). A panic in a task drops
//! that task only; its [`JoinHandle`] yields [`Canceled`].
//! Does not: move tasks between cores, time anything (timers are the reactor's), or let a
//! task spawn through the executor while it runs (the reactor hands out spawning).
//! Tests: `tests.rs`.

mod compose;
mod deferred;

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};

pub use self::compose::{TimedOut, first_of, gather, try_gather};
pub use self::deferred::{Canceled, Deferred, Resolver};

/// A task's place in the slab: slot index and the generation of the slot's occupant.
type TaskRef = (u32, u32);

/// Per-core executor: runs `!Send` futures on the reactor's thread; no work stealing.
///
/// 1. [`Executor::spawn_local`] queues a future;
/// 2. each reactor turn calls [`Executor::run_ready`], which polls the tasks woken since
///    their last poll, each at most once per call;
/// 3. before blocking in the driver's wait, the reactor checks [`Executor::has_ready`].
///
/// Dropping it drops every task; their [`JoinHandle`]s yield [`Canceled`].
pub(crate) struct Executor {
    slots: Vec<Slot>,
    /// Free slot indices, reused last-in first-out.
    free: Vec<u32>,
    /// Tasks to poll, in order: new tasks and those moved from [`Shared::ready`].
    run_queue: VecDeque<TaskRef>,
    /// Tasks in `slots`.
    live: usize,
    shared: Arc<Shared>,
}

struct Slot {
    /// INVARIANT: bumped when a task leaves the slot, so that stale [`TaskRef`]s miss.
    generation: u32,
    task: Option<Task>,
}

struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    /// `Waker::from(handle.clone())`, built once at spawn.
    waker: Waker,
    handle: Arc<TaskWaker>,
}

/// What the wakers of all tasks share with the executor.
struct Shared {
    /// Tasks woken since the last [`Executor::run_ready`], from any thread.
    ready: Mutex<Vec<TaskRef>>,
    /// Whether `ready` holds a task: set and cleared with its lock held, read without it,
    /// so the reactor's checks on every turn take no lock while nothing was woken (issue
    /// 16: ~30 instructions per keep-alive request). A wake that a read misses wakes the
    /// reactor itself, as a wake after the check would.
    any_ready: AtomicBool,
    reactor_waker: Option<ringwork_platform::Waker>,
    /// The reactor's thread: a wake there needs no reactor wake-up.
    owner: ThreadId,
}

/// One task's waker: `Send + Sync`, so a task may be woken from another thread.
struct TaskWaker {
    task: TaskRef,
    /// INVARIANT: true while `task` is in a ready queue (a wake then does nothing), and for
    /// good once the task is gone (its wakes are stale).
    queued: AtomicBool,
    shared: Arc<Shared>,
}

// Only the reactor written alongside uses the executor.
#[allow(dead_code)]
impl Executor {
    /// Creates an executor for the current thread. `reactor_waker`, if given, is woken when
    /// another thread wakes a task while no task is ready.
    pub(crate) fn new(reactor_waker: Option<ringwork_platform::Waker>) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            run_queue: VecDeque::new(),
            live: 0,
            shared: Arc::new(Shared {
                ready: Mutex::new(Vec::new()),
                any_ready: AtomicBool::new(false),
                reactor_waker,
                owner: thread::current().id(),
            }),
        }
    }

    /// Queues a future; it is first polled by the next [`Executor::run_ready`].
    ///
    /// # Panics
    /// If more than `u32::MAX` tasks are alive at once.
    pub(crate) fn spawn_local<F: Future + 'static>(&mut self, future: F) -> JoinHandle<F::Output>
    where
        F::Output: 'static,
    {
        let (deferred, resolver) = Deferred::new();
        let future = Box::pin(async move { resolver.resolve(future.await) });

        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.slots.len())
                    .unwrap_or_else(|_| panic!("more than u32::MAX tasks on one core"));
                self.slots.push(Slot {
                    generation: 0,
                    task: None,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        let task = (index, slot.generation);
        let handle = Arc::new(TaskWaker {
            task,
            // Queued below.
            queued: AtomicBool::new(true),
            shared: Arc::clone(&self.shared),
        });
        slot.task = Some(Task {
            future,
            waker: Waker::from(Arc::clone(&handle)),
            handle,
        });
        self.live += 1;
        self.run_queue.push_back(task);
        JoinHandle { deferred }
    }

    /// Polls every task that is ready (woken since its last poll), at most `budget` polls;
    /// returns polls done.
    ///
    /// A task woken during this call (by itself or by another task) is polled by the next
    /// call, so that one task cannot starve the reactor.
    pub(crate) fn run_ready(&mut self, budget: usize) -> usize {
        if self.shared.any_ready.load(Ordering::Acquire) {
            let mut ready = self.shared.lock_ready();
            self.shared.any_ready.store(false, Ordering::Release);
            self.run_queue.extend(ready.drain(..));
        }
        let mut batch = self.run_queue.len();
        let mut polls = 0;
        while polls < budget && batch > 0 {
            batch -= 1;
            let Some(task) = self.run_queue.pop_front() else {
                break;
            };
            if self.poll(task) {
                polls += 1;
            }
        }
        polls
    }

    /// Whether some task is ready to be polled (the reactor then must not block in its wait).
    pub(crate) fn has_ready(&self) -> bool {
        !self.run_queue.is_empty() || self.shared.any_ready.load(Ordering::Acquire)
    }

    /// Live tasks: spawned and neither finished nor panicked.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Whether there is no live task.
    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Polls `task` once if it still exists; returns whether it did.
    fn poll(&mut self, (index, generation): TaskRef) -> bool {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return false;
        };
        if slot.generation != generation {
            return false;
        }
        let Some(task) = slot.task.as_mut() else {
            return false;
        };
        // Cleared before the poll, so a wake from now on queues the task again: whoever
        // wakes it saw this poll's effects (the waker it registered), so its swap reads
        // `false` or a later `true` whose wake queued the task.
        task.handle.queued.store(false, Ordering::Release);
        let mut cx = Context::from_waker(&task.waker);
        let future = task.future.as_mut();
        match panic::catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx))) {
            Ok(Poll::Pending) => {}
            Ok(Poll::Ready(())) => self.remove(index),
            Err(payload) => {
                tracing::error!(
                    task = index,
                    "task panicked, dropping it (its JoinHandle yields Canceled): {}",
                    panic_message(&*payload)
                );
                self.remove(index);
            }
        }
        true
    }

    /// Drops the task in slot `index` (it finished or panicked) and frees the slot.
    fn remove(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        let Some(task) = slot.task.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.live -= 1;
        drop_task(task);
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some(task) = slot.task.take() {
                drop_task(task);
            }
        }
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("live", &self.live)
            .field("run_queue", &self.run_queue.len())
            .field("reactor_waker", &self.shared.reactor_waker)
            .finish_non_exhaustive()
    }
}

/// Drops a task that left its slot; a panic in its destructor is logged, not propagated.
fn drop_task(task: Task) {
    // Its wakes from now on are stale: make them do nothing.
    task.handle.queued.store(true, Ordering::Release);
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(task))) {
        tracing::error!("dropping a task panicked: {}", panic_message(&*payload));
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "(no message)"
    }
}

impl Shared {
    /// The ready queue. Nothing panics while holding it, but a poisoned lock still holds a
    /// consistent `Vec`, so poisoning is ignored.
    fn lock_ready(&self) -> MutexGuard<'_, Vec<TaskRef>> {
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let was_empty = {
            let mut ready = self.shared.lock_ready();
            let was_empty = ready.is_empty();
            ready.push(self.task);
            self.shared.any_ready.store(true, Ordering::Release);
            was_empty
        };
        // A non-empty queue already woke the reactor, or was filled on the reactor's own
        // thread, which checks `has_ready` before it blocks.
        if !was_empty {
            return;
        }
        if let Some(reactor) = &self.shared.reactor_waker
            && thread::current().id() != self.shared.owner
            && let Err(error) = reactor.wake()
        {
            tracing::warn!(%error, "waking the reactor for a task failed");
        }
    }
}

/// Awaitable result of a spawned task. Dropping it detaches the task (it keeps running).
///
/// Yields `Err(Canceled)` if the task was dropped (its executor was dropped) or panicked.
pub struct JoinHandle<T> {
    deferred: Deferred<T>,
}

impl<T> JoinHandle<T> {
    /// A handle that yields what `deferred` yields (for spawns queued outside the executor).
    pub(crate) fn from_deferred(deferred: Deferred<T>) -> Self {
        Self { deferred }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JoinHandle").field(&self.deferred).finish()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, Canceled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.deferred).poll(cx)
    }
}

#[cfg(test)]
mod tests;
