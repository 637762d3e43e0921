//! HTTP/2 clients nobody here wrote, against the server on both backends: curl
//! (`--http2-prior-knowledge` on the plain port, `--http2` over TLS with ALPN), h2load
//! (nghttp2: many streams on few connections), and Python's httpx with the `h2` library.
//! The same listener serves HTTP/1.1 too (the preface decides), checked alongside.
//!
//! Server: in-process, one core, a plain and a TLS listener (certificate of a throw-away
//! CA; the clients skip verification). Handler: hello, an echo of the request body, a
//! streamed 4 MiB download written as the connection takes it (`BodyWriter::ready`), and a
//! streamed upload counted as it arrives (`RequestBody`), so flow control is the
//! backpressure both ways. The peers must be installed: a missing one fails the test,
//! naming `scripts/install-h2-test-deps.sh` (which CI runs).
#![cfg(feature = "engine")]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;

use common::{LIMIT, TempDir, pattern};
use ringwork::platform::testing;
use ringwork::testing::certs::TestCa;
use ringwork::tls::TlsAcceptor;
use ringwork::{BackendChoice, DriverConfig, Runtime, ShutdownHandle};
use ringwork_protocols::http::proto::RequestHead;
use ringwork_protocols::http::server::{
    ALPN_H2, Handler, HttpServer, Request, Responder, Response, ServerConfig,
};
use ringwork_protocols::http::services::hello;

const INSTALL: &str = "scripts/install-h2-test-deps.sh";
const DOWNLOAD: usize = 4 * 1024 * 1024;
const PIECE: usize = 64 * 1024;

struct Interop;

impl Handler for Interop {
    fn handle(&self, mut request: Request, respond: Responder) {
        let handle = request.handle().clone();
        match request.path() {
            b"/echo" => {
                let version = format!("{:?}", request.version());
                respond.send(
                    Response::new(200)
                        .header("x-version", version)
                        .with_body(request.body().clone()),
                );
            }
            b"/stream" => {
                let mut writer = respond.stream(Response::new(200));
                handle.spawn_local(async move {
                    let data = pattern(DOWNLOAD);
                    for piece in data.chunks(PIECE) {
                        if writer.ready().await.is_err() {
                            return;
                        }
                        writer.write(piece.to_vec());
                    }
                    writer.finish();
                });
            }
            b"/count" => {
                let mut body = request.take_body_stream().expect("a streamed body");
                handle.spawn_local(async move {
                    let mut total = 0usize;
                    let mut sum = 0u64;
                    while let Some(piece) = body.next().await {
                        let Ok(piece) = piece else { return };
                        total += piece.len();
                        sum += piece.iter().map(|&b| u64::from(b)).sum::<u64>();
                    }
                    respond.send(Response::text(format!("{total} {sum}")));
                });
            }
            _ => hello(request, respond),
        }
    }

    fn stream_body(&self, head: &RequestHead) -> bool {
        head.path() == b"/count"
    }
}

/// A server with a plain and a TLS listener, on its own thread; stopped on drop.
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

fn start(backend: BackendChoice) -> Option<Servers> {
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
        .build()
        .expect("runtime");
    let handle = runtime.shutdown_handle();
    let (addr_tx, addr_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let _ = runtime.run(move |reactor| {
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let plain =
                reactor.listen_tcp(loopback, HttpServer::new(Interop, ServerConfig::default()))?;
            let tls = reactor.listen_tls(
                loopback,
                &acceptor,
                HttpServer::new(Interop, ServerConfig::default()),
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

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install the peers with {INSTALL}"))
}

#[track_caller]
fn succeeded(program: &str, args: &[&str]) -> Output {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// curl with a time limit, insecure (the test CA is not trusted), printing the HTTP
/// version after the body.
#[track_caller]
fn curl(args: &[&str]) -> (Vec<u8>, String) {
    let max = LIMIT.as_secs().to_string();
    let mut all = vec![
        "--silent",
        "--show-error",
        "--insecure",
        "--max-time",
        &max,
        "--write-out",
        "\n%{http_version}",
    ];
    all.extend_from_slice(args);
    let mut out = succeeded("curl", &all).stdout;
    let at = out
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("the version line");
    let version = String::from_utf8_lossy(&out[at + 1..]).into_owned();
    out.truncate(at);
    (out, version)
}

ringwork::platform::test_all_backends! {
    fn curl_speaks_h2c_with_prior_knowledge_h2_over_tls_and_http1_on_the_same_ports(backend: BackendChoice) {
        let Some(servers) = start(backend) else { return };
        let plain = format!("http://{}", servers.plain);
        let tls = format!("https://{}", servers.tls);
        for (mode, base, version) in [
            ("--http2-prior-knowledge", &plain, "2"),
            ("--http2", &tls, "2"),
            ("--http1.1", &plain, "1.1"),
            ("--http1.1", &tls, "1.1"),
        ] {
            let (body, got) = curl(&[mode, &format!("{base}/hello")]);
            assert_eq!(body, b"Hello, World!", "{mode} {base}");
            assert_eq!(got, version, "{mode} {base}");
        }
        // A body both ways (300 KB: past the initial windows), and a streamed download of
        // 4 MiB written as the windows open.
        let dir = TempDir::new("h2-interop");
        let upload = pattern(300 * 1024);
        let file = dir.0.join("upload");
        std::fs::write(&file, &upload).unwrap();
        let data = format!("@{}", file.to_str().unwrap());
        for (mode, base) in [("--http2-prior-knowledge", &plain), ("--http2", &tls)] {
            let (body, version) = curl(&[mode, "--data-binary", &data, &format!("{base}/echo")]);
            assert_eq!(version, "2");
            assert!(body == upload, "{mode}: echo of {} bytes came back as {}", upload.len(), body.len());
            let (body, _) = curl(&[mode, &format!("{base}/stream")]);
            assert!(body == pattern(DOWNLOAD), "{mode}: {} bytes of {DOWNLOAD}", body.len());
            let (body, _) = curl(&[mode, "--data-binary", &data, &format!("{base}/count")]);
            let sum: u64 = upload.iter().map(|&b| u64::from(b)).sum();
            assert_eq!(String::from_utf8_lossy(&body), format!("{} {sum}", upload.len()));
        }
    }

    fn h2load_runs_many_streams_on_few_connections(backend: BackendChoice) {
        let Some(servers) = start(backend) else { return };
        for url in [format!("http://{}/", servers.plain), format!("https://{}/", servers.tls)] {
            let out = succeeded("h2load", &["-n", "2000", "-c", "4", "-m", "10", &url]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored"),
                "{url}: {text}"
            );
            assert!(text.contains("status codes: 2000 2xx"), "{url}: {text}");
            if url.starts_with("https") {
                assert!(text.contains("Application protocol: h2"), "{text}");
            }
        }
    }

    fn python_httpx_over_h2c_and_h2(backend: BackendChoice) {
        let Some(servers) = start(backend) else { return };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/h2_client_interop.py");
        for base in [format!("http://{}", servers.plain), format!("https://{}", servers.tls)] {
            let out = run("python3", &[script, &base]);
            assert!(
                out.status.success() && out.stdout == b"ok\n",
                "httpx against {base}:\n{}{}\n(install with {INSTALL})",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
