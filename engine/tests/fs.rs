//! The file API (`LocalHandle::files`) on both backends: open, stat, positioned reads into
//! owned buffers (short at the end, exact reads failing past it), close, errors with the
//! path; a read blocked on its worker leaves the core free (timers fire, other files are
//! read) and a dropped read's buffer stays with its worker until the read returns.
//!
//! Nothing sleeps: blocked reads wait on a gate the test opens, and every wait is bounded
//! by `common::LIMIT`.

mod common;

use std::cell::RefCell;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use common::{pattern, recv, wait};
use ringwork::platform::{BackendChoice, DriverConfig};
use ringwork::{Reactor, ReactorConfig};

/// A file of `len` pattern bytes in a fresh directory (removed when dropped).
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str, len: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ringwork-fs-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data.bin"), pattern(len)).unwrap();
        Self(dir)
    }

    fn file(&self) -> std::path::PathBuf {
        self.0.join("data.bin")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

ringwork::platform::test_all_backends! {
    fn open_stat_read_close(backend: BackendChoice) {
        for reactor in reactors(backend) {
            open_stat_read_close_on(reactor);
        }
    }

    fn errors_name_the_failure(backend: BackendChoice) {
        for reactor in reactors(backend) {
            errors_name_the_failure_on(reactor);
        }
    }

    /// The core goes on while a read is stuck: a timer fires and another file is read
    /// in full, then the stuck read completes with the right bytes once released.
    fn a_blocked_read_leaves_the_core_free(backend: BackendChoice) {
        for reactor in reactors(backend) {
            a_blocked_read_leaves_the_core_free_on(reactor);
        }
    }

    /// A read whose future is dropped while it runs: its worker still owns the buffer and
    /// the file, finishes the read and drops them there; the core is not disturbed.
    fn a_dropped_read_keeps_its_buffer_until_it_returns(backend: BackendChoice) {
        for reactor in reactors(backend) {
            a_dropped_read_keeps_its_buffer_until_it_returns_on(reactor);
        }
    }

    /// A dropped file is closed on the pool: with one worker, a job queued after the drop
    /// runs after the close, and the process then holds no descriptor for the file.
    fn a_dropped_file_is_closed_on_the_pool(backend: BackendChoice) {
        for reactor in reactors(backend) {
            a_dropped_file_is_closed_on_the_pool_on(reactor);
        }
    }

    /// Under io_uring, reads go to the ring (no pool job), and a read whose future is
    /// dropped while the kernel has it is forgotten: its buffer stays with the driver
    /// until the completion, which is not delivered; the core reads on afterwards.
    fn a_dropped_ring_read_is_forgotten(backend: BackendChoice) {
        let Some(mut reactor) = common::reactor(backend) else { return };
        if !reactor.handle().files().in_ring() {
            return; // poll: no ring (the pool tests above cover it)
        }
        let scratch = Scratch::new("ring-drop", 4 << 20);
        let files = reactor.handle().files();
        let path = scratch.file();
        type Read = Pin<Box<dyn Future<Output = std::io::Result<BytesMut>>>>;
        let started: Rc<RefCell<Option<Read>>> = Rc::default();
        let slot = Rc::clone(&started);
        reactor.spawn_local(async move {
            let file = files.open(path).await.expect("open");
            let mut read: Read =
                Box::pin(async move { file.read_at(BytesMut::with_capacity(4 << 20), 0).await });
            std::future::poll_fn(|cx| {
                assert!(read.as_mut().poll(cx).is_pending(), "submitted, not done");
                Poll::Ready(())
            })
            .await;
            *slot.borrow_mut() = Some(read);
        });
        wait(&mut reactor, |_| started.borrow().is_some(), || "the read submitted".into());
        assert_eq!(reactor.file_ops_waiting(), 1, "the read waits in the ring");
        drop(started.borrow_mut().take());
        wait(
            &mut reactor,
            |r| r.file_ops_in_flight() == 0 && r.file_ops_waiting() == 0,
            || "the forgotten read to leave the ring".into(),
        );
        // The core reads on.
        let files = reactor.handle().files();
        let path = scratch.file();
        let got = Rc::new(RefCell::new(None));
        let out = Rc::clone(&got);
        reactor.spawn_local(async move {
            let file = files.open(path).await.expect("open");
            *out.borrow_mut() = Some(file.read_exact_at(10, 4 << 19).await.expect("read"));
        });
        wait(&mut reactor, |_| got.borrow().is_some(), || "a later read".into());
        assert_eq!(&got.borrow().as_ref().unwrap()[..], &pattern(4 << 20)[2 << 20..(2 << 20) + 10]);
    }
}

/// The reactors a test runs on: under io_uring, one whose files go through the ring and one
/// whose driver pretends to have no file operations (the pool fallback); under poll, one
/// (the pool).
fn reactors(backend: BackendChoice) -> Vec<Reactor> {
    let Some(reactor) = common::reactor(backend) else {
        return Vec::new();
    };
    let mut all = vec![reactor];
    if backend == BackendChoice::Uring {
        let driver = DriverConfig {
            backend,
            simulate_no_file_ops: true,
            ..DriverConfig::default()
        };
        all.push(Reactor::new(ReactorConfig::default(), driver).expect("a reactor"));
    }
    all
}

/// Which path the reactor's files take, checked against its backend.
fn describe(reactor: &Reactor) -> &'static str {
    let in_ring = reactor.handle().files().in_ring();
    let uring = reactor.backend() == ringwork::platform::BackendKind::Uring;
    if !uring {
        assert!(!in_ring, "no ring under poll");
    }
    if in_ring {
        "uring, in the ring"
    } else if uring {
        "uring, pool fallback"
    } else {
        "poll, pool"
    }
}

fn open_stat_read_close_on(mut reactor: Reactor) {
    eprintln!("files: {}", describe(&reactor));
    let scratch = Scratch::new("basic", 100_000);
    let files = reactor.handle().files();
    let path = scratch.file();
    let got = Rc::new(RefCell::new(None));
    let out = Rc::clone(&got);
    reactor.spawn_local(async move {
        let stat = files.metadata(path.clone()).await.expect("stat");
        let file = files.open(path).await.expect("open");
        let fstat = file.metadata().await.expect("fstat");
        // A buffer with bytes already in it: the read appends.
        let mut buf = BytesMut::with_capacity(1000);
        buf.extend_from_slice(b"head");
        let middle = file.read_at(buf, 5000).await.expect("read");
        // At the end: short, then empty.
        let tail = file
            .read_at(BytesMut::with_capacity(4096), 99_000)
            .await
            .expect("tail");
        let past = file
            .read_at(BytesMut::with_capacity(16), 100_000)
            .await
            .expect("past");
        let exact = file.read_exact_at(64 * 1024, 1).await.expect("exact");
        let short = file
            .read_exact_at(10, 99_995)
            .await
            .expect_err("past the end");
        file.close().await.expect("close");
        *out.borrow_mut() = Some((stat.len(), fstat.len(), middle, tail, past, exact, short));
    });
    wait(
        &mut reactor,
        |_| got.borrow().is_some(),
        || "the file operations".into(),
    );
    let (len, flen, middle, tail, past, exact, short) = got.borrow_mut().take().unwrap();
    let want = pattern(100_000);
    assert_eq!((len, flen), (100_000, 100_000));
    assert_eq!(&middle[..4], b"head");
    assert_eq!(&middle[4..], &want[5000..5996]);
    assert_eq!(&tail[..], &want[99_000..]);
    assert!(past.is_empty(), "a read at the end is empty");
    assert_eq!(&exact[..], &want[1..=64 * 1024]);
    assert_eq!(short.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(short.to_string().contains("data.bin"), "{short}");
}

fn errors_name_the_failure_on(mut reactor: Reactor) {
    eprintln!("files: {}", describe(&reactor));
    let scratch = Scratch::new("errors", 1);
    let files = reactor.handle().files();
    let missing = scratch.0.join("missing");
    let dir = scratch.0.clone();
    let got = Rc::new(RefCell::new(None));
    let out = Rc::clone(&got);
    reactor.spawn_local(async move {
        let open = files
            .open(missing.clone())
            .await
            .map(|_| ())
            .expect_err("missing");
        let stat = files
            .metadata(missing)
            .await
            .map(|_| ())
            .expect_err("missing");
        // A directory opens, but reading it fails (EISDIR).
        let opened = files.open(dir).await.expect("a directory opens read-only");
        let read = opened
            .read_at(BytesMut::with_capacity(8), 0)
            .await
            .expect_err("EISDIR");
        *out.borrow_mut() = Some((open.kind(), stat.kind(), read));
    });
    wait(
        &mut reactor,
        |_| got.borrow().is_some(),
        || "the errors".into(),
    );
    let (open, stat, read) = got.borrow_mut().take().unwrap();
    assert_eq!(open, std::io::ErrorKind::NotFound);
    assert_eq!(stat, std::io::ErrorKind::NotFound);
    assert!(read.to_string().contains("reading"), "{read}");
}

fn a_blocked_read_leaves_the_core_free_on(mut reactor: Reactor) {
    eprintln!("files: {}", describe(&reactor));
    let scratch = Scratch::new("blocked", 10_000);
    let (entered_tx, entered) = crossbeam_channel::unbounded::<u64>();
    let (gate_tx, gate) = crossbeam_channel::unbounded::<()>();
    let hook: ringwork::fs::ReadHook = Arc::new(move |_path: &Path, offset: u64| {
        if offset == 7 {
            entered_tx.send(offset).unwrap();
            let _ = gate.recv_timeout(common::LIMIT);
        }
    });
    let handle = reactor.handle();
    let files = handle.files().with_read_hook(Some(hook));
    let path = scratch.file();
    let opened = Rc::new(RefCell::new(None));
    let opened_out = Rc::clone(&opened);
    let open_files = files.clone();
    let slow_path = path.clone();
    reactor.spawn_local(async move {
        *opened_out.borrow_mut() = Some(open_files.open(slow_path).await.expect("open"));
    });
    wait(
        &mut reactor,
        |_| opened.borrow().is_some(),
        || "the slow file opened".into(),
    );
    let file = opened.borrow_mut().take().unwrap();
    let slow = Rc::new(RefCell::new(None));
    let slow_out = Rc::clone(&slow);
    reactor.spawn_local(async move {
        let bytes = file.read_exact_at(100, 7).await.expect("the slow read");
        *slow_out.borrow_mut() = Some(bytes);
    });
    common::turn_now(&mut reactor); // polls the task: the read is queued
    recv(&entered, "the slow read reached its worker");
    // While it is stuck: a timer and a whole other read.
    let fired = Rc::new(RefCell::new(false));
    let flag = Rc::clone(&fired);
    handle.call_later(Duration::from_millis(1), move |_| *flag.borrow_mut() = true);
    let fast = Rc::new(RefCell::new(None));
    let fast_out = Rc::clone(&fast);
    reactor.spawn_local(async move {
        let file = files.open(path).await.expect("open");
        *fast_out.borrow_mut() = Some(file.read_exact_at(10_000, 0).await.expect("read"));
    });
    wait(
        &mut reactor,
        |_| *fired.borrow() && fast.borrow().is_some(),
        || "a timer and a fast read while a read is stuck".into(),
    );
    assert!(slow.borrow().is_none(), "the slow read is still stuck");
    gate_tx.send(()).unwrap();
    wait(
        &mut reactor,
        |_| slow.borrow().is_some(),
        || "the released read".into(),
    );
    assert_eq!(
        &slow.borrow().as_ref().unwrap()[..],
        &pattern(10_000)[7..107]
    );
}

fn a_dropped_read_keeps_its_buffer_until_it_returns_on(mut reactor: Reactor) {
    eprintln!("files: {}", describe(&reactor));
    let scratch = Scratch::new("dropped", 4096);
    let (entered_tx, entered) = crossbeam_channel::unbounded::<()>();
    let (gate_tx, gate) = crossbeam_channel::unbounded::<()>();
    let (done_tx, done) = crossbeam_channel::unbounded::<()>();
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    let hook: ringwork::fs::ReadHook = Arc::new(move |_path: &Path, _offset: u64| {
        counted.fetch_add(1, Ordering::SeqCst);
        entered_tx.send(()).unwrap();
        let _ = gate.recv_timeout(common::LIMIT);
        done_tx.send(()).unwrap();
    });
    let files = reactor.handle().files().with_read_hook(Some(hook));
    let path = scratch.file();
    type Read = Pin<Box<dyn Future<Output = std::io::Result<BytesMut>>>>;
    let started: Rc<RefCell<Option<Read>>> = Rc::default();
    let slot = Rc::clone(&started);
    reactor.spawn_local(async move {
        let file = files.open(path).await.expect("open");
        let mut read: Read =
            Box::pin(async move { file.read_at(BytesMut::with_capacity(4096), 0).await });
        // Polled once (the read is submitted), then handed to the test to drop.
        std::future::poll_fn(|cx| {
            assert!(
                read.as_mut().poll(cx).is_pending(),
                "the read is stuck on its gate"
            );
            Poll::Ready(())
        })
        .await;
        *slot.borrow_mut() = Some(read);
    });
    wait(
        &mut reactor,
        |_| started.borrow().is_some(),
        || "the read submitted".into(),
    );
    recv(&entered, "the read reached its worker");
    drop(started.borrow_mut().take()); // the read's future, the file and all, mid-read
    common::turn_now(&mut reactor);
    gate_tx.send(()).unwrap();
    recv(&done, "the orphaned read returned on its worker");
    common::turn_now(&mut reactor);
    assert_eq!(reads.load(Ordering::SeqCst), 1);
}

fn a_dropped_file_is_closed_on_the_pool_on(mut reactor: Reactor) {
    eprintln!("files: {}", describe(&reactor));
    let scratch = Scratch::new("close", 10);
    let files = ringwork::fs::Files::new(ringwork::ThreadPool::new(1, 16));
    let path = scratch.file();
    let counts = Rc::new(RefCell::new(None));
    let out = Rc::clone(&counts);
    reactor.spawn_local(async move {
        let file = files.open(path.clone()).await.expect("open");
        let target = path.clone();
        let open = files
            .run(move || Ok(descriptors_of(&target)))
            .await
            .unwrap();
        drop(file);
        let closed = files.run(move || Ok(descriptors_of(&path))).await.unwrap();
        *out.borrow_mut() = Some((open, closed));
    });
    wait(
        &mut reactor,
        |_| counts.borrow().is_some(),
        || "the descriptor counts".into(),
    );
    assert_eq!(counts.borrow_mut().take(), Some((1, 0)));
}

/// How many of this process's descriptors name `path`.
fn descriptors_of(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}
