//! Socket options through `ListenOptions` and `ConnectOptions`, on every backend.
//!
//! Proves:
//! - every option given is on the socket when it comes back (read back with getsockopt):
//!   SO_RCVBUF, SO_SNDBUF, SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT, IP_TOS and
//!   IPV6_TCLASS, SO_BINDTODEVICE, TCP_FASTOPEN (a listener's queue), TCP_FASTOPEN_CONNECT,
//!   the backlog; and accepted connections inherit the listener's;
//! - keepalive works: a peer that vanishes without a FIN or a reset (TCP_REPAIR close) is
//!   found by the first probe, one idle second later, and the connection ends with a reset
//!   — waiting on that event, not on a clock;
//! - the backlog works: with backlog 1 and nobody accepting, two connections complete
//!   (the kernel holds backlog + 1), a third stays in SYN_SENT, and all three are accepted
//!   once accepting starts;
//! - bad values fail before any system call, naming the option; a device that does not
//!   exist fails with the kernel's ENODEV, naming the device.

mod common;

use std::io;
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use ringwork_platform::options::{self, ListenQueue};
use ringwork_platform::{
    BackendChoice, Completion, ConnectOptions, Driver, Keepalive, ListenOptions, OpKind, SockAddr,
    SocketId, SocketOptionError, SocketOptions, test_all_backends, testing,
};

use common::{drive, std_addr, v4};

/// Linux's `TCP_SYN_SENT` in TCP_INFO.
const TCP_SYN_SENT: u8 = 2;

fn all_options() -> SocketOptions {
    SocketOptions::new()
        .recv_buffer(96 * 1024)
        .send_buffer(80 * 1024)
        .keepalive(
            Keepalive::after(Duration::from_secs(30))
                .interval(Duration::from_secs(7))
                .count(4),
        )
        .tos(0x28)
        .bind_device("lo")
}

/// Checks every option of [`all_options`] on `socket` (`v6`: TOS as IPV6_TCLASS).
fn assert_all_options(driver: &Driver, socket: SocketId, v6: bool, what: &str) {
    driver
        .with_socket(socket, |s| {
            // Linux doubles the buffer sizes it is given (half for bookkeeping).
            assert_eq!(s.recv_buffer_size()?, 2 * 96 * 1024, "{what}: SO_RCVBUF");
            assert_eq!(s.send_buffer_size()?, 2 * 80 * 1024, "{what}: SO_SNDBUF");
            assert!(s.keepalive()?, "{what}: SO_KEEPALIVE");
            assert_eq!(s.tcp_keepalive_time()?, Duration::from_secs(30), "{what}");
            assert_eq!(
                s.tcp_keepalive_interval()?,
                Duration::from_secs(7),
                "{what}"
            );
            assert_eq!(s.tcp_keepalive_retries()?, 4, "{what}: TCP_KEEPCNT");
            if v6 {
                assert_eq!(s.tclass_v6()?, 0x28, "{what}: IPV6_TCLASS");
            } else {
                assert_eq!(s.tos_v4()?, 0x28, "{what}: IP_TOS");
            }
            assert_eq!(s.device()?.as_deref(), Some(&b"lo"[..]), "{what}: device");
            Ok(())
        })
        .expect("read the options back");
}

/// Accepts one connection on `listener` (already accepting) and connects `client` to it.
fn accept(driver: &mut Driver, listener: SocketId) -> SocketId {
    let mut accepted = None;
    drive(
        driver,
        &mut accepted,
        |_, accepted, c| match c {
            Completion::Accepted {
                listener: l,
                result,
            } => {
                assert_eq!(l, listener);
                *accepted = Some(result.expect("accepted"));
            }
            c => panic!("unexpected {c:?}"),
        },
        |_, accepted| accepted.is_some(),
        |_, _| "nothing accepted".into(),
    );
    accepted.expect("accepted")
}

/// Waits for connect `client` to complete.
fn connected(driver: &mut Driver, client: SocketId) {
    let mut connected = false;
    drive(
        driver,
        &mut connected,
        |_, connected, c| match c {
            Completion::Connected { socket, result } => {
                assert_eq!(socket, client);
                result.expect("connected");
                *connected = true;
            }
            c => panic!("unexpected {c:?}"),
        },
        |_, connected| *connected,
        |_, _| "not connected".into(),
    );
}

/// Waits for `socket`'s `RecvError` and returns its OS error kind.
fn recv_error(driver: &mut Driver, socket: SocketId) -> io::ErrorKind {
    assert!(driver.recv(socket));
    let mut error = None;
    drive(
        driver,
        &mut error,
        |_, error, c| match c {
            Completion::RecvError {
                socket: s,
                error: e,
            } if s == socket => {
                *error = Some(e.kind());
            }
            c => panic!("unexpected {c:?}"),
        },
        |_, error| error.is_some(),
        |_, _| "the connection is still up: no keepalive probe found the peer gone".into(),
    );
    error.expect("an error")
}

fn fastopen_listener() -> ListenOptions {
    ListenOptions {
        backlog: 7,
        socket: all_options(),
        fastopen: Some(5),
        ..ListenOptions::default()
    }
}

test_all_backends! {
    fn a_listener_and_its_connections_have_every_option(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        for addr in [v4(0), SocketAddr::from((Ipv6Addr::LOCALHOST, 0)).into()] {
            let v6 = addr.is_ipv6();
            let listener = driver.listen(&addr, &fastopen_listener()).expect("listen");
            assert_all_options(&driver, listener, v6, "listener");
            let queue = driver.with_socket(listener, options::fastopen_queue).expect("TCP_FASTOPEN");
            let backlog = driver.with_socket(listener, options::listen_queue).expect("TCP_INFO");
            assert_eq!(queue, 5, "TCP_FASTOPEN queue");
            assert_eq!(backlog, ListenQueue { waiting: 0, max: 7 }, "the backlog");
            assert!(driver.accept(listener));
            let bound = std_addr(&driver.local_addr(listener).expect("address"));
            let _client = TcpStream::connect(bound).expect("connect");
            let accepted = accept(&mut driver, listener);
            assert_all_options(&driver, accepted, v6, "accepted connection");
            driver.close(accepted);
            driver.close(listener);
        }
    }

    fn a_connection_has_every_option(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = SockAddr::from(listener.local_addr().expect("address"));
        let options = ConnectOptions {
            socket: all_options(),
            fastopen: true,
            ..ConnectOptions::default()
        };
        let client = driver.connect_with(&addr, &options).expect("connect");
        assert_all_options(&driver, client, false, "connecting socket");
        let fastopen = driver
            .with_socket(client, options::fastopen_connect)
            .expect("TCP_FASTOPEN_CONNECT");
        assert!(fastopen, "TCP_FASTOPEN_CONNECT is on");
        connected(&mut driver, client);
        assert_all_options(&driver, client, false, "connected socket");
    }

    fn keepalive_finds_a_vanished_peer(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let quick = SocketOptions::new().keepalive(
            Keepalive::after(Duration::from_secs(1))
                .interval(Duration::from_secs(1))
                .count(1),
        );
        // A connection of a listener with keepalive (inherited by the accepted socket).
        let options = ListenOptions { socket: quick.clone(), ..ListenOptions::default() };
        let listener = driver.listen(&v4(0), &options).expect("listen");
        assert!(driver.accept(listener));
        let bound = std_addr(&driver.local_addr(listener).expect("address"));
        let peer = TcpStream::connect(bound).expect("connect");
        let accepted = accept(&mut driver, listener);
        if !vanish(peer) {
            return;
        }
        assert_eq!(recv_error(&mut driver, accepted), io::ErrorKind::ConnectionReset);

        // An outbound connection with keepalive.
        let server = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = SockAddr::from(server.local_addr().expect("address"));
        let connect = ConnectOptions { socket: quick, ..ConnectOptions::default() };
        let client = driver.connect_with(&addr, &connect).expect("connect");
        // The poll backend starts a connect in its next turn: wait for it before accepting.
        connected(&mut driver, client);
        let (peer, _) = server.accept().expect("accept");
        assert!(vanish(peer));
        assert_eq!(recv_error(&mut driver, client), io::ErrorKind::ConnectionReset);
    }

    fn the_backlog_bounds_the_accept_queue(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let options = ListenOptions { backlog: 1, ..ListenOptions::default() };
        let listener = driver.listen(&v4(0), &options).expect("listen");
        let addr = driver.local_addr(listener).expect("address");
        // Nobody accepts: the kernel completes backlog + 1 handshakes, then drops SYNs.
        let first: Vec<SocketId> =
            (0..2).map(|_| driver.connect(&addr).expect("connect")).collect();
        let mut connected = 0;
        drive(
            &mut driver,
            &mut connected,
            |_, connected, c| match c {
                Completion::Connected { socket, result } => {
                    assert!(first.contains(&socket));
                    result.expect("connected");
                    *connected += 1;
                }
                c => panic!("unexpected {c:?}"),
            },
            |_, connected| *connected == 2,
            |_, connected| format!("{connected} of 2 connected"),
        );
        let queue = |driver: &Driver| {
            driver.with_socket(listener, options::listen_queue).expect("TCP_INFO")
        };
        assert_eq!(queue(&driver), ListenQueue { waiting: 2, max: 1 });
        let third = driver.connect(&addr).expect("connect");
        // Turn once so the connect starts (the poll backend starts it in the turn).
        let mut out = Vec::new();
        driver.turn(Some(Duration::ZERO), &mut out).expect("turn");
        assert!(out.is_empty(), "nothing completes while the queue is full: {out:?}");
        assert_eq!(queue(&driver).waiting, 2, "the third connection is not queued");
        let state = driver.with_socket(third, options::tcp_state).expect("TCP_INFO");
        assert_eq!(state, TCP_SYN_SENT, "the third SYN was dropped");
        // Accepting drains the queue; the third SYN's retransmission then gets in.
        assert!(driver.accept(listener));
        let mut done = (0, false);
        drive(
            &mut driver,
            &mut done,
            |_, (accepted, connected), c| match c {
                Completion::Accepted { result, .. } => {
                    result.expect("accepted");
                    *accepted += 1;
                }
                Completion::Connected { socket, result } => {
                    assert_eq!(socket, third);
                    result.expect("connected");
                    *connected = true;
                }
                c => panic!("unexpected {c:?}"),
            },
            |_, &mut (accepted, connected)| accepted == 3 && connected,
            |_, (accepted, connected)| format!("{accepted} of 3 accepted, third connected: {connected}"),
        );
    }

    fn bad_options_fail_naming_the_option(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let source = |error: ringwork_platform::OpError| {
            assert_eq!(error.op, OpKind::Open);
            let text = error.to_string();
            let inner = error
                .source
                .get_ref()
                .and_then(|e| e.downcast_ref::<SocketOptionError>())
                .map(ToString::to_string)
                .unwrap_or_else(|| panic!("no SocketOptionError in {text}"));
            (error.kind(), inner)
        };
        let bad_listens = [
            (ListenOptions { backlog: 0, ..ListenOptions::default() }, "listen backlog 0"),
            (ListenOptions { backlog: 70_000, ..ListenOptions::default() }, "listen backlog 70000"),
            (ListenOptions { fastopen: Some(0), ..ListenOptions::default() }, "TCP_FASTOPEN 0"),
            (
                ListenOptions { socket: SocketOptions::new().recv_buffer(0), ..ListenOptions::default() },
                "SO_RCVBUF 0",
            ),
        ];
        for (options, text) in bad_listens {
            let (kind, inner) = source(driver.listen(&v4(0), &options).expect_err(text));
            assert_eq!(kind, io::ErrorKind::InvalidInput, "{text}");
            assert!(inner.starts_with(text), "{inner:?} names {text}");
        }
        let nowhere = ListenOptions {
            socket: SocketOptions::new().bind_device("nosuchdev0"),
            ..ListenOptions::default()
        };
        let (_, inner) = source(driver.listen(&v4(0), &nowhere).expect_err("no such device"));
        assert!(
            inner.starts_with("cannot set SO_BINDTODEVICE to \"nosuchdev0\": No such device"),
            "{inner}"
        );
        // Options only IP sockets take, on a Unix socket.
        let dir = std::env::temp_dir().join(format!("ringwork-sockopt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = SockAddr::unix(dir.join(format!("{backend:?}.sock"))).expect("unix address");
        let keepalive = ConnectOptions {
            socket: SocketOptions::new().keepalive(Keepalive::after(Duration::from_secs(9))),
            ..ConnectOptions::default()
        };
        let (kind, inner) = source(driver.connect_with(&path, &keepalive).expect_err("unix"));
        assert_eq!(kind, io::ErrorKind::Unsupported);
        assert_eq!(inner, "SO_KEEPALIVE unsupported: only IP sockets take it");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(driver.live_sockets(), 0, "no socket left behind by a failure");
    }
}

/// Makes `peer` vanish (see [`testing::vanish`]); `false` (skipped, loudly) without
/// CAP_NET_ADMIN outside CI.
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
