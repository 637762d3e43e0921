//! `ringwork serve ws-echo` against real WebSocket peers nobody here wrote, on both backends:
//! Python's `websockets` and Node's `ws` as clients — text and binary echoes from 0 B to
//! 16 MiB, whole and fragmented, with and without permessage-deflate, a ping, a clean
//! close — and protocol violations (raw frames after a real handshake) answered with the
//! right close codes; `ringwork serve ws-chat` on two cores with Python clients (every message
//! to every client across cores, a slow subscriber cut off). The peers (`scripts/ws-peers/`) are installed by
//! `scripts/install-ws-test-deps.sh`; a missing peer fails the test under `CI=true`, and is
//! skipped with a loud line otherwise.

use std::path::PathBuf;
use std::process::Command;

use ringwork_protocols::Endpoint;
use support::{Server, backend};

mod support;

/// `scripts/ws-peers/` in the repository.
fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ws-peers")
}

/// Whether the peer runs here; under CI=true a missing peer is a failure.
fn peer(program: &str, probe: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(probe)
        .current_dir(peers_dir())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} {probe:?} failed: scripts/install-ws-test-deps.sh installs the peer"
        );
        eprintln!("skipped: {program} {probe:?} failed (scripts/install-ws-test-deps.sh)");
    }
    ok
}

fn python_ok() -> bool {
    peer("python3", &["-c", "import websockets.asyncio.client"])
}

fn node_ok() -> bool {
    peer("node", &["-e", "require('ws')"])
}

/// `ringwork serve ws-echo` on one core; its port.
fn serve(backend: &str) -> (Server, u16) {
    let mut server = Server::start(&[
        "serve",
        "ws-echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let port = match server.listening(1).as_slice() {
        [Endpoint::Tcp { addr }] => addr.port(),
        other => panic!("unexpected endpoints {other:?}"),
    };
    (server, port)
}

/// Runs a peer script and checks it said "ok"; its stdout.
fn run(program: &str, script: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .arg(peers_dir().join(script))
        .args(args)
        .output()
        .expect("run the peer");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {script} {args:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn clients(name: &str) {
    let Some(backend) = backend(name) else { return };
    let (python, node) = (python_ok(), node_ok());
    let (server, port) = serve(backend);
    let url = format!("ws://127.0.0.1:{port}/");
    for deflate in [false, true] {
        let mut args = vec!["client", url.as_str()];
        if deflate {
            args.push("--deflate");
        }
        if python {
            let out = run("python3", "ws_peer.py", &args);
            assert!(out.starts_with("ok 28 messages"), "{out}");
            assert_eq!(out.contains("permessage-deflate"), deflate, "{out}");
        }
        if node {
            let out = run("node", "ws_peer.js", &args);
            assert!(out.starts_with("ok 28 messages"), "{out}");
            assert_eq!(out.contains("permessage-deflate"), deflate, "{out}");
        }
    }
    if python {
        let out = run("python3", "ws_peer.py", &["violations", &url]);
        assert_eq!(
            out.lines().filter(|l| l.starts_with("ok ")).count(),
            10,
            "{out}"
        );
    }
    assert!(server.terminate(), "ws-echo exits cleanly");
}

/// A port free on 127.0.0.1 (two cores must bind the same one).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.local_addr().expect("address").port()
}

/// `ringwork serve ws-chat` on two cores: six Python clients (spread over both cores by
/// SO_REUSEPORT) each get every client's message, then 40 messages of 256 KiB reach every
/// reading client while a subscriber that never reads is cut off.
fn chat(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !python_ok() {
        return;
    }
    let port = free_port().to_string();
    let endpoint = format!("tcp:{port}:interface=127.0.0.1");
    let mut server = Server::start(&[
        "serve",
        "ws-chat",
        "--listen",
        &endpoint,
        "--cores",
        "2",
        "--backend",
        backend,
    ]);
    server.listening(2);
    let url = format!("ws://127.0.0.1:{port}/");
    let out = run("python3", "ws_peer.py", &["chat", &url, "6"]);
    assert!(out.starts_with("ok chat 6 clients"), "{out}");
    assert!(server.terminate(), "ws-chat exits cleanly");
}

#[test]
fn chat_across_cores_uring() {
    chat("uring");
}

#[test]
fn chat_across_cores_poll() {
    chat("poll");
}

#[test]
fn real_clients_against_ws_echo_uring() {
    clients("uring");
}

#[test]
fn real_clients_against_ws_echo_poll() {
    clients("poll");
}
