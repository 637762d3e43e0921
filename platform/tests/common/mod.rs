//! Helpers shared by the platform integration tests: a bounded "turn until" loop, loopback
//! addresses, a listener plus connected pairs, and seeded byte patterns.
//!
//! Every wait goes through [`drive`]: it turns the driver with a 500 ms timeout until the
//! caller's condition holds, and fails with the caller's description of what is still
//! missing after [`LIMIT`]. Nothing here sleeps.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use ringwork_platform::{Bytes, Completion, Driver, ListenOptions, SockAddr, SocketId, TimerId};

/// Timeout of each turn while waiting for something.
pub const TURN: Duration = Duration::from_millis(500);

/// Overall deadline of one wait: past it the test fails, saying what was missing.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Environment variable that overrides every test's default seed (to reproduce a run).
pub const SEED_ENV: &str = "RINGWORK_TEST_SEED";

/// The seed a test uses: `default`, or the value of [`SEED_ENV`]. Printed, so a failing run
/// can be repeated.
pub fn seed(test: &str, default: u64) -> u64 {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    eprintln!("{test}: seed {seed} (set {SEED_ENV} to change)");
    seed
}

/// A seeded generator.
pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// `len` pseudo-random bytes determined by `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rng(seed).fill_bytes(&mut bytes);
    bytes
}

/// `127.0.0.1:port`.
pub fn v4(port: u16) -> SockAddr {
    SocketAddr::from(([127, 0, 0, 1], port)).into()
}

/// Opens a listener on `127.0.0.1` (a free port) with accepting started; returns it and the
/// address it listens on.
pub fn listen(driver: &mut Driver) -> (SocketId, SockAddr) {
    let listener = driver
        .listen(&v4(0), &ListenOptions::default())
        .expect("listen on 127.0.0.1");
    let addr = driver.local_addr(listener).expect("listener address");
    assert!(driver.accept(listener), "accept on a fresh listener");
    (listener, addr)
}

/// Turns `driver` until `done(driver, state)` holds, handing each completion to `handle`.
///
/// `done` is checked before the first turn and after each turn's completions were handled
/// (so it doubles as an "after each turn" hook). After [`LIMIT`] the test fails with
/// `missing(driver, state)`. Returns the number of turns taken.
pub fn drive<S>(
    driver: &mut Driver,
    state: &mut S,
    mut handle: impl FnMut(&mut Driver, &mut S, Completion),
    mut done: impl FnMut(&mut Driver, &mut S) -> bool,
    missing: impl Fn(&Driver, &S) -> String,
) -> u64 {
    let deadline = Instant::now() + LIMIT;
    let mut out = Vec::new();
    let mut turns = 0;
    while !done(driver, state) {
        assert!(
            Instant::now() < deadline,
            "{} backend: still waiting after {LIMIT:?}: {}",
            driver.backend(),
            missing(driver, state)
        );
        driver.turn(Some(TURN), &mut out).expect("turn");
        turns += 1;
        for completion in out.drain(..) {
            handle(driver, state, completion);
        }
    }
    turns
}

/// Turns until every socket closed so far is gone from the table (`live_sockets() ==
/// expected`), failing on any completion (nothing is expected while closes finish).
///
/// A close produces no completion, so each turn is ended by a timer that is already due:
/// the poll backend releases closed sockets at once and would otherwise wait out the whole
/// turn timeout; io_uring releases them when their close completes.
pub fn settle(driver: &mut Driver, expected: usize) {
    drive(
        driver,
        &mut None,
        |_, barrier: &mut Option<TimerId>, c| match c {
            Completion::Timer { timer } if Some(timer) == *barrier => *barrier = None,
            c => panic!("unexpected completion while closes finish: {c:?}"),
        },
        |d, barrier| {
            let done = d.live_sockets() == expected;
            if !done && barrier.is_none() {
                *barrier = Some(d.timer(Instant::now()));
            }
            done
        },
        |d, _| format!("live_sockets {} != {expected}", d.live_sockets()),
    );
}

/// A connected pair of stream sockets on one driver.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Pair {
    /// The side that connected.
    pub client: SocketId,
    /// The side the listener accepted.
    pub server: SocketId,
}

/// Connects `n` clients to `listener` (listening on `addr`, accepting) and returns the
/// pairs, each client matched with its accepted socket by address. No recv is armed.
pub fn connect_pairs(
    driver: &mut Driver,
    listener: SocketId,
    addr: &SockAddr,
    n: usize,
) -> Vec<Pair> {
    #[derive(Default)]
    struct State {
        clients: Vec<SocketId>,
        connected: usize,
        accepted: Vec<SocketId>,
    }
    let mut state = State::default();
    for _ in 0..n {
        state
            .clients
            .push(driver.connect(addr).expect("connect to loopback"));
    }
    drive(
        driver,
        &mut state,
        |_, s, c| match c {
            Completion::Connected { socket, result } => {
                assert!(s.clients.contains(&socket), "connected {socket}: not ours");
                result.unwrap_or_else(|e| panic!("connecting {socket}: {e}"));
                s.connected += 1;
            }
            Completion::Accepted {
                listener: l,
                result,
            } => {
                assert_eq!(l, listener, "accepted on an unknown listener");
                s.accepted
                    .push(result.unwrap_or_else(|e| panic!("accepting: {e}")));
            }
            other => panic!("unexpected while connecting pairs: {other:?}"),
        },
        |_, s| s.connected == n && s.accepted.len() == n,
        |_, s| {
            format!(
                "{}/{n} connected, {}/{n} accepted",
                s.connected,
                s.accepted.len()
            )
        },
    );
    let by_addr: HashMap<SocketAddr, SocketId> = state
        .clients
        .iter()
        .map(|&c| (std_addr(&driver.local_addr(c).expect("client address")), c))
        .collect();
    let mut pairs: Vec<Pair> = state
        .accepted
        .iter()
        .map(|&server| {
            let peer = std_addr(&driver.peer_addr(server).expect("accepted peer address"));
            let client = *by_addr
                .get(&peer)
                .unwrap_or_else(|| panic!("accepted {server} from {peer}: no such client"));
            Pair { client, server }
        })
        .collect();
    pairs.sort_by_key(|p| state.clients.iter().position(|&c| c == p.client));
    pairs.dedup_by_key(|p| p.client);
    assert_eq!(
        pairs.len(),
        n,
        "every client matched exactly one accepted socket"
    );
    pairs
}

/// A `SockAddr` that holds an IP address, as a `SocketAddr`.
pub fn std_addr(addr: &SockAddr) -> SocketAddr {
    addr.as_socket().expect("an IP address")
}

/// Counts the open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
        // read_dir holds one descriptor of its own while listing.
        .saturating_sub(1)
}

/// The server side of a one-way stream test: the bytes expected and how many arrived.
pub struct Incoming {
    pub expected: Bytes,
    pub received: usize,
    pub eof: bool,
}

impl Incoming {
    /// Checks that `buf` is the next part of the stream (not lost, reordered or crossed
    /// with another connection) and counts it.
    pub fn take(&mut self, socket: SocketId, buf: &[u8]) {
        assert!(!self.eof, "{socket}: bytes after end of stream");
        let (start, end) = (self.received, self.received + buf.len());
        assert!(
            end <= self.expected.len() && *buf == self.expected[start..end],
            "{socket}: bytes {start}..{end} differ from what its client sent \
             (lost, reordered or crossed with another connection)"
        );
        self.received = end;
    }

    /// Checks that the end of stream comes once, after every byte.
    pub fn end(&mut self, socket: SocketId) {
        assert_eq!(
            self.received,
            self.expected.len(),
            "{socket}: end of stream early"
        );
        assert!(!self.eof, "{socket}: second end of stream");
        self.eof = true;
    }
}

/// Queues `len` seeded pattern bytes on every pair's client, in random chunks of up to
/// `max_chunk` bytes (so sends are vectored over several buffers), shuts the client's write
/// side down after them, and starts receiving on the server. Returns the clients' sent
/// counters (all 0) and the servers' expectations.
pub fn start_streams(
    driver: &mut Driver,
    pairs: &[Pair],
    seed: u64,
    len: usize,
    max_chunk: usize,
    rng: &mut SmallRng,
) -> (HashMap<SocketId, usize>, HashMap<SocketId, Incoming>) {
    let (mut sent, mut incoming) = (HashMap::new(), HashMap::new());
    for (i, &Pair { client, server }) in pairs.iter().enumerate() {
        let stream = Bytes::from(pattern(seed.wrapping_add(i as u64), len));
        let mut at = 0;
        while at < len {
            let end = (at + rng.random_range(1..=max_chunk)).min(len);
            assert!(driver.send(client, stream.slice(at..end)));
            at = end;
        }
        assert!(driver.shutdown_write(client));
        assert!(driver.recv(server));
        sent.insert(client, 0);
        incoming.insert(
            server,
            Incoming {
                expected: stream,
                received: 0,
                eof: false,
            },
        );
    }
    (sent, incoming)
}

/// Accepts one connection made by `connect` on a fresh listener; returns the outside end
/// and the driver's socket.
pub fn accept_one(driver: &mut Driver) -> (TcpStream, SocketId) {
    let (listener, addr) = listen(driver);
    let outside = TcpStream::connect(std_addr(&addr)).expect("connect");
    let mut accepted = None;
    drive(
        driver,
        &mut accepted,
        |_, accepted, c| match c {
            Completion::Accepted { result, .. } => *accepted = Some(result.expect("accepted")),
            c => panic!("unexpected {c:?}"),
        },
        |_, accepted| accepted.is_some(),
        |_, _| "no connection accepted".into(),
    );
    assert!(driver.close(listener));
    (outside, accepted.expect("accepted"))
}
