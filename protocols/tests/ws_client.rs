//! The WebSocket client on both backends: against real servers nobody here wrote (Python's
//! `websockets` and Node's `ws`, echoing), and against ringwork's own server (plain, over
//! TLS as `wss://`, with a subprotocol, refusing a handshake). Text and binary from 0 B to
//! 16 MiB, whole and fragmented, with and without permessage-deflate, a ping, a clean close.
//! The peers (`scripts/ws-peers/`) are installed by `scripts/install-ws-test-deps.sh`; a
//! missing peer fails the test under `CI=true`, and is skipped with a loud line otherwise.
#![cfg(feature = "engine")]

use std::cell::RefCell;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use ringwork::platform::{BackendChoice, testing};
use ringwork::testing::certs::TestCa;
use ringwork::tls::{Roots, TlsAcceptor, TlsConnector};
use ringwork::{DriverConfig, Reactor, ReactorConfig};
use ringwork_protocols::http::server::{HttpServer, Request, Responder, Response, ServerConfig};
use ringwork_protocols::websocket::client::{WsClient, WsClientError, WsClientOptions, connect};
use ringwork_protocols::websocket::proto::{DeflateConfig, HandshakeError};
use ringwork_protocols::websocket::server::{WsEcho, service_config, ws_echo_server};
use ringwork_protocols::websocket::{CloseCode, Message, WsConfig, WsEvent};

/// Longest wait of one session (16 MiB echoes in a debug build).
const LIMIT: Duration = Duration::from_secs(120);

const SIZES: [usize; 7] = [0, 1, 125, 126, 65_536, 1 << 20, 16 << 20];

fn reactor(backend: BackendChoice) -> Option<Reactor> {
    testing::driver(backend, DriverConfig::default())?;
    let driver = DriverConfig {
        backend,
        ..DriverConfig::default()
    };
    let config = ReactorConfig {
        // A 16 MiB message is written whole.
        write_buffer_limit: 64 << 20,
        ..ReactorConfig::default()
    };
    Some(Reactor::new(config, driver).expect("create a reactor"))
}

fn block_on<T: 'static>(reactor: &mut Reactor, future: impl Future<Output = T> + 'static) -> T {
    let slot = Rc::new(RefCell::new(None));
    let out = Rc::clone(&slot);
    reactor.spawn_local(async move {
        *out.borrow_mut() = Some(future.await);
    });
    let done = reactor
        .run_until(LIMIT, |_| slot.borrow().is_some())
        .expect("reactor turn");
    assert!(
        done,
        "{} backend: no result within {LIMIT:?}",
        reactor.backend()
    );
    slot.borrow_mut().take().expect("checked above")
}

fn options(deflate: bool) -> WsClientOptions {
    let mut options = WsClientOptions::default();
    options.config.deflate = deflate.then(DeflateConfig::default);
    options
}

/// Echo checks of every size, text and binary, whole and fragmented; then a ping and a clean
/// close. The number of messages echoed.
async fn session(client: WsClient) -> Result<usize, String> {
    let mut count = 0;
    for size in SIZES {
        // Multi-byte characters (fragments split them), at most `size` bytes.
        let mut text: String = "é€a".repeat(size / 6 + 1);
        let mut end = size.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        let binary: Vec<u8> = (0..size).map(|i| (i * 7 + i / 256) as u8).collect();
        for message in [Message::text(text), Message::binary(binary)] {
            for fragment in [usize::MAX, message.len() / 3 + 1] {
                client
                    .send_fragmented(message.clone(), fragment)
                    .map_err(|e| e.to_string())?;
                match client.recv().await {
                    Some(echo) if echo == message => count += 1,
                    Some(echo) => {
                        return Err(format!(
                            "echo of {} bytes: {} bytes",
                            message.len(),
                            echo.len()
                        ));
                    }
                    None => return Err(format!("closed before the echo of {size} bytes")),
                }
            }
        }
    }
    client
        .ping(ringwork::Bytes::from_static(b"ping"))
        .map_err(|e| e.to_string())?;
    loop {
        match client.next_event().await {
            Some(WsEvent::Pong(data)) if &data[..] == b"ping" => break,
            Some(WsEvent::Pong(_)) => {}
            other => return Err(format!("waiting for the pong: {other:?}")),
        }
    }
    client
        .close(CloseCode::NORMAL, "done")
        .map_err(|e| e.to_string())?;
    loop {
        match client.next_event().await {
            Some(WsEvent::Closed(info)) if info.clean && info.code == CloseCode::NORMAL => {
                return Ok(count);
            }
            Some(WsEvent::Closed(info)) => return Err(format!("closed: {info:?}")),
            None => return Err("gone without Closed".into()),
            Some(_) => {}
        }
    }
}

fn run_session(
    reactor: &mut Reactor,
    url: String,
    options: WsClientOptions,
) -> Result<usize, String> {
    let handle = reactor.handle();
    block_on(reactor, async move {
        let client = connect(&handle, &url, options)
            .await
            .map_err(|e| e.to_string())?;
        session(client).await
    })
}

/// A real peer server (`ws_peer.py` or `ws_peer.js` in `server` mode); stopped on drop.
struct Peer {
    child: Child,
    port: u16,
}

impl Peer {
    fn start(program: &str, script: &str, deflate: bool) -> Option<Peer> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ws-peers");
        let mut command = Command::new(program);
        command
            .arg(dir.join(script))
            .arg("server")
            .current_dir(&dir);
        if deflate {
            command.arg("--deflate");
        }
        let spawned = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => return missing(program, &error.to_string()),
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        match line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
        {
            Some(port) => Some(Peer { child, port }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                missing(program, &format!("said {line:?}"))
            }
        }
    }
}

fn missing(program: &str, why: &str) -> Option<Peer> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{program} peer did not start ({why}): scripts/install-ws-test-deps.sh installs it"
    );
    eprintln!("skipped: {program} peer did not start ({why}); see scripts/install-ws-test-deps.sh");
    None
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Closing stdin ends the peer; kill in case it does not.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ws_server(reactor: &mut Reactor, config: WsConfig) -> SocketAddr {
    reactor
        .listen_tcp(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            ws_echo_server(ServerConfig::default(), config),
        )
        .expect("listen")
}

ringwork::platform::test_all_backends! {
    fn against_python_websockets(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        for deflate in [false, true] {
            let Some(peer) = Peer::start("python3", "ws_peer.py", deflate) else { return };
            let url = format!("ws://127.0.0.1:{}/", peer.port);
            let count = run_session(&mut reactor, url, options(deflate)).expect("session");
            assert_eq!(count, SIZES.len() * 4, "deflate {deflate}");
        }
    }

    fn against_node_ws(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        for deflate in [false, true] {
            let Some(peer) = Peer::start("node", "ws_peer.js", deflate) else { return };
            let url = format!("ws://127.0.0.1:{}/", peer.port);
            let count = run_session(&mut reactor, url, options(deflate)).expect("session");
            assert_eq!(count, SIZES.len() * 4, "deflate {deflate}");
        }
    }

    fn against_our_server_plain_and_deflate(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let addr = ws_server(&mut reactor, service_config());
        for deflate in [false, true] {
            let url = format!("ws://{addr}/echo");
            let count = run_session(&mut reactor, url, options(deflate)).expect("session");
            assert_eq!(count, SIZES.len() * 4);
        }
    }

    fn wss_against_our_tls_server(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let acceptor = TlsAcceptor::builder()
            .certificate(cert.chain(), cert.key())
            .build()
            .expect("acceptor");
        let addr = reactor
            .listen_tls(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                &acceptor,
                ws_echo_server(ServerConfig::default(), service_config()),
            )
            .expect("listen_tls");
        let mut options = options(true);
        options.tls = Some(
            TlsConnector::builder()
                .roots(Roots::Certificates(vec![ca.cert.clone()]))
                .alpn(["http/1.1"])
                .build()
                .expect("connector"),
        );
        options.addr = Some(addr);
        let url = format!("wss://localhost:{}/", addr.port());
        let count = run_session(&mut reactor, url, options).expect("wss session");
        assert_eq!(count, SIZES.len() * 4);
    }

    fn subprotocols_and_refusals(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let server = HttpServer::new(
            |request: Request, respond: Responder| {
                if request.path() == b"/chat" {
                    let mut config = WsConfig::default();
                    config.protocols = vec!["chat.v2".into(), "chat.v1".into()];
                    let _ = request.upgrade_websocket(respond, config, WsEcho);
                } else {
                    respond.send(Response::text("plain HTTP"));
                }
            },
            ServerConfig::default(),
        );
        let addr = reactor
            .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)
            .expect("listen");
        let handle = reactor.handle();
        let url = format!("ws://{addr}/chat");
        let negotiated = block_on(&mut reactor, async move {
            let mut options = WsClientOptions::default();
            options.protocols = vec!["chat.v1".into(), "chat.v2".into()];
            let client = connect(&handle, &url, options).await.expect("connect");
            client.send(Message::text("hi")).expect("send");
            assert_eq!(client.recv().await, Some(Message::text("hi")));
            client.negotiated().protocol.clone()
        });
        assert_eq!(negotiated.as_deref(), Some("chat.v2"), "the server's preference");
        // A plain HTTP answer is a handshake failure naming the status.
        let handle = reactor.handle();
        let url = format!("ws://{addr}/plain");
        let error = block_on(&mut reactor, async move {
            connect(&handle, &url, WsClientOptions::default()).await.err()
        });
        assert!(
            matches!(error, Some(WsClientError::Handshake(HandshakeError::Status { status: 200 }))),
            "{error:?}"
        );
    }
}
