//! Tests of the poll backend, through the public [`Driver`] over loopback.
//!
//! No test sleeps to wait for something: each turns the driver (with a 5 s timeout) until
//! the completion it awaits arrives, and fails past an overall deadline.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use socket2::SockAddr;

use super::timers::Timers;
use crate::config::{BackendChoice, BackendKind, DriverConfig};
use crate::driver::{Driver, ListenOptions};
use crate::table::Core;
use crate::{Completion, SocketId};

/// How long a test waits for an awaited completion before failing.
const LIMIT: Duration = Duration::from_secs(20);
/// Timeout of each turn.
const TURN: Option<Duration> = Some(Duration::from_secs(5));

/// A poll driver plus the completions it delivered and a test has not looked at yet.
struct Rig {
    driver: Driver,
    queue: VecDeque<Completion>,
    out: Vec<Completion>,
}

impl Rig {
    fn new() -> Self {
        Self::with(DriverConfig::default())
    }

    fn with(config: DriverConfig) -> Self {
        let driver = Driver::with_config(DriverConfig {
            backend: BackendChoice::Poll,
            ..config
        })
        .expect("poll driver");
        assert_eq!(driver.backend(), BackendKind::Poll);
        Self {
            driver,
            queue: VecDeque::new(),
            out: Vec::new(),
        }
    }

    /// One turn; its completions join the queue.
    fn turn(&mut self, timeout: Option<Duration>) {
        self.driver.turn(timeout, &mut self.out).expect("turn");
        self.queue.extend(self.out.drain(..));
    }

    /// Hands each completion to `f` (turning as needed) until `f` returns `Some`.
    fn until<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Driver, Completion) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + LIMIT;
        loop {
            while let Some(completion) = self.queue.pop_front() {
                if let Some(done) = f(&mut self.driver, completion) {
                    return done;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.turn(TURN);
        }
    }

    /// A listener, a client connected to it and the accepted server side.
    fn pair(&mut self) -> (SocketId, SocketId, SocketId) {
        let listener = self
            .driver
            .listen(&loopback(), &ListenOptions::default())
            .unwrap();
        assert!(self.driver.accept(listener));
        let addr = self.driver.local_addr(listener).unwrap();
        let client = self.driver.connect(&addr).unwrap();
        let (mut server, mut connected) = (None, false);
        self.until("accept and connect", |_, c| {
            match c {
                Completion::Accepted {
                    listener: l,
                    result,
                } if l == listener => {
                    server = Some(result.expect("accepted"));
                }
                Completion::Connected { socket, result } if socket == client => {
                    result.expect("connected");
                    connected = true;
                }
                other => panic!("unexpected {other:?}"),
            }
            (connected && server.is_some()).then_some(())
        });
        (listener, client, server.unwrap())
    }

    /// Turns `n` times without waiting and returns what arrived.
    fn drain_now(&mut self, n: usize) -> Vec<Completion> {
        for _ in 0..n {
            self.turn(Some(Duration::ZERO));
        }
        self.queue.drain(..).collect()
    }
}

fn loopback() -> SockAddr {
    SocketAddr::from(([127, 0, 0, 1], 0)).into()
}

/// `len` bytes that differ per `seed` and per position (so reordering or loss shows).
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The socket a completion is about, if any.
fn socket_of(c: &Completion) -> Option<SocketId> {
    match c {
        Completion::Accepted { listener, .. } => Some(*listener),
        Completion::Connected { socket, .. }
        | Completion::Received { socket, .. }
        | Completion::ReceivedFrom { socket, .. }
        | Completion::ReceivedFromUnix { socket, .. }
        | Completion::Eof { socket }
        | Completion::RecvError { socket, .. }
        | Completion::Sent { socket, .. }
        | Completion::FileSent { socket, .. }
        | Completion::SendError { socket, .. }
        | Completion::ShutdownDone { socket, .. }
        | Completion::Spliced { socket, .. } => Some(*socket),
        Completion::Exited { child, .. } => Some(*child),
        Completion::Timer { .. } | Completion::Woken | Completion::File { .. } => None,
    }
}

#[test]
fn tcp_echo_keeps_every_byte_in_order() {
    let mut rig = Rig::new();
    let (_listener, client, server) = rig.pair();
    assert!(rig.driver.recv(server));
    assert!(rig.driver.recv(client));
    let data = pattern(1, 300_000);
    for chunk in data.chunks(1000) {
        assert!(rig.driver.send(client, Bytes::copy_from_slice(chunk)));
    }
    let mut echoed = Vec::new();
    let mut sent = 0;
    rig.until("the echo", |driver, c| {
        match c {
            Completion::Received { socket, buf } if socket == server => {
                assert!(driver.send(server, Bytes::copy_from_slice(&buf)));
            }
            Completion::Received { socket, buf } if socket == client => {
                echoed.extend_from_slice(&buf);
            }
            Completion::Sent { socket, bytes, .. } if socket == client => sent += bytes,
            Completion::Sent { socket, .. } if socket == server => {}
            other => panic!("unexpected {other:?}"),
        }
        (echoed.len() >= data.len()).then_some(())
    });
    assert_eq!(sent, data.len());
    assert!(echoed == data, "echoed bytes differ from the bytes sent");
    assert_eq!(rig.driver.send_queued(client), Some(0));
    let stats = rig.driver.stats();
    assert_eq!(stats.enters, stats.turns, "one wait per turn: {stats:?}");
    assert!(stats.submitted > 0 && stats.completions > 0, "{stats:?}");
}

#[test]
fn accept_and_connect_agree_on_addresses() {
    let mut rig = Rig::new();
    let (listener, client, server) = rig.pair();
    let listening = rig.driver.local_addr(listener).unwrap().as_socket();
    assert_eq!(rig.driver.peer_addr(client).unwrap().as_socket(), listening);
    assert_eq!(
        rig.driver.peer_addr(server).unwrap().as_socket(),
        rig.driver.local_addr(client).unwrap().as_socket()
    );
    assert_eq!(rig.driver.live_sockets(), 3);
    let nodelay = rig.driver.with_socket(server, |s| s.tcp_nodelay()).unwrap();
    assert!(nodelay, "accepted TCP sockets get TCP_NODELAY");
}

#[test]
fn shutdown_write_gives_the_peer_eof_and_keeps_receiving() {
    let mut rig = Rig::new();
    let (_listener, client, server) = rig.pair();
    assert!(rig.driver.recv(server));
    assert!(rig.driver.recv(client));
    assert!(rig.driver.send(client, Bytes::from_static(b"last words")));
    assert!(rig.driver.shutdown_write(client));
    assert!(
        !rig.driver.send(client, Bytes::from_static(b"late")),
        "no sends after shutdown_write"
    );
    let (mut got, mut eof, mut shut) = (Vec::new(), false, false);
    rig.until("eof at the server", |_, c| {
        match c {
            Completion::Received { socket, buf } if socket == server => {
                assert!(!eof, "bytes after eof");
                got.extend_from_slice(&buf);
            }
            Completion::Eof { socket } if socket == server => eof = true,
            Completion::ShutdownDone { socket, result } if socket == client => {
                result.expect("shutdown");
                shut = true;
            }
            Completion::Sent { socket, .. } if socket == client => {
                assert!(!shut, "shutdown before the queue drained");
            }
            other => panic!("unexpected {other:?}"),
        }
        (eof && shut).then_some(())
    });
    assert_eq!(got, b"last words");
    // The half-closed client still receives.
    assert!(rig.driver.send(server, Bytes::from_static(b"reply")));
    assert!(rig.driver.shutdown_write(server));
    let mut reply = Vec::new();
    rig.until("eof at the client", |_, c| match c {
        Completion::Received { socket, buf } if socket == client => {
            reply.extend_from_slice(&buf);
            None
        }
        Completion::Eof { socket } if socket == client => Some(()),
        Completion::Sent { .. } | Completion::ShutdownDone { .. } => None,
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(reply, b"reply");
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let mut rig = Rig::new();
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let client = rig.driver.connect(&addr.into()).unwrap();
    let error = rig.until("the refusal", |_, c| match c {
        Completion::Connected { socket, result } if socket == client => {
            Some(result.expect_err("nothing listens there"))
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(error.socket, Some(client));
    assert!(rig.driver.close(client));
    rig.drain_now(1);
    assert_eq!(rig.driver.live_sockets(), 0);
}

#[test]
fn a_closed_socket_never_completes_again() {
    let mut rig = Rig::new();
    let (_listener, client, server) = rig.pair();
    // More than the kernel buffers hold while the server does not read.
    let big = Bytes::from(pattern(2, 16 << 20));
    assert!(rig.driver.send(client, big));
    assert!(rig.driver.recv(client));
    rig.until("a partial send", |_, c| match c {
        Completion::Sent { socket, queued, .. } if socket == client => (queued > 0).then_some(()),
        other => panic!("unexpected {other:?}"),
    });
    assert!(rig.driver.close(client));
    assert!(!rig.driver.close(client), "already closing");
    assert!(!rig.driver.send(client, Bytes::from_static(b"x")));
    assert_eq!(rig.driver.send_queued(client), None);
    // The server drains what reached the kernel, then sees the end of the stream.
    assert!(rig.driver.recv(server));
    let mut received = 0;
    rig.until("the server's eof", |_, c| {
        assert_ne!(
            socket_of(&c),
            Some(client),
            "completion for a closed socket: {c:?}"
        );
        match c {
            Completion::Received { socket, buf } if socket == server => {
                received += buf.len();
                None
            }
            Completion::Eof { socket } | Completion::RecvError { socket, .. }
                if socket == server =>
            {
                Some(())
            }
            other => panic!("unexpected {other:?}"),
        }
    });
    assert!(received > 0);
    assert_eq!(rig.driver.live_sockets(), 2);
    // The slot is reused with a new generation; the old id stays dead.
    let reused = rig.driver.connect(&loopback_of(&rig, server)).unwrap();
    assert_eq!(reused.slot(), client.slot());
    assert_ne!(reused, client);
    assert!(!rig.driver.recv(client));
    for c in rig.drain_now(3) {
        assert_ne!(
            socket_of(&c),
            Some(client),
            "completion for a closed socket: {c:?}"
        );
    }
    assert_eq!(rig.driver.stats().stale, 0);
}

/// The address the listener behind `server` listens on (the server's local address).
fn loopback_of(rig: &Rig, server: SocketId) -> SockAddr {
    rig.driver.local_addr(server).unwrap()
}

#[test]
fn abort_resets_the_connection() {
    let mut rig = Rig::new();
    let (_listener, client, server) = rig.pair();
    assert!(rig.driver.recv(server));
    assert!(rig.driver.abort(client));
    let error = rig.until("the reset", |_, c| match c {
        Completion::RecvError { socket, error } if socket == server => Some(error),
        Completion::Eof { socket } if socket == server => panic!("clean eof after abort"),
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    // Receiving stopped with the error.
    assert!(rig.drain_now(2).is_empty());
}

#[test]
fn recv_after_stop_reads_data_that_already_arrived() {
    let mut rig = Rig::new();
    let (_listener, client, server) = rig.pair();
    assert!(rig.driver.send(client, Bytes::from_static(b"early")));
    rig.until("the send", |_, c| match c {
        Completion::Sent { socket, .. } if socket == client => Some(()),
        other => panic!("unexpected {other:?}"),
    });
    // The readable edge arrives while nobody wants to read: nothing is read.
    assert!(rig.drain_now(3).is_empty());
    // Wanting to read again reads what the socket already showed, with no new edge.
    assert!(rig.driver.recv(server));
    let buf = rig.until("the early bytes", |_, c| match c {
        Completion::Received { socket, buf } if socket == server => Some(buf),
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(&*buf, b"early");
    drop(buf);
    // stop_recv leaves later bytes in the kernel until recv is called again.
    assert!(rig.driver.stop_recv(server));
    assert!(rig.driver.send(client, Bytes::from_static(b"later")));
    let early = rig.drain_now(3);
    assert!(
        early
            .iter()
            .all(|c| matches!(c, Completion::Sent { socket, .. } if *socket == client)),
        "{early:?}"
    );
    assert!(rig.driver.recv(server));
    let buf = rig.until("the later bytes", |_, c| match c {
        Completion::Received { socket, buf } if socket == server => Some(buf),
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(&*buf, b"later");
}

#[test]
fn stop_accept_leaves_connections_in_the_backlog() {
    let mut rig = Rig::new();
    let listener = rig
        .driver
        .listen(&loopback(), &ListenOptions::default())
        .unwrap();
    let addr = rig.driver.local_addr(listener).unwrap();
    let client = rig.driver.connect(&addr).unwrap();
    rig.until("the connect", |_, c| match c {
        Completion::Connected { socket, result } if socket == client => {
            result.expect("connected");
            Some(())
        }
        other => panic!("unexpected {other:?}"),
    });
    assert!(rig.drain_now(3).is_empty(), "not accepting yet");
    assert!(rig.driver.accept(listener));
    let server = rig.until("the accept", |_, c| match c {
        Completion::Accepted {
            listener: l,
            result,
        } if l == listener => Some(result.unwrap()),
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(
        rig.driver.peer_addr(server).unwrap().as_socket(),
        rig.driver.local_addr(client).unwrap().as_socket()
    );
}

#[test]
fn udp_round_trip_reports_the_sender() {
    let mut rig = Rig::new();
    let a = rig
        .driver
        .bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap();
    let b = rig
        .driver
        .bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap();
    let a_addr = rig.driver.local_addr(a).unwrap().as_socket().unwrap();
    let b_addr = rig.driver.local_addr(b).unwrap().as_socket().unwrap();
    assert!(rig.driver.recv(a));
    assert!(rig.driver.recv(b));
    assert!(rig.driver.send_to(a, Bytes::from_static(b"ping"), b_addr));
    assert!(rig.driver.send_to(a, Bytes::from_static(b"ping2"), b_addr));
    let mut sent = Vec::new();
    let mut got = Vec::new();
    rig.until("two datagrams at b", |_, c| {
        match c {
            Completion::Sent {
                socket,
                bytes,
                queued,
            } if socket == a => sent.push((bytes, queued)),
            Completion::ReceivedFrom {
                socket,
                buf,
                from,
                truncated,
            } if socket == b => {
                assert_eq!(from, a_addr);
                assert!(!truncated);
                got.push(buf.to_vec());
            }
            other => panic!("unexpected {other:?}"),
        }
        (got.len() == 2 && sent.len() == 2).then_some(())
    });
    assert_eq!(sent, [(4, 5), (5, 0)]);
    assert_eq!(got, [b"ping".to_vec(), b"ping2".to_vec()]);
    assert!(rig.driver.send_to(b, Bytes::from_static(b"pong"), a_addr));
    let (from, buf) = rig.until("the reply at a", |_, c| match c {
        Completion::ReceivedFrom {
            socket, buf, from, ..
        } if socket == a => Some((from, buf)),
        Completion::Sent { socket, .. } if socket == b => None,
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(from, b_addr);
    assert_eq!(&*buf, b"pong");
}

#[cfg(unix)]
#[test]
fn udp_datagram_longer_than_a_buffer_is_truncated() {
    let mut rig = Rig::with(DriverConfig {
        buf_size: 64,
        ..DriverConfig::default()
    });
    let a = rig
        .driver
        .bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap();
    let b = rig
        .driver
        .bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap();
    let b_addr = rig.driver.local_addr(b).unwrap().as_socket().unwrap();
    assert!(rig.driver.recv(b));
    let long = pattern(3, 100);
    assert!(rig.driver.send_to(a, Bytes::from(long.clone()), b_addr));
    assert!(rig.driver.send_to(a, Bytes::from_static(b"short"), b_addr));
    let mut got = Vec::new();
    rig.until("both datagrams", |_, c| {
        match c {
            Completion::ReceivedFrom {
                socket,
                buf,
                truncated,
                ..
            } if socket == b => got.push((buf.to_vec(), truncated)),
            Completion::Sent { socket, .. } if socket == a => {}
            other => panic!("unexpected {other:?}"),
        }
        (got.len() == 2).then_some(())
    });
    assert_eq!(got[0], (long[..64].to_vec(), true));
    assert_eq!(got[1], (b"short".to_vec(), false));
}

#[test]
fn timers_fire_in_deadline_order_and_cancelled_ones_never() {
    let mut rig = Rig::new();
    let now = Instant::now();
    let ms = Duration::from_millis;
    let late = rig.driver.timer(now + ms(90));
    let early = rig.driver.timer(now + ms(10));
    let cancelled_before_arming = rig.driver.timer(now + ms(20));
    let same_a = rig.driver.timer(now + ms(40));
    let same_b = rig.driver.timer(now + ms(40));
    let cancelled_while_armed = rig.driver.timer(now + ms(50));
    assert!(rig.driver.cancel_timer(cancelled_before_arming));
    rig.turn(Some(Duration::ZERO)); // arms the rest
    assert!(rig.driver.cancel_timer(cancelled_while_armed));
    assert!(!rig.driver.cancel_timer(cancelled_while_armed));
    let deadlines = HashMap::from([
        (early, now + ms(10)),
        (same_a, now + ms(40)),
        (same_b, now + ms(40)),
        (late, now + ms(90)),
    ]);
    let mut fired = Vec::new();
    rig.until("four timers", |_, c| {
        match c {
            Completion::Timer { timer } => {
                assert!(Instant::now() >= deadlines[&timer], "fired early");
                fired.push(timer);
            }
            other => panic!("unexpected {other:?}"),
        }
        (fired.len() == 4).then_some(())
    });
    assert_eq!(fired, [early, same_a, same_b, late]);
    assert!(!rig.driver.cancel_timer(early), "already fired");
    // Both cancelled deadlines passed long ago: nothing more may come.
    assert!(rig.drain_now(2).is_empty());
}

#[test]
fn a_turn_waits_for_the_next_timer() {
    let mut rig = Rig::new();
    let deadline = Instant::now() + Duration::from_millis(30);
    let timer = rig.driver.timer(deadline);
    // No timeout: only the timer can end this wait.
    let fired = rig.until("the timer", |_, c| match c {
        Completion::Timer { timer: t } => Some(t),
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(fired, timer);
    assert!(Instant::now() >= deadline);
}

#[test]
fn waker_ends_a_turn_blocked_without_timeout() {
    let mut rig = Rig::new();
    let waker = rig.driver.waker();
    let (go, wait) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        wait.recv().unwrap();
        waker.wake().unwrap();
    });
    go.send(()).unwrap();
    let mut out = Vec::new();
    while out.is_empty() {
        rig.driver.turn(None, &mut out).unwrap();
    }
    assert!(matches!(out[..], [Completion::Woken]), "{out:?}");
    thread.join().unwrap();
    // Wakes before the driver looks merge into one.
    let waker = rig.driver.waker();
    waker.wake().unwrap();
    waker.wake().unwrap();
    out.clear();
    rig.driver.turn(TURN, &mut out).unwrap();
    assert!(matches!(out[..], [Completion::Woken]), "{out:?}");
}

#[test]
fn exhausted_buffers_delay_reads_without_losing_or_reordering_bytes() {
    const CLIENTS: u64 = 4;
    const LEN: usize = 100_000;
    let mut rig = Rig::with(DriverConfig {
        buf_count: 2,
        buf_size: 64,
        ..DriverConfig::default()
    });
    let listener = rig
        .driver
        .listen(&loopback(), &ListenOptions::default())
        .unwrap();
    assert!(rig.driver.accept(listener));
    let addr = rig.driver.local_addr(listener).unwrap();
    for seed in 0..CLIENTS {
        let client = rig.driver.connect(&addr).unwrap();
        assert!(rig.driver.send(client, Bytes::from(pattern(seed, LEN))));
    }
    let mut streams: HashMap<SocketId, Vec<u8>> = HashMap::new();
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut turn = 0u64;
    while streams.len() < CLIENTS as usize || streams.values().any(|s| s.len() < LEN) {
        assert!(Instant::now() < deadline, "timed out");
        turn += 1;
        // Every third turn starts with every buffer still lent out: it must read nothing.
        let holding = turn.is_multiple_of(3);
        if !holding {
            held.clear();
        }
        let all_lent = holding && held.len() == 2;
        let timeout = if holding { Some(Duration::ZERO) } else { TURN };
        rig.turn(timeout);
        while let Some(c) = rig.queue.pop_front() {
            match c {
                Completion::Accepted { result, .. } => {
                    let server = result.unwrap();
                    assert!(rig.driver.recv(server));
                    streams.insert(server, Vec::new());
                }
                Completion::Received { socket, buf } => {
                    assert!(!all_lent, "read with every buffer lent out");
                    streams.get_mut(&socket).unwrap().extend_from_slice(&buf);
                    held.push(buf);
                }
                Completion::Connected { result, .. } => result.unwrap(),
                Completion::Sent { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(held.len() <= 2, "more buffers lent than the pool has");
        assert_eq!(rig.driver.buffers_available() as usize + held.len(), 2);
    }
    let mut seeds: Vec<u64> = streams
        .values()
        .map(|stream| {
            (0..CLIENTS)
                .find(|&seed| stream[..] == pattern(seed, LEN)[..])
                .expect("a stream arrived damaged, reordered or mixed")
        })
        .collect();
    seeds.sort_unstable();
    assert_eq!(seeds, (0..CLIENTS).collect::<Vec<_>>());
    drop(held);
    assert_eq!(rig.driver.buffers_available(), 2);
    assert!(rig.driver.stats().buffer_starvations > 0);
}

#[test]
fn data_that_arrives_while_every_buffer_is_lent_is_read_once_one_returns() {
    let mut rig = Rig::with(DriverConfig {
        buf_count: 2,
        buf_size: 64,
        ..DriverConfig::default()
    });
    let (_l1, c1, s1) = rig.pair();
    let (_l2, c2, s2) = rig.pair();
    assert!(rig.driver.recv(s1));
    assert!(rig.driver.recv(s2));
    // Lend both buffers out and keep them.
    assert!(rig.driver.send(c1, Bytes::from(pattern(4, 128))));
    let mut held = Vec::new();
    rig.until("both buffers lent", |_, c| {
        match c {
            Completion::Received { socket, buf } if socket == s1 => held.push(buf),
            Completion::Sent { socket, .. } if socket == c1 => {}
            other => panic!("unexpected {other:?}"),
        }
        (held.len() == 2).then_some(())
    });
    assert_eq!(rig.driver.buffers_available(), 0);
    // s2's only readable edge arrives now, with no buffer to read into.
    assert!(rig.driver.send(c2, Bytes::from_static(b"hello")));
    let quiet = rig.drain_now(3);
    assert!(
        quiet
            .iter()
            .all(|c| matches!(c, Completion::Sent { socket, .. } if *socket == c2)),
        "{quiet:?}"
    );
    // Returning the buffers must be enough: the peer sends nothing more.
    drop(held);
    let buf = rig.until("the bytes that waited", |_, c| match c {
        Completion::Received { socket, buf } if socket == s2 => Some(buf),
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(&*buf, b"hello");
    assert!(rig.driver.stats().buffer_starvations > 0);
}

#[cfg(unix)]
#[test]
fn unix_stream_echo() {
    let mut rig = Rig::new();
    let path = std::env::temp_dir().join(format!("ringwork-poll-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let addr = SockAddr::unix(&path).unwrap();
    let listener = rig.driver.listen(&addr, &ListenOptions::default()).unwrap();
    assert!(rig.driver.accept(listener));
    let client = rig.driver.connect(&addr).unwrap();
    assert!(
        rig.driver
            .send(client, Bytes::from_static(b"over a unix socket"))
    );
    assert!(rig.driver.recv(client));
    let (mut connected, mut echoed) = (false, Vec::new());
    rig.until("the echo", |driver, c| {
        match c {
            Completion::Accepted { result, .. } => assert!(driver.recv(result.unwrap())),
            Completion::Connected { socket, result } if socket == client => {
                result.unwrap();
                connected = true;
            }
            Completion::Received { socket, buf } if socket == client => {
                echoed.extend_from_slice(&buf);
            }
            Completion::Received { socket, buf } => {
                assert!(driver.send(socket, Bytes::copy_from_slice(&buf)));
            }
            Completion::Sent { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        (connected && echoed.len() >= 18).then_some(())
    });
    assert_eq!(echoed, b"over a unix socket");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn cancelled_timers_do_not_pile_up_in_the_heap() {
    let mut core = Core::new(DriverConfig::default());
    let mut timers = Timers::default();
    let far = Instant::now() + Duration::from_secs(3600);
    for _ in 0..10_000 {
        let id = core.insert_timer(far);
        timers.reconcile(&mut core);
        assert!(core.cancel_timer(id));
        timers.reconcile(&mut core);
    }
    assert!(timers.len() < 200, "heap kept {} entries", timers.len());
    let mut out = Vec::new();
    timers.fire(&mut core, far + Duration::from_secs(1), &mut out);
    assert!(out.is_empty(), "a cancelled timer fired: {out:?}");
}
