//! TLS record sizing on the wire, on every backend: a server's first records after the
//! handshake (and after an idle spell) are small, the rest of a burst goes in full 16 KiB
//! records, and a burst that follows another at once starts full.
//!
//! The client is a rustls client driven by hand over a plain connection: it cuts the byte
//! stream into records itself and feeds rustls one record at a time, so the plaintext each
//! record carried is known exactly. The reactor's clock is manual: "idle" is a clock move,
//! not a sleep.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{any_port, manual_reactor, pattern, wait};
use ringwork::platform::BackendChoice;
use ringwork::testing::certs::TestCa;
use ringwork::tls::{RecordSizing, Roots, TlsAcceptor, TlsConnector, rustls, server_name};
use ringwork::{ConnectOptions, Context, Protocol, Reactor, SockAddr, TimerId};

const BURST: usize = 60_000;

/// Writes a burst when the connection starts, another at once when the client asks, and a
/// third when a timer (long past the idle time) fires.
struct Bursts;

impl Protocol for Bursts {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write_bytes(Bytes::from(pattern(BURST)));
    }
    fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
        // The headers of a response in one piece, the body in another: one burst.
        let body = pattern(BURST);
        ctx.write(&body[..100]);
        ctx.write_bytes(Bytes::copy_from_slice(&body[100..]));
        ctx.call_later(Duration::from_secs(10));
    }
    fn timer_fired(&mut self, ctx: &mut Context<'_>, _timer: TimerId) {
        ctx.write_bytes(Bytes::from(pattern(BURST)));
    }
}

/// What the client saw: the plaintext length of every application-data record, and the
/// plaintext itself.
#[derive(Default)]
struct Seen {
    records: Vec<usize>,
    received: Vec<u8>,
}

/// A rustls client over a plain connection, one record at a time.
struct RecordClient {
    tls: rustls::ClientConnection,
    inbox: Vec<u8>,
    asked: bool,
    seen: Rc<RefCell<Seen>>,
}

impl RecordClient {
    fn send_pending(&mut self, ctx: &mut Context<'_>) {
        let mut out = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut out).expect("write_tls into memory");
        }
        if !out.is_empty() {
            ctx.write(&out);
        }
    }
}

impl Protocol for RecordClient {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.send_pending(ctx);
    }
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.inbox.extend_from_slice(data);
        while self.inbox.len() >= 5 {
            let len = 5 + usize::from(u16::from_be_bytes([self.inbox[3], self.inbox[4]]));
            if self.inbox.len() < len {
                break;
            }
            let record: Vec<u8> = self.inbox.drain(..len).collect();
            let mut input = &record[..];
            while !input.is_empty() {
                self.tls.read_tls(&mut input).expect("read_tls");
            }
            self.tls.process_new_packets().expect("a valid record");
            let mut plain = Vec::new();
            let mut buf = [0u8; 32 * 1024];
            loop {
                match self.tls.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => plain.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("reading plaintext: {e}"),
                }
            }
            if !plain.is_empty() {
                let mut seen = self.seen.borrow_mut();
                seen.records.push(plain.len());
                seen.received.extend_from_slice(&plain);
            }
        }
        if !self.asked && self.seen.borrow().received.len() == BURST {
            self.asked = true;
            self.tls
                .writer()
                .write_all(b"more")
                .expect("plaintext into rustls");
        }
        self.send_pending(ctx);
    }
}

/// The plaintext lengths of a burst's records: `small` records of `small_len`, then full
/// ones.
fn expected(small: usize, small_len: usize) -> Vec<usize> {
    let mut lengths = vec![small_len; small];
    let mut left = BURST - small * small_len;
    while left > 0 {
        let n = left.min(16_384);
        lengths.push(n);
        left -= n;
    }
    lengths
}

/// A TLS server answering with [`Bursts`] under `sizing` (a certificate of a fresh test CA)
/// and a [`RecordClient`] connected to it; what the client sees.
fn serve_and_connect(reactor: &mut Reactor, sizing: RecordSizing) -> Rc<RefCell<Seen>> {
    let ca = TestCa::new();
    let cert = ca.server(&["localhost"]);
    let acceptor = TlsAcceptor::builder()
        .certificate(cert.chain(), cert.key())
        .resumption(false)
        .record_sizing(sizing)
        .build()
        .unwrap();
    let addr: SockAddr = reactor
        .listen_tls(any_port(), &acceptor, || Bursts)
        .unwrap()
        .into();
    let config = TlsConnector::builder()
        .roots(Roots::Certificates(vec![ca.cert.clone()]))
        .build()
        .unwrap();
    let tls = rustls::ClientConnection::new(
        Arc::clone(config.rustls_config()),
        server_name("localhost").unwrap(),
    )
    .unwrap();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let client = RecordClient {
        tls,
        inbox: Vec::new(),
        asked: false,
        seen: seen.clone(),
    };
    reactor
        .connect(&addr, client, ConnectOptions::default())
        .unwrap();
    seen
}

ringwork::platform::test_all_backends! {
    fn first_records_after_idle_are_small_then_full(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let sizing = RecordSizing { small_len: 1000, small_records: 3, idle: Duration::from_secs(1) };
        let seen = serve_and_connect(&mut reactor, sizing);
        wait(&mut reactor, |_| seen.borrow().received.len() == 2 * BURST, || {
            format!("two bursts: got {} bytes in {:?}", seen.borrow().received.len(), seen.borrow().records)
        });
        clock.advance(Duration::from_secs(11));
        wait(&mut reactor, |_| seen.borrow().received.len() == 3 * BURST, || {
            format!("third burst: got {} bytes", seen.borrow().received.len())
        });
        let seen = seen.borrow();
        let mut want = expected(3, 1000);
        // Asked for at once: not idle, full records from the start.
        want.extend(expected(0, 0));
        // After an idle spell: small again.
        want.extend(expected(3, 1000));
        assert_eq!(seen.records, want);
        assert!(seen.received[..BURST] == pattern(BURST)[..]);
        assert!(seen.received[BURST..2 * BURST] == pattern(BURST)[..]);
        assert!(seen.received[2 * BURST..] == pattern(BURST)[..]);
    }

    fn full_records_only_when_sizing_is_off(backend: BackendChoice) {
        let Some((mut reactor, _clock)) = manual_reactor(backend) else { return };
        let seen = serve_and_connect(&mut reactor, RecordSizing::FULL);
        wait(&mut reactor, |_| seen.borrow().received.len() == 2 * BURST, || {
            format!("two bursts: got {} bytes", seen.borrow().received.len())
        });
        let seen = seen.borrow();
        let mut want = expected(0, 0);
        want.extend(expected(0, 0));
        assert_eq!(seen.records, want);
    }
}
