//! Outbound connections on every backend: refused, timed out (a loopback listener whose
//! accept queue is full drops the SYN, so the connect hangs without leaving the host),
//! and a successful connect with data both ways, including bytes written before it
//! connected.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Event, FullBacklog, Hello, Lost, nth, reactor, reactor_with, recorded, wait};
use ringwork::platform::BackendChoice;
use ringwork::{ConnectOptions, Context, Protocol, ReactorConfig, SockAddr};

const TIMEOUT: Duration = Duration::from_millis(200);

/// A loopback address nobody listens on (bound, then released).
fn closed_port() -> SockAddr {
    let listener = TcpListener::bind(common::any_port()).unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.into()
}

/// Checks a connect that timed out: only `connection_lost(ConnectTimeout)`, not before
/// `timeout` after `start`.
#[track_caller]
fn assert_timed_out(log: &common::Log, start: Instant, timeout: Duration) {
    let log = log.borrow();
    assert_eq!(
        log.events,
        [Event::Lost(Lost::ConnectTimeout)],
        "a hanging connect: {}",
        log.summary()
    );
    let at = log.lost_at.expect("lost");
    assert!(
        at >= start + timeout,
        "timed out after {:?}, before its {timeout:?} timeout",
        at - start
    );
}

/// Once connected, opens a connection to `target` with `timeout` from its callback.
struct ConnectFrom {
    target: SockAddr,
    timeout: Duration,
    inner: Option<common::Recorded<Hello>>,
}

impl Protocol for ConnectFrom {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let inner = self.inner.take().expect("connected once");
        ctx.connect(
            &self.target,
            inner,
            ConnectOptions::new().timeout(self.timeout),
        )
        .expect("create the socket");
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// Greets, then answers every message with its upper-case version.
struct Upper;

impl Protocol for Upper {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(b"hello from the server;");
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(&data.to_ascii_uppercase());
    }
}

/// Writes once connected; closes when `expect` bytes arrived.
struct Talker {
    expect: usize,
    got: usize,
}

impl Protocol for Talker {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(b" and after.");
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.got += data.len();
        if self.got >= self.expect {
            ctx.close();
        }
    }
}

ringwork::platform::test_all_backends! {
    /// Nobody listens: connection_lost(ConnectFailed(refused)), without connection_made.
    fn refused(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (client, log) = recorded(Hello(b"never sent".to_vec()));
        reactor.connect(&closed_port(), client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| log.borrow().is_lost(),
            || format!("the refused connect to end: {}", log.borrow().summary()),
        );
        assert_eq!(
            log.borrow().events,
            [Event::Lost(Lost::ConnectFailed(
                ErrorKind::ConnectionRefused
            ))],
            "{}",
            log.borrow().summary()
        );
        wait(
            &mut reactor,
            |r| r.connections() == 0,
            || "the failed connection to leave".into(),
        );
    }

    /// A connect that hangs ends with ConnectTimeout after the reactor's connect_timeout.
    fn timeout_from_config(backend: BackendChoice) {
        let config = ReactorConfig {
            connect_timeout: TIMEOUT,
            ..ReactorConfig::default()
        };
        let Some(mut reactor) = reactor_with(backend, config) else { return };
        let backlog = FullBacklog::new();
        let (client, log) = recorded(Hello(b"never sent".to_vec()));
        let start = Instant::now();
        reactor.connect(&backlog.addr.into(), client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| log.borrow().is_lost(),
            || {
                format!(
                    "the hanging connect to time out: {}",
                    log.borrow().summary()
                )
            },
        );
        assert_timed_out(&log, start, TIMEOUT);
        wait(
            &mut reactor,
            |r| r.connections() == 0,
            || "the timed-out connection to leave".into(),
        );
    }

    /// `Context::connect` with `ConnectOptions::timeout` from a callback: its own timeout
    /// applies (the reactor's default is 10 s).
    fn timeout_per_connect(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let backlog = FullBacklog::new();
        let addr = reactor
            .listen_tcp(common::any_port(), || common::Sink)
            .unwrap();
        let (inner, log) = recorded(Hello(b"never sent".to_vec()));
        let start = Instant::now();
        let outer = ConnectFrom {
            target: backlog.addr.into(),
            timeout: TIMEOUT,
            inner: Some(inner),
        };
        reactor.connect(&addr.into(), outer, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| log.borrow().is_lost(),
            || {
                format!(
                    "the hanging connect to time out: {}",
                    log.borrow().summary()
                )
            },
        );
        assert_timed_out(&log, start, TIMEOUT);
    }

    /// A connect that succeeds: bytes written before it connected go first, then both
    /// sides talk; the addresses of both ends agree.
    fn connects_and_talks_both_ways(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (factory, servers) = common::recording_factory(|| Upper);
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let sent = b"written before connecting and after.";
        let reply = b"hello from the server;WRITTEN BEFORE CONNECTING AND AFTER.";
        let (client, log) = recorded(Talker {
            expect: reply.len(),
            got: 0,
        });
        let id = reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        // Not connected yet: no turn has run.
        reactor.with_conn(id, |ctx| {
            assert!(ctx.is_open(), "a connecting connection accepts writes");
            ctx.write(b"written before connecting");
        });
        wait(
            &mut reactor,
            |_| log.borrow().is_lost() && common::nth_lost(&servers, 0),
            || {
                format!(
                    "the exchange to finish; client: {}; server: {}",
                    log.borrow().summary(),
                    common::summaries(&servers)
                )
            },
        );
        let server = nth(&servers, 0);
        let server = server.borrow();
        let client = log.borrow();
        assert_eq!(
            String::from_utf8_lossy(&server.bytes),
            String::from_utf8_lossy(sent),
            "server received"
        );
        assert_eq!(
            String::from_utf8_lossy(&client.bytes),
            String::from_utf8_lossy(reply),
            "client received"
        );
        assert_eq!(client.events[0], Event::Made);
        assert_eq!(
            client.lost(),
            Some(Lost::Done),
            "client: {}",
            client.summary()
        );
        assert_eq!(
            server.lost(),
            Some(Lost::Done),
            "server: {}",
            server.summary()
        );
    }

    /// Addresses: the client's peer is the listener, the server's peer is the client.
    fn addresses_of_both_ends(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (factory, servers) = common::recording_factory(|| common::Sink);
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let (client, log) = recorded(common::Sink);
        let id = reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| {
                log.borrow().made() == 1
                    && servers
                        .borrow()
                        .first()
                        .is_some_and(|s| s.borrow().made() == 1)
            },
            || "both ends to connect".into(),
        );
        let server_id = nth(&servers, 0).borrow().id.expect("server connection");
        let client_local = reactor
            .with_conn(id, |ctx| ctx.local_addr())
            .unwrap()
            .as_socket();
        let client_peer = reactor
            .with_conn(id, |ctx| ctx.peer_addr())
            .unwrap()
            .as_socket();
        let server_local = reactor
            .with_conn(server_id, |ctx| ctx.local_addr())
            .unwrap()
            .as_socket();
        let server_peer = reactor
            .with_conn(server_id, |ctx| ctx.peer_addr())
            .unwrap()
            .as_socket();
        assert_eq!(client_peer, Some(addr), "the client's peer is the listener");
        assert_eq!(
            server_local,
            Some(addr),
            "the server's local address is the listener's"
        );
        assert_eq!(server_peer, client_local, "the server's peer is the client");
        // Gone: addresses are an error, not a panic.
        reactor.with_conn(id, |ctx| ctx.abort());
        wait(
            &mut reactor,
            |r| r.connections() == 0,
            || "both ends to go".into(),
        );
        assert!(
            reactor.with_conn(id, |ctx| ctx.peer_addr()).is_err(),
            "address of a gone connection"
        );
    }
}

ringwork::platform::test_all_backends! {
    /// A TLS connect that hangs in TCP ends with ConnectTimeout after its own timeout, not
    /// the reactor's 10 s default (the handshake never starts).
    fn tls_timeout_per_connect(backend: BackendChoice) {
        use ringwork::testing::certs::TestCa;
        use ringwork::tls::{Roots, TlsConnector, server_name};
        let Some(mut reactor) = reactor(backend) else { return };
        let backlog = FullBacklog::new();
        let ca = TestCa::new();
        let connector = TlsConnector::builder()
            .roots(Roots::Certificates(vec![ca.cert.clone()]))
            .build()
            .expect("connector");
        let (client, log) = recorded(Hello(b"never sent".to_vec()));
        let start = Instant::now();
        let name = server_name("localhost").expect("name");
        reactor
            .connect(
                &backlog.addr.into(),
                client,
                ConnectOptions::new().timeout(TIMEOUT).tls(connector.clone(), name),
            )
            .expect("connect");
        wait(
            &mut reactor,
            |_| log.borrow().is_lost(),
            || format!("the hanging TLS connect to time out: {}", log.borrow().summary()),
        );
        assert_timed_out(&log, start, TIMEOUT);
    }
}
