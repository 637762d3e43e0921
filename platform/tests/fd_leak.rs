//! File-descriptor hygiene over many connections, on every backend.
//!
//! Proves: 10,000 connect/accept/close cycles (50 at a time; both sides closed each cycle,
//! some with a receive armed and a send in flight at the close) leave the process with
//! exactly as many open descriptors as before (counted in /proc/self/fd, no tolerance), the
//! driver's table back at its starting size (`live_sockets`), and dropping the driver
//! returns the descriptors it made for itself; dropping a driver whose connections are still
//! open and busy (receives armed, sends stalled) closes all of their descriptors as well.
//!
//! This is the only test of its binary, and its two backend variants run one after the
//! other (a static mutex): /proc/self/fd is per process, and tests of a binary run in
//! parallel threads of one process.

mod common;

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;
use ringwork_platform::{
    BackendChoice, Bytes, Completion, Driver, DriverConfig, SocketId, test_all_backends, testing,
};

use common::{Pair, connect_pairs, drive, listen, open_fds, rng, seed, settle};

const CYCLES: usize = 10_000;
const CONCURRENT: usize = 50;
/// Connections open and busy when a driver is dropped.
const BUSY_AT_DROP: usize = 16;

static SERIAL: Mutex<()> = Mutex::new(());

struct Cycles {
    listener: SocketId,
    addr: ringwork_platform::SockAddr,
    rng: SmallRng,
    started: usize,
    clients: HashSet<SocketId>,
    /// Servers waiting for their first received bytes or end of stream before closing.
    servers: HashSet<SocketId>,
    clients_closed: usize,
    servers_closed: usize,
    accepted: usize,
}

impl Cycles {
    fn start_more(&mut self, driver: &mut Driver) {
        while self.started < CYCLES
            && self.started - self.clients_closed.min(self.servers_closed) < CONCURRENT
        {
            let id = driver.connect(&self.addr).expect("connect");
            self.clients.insert(id);
            self.started += 1;
        }
    }

    fn close_client(&mut self, driver: &mut Driver, id: SocketId) {
        assert!(self.clients.remove(&id), "{id}: closed twice");
        assert!(driver.close(id));
        self.clients_closed += 1;
    }

    fn close_server(&mut self, driver: &mut Driver, id: SocketId) {
        assert!(self.servers.remove(&id), "{id}: closed twice");
        assert!(driver.close(id));
        self.servers_closed += 1;
    }

    fn handle(&mut self, driver: &mut Driver, c: Completion) {
        match c {
            Completion::Accepted { listener, result } => {
                assert_eq!(listener, self.listener);
                let id = result.expect("accept");
                self.accepted += 1;
                self.servers.insert(id);
                if self.rng.random_bool(0.5) {
                    self.close_server(driver, id);
                } else {
                    // Close once the client's bytes or its close arrive (recv in flight).
                    assert!(driver.recv(id));
                }
            }
            Completion::Connected { socket, result } => {
                result.unwrap_or_else(|e| panic!("{socket}: connect: {e}"));
                if self.rng.random_bool(0.5) {
                    self.close_client(driver, socket);
                } else {
                    // Close after the send completes, with a receive still armed.
                    assert!(driver.recv(socket));
                    assert!(driver.send(socket, Bytes::from_static(&[7; 1024])));
                }
            }
            Completion::Received { socket, .. }
            | Completion::Eof { socket }
            | Completion::RecvError { socket, .. } => {
                if self.servers.contains(&socket) {
                    self.close_server(driver, socket);
                }
                // A client's receive may see the server's close: it closes on its send.
            }
            Completion::Sent {
                socket, queued: 0, ..
            } => self.close_client(driver, socket),
            Completion::Sent { .. } => {}
            Completion::SendError { socket, .. } => self.close_client(driver, socket),
            other => panic!("unexpected {other:?}"),
        }
        self.start_more(driver);
    }
}

test_all_backends! {
    fn no_descriptor_growth_after_10k_cycles(backend: BackendChoice) {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let fds_before_driver = open_fds();
        {
            let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
                return;
            };
            let seed = seed("fd_leak", 0xfd);
            let (listener, addr) = listen(&mut driver);
            let live_start = driver.live_sockets();
            let fds_start = open_fds();
            let mut state = Cycles {
                listener,
                addr,
                rng: rng(seed),
                started: 0,
                clients: HashSet::new(),
                servers: HashSet::new(),
                clients_closed: 0,
                servers_closed: 0,
                accepted: 0,
            };
            state.start_more(&mut driver);
            let turns = drive(
                &mut driver,
                &mut state,
                |driver, s, c| s.handle(driver, c),
                |_, s| s.clients_closed == CYCLES && s.servers_closed == CYCLES,
                |driver, s| {
                    format!(
                        "{} started, {} accepted, {} clients and {} servers closed, \
                         live_sockets {}",
                        s.started,
                        s.accepted,
                        s.clients_closed,
                        s.servers_closed,
                        driver.live_sockets()
                    )
                },
            );
            // Wait for the closes to finish in the backend.
            settle(&mut driver, live_start);
            let fds_end = open_fds();
            eprintln!(
                "{backend:?}: {CYCLES} cycles in {turns} turns; open descriptors with the \
                 driver: {fds_start} before, {fds_end} after; live_sockets {live_start} -> {}",
                driver.live_sockets()
            );
            assert_eq!(driver.live_sockets(), live_start);
            assert_eq!(fds_end, fds_start, "descriptors leaked by {CYCLES} cycles");
            assert!(driver.close(listener));
            settle(&mut driver, 0);
            eprintln!("{backend:?}: stats {:?}", driver.stats());
        }
        let fds_after_driver = open_fds();
        eprintln!(
            "{backend:?}: open descriptors {fds_before_driver} before the driver, \
             {fds_after_driver} after dropping it"
        );
        assert_eq!(fds_after_driver, fds_before_driver, "the driver leaked descriptors");

        // Dropping a driver whose connections are open and busy (receives armed, sends that
        // cannot complete) closes every descriptor too, also when zero-copy sends wait for
        // notifications that a peer that does not read holds back.
        for (name, config) in testing::data_path_configs() {
            drop_busy_driver(backend, name, config, fds_before_driver);
        }
    }
}

fn drop_busy_driver(backend: BackendChoice, name: &str, config: DriverConfig, fds_before: usize) {
    {
        let Some(mut driver) = testing::driver(backend, config) else {
            return;
        };
        let (listener, addr) = listen(&mut driver);
        let pairs = connect_pairs(&mut driver, listener, &addr, BUSY_AT_DROP);
        let stuck = Bytes::from(vec![1; 4 << 20]);
        for &Pair { server, .. } in &pairs {
            driver
                .with_socket(server, |s| s.set_send_buffer_size(64 * 1024))
                .expect("SO_SNDBUF");
            assert!(driver.recv(server));
            assert!(driver.send(server, stuck.clone()));
        }
        // Hand the operations to the backend.
        let mut out = Vec::new();
        driver.turn(Some(Duration::ZERO), &mut out).expect("turn");
        eprintln!(
            "{backend:?}, {name}: dropping a driver with {} sockets, {} descriptors open",
            driver.live_sockets(),
            open_fds()
        );
    }
    let fds_after_busy_drop = open_fds();
    eprintln!("{backend:?}: {fds_after_busy_drop} descriptors open after dropping it");
    assert_eq!(
        fds_after_busy_drop, fds_before,
        "dropping a driver with busy connections leaked descriptors ({name})"
    );
}
