//! The thread pool (`defer_to_thread`): values computed on a worker and delivered to a task
//! on the calling core, on both backends; a full queue refuses jobs at once (`Busy`) and
//! takes them again once it drains; a panicking job is an error, not a dead worker; a
//! future dropped before its job ran skips the job; a runtime's cores share its pool.
//!
//! Nothing sleeps: blocked jobs wait on channels the test controls, and every wait is
//! bounded by `common::LIMIT`.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use common::{Running, available, recv, wait};
use ringwork::platform::BackendChoice;
use ringwork::{Runtime, ThreadPool, ThreadPoolError};

/// A pool that never gets a job holds no queue: the bounded channel writes every slot when
/// made (24 KiB for 1,024 jobs), so it is made with the workers, at the first job (a
/// server's pools may stay idle; issue 16's start RSS).
#[test]
fn an_unused_pool_holds_no_queue() {
    let info = allocation_counter::measure(|| {
        let pool = ThreadPool::new(4, 1024);
        std::hint::black_box(&pool);
    });
    assert!(info.bytes_max < 1024, "an unused pool allocated {info:?}");
}

ringwork::platform::test_all_backends! {
    fn values_come_back_to_the_calling_core(backend: BackendChoice) {
        let Some(mut reactor) = common::reactor(backend) else { return };
        let core = thread::current().id();
        let job = reactor
            .defer_to_thread(move || (thread::current().id(), 6 * 7))
            .expect("queued");
        let got = Rc::new(RefCell::new(None));
        let slot = Rc::clone(&got);
        reactor.spawn_local(async move {
            let (worker, value) = job.await.expect("the job's value");
            // The task resumes on the core's thread.
            *slot.borrow_mut() = Some((worker, value, thread::current().id()));
        });
        wait(&mut reactor, |_| got.borrow().is_some(), || "the job's value".into());
        let (worker, value, resumed) = got.borrow_mut().take().expect("value");
        assert_eq!(value, 42);
        assert_ne!(worker, core, "the job ran on a worker");
        assert_eq!(resumed, core, "the value was delivered on the core");
    }

    fn a_panicking_job_is_an_error(backend: BackendChoice) {
        common::quiet_panics("job panic (test)");
        let Some(mut reactor) = common::reactor(backend) else { return };
        let pool = ThreadPool::new(1, 4);
        let bad = pool.spawn(|| -> u32 { panic!("job panic (test)") }).expect("queued");
        let good = pool.spawn(|| 7u32).expect("queued");
        let got = Rc::new(RefCell::new(Vec::new()));
        let out = Rc::clone(&got);
        reactor.spawn_local(async move {
            let bad = bad.await;
            let good = good.await;
            out.borrow_mut().push((bad, good));
        });
        wait(&mut reactor, |_| !got.borrow().is_empty(), || "both jobs".into());
        let (bad, good) = got.borrow_mut().pop().expect("results");
        assert!(matches!(bad, Err(ThreadPoolError::Panicked { message }) if message.contains("job panic")));
        assert_eq!(good, Ok(7), "the worker survived the panic");
    }
}

#[test]
fn a_full_queue_refuses_jobs_until_it_drains() {
    let pool = ThreadPool::new(1, 2);
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (release_tx, release) = crossbeam_channel::unbounded::<()>();
    let ran = Arc::new(AtomicUsize::new(0));
    // The only worker blocks in the first job; two more fill the queue.
    let blocker = {
        let release = release.clone();
        pool.spawn(move || {
            let _ = started_tx.send(());
            let _ = release.recv();
        })
        .expect("queued")
    };
    recv(&started, "the first job to start");
    let counter = |ran: &Arc<AtomicUsize>| {
        let ran = Arc::clone(ran);
        move || ran.fetch_add(1, Ordering::SeqCst)
    };
    let skipped = pool.spawn(counter(&ran)).expect("queued");
    let second = pool.spawn(counter(&ran)).expect("queued");
    assert_eq!(pool.queued(), 2);
    let full = pool.spawn(counter(&ran));
    assert!(
        matches!(full, Err(ThreadPoolError::Busy { limit: 2 })),
        "{full:?}"
    );
    // Nobody waits for this one any more: the worker skips it.
    drop(skipped);
    release_tx.send(()).expect("release");
    let (tx, done) = crossbeam_channel::unbounded();
    thread::spawn(move || {
        let _ = tx.send(block_on(second));
    });
    assert_eq!(
        recv(&done, "the second job"),
        Ok(0),
        "the dropped job was skipped"
    );
    drop(block_on(blocker));
    // Room again.
    let again = pool.spawn(counter(&ran)).expect("queued once drained");
    assert_eq!(block_on(again), Ok(1));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[test]
fn a_runtimes_cores_share_its_pool() {
    for backend in [BackendChoice::Uring, BackendChoice::Poll] {
        if !available(backend) {
            continue;
        }
        let runtime = Runtime::builder()
            .cores(2)
            .pin(false)
            .backend(backend)
            .thread_pool(3, 8)
            .build()
            .expect("runtime");
        let (tx, results) = crossbeam_channel::unbounded();
        let running = Running::start(runtime, move |reactor| {
            assert_eq!(reactor.thread_pool().threads(), 3);
            let core = reactor.core_index();
            let job = reactor.defer_to_thread(move || core * 10).expect("queued");
            let tx = tx.clone();
            reactor.spawn_local(async move {
                let _ = tx.send(job.await);
            });
            Ok(())
        });
        let mut got = vec![
            recv(&results, "a core's job").expect("value"),
            recv(&results, "the other core's job").expect("value"),
        ];
        got.sort_unstable();
        assert_eq!(got, [0, 10]);
        running.handle.shutdown(std::time::Duration::ZERO);
        running.join().expect("stopped");
    }
}

/// Polls `future` to completion on this thread (parks between wakes).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}
