//! Closing with operations in flight, slot reuse, pausing receives, closing a listener, and
//! aborting, on every backend.
//!
//! Proves:
//! - (a) closing 64 sockets at once while each has a recv armed or a send that cannot
//!   complete (the peer does not read) delivers nothing more for them: no completion ever
//!   names a closed `SocketId`, even after its slot was reused (same `slot()`, new
//!   generation) by connections made right after the close, and every completion for the
//!   new connections matches what they did (byte-exact echo, send accounting);
//! - (b) `stop_recv` then `recv` (pause/resume, in the same turn or a timer later) loses no
//!   byte and keeps their order, and a paused socket receives nothing beyond what the kernel
//!   already held; end of stream is delivered once, even when `recv` is called while it
//!   waits unseen in the same batch;
//! - (c) a listener closed with accept armed never reports `Accepted`, connections racing
//!   the close end (refused, or reset/EOF at connect or receive), and once it is gone a
//!   connect is refused;
//!   a failed connect reports only its failure, even with a receive and a send wanted;
//! - (d) `abort` makes the peer's receive fail with `ConnectionReset`.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::SmallRng;
use ringwork_platform::{
    BackendChoice, Bytes, Completion, Driver, DriverConfig, SocketId, TimerId, test_all_backends,
    testing,
};
use socket2::{Domain, Socket, Type};

use common::{Pair, connect_pairs, drive, listen, pattern, rng, seed, settle, std_addr};

/// The sockets a completion names.
fn sockets_of(c: &Completion) -> Vec<SocketId> {
    match c {
        Completion::Accepted { listener, result } => {
            let mut ids = vec![*listener];
            ids.extend(result.as_ref().ok().copied());
            ids
        }
        Completion::Connected { socket, .. }
        | Completion::Received { socket, .. }
        | Completion::ReceivedFrom { socket, .. }
        | Completion::Eof { socket }
        | Completion::RecvError { socket, .. }
        | Completion::Sent { socket, .. }
        | Completion::SendError { socket, .. }
        | Completion::ShutdownDone { socket, .. } => vec![*socket],
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// (a) close with operations in flight, then slot reuse

/// Old connections closed in one go.
const OLD_PAIRS: usize = 32;
/// New connections made right after the close (before any slot is free again).
const WAVE1: usize = 8;
/// New connections made once the old slots are free (these reuse them).
const WAVE2: usize = 32;
/// What each old server tries to send to a client that never reads.
const STUCK_SEND: usize = 4 << 20;

enum Role {
    Client {
        stream: Bytes,
        connected: bool,
        sent: usize,
        echoed: usize,
    },
    Server {
        received: usize,
        sent: usize,
        eof: bool,
    },
}

struct Reuse {
    old: HashSet<SocketId>,
    /// Slot -> the closed socket that had it.
    old_slots: HashMap<u32, SocketId>,
    /// (closed socket, new socket in the same slot).
    reused: Vec<(SocketId, SocketId)>,
    new: HashMap<SocketId, Role>,
    listener: SocketId,
    clients_done: usize,
    servers_done: usize,
    /// New sockets closed, with the turn in which they were: a completion may still follow
    /// in the rest of that turn's batch (it arrived before the close), never later.
    closed_in: HashMap<SocketId, u64>,
    turn: u64,
    wave2_started: bool,
    seed: u64,
    made: u64,
}

impl Reuse {
    fn add(&mut self, id: SocketId, role: Role) {
        assert!(
            !self.old.contains(&id),
            "new socket got a closed socket's id {id}"
        );
        if let Some(&gone) = self.old_slots.get(&id.slot()) {
            self.reused.push((gone, id));
        }
        assert!(
            self.new.insert(id, role).is_none(),
            "id {id} handed out twice"
        );
    }

    fn connect(&mut self, driver: &mut Driver, addr: &ringwork_platform::SockAddr, n: usize) {
        let mut rng = rng(self.seed ^ self.made);
        for _ in 0..n {
            let id = driver.connect(addr).expect("connect");
            let len = rng.random_range(1..=64 * 1024);
            let stream = Bytes::from(pattern(self.seed.wrapping_add(self.made), len));
            self.made += 1;
            assert!(driver.send(id, stream.clone()));
            assert!(driver.shutdown_write(id));
            assert!(driver.recv(id));
            let role = Role::Client {
                stream,
                connected: false,
                sent: 0,
                echoed: 0,
            };
            self.add(id, role);
        }
    }

    fn close(&mut self, driver: &mut Driver, id: SocketId) {
        assert!(driver.close(id));
        self.closed_in.insert(id, self.turn);
    }

    fn handle(&mut self, driver: &mut Driver, c: Completion) {
        for id in sockets_of(&c) {
            assert!(!self.old.contains(&id), "completion for closed {id}: {c:?}");
            if let Some(&turn) = self.closed_in.get(&id) {
                assert_eq!(
                    turn, self.turn,
                    "completion for {id} turns after its close: {c:?}"
                );
            }
        }
        match c {
            Completion::Accepted { listener, result } => {
                assert_eq!(listener, self.listener);
                let id = result.expect("accept");
                assert!(driver.recv(id));
                let role = Role::Server {
                    received: 0,
                    sent: 0,
                    eof: false,
                };
                self.add(id, role);
            }
            Completion::Connected { socket, result } => match self.new.get_mut(&socket) {
                Some(Role::Client { connected, .. }) if !*connected => {
                    result.expect("connect");
                    *connected = true;
                }
                _ => panic!("Connected for {socket}, which did not connect (or twice)"),
            },
            Completion::Received { socket, buf } => match self.new.get_mut(&socket) {
                Some(Role::Server { received, eof, .. }) => {
                    assert!(!*eof, "{socket}: bytes after end of stream");
                    *received += buf.len();
                    assert!(driver.send(socket, Bytes::copy_from_slice(&buf)));
                }
                Some(Role::Client { stream, echoed, .. }) => {
                    let end = *echoed + buf.len();
                    assert!(
                        end <= stream.len() && *buf == stream[*echoed..end],
                        "{socket}: received bytes {}..{end} that are not the echo of what it \
                         sent ({} bytes)",
                        *echoed,
                        stream.len()
                    );
                    *echoed = end;
                }
                None => panic!("Received for {socket}, which is not a new socket"),
            },
            Completion::Sent {
                socket,
                bytes,
                queued,
            } => match self.new.get_mut(&socket) {
                Some(Role::Client { stream, sent, .. }) => {
                    *sent += bytes;
                    assert_eq!(*sent + queued, stream.len(), "{socket}: send accounting");
                }
                Some(Role::Server { received, sent, .. }) => {
                    *sent += bytes;
                    assert_eq!(*sent + queued, *received, "{socket}: send accounting");
                }
                None => panic!("Sent for {socket}, which is not a new socket"),
            },
            Completion::Eof { socket } => match self.new.get_mut(&socket) {
                Some(Role::Server { eof, .. }) => {
                    assert!(!*eof, "{socket}: second end of stream");
                    *eof = true;
                    assert!(driver.shutdown_write(socket));
                }
                Some(Role::Client {
                    stream,
                    echoed,
                    sent,
                    ..
                }) => {
                    assert_eq!(
                        *echoed,
                        stream.len(),
                        "{socket}: end of stream before the echo"
                    );
                    assert_eq!(
                        *sent,
                        stream.len(),
                        "{socket}: end of stream before sending"
                    );
                    self.clients_done += 1;
                    self.close(driver, socket);
                }
                None => panic!("Eof for {socket}, which is not a new socket"),
            },
            Completion::ShutdownDone { socket, result } => {
                result.unwrap_or_else(|e| panic!("{socket}: shutdown: {e}"));
                match self.new.get(&socket) {
                    Some(Role::Server { received, sent, .. }) => {
                        assert_eq!(received, sent, "{socket}: shut down before echoing all");
                        self.servers_done += 1;
                        self.close(driver, socket);
                    }
                    Some(Role::Client { stream, sent, .. }) => {
                        assert_eq!(*sent, stream.len(), "{socket}: shut down before sending");
                    }
                    None => panic!("ShutdownDone for {socket}, which is not a new socket"),
                }
            }
            other => panic!("unexpected on a new connection: {other:?}"),
        }
    }
}

test_all_backends! {
    fn close_in_flight_then_reuse_slots(backend: BackendChoice) {
        // With zero-copy sends on, a closed socket's last send may still wait for its
        // notification (the peer never reads): the close must not wait for it.
        for (name, config) in testing::data_path_configs() {
            eprintln!("{backend:?}, {name}");
            close_in_flight_then_reuse(backend, config);
        }
    }
}

fn close_in_flight_then_reuse(backend: BackendChoice, config: DriverConfig) {
    let Some(mut driver) = testing::driver(backend, config) else {
        return;
    };
    let seed = seed("close_in_flight_then_reuse_slots", 0xc105e);
    let (listener, addr) = listen(&mut driver);
    let pairs = connect_pairs(&mut driver, listener, &addr, OLD_PAIRS);
    let stuck = Bytes::from(vec![0xa5; STUCK_SEND]);
    for &Pair { client, server } in &pairs {
        // Small buffers so that the send below can never complete.
        driver
            .with_socket(server, |s| s.set_send_buffer_size(64 * 1024))
            .expect("SO_SNDBUF");
        driver
            .with_socket(client, |s| s.set_recv_buffer_size(64 * 1024))
            .expect("SO_RCVBUF");
        assert!(driver.recv(server));
        assert!(driver.send(server, stuck.clone()));
    }
    // Turn until every server's send went out in part and stalled.
    let mut partly_sent: HashSet<SocketId> = HashSet::new();
    drive(
        &mut driver,
        &mut partly_sent,
        |_, partly, c| match c {
            Completion::Sent { socket, queued, .. } => {
                assert!(
                    queued > 0,
                    "{socket}: a send to a peer that never reads completed"
                );
                partly.insert(socket);
            }
            other => panic!("unexpected before the close: {other:?}"),
        },
        |_, partly| partly.len() == OLD_PAIRS,
        |_, partly| format!("{}/{OLD_PAIRS} servers sent in part", partly.len()),
    );
    // One more turn submits the rest of each send, which stalls in flight.
    let mut out = Vec::new();
    driver.turn(Some(Duration::ZERO), &mut out).expect("turn");
    for c in out.drain(..) {
        assert!(
            matches!(c, Completion::Sent { queued, .. } if queued > 0),
            "{c:?}"
        );
    }
    let mut old = HashSet::new();
    for &Pair { client, server } in &pairs {
        assert!(
            driver.send_queued(server).unwrap() > 0,
            "{server}: send is done?"
        );
        old.insert(client);
        old.insert(server);
    }
    // Close them all in one go.
    for &id in &old {
        assert!(driver.close(id));
    }
    for &id in &old {
        assert!(!driver.close(id), "{id} closed twice");
        assert!(!driver.recv(id), "recv on closed {id}");
        assert!(
            !driver.send(id, Bytes::from_static(b"x")),
            "send on closed {id}"
        );
    }
    let live_before = driver.live_sockets();
    let old_slots = old.iter().map(|&id| (id.slot(), id)).collect();
    let mut state = Reuse {
        old,
        old_slots,
        reused: Vec::new(),
        new: HashMap::new(),
        listener,
        clients_done: 0,
        servers_done: 0,
        closed_in: HashMap::new(),
        turn: 0,
        wave2_started: false,
        seed,
        made: 0,
    };
    // New connections right away: the old slots are not free yet.
    state.connect(&mut driver, &addr, WAVE1);
    drive(
        &mut driver,
        &mut state,
        |driver, s, c| s.handle(driver, c),
        |driver, s| {
            s.turn += 1;
            // New sockets not closed yet (closed ones leave the table once released).
            let open = s.new.len() - s.closed_in.len();
            if !s.wave2_started && driver.live_sockets() == 1 + open {
                // Every old socket is gone from the table: its slot can be reused now.
                s.wave2_started = true;
                s.connect(driver, &addr, WAVE2);
            }
            let all = WAVE1 + WAVE2;
            s.wave2_started && s.clients_done == all && s.servers_done == all
        },
        |driver, s| {
            format!(
                "live_sockets {} (was {live_before} after the close), second wave started: \
                     {}, {}/{} clients and {}/{} servers done",
                driver.live_sockets(),
                s.wave2_started,
                s.clients_done,
                WAVE1 + WAVE2,
                s.servers_done,
                WAVE1 + WAVE2
            )
        },
    );
    let reused = &state.reused;
    eprintln!(
        "{backend:?}: {} of {} old slots reused, e.g. {:?}",
        reused.len(),
        state.old_slots.len(),
        reused.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        !reused.is_empty(),
        "no new socket reused a closed socket's slot"
    );
    for (gone, new) in reused {
        assert_eq!(gone.slot(), new.slot());
        assert_ne!(
            gone.generation(),
            new.generation(),
            "slot reused with the same generation"
        );
    }
    for &id in &state.old {
        assert!(
            !driver.send(id, Bytes::from_static(b"x")),
            "send on closed {id} after reuse"
        );
        assert!(!driver.recv(id), "recv on closed {id} after reuse");
        assert!(!driver.close(id), "close of closed {id} after reuse");
        assert!(
            driver.local_addr(id).is_err(),
            "address of closed {id} after reuse"
        );
    }
    assert!(driver.close(listener));
    settle(&mut driver, 0);
    eprintln!("{backend:?}: stats {:?}", driver.stats());
}

// ---------------------------------------------------------------------------------------
// (b) stop_recv / recv

const PAUSE_PAIRS: usize = 4;
const PAUSE_STREAM: usize = 1 << 20;
/// Bytes a client keeps in flight (sent but not yet received by the server). It bounds
/// what the kernel holds for a paused receiver, so a pause that does not stop receiving
/// shows up as more than this arriving in the turns after `stop_recv`.
const PAUSE_WINDOW: usize = 48 * 1024;

struct Paused {
    client: SocketId,
    expected: Bytes,
    /// Bytes the client handed to the driver.
    handed: usize,
    received: usize,
    next_pause: usize,
    paused: bool,
    /// Turn in which the current pause began.
    paused_in: u64,
    pauses: usize,
    /// Bytes delivered while paused, in total and in later turns of the current pause.
    while_paused: usize,
    this_pause: usize,
    eof: bool,
}

impl Paused {
    /// The client sends more while less than `PAUSE_WINDOW` is in flight.
    fn feed(&mut self, driver: &mut Driver, rng: &mut impl Rng) {
        let limit = (self.received + PAUSE_WINDOW).min(PAUSE_STREAM);
        while self.handed < limit {
            let end = (self.handed + rng.random_range(1..=16 * 1024)).min(limit);
            assert!(driver.send(self.client, self.expected.slice(self.handed..end)));
            self.handed = end;
            if end == PAUSE_STREAM {
                assert!(driver.shutdown_write(self.client));
            }
        }
    }
}

struct PauseState {
    /// Ordered, so that the seeded decisions come in the same order every run.
    servers: BTreeMap<SocketId, Paused>,
    timers: HashMap<TimerId, SocketId>,
    /// Paused sockets whose timer fired in this turn.
    resume: Vec<SocketId>,
    rng: SmallRng,
    clients_done: usize,
    eofs: usize,
    /// Turns completed.
    turn: u64,
}

test_all_backends! {
    fn pause_and_resume_receiving_loses_nothing(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let seed = seed("pause_and_resume", 0x9a05e);
        let (listener, addr) = listen(&mut driver);
        let pairs = connect_pairs(&mut driver, listener, &addr, PAUSE_PAIRS);
        let mut state = PauseState {
            servers: BTreeMap::new(),
            timers: HashMap::new(),
            resume: Vec::new(),
            rng: rng(seed),
            clients_done: 0,
            eofs: 0,
            turn: 0,
        };
        for (i, &Pair { client, server }) in pairs.iter().enumerate() {
            let mut paused = Paused {
                client,
                expected: Bytes::from(pattern(seed.wrapping_add(i as u64), PAUSE_STREAM)),
                handed: 0,
                received: 0,
                next_pause: state.rng.random_range(1..=64 * 1024),
                paused: false,
                paused_in: 0,
                pauses: 0,
                while_paused: 0,
                this_pause: 0,
                eof: false,
            };
            paused.feed(&mut driver, &mut state.rng);
            assert!(driver.recv(server));
            state.servers.insert(server, paused);
        }
        // Pauses and resumes are decided after each turn's completions were handled: a
        // `recv` while an unseen end of stream waits in the same batch would re-arm receiving
        // (see `eof_is_delivered_once`), which is not what this test is about.
        drive(
            &mut driver,
            &mut state,
            |driver, s, c| match c {
                Completion::Received { socket, buf } => {
                    let p = s.servers.get_mut(&socket).expect("a server socket");
                    assert!(!p.eof, "{socket}: bytes after end of stream");
                    let end = p.received + buf.len();
                    assert!(
                        end <= p.handed && *buf == p.expected[p.received..end],
                        "{socket}: bytes {}..{end} lost, reordered or duplicated",
                        p.received
                    );
                    p.received = end;
                    p.feed(driver, &mut s.rng);
                    if p.paused {
                        // Allowed: bytes the kernel had already received.
                        p.while_paused += buf.len();
                        if s.turn > p.paused_in {
                            // Not in the first turn after stop_recv: only what the kernel
                            // still held, which the client's window bounds.
                            p.this_pause += buf.len();
                            assert!(
                                p.this_pause <= PAUSE_WINDOW,
                                "{socket}: {} bytes delivered in the turns after stop_recv, \
                                 more than the kernel can have held ({PAUSE_WINDOW}): \
                                 receiving did not stop",
                                p.this_pause
                            );
                        }
                    }
                }
                Completion::Timer { timer } => {
                    s.resume.push(s.timers.remove(&timer).expect("our timer"));
                }
                Completion::Eof { socket } => {
                    let p = s.servers.get_mut(&socket).expect("a server socket");
                    assert_eq!(p.received, PAUSE_STREAM, "{socket}: end of stream early");
                    assert!(!p.eof, "{socket}: second end of stream");
                    p.eof = true;
                    s.eofs += 1;
                }
                Completion::Sent { .. } => {}
                Completion::ShutdownDone { socket, result } => {
                    result.unwrap_or_else(|e| panic!("{socket}: shutdown: {e}"));
                    s.clients_done += 1;
                }
                other => panic!("unexpected {other:?}"),
            },
            |driver, s| {
                s.turn += 1;
                for socket in std::mem::take(&mut s.resume) {
                    let p = s.servers.get_mut(&socket).expect("a server socket");
                    p.paused = false;
                    if !p.eof {
                        assert!(driver.recv(socket));
                    }
                }
                for (&socket, p) in &mut s.servers {
                    if p.paused || p.eof || p.received < p.next_pause {
                        continue;
                    }
                    assert!(driver.stop_recv(socket));
                    p.pauses += 1;
                    p.next_pause = p.received + s.rng.random_range(1..=64 * 1024);
                    if s.rng.random_bool(0.25) {
                        // Resume before the stop reached the backend.
                        assert!(driver.recv(socket));
                    } else {
                        p.paused = true;
                        p.paused_in = s.turn;
                        p.this_pause = 0;
                        let wait = Duration::from_micros(s.rng.random_range(0..=2000));
                        let timer = driver.timer(Instant::now() + wait);
                        s.timers.insert(timer, socket);
                    }
                }
                s.eofs == PAUSE_PAIRS && s.clients_done == PAUSE_PAIRS && s.timers.is_empty()
            },
            |_, s| {
                let progress: Vec<String> = s
                    .servers
                    .iter()
                    .map(|(id, p)| {
                        format!(
                            "{id}: {}/{PAUSE_STREAM} (sent {}) paused={} eof={}",
                            p.received, p.handed, p.paused, p.eof
                        )
                    })
                    .collect();
                format!(
                    "{}/{PAUSE_PAIRS} streams complete, {} timers pending: {progress:?}",
                    s.eofs,
                    s.timers.len()
                )
            },
        );
        let pauses: usize = state.servers.values().map(|p| p.pauses).sum();
        let while_paused: usize = state.servers.values().map(|p| p.while_paused).sum();
        eprintln!(
            "{backend:?}: {pauses} pauses over {} turns, {while_paused} bytes delivered while \
             paused",
            state.turn
        );
        assert!(pauses >= 8 * PAUSE_PAIRS, "too few pauses to prove anything: {pauses}");
        for pair in &pairs {
            assert!(driver.close(pair.client));
            assert!(driver.close(pair.server));
        }
        assert!(driver.close(listener));
        settle(&mut driver, 0);
    }
}

test_all_backends! {
    /// A `recv` (here: "keep receiving", as a protocol resuming reads after each chunk
    /// would call it) made while handling a batch whose later completion is the end of
    /// stream must not start receiving again: `Eof` means receiving has stopped, and it is
    /// delivered once.
    fn eof_is_delivered_once(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let (listener, addr) = listen(&mut driver);
        let Pair { client, server } = connect_pairs(&mut driver, listener, &addr, 1)[0];
        // The bytes and the end of stream are both in the kernel before the server reads,
        // so one turn delivers Received then Eof.
        assert!(driver.send(client, Bytes::from_static(b"last words")));
        assert!(driver.shutdown_write(client));
        let mut shut = false;
        drive(
            &mut driver,
            &mut shut,
            |_, shut, c| match c {
                Completion::Sent { .. } => {}
                Completion::ShutdownDone { result, .. } => {
                    result.expect("shutdown");
                    *shut = true;
                }
                other => panic!("unexpected {other:?}"),
            },
            |_, shut| *shut,
            |_, _| "the client's shutdown".to_string(),
        );
        assert!(driver.recv(server));
        #[derive(Default)]
        struct Seen {
            bytes: Vec<u8>,
            eofs: usize,
            /// An already-due timer that ends a turn after the first Eof.
            barrier: Option<TimerId>,
            barriers: usize,
            batches: Vec<Vec<&'static str>>,
        }
        let mut seen = Seen::default();
        drive(
            &mut driver,
            &mut seen,
            |driver, s, c| {
                let batch = s.batches.last_mut().expect("a batch");
                match c {
                    Completion::Received { socket, buf } => {
                        assert_eq!(socket, server);
                        batch.push("Received");
                        s.bytes.extend_from_slice(&buf);
                        // Keep receiving (a no-op while receiving is on). The driver may
                        // already know that the stream ended and refuse: either is fine.
                        let _ = driver.recv(server);
                    }
                    Completion::Eof { socket } => {
                        assert_eq!(socket, server);
                        batch.push("Eof");
                        s.eofs += 1;
                    }
                    Completion::Timer { timer } => {
                        assert_eq!(Some(timer), s.barrier);
                        batch.push("Timer");
                        s.barrier = None;
                        s.barriers += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            },
            |driver, s| {
                // Two more turns after the first Eof (each ended by a timer that is already
                // due) give a second Eof the chance to show.
                if s.eofs > 0 && s.barrier.is_none() && s.barriers < 2 {
                    s.barrier = Some(driver.timer(Instant::now()));
                }
                s.batches.push(Vec::new());
                s.barriers == 2
            },
            |_, s| format!("{} bytes, {} Eof, batches {:?}", s.bytes.len(), s.eofs, s.batches),
        );
        assert_eq!(seen.bytes, b"last words");
        seen.batches.retain(|b| !b.is_empty());
        assert_eq!(
            seen.eofs, 1,
            "end of stream delivered {} times (batches of completions: {:?})",
            seen.eofs, seen.batches
        );
        for id in [client, server, listener] {
            assert!(driver.close(id));
        }
        settle(&mut driver, 0);
    }
}

// ---------------------------------------------------------------------------------------
// (c) closing a listener with accept armed

/// Connections started in the same turn as the listener's close.
const RACING: usize = 16;

#[derive(Default)]
struct Racing {
    connected: HashSet<SocketId>,
    resolved: HashSet<SocketId>,
    refused: usize,
    reset: usize,
    eof: usize,
}

test_all_backends! {
    fn closed_listener_accepts_nothing(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let (listener, addr) = listen(&mut driver);
        // Keep the port bound (not listening) so no other test's listener can take it once
        // ours is gone: connects to it must be refused.
        let reserve = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        reserve.set_reuse_port(true).expect("SO_REUSEPORT");
        reserve.bind(&addr).expect("bind the reserve socket to the listener's port");
        // Accepting works (so accept is armed in the backend) ...
        let pair = connect_pairs(&mut driver, listener, &addr, 1)[0];
        assert!(driver.close(pair.client));
        assert!(driver.close(pair.server));
        // ... then connections race the listener's close.
        let mut clients = Vec::new();
        for i in 0..RACING {
            if i == RACING / 2 {
                assert!(driver.close(listener));
            }
            let id = driver.connect(&addr).expect("connect");
            assert!(driver.recv(id));
            clients.push(id);
        }
        assert!(!driver.accept(listener), "accept on a closed listener");
        let mut state = Racing::default();
        drive(
            &mut driver,
            &mut state,
            |driver, s, c| match c {
                Completion::Accepted { listener: l, result } => {
                    panic!("Accepted after the close (listener {l}): {result:?}")
                }
                Completion::Connected { socket, result: Err(e) } => {
                    // Refused, or reset by the listener's close after the handshake but
                    // before the backend saw the connect succeed (poll reads SO_ERROR).
                    match e.kind() {
                        ErrorKind::ConnectionRefused => s.refused += 1,
                        ErrorKind::ConnectionReset => s.reset += 1,
                        _ => panic!("{socket}: connect failed with {e}"),
                    }
                    assert!(s.resolved.insert(socket));
                    assert!(driver.close(socket));
                }
                Completion::Connected { socket, result: Ok(()) } => {
                    assert!(s.connected.insert(socket), "{socket} connected twice");
                }
                Completion::Eof { socket } => {
                    assert!(
                        !s.resolved.contains(&socket),
                        "{socket}: Eof after its connect failed (delivered in the same batch, \
                         before the caller could close it)"
                    );
                    assert!(s.connected.contains(&socket), "{socket}: EOF before connecting");
                    s.eof += 1;
                    assert!(s.resolved.insert(socket));
                    assert!(driver.close(socket));
                }
                Completion::RecvError { socket, error } => {
                    assert!(
                        !s.resolved.contains(&socket),
                        "{socket}: RecvError ({error}) after its connect failed"
                    );
                    assert!(s.connected.contains(&socket), "{socket}: error before connecting");
                    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{socket}: {error}");
                    s.reset += 1;
                    assert!(s.resolved.insert(socket));
                    assert!(driver.close(socket));
                }
                other => panic!("unexpected {other:?}"),
            },
            |driver, s| s.resolved.len() == RACING && driver.live_sockets() == 0,
            |driver, s| {
                let open: Vec<_> = clients.iter().filter(|c| !s.resolved.contains(c)).collect();
                format!(
                    "{}/{RACING} racing connects resolved; unresolved (connected, neither \
                     refused nor ended: an accepted socket nobody closed?): {open:?}; \
                     live_sockets {}",
                    s.resolved.len(),
                    driver.live_sockets()
                )
            },
        );
        eprintln!(
            "{backend:?}: racing connects: {} refused, {} reset, {} EOF",
            state.refused, state.reset, state.eof
        );
        // The listener is gone: a new connect is refused.
        let late = driver.connect(&addr).expect("connect");
        let mut refused = false;
        drive(
            &mut driver,
            &mut refused,
            |_, refused, c| match c {
                Completion::Connected { socket, result: Err(e) } if socket == late => {
                    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
                    *refused = true;
                }
                other => panic!("connect to a closed listener's port: unexpected {other:?}"),
            },
            |_, refused| *refused,
            |_, _| format!("connect to {:?} after its listener closed", std_addr(&addr)),
        );
        assert!(driver.close(late));
        settle(&mut driver, 0);
        drop(reserve);
    }
}

test_all_backends! {
    /// A connect that fails reports that failure and nothing else: receives and sends asked
    /// for before it completed do not turn into `Eof`, `RecvError` or `SendError` in the same
    /// batch (the caller closes the socket when it sees the failure, as `Connected` says).
    fn failed_connect_reports_only_the_failure(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        // A bound, not listening port: connects to it are refused.
        let reserve = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        reserve.bind(&common::v4(0)).expect("bind");
        let addr = reserve.local_addr().expect("address");
        let mut sockets = Vec::new();
        for i in 0..4 {
            let id = driver.connect(&addr).expect("connect");
            // Receive and send wanted before the connect completes (half of them).
            if i % 2 == 0 {
                assert!(driver.recv(id));
                assert!(driver.send(id, Bytes::from_static(b"never sent")));
            }
            sockets.push(id);
        }
        let mut seen: HashMap<SocketId, Vec<String>> = HashMap::new();
        drive(
            &mut driver,
            &mut seen,
            |driver, seen, c| {
                let socket = *sockets_of(&c).first().expect("a socket completion");
                let entry = seen.entry(socket).or_default();
                entry.push(format!("{c:?}"));
                match c {
                    Completion::Connected { socket, result: Err(e) } => {
                        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{socket}: {e}");
                        assert!(driver.close(socket));
                    }
                    _ => panic!(
                        "{socket}: after a refused connect only Connected(Err) is expected, \
                         got: {entry:?}"
                    ),
                }
            },
            |_, seen| seen.len() == sockets.len(),
            |_, seen| format!("connects refused so far: {seen:?}"),
        );
        settle(&mut driver, 0);
        drop(reserve);
    }
}

// ---------------------------------------------------------------------------------------
// (d) abort

test_all_backends! {
    fn abort_resets_the_peer(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let (listener, addr) = listen(&mut driver);
        let Pair { client, server } = connect_pairs(&mut driver, listener, &addr, 1)[0];
        // Both sides have a receive armed; one message crosses first.
        assert!(driver.recv(client));
        assert!(driver.recv(server));
        assert!(driver.send(client, Bytes::from_static(b"before the reset")));
        let mut got = Vec::new();
        drive(
            &mut driver,
            &mut got,
            |_, got, c| match c {
                Completion::Received { socket, buf } if socket == server => {
                    got.extend_from_slice(&buf);
                }
                Completion::Sent { socket, .. } if socket == client => {}
                other => panic!("unexpected {other:?}"),
            },
            |_, got| got.len() == 16,
            |_, got| format!("{}/16 bytes before the abort", got.len()),
        );
        assert_eq!(got, b"before the reset");
        assert!(driver.abort(client));
        assert!(!driver.abort(client), "second abort of {client}");
        let mut reset = false;
        drive(
            &mut driver,
            &mut reset,
            |_, reset, c| match c {
                Completion::RecvError { socket, error } if socket == server => {
                    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
                    *reset = true;
                }
                other => panic!("after abort, expected only the peer's reset, got {other:?}"),
            },
            |_, reset| *reset,
            |_, _| "the peer's RecvError(ConnectionReset) after abort".to_string(),
        );
        assert!(driver.close(server));
        assert!(driver.close(listener));
        settle(&mut driver, 0);
    }
}
