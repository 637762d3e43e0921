//! The optional io_uring data paths (zero-copy sends, fixed files) and their fallbacks, on
//! every backend.
//!
//! Proves: a driver reports the data paths its configuration asked for (io_uring on a 6.1+
//! kernel) and none when they are off or under poll; sockets that got a fixed file table
//! entry and sockets that found the table full carry bytes alike; closing a socket closes
//! it for the peer (its table entry does not keep it open), and the entries of closed
//! sockets are reused by later ones, round after round; a socket that refuses zero-copy
//! sends (a Unix socket) gets plain ones. Other suites (echo, slow_reader,
//! close_cancel) run with the data paths on and off through `testing::data_path_configs`.

mod common;

use std::collections::HashMap;

use ringwork_platform::{
    BackendChoice, BackendKind, Bytes, Completion, DriverConfig, ListenOptions, SockAddr, SocketId,
    test_all_backends, testing,
};

use common::{Pair, connect_pairs, drive, listen, settle};

/// Rounds of connections; each round's sockets are closed before the next one opens.
const ROUNDS: usize = 3;
/// Connections per round: more sockets (twice this) than the test's fixed file table has.
const PAIRS: usize = 24;

test_all_backends! {
    fn closed_sockets_reach_the_peer_and_free_their_entries(backend: BackendChoice) {
        for (name, config) in testing::data_path_configs() {
            eprintln!("{backend:?}, {name}");
            close_rounds(backend, config);
        }
    }
}

/// Per watching socket: the goodbye bytes received so far, and whether its end came.
type Clients = HashMap<SocketId, (Vec<u8>, bool)>;

fn close_rounds(backend: BackendChoice, config: DriverConfig) {
    let Some(mut driver) = testing::driver(backend, config) else {
        return;
    };
    // What the driver was made with (RINGWORK_URING_PATHS may have set it).
    let wanted = driver.config().clone();
    let capabilities = driver.capabilities().clone();
    if driver.backend() == BackendKind::Uring {
        assert_eq!(
            capabilities.fixed_files, wanted.fixed_files,
            "{capabilities:?}"
        );
        assert_eq!(capabilities.send_zc, wanted.send_zc_min.is_some());
        assert_eq!(capabilities.recv_bundle, wanted.recv_bundle);
    } else {
        assert_eq!(capabilities.fixed_files, 0);
        assert!(!capabilities.send_zc);
        assert!(!capabilities.recv_bundle);
    }
    let (listener, addr) = listen(&mut driver);
    for round in 0..ROUNDS {
        let pairs = connect_pairs(&mut driver, listener, &addr, PAIRS);
        let goodbye = Bytes::from(format!("round {round}: goodbye").into_bytes());
        // Clients connect first and take the table's entries: alternate the closing side
        // so that sockets with and without an entry are both closed.
        let mut clients = Clients::new();
        for &Pair { client, server } in &pairs {
            let (closer, watcher) = if round % 2 == 0 {
                (server, client)
            } else {
                (client, server)
            };
            assert!(driver.recv(watcher));
            // Closed once sent, with no shutdown: only the close ends the watcher's stream.
            assert!(driver.send(closer, goodbye.clone()));
            clients.insert(watcher, (Vec::new(), false));
        }
        drive(
            &mut driver,
            &mut clients,
            |driver, clients, c| match c {
                Completion::Received { socket, buf } => {
                    clients
                        .get_mut(&socket)
                        .expect("a client")
                        .0
                        .extend_from_slice(&buf);
                }
                Completion::Eof { socket } => {
                    clients.get_mut(&socket).expect("a client").1 = true;
                    assert!(driver.close(socket));
                }
                Completion::Sent { socket, queued, .. } => {
                    assert!(!clients.contains_key(&socket), "{socket}: a watcher sent");
                    if queued == 0 {
                        assert!(driver.close(socket));
                    }
                }
                other => panic!("unexpected in round {round}: {other:?}"),
            },
            |_, clients| clients.values().all(|(_, end)| *end),
            |_, clients| {
                let ended = clients.values().filter(|(_, end)| *end).count();
                format!("round {round}: {ended}/{PAIRS} sockets saw their peer's close")
            },
        );
        for (client, (got, _)) in &clients {
            assert_eq!(got[..], goodbye[..], "{client}: goodbye bytes");
        }
        settle(&mut driver, 1);
    }
    let stats = driver.stats();
    eprintln!("{backend:?}: {stats:?}");
    if capabilities.fixed_files > 0 && (capabilities.fixed_files as usize) < 2 * PAIRS {
        // Each round has more sockets than entries: some went without.
        assert!(stats.fixed_table_full > 0, "{stats:?}");
    }
    assert!(driver.close(listener));
    settle(&mut driver, 0);
}

test_all_backends! {
    fn a_socket_without_zero_copy_falls_back_to_plain_sends(backend: BackendChoice) {
        for (name, config) in testing::data_path_configs() {
            eprintln!("{backend:?}, {name}");
            unix_stream_bulk(backend, config);
        }
    }
}

/// Unix stream sockets refuse zero-copy sends (EOPNOTSUPP): the bytes go as plain sends.
fn unix_stream_bulk(backend: BackendChoice, config: DriverConfig) {
    const LEN: usize = 1 << 20;
    let Some(mut driver) = testing::driver(backend, config) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "ringwork-data-paths-{}-{backend:?}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let path = dir.join("bulk.sock");
    let _ = std::fs::remove_file(&path);
    let addr = SockAddr::unix(&path).expect("unix address");
    let listener = driver
        .listen(&addr, &ListenOptions::default())
        .expect("listen");
    assert!(driver.accept(listener));
    let client = driver.connect(&addr).expect("connect");
    let payload = Bytes::from(common::pattern(17, LEN));
    assert!(driver.send(client, payload.clone()));
    let mut got = Vec::with_capacity(LEN);
    drive(
        &mut driver,
        &mut got,
        |driver, got, c| match c {
            Completion::Accepted { result, .. } => assert!(driver.recv(result.expect("accept"))),
            Completion::Connected { result, .. } => result.expect("connect"),
            Completion::Received { socket, buf } => {
                assert_ne!(socket, client, "the client receives nothing");
                got.extend_from_slice(&buf);
            }
            Completion::Sent { socket, .. } => assert_eq!(socket, client),
            other => panic!("unexpected {other:?}"),
        },
        |_, got| got.len() == LEN,
        |_, got| format!("{}/{LEN} bytes arrived", got.len()),
    );
    assert!(got[..] == payload[..], "the bytes differ");
    let stats = driver.stats();
    eprintln!("{backend:?}: {stats:?}");
    if driver.capabilities().send_zc {
        assert!(stats.zc_sends > 0, "a zero-copy send was tried: {stats:?}");
    }
    std::fs::remove_dir_all(&dir).expect("remove the temporary directory");
}
