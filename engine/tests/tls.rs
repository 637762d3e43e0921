//! TLS through the engine on every backend: echo over many TLS connections (with paused
//! reading under backpressure), SNI, ALPN, resumption across cores' acceptor copies, client
//! certificates (required, optional, missing), certificates a client must reject (expired,
//! another name) unless it skips verification, STARTTLS, a peer that sends garbage instead of a ClientHello, a peer that
//! stalls mid-handshake, close_notify both ways, and TLS over a Unix socket.
//!
//! Server and clients share one reactor on the test thread; waits turn the reactor until the
//! event (never sleeps).

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{Lost, any_port, pattern, reactor, wait};
use ringwork::platform::BackendChoice;
use ringwork::testing::certs::{TestCa, TestCert};
use ringwork::tls::{
    ClientAuth, HandshakeKind, Roots, TlsAcceptor, TlsConnector, TlsError, TlsInfo, server_name,
};
use ringwork::{ConnectOptions, Context, LostReason, Protocol, Reactor, SockAddr};

/// What one side of one connection saw.
#[derive(Debug, Default)]
struct Seen {
    made: bool,
    info: Option<TlsInfo>,
    received: Vec<u8>,
    eof_close_notify: Option<bool>,
    handshake_completed: bool,
    lost: Option<String>,
    lost_kind: Option<Lost>,
    tls_error: Option<TlsError>,
}

type Shared = Rc<RefCell<Vec<Rc<RefCell<Seen>>>>>;

fn record_lost(seen: &RefCell<Seen>, reason: &LostReason) {
    let mut seen = seen.borrow_mut();
    seen.lost = Some(reason.to_string());
    seen.lost_kind = Some(Lost::from(reason));
    if let LostReason::Tls(e) = reason {
        seen.tls_error = Some(e.clone());
    }
}

/// Echo server that pauses reading while its writes are backed up.
struct EchoServer(Rc<RefCell<Seen>>);

impl Protocol for EchoServer {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let mut seen = self.0.borrow_mut();
        seen.made = true;
        seen.info = ctx.tls().cloned();
    }
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.0.borrow_mut().received.extend_from_slice(data);
        ctx.write(data);
    }
    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        ctx.pause_reading();
    }
    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        ctx.resume_reading();
    }
    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.0.borrow_mut().eof_close_notify = ctx.tls().map(|t| t.close_notify_received);
        ctx.close();
    }
    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        record_lost(&self.0, &reason);
    }
}

fn server_factory(log: &Shared) -> impl FnMut() -> EchoServer + 'static {
    let log = log.clone();
    move || {
        let seen = Rc::new(RefCell::new(Seen::default()));
        log.borrow_mut().push(seen.clone());
        EchoServer(seen)
    }
}

/// Sends `message` once connected (in odd pieces), closes once it is echoed whole.
struct EchoClient {
    message: Vec<u8>,
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for EchoClient {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        {
            let mut seen = self.seen.borrow_mut();
            seen.made = true;
            seen.info = ctx.tls().cloned();
        }
        for piece in self.message.chunks(7919) {
            ctx.write(piece);
        }
        if self.message.is_empty() {
            ctx.close();
        }
    }
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let mut seen = self.seen.borrow_mut();
        seen.received.extend_from_slice(data);
        if seen.received.len() >= self.message.len() {
            ctx.close();
        }
    }
    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        record_lost(&self.seen, &reason);
    }
}

struct Pki {
    ca: TestCa,
    localhost: TestCert,
}

fn pki() -> Pki {
    let ca = TestCa::new();
    let localhost = ca.server(&["localhost", "127.0.0.1"]);
    Pki { ca, localhost }
}

fn acceptor(pki: &Pki) -> ringwork::tls::TlsAcceptorBuilder {
    TlsAcceptor::builder()
        .certificate(pki.localhost.chain(), pki.localhost.key())
        .handshake_timeout(Duration::from_secs(10))
}

fn connector(pki: &Pki) -> ringwork::tls::TlsConnectorBuilder {
    TlsConnector::builder().roots(Roots::Certificates(vec![pki.ca.cert.clone()]))
}

fn connect_client(
    reactor: &mut Reactor,
    addr: &SockAddr,
    connector: &TlsConnector,
    name: &str,
    message: Vec<u8>,
) -> Rc<RefCell<Seen>> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let client = EchoClient {
        message,
        seen: seen.clone(),
    };
    reactor
        .connect(
            addr,
            client,
            ConnectOptions::new().tls(connector.clone(), server_name(name).unwrap()),
        )
        .expect("connect_tls");
    seen
}

fn wait_lost(reactor: &mut Reactor, seen: &[Rc<RefCell<Seen>>], what: &str) {
    wait(
        reactor,
        |_| seen.iter().all(|s| s.borrow().lost.is_some()),
        || {
            let open: Vec<String> = seen
                .iter()
                .map(|s| format!("{:?}", s.borrow().lost))
                .collect();
            format!("{what}: connections not all ended: {open:?}")
        },
    );
}

fn all_lost(log: &Shared) -> Vec<Rc<RefCell<Seen>>> {
    log.borrow().clone()
}

ringwork::platform::test_all_backends! {
    fn echo_through_tls_with_many_connections(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = pki();
        let log: Shared = Rc::default();
        let addr = reactor.listen_tls(any_port(), &acceptor(&pki).build().unwrap(), server_factory(&log)).unwrap();
        let connector = connector(&pki).build().unwrap();
        let sizes = [0usize, 1, 100, 16_384, 16_385, 70_000, 1 << 20, 3 << 20];
        let clients: Vec<_> = (0..48)
            .map(|i| {
                let message = pattern(sizes[i % sizes.len()] + i);
                (message.clone(), connect_client(&mut reactor, &addr.into(), &connector, "localhost", message))
            })
            .collect();
        let seen: Vec<_> = clients.iter().map(|(_, s)| s.clone()).collect();
        wait_lost(&mut reactor, &seen, "clients");
        for (i, (message, seen)) in clients.iter().enumerate() {
            let seen = seen.borrow();
            assert!(seen.made, "client {i}: {:?}", seen.lost);
            assert_eq!(seen.received.len(), message.len(), "client {i}");
            assert!(seen.received == *message, "client {i}: echo differs");
            assert_eq!(seen.lost_kind, Some(Lost::Done), "client {i}");
            let info = seen.info.as_ref().expect("client tls info");
            assert_eq!(info.version, "TLSv1.3");
            assert_eq!(info.server_name.as_deref(), Some("localhost"));
            assert_eq!(info.peer_certificates.first(), Some(&pki.localhost.cert));
        }
        let servers = all_lost(&log);
        wait_lost(&mut reactor, &servers, "servers");
        assert_eq!(servers.len(), clients.len());
        for server in &servers {
            let server = server.borrow();
            assert!(server.made);
            assert_eq!(server.lost_kind, Some(Lost::Done), "{:?}", server.lost);
            // Every client ended with close_notify.
            assert_eq!(server.eof_close_notify, Some(true));
            assert_eq!(server.info.as_ref().unwrap().server_name.as_deref(), Some("localhost"));
            assert!(server.info.as_ref().unwrap().peer_certificates.is_empty());
        }
        let stats = reactor.stats();
        assert_eq!(stats.tls_handshakes, 2 * clients.len() as u64);
        assert_eq!(stats.tls_failures, 0);
    }

    fn sni_picks_the_certificate_and_alpn_is_negotiated(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = pki();
        let a = pki.ca.server(&["a.test"]);
        let wild = pki.ca.server(&["*.b.test"]);
        let server = acceptor(&pki)
            .sni_certificate("a.test", a.chain(), a.key())
            .sni_certificate("*.b.test", wild.chain(), wild.key())
            .alpn(["h2", "http/1.1"])
            .build()
            .unwrap();
        let log: Shared = Rc::default();
        let addr: SockAddr = reactor.listen_tls(any_port(), &server, server_factory(&log)).unwrap().into();
        let http11 = connector(&pki).alpn(["http/1.1"]).build().unwrap();
        let both = connector(&pki).alpn(["h2", "http/1.1"]).build().unwrap();
        let none = connector(&pki).build().unwrap();
        let wrong = connector(&pki).alpn(["imap"]).build().unwrap();
        let cases = [
            (connect_client(&mut reactor, &addr, &http11, "a.test", b"x".to_vec()), Some(&a.cert), Some(&b"http/1.1"[..])),
            (connect_client(&mut reactor, &addr, &both, "x.b.test", b"x".to_vec()), Some(&wild.cert), Some(&b"h2"[..])),
            (connect_client(&mut reactor, &addr, &none, "localhost", b"x".to_vec()), Some(&pki.localhost.cert), None),
        ];
        let refused = connect_client(&mut reactor, &addr, &wrong, "localhost", b"x".to_vec());
        let mut seen: Vec<_> = cases.iter().map(|c| c.0.clone()).collect();
        seen.push(refused.clone());
        wait_lost(&mut reactor, &seen, "clients");
        for (i, (seen, cert, alpn)) in cases.iter().enumerate() {
            let seen = seen.borrow();
            let info = seen.info.as_ref().unwrap_or_else(|| panic!("case {i}: {:?}", seen.lost));
            assert_eq!(info.peer_certificates.first(), *cert, "case {i}: wrong certificate");
            assert_eq!(info.alpn.as_deref(), *alpn, "case {i}");
            assert_eq!(seen.received, b"x");
        }
        let refused = refused.borrow();
        assert!(!refused.made, "no common ALPN protocol must fail the handshake");
        assert!(matches!(refused.tls_error, Some(TlsError::Handshake(_))), "{:?}", refused.lost);
        let servers = all_lost(&log);
        wait_lost(&mut reactor, &servers, "servers");
        let alpns: Vec<Option<Vec<u8>>> = servers
            .iter()
            .filter_map(|s| s.borrow().info.as_ref().map(|i| i.alpn.clone()))
            .collect();
        assert!(alpns.contains(&Some(b"h2".to_vec())) && alpns.contains(&Some(b"http/1.1".to_vec())));
        let failed: Vec<_> = servers.iter().filter(|s| !s.borrow().made).collect();
        assert_eq!(failed.len(), 1);
        assert!(matches!(failed[0].borrow().tls_error, Some(TlsError::Handshake(_))));
    }

    fn resumption_resumes_on_another_cores_copy(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = pki();
        let server = acceptor(&pki).build().unwrap();
        let log: Shared = Rc::default();
        // Two listeners, each with its own per-core copy (as two cores would have).
        let first: SockAddr = reactor.listen_tls(any_port(), &server, server_factory(&log)).unwrap().into();
        let second: SockAddr = reactor.listen_tls(any_port(), &server, server_factory(&log)).unwrap().into();
        let client = connector(&pki).build().unwrap();
        let mut kinds = Vec::new();
        for addr in [&first, &second, &first] {
            let seen = connect_client(&mut reactor, addr, &client, "localhost", pattern(1000));
            wait_lost(&mut reactor, std::slice::from_ref(&seen), "client");
            let info = seen.borrow().info.clone().expect("handshake");
            kinds.push(info.handshake_kind);
        }
        assert_eq!(kinds, [HandshakeKind::Full, HandshakeKind::Resumed, HandshakeKind::Resumed]);
        let servers = all_lost(&log);
        wait_lost(&mut reactor, &servers, "servers");
        assert!(servers[1].borrow().info.as_ref().unwrap().resumed());
        // Without resumption, every handshake is full.
        let fresh = connector(&pki).resumption(false).build().unwrap();
        for _ in 0..2 {
            let seen = connect_client(&mut reactor, &first, &fresh, "localhost", pattern(10));
            wait_lost(&mut reactor, std::slice::from_ref(&seen), "client");
            assert_eq!(seen.borrow().info.as_ref().unwrap().handshake_kind, HandshakeKind::Full);
        }
    }

    fn client_certificates_required_optional_and_missing(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = pki();
        let alice = pki.ca.client("alice");
        let required = acceptor(&pki).client_auth(ClientAuth::Required(vec![pki.ca.cert.clone()])).build().unwrap();
        let optional = acceptor(&pki).client_auth(ClientAuth::Optional(vec![pki.ca.cert.clone()])).build().unwrap();
        let req_log: Shared = Rc::default();
        let opt_log: Shared = Rc::default();
        let req_addr: SockAddr = reactor.listen_tls(any_port(), &required, server_factory(&req_log)).unwrap().into();
        let opt_addr: SockAddr = reactor.listen_tls(any_port(), &optional, server_factory(&opt_log)).unwrap().into();
        let with_cert = connector(&pki).client_certificate(alice.chain(), alice.key()).build().unwrap();
        let without = connector(&pki).build().unwrap();

        let ok = connect_client(&mut reactor, &req_addr, &with_cert, "localhost", b"hi".to_vec());
        let missing = connect_client(&mut reactor, &req_addr, &without, "localhost", b"hi".to_vec());
        let anonymous = connect_client(&mut reactor, &opt_addr, &without, "localhost", b"hi".to_vec());
        wait_lost(&mut reactor, &[ok.clone(), missing.clone(), anonymous.clone()], "clients");
        assert_eq!(ok.borrow().received, b"hi");
        assert_eq!(anonymous.borrow().received, b"hi");
        // TLS 1.3: the client finishes its side before the server checks its certificate, so
        // it learns of the refusal by the server's alert.
        let missing = missing.borrow();
        assert!(missing.received.is_empty());
        assert!(matches!(missing.tls_error, Some(TlsError::Protocol(_) | TlsError::Handshake(_))), "{:?}", missing.lost);

        let servers = all_lost(&req_log);
        wait_lost(&mut reactor, &servers, "servers");
        let accepted: Vec<_> = servers.iter().filter(|s| s.borrow().made).collect();
        assert_eq!(accepted.len(), 1);
        let info = accepted[0].borrow().info.clone().unwrap();
        assert_eq!(info.peer_certificates.first(), Some(&alice.cert));
        let refused: Vec<_> = servers.iter().filter(|s| !s.borrow().made).collect();
        assert_eq!(refused.len(), 1);
        let refused = refused[0].borrow();
        assert!(matches!(refused.tls_error, Some(TlsError::Handshake(_))), "{:?}", refused.lost);
        let opt = all_lost(&opt_log);
        wait_lost(&mut reactor, &opt, "optional server");
        assert!(opt[0].borrow().info.as_ref().unwrap().peer_certificates.is_empty());
    }

    fn client_rejects_expired_wrong_host_and_untrusted_certificates(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = pki();
        let expired = pki.ca.expired(&["localhost"]);
        let other = pki.ca.server(&["other.test"]);
        let stranger = TestCa::new().server(&["localhost"]);
        let client = connector(&pki).build().unwrap();
        for (cert, what, expect) in [
            (&expired, "expired", "expired"),
            (&other, "wrong host", "not valid for name"),
            (&stranger, "untrusted", "unknown issuer"),
        ] {
            let server = TlsAcceptor::builder().certificate(cert.chain(), cert.key()).build().unwrap();
            let log: Shared = Rc::default();
            let addr: SockAddr = reactor.listen_tls(any_port(), &server, server_factory(&log)).unwrap().into();
            let seen = connect_client(&mut reactor, &addr, &client, "localhost", b"secret".to_vec());
            wait_lost(&mut reactor, std::slice::from_ref(&seen), what);
            let seen = seen.borrow();
            assert!(!seen.made, "{what}: handshake must fail");
            let error = seen.tls_error.clone().unwrap_or_else(|| panic!("{what}: {:?}", seen.lost));
            assert!(matches!(error, TlsError::Handshake(_)), "{what}: {error}");
            let text = error.to_string().to_lowercase().replace(' ', "");
            assert!(text.contains(&expect.replace(' ', "")), "{what}: {error}");
            let servers = all_lost(&log);
            wait_lost(&mut reactor, &servers, what);
            // The server never saw the plaintext, and its protocol never started.
            assert!(servers.iter().all(|s| !s.borrow().made && s.borrow().received.is_empty()));
        }
    }

    fn a_client_that_skips_verification_accepts_any_certificate(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = pki();
        let expired = pki.ca.expired(&["localhost"]);
        let other = pki.ca.server(&["other.test"]);
        let stranger = TestCa::new().server(&["localhost"]);
        // No roots at all: they are not needed (nor used) when verification is skipped.
        let client = TlsConnector::builder()
            .dangerous_skip_verification()
            .alpn([b"echo/1"])
            .build()
            .expect("a connector without roots");
        for (cert, what) in [(&expired, "expired"), (&other, "wrong host"), (&stranger, "untrusted")] {
            let server = TlsAcceptor::builder()
                .certificate(cert.chain(), cert.key())
                .alpn([b"echo/1"])
                .build()
                .unwrap();
            let log: Shared = Rc::default();
            let addr: SockAddr = reactor.listen_tls(any_port(), &server, server_factory(&log)).unwrap().into();
            let seen = connect_client(&mut reactor, &addr, &client, "localhost", b"secret".to_vec());
            wait_lost(&mut reactor, std::slice::from_ref(&seen), what);
            let seen = seen.borrow();
            assert!(seen.made, "{what}: the handshake must succeed: {:?}", seen.lost);
            assert_eq!(seen.received, b"secret", "{what}");
            let info = seen.info.as_ref().expect("tls info");
            assert_eq!(info.alpn.as_deref(), Some(&b"echo/1"[..]), "{what}");
            assert_eq!(info.peer_certificates.first(), Some(&cert.cert), "{what}");
        }
    }
}

/// STARTTLS over a line protocol: `STARTTLS\n` in the clear, `GO\n` in the clear, then TLS.
struct StartTlsServer {
    acceptor: TlsAcceptor,
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for StartTlsServer {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if ctx.tls().is_none() && !self.seen.borrow().handshake_completed {
            assert_eq!(data, b"STARTTLS\n", "only the command arrives in the clear");
            ctx.write(b"GO\n");
            ctx.start_tls_server(&self.acceptor).expect("start tls");
            assert!(matches!(
                ctx.start_tls_server(&self.acceptor),
                Err(TlsError::AlreadyTls)
            ));
            return;
        }
        self.seen.borrow_mut().received.extend_from_slice(data);
        ctx.write(data);
    }
    fn handshake_completed(&mut self, ctx: &mut Context<'_>) {
        let mut seen = self.seen.borrow_mut();
        seen.handshake_completed = true;
        seen.info = ctx.tls().cloned();
    }
    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        record_lost(&self.seen, &reason);
    }
}

struct StartTlsClient {
    connector: TlsConnector,
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for StartTlsClient {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        assert!(ctx.tls().is_none());
        ctx.write(b"STARTTLS\n");
    }
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if ctx.tls().is_none() {
            assert_eq!(data, b"GO\n");
            ctx.start_tls_client(&self.connector, server_name("localhost").unwrap())
                .expect("start tls");
            return;
        }
        let mut seen = self.seen.borrow_mut();
        seen.received.extend_from_slice(data);
        if seen.received.len() == 100_000 {
            ctx.close();
        }
    }
    fn handshake_completed(&mut self, ctx: &mut Context<'_>) {
        self.seen.borrow_mut().handshake_completed = true;
        self.seen.borrow_mut().info = ctx.tls().cloned();
        ctx.write(&pattern(100_000));
    }
    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        record_lost(&self.seen, &reason);
    }
}

/// Records raw bytes from a plain connection (the peer of a misbehaving client).
struct Raw {
    send: Vec<u8>,
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for Raw {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(&self.send);
    }
    fn data_received(&mut self, _ctx: &mut Context<'_>, data: &[u8]) {
        self.seen.borrow_mut().received.extend_from_slice(data);
    }
    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.seen.borrow_mut().eof_close_notify = Some(false);
        ctx.close();
    }
    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        record_lost(&self.seen, &reason);
    }
}

fn raw_client(reactor: &mut Reactor, addr: &SockAddr, send: &[u8]) -> Rc<RefCell<Seen>> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    reactor
        .connect(
            addr,
            Raw {
                send: send.to_vec(),
                seen: seen.clone(),
            },
            ConnectOptions::default(),
        )
        .expect("connect");
    seen
}

ringwork::platform::test_all_backends! {
    fn starttls_upgrades_a_plain_connection(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = pki();
        let acceptor = acceptor(&pki).build().unwrap();
        let server_seen = Rc::new(RefCell::new(Seen::default()));
        let factory_seen = server_seen.clone();
        let addr: SockAddr = reactor
            .listen_tcp(any_port(), move || StartTlsServer { acceptor: acceptor.clone(), seen: factory_seen.clone() })
            .unwrap()
            .into();
        let client_seen = Rc::new(RefCell::new(Seen::default()));
        reactor
            .connect(
                &addr,
                StartTlsClient { connector: connector(&pki).build().unwrap(), seen: client_seen.clone() },
                ConnectOptions::default(),
            )
            .unwrap();
        wait_lost(&mut reactor, &[client_seen.clone(), server_seen.clone()], "starttls");
        let client = client_seen.borrow();
        assert!(client.handshake_completed, "{:?}", client.lost);
        assert_eq!(client.info.as_ref().unwrap().version, "TLSv1.3");
        assert!(client.received == pattern(100_000));
        assert_eq!(client.lost_kind, Some(Lost::Done));
        let server = server_seen.borrow();
        assert!(server.handshake_completed);
        assert!(server.received == pattern(100_000));
    }

    fn garbage_instead_of_a_client_hello_is_refused(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = pki();
        let log: Shared = Rc::default();
        let addr: SockAddr = reactor.listen_tls(any_port(), &acceptor(&pki).build().unwrap(), server_factory(&log)).unwrap().into();
        let http = raw_client(&mut reactor, &addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        wait_lost(&mut reactor, std::slice::from_ref(&http), "raw client");
        let servers = all_lost(&log);
        wait_lost(&mut reactor, &servers, "server");
        let server = servers[0].borrow();
        assert!(!server.made && server.received.is_empty());
        assert!(matches!(server.tls_error, Some(TlsError::Handshake(_))), "{:?}", server.lost);
        // The peer got an alert record (content type 21), then the end of the stream.
        let http = http.borrow();
        assert_eq!(http.received.first(), Some(&21), "{:?}", http.received);
        assert_eq!(reactor.stats().tls_failures, 1);
    }

    fn a_stalled_handshake_times_out_and_a_cut_one_is_reported(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = pki();
        let log: Shared = Rc::default();
        let quick = acceptor(&pki).handshake_timeout(Duration::from_millis(200)).build().unwrap();
        let addr: SockAddr = reactor.listen_tls(any_port(), &quick, server_factory(&log)).unwrap().into();
        // The first 5 bytes of a record header promising more: the server waits for the rest.
        let stalled = raw_client(&mut reactor, &addr, &[22, 3, 1, 0, 200]);
        wait(&mut reactor, |_| log.borrow().first().is_some_and(|s| s.borrow().lost.is_some()), || "handshake timeout".into());
        let server = log.borrow()[0].clone();
        assert!(matches!(server.borrow().tls_error, Some(TlsError::HandshakeTimeout)), "{:?}", server.borrow().lost);
        assert!(!server.borrow().made);
        wait_lost(&mut reactor, std::slice::from_ref(&stalled), "stalled client closed");

        // A client that leaves mid-handshake.
        struct Leaver;
        impl Protocol for Leaver {
            fn connection_made(&mut self, ctx: &mut Context<'_>) {
                ctx.write(&[22, 3, 1, 0, 200, 1, 0]);
                ctx.close();
            }
            fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
        }
        reactor.connect(&addr, Leaver, ConnectOptions::default()).unwrap();
        wait(&mut reactor, |_| log.borrow().get(1).is_some_and(|s| s.borrow().lost.is_some()), || "cut handshake".into());
        let cut = log.borrow()[1].clone();
        assert!(matches!(cut.borrow().tls_error, Some(TlsError::ClosedDuringHandshake)), "{:?}", cut.borrow().lost);
    }

    fn tls_over_a_unix_socket_and_a_bare_tcp_end(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = pki();
        let dir = std::env::temp_dir().join(format!("ringwork-tls-unix-{}-{backend:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tls.sock");
        let log: Shared = Rc::default();
        reactor.listen_unix_tls(&path, &acceptor(&pki).build().unwrap(), server_factory(&log)).unwrap();
        let addr = SockAddr::unix(&path).unwrap();
        let client = connector(&pki).build().unwrap();
        let seen = connect_client(&mut reactor, &addr, &client, "localhost", pattern(200_000));
        wait_lost(&mut reactor, std::slice::from_ref(&seen), "unix client");
        assert!(seen.borrow().received == pattern(200_000));
        assert_eq!(seen.borrow().lost_kind, Some(Lost::Done));

        // A client that ends with a bare TCP close (abort after the handshake: no
        // close_notify) is an end of stream whose close_notify flag stays false.
        struct Abrupt(Rc<RefCell<Seen>>);
        impl Protocol for Abrupt {
            fn connection_made(&mut self, ctx: &mut Context<'_>) {
                ctx.write(b"bye");
            }
            fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
                ctx.shutdown_write();
            }
            fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
                record_lost(&self.0, &reason);
            }
        }
        let abrupt = Rc::new(RefCell::new(Seen::default()));
        let options = ConnectOptions::new().tls(client.clone(), server_name("localhost").unwrap());
        reactor.connect(&addr, Abrupt(abrupt.clone()), options).unwrap();
        wait_lost(&mut reactor, std::slice::from_ref(&abrupt), "half-closing client");
        let servers = all_lost(&log);
        wait_lost(&mut reactor, &servers, "servers");
        // shutdown_write sends close_notify before the TCP half-close.
        assert_eq!(servers[1].borrow().eof_close_notify, Some(true));
        assert_eq!(servers[1].borrow().received, b"bye");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
