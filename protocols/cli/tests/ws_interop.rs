//! `ringwork serve ws-echo` against real WebSocket peers nobody here wrote, on both backends:
//! Python's `websockets` and Node's `ws` as clients — text and binary echoes from 0 B to
//! 16 MiB, whole and fragmented, with and without permessage-deflate, a ping, a clean
//! close — and protocol violations (raw frames after a real handshake) answered with the
//! right close codes; `ringwork serve ws-chat` on two cores with Python clients (every message
//! to every client across cores, a slow subscriber cut off); `ringwork serve http-proxy` in
//! front of `ws-echo` (the WebSocket tunnel: the same Python and Node echoes and the
//! violations through it, its idle timeout) and in front of `serve hello` (an upgrade
//! refused with a 200, relayed as a response, the connection staying HTTP) and in front of
//! Python's `websockets` serving TLS (an `https://` pool: echoes to 4 MiB, the idle
//! timeout, an untrusted certificate answered 502); `ws-echo` and
//! `ws-chat` over HTTP/2 too (RFC 8441, h2c, Python's `h2` driving `ws_h2_peer.py`). The peers (`scripts/ws-peers/`) are installed by
//! `scripts/install-ws-test-deps.sh`; a missing peer fails the test under `CI=true`, and is
//! skipped with a loud line otherwise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;

use ringwork_protocols::Endpoint;
use support::{PATIENCE, Server, TempDir, backend, free_port, peer, peer_in};

#[macro_use]
mod support;

/// `scripts/ws-peers/` in the repository.
fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ws-peers")
}

fn python_ok() -> bool {
    peer_in(
        Some(&peers_dir()),
        "python3",
        &["-c", "import websockets.asyncio.client"],
        "install-ws-test-deps.sh",
    )
}

/// Python's `h2` (for WebSocket over HTTP/2, `ws_h2_peer.py`).
fn python_h2_ok() -> bool {
    peer(
        "python3",
        &["-c", "import h2.connection"],
        "install-h2-test-deps.sh",
    )
}

fn node_ok() -> bool {
    peer_in(
        Some(&peers_dir()),
        "node",
        &["-e", "require('ws')"],
        "install-ws-test-deps.sh",
    )
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
    if python_h2_ok() {
        // RFC 8441: the same service over HTTP/2 with prior knowledge (h2c).
        let url = format!("http://127.0.0.1:{port}/");
        let out = run("python3", "ws_h2_peer.py", &["echo", &url]);
        assert!(
            out.starts_with("ok 14 messages echoed over h2 (h2c)"),
            "{out}"
        );
    }
    assert!(server.terminate(), "ws-echo exits cleanly");
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
        "--chat-max-queued-total",
        "64",
        "--cores",
        "2",
        "--backend",
        backend,
    ]);
    server.listening(2);
    let url = format!("ws://127.0.0.1:{port}/");
    let out = run("python3", "ws_peer.py", &["chat", &url, "6"]);
    assert!(out.starts_with("ok chat 6 clients"), "{out}");
    if python_h2_ok() {
        // RFC 8441: four WebSockets on two HTTP/2 connections (h2c) join the same topic.
        let url = format!("http://127.0.0.1:{port}/");
        let out = run("python3", "ws_h2_peer.py", &["chat", &url]);
        assert!(
            out.starts_with("ok chat 4 streams on 2 connections"),
            "{out}"
        );
    }
    assert!(server.terminate(), "ws-chat exits cleanly");
}

/// `ringwork serve http-proxy` on one core with one route to `upstream` and `tunnel` as
/// the tunnels' idle timeout; its address.
fn proxy(backend: &str, upstream: u16, dir: &TempDir, tunnel: &str) -> (Server, SocketAddr) {
    let pool = format!("servers = [\"127.0.0.1:{upstream}\"]\n");
    proxy_to(backend, &pool, dir, tunnel)
}

/// `ringwork serve http-proxy` on one core with one route to the pool `pool` (its TOML
/// lines) and `tunnel` as the tunnels' idle timeout; its address.
fn proxy_to(backend: &str, pool: &str, dir: &TempDir, tunnel: &str) -> (Server, SocketAddr) {
    let config = dir.0.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "cores = 1\n\n[timeouts]\ntunnel = \"{tunnel}\"\n\n[upstreams.ws]\n{pool}\n[[routes]]\nupstream = \"ws\"\n"
        ),
    )
    .expect("write the config");
    let mut server = Server::start(&[
        "serve",
        "http-proxy",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--backend",
        backend,
    ]);
    let addr = match server.listening(1).as_slice() {
        [Endpoint::Tcp { addr }] => *addr,
        other => panic!("unexpected endpoints {other:?}"),
    };
    (server, addr)
}

/// Python's websockets and Node's ws through the reverse proxy to `serve ws-echo`: the 28 echoes (0 B to
/// 16 MiB, whole and fragmented, with and without permessage-deflate negotiated end to
/// end), a ping, a clean close, and the protocol violations answered by ws-echo with the
/// right close codes, all through the tunnel.
fn through_proxy(name: &str) {
    let Some(backend) = backend(name) else { return };
    let (python, node) = (python_ok(), node_ok());
    if !python && !node {
        return;
    }
    let (echo, echo_port) = serve(backend);
    let dir = TempDir::new(&format!("ws-proxy-{backend}"));
    let (proxy, addr) = proxy(backend, echo_port, &dir, "30s");
    let url = format!("ws://{addr}/");
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
    assert!(proxy.terminate(), "http-proxy exits cleanly");
    assert!(echo.terminate(), "ws-echo exits cleanly");
}

/// An upstream that answers the upgrade with a normal response (`serve hello`: 200): the
/// proxy relays it as a response, and the client's connection goes on as HTTP.
fn refused_through_proxy(name: &str) {
    let Some(backend) = backend(name) else { return };
    let mut hello = Server::start(&[
        "serve",
        "hello",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let hello_port = match hello.listening(1).as_slice() {
        [Endpoint::Tcp { addr }] => addr.port(),
        other => panic!("unexpected endpoints {other:?}"),
    };
    let dir = TempDir::new(&format!("ws-proxy-refused-{backend}"));
    let (proxy, addr) = proxy(backend, hello_port, &dir, "30s");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\
              GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .expect("write");
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .expect("read until the proxy closes");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert_eq!(reply.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{reply}");
    assert_eq!(reply.matches("Hello, World!").count(), 2, "{reply}");
    assert!(!reply.contains("101"), "{reply}");
    assert!(proxy.terminate(), "http-proxy exits cleanly");
    assert!(hello.terminate(), "hello exits cleanly");
}

/// A tunnel with no byte either way for `timeouts.tunnel` (1 s) is closed: a raw client
/// completes the handshake through the proxy, sends one masked ping and gets its pong, then
/// stays quiet and sees the connection end (read returns 0) between 1 s and the patience.
fn tunnel_idle_timeout(name: &str) {
    let Some(backend) = backend(name) else { return };
    let (echo, echo_port) = serve(backend);
    let dir = TempDir::new(&format!("ws-proxy-idle-{backend}"));
    let (proxy, addr) = proxy(backend, echo_port, &dir, "1s");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    idle_tunnel_closes(&mut stream);
    assert!(proxy.terminate(), "http-proxy exits cleanly");
    assert!(echo.terminate(), "ws-echo exits cleanly");
}

/// Python's `websockets` echo server over TLS accepting permessage-deflate
/// (`ws_peer.py server --deflate --tls`); stopped on drop.
struct TlsPeer {
    child: std::process::Child,
    port: u16,
}

impl TlsPeer {
    fn start(cert: &std::path::Path, key: &std::path::Path) -> TlsPeer {
        Self::spawn(Some((cert, key)))
    }

    /// The same server, plaintext (`tls` `None`) or over TLS with `(cert, key)`.
    fn spawn(tls: Option<(&std::path::Path, &std::path::Path)>) -> TlsPeer {
        use std::io::BufRead;
        let mut command = Command::new("python3");
        command
            .arg(peers_dir().join("ws_peer.py"))
            .args(["server", "--deflate"]);
        if let Some((cert, key)) = tls {
            command.arg("--tls").args([cert, key]);
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the Python peer");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the TLS peer said {line:?}"));
        TlsPeer { child, port }
    }
}

impl Drop for TlsPeer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Through a tunnel whose idle timeout is 1 s: the handshake and a ping answered (101 with the
/// right accept, then the pong), then quiet until the proxy ends the connection — no bytes,
/// and not before 0.9 s.
fn idle_tunnel_closes(stream: &mut TcpStream) {
    let text = handshake_and_ping(stream);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    assert!(
        text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{text}"
    );
    let quiet = std::time::Instant::now();
    let mut buf = [0u8; 64];
    // A signal to the test process (a child's exit) may interrupt the read: read again.
    let n = loop {
        match stream.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other.expect("the proxy closes the idle tunnel"),
        }
    };
    assert_eq!(n, 0, "no bytes, only the end");
    let waited = quiet.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "closed after {waited:?}"
    );
}

/// A raw WebSocket handshake through `addr` followed by a masked ping "hi": waits for the
/// 101 and the pong; the bytes read.
fn handshake_and_ping(stream: &mut TcpStream) -> String {
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\
              \x89\x82\x01\x02\x03\x04\x69\x6b",
        )
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let pong = b"\x8a\x02hi";
    while !got.windows(pong.len()).any(|w| w == pong) {
        let n = match stream.read(&mut buf) {
            // A signal (a child process of another test exiting) interrupts the read.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other.expect("read the 101 and the pong"),
        };
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The tunnel to an `https://` pool: `serve http-proxy` (trusting a test CA by `tls_ca`)
/// in front of Python's `websockets` serving TLS with a certificate of that CA. Python's
/// client echoes text and binary messages of 1 B to 4 MiB (whole and fragmented, with and
/// without permessage-deflate) through it; a raw client's tunnel is closed after the idle
/// timeout (1 s); a proxy without the CA answers the upgrade 502 (the certificate is
/// verified).
fn tls_upstream(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !python_ok() {
        return;
    }
    let dir = TempDir::new(&format!("ws-proxy-tls-{backend}"));
    let ca = ringwork::testing::certs::TestCa::new();
    let ca_pem = dir.0.join("ca.pem");
    std::fs::write(&ca_pem, &ca.cert_pem).expect("write the CA");
    let (cert, key) = ca.server(&["localhost"]).write_pem(&dir.0, "server");
    let peer = TlsPeer::start(&cert, &key);
    let pool = format!(
        "servers = [\"https://localhost:{}\"]\ntls_ca = \"{}\"\n",
        peer.port,
        ca_pem.display()
    );
    let (proxy, addr) = proxy_to(backend, &pool, &dir, "1s");
    let url = format!("ws://{addr}/");
    let sizes = "1,125,126,65535,65536,1048576,4194304";
    for deflate in [false, true] {
        let mut args = vec!["client", url.as_str(), "--sizes", sizes];
        if deflate {
            args.push("--deflate");
        }
        let out = run("python3", "ws_peer.py", &args);
        // 1 B is not sent fragmented: 2 + 6 × 4 messages.
        assert!(out.starts_with("ok 26 messages"), "{out}");
        assert_eq!(out.contains("permessage-deflate"), deflate, "{out}");
    }
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    idle_tunnel_closes(&mut stream);
    assert!(proxy.terminate(), "http-proxy exits cleanly");

    // Without the CA the upstream's certificate is not trusted: 502, no tunnel.
    let untrusted = TempDir::new(&format!("ws-proxy-tls-untrusted-{backend}"));
    let pool = format!("servers = [\"https://localhost:{}\"]\n", peer.port);
    let (proxy, addr) = proxy_to(backend, &pool, &untrusted, "30s");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("write");
    let mut reply = [0u8; 64];
    let n = stream.read(&mut reply).expect("the proxy answers");
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.starts_with("HTTP/1.1 502 "), "{reply}");
    assert!(proxy.terminate(), "http-proxy exits cleanly");
}

/// RFC 8441 through the proxy: an HTTP/2 client (`ws_h2_peer.py`, Python's `h2` driving
/// our own WebSocket framing) opens an extended CONNECT on `serve http-proxy` (h2c, prior
/// knowledge), bridged to Python's `websockets` by an HTTP/1.1 upgrade: text and binary
/// echoes of 0 B to 1 MiB (past the stream and connection windows: flow control is the
/// backpressure), a GET on another stream of the same connection (the upstream answers it
/// 426), a 1000 close and the stream's clean end; a quiet bridge ended after the tunnel
/// idle timeout (2 s); then the echoes to an `https://` pool.
fn h2_client_through_proxy(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !python_ok() || !python_h2_ok() {
        return;
    }
    let dir = TempDir::new(&format!("ws-proxy-h2-{backend}"));
    let peer = TlsPeer::spawn(None);
    let pool = format!("servers = [\"127.0.0.1:{}\"]\n", peer.port);
    let (proxy, addr) = proxy_to(backend, &pool, &dir, "2s");
    let url = format!("http://{addr}/chat");
    let out = run(
        "python3",
        "ws_h2_peer.py",
        &["echo", &url, "--get-status", "426"],
    );
    assert!(
        out.starts_with("ok 14 messages echoed over h2 (h2c), closed 1000"),
        "{out}"
    );
    // A quiet bridge ends after `timeouts.tunnel` (2 s), not before.
    let out = run("python3", "ws_h2_peer.py", &["idle", &url]);
    let after: f64 = out
        .strip_prefix("ok idle stream ended after ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(after >= 1.9, "ended after {after} s");
    assert!(proxy.terminate(), "http-proxy exits cleanly");

    let tls_dir = TempDir::new(&format!("ws-proxy-h2-tls-{backend}"));
    let ca = ringwork::testing::certs::TestCa::new();
    let ca_pem = tls_dir.0.join("ca.pem");
    std::fs::write(&ca_pem, &ca.cert_pem).expect("write the CA");
    let (cert, key) = ca.server(&["localhost"]).write_pem(&tls_dir.0, "server");
    let tls_peer = TlsPeer::start(&cert, &key);
    let pool = format!(
        "servers = [\"https://localhost:{}\"]\ntls_ca = \"{}\"\n",
        tls_peer.port,
        ca_pem.display()
    );
    let (proxy, addr) = proxy_to(backend, &pool, &tls_dir, "30s");
    let url = format!("http://{addr}/");
    let out = run(
        "python3",
        "ws_h2_peer.py",
        &["echo", &url, "--get-status", "426"],
    );
    assert!(
        out.starts_with("ok 14 messages echoed over h2 (h2c), closed 1000"),
        "{out}"
    );
    assert!(proxy.terminate(), "http-proxy exits cleanly");
}

#[test]
fn h2_websocket_through_reverse_proxy_uring() {
    h2_client_through_proxy("uring");
}

#[test]
fn h2_websocket_through_reverse_proxy_poll() {
    h2_client_through_proxy("poll");
}

#[test]
fn websocket_to_https_upstream_uring() {
    tls_upstream("uring");
}

#[test]
fn websocket_to_https_upstream_poll() {
    tls_upstream("poll");
}

#[test]
fn tunnel_idle_timeout_uring() {
    tunnel_idle_timeout("uring");
}

#[test]
fn tunnel_idle_timeout_poll() {
    tunnel_idle_timeout("poll");
}

#[test]
fn websocket_through_reverse_proxy_uring() {
    through_proxy("uring");
}

#[test]
fn websocket_through_reverse_proxy_poll() {
    through_proxy("poll");
}

#[test]
fn refused_upgrade_through_reverse_proxy_uring() {
    refused_through_proxy("uring");
}

#[test]
fn refused_upgrade_through_reverse_proxy_poll() {
    refused_through_proxy("poll");
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
