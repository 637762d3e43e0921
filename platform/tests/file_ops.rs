//! File operations through the driver (`Driver::file`), on every backend (Linux).
//!
//! Proves: under io_uring (`Capabilities::file_ops`), a file is opened (relative to a
//! directory, and kept beneath it: `..` and a symlink out are refused with EXDEV), stat'ed,
//! read at offsets into the spare capacity of owned buffers (short at the end, empty past
//! it) and closed, each result arriving as `Completion::File` with its id; a forgotten read
//! is not delivered and its memory is kept until the kernel is done; the close closes.
//! Under poll, `Driver::file` refuses with `Unsupported` (callers use threads).
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringwork_platform::{
    BackendChoice, BackendKind, Completion, Driver, DriverConfig, FileDone, FileOpId, FileRequest,
    OpError, test_all_backends, testing,
};

use common::pattern;

const LEN: usize = 300_000;

/// A directory with `data.bin` (LEN pattern bytes), `sub/`, and a symlink out of it.
struct Tree(std::path::PathBuf);

impl Tree {
    fn new(name: &str) -> Self {
        let base = std::env::temp_dir().join(format!(
            "ringwork-file-ops-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("data.bin"), pattern(7, LEN)).unwrap();
        std::fs::write(base.join("outside.txt"), "outside").unwrap();
        let _ = std::os::unix::fs::symlink(base.join("outside.txt"), root.join("out.txt"));
        Self(base)
    }

    fn root(&self) -> std::path::PathBuf {
        self.0.join("root")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Submits `request` and turns until its completion arrives.
fn run(driver: &mut Driver, request: FileRequest) -> Result<FileDone, OpError> {
    let id = driver.file(request).expect("a file operation submitted");
    let mut done = wait_for(driver, &[id]);
    done.remove(&id).expect("its completion")
}

/// Turns until every one of `ids` completed; fails after a bound.
fn wait_for(driver: &mut Driver, ids: &[FileOpId]) -> HashMap<FileOpId, Result<FileDone, OpError>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut done = HashMap::new();
    let mut out = Vec::new();
    while ids.iter().any(|id| !done.contains_key(id)) {
        assert!(Instant::now() < deadline, "file operations still pending");
        driver
            .turn(Some(Duration::from_millis(100)), &mut out)
            .expect("turn");
        for completion in out.drain(..) {
            if let Completion::File { op, result } = completion {
                assert!(
                    done.insert(op, result).is_none(),
                    "one completion per operation"
                );
            }
        }
    }
    done
}

fn open(driver: &mut Driver, dir: &Arc<File>, path: &str) -> Result<File, OpError> {
    let request = FileRequest::Open {
        dir: Some(Arc::clone(dir)),
        path: CString::new(path).unwrap(),
        beneath: true,
        path_only: false,
    };
    match run(driver, request) {
        Ok(FileDone::Opened(file)) => Ok(file),
        Ok(other) => panic!("an open gave {other:?}"),
        Err(error) => Err(error),
    }
}

fn read(driver: &mut Driver, file: &Arc<File>, buf: BytesMut, offset: u64) -> BytesMut {
    let request = FileRequest::Read {
        file: Arc::clone(file),
        buf,
        offset,
    };
    match run(driver, request) {
        Ok(FileDone::Read(buf)) => buf,
        other => panic!("a read gave {other:?}"),
    }
}

test_all_backends! {
    fn open_stat_read_close_in_the_ring(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let tree = Tree::new("basic");
        let dir = Arc::new(File::open(tree.root()).unwrap());
        if driver.backend() == BackendKind::Poll {
            assert!(!driver.capabilities().file_ops);
            let refused = driver
                .file(FileRequest::Stat { file: Arc::clone(&dir) })
                .expect_err("no file operations under poll");
            assert_eq!(refused.kind(), std::io::ErrorKind::Unsupported);
            return;
        }
        assert!(driver.capabilities().file_ops, "{:?}", driver.capabilities().opcodes);
        let file = Arc::new(open(&mut driver, &dir, "data.bin").expect("open data.bin"));
        assert_eq!(descriptors_of(&tree.root().join("data.bin")), 1);
        let Ok(FileDone::Stat(stat)) = run(&mut driver, FileRequest::Stat { file: Arc::clone(&file) })
        else {
            panic!("stat failed")
        };
        let std_meta = std::fs::metadata(tree.root().join("data.bin")).unwrap();
        assert_eq!(stat.len, LEN as u64);
        assert!(stat.is_file() && !stat.is_dir());
        assert_eq!(stat.modified, std_meta.modified().unwrap());
        assert_eq!(stat, ringwork_platform::FileStat::from_metadata(&std_meta));

        let want = pattern(7, LEN);
        // Appended after what the buffer holds, up to its capacity.
        let mut buf = BytesMut::with_capacity(100_000);
        buf.extend_from_slice(b"xy");
        let buf = read(&mut driver, &file, buf, 1000);
        assert_eq!(&buf[..2], b"xy");
        assert_eq!(&buf[2..], &want[1000..1000 + buf.len() - 2]);
        assert!(buf.len() > 2, "the read returned bytes");
        // Short at the end, empty past it.
        let tail = read(&mut driver, &file, BytesMut::with_capacity(4096), LEN as u64 - 10);
        assert_eq!(&tail[..], &want[LEN - 10..]);
        let past = read(&mut driver, &file, BytesMut::with_capacity(16), LEN as u64);
        assert!(past.is_empty());

        // Several reads in flight at once, each with its own buffer.
        let ids: Vec<FileOpId> = (0..8u64)
            .map(|i| {
                let request = FileRequest::Read {
                    file: Arc::clone(&file),
                    buf: BytesMut::with_capacity(4096),
                    offset: i * 4096,
                };
                driver.file(request).expect("submitted")
            })
            .collect();
        let mut done = wait_for(&mut driver, &ids);
        for (i, id) in ids.iter().enumerate() {
            let Ok(FileDone::Read(buf)) = done.remove(id).unwrap() else { panic!("read {i}") };
            assert_eq!(&buf[..], &want[i * 4096..(i + 1) * 4096], "read {i}");
        }

        let file = Arc::try_unwrap(file).expect("no other holder");
        assert!(matches!(run(&mut driver, FileRequest::Close { file }), Ok(FileDone::Closed)));
        assert_eq!(descriptors_of(&tree.root().join("data.bin")), 0, "the file was closed");
    }

    fn open_stays_beneath_its_directory(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        if !driver.capabilities().file_ops {
            return; // poll: covered by the test above
        }
        let tree = Tree::new("beneath");
        let dir = Arc::new(File::open(tree.root()).unwrap());
        let exdev = Some(libc::EXDEV);
        let escape = open(&mut driver, &dir, "../outside.txt").expect_err("..");
        assert_eq!(escape.source.raw_os_error(), exdev, "{escape}");
        let link = open(&mut driver, &dir, "out.txt").expect_err("a symlink out");
        assert_eq!(link.source.raw_os_error(), exdev, "{link}");
        let absolute = open(&mut driver, &dir, "/etc/hostname").expect_err("absolute");
        assert_eq!(absolute.source.raw_os_error(), exdev, "{absolute}");
        let missing = open(&mut driver, &dir, "missing").expect_err("missing");
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        // Inside: a directory opens too (the caller stats it to tell).
        let sub = open(&mut driver, &dir, "sub/../sub").expect("a path inside");
        drop(sub);
    }

    fn a_forgotten_read_is_not_delivered(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        if !driver.capabilities().file_ops {
            return;
        }
        let tree = Tree::new("forgotten");
        let dir = Arc::new(File::open(tree.root()).unwrap());
        let file = Arc::new(open(&mut driver, &dir, "data.bin").expect("open"));
        let forgotten = driver
            .file(FileRequest::Read {
                file: Arc::clone(&file),
                buf: BytesMut::with_capacity(LEN),
                offset: 0,
            })
            .expect("submitted");
        assert!(driver.forget_file(forgotten));
        assert_eq!(driver.file_ops_in_flight(), 1, "its memory is kept until the kernel is done");
        // A later operation completes; the forgotten one never arrives, and its memory
        // (buffer, file) is dropped at its completion.
        let Ok(FileDone::Stat(_)) = run(&mut driver, FileRequest::Stat { file: Arc::clone(&file) })
        else {
            panic!("stat")
        };
        let mut out = Vec::new();
        while driver.file_ops_in_flight() > 0 {
            driver.turn(Some(Duration::from_millis(100)), &mut out).expect("turn");
            assert!(
                !out.iter().any(|c| matches!(c, Completion::File { op, .. } if *op == forgotten)),
                "a forgotten operation was delivered"
            );
        }
        assert_eq!(Arc::strong_count(&file), 1, "the read's hold on the file was dropped");
        assert!(!driver.forget_file(forgotten), "not in flight any more");
    }
}

/// How many of this process's descriptors name `path` (other tests run in parallel: a
/// count of all descriptors would be racy).
fn descriptors_of(path: &std::path::Path) -> usize {
    let path = std::fs::canonicalize(path).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| *target == path)
        .count()
}
