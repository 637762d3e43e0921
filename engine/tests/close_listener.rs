//! `Reactor::close_listener` on both backends: one of two listeners is closed by its
//! address (a connection to it is then refused) while the other keeps serving, and a
//! connection the closed listener accepted before goes on; an address with no listener of
//! this core is `false`. Waits are on the reactor's events, never on time.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

use common::{Echo, any_port, reactor, wait};
use ringwork::platform::BackendChoice;

/// Sends `text` on `stream` while turning `reactor` until the echo comes back.
fn echo(reactor: &mut ringwork::Reactor, stream: &mut TcpStream, text: &[u8]) {
    stream.write_all(text).expect("send");
    stream.set_nonblocking(true).expect("nonblocking");
    let mut got = Vec::new();
    wait(
        reactor,
        |_| {
            let mut buf = [0u8; 64];
            match stream.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
            got.len() >= text.len()
        },
        || "the echo".into(),
    );
    assert_eq!(got, text);
    stream.set_nonblocking(false).expect("blocking");
}

ringwork::platform::test_all_backends! {
    fn one_listener_closes_by_its_address(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let closing = reactor.listen_tcp(any_port(), || Echo).expect("listen");
        let staying = reactor.listen_tcp(any_port(), || Echo).expect("listen");
        let mut before = TcpStream::connect(closing).expect("connect");
        echo(&mut reactor, &mut before, b"before");

        assert!(reactor.close_listener(&closing.into()));
        assert!(!reactor.close_listener(&closing.into()), "already closed");
        // The driver closes the socket in its next turns (under io_uring once the
        // multishot accept's cancel came back); then the port refuses (nothing else bound
        // it: a fresh port of this test). Turns of at most 1 ms, bounded by LIMIT.
        let deadline = std::time::Instant::now() + common::LIMIT;
        let refused = loop {
            reactor.turn(Some(std::time::Duration::from_millis(1))).expect("a turn");
            if let Err(error) = TcpStream::connect(closing) {
                break Some(error.kind());
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
        };
        assert_eq!(refused, Some(ErrorKind::ConnectionRefused));
        // The connection it accepted goes on; the other listener still serves.
        echo(&mut reactor, &mut before, b"still here");
        let mut other = TcpStream::connect(staying).expect("connect");
        echo(&mut reactor, &mut other, b"other");
    }
}
