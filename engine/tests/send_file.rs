//! `Context::send_file` on every backend: file ranges the kernel sends, in order with the
//! connection's other writes.
//!
//! Proves: bytes written before a range go first and bytes written after it follow (two
//! ranges of a 6 MiB file between writes, then `close`, which waits for the ranges); the
//! range is not counted as buffered memory; a file that ends before its range (truncated)
//! loses the connection with a write error after the file's bytes, never a clean end; a
//! TLS connection and the in-memory transport refuse (the caller writes the bytes instead).
//!
//! One reactor on the test thread; the outside peer reads on its own thread.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;

use common::{any_port, pattern, reactor, wait};
use ringwork::fs::File;
use ringwork::platform::BackendChoice;
use ringwork::testing::StringTransport;
use ringwork::{Context, EngineError, LostReason, Protocol};

const LEN: usize = 6 * 1024 * 1024;

#[derive(Default)]
struct Shared {
    results: Vec<Result<(), String>>,
    /// `buffered()` right after the ranges were queued.
    buffered: Option<usize>,
    lost: Option<LostReason>,
}

/// Writes `HEAD`, the first range, `MID`, the second range, its tail, then closes.
struct Sender {
    file: Rc<File>,
    ranges: [(u64, u64); 2],
    /// Written after the second range (empty: the range is the last thing sent).
    tail: &'static [u8],
    shared: Rc<RefCell<Shared>>,
}

impl Protocol for Sender {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let mut s = self.shared.borrow_mut();
        ctx.write(b"HEAD");
        let [(a, a_len), (b, b_len)] = self.ranges;
        s.results.push(
            ctx.send_file(&self.file, a, a_len)
                .map_err(|e| e.to_string()),
        );
        ctx.write(b"MID");
        s.results.push(
            ctx.send_file(&self.file, b, b_len)
                .map_err(|e| e.to_string()),
        );
        ctx.write(self.tail);
        s.buffered = Some(ctx.buffered());
        ctx.close();
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        self.shared.borrow_mut().lost = Some(reason);
    }
}

/// A file of `bytes` under the temp directory (removed when dropped), opened on `reactor`.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, backend: BackendChoice, bytes: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "ringwork-engine-send-file-{}-{name}-{backend:?}",
            std::process::id()
        ));
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(bytes))
            .expect("write the file");
        Self(path)
    }

    fn open(&self, reactor: &ringwork::Reactor) -> Rc<File> {
        let std_file = std::fs::File::open(&self.0).expect("open the file");
        Rc::new(reactor.handle().files().adopt(std_file, &self.0))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn reader(mut stream: TcpStream) -> std::thread::JoinHandle<Vec<u8>> {
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut got = Vec::new();
        // A reset after a failed range ends the read with an error: keep what came.
        let _ = stream.read_to_end(&mut got);
        got
    })
}

/// Serves one connection with `Sender` and returns what the peer read and the shared record.
fn serve(
    backend: BackendChoice,
    name: &str,
    content: &[u8],
    ranges: [(u64, u64); 2],
    tail: &'static [u8],
) -> Option<(Vec<u8>, Rc<RefCell<Shared>>)> {
    let mut reactor = reactor(backend)?;
    let temp = TempFile::new(name, backend, content);
    let file = temp.open(&reactor);
    let shared = Rc::new(RefCell::new(Shared::default()));
    let factory = {
        let shared = Rc::clone(&shared);
        move || Sender {
            file: Rc::clone(&file),
            ranges,
            tail,
            shared: Rc::clone(&shared),
        }
    };
    let addr = reactor.listen_tcp(any_port(), factory).expect("listen");
    let peer = reader(TcpStream::connect(addr).expect("connect"));
    wait(
        &mut reactor,
        |_| shared.borrow().lost.is_some(),
        || "the connection lost".into(),
    );
    // The close reaches the kernel in the next turn; dropping the reactor closes now.
    drop(reactor);
    Some((peer.join().expect("reader"), shared))
}

ringwork::platform::test_all_backends! {
    fn ranges_go_in_order_with_writes_and_close_waits_for_them(backend: BackendChoice) {
        let content = pattern(LEN);
        let ranges = [(17, LEN as u64 - 20), (0, 4096)];
        // With bytes after the last range, and with the range last (close waits for it).
        for tail in [&b"TAIL"[..], b""] {
            let Some((got, shared)) = serve(backend, "order", &content, ranges, tail) else {
                return;
            };
            let s = shared.borrow();
            assert_eq!(s.results, [Ok(()), Ok(())]);
            assert_eq!(s.buffered, Some(4 + 3 + tail.len()), "file ranges are not buffered memory");
            assert!(matches!(s.lost, Some(LostReason::Done)), "{:?}", s.lost);
            let mut want = b"HEAD".to_vec();
            want.extend_from_slice(&content[17..LEN - 3]);
            want.extend_from_slice(b"MID");
            want.extend_from_slice(&content[..4096]);
            want.extend_from_slice(tail);
            assert_eq!(got.len(), want.len(), "tail {tail:?}");
            assert_eq!(common::first_difference(&got, &want), None);
        }
    }

    fn a_file_shorter_than_its_range_loses_the_connection(backend: BackendChoice) {
        let content = pattern(1024 * 1024);
        // As if truncated after a Content-Length of 2 MiB was announced.
        let ranges = [(0, 2 * 1024 * 1024), (0, 10)];
        let Some((got, shared)) = serve(backend, "short", &content, ranges, b"") else { return };
        let s = shared.borrow();
        assert_eq!(s.results, [Ok(()), Ok(())]);
        match &s.lost {
            Some(LostReason::Error(error)) => {
                assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
            }
            other => panic!("lost with {other:?}"),
        }
        assert!(got.len() <= 4 + content.len(), "bytes after the failed range: {}", got.len());
        assert_eq!(common::first_difference(&got[4..], &content[..got.len() - 4]), None);
    }
}

/// Starts TLS, then asks for a file range: refused (its bytes must pass through rustls).
struct TlsSender {
    file: Rc<File>,
    acceptor: ringwork::tls::TlsAcceptor,
    shared: Rc<RefCell<Shared>>,
}

impl Protocol for TlsSender {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let mut s = self.shared.borrow_mut();
        s.results.push(
            ctx.start_tls_server(&self.acceptor)
                .map_err(|e| e.to_string()),
        );
        let refused = match ctx.send_file(&self.file, 0, 1) {
            Err(EngineError::SendFile { why }) => Err(why),
            other => Ok(format!("{other:?}")),
        };
        s.results.push(
            refused
                .map(drop)
                .map_err(|why| why.contains("TLS").to_string()),
        );
        ctx.abort();
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        self.shared.borrow_mut().lost = Some(reason);
    }
}

ringwork::platform::test_all_backends! {
    fn a_tls_connection_refuses(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = ringwork::testing::certs::TestCa::new();
        let cert = ca.server(&["localhost"]);
        let acceptor = ringwork::tls::TlsAcceptor::builder()
            .certificate(cert.chain(), cert.key())
            .build()
            .expect("acceptor");
        let temp = TempFile::new("tls", backend, b"x");
        let file = temp.open(&reactor);
        let shared = Rc::new(RefCell::new(Shared::default()));
        let factory = {
            let shared = Rc::clone(&shared);
            move || TlsSender {
                file: Rc::clone(&file),
                acceptor: acceptor.clone(),
                shared: Rc::clone(&shared),
            }
        };
        let addr = reactor.listen_tcp(any_port(), factory).expect("listen");
        let _client = TcpStream::connect(addr).expect("connect");
        wait(&mut reactor, |_| shared.borrow().lost.is_some(), || "the connection lost".into());
        assert_eq!(shared.borrow().results, [Ok(()), Err("true".to_owned())]);
    }
}

#[test]
fn the_in_memory_transport_refuses_to_send_files() {
    struct Quiet;
    impl Protocol for Quiet {
        fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
    }
    let pool = ringwork::ThreadPool::new(1, 16);
    let std_file = std::fs::File::open("/dev/null").expect("open");
    let file = ringwork::fs::Files::new(pool).adopt(std_file, "/dev/null");
    let mut t = StringTransport::new(Quiet);
    let result = t.with_context(|ctx| ctx.send_file(&file, 0, 1));
    assert!(matches!(result, Err(EngineError::Op(_))), "{result:?}");
}
