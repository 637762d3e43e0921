//! [`LookupPool`]: name resolution off the reactor, on a few blocking threads.
//!
//! Owns: the lookup job (`ToSocketAddrs`, the system resolver, `getaddrinfo`) and the
//! mapping of a [`ThreadPool`]'s errors to [`LookupError`].
//! Contract: [`LookupPool::lookup`] never blocks: it queues a job on its thread pool (or
//! fails at once with [`LookupError::Busy`] when the queue is full) and returns a future,
//! woken from the worker thread — a wake the engine's executor supports. A future dropped
//! before its job ran makes the worker skip it; a result for a future that is gone is
//! dropped. The pool's workers exit once every clone of it is dropped (see
//! [`ThreadPool`]).
//! Does not: cache, or bound the time of one lookup (the system resolver's own timeouts
//! apply; callers set their own deadline).
//!
//! It lives in the engine because it owns threads (protocols own none, see STYLE.md); the
//! default name resolver ([`SystemResolver`](crate::names::SystemResolver), behind every
//! connect by name) runs its lookups. It is one user of
//! [`ThreadPool`]: [`LookupPool::with_pool`] shares a runtime's pool with other blocking
//! work.

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::threads::{ThreadPool, ThreadPoolError, ThreadResult};

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

/// Name lookups on a pool of threads with a bounded queue. Cheap to clone and `Send`: one
/// pool can serve every core.
#[derive(Clone, Debug)]
pub struct LookupPool {
    pool: ThreadPool,
}

impl LookupPool {
    /// Lookups on their own pool of `threads` workers (at least one, named `ringwork-dns-N`)
    /// with room for `queue` pending lookups.
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Self> {
        Ok(Self::with_pool(ThreadPool::named(
            "ringwork-dns",
            threads,
            queue,
        )))
    }

    /// Lookups as jobs of `pool` (a runtime's [`ThreadPool`], shared with other work).
    #[must_use]
    pub fn with_pool(pool: ThreadPool) -> Self {
        Self { pool }
    }

    /// Queues a lookup of `host` (a name or an IP literal) with `port`.
    ///
    /// # Errors
    /// [`LookupError::Busy`] when the queue is full, [`LookupError::Stopped`] when the
    /// workers are gone or cannot start.
    pub fn lookup(&self, host: &str, port: u16) -> Result<Lookup, LookupError> {
        let host = host.to_owned();
        match self.pool.spawn(move || resolve(&host, port)) {
            Ok(result) => Ok(Lookup { result }),
            Err(ThreadPoolError::Busy { limit }) => Err(LookupError::Busy { limit }),
            Err(_) => Err(LookupError::Stopped),
        }
    }
}

/// The system resolver's answer for `host`:`port`.
fn resolve(host: &str, port: u16) -> Outcome {
    match (host, port).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(LookupError::NoAddresses {
                    host: host.to_owned(),
                })
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(LookupError::Failed {
            host: host.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The future of one lookup: the addresses, or why there are none.
///
/// # Cancellation
/// Dropping it before the lookup ran makes the worker skip it.
pub struct Lookup {
    result: ThreadResult<Outcome>,
}

impl Future for Lookup {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        Pin::new(&mut self.result).poll(cx).map(|done| match done {
            Ok(outcome) => outcome,
            Err(ThreadPoolError::Panicked { message }) => Err(LookupError::Failed {
                host: String::new(),
                reason: format!("the resolver panicked: {message}"),
            }),
            Err(_) => Err(LookupError::Stopped),
        })
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
