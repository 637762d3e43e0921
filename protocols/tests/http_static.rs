//! `StaticFiles` over real sockets on both backends: contents and types, 404, traversal
//! (plain and percent-encoded) and symlinks out of the root, directory redirects, index
//! files and listings, validators (ETag, Last-Modified) and 304s, ranges (206, suffix,
//! 416), HEAD, and a 5 MiB file that must stream (the server's write buffer limit is set
//! below the file's size, so a file sent whole would kill the connection). A slow file
//! (its reads held by a test hook of the file API) leaves 50 other connections answered
//! while its download is stuck.
//!
//! Bodies from 16 KiB up go out by sendfile(2) (`StaticFiles::SENDFILE_MIN`): the big file,
//! its ranges and pipelined requests arrive identical with it on and with it off (every
//! body read); a file shrunk while it is being sent ends the connection early on both paths
//! (the client sees a short body, never other bytes).
#![cfg(feature = "engine")]

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, mpsc};

use common::{Client, Server, TempDir, pattern};
use ringwork::{BackendChoice, ReactorConfig};
use ringwork_protocols::http::server::ServerConfig;
use ringwork_protocols::http::services::StaticFiles;

const SECRET: &str = "top secret, outside the root";
const BIG: usize = 5 * 1024 * 1024;

/// A served tree under `dir/root`, with `dir/secret.txt` outside it.
fn tree(dir: &TempDir) -> std::path::PathBuf {
    let root = dir.0.join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::create_dir_all(root.join("list")).unwrap();
    fs::write(dir.0.join("secret.txt"), SECRET).unwrap();
    fs::write(root.join("hello.txt"), "hello, static world\n").unwrap();
    fs::write(root.join("style.css"), "body { color: red }\n").unwrap();
    fs::write(root.join("sub/index.html"), "<h1>index</h1>\n").unwrap();
    fs::write(root.join("list/a.txt"), "a").unwrap();
    fs::write(root.join("list/b file.txt"), "b").unwrap();
    fs::write(root.join("digits.txt"), "0123456789".repeat(100)).unwrap();
    fs::write(root.join("big.bin"), pattern(BIG)).unwrap();
    symlink(dir.0.join("secret.txt"), root.join("escape.txt")).unwrap();
    root
}

fn start(backend: BackendChoice, dir: &TempDir) -> Option<Server> {
    start_sendfile(backend, dir, StaticFiles::SENDFILE_MIN)
}

/// [`start`] sending bodies from `sendfile_min` bytes up by sendfile(2).
fn start_sendfile(backend: BackendChoice, dir: &TempDir, sendfile_min: u64) -> Option<Server> {
    let root = tree(dir);
    // Lower than the big file: sending it in one piece would overflow the write buffer.
    let reactor = ReactorConfig {
        write_buffer_limit: 1024 * 1024,
        ..ReactorConfig::default()
    };
    Server::start_with(backend, ServerConfig::default(), reactor, move || {
        StaticFiles::new(&root)
            .expect("serve the root")
            .with_sendfile_min(sendfile_min)
    })
}

/// FNV-1a, to name a body in failure messages.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

ringwork::platform::test_all_backends! {
    fn files_and_types(backend: BackendChoice) {
        let dir = TempDir::new("static-files");
        let Some(server) = start(backend, &dir) else { return };
        let mut client = server.client();
        let resp = client.get("/hello.txt", "");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "hello, static world\n");
        assert!(resp.header("content-type").unwrap().starts_with("text/plain"));
        assert_eq!(resp.header("content-length"), Some("20"));
        assert_eq!(resp.header("accept-ranges"), Some("bytes"));
        let resp = client.get("/style.css", "");
        assert!(resp.header("content-type").unwrap().starts_with("text/css"));
        assert_eq!(client.get("/missing.txt", "").status, 404);
    }

    fn a_refused_upload_gets_405_instead_of_100_continue(backend: BackendChoice) {
        let dir = TempDir::new("static-expect");
        let Some(server) = start(backend, &dir) else { return };
        let mut client = server.client();
        // A client that waits for 100 Continue before sending 2 MB (as curl does).
        client.send(
            "PUT /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\
             Expect: 100-continue\r\n\r\n",
        );
        let resp = client.response();
        assert_eq!(resp.status, 405, "the final answer, not 100 Continue");
        assert_eq!(resp.header("allow"), Some("GET, HEAD"));
        // It will not read a body nobody wants: the connection ends after the answer.
        assert_eq!(resp.header("connection"), Some("close"));
        client.expect_closed();
    }

    fn traversal_and_symlinks_are_refused(backend: BackendChoice) {
        let dir = TempDir::new("static-traversal");
        let Some(server) = start(backend, &dir) else { return };
        for path in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/sub/../../secret.txt",
            "/sub/%2e%2e/%2e%2e/secret.txt",
            "/..%2fsecret.txt",
        ] {
            let mut client = server.client();
            let resp = client.get(path, "");
            assert_eq!(resp.status, 400, "{path}");
            assert!(!resp.text().contains(SECRET), "{path} leaked the file");
        }
        let resp = server.client().get("/escape.txt", "");
        assert_eq!(resp.status, 403);
        assert!(!resp.text().contains(SECRET));
    }

    /// Symlinks that stay inside the root are served, relative or absolute (under io_uring
    /// the confined lookup refuses the absolute one, and the pool's decides); a FIFO is
    /// refused at once (its open would block until a writer came).
    fn symlinks_inside_the_root_and_fifos(backend: BackendChoice) {
        let dir = TempDir::new("static-links");
        let Some(server) = start(backend, &dir) else { return };
        let root = dir.0.join("root");
        symlink("hello.txt", root.join("relative.txt")).unwrap();
        symlink(root.join("hello.txt"), root.join("absolute.txt")).unwrap();
        symlink("../sub", root.join("list/up")).unwrap();
        let made = std::process::Command::new("mkfifo").arg(root.join("pipe.txt")).status();
        assert!(made.is_ok_and(|status| status.success()), "mkfifo");
        let mut client = server.client();
        assert_eq!(client.get("/relative.txt", "").text(), "hello, static world\n");
        assert_eq!(client.get("/absolute.txt", "").text(), "hello, static world\n");
        assert_eq!(client.get("/list/up/", "").text(), "<h1>index</h1>\n");
        assert_eq!(client.get("/pipe.txt", "").status, 403);
        assert_eq!(client.get("/escape.txt", "").status, 403);
    }

    fn directories(backend: BackendChoice) {
        let dir = TempDir::new("static-dirs");
        let Some(server) = start(backend, &dir) else { return };
        let mut client = server.client();
        let resp = client.get("/sub?x=1", "");
        assert_eq!(resp.status, 301);
        assert_eq!(resp.header("location"), Some("/sub/?x=1"));
        let resp = client.get("/sub/", "");
        assert_eq!((resp.status, resp.text().as_str()), (200, "<h1>index</h1>\n"));
        assert!(resp.header("content-type").unwrap().starts_with("text/html"));
        let resp = client.get("/list/", "");
        assert_eq!(resp.status, 200);
        assert!(resp.header("content-type").unwrap().starts_with("text/html"));
        let listing = resp.text();
        assert!(listing.contains("a.txt"), "{listing}");
        assert!(listing.contains("b%20file.txt"), "{listing}");
    }

    fn validators_and_304(backend: BackendChoice) {
        let dir = TempDir::new("static-304");
        let Some(server) = start(backend, &dir) else { return };
        let mut client = server.client();
        let first = client.get("/hello.txt", "");
        let etag = first.header("etag").expect("an ETag").to_owned();
        let modified = first.header("last-modified").expect("Last-Modified").to_owned();
        let resp = client.get("/hello.txt", &format!("If-None-Match: {etag}\r\n"));
        assert_eq!(resp.status, 304);
        assert_eq!(resp.header("etag"), Some(etag.as_str()));
        assert!(resp.body.is_empty());
        let resp = client.get("/hello.txt", &format!("If-Modified-Since: {modified}\r\n"));
        assert_eq!(resp.status, 304);
        let resp = client.get("/hello.txt", "If-None-Match: \"other\"\r\n");
        assert_eq!(resp.status, 200);
        // The connection is still in step after the bodiless 304s.
        assert_eq!(client.get("/hello.txt", "").text(), "hello, static world\n");
    }

    fn ranges(backend: BackendChoice) {
        let dir = TempDir::new("static-ranges");
        let Some(server) = start(backend, &dir) else { return };
        let digits = "0123456789".repeat(100);
        let mut client = server.client();
        let resp = client.get("/digits.txt", "Range: bytes=0-99\r\n");
        assert_eq!(resp.status, 206);
        assert_eq!(resp.header("content-range"), Some("bytes 0-99/1000"));
        assert_eq!(resp.text(), digits[..100]);
        let resp = client.get("/digits.txt", "Range: bytes=-7\r\n");
        assert_eq!(resp.status, 206);
        assert_eq!(resp.header("content-range"), Some("bytes 993-999/1000"));
        assert_eq!(resp.text(), "3456789");
        let resp = client.get("/digits.txt", "Range: bytes=1000-\r\n");
        assert_eq!(resp.status, 416);
        assert_eq!(resp.header("content-range"), Some("bytes */1000"));
        // A range of the streamed file.
        let resp = client.get("/big.bin", "Range: bytes=1000000-2999999\r\n");
        assert_eq!(resp.status, 206);
        assert_eq!(resp.body.len(), 2_000_000);
        assert!(resp.body == pattern(BIG)[1_000_000..3_000_000], "range bytes differ");
    }

    fn head_has_length_and_no_body(backend: BackendChoice) {
        let dir = TempDir::new("static-head");
        let Some(server) = start(backend, &dir) else { return };
        let mut client = server.client();
        for (path, len) in [("/hello.txt", "20"), ("/big.bin", "5242880")] {
            client.send(format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
            let resp = client.response_to(true);
            assert_eq!(resp.status, 200);
            assert_eq!(resp.header("content-length"), Some(len));
        }
        // Had a body followed, this response would not parse.
        assert_eq!(client.get("/hello.txt", "").text(), "hello, static world\n");
    }

    fn big_file_streams_intact(backend: BackendChoice) {
        let dir = TempDir::new("static-big");
        let Some(server) = start(backend, &dir) else { return };
        // A small receive buffer: the server meets backpressure early.
        let mut client = Client::with_recv_buffer(server.addr, 64 * 1024);
        client.send("GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
        let resp = client.response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-length"), Some("5242880"));
        assert_eq!(resp.header("content-type"), Some("application/octet-stream"));
        let expected = pattern(BIG);
        assert_eq!(resp.body.len(), BIG);
        assert_eq!(checksum(&resp.body), checksum(&expected), "the file arrived changed");
        // And again on the same connection.
        assert_eq!(checksum(&client.get("/big.bin", "").body), checksum(&expected));
    }

    /// Whole files, ranges and pipelined requests (a big body between small ones, so the
    /// kernel's range waits for the answers before it) carry the same bytes by sendfile,
    /// by reading only, and with the 16 KiB file on either side of the threshold.
    fn sendfile_and_reading_carry_the_same_bytes(backend: BackendChoice) {
        let big = pattern(BIG);
        for sendfile_min in [StaticFiles::SENDFILE_MIN, 1, u64::MAX] {
            let dir = TempDir::new("static-sendfile");
            let Some(server) = start_sendfile(backend, &dir, sendfile_min) else { return };
            fs::write(dir.0.join("root/16k.bin"), pattern(16 * 1024)).unwrap();
            let mut client = Client::with_recv_buffer(server.addr, 64 * 1024);
            let whole = client.get("/big.bin", "");
            assert_eq!((whole.status, whole.body.len()), (200, BIG), "min {sendfile_min}");
            assert_eq!(checksum(&whole.body), checksum(&big), "min {sendfile_min}");
            let range = client.get("/big.bin", "Range: bytes=3-4194306\r\n");
            assert_eq!(range.status, 206);
            assert!(range.body == big[3..4_194_307], "range bytes differ (min {sendfile_min})");
            let small = client.get("/16k.bin", "");
            assert!(small.body == pattern(16 * 1024), "16 KiB differs (min {sendfile_min})");
            let tiny = client.get("/digits.txt", "Range: bytes=10-19\r\n");
            assert_eq!(tiny.text(), "0123456789");
            // Pipelined: all requests written before any answer is read.
            client.send(
                "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000000-\r\n\r\n\
                 GET /16k.bin HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /digits.txt HTTP/1.1\r\nHost: t\r\n\r\n",
            );
            assert_eq!(client.response().text(), "hello, static world\n");
            let tail = client.response();
            assert_eq!(tail.status, 206);
            assert!(tail.body == big[1_000_000..], "pipelined range differs (min {sendfile_min})");
            assert!(client.response().body == pattern(16 * 1024));
            assert_eq!(client.response().body.len(), 1000);
        }
    }

    /// A file cut short while it is being sent: the connection ends before the announced
    /// length, and every byte that did arrive is the file's.
    fn a_file_shrunk_during_the_send_ends_the_connection(backend: BackendChoice) {
        const LONG: usize = 32 * 1024 * 1024;
        let long = pattern(LONG);
        for sendfile_min in [StaticFiles::SENDFILE_MIN, u64::MAX] {
            let dir = TempDir::new("static-shrink");
            let Some(server) = start_sendfile(backend, &dir, sendfile_min) else { return };
            let path = dir.0.join("root/long.bin");
            fs::write(&path, &long).unwrap();
            let mut client = Client::with_recv_buffer(server.addr, 64 * 1024);
            client.send("GET /long.bin HTTP/1.1\r\nHost: t\r\n\r\n");
            let head = client.head();
            assert_eq!(head.header("content-length"), Some("33554432"));
            // The client reads nothing until the file is cut to 1 MiB.
            fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1024 * 1024).unwrap();
            let mut body = client.take_buffered();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match client.stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // A reset ends it too.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(e) => panic!("reading the body (min {sendfile_min}): {e}"),
                }
            }
            assert!(body.len() < LONG, "the whole length arrived (min {sendfile_min})");
            // Up to the new end, the file's bytes. Past it, bytes the kernel had in flight
            // when the file was cut: copies on the read path; by sendfile, references to
            // pages the truncation dropped from the file (zeroed or not: unspecified, as
            // with nginx's sendfile). The client learns from the short body either way.
            const CUT: usize = 1024 * 1024;
            let kept = body.len().min(CUT);
            assert!(body[..kept] == long[..kept], "other bytes than the file's (min {sendfile_min})");
            if sendfile_min == u64::MAX {
                assert!(body == long[..body.len()], "the read path sent other bytes");
            }
        }
    }

    /// The acceptance test: one connection downloads a file whose reads are stuck
    /// (a hook of the file API holds the read at half the file on a gate), and 50 other
    /// connections, all in flight at once, get their answers in full while that download
    /// is still incomplete (checked on the slow client's socket after each answer); then
    /// the gate opens and the slow download completes intact. Nothing is timed: each wait
    /// is for an event, bounded by `LIMIT` only as a failure.
    fn a_slow_file_does_not_hold_up_other_connections(backend: BackendChoice) {
        const SLOW: usize = 1024 * 1024;
        let dir = TempDir::new("static-slow");
        let root = tree(&dir);
        fs::write(root.join("slow.bin"), pattern(SLOW)).unwrap();
        let gate = Arc::new(Gate::default());
        let (entered_tx, entered) = mpsc::channel::<u64>();
        let entered_tx = Mutex::new(entered_tx);
        let held = Arc::clone(&gate);
        let hook: ringwork::fs::ReadHook = Arc::new(move |path: &Path, offset: u64| {
            if path.ends_with("slow.bin") && offset >= SLOW as u64 / 2 {
                let _ = entered_tx.lock().unwrap().send(offset);
                held.wait_open();
            }
        });
        let Some(server) = Server::start(backend, ServerConfig::default(), move || {
            StaticFiles::new(&root).expect("serve the root").with_read_hook(Arc::clone(&hook))
        }) else {
            return;
        };
        let mut slow = Client::connect(server.addr);
        slow.send("GET /slow.bin HTTP/1.1\r\nHost: t\r\n\r\n");
        let head = slow.head();
        assert_eq!(head.header("content-length"), Some("1048576"));
        let offset = entered.recv_timeout(common::LIMIT).expect("the slow read on its gate");
        assert_eq!(offset, SLOW as u64 / 2);
        // The slow client's bytes so far (never more than the half before the gate).
        let mut got = slow.take_buffered();
        slow.stream.set_nonblocking(true).unwrap();
        let mut drain = |got: &mut Vec<u8>| {
            let mut chunk = [0u8; 64 * 1024];
            loop {
                match slow.stream.read(&mut chunk) {
                    Ok(0) => panic!("the slow download was closed"),
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => panic!("reading the slow download: {e}"),
                }
            }
        };
        // 50 connections, all requests sent before any answer is read.
        let mut others: Vec<Client> = (0..50).map(|_| server.client()).collect();
        for (i, client) in others.iter_mut().enumerate() {
            let path = if i % 2 == 0 { "/hello.txt" } else { "/digits.txt" };
            client.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        }
        for (i, client) in others.iter_mut().enumerate() {
            let resp = client.response();
            assert_eq!(resp.status, 200, "connection {i}");
            if i % 2 == 0 {
                assert_eq!(resp.text(), "hello, static world\n");
            } else {
                assert_eq!(resp.body, "0123456789".repeat(100).into_bytes());
            }
            drain(&mut got);
            assert!(got.len() < SLOW, "answer {i} came while the slow download is incomplete");
        }
        assert!(got.len() <= SLOW / 2, "nothing past the held read: {}", got.len());
        gate.open();
        slow.stream.set_nonblocking(false).unwrap();
        while got.len() < SLOW {
            let mut chunk = [0u8; 64 * 1024];
            let n = match slow.stream.read(&mut chunk) {
                Ok(n) => n,
                // A signal to the test process (another test's child exiting) cut the read.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("the rest of the slow download: {e}"),
            };
            assert!(n > 0, "the slow download ended at {} bytes", got.len());
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(checksum(&got), checksum(&pattern(SLOW)), "the slow file arrived changed");
    }
}

/// A gate the slow file's reads wait on (with `LIMIT` as a failure bound).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait_open(&self) {
        let open = self.open.lock().unwrap();
        let _ = self
            .opened
            .wait_timeout_while(open, common::LIMIT, |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}
