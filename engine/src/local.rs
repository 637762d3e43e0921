//! [`LocalHandle`]: how futures (and callbacks) on a core reach its reactor.
//!
//! Owns: a same-thread queue of closures to run on the reactor and futures to spawn on its
//! executor. The reactor drains it after callbacks and task polls, within the same turn, and
//! never blocks while it holds work.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::executor::{Deferred, JoinHandle};
use crate::protocol::ConnId;
use crate::reactor::Reactor;

type Job = Box<dyn FnOnce(&mut Reactor)>;
type Task = Pin<Box<dyn Future<Output = ()>>>;

#[derive(Default)]
pub(crate) struct LocalQueue {
    pub(crate) jobs: Vec<Job>,
    pub(crate) spawns: Vec<Task>,
    /// Connections whose protocol gets [`Protocol::woken`](crate::Protocol::woken).
    pub(crate) wakes: Vec<ConnId>,
}

/// A cheap, cloneable handle to this core's reactor for code that cannot borrow it: futures
/// spawned with [`LocalHandle::spawn_local`] and values kept by protocols. `!Send`: it works
/// on its core's thread only (use [`Cores`](crate::Cores) to reach other cores).
#[derive(Clone, Default)]
pub struct LocalHandle {
    pub(crate) queue: Rc<RefCell<LocalQueue>>,
}

impl LocalHandle {
    /// Runs `f` on the reactor after the current callback or task poll, in the same turn.
    pub fn run(&self, f: impl FnOnce(&mut Reactor) + 'static) {
        self.queue.borrow_mut().jobs.push(Box::new(f));
    }

    /// Calls [`Protocol::woken`](crate::Protocol::woken) on connection `conn`'s protocol after
    /// the current callback or task poll, in the same turn: how code that holds no borrow of
    /// a protocol (a future, a value handed to a handler, another connection's callback) asks
    /// it to look at work queued for it. Each call is one `woken` callback (coalesce on your
    /// side when that matters); a connection that is gone, or is lost by then, gets none.
    pub fn wake(&self, conn: ConnId) {
        self.queue.borrow_mut().wakes.push(conn);
    }

    /// Spawns a future on this core's executor. It is first polled in this turn, after the
    /// current callback or task poll.
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let (deferred, resolver) = Deferred::new();
        self.queue
            .borrow_mut()
            .spawns
            .push(Box::pin(async move { resolver.resolve(future.await) }));
        JoinHandle::from_deferred(deferred)
    }

    /// A [`Deferred`] that resolves once `delay` has passed (counted from this call), on
    /// this core's timer wheel: how a future waits (`handle.sleep(d).await`). Dropping it
    /// does not cancel the wheel entry; it is discarded when due.
    #[must_use]
    pub fn sleep(&self, delay: Duration) -> Deferred<()> {
        let at = crate::timers::deadline(Instant::now(), delay);
        let (deferred, resolver) = Deferred::new();
        self.run(move |reactor| reactor.sleep_until(at, resolver));
        deferred
    }

    pub(crate) fn is_idle(&self) -> bool {
        let queue = self.queue.borrow();
        queue.jobs.is_empty() && queue.spawns.is_empty() && queue.wakes.is_empty()
    }
}
