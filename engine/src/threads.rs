//! [`ThreadPool`]: blocking work off the reactor (Twisted's `deferToThread`).
//!
//! Owns: the worker threads, their bounded job queue, and the one-shot slot between a
//! worker and the [`ThreadResult`] future that awaits the job's value.
//! Contract: [`ThreadPool::spawn`] never blocks: it queues the job, or fails at once with
//! [`ThreadPoolError::Busy`] when the queue is full (backpressure on the caller, never
//! unbounded memory). A worker runs the job (a panic is caught and reported as
//! [`ThreadPoolError::Panicked`]) and completes the slot, waking the task that awaits it —
//! a wake from another thread, which the engine's executor turns into a poll on the task's
//! own core: the value is delivered on the calling core. A future dropped before its job
//! ran makes the worker skip the job; a job dropped unrun (the pool is gone) answers
//! [`ThreadPoolError::Stopped`]. Workers start at the first job, and exit once every clone
//! of the pool is dropped and their current job returns; none is ever joined from a
//! reactor thread.
//! Does not: bound the time of a job (it runs to completion), or run jobs on a reactor.
//!
//! A [`Runtime`](crate::Runtime) has one pool for all its cores
//! ([`RuntimeBuilder::thread_pool`](crate::RuntimeBuilder::thread_pool)); a
//! [`Reactor`](crate::Reactor) made alone has its own. The name lookups of
//! [`resolve::LookupPool`](crate::resolve::LookupPool) are jobs of a pool too.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Worker threads of a pool unless configured.
pub const DEFAULT_THREADS: usize = 4;
/// Jobs a pool queues (beyond those running) unless configured.
pub const DEFAULT_QUEUE: usize = 1024;

/// Why a job gave no value. The display text is not stable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ThreadPoolError {
    /// The queue of jobs waiting for a thread is full: retry later, or shed the work.
    #[error("too many jobs queued for the thread pool ({limit})")]
    Busy {
        /// The queue's size.
        limit: usize,
    },
    /// The job panicked.
    #[error("the job panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The pool's threads could not be started.
    #[error("cannot start the thread pool: {reason}")]
    Start {
        /// The OS error.
        reason: String,
    },
    /// The pool stopped before the job ran.
    #[error("the thread pool stopped")]
    Stopped,
}

type Job = Box<dyn FnOnce() + Send>;

/// A pool of worker threads with a bounded queue, for blocking work (file I/O, a blocking
/// library, CPU-heavy steps) whose result a core awaits. Cheap to clone and `Send + Sync`:
/// one pool serves every core.
///
/// # Examples
/// ```
/// use ringwork::ThreadPool;
///
/// let pool = ThreadPool::new(2, 16);
/// let sum = pool.spawn(|| (1..=10u64).sum::<u64>())?;
/// // A task on a core: `let total = sum.await?;` (Ok(55)).
/// # drop(sum);
/// # Ok::<(), ringwork::ThreadPoolError>(())
/// ```
#[derive(Clone)]
pub struct ThreadPool {
    inner: Arc<Inner>,
}

struct Inner {
    /// The job queue and its receiving end (handed to each worker), made when the workers
    /// start: a bounded channel writes every slot when made (24 bytes each, 24 KiB for
    /// [`DEFAULT_QUEUE`]), and a server's pools may never get a job (issue 16's start RSS).
    channel: OnceLock<(Sender<Job>, Receiver<Job>)>,
    threads: usize,
    limit: usize,
    name: &'static str,
    /// Set once the workers started (or failed to).
    started: OnceLock<Result<(), String>>,
}

impl ThreadPool {
    /// A pool of `threads` workers (at least one), started at its first job, with room for
    /// `queue` jobs waiting for a thread (at least one).
    #[must_use]
    pub fn new(threads: usize, queue: usize) -> Self {
        Self::named("ringwork-pool", threads, queue)
    }

    /// As [`ThreadPool::new`], its threads named `{name}-{i}`.
    #[must_use]
    pub fn named(name: &'static str, threads: usize, queue: usize) -> Self {
        let limit = queue.max(1);
        Self {
            inner: Arc::new(Inner {
                channel: OnceLock::new(),
                threads: threads.max(1),
                limit,
                name,
                started: OnceLock::new(),
            }),
        }
    }

    /// Worker threads.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Jobs that can wait for a thread.
    #[must_use]
    pub fn queue_limit(&self) -> usize {
        self.inner.limit
    }

    /// Jobs waiting for a thread now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.inner.channel.get().map_or(0, |(jobs, _)| jobs.len())
    }

    /// Runs `f` on a worker thread; the returned future yields its value. Await it on a
    /// core (a task spawned with `spawn_local`): the value is delivered there.
    ///
    /// # Errors
    /// [`ThreadPoolError::Busy`] when the queue is full, [`ThreadPoolError::Start`] when the
    /// threads could not be started.
    ///
    /// # Cancellation
    /// Dropping the future before the job started makes the worker skip the job; a job that
    /// started runs to completion and its value is dropped.
    pub fn spawn<T, F>(&self, f: F) -> Result<ThreadResult<T>, ThreadPoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.start()?;
        let slot = Arc::new(Slot::default());
        let mut completer = Completer {
            slot: Some(Arc::clone(&slot)),
        };
        let job: Job = Box::new(move || {
            let Some(slot) = completer.slot.take() else {
                return;
            };
            if Arc::strong_count(&slot) == 1 {
                return; // the future was dropped: nobody waits
            }
            let outcome =
                catch_unwind(AssertUnwindSafe(f)).map_err(|panic| ThreadPoolError::Panicked {
                    message: crate::dispatch::panic_message(&*panic),
                });
            slot.complete(outcome);
        });
        match self.channel().0.try_send(job) {
            Ok(()) => Ok(ThreadResult { slot }),
            Err(TrySendError::Full(job)) => {
                // Dropped unrun: its completer answers a future nobody holds.
                drop(job);
                Err(ThreadPoolError::Busy {
                    limit: self.inner.limit,
                })
            }
            Err(TrySendError::Disconnected(_)) => Err(ThreadPoolError::Stopped),
        }
    }

    /// The job queue, made at the first call.
    fn channel(&self) -> &(Sender<Job>, Receiver<Job>) {
        self.inner
            .channel
            .get_or_init(|| crossbeam_channel::bounded(self.inner.limit))
    }

    /// Starts the workers once.
    fn start(&self) -> Result<(), ThreadPoolError> {
        let inner = &self.inner;
        let started = inner.started.get_or_init(|| {
            for i in 0..inner.threads {
                let queue = self.channel().1.clone();
                thread::Builder::new()
                    .name(format!("{}-{i}", inner.name))
                    .spawn(move || work(&queue))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        started
            .clone()
            .map_err(|reason| ThreadPoolError::Start { reason })
    }
}

impl Default for ThreadPool {
    /// [`DEFAULT_THREADS`] workers, [`DEFAULT_QUEUE`] jobs.
    fn default() -> Self {
        Self::new(DEFAULT_THREADS, DEFAULT_QUEUE)
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("name", &self.inner.name)
            .field("threads", &self.inner.threads)
            .field("queue", &self.inner.limit)
            .finish_non_exhaustive()
    }
}

/// A worker: runs jobs until every sender is gone. A panic inside a job is caught by the
/// job itself, so the worker survives it.
fn work(queue: &Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        job();
    }
}

/// Completes its slot with [`ThreadPoolError::Stopped`] if dropped before the job ran.
struct Completer<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.complete(Err(ThreadPoolError::Stopped));
        }
    }
}

struct Slot<T> {
    state: Mutex<SlotState<T>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(SlotState {
                outcome: None,
                waker: None,
            }),
        }
    }
}

struct SlotState<T> {
    outcome: Option<Result<T, ThreadPoolError>>,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn complete(&self, outcome: Result<T, ThreadPoolError>) {
        let waker = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.outcome = Some(outcome);
            state.waker.take()
        };
        // Woken outside the lock.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The future of one job of a [`ThreadPool`]: its value, or why there is none.
///
/// # Cancellation
/// Dropping it before the job started makes the worker skip the job.
pub struct ThreadResult<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Future for ThreadResult<T> {
    type Output = Result<T, ThreadPoolError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self
            .slot
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match state.outcome.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> std::fmt::Debug for ThreadResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadResult").finish_non_exhaustive()
    }
}
