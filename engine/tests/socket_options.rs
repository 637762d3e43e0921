//! Socket options through the engine's [`ListenerOptions`] and [`ConnectOptions`], on every
//! backend (the platform's `socket_options` test reads each option back; these prove the
//! engine passes them down).
//!
//! Proves:
//! - a listener's keepalive reaches its connections: a client that vanishes without a FIN
//!   or a reset (a TCP_REPAIR close) is found by the first probe and the server's protocol
//!   gets `connection_lost(Reset)` — waiting on that callback, not on a clock;
//! - a connect's keepalive does the same for an outbound connection;
//! - bad values (backlog 0, a TCP Fast Open queue of 0, a device that does not exist) fail
//!   the listen or the connect with an error naming the option, and nothing is left open.

mod common;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{Hello, Lost, nth, nth_lost, reactor, recorded, recording_factory, wait};
use ringwork::platform::{BackendChoice, testing};
use ringwork::{ConnectOptions, Keepalive, ListenerOptions, SockAddr, SocketOptions};

/// Keepalive that finds a dead peer one idle second after the last packet.
fn quick_keepalive() -> SocketOptions {
    SocketOptions::new().keepalive(
        Keepalive::after(Duration::from_secs(1))
            .interval(Duration::from_secs(1))
            .count(1),
    )
}

/// Makes `peer` vanish; `false` (skipped, loudly) without CAP_NET_ADMIN outside CI.
fn vanish(peer: TcpStream) -> bool {
    match testing::vanish(peer) {
        Ok(()) => true,
        Err(e)
            if e.kind() == io::ErrorKind::PermissionDenied
                && std::env::var("CI").as_deref() != Ok("true") =>
        {
            eprintln!("skipped: keepalive's effect needs CAP_NET_ADMIN for TCP_REPAIR ({e})");
            false
        }
        Err(e) => panic!("TCP_REPAIR close: {e}"),
    }
}

ringwork::platform::test_all_backends! {
    fn a_listeners_keepalive_finds_a_vanished_client(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (factory, logs) = recording_factory(|| Hello(Vec::new()));
        let options = ListenerOptions::default().socket(quick_keepalive()).backlog(16);
        let addr = SockAddr::from(common::any_port());
        let bound = reactor.listen_with(&addr, &options, factory).expect("listen");
        let client = TcpStream::connect(bound.as_socket().expect("TCP")).expect("connect");
        wait(
            &mut reactor,
            |_| logs.borrow().first().is_some_and(|l| l.borrow().made() == 1),
            || "no connection".into(),
        );
        if !vanish(client) {
            return;
        }
        wait(
            &mut reactor,
            |_| nth_lost(&logs, 0),
            || "the connection is still up: no keepalive probe found the client gone".into(),
        );
        assert_eq!(nth(&logs, 0).borrow().lost(), Some(Lost::Reset));
    }

    fn a_connects_keepalive_finds_a_vanished_server(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let server = TcpListener::bind(common::any_port()).expect("listen");
        let addr = SockAddr::from(server.local_addr().expect("address"));
        let (client, log) = recorded(Hello(Vec::new()));
        let options = ConnectOptions::new().socket(quick_keepalive());
        reactor.connect(&addr, client, options).expect("connect");
        wait(&mut reactor, |_| log.borrow().made() == 1, || "not connected".into());
        let (peer, _) = server.accept().expect("accept");
        if !vanish(peer) {
            return;
        }
        wait(
            &mut reactor,
            |_| log.borrow().is_lost(),
            || "the connection is still up: no keepalive probe found the server gone".into(),
        );
        assert_eq!(log.borrow().lost(), Some(Lost::Reset));
    }

    fn bad_options_fail_naming_the_option(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let addr = SockAddr::from(common::any_port());
        let cases = [
            (ListenerOptions::default().backlog(0), "listen backlog 0"),
            (ListenerOptions::default().backlog(100_000), "listen backlog 100000"),
            (ListenerOptions::default().fastopen(0), "TCP_FASTOPEN 0"),
            (
                ListenerOptions::default().socket(SocketOptions::new().send_buffer(0)),
                "SO_SNDBUF 0",
            ),
            (
                ListenerOptions::default().socket(SocketOptions::new().bind_device("nosuchdev0")),
                "cannot set SO_BINDTODEVICE to \"nosuchdev0\"",
            ),
        ];
        for (options, text) in cases {
            let error = reactor
                .listen_with(&addr, &options, || Hello(Vec::new()))
                .expect_err(text);
            assert!(error.to_string().contains(text), "{error} names {text}");
        }
        let server = TcpListener::bind(common::any_port()).expect("listen");
        let target = SockAddr::from(server.local_addr().expect("address"));
        let bad = ConnectOptions::new().socket(
            SocketOptions::new().keepalive(Keepalive::after(Duration::from_millis(500))),
        );
        let (client, log) = recorded(Hello(Vec::new()));
        let error = reactor.connect(&target, client, bad).expect_err("a bad keepalive");
        assert!(error.to_string().contains("TCP_KEEPIDLE 500ms"), "{error}");
        assert!(log.borrow().events.is_empty(), "no callback for a connect never started");
        assert_eq!(reactor.connections(), 0);
    }
}
