//! [`LookupPool`]: name resolution off the reactor, on a few blocking threads.
//!
//! Owns: the worker threads, their bounded job queue, and the one-shot slot between a
//! worker and the [`Lookup`] future that awaits it.
//! Contract: [`LookupPool::lookup`] never blocks: it queues a job (or fails at once with
//! [`LookupError::Busy`] when the queue is full) and returns a future. A worker runs
//! `ToSocketAddrs` (the system resolver, `getaddrinfo`) and completes the slot, waking the
//! future's task — a wake from another thread, which the engine's executor supports. A
//! future dropped before its job ran makes the worker skip it; a result for a future that
//! is gone is dropped. Workers exit once every [`LookupPool`] clone is dropped and their
//! current lookup returns: no thread outlives the pool by more than one lookup, and none
//! is ever joined from a reactor thread.
//! Does not: cache, or bound the time of one lookup (the system resolver's own timeouts
//! apply; callers set their own deadline).
//!
//! It lives in the engine because it owns threads (protocols own none, see STYLE.md); the
//! SOCKS5 server and anything else that resolves names share it.

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;

/// Why a lookup gave no addresses. The display text is not stable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The queue of pending lookups is full.
    #[error("too many name lookups pending ({limit})")]
    Busy {
        /// The queue's size.
        limit: usize,
    },
    /// The resolver failed (unknown name, no network, ...).
    #[error("cannot resolve {host}: {reason}")]
    Failed {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        reason: String,
    },
    /// The name has no address.
    #[error("{host} has no address")]
    NoAddresses {
        /// The name looked up.
        host: String,
    },
    /// The pool stopped before the lookup ran.
    #[error("the resolver stopped")]
    Stopped,
}

type Outcome = Result<Vec<SocketAddr>, LookupError>;

/// A pool of resolver threads with a bounded queue. Cheap to clone and `Send`: one pool can
/// serve every core.
#[derive(Clone)]
pub struct LookupPool {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: SyncSender<Job>,
    limit: usize,
}

impl LookupPool {
    /// Starts `threads` workers (at least one) with room for `queue` pending lookups.
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::sync_channel(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            thread::Builder::new()
                .name(format!("ringwork-dns-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Self {
            inner: Arc::new(Inner { jobs, limit: queue }),
        })
    }

    /// Queues a lookup of `host` (a name or an IP literal) with `port`.
    ///
    /// # Errors
    /// [`LookupError::Busy`] when the queue is full, [`LookupError::Stopped`] when the
    /// workers are gone.
    pub fn lookup(&self, host: &str, port: u16) -> Result<Lookup, LookupError> {
        let slot = Arc::new(Slot::default());
        let job = Job {
            host: host.to_owned(),
            port,
            slot: Some(Arc::clone(&slot)),
        };
        match self.inner.jobs.try_send(job) {
            Ok(()) => Ok(Lookup { slot }),
            Err(TrySendError::Full(_)) => Err(LookupError::Busy {
                limit: self.inner.limit,
            }),
            Err(TrySendError::Disconnected(_)) => Err(LookupError::Stopped),
        }
    }
}

impl std::fmt::Debug for LookupPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupPool")
            .field("queue", &self.inner.limit)
            .finish_non_exhaustive()
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never during a lookup.
        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(mut job) = job else {
            return; // every LookupPool is gone
        };
        let Some(slot) = job.slot.take() else {
            continue;
        };
        if Arc::strong_count(&slot) == 1 {
            continue; // the Lookup was dropped: nobody waits
        }
        let outcome = match (job.host.as_str(), job.port).to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if addrs.is_empty() {
                    Err(LookupError::NoAddresses {
                        host: job.host.clone(),
                    })
                } else {
                    Ok(addrs)
                }
            }
            Err(e) => Err(LookupError::Failed {
                host: job.host.clone(),
                reason: e.to_string(),
            }),
        };
        slot.complete(outcome);
    }
}

struct Job {
    host: String,
    port: u16,
    /// `None` once completed.
    slot: Option<Arc<Slot>>,
}

impl Drop for Job {
    fn drop(&mut self) {
        // Dropped unrun (the pool stopped with jobs queued): tell the waiter.
        if let Some(slot) = self.slot.take() {
            slot.complete(Err(LookupError::Stopped));
        }
    }
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    outcome: Option<Outcome>,
    waker: Option<Waker>,
}

impl Slot {
    fn complete(&self, outcome: Outcome) {
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

/// The future of one lookup: the addresses, or why there are none.
///
/// # Cancellation
/// Dropping it before the lookup ran makes the worker skip it.
pub struct Lookup {
    slot: Arc<Slot>,
}

impl Future for Lookup {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
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

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `future` to completion on this thread (parks between wakes).
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        use std::sync::Arc;
        use std::task::{Context as TaskContext, Poll, Wake, Waker};

        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = TaskContext::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    #[test]
    fn the_lookup_pool_resolves_off_thread_and_survives_its_users() {
        let pool = LookupPool::new(2, 4).expect("threads");
        let addrs = block_on(pool.lookup("127.0.0.1", 80).expect("queued")).expect("resolved");
        assert_eq!(addrs, [SocketAddr::from(([127, 0, 0, 1], 80))]);
        let addrs = block_on(pool.lookup("localhost", 8080).expect("queued")).expect("resolved");
        assert!(
            addrs
                .iter()
                .all(|a| a.port() == 8080 && a.ip().is_loopback())
        );
        assert!(matches!(
            block_on(pool.lookup("no-such-host.invalid", 1).expect("queued")),
            Err(LookupError::Failed { .. } | LookupError::NoAddresses { .. })
        ));
        // A lookup nobody awaits any more, then the pool itself dropped with one pending: the
        // waiter gets an answer either way, and nothing panics.
        drop(pool.lookup("localhost", 1).expect("queued"));
        let pending = pool.lookup("localhost", 2).expect("queued");
        drop(pool);
        let outcome = block_on(pending);
        assert!(
            matches!(outcome, Ok(_) | Err(LookupError::Stopped)),
            "{outcome:?}"
        );
    }
}
