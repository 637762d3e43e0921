//! Loopback echo through the raw driver API, on every backend.
//!
//! Proves: one driver carries a server and 64 clients at once; messages of random sizes
//! from 1 B to 1 MiB (many small, some large) come back byte for byte and in order, each
//! connection with its own seeded byte pattern; sends queued before the connect completes go
//! out; `shutdown_write` is ordered after the queued bytes on both sides (each client sees
//! end-of-stream exactly after its last byte); every closed socket leaves the table; and
//! under io_uring one kernel enter yields more than one completion on average (batching).

mod common;

use std::collections::HashMap;

use rand::Rng;
use ringwork_platform::{
    BackendChoice, BackendKind, Bytes, Completion, Driver, DriverConfig, SocketId,
    test_all_backends, testing,
};

use common::{drive, listen, pattern, rng, seed, settle};

/// Connections (clients; the server has as many accepted sockets).
const CLIENTS: usize = 64;
/// Messages each client sends.
const MESSAGES: usize = 12;
/// Largest message.
const MAX_MESSAGE: usize = 1 << 20;
/// Messages a client has in flight before it waits for their echo.
const WINDOW: usize = 2;

struct Client {
    /// Everything this client sends, in order.
    stream: Bytes,
    /// End offset of each message in `stream`.
    ends: Vec<usize>,
    /// Messages handed to the driver so far.
    queued: usize,
    /// Bytes the driver reported sent.
    sent: usize,
    /// Bytes echoed back and verified.
    received: usize,
    eof: bool,
}

impl Client {
    fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        let mut ends = Vec::with_capacity(MESSAGES);
        let mut total = 0;
        for _ in 0..MESSAGES {
            let size = match rng.random_range(0..100) {
                0..80 => rng.random_range(1..=2048),
                80..95 => rng.random_range(2049..=65536),
                _ => rng.random_range(65537..=MAX_MESSAGE),
            };
            total += size;
            ends.push(total);
        }
        Self {
            stream: Bytes::from(pattern(seed ^ 0x5eed, total)),
            ends,
            queued: 0,
            sent: 0,
            received: 0,
            eof: false,
        }
    }

    /// Queues messages while fewer than `WINDOW` await their echo; shuts down the write
    /// side after the last one.
    fn send_more(&mut self, driver: &mut Driver, id: SocketId) {
        while self.queued < self.ends.len()
            && (self.queued < WINDOW || self.received >= self.ends[self.queued - WINDOW])
        {
            let start = if self.queued == 0 {
                0
            } else {
                self.ends[self.queued - 1]
            };
            let end = self.ends[self.queued];
            assert!(
                driver.send(id, self.stream.slice(start..end)),
                "send on {id}"
            );
            self.queued += 1;
            if self.queued == self.ends.len() {
                assert!(driver.shutdown_write(id), "shutdown_write on {id}");
            }
        }
    }
}

#[derive(Default)]
struct State {
    clients: HashMap<SocketId, Client>,
    servers: HashMap<SocketId, ServerSide>,
    /// Server sockets closed after echoing everything.
    servers_done: usize,
    clients_done: usize,
    echoed_bytes: usize,
}

#[derive(Default)]
struct ServerSide {
    received: usize,
    sent: usize,
    eof: bool,
}

test_all_backends! {
    fn many_clients_echo_random_sizes_in_order(backend: BackendChoice) {
        for (name, config) in testing::data_path_configs() {
            eprintln!("{backend:?}, {name}");
            echo_random_sizes(backend, config);
        }
    }
}

fn echo_random_sizes(backend: BackendChoice, config: DriverConfig) {
    let Some(mut driver) = testing::driver(backend, config) else {
        return;
    };
    // What the driver was made with (RINGWORK_URING_PATHS may have set it).
    let zc_wanted = driver.config().send_zc_min.is_some();
    let bundles_wanted = driver.config().recv_bundle;
    let seed = seed("echo", 0xec40);
    let (listener, addr) = listen(&mut driver);
    let mut state = State::default();
    let mut total = 0;
    for i in 0..CLIENTS {
        let id = driver.connect(&addr).expect("connect");
        let mut client = Client::new(seed.wrapping_add(i as u64));
        total += client.stream.len();
        // Sends and recv are asked for before the connect completes.
        assert!(driver.recv(id));
        client.send_more(&mut driver, id);
        state.clients.insert(id, client);
    }
    eprintln!("{backend:?}: {CLIENTS} clients echo {total} bytes in total");
    let clients: Vec<SocketId> = state.clients.keys().copied().collect();

    drive(
        &mut driver,
        &mut state,
        |driver, s, c| match c {
            Completion::Accepted {
                listener: l,
                result,
            } => {
                assert_eq!(l, listener);
                let id = result.expect("accept");
                assert!(driver.recv(id));
                assert!(s.servers.insert(id, ServerSide::default()).is_none());
            }
            Completion::Connected { socket, result } => {
                assert!(
                    s.clients.contains_key(&socket),
                    "connected: unknown {socket}"
                );
                result.expect("connect");
            }
            Completion::Received { socket, buf } => {
                if let Some(server) = s.servers.get_mut(&socket) {
                    assert!(!server.eof, "{socket}: bytes after end of stream");
                    server.received += buf.len();
                    assert!(driver.send(socket, Bytes::copy_from_slice(&buf)));
                } else if let Some(client) = s.clients.get_mut(&socket) {
                    assert!(!buf.is_empty(), "{socket}: empty Received");
                    let start = client.received;
                    let end = start + buf.len();
                    assert!(
                        end <= client.stream.len(),
                        "{socket}: echo of {end} bytes, only {} were sent",
                        client.stream.len()
                    );
                    if *buf != client.stream[start..end] {
                        let at = buf
                            .iter()
                            .zip(&client.stream[start..end])
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                        let at = start + at;
                        panic!("{socket}: echoed byte {at} differs from what was sent");
                    }
                    client.received = end;
                    s.echoed_bytes += buf.len();
                    client.send_more(driver, socket);
                } else {
                    panic!("received on unknown {socket}");
                }
            }
            Completion::Sent {
                socket,
                bytes,
                queued,
            } => {
                if let Some(server) = s.servers.get_mut(&socket) {
                    server.sent += bytes;
                    let accounted = server.sent + queued;
                    assert_eq!(server.received, accounted, "{socket}: send accounting");
                } else if let Some(client) = s.clients.get_mut(&socket) {
                    client.sent += bytes;
                    let handed = client.ends[client.queued - 1];
                    assert_eq!(handed, client.sent + queued, "{socket}: send accounting");
                } else {
                    panic!("sent on unknown {socket}");
                }
            }
            Completion::Eof { socket } => {
                if let Some(server) = s.servers.get_mut(&socket) {
                    assert!(!server.eof, "{socket}: second end of stream");
                    server.eof = true;
                    // Ordered after every echo already queued.
                    assert!(driver.shutdown_write(socket));
                } else if let Some(client) = s.clients.get_mut(&socket) {
                    assert_eq!(
                        client.received,
                        client.stream.len(),
                        "{socket}: end of stream before the whole echo"
                    );
                    assert_eq!(client.sent, client.stream.len(), "{socket}: sent count");
                    client.eof = true;
                    s.clients_done += 1;
                    assert!(driver.close(socket));
                } else {
                    panic!("end of stream on unknown {socket}");
                }
            }
            Completion::ShutdownDone { socket, result } => {
                result.unwrap_or_else(|e| panic!("{socket}: shutdown: {e}"));
                if let Some(server) = s.servers.get(&socket) {
                    assert_eq!(server.sent, server.received, "{socket}: shut down early");
                    s.servers_done += 1;
                    assert!(driver.close(socket));
                } else {
                    assert!(
                        s.clients.contains_key(&socket),
                        "shutdown of unknown {socket}"
                    );
                }
            }
            other => panic!("unexpected {other:?}"),
        },
        |_, s| s.clients_done == CLIENTS && s.servers_done == CLIENTS,
        |_, s| {
            let waiting: Vec<String> = clients
                .iter()
                .filter(|id| !s.clients[id].eof)
                .take(8)
                .map(|id| {
                    let c = &s.clients[id];
                    format!(
                        "{id}: echoed {}/{} sent {}",
                        c.received,
                        c.stream.len(),
                        c.sent
                    )
                })
                .collect();
            format!(
                "{}/{CLIENTS} clients and {}/{CLIENTS} servers done, {} bytes echoed; \
                     first clients still waiting: {waiting:?}",
                s.clients_done, s.servers_done, s.echoed_bytes
            )
        },
    );
    assert_eq!(state.echoed_bytes, total);
    assert!(driver.close(listener));
    settle(&mut driver, 0);
    assert_eq!(
        driver.buffers_available(),
        u32::from(driver.config().buf_count)
    );

    let stats = driver.stats();
    let per_enter = stats.completions as f64 / stats.enters.max(1) as f64;
    eprintln!("{backend:?} stats: {stats:?}; completions per enter {per_enter:.2}");
    if driver.backend() == BackendKind::Uring {
        assert!(
            stats.completions > stats.enters,
            "io_uring should reap more than one completion per enter: {stats:?}"
        );
        let zc = driver.capabilities().send_zc;
        assert_eq!(
            zc, zc_wanted,
            "zero-copy sends in use iff configured (kernel 6.1+)"
        );
        assert_eq!(stats.zc_sends > 0, zc, "zero-copy sends made: {stats:?}");
        let bundles = driver.capabilities().recv_bundle;
        assert_eq!(
            bundles, bundles_wanted,
            "receive bundles in use iff configured (6.10+)"
        );
        // Bytes come back in order (checked above) across bundles of several buffers.
        assert_eq!(
            stats.recv_bundles > 0,
            bundles,
            "receive bundles: {stats:?}"
        );
    }
}
