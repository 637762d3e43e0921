//! Listener preambles through the engine on every backend, with a preamble format made up
//! here (`FROM 1.2.3.4:5\n`): the protocol starts after the preamble and sees the named
//! client as its peer, the bytes after the preamble in the same write reach it intact, a
//! preamble arriving one byte per read, an invalid preamble, a peer that stalls past the
//! preamble timeout, a peer that leaves mid-preamble, and a preamble followed by TLS.
//!
//! Server and clients share one reactor on the test thread; waits turn the reactor until the
//! event (never sleep). The parser records, per thread, every buffer length it was called
//! with and the first byte it saw, so a test can wait for the engine to have read a byte.

mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{any_port, reactor, wait};
use ringwork::platform::BackendChoice;
use ringwork::platform::testing::retry_interrupted;
use ringwork::testing::certs::TestCa;
use ringwork::tls::{Roots, TlsAcceptor, TlsConnector, TlsInfo, server_name};
use ringwork::{
    ConnectOptions, Context, ListenerOptions, LostReason, PreambleStatus, Protocol, Reactor,
    SockAddr,
};

const PREFIX: &[u8] = b"FROM ";
/// The longest preamble the parser accepts (with its newline).
const MAX_PREAMBLE: usize = 64;
/// The client every test's preamble names.
const NAMED: &str = "1.2.3.4:5";
const PREAMBLE: &[u8] = b"FROM 1.2.3.4:5\n";

thread_local! {
    /// Every buffer length the parser was called with on this thread (this test's reactor).
    static PARSED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// The first byte of the first buffer the parser saw on this thread.
    static FIRST_BYTE: RefCell<Option<u8>> = const { RefCell::new(None) };
}

/// `FROM <ip>:<port>\n`: the named client.
fn from_line(buf: &[u8]) -> PreambleStatus {
    PARSED.with(|p| p.borrow_mut().push(buf.len()));
    FIRST_BYTE.with(|f| {
        f.borrow_mut().get_or_insert(buf[0]);
    });
    let head = &buf[..buf.len().min(PREFIX.len())];
    if head != &PREFIX[..head.len()] {
        return PreambleStatus::Invalid(format!("does not start with FROM: {head:?}"));
    }
    let Some(end) = buf.iter().position(|b| *b == b'\n') else {
        if buf.len() >= MAX_PREAMBLE {
            return PreambleStatus::Invalid("longer than 64 bytes".into());
        }
        return PreambleStatus::Incomplete;
    };
    let text = std::str::from_utf8(&buf[PREFIX.len()..end]).unwrap_or("");
    let (from, to) = match text.split_once(" TO ") {
        Some((from, to)) => (from, Some(to)),
        None => (text, None),
    };
    let parse = |text: &str| {
        text.parse::<SocketAddr>()
            .map(SockAddr::from)
            .map_err(|e| format!("{text:?}: {e}"))
    };
    // `FROM LOCAL`: no client named (the socket's peer stays).
    let peer = match from {
        "LOCAL" => Ok(None),
        from => parse(from).map(Some),
    };
    let local = to.map(parse).transpose();
    match (peer, local) {
        (Ok(peer), Ok(local)) => PreambleStatus::Done {
            consumed: end + 1,
            peer,
            local,
        },
        (Err(e), _) | (_, Err(e)) => PreambleStatus::Invalid(e),
    }
}

fn parsed_lengths() -> Vec<usize> {
    PARSED.with(|p| p.borrow().clone())
}

fn named() -> SocketAddr {
    NAMED.parse().unwrap()
}

/// What the server's protocol saw on one connection.
#[derive(Debug, Default)]
struct Seen {
    /// The order of the callbacks: `made`, `data`, `eof`, `lost`.
    events: Vec<&'static str>,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    socket_peer: Option<SocketAddr>,
    tls: Option<TlsInfo>,
    received: Vec<u8>,
    lost: Option<String>,
    preamble_lost: bool,
}

type Shared = Rc<RefCell<Vec<Rc<RefCell<Seen>>>>>;

fn addr(result: Result<SockAddr, impl std::fmt::Debug>) -> Option<SocketAddr> {
    result.ok().and_then(|a| a.as_socket())
}

/// What the server's protocol does in `connection_made`, besides recording.
#[derive(Clone, Copy)]
enum Start {
    /// Nothing: it echoes.
    Echo,
    /// Closes at once.
    Close,
    /// Pauses reading and resumes it from a timer 20 ms later.
    Pause,
}

/// Echo server recording what it saw.
struct Echo(Rc<RefCell<Seen>>, Start);

impl Protocol for Echo {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let mut seen = self.0.borrow_mut();
        seen.events.push("made");
        seen.peer = addr(ctx.peer_addr());
        seen.local = addr(ctx.local_addr());
        seen.socket_peer = addr(ctx.socket_peer_addr());
        seen.tls = ctx.tls().cloned();
        match self.1 {
            Start::Echo => {}
            Start::Close => ctx.close(),
            Start::Pause => {
                ctx.pause_reading();
                ctx.call_later(Duration::from_millis(20));
            }
        }
    }
    fn timer_fired(&mut self, ctx: &mut Context<'_>, _timer: ringwork::TimerId) {
        self.0.borrow_mut().events.push("timer");
        ctx.resume_reading();
    }
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let mut seen = self.0.borrow_mut();
        seen.events.push("data");
        seen.received.extend_from_slice(data);
        ctx.write(data);
    }
    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.0.borrow_mut().events.push("eof");
        ctx.close();
    }
    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        let mut seen = self.0.borrow_mut();
        seen.events.push("lost");
        seen.preamble_lost = matches!(reason, LostReason::Preamble(_));
        seen.lost = Some(reason.to_string());
    }
}

fn factory(log: &Shared, start: Start) -> impl FnMut() -> Echo + 'static {
    let log = log.clone();
    move || {
        let seen = Rc::new(RefCell::new(Seen::default()));
        log.borrow_mut().push(seen.clone());
        Echo(seen, start)
    }
}

fn listen(reactor: &mut Reactor, options: &ListenerOptions, log: &Shared) -> SockAddr {
    listen_starting(reactor, options, log, Start::Echo)
}

fn listen_starting(
    reactor: &mut Reactor,
    options: &ListenerOptions,
    log: &Shared,
    start: Start,
) -> SockAddr {
    reactor
        .listen_with(&any_port().into(), options, factory(log, start))
        .expect("listen_with")
}

fn options() -> ListenerOptions {
    ListenerOptions::default().preamble(from_line)
}

/// What a client connection saw.
#[derive(Debug, Default)]
struct ClientSeen {
    local: Option<SocketAddr>,
    received: Vec<u8>,
    eof: bool,
    lost: Option<String>,
}

/// Writes `send` once connected; closes once `expect` bytes came back (or at the peer's
/// end of stream); `close_at_once` closes right after writing, `half_close` ends its
/// sending side right after writing.
struct Client {
    send: Vec<u8>,
    expect: usize,
    close_at_once: bool,
    half_close: bool,
    seen: Rc<RefCell<ClientSeen>>,
}

impl Protocol for Client {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.seen.borrow_mut().local = addr(ctx.local_addr());
        ctx.write(&self.send);
        if self.close_at_once {
            ctx.close();
        } else if self.half_close {
            ctx.shutdown_write();
        }
    }
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let mut seen = self.seen.borrow_mut();
        seen.received.extend_from_slice(data);
        if seen.received.len() >= self.expect {
            ctx.close();
        }
    }
    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.seen.borrow_mut().eof = true;
        ctx.close();
    }
    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        self.seen.borrow_mut().lost = Some(reason.to_string());
    }
}

fn client(
    reactor: &mut Reactor,
    to: &SockAddr,
    send: &[u8],
    expect: usize,
) -> Rc<RefCell<ClientSeen>> {
    let seen = Rc::new(RefCell::new(ClientSeen::default()));
    let client = Client {
        send: send.to_vec(),
        expect,
        close_at_once: false,
        half_close: false,
        seen: seen.clone(),
    };
    reactor
        .connect(to, client, ConnectOptions::default())
        .expect("connect");
    seen
}

/// Waits until the `n`th server connection and every client in `clients` ended.
fn wait_all_lost(
    reactor: &mut Reactor,
    log: &Shared,
    servers: usize,
    clients: &[&Rc<RefCell<ClientSeen>>],
) {
    wait(
        reactor,
        |_| {
            let log = log.borrow();
            log.len() >= servers
                && log.iter().all(|s| s.borrow().lost.is_some())
                && clients.iter().all(|c| c.borrow().lost.is_some())
        },
        || {
            let servers: Vec<_> = log
                .borrow()
                .iter()
                .map(|s| format!("{:?}", s.borrow()))
                .collect();
            let clients: Vec<_> = clients
                .iter()
                .map(|c| format!("{:?}", c.borrow()))
                .collect();
            format!("connections not all ended: servers {servers:?}, clients {clients:?}")
        },
    );
}

/// A client closed by its peer without any bytes back: an end of stream or a reset.
#[track_caller]
fn assert_closed_without_reply(client: &ClientSeen) {
    assert!(
        client.received.is_empty(),
        "the server replied: {:?}",
        client.received
    );
    let lost = client.lost.as_deref().expect("client ended");
    assert!(
        client.eof || lost.contains("reset"),
        "client ended by {lost}, without an end of stream"
    );
}

ringwork::platform::test_all_backends! {
    fn protocol_starts_after_the_preamble_with_the_named_peer(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let log: Shared = Rc::default();
        let listening = listen(&mut reactor, &options(), &log);
        // The preamble and the protocol's first bytes in one write.
        let payload = b"hello\nand a second line that must arrive intact\n";
        let mut send = b"FROM 1.2.3.4:5 TO 6.7.8.9:10\n".to_vec();
        send.extend_from_slice(payload);
        let seen = client(&mut reactor, &listening, &send, payload.len());
        wait_all_lost(&mut reactor, &log, 1, &[&seen]);

        let client = seen.borrow();
        assert_eq!(client.received, payload, "echo of the bytes after the preamble");
        let server = log.borrow()[0].clone();
        let server = server.borrow();
        assert_eq!(server.events, ["made", "data", "eof", "lost"], "{server:?}");
        assert_eq!(server.received, payload, "the protocol sees no preamble byte");
        assert_eq!(server.peer, Some(named()), "peer_addr is the preamble's client");
        assert_eq!(server.local, Some("6.7.8.9:10".parse().unwrap()), "local_addr is the preamble's");
        // The socket's own peer is the client's socket.
        assert_eq!(server.socket_peer, client.local);
        assert!(server.socket_peer.unwrap().ip().is_loopback());
        assert!(!server.preamble_lost, "{:?}", server.lost);
        // One read carried everything: the parser was asked once.
        assert_eq!(parsed_lengths(), [send.len()]);
    }

    fn a_preamble_arriving_byte_by_byte(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let log: Shared = Rc::default();
        let listening = listen(&mut reactor, &options(), &log);
        let mut stream = TcpStream::connect(listening.as_socket().unwrap()).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_nonblocking(true).unwrap();
        for (i, byte) in PREAMBLE.iter().enumerate() {
            stream.write_all(&[*byte]).expect("write one byte");
            // The engine read this byte (and only it), and the protocol has not started.
            wait(&mut reactor, |_| parsed_lengths().last() == Some(&(i + 1)), || {
                format!("the parser to see {} bytes; it saw {:?}", i + 1, parsed_lengths())
            });
            let made = log.borrow().iter().any(|s| s.borrow().events.contains(&"made"));
            assert_eq!(made, i + 1 == PREAMBLE.len(), "connection_made after byte {}", i + 1);
        }
        assert_eq!(parsed_lengths(), (1..=PREAMBLE.len()).collect::<Vec<_>>());
        stream.write_all(b"ping").unwrap();
        let mut echo = Vec::new();
        wait(
            &mut reactor,
            |_| {
                let mut chunk = [0u8; 64];
                match retry_interrupted(|| stream.read(&mut chunk)) {
                    Ok(n) => echo.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("read: {e}"),
                }
                echo.len() >= 4
            },
            || "the echo of ping".into(),
        );
        assert_eq!(echo, b"ping");
        let server = log.borrow()[0].clone();
        assert_eq!(server.borrow().peer, Some(named()));
        assert_eq!(server.borrow().socket_peer, Some(stream.local_addr().unwrap()));
    }

    fn an_invalid_preamble_closes_without_starting_the_protocol(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let log: Shared = Rc::default();
        let listening = listen(&mut reactor, &options(), &log);
        let bad_start = client(&mut reactor, &listening, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1);
        let bad_addr = client(&mut reactor, &listening, b"FROM nowhere\nhello", 1);
        let too_long = client(&mut reactor, &listening, &[b'F', b'R', b'O', b'M', b' '].repeat(20), 1);
        wait_all_lost(&mut reactor, &log, 3, &[&bad_start, &bad_addr, &too_long]);
        for (what, seen) in [("bad start", &bad_start), ("bad address", &bad_addr), ("too long", &too_long)] {
            let seen = seen.borrow();
            assert!(seen.received.is_empty(), "{what}: {seen:?}");
            assert_closed_without_reply(&seen);
        }
        for server in log.borrow().iter() {
            let server = server.borrow();
            assert_eq!(server.events, ["lost"], "connection_made must not run: {server:?}");
            assert!(server.preamble_lost, "{:?}", server.lost);
            assert!(server.lost.as_deref().unwrap().starts_with("invalid preamble: "), "{:?}", server.lost);
        }
    }

    fn a_stalled_preamble_times_out(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let log: Shared = Rc::default();
        let mut options = options();
        options.preamble_timeout = Duration::from_millis(200);
        let listening = listen(&mut reactor, &options, &log);
        let started = Instant::now();
        let stalled = client(&mut reactor, &listening, b"FROM 1.2.3", 1);
        wait_all_lost(&mut reactor, &log, 1, &[&stalled]);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(200), "closed after {elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
        assert_closed_without_reply(&stalled.borrow());
        let server = log.borrow()[0].clone();
        let server = server.borrow();
        assert_eq!(server.events, ["lost"], "{server:?}");
        assert!(server.preamble_lost);
        assert_eq!(server.lost.as_deref(), Some("invalid preamble: timed out"));
    }

    fn a_peer_that_closes_mid_preamble(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let log: Shared = Rc::default();
        let listening = listen(&mut reactor, &options(), &log);
        let seen = Rc::new(RefCell::new(ClientSeen::default()));
        let leaver = Client { send: b"FROM 1.2".to_vec(), expect: 1, close_at_once: true, half_close: false, seen: seen.clone() };
        reactor.connect(&listening, leaver, ConnectOptions::default()).expect("connect");
        wait_all_lost(&mut reactor, &log, 1, &[&seen]);
        let server = log.borrow()[0].clone();
        let server = server.borrow();
        assert_eq!(server.events, ["lost"], "{server:?}");
        assert!(server.preamble_lost, "{:?}", server.lost);
        assert!(server.lost.as_deref().unwrap().contains("closed before"), "{:?}", server.lost);
    }

    fn a_cleartext_preamble_then_tls(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let acceptor = TlsAcceptor::builder().certificate(cert.chain(), cert.key()).build().unwrap();
        let connector = TlsConnector::builder().roots(Roots::Certificates(vec![ca.cert.clone()])).build().unwrap();
        let log: Shared = Rc::default();
        let listening = listen(&mut reactor, &options().tls(acceptor), &log);

        /// Writes the preamble in the clear, starts TLS at once, echoes a message through it.
        struct PreambleThenTls {
            connector: TlsConnector,
            seen: Rc<RefCell<ClientSeen>>,
            tls: Rc<RefCell<Option<TlsInfo>>>,
        }
        impl Protocol for PreambleThenTls {
            fn connection_made(&mut self, ctx: &mut Context<'_>) {
                ctx.write(PREAMBLE);
                ctx.start_tls_client(&self.connector, server_name("localhost").unwrap()).expect("start tls");
            }
            fn handshake_completed(&mut self, ctx: &mut Context<'_>) {
                *self.tls.borrow_mut() = ctx.tls().cloned();
                ctx.write(b"secret");
            }
            fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
                let mut seen = self.seen.borrow_mut();
                seen.received.extend_from_slice(data);
                if seen.received.len() >= 6 {
                    ctx.close();
                }
            }
            fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
                self.seen.borrow_mut().lost = Some(reason.to_string());
            }
        }
        let seen = Rc::new(RefCell::new(ClientSeen::default()));
        let tls = Rc::new(RefCell::new(None));
        let client = PreambleThenTls { connector, seen: seen.clone(), tls: tls.clone() };
        reactor.connect(&listening, client, ConnectOptions::default()).expect("connect");
        wait_all_lost(&mut reactor, &log, 1, &[&seen]);

        // The cleartext preamble went out before the ClientHello (a record starts with 22).
        assert_eq!(FIRST_BYTE.with(|f| *f.borrow()), Some(b'F'));
        assert_eq!(seen.borrow().received, b"secret", "{:?}", seen.borrow());
        assert_eq!(tls.borrow().as_ref().map(|t| t.version), Some("TLSv1.3"));
        let server = log.borrow()[0].clone();
        let server = server.borrow();
        assert_eq!(server.events, ["made", "data", "eof", "lost"], "{server:?}");
        assert_eq!(server.received, b"secret");
        assert_eq!(server.peer, Some(named()));
        assert!(server.socket_peer.unwrap().ip().is_loopback());
        let info = server.tls.as_ref().expect("connection_made after the handshake");
        assert_eq!(info.server_name.as_deref(), Some("localhost"));
    }

    fn a_preamble_without_a_client_keeps_the_socket_peer(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let log: Shared = Rc::default();
        let listening = listen(&mut reactor, &options(), &log);
        let seen = client(&mut reactor, &listening, b"FROM LOCAL\nping", 4);
        wait_all_lost(&mut reactor, &log, 1, &[&seen]);
        let client = seen.borrow();
        assert_eq!(client.received, b"ping");
        let server = log.borrow()[0].clone();
        let server = server.borrow();
        assert_eq!(server.peer, client.local, "no client named: peer_addr is the socket's");
        assert_eq!(server.peer, server.socket_peer);
        assert_eq!(server.local, listening.as_socket(), "no address named: local_addr is the socket's");
    }

    fn a_stalled_tls_handshake_after_the_preamble_times_out(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let acceptor = TlsAcceptor::builder()
            .certificate(cert.chain(), cert.key())
            .handshake_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let log: Shared = Rc::default();
        let listening = listen(&mut reactor, &options().tls(acceptor), &log);
        let started = Instant::now();
        // The preamble whole, then the start of a TLS record, then nothing.
        let mut send = PREAMBLE.to_vec();
        send.extend_from_slice(&[22, 3, 1, 0, 200]);
        let stalled = client(&mut reactor, &listening, &send, 1);
        wait_all_lost(&mut reactor, &log, 1, &[&stalled]);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(200), "closed after {elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
        let server = log.borrow()[0].clone();
        let server = server.borrow();
        assert_eq!(server.events, ["lost"], "{server:?}");
        assert!(!server.preamble_lost, "the preamble was read: {:?}", server.lost);
        assert_eq!(server.lost.as_deref(), Some("tls handshake timed out"), "{server:?}");
    }

    fn a_protocol_that_closes_or_pauses_at_once_after_the_preamble(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let mut send = PREAMBLE.to_vec();
        send.extend_from_slice(b"abc");
        let half_closing = |reactor: &mut Reactor, to: &SockAddr| {
            let seen = Rc::new(RefCell::new(ClientSeen::default()));
            let client = Client { send: send.clone(), expect: 3, close_at_once: false, half_close: true, seen: seen.clone() };
            reactor.connect(to, client, ConnectOptions::default()).expect("connect");
            seen
        };

        // Closing in connection_made: the bytes after the preamble are not delivered.
        let log: Shared = Rc::default();
        let listening = listen_starting(&mut reactor, &options(), &log, Start::Close);
        let seen = half_closing(&mut reactor, &listening);
        wait_all_lost(&mut reactor, &log, 1, &[&seen]);
        assert_closed_without_reply(&seen.borrow());
        let server = log.borrow()[0].clone();
        assert_eq!(server.borrow().events, ["made", "lost"], "{:?}", server.borrow());

        // Pausing in connection_made: the bytes after the preamble, then the end of stream,
        // wait for resume_reading, in order.
        let log: Shared = Rc::default();
        let listening = listen_starting(&mut reactor, &options(), &log, Start::Pause);
        let seen = half_closing(&mut reactor, &listening);
        wait_all_lost(&mut reactor, &log, 1, &[&seen]);
        assert_eq!(seen.borrow().received, b"abc", "{:?}", seen.borrow());
        let server = log.borrow()[0].clone();
        let server = server.borrow();
        assert_eq!(server.events, ["made", "timer", "data", "eof", "lost"], "{server:?}");
        assert_eq!(server.received, b"abc");
        assert_eq!(server.peer, Some(named()));

        // A whole preamble and nothing else, then the end of the stream: the protocol starts
        // and hears the end.
        let log: Shared = Rc::default();
        let listening = listen(&mut reactor, &options(), &log);
        let seen = Rc::new(RefCell::new(ClientSeen::default()));
        let client = Client { send: PREAMBLE.to_vec(), expect: 1, close_at_once: false, half_close: true, seen: seen.clone() };
        reactor.connect(&listening, client, ConnectOptions::default()).expect("connect");
        wait_all_lost(&mut reactor, &log, 1, &[&seen]);
        let server = log.borrow()[0].clone();
        let server = server.borrow();
        assert_eq!(server.events, ["made", "eof", "lost"], "{server:?}");
        assert_eq!(server.peer, Some(named()));
    }
}
