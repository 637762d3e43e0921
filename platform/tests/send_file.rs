//! File ranges sent by the kernel (`Driver::send_file`), on every backend (Linux).
//!
//! Proves: file ranges and bytes queued around them reach the peer byte for byte in the
//! order queued (8 MiB of file between memory bytes, then a second range, then a
//! shutdown), with `FileSent` counting every file byte and `Sent` never counting them; a
//! peer that does not read stops the sending without the range being read into memory,
//! and everything arrives once it reads; a file that ends before its range (truncated)
//! fails the send with `UnexpectedEof` after the bytes it had; `send_file` is refused
//! for a socket that no longer sends; and bytes queued just before a range (a response
//! head) leave in one TCP segment with the range's first bytes (`MSG_MORE`, as nginx's
//! `tcp_nopush`).
#![cfg(target_os = "linux")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ringwork_platform::{
    BackendChoice, Completion, DriverConfig, SocketId, test_all_backends, testing,
};

use common::{accept_one, drive, pattern};

const FILE_LEN: usize = 8 * 1024 * 1024;

/// A temporary file holding `bytes` (removed at once: the open descriptor keeps it).
fn temp_file(name: &str, bytes: &[u8]) -> Arc<std::fs::File> {
    // Tests run in parallel in one process: a name per call.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{name}-{n}");
    let path =
        std::env::temp_dir().join(format!("ringwork-send-file-{}-{name}", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("write the file");
    let file = std::fs::File::open(&path).expect("open the file");
    std::fs::remove_file(&path).expect("remove the file");
    Arc::new(file)
}

#[derive(Default)]
struct Progress {
    file_sent: u64,
    sent: usize,
    file_queued: Option<u64>,
    shut: bool,
    error: Option<std::io::Error>,
}

fn reader(mut stream: std::net::TcpStream) -> thread::JoinHandle<(Vec<u8>, Option<ErrorKind>)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    thread::spawn(move || {
        let mut got = Vec::new();
        let error = stream.read_to_end(&mut got).err().map(|e| e.kind());
        (got, error)
    })
}

fn handle(p: &mut Progress, c: Completion) {
    match c {
        Completion::FileSent {
            bytes, file_queued, ..
        } => {
            p.file_sent += bytes;
            p.file_queued = Some(file_queued);
        }
        Completion::Sent { bytes, .. } => p.sent += bytes,
        Completion::ShutdownDone { result, .. } => {
            result.expect("shutdown");
            p.shut = true;
        }
        Completion::SendError { error, .. } => p.error = Some(error.source),
        c => panic!("unexpected {c:?}"),
    }
}

/// TCP_INFO's count of segments with data that `stream` received.
fn data_segments_in(stream: &std::net::TcpStream) -> u32 {
    // SAFETY: tcp_info is plain old data; zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid descriptor; `info` and `len` are live locals and the kernel writes at
    // most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    assert_eq!(r, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_data_segs_in
}

test_all_backends! {
    fn a_head_and_its_range_leave_in_one_segment(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let (mut outside, id) = accept_one(&mut driver);
        let content = pattern(10, 1000);
        let file = temp_file("one-segment", &content);
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n";
        assert!(driver.send(id, head.as_slice().into()));
        driver.send_file(id, file, 0, content.len() as u64).expect("send_file");
        let mut progress = Progress::default();
        drive(
            &mut driver,
            &mut progress,
            |_, p, c| handle(p, c),
            |_, p| p.file_sent == content.len() as u64 || p.error.is_some(),
            |_, p| format!("file bytes sent {}", p.file_sent),
        );
        assert!(progress.error.is_none(), "send failed: {:?}", progress.error);
        let mut got = vec![0; head.len() + content.len()];
        outside
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        outside.read_exact(&mut got).expect("read head and range");
        assert!(got[..head.len()] == head[..] && got[head.len()..] == content[..]);
        // Without MSG_MORE on the head (TCP_NODELAY is on) it leaves alone: two segments.
        assert_eq!(data_segments_in(&outside), 1, "the head left in a segment of its own");
    }

    fn file_ranges_and_bytes_arrive_in_the_order_queued(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let (outside, id) = accept_one(&mut driver);
        let content = pattern(7, FILE_LEN);
        let file = temp_file("order", &content);
        let range = 1000..FILE_LEN - 3;
        assert!(driver.send(id, b"HEAD".as_slice().into()));
        driver
            .send_file(id, Arc::clone(&file), range.start as u64, range.len() as u64)
            .expect("send_file");
        assert!(driver.send(id, b"MID".as_slice().into()));
        driver.send_file(id, Arc::clone(&file), 0, 100).expect("send_file");
        assert!(driver.send(id, b"TAIL".as_slice().into()));
        assert!(driver.shutdown_write(id));
        assert_eq!(driver.send_file_queued(id), Some(range.len() as u64 + 100));
        let peer = reader(outside);
        let mut progress = Progress::default();
        drive(
            &mut driver,
            &mut progress,
            |_, p, c| handle(p, c),
            |_, p| p.shut || p.error.is_some(),
            |_, p| format!("file bytes sent {}", p.file_sent),
        );
        assert!(progress.error.is_none(), "send failed: {:?}", progress.error);
        assert_eq!(progress.file_sent, range.len() as u64 + 100);
        assert_eq!(progress.file_queued, Some(0));
        assert_eq!(progress.sent, 4 + 3 + 4, "Sent counts bytes in memory only");
        let (got, error) = peer.join().expect("reader");
        assert_eq!(error, None);
        let mut expected = b"HEAD".to_vec();
        expected.extend_from_slice(&content[range]);
        expected.extend_from_slice(b"MID");
        expected.extend_from_slice(&content[..100]);
        expected.extend_from_slice(b"TAIL");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes differ");
    }

    fn a_peer_that_does_not_read_holds_the_range_back(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let (outside, id) = accept_one(&mut driver);
        // Bigger than any socket buffer pair on loopback (a few MiB at most).
        let content = pattern(8, 2 * FILE_LEN);
        let file = temp_file("slow", &content);
        driver.send_file(id, file, 0, content.len() as u64).expect("send_file");
        // Turn until the socket is full: sendfile stops and no progress comes.
        let mut progress = Progress::default();
        let mut idle_turns = 0;
        drive(
            &mut driver,
            &mut progress,
            |_, p, c| handle(p, c),
            |driver, p| {
                let before = p.file_sent;
                let timer = driver.timer(std::time::Instant::now() + Duration::from_millis(20));
                let mut out = Vec::new();
                // One timed turn: progress or the timer.
                driver.turn(Some(Duration::from_secs(5)), &mut out).expect("turn");
                for c in out {
                    match c {
                        Completion::Timer { .. } => {}
                        c => handle(p, c),
                    }
                }
                driver.cancel_timer(timer);
                idle_turns = if p.file_sent == before { idle_turns + 1 } else { 0 };
                idle_turns >= 3
            },
            |_, p| format!("file bytes sent {}", p.file_sent),
        );
        let queued = driver.send_file_queued(id).expect("open");
        assert!(queued > 0, "the whole range went out to a peer that did not read");
        assert_eq!(queued + progress.file_sent, content.len() as u64);
        assert_eq!(driver.send_queued(id), Some(0), "nothing was read into memory");
        // The peer reads: everything arrives.
        assert!(driver.shutdown_write(id));
        let peer = reader(outside);
        drive(
            &mut driver,
            &mut progress,
            |_, p, c| match c {
                Completion::Timer { .. } => {}
                c => handle(p, c),
            },
            |_, p| p.shut || p.error.is_some(),
            |_, p| format!("file bytes sent {}", p.file_sent),
        );
        assert!(progress.error.is_none(), "send failed: {:?}", progress.error);
        let (got, error) = peer.join().expect("reader");
        assert_eq!(error, None);
        assert!(got == content, "bytes differ");
    }

    fn a_file_shorter_than_its_range_fails_the_send(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let (outside, id) = accept_one(&mut driver);
        let content = pattern(9, 1024 * 1024);
        let file = temp_file("short", &content);
        // As if truncated after the response head announced 2 MiB.
        driver.send_file(id, file, 0, 2 * content.len() as u64).expect("send_file");
        let peer = reader(outside);
        let mut progress = Progress::default();
        drive(
            &mut driver,
            &mut progress,
            |_, p, c| handle(p, c),
            |_, p| p.error.is_some(),
            |_, p| format!("file bytes sent {}", p.file_sent),
        );
        let error = progress.error.expect("send error");
        assert_eq!(error.kind(), ErrorKind::UnexpectedEof, "{error}");
        assert_eq!(progress.file_sent, content.len() as u64);
        assert_eq!(driver.send_file_queued(id), Some(0), "the queue is dropped");
        let _ = driver.send(id, b"more".as_slice().into());
        assert!(driver.close(id));
        common::settle(&mut driver, 0);
        let (got, _) = peer.join().expect("reader");
        assert!(got == content, "the peer got other bytes than the file's");
    }

    fn a_socket_that_no_longer_sends_refuses(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let (_outside, id) = accept_one(&mut driver);
        let file = temp_file("refused", b"x");
        assert!(driver.shutdown_write(id));
        let error = driver.send_file(id, Arc::clone(&file), 0, 1).expect_err("refused");
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        let gone = SocketId::from_parts(99, 0);
        assert!(driver.send_file(gone, file, 0, 1).is_err());
    }
}
