//! WebSocket over HTTP/2 (RFC 8441) against a client nobody here wrote: Python's `h2`
//! library (hyper-h2), which sends an extended CONNECT only after the server's
//! SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, driving `scripts/ws-peers/ws_h2_peer.py` (masked
//! WebSocket frames over the stream's DATA, h2's flow control both ways). On both
//! backends, over h2c (prior knowledge) and TLS (ALPN h2): text and binary echoes from 0 B
//! to 1 MiB (past the stream and connection windows, so the windows are the backpressure),
//! an ordinary GET on another stream while the WebSocket is open, a 1000 close and the
//! stream's clean end; and with the setting off, the setting is absent (Python's `h2` then
//! refuses to send `:protocol`; the server's stream error is in the machine's tests).
//! The peer is installed by `scripts/install-h2-test-deps.sh`; a missing one fails.
#![cfg(feature = "engine")]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use common::LIMIT;
use ringwork::platform::testing;
use ringwork::testing::certs::TestCa;
use ringwork::tls::TlsAcceptor;
use ringwork::{BackendChoice, DriverConfig, ReactorConfig, Runtime, ShutdownHandle};
use ringwork_protocols::http::server::{ALPN_H2, ServerConfig};
use ringwork_protocols::websocket::server::{service_config, ws_echo_server};

const INSTALL: &str = "scripts/install-h2-test-deps.sh";

/// `ringwork serve ws-echo`'s server with a plain and a TLS listener, on its own thread;
/// stopped on drop.
struct Servers {
    plain: SocketAddr,
    tls: SocketAddr,
    handle: ShutdownHandle,
    done: mpsc::Receiver<()>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.handle.shutdown(std::time::Duration::ZERO);
        let _ = self.done.recv_timeout(LIMIT);
    }
}

fn start(backend: BackendChoice, config: ServerConfig) -> Option<Servers> {
    testing::driver(backend, DriverConfig::default())?;
    let ca = TestCa::new();
    let cert = ca.server(&["localhost", "127.0.0.1"]);
    let acceptor = TlsAcceptor::builder()
        .certificate(cert.chain(), cert.key())
        .alpn([ALPN_H2, b"http/1.1"])
        .build()
        .expect("acceptor");
    let runtime = Runtime::builder()
        .cores(1)
        .pin(false)
        .backend(backend)
        .reactor_config(ReactorConfig {
            write_buffer_limit: 64 << 20,
            ..ReactorConfig::default()
        })
        .build()
        .expect("runtime");
    let handle = runtime.shutdown_handle();
    let (addr_tx, addr_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let _ = runtime.run(move |reactor| {
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let plain =
                reactor.listen_tcp(loopback, ws_echo_server(config.clone(), service_config()))?;
            let tls = reactor.listen_tls(
                loopback,
                &acceptor,
                ws_echo_server(config.clone(), service_config()),
            )?;
            let _ = addr_tx.send((plain, tls));
            Ok(())
        });
        let _ = done_tx.send(());
    });
    let (plain, tls) = addr_rx.recv_timeout(LIMIT).expect("the server to listen");
    Some(Servers {
        plain,
        tls,
        handle,
        done,
    })
}

/// Runs the peer script; its stdout when it succeeded.
#[track_caller]
fn peer(args: &[&str]) -> String {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ws-peers/ws_h2_peer.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install the peers with {INSTALL}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ws_h2_peer.py {args:?}: {stdout}{}\n(install the peers with {INSTALL})",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

ringwork::platform::test_all_backends! {
    fn python_h2_websocket_echo_over_h2c_and_tls(backend: BackendChoice) {
        let Some(servers) = start(backend, ServerConfig::default()) else { return };
        for (url, kind) in [
            (format!("http://127.0.0.1:{}/echo", servers.plain.port()), "h2c"),
            (format!("https://127.0.0.1:{}/echo", servers.tls.port()), "tls"),
        ] {
            let out = peer(&["echo", &url]);
            assert!(out.starts_with("ok 14 messages"), "{backend:?} {kind}: {out}");
            assert!(out.contains(kind), "{out}");
        }
    }

    fn extended_connect_is_not_advertised_when_off(backend: BackendChoice) {
        let mut config = ServerConfig::default();
        config.http2.enable_connect_protocol = false;
        let Some(servers) = start(backend, config) else { return };
        let url = format!("http://127.0.0.1:{}/", servers.plain.port());
        assert_eq!(peer(&["settings", &url]).trim(), "connect-protocol 0");
        let Some(servers) = start(backend, ServerConfig::default()) else { return };
        let url = format!("http://127.0.0.1:{}/", servers.plain.port());
        assert_eq!(peer(&["settings", &url]).trim(), "connect-protocol 1");
    }
}
