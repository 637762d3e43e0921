//! `Context::splice_into` on every backend: two accepted connections joined inside the
//! kernel both ways.
//!
//! Proves: bytes written to the destination before the splice go first; 2 MiB each way
//! arrive intact and in order with `eof_received` only after the last spliced byte (and a
//! `shutdown_write` then passes the end on); the counters (`spliced_bytes`,
//! `CoreStats::{splices, bytes_spliced}`) add up; bad splices are refused with
//! `EngineError::Splice` and change nothing; the in-memory transport refuses too (so
//! protocols keep copying under `StringTransport`).
//!
//! One reactor on the test thread; the outside peers are non-blocking std sockets served
//! between reactor turns (never a sleep).

mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;

use common::{any_port, reactor, wait};
use ringwork::platform::BackendChoice;
use ringwork::testing::StringTransport;
use ringwork::tls::{TlsAcceptor, TlsError};
use ringwork::{ConnId, ConnectOptions, Context, EngineError, LostReason, Protocol};

const LEN: usize = 2 * 1024 * 1024;

#[derive(Default)]
struct Shared {
    conns: Vec<ConnId>,
    /// What the splice calls returned, in order: self, first->second, second->first, again.
    results: Vec<Result<(), String>>,
    /// Bytes that reached `data_received` (forwarded by hand, as the API asks).
    copied: usize,
    eofs: usize,
    /// `spliced_bytes` of each connection when it was lost.
    spliced_at_loss: Vec<u64>,
}

/// The first connection waits (reading paused); the second joins them.
struct Joiner {
    shared: Rc<RefCell<Shared>>,
    peer: Option<ConnId>,
}

impl Protocol for Joiner {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let mut s = self.shared.borrow_mut();
        s.conns.push(ctx.id());
        if s.conns.len() == 1 {
            ctx.pause_reading();
            return;
        }
        let (first, second) = (s.conns[0], ctx.id());
        self.peer = Some(first);
        let text = |r: Result<(), EngineError>| {
            r.map_err(|e| {
                assert!(matches!(e, EngineError::Splice { .. }), "{e}");
                e.to_string()
            })
        };
        s.results.push(text(ctx.splice_into(second)));
        // Queued before the splice: goes out first.
        ctx.write(b"HEAD");
        s.results.push(text(ctx.other(first).splice_into(second)));
        s.results.push(text(ctx.splice_into(first)));
        s.results.push(text(ctx.other(first).splice_into(second)));
        ctx.other(first).resume_reading();
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        // Bytes a receive already in flight picked up: forward them.
        let peer = self.peer.unwrap_or_else(|| self.shared.borrow().conns[1]);
        self.shared.borrow_mut().copied += data.len();
        ctx.other(peer).write(data);
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        let peer = self.peer.unwrap_or_else(|| self.shared.borrow().conns[1]);
        let eofs = {
            let mut s = self.shared.borrow_mut();
            s.eofs += 1;
            s.eofs
        };
        ctx.other(peer).shutdown_write();
        if eofs == 2 {
            // Both directions ended: close both once their queues are sent.
            ctx.close();
            ctx.other(peer).close();
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, _reason: LostReason) {
        let spliced = ctx.spliced_bytes();
        self.shared.borrow_mut().spliced_at_loss.push(spliced);
    }
}

/// An outside peer on its own threads: sends `out` and half-closes while reading until
/// end of stream; the join handle gives back what it read.
fn peer(stream: TcpStream, out: Vec<u8>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut reader = stream.try_clone().expect("clone");
        let receiver = std::thread::spawn(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).expect("peer read");
            got
        });
        let mut writer = stream;
        writer.write_all(&out).expect("peer write");
        writer.shutdown(Shutdown::Write).expect("half-close");
        receiver.join().expect("peer reader")
    })
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

ringwork::platform::test_all_backends! {
    fn two_connections_spliced_both_ways(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let shared = Rc::new(RefCell::new(Shared::default()));
        let factory = {
            let shared = Rc::clone(&shared);
            move || Joiner {
                shared: Rc::clone(&shared),
                peer: None,
            }
        };
        let addr = reactor.listen_tcp(any_port(), factory).expect("listen");
        let mut left = TcpStream::connect(addr).expect("connect left");
        // Sent while the first connection's reading is paused, before any splice.
        left.write_all(b"early").expect("early bytes");
        wait(&mut reactor, |_| shared.borrow().conns.len() == 1, || "left accepted".into());
        let right = TcpStream::connect(addr).expect("connect right");
        wait(&mut reactor, |_| shared.borrow().results.len() == 4, || "the splices".into());
        {
            let s = shared.borrow();
            assert!(s.results[0].as_ref().is_err_and(|e| e.contains("itself")), "{:?}", s.results);
            assert_eq!(s.results[1], Ok(()));
            assert_eq!(s.results[2], Ok(()));
            assert!(s.results[3].as_ref().is_err_and(|e| e.contains("already")), "{:?}", s.results);
        }
        let (to_right, to_left) = (pattern(1, LEN), pattern(2, LEN));
        let left_peer = peer(left, to_right.clone());
        let right_peer = peer(right, to_left.clone());
        // Both ends pass through, then both connections close.
        wait(
            &mut reactor,
            |_| shared.borrow().spliced_at_loss.len() == 2,
            || "both connections lost".into(),
        );
        let stats = reactor.stats();
        // The closes reach the kernel in the reactor's next turn; dropping it closes now.
        drop(reactor);
        let got_right = right_peer.join().expect("right peer");
        let got_left = left_peer.join().expect("left peer");
        assert_eq!(got_right.len(), 4 + 5 + LEN);
        assert!(got_right[..9] == *b"HEADearly", "queued bytes did not go first");
        assert!(got_right[9..] == to_right[..], "left -> right bytes differ");
        assert!(got_left == to_left, "right -> left bytes differ");
        let s = shared.borrow();
        assert_eq!(s.eofs, 2);
        let spliced: u64 = s.spliced_at_loss.iter().sum();
        assert_eq!(spliced as usize + s.copied, 2 * LEN + 5, "spliced {spliced}, copied {}", s.copied);
        assert_eq!(stats.splices, 2);
        assert_eq!(stats.bytes_spliced, spliced);
        // Only what receives in flight picked up was copied (at most a batch or two).
        assert!(s.copied <= 256 * 1024, "copied {}", s.copied);
    }
}

/// Splices the first connection into the second, then asks for STARTTLS on both.
struct TlsAfterSplice {
    shared: Rc<RefCell<Shared>>,
    acceptor: TlsAcceptor,
}

impl Protocol for TlsAfterSplice {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let mut s = self.shared.borrow_mut();
        s.conns.push(ctx.id());
        if s.conns.len() == 1 {
            return;
        }
        let (first, second) = (s.conns[0], ctx.id());
        s.results.push(
            ctx.other(first)
                .splice_into(second)
                .map_err(|e| e.to_string()),
        );
        let tls = |r: Result<(), TlsError>| match r {
            Err(TlsError::NotOpen) => Err("not open".to_owned()),
            other => Err(format!("{other:?}")),
        };
        // The source's input bypasses user space; the destination's pipe bypasses rustls.
        s.results
            .push(tls(ctx.other(first).start_tls_server(&self.acceptor)));
        s.results.push(tls(ctx.start_tls_server(&self.acceptor)));
        ctx.other(first).close();
        ctx.close();
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, _reason: LostReason) {
        self.shared.borrow_mut().eofs += 1;
    }
}

ringwork::platform::test_all_backends! {
    fn spliced_connections_refuse_starttls(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = ringwork::testing::certs::TestCa::new();
        let cert = ca.server(&["localhost"]);
        let acceptor = TlsAcceptor::builder()
            .certificate(cert.chain(), cert.key())
            .build()
            .expect("acceptor");
        let shared = Rc::new(RefCell::new(Shared::default()));
        let factory = {
            let shared = Rc::clone(&shared);
            move || TlsAfterSplice { shared: Rc::clone(&shared), acceptor: acceptor.clone() }
        };
        let addr = reactor.listen_tcp(any_port(), factory).expect("listen");
        let _left = TcpStream::connect(addr).expect("connect left");
        wait(&mut reactor, |_| shared.borrow().conns.len() == 1, || "left accepted".into());
        let _right = TcpStream::connect(addr).expect("connect right");
        wait(&mut reactor, |_| shared.borrow().eofs == 2, || "both connections lost".into());
        let s = shared.borrow();
        assert_eq!(s.results[0], Ok(()), "{:?}", s.results);
        assert_eq!(s.results[1], Err("not open".to_owned()), "STARTTLS on the spliced source");
        assert_eq!(s.results[2], Err("not open".to_owned()), "STARTTLS on the destination");
    }
}

#[test]
fn the_in_memory_transport_refuses_to_splice() {
    struct Quiet;
    impl Protocol for Quiet {
        fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
    }
    let mut t = StringTransport::new(Quiet);
    let me = t.id();
    let result = t.with_context(|ctx| ctx.splice_into(me));
    assert!(
        matches!(result, Err(EngineError::Splice { .. })),
        "{result:?}"
    );
    let addr = ringwork::SockAddr::from(any_port());
    let other = t
        .with_context(|ctx| ctx.connect(&addr, Quiet, ConnectOptions::default()))
        .expect("connect");
    t.complete_connect(other, Ok(()));
    let result = t.with_context(|ctx| ctx.splice_into(other));
    match result {
        Err(EngineError::Op(e)) => assert_eq!(e.kind(), ErrorKind::Unsupported),
        other => panic!("expected the transport's refusal, got {other:?}"),
    }
    // Nothing changed: the connection still reads and writes in memory.
    t.feed(b"still here");
    assert!(t.is_open());
}
