//! Real HTTP clients that nobody here wrote, against the server: curl (keep-alive,
//! chunked upload, ranges, HEAD, 100-continue, a byte-for-byte static download) and
//! Python's http.client (keep-alive, a chunked request body, pipelining over a raw
//! socket).
//!
//! Servers: the `ringwork` binary (`serve hello`, `serve web --root`), and in-process the
//! JSON echo handler of `examples/http_json_echo` (the same source file). curl and
//! python3 must be installed: a missing one fails the test, naming
//! `scripts/install-http-test-deps.sh` (which CI runs); the tests install nothing.
#![cfg(feature = "engine")]

mod common;
#[path = "../examples/http_json_echo/handler.rs"]
mod json_echo;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use common::{LIMIT, Server, TempDir, pattern};
use ringwork::platform::testing;
use ringwork::{BackendChoice, DriverConfig};
use ringwork_protocols::Endpoint;
use ringwork_protocols::http::server::{Request, Responder, ServerConfig};
use ringwork_protocols::http::services::hello;

const INSTALL: &str = "scripts/install-http-test-deps.sh";

/// Runs `program` with `args`; fails clearly when the program is not installed.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install the HTTP test tools with {INSTALL}")
        })
}

/// `curl` with a time limit, silent but showing errors; fails unless it succeeds.
#[track_caller]
fn curl(args: &[&str]) -> Output {
    let max = LIMIT.as_secs().to_string();
    let mut all = vec!["--silent", "--show-error", "--max-time", &max];
    all.extend_from_slice(args);
    let out = run("curl", &all);
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The Python client script in `tests/data`, in `mode`, against `addr`.
#[track_caller]
fn python(addr: SocketAddr, mode: &str) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/http_client_interop.py"
    );
    let port = addr.port().to_string();
    let out = run("python3", &[script, "127.0.0.1", &port, mode]);
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "python http.client {mode} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `POST /json`: the JSON echo example; anything else: hello.
fn json_or_hello() -> impl Fn(Request, Responder) + 'static {
    |request: Request, respond: Responder| {
        if request.path() == b"/json" {
            json_echo::json_echo(request, respond);
        } else {
            hello(request, respond);
        }
    }
}

fn json_server(backend: BackendChoice) -> Option<Server> {
    Server::start(backend, ServerConfig::default(), json_or_hello)
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// A JSON document of about `len` bytes, and its text.
fn json_doc(len: usize) -> (serde_json::Value, Vec<u8>) {
    let items: Vec<serde_json::Value> = (0..len / 24)
        .map(|i| serde_json::json!({"i": i, "s": "ringwork"}))
        .collect();
    let doc = serde_json::json!({ "items": items, "unicode": "héllo ✓" });
    let text = serde_json::to_vec_pretty(&doc).unwrap();
    (doc, text)
}

/// The `ringwork` binary serving `args` on a free loopback port; killed on drop.
struct Cli {
    child: Child,
    addr: SocketAddr,
}

impl Cli {
    /// `ringwork serve <args> --listen tcp:0:interface=127.0.0.1 --cores 1 --backend B`,
    /// or `None` when `backend` cannot run here (skipped loudly).
    fn start(backend: BackendChoice, args: &[&str]) -> Option<Cli> {
        testing::driver(backend, DriverConfig::default())?;
        let name = match backend {
            BackendChoice::Uring => "uring",
            _ => "poll",
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringwork"))
            .arg("serve")
            .args(args)
            .args(["--listen", "tcp:0:interface=127.0.0.1", "--cores", "1"])
            .args(["--backend", name])
            .env("RUST_LOG", "info")
            .env_remove("RINGWORK_BACKEND")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringwork");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines): (_, Receiver<String>) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let addr = loop {
            let Ok(line) = lines.recv_timeout(LIMIT) else {
                let _ = child.kill();
                panic!("ringwork did not listen; stderr:\n{}", seen.join("\n"));
            };
            if let Some((_, rest)) = line.split_once("listening on ") {
                let text = rest.split(" (core").next().expect("split yields one");
                match text.parse() {
                    Ok(Endpoint::Tcp { addr }) => break addr,
                    other => panic!("unexpected endpoint {other:?} in {line:?}"),
                }
            }
            seen.push(line);
        };
        Some(Cli { child, addr })
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A static tree: a 3 MiB file (streamed) and a small one.
fn web_root(dir: &TempDir) -> String {
    std::fs::write(dir.0.join("big.bin"), pattern(3 * 1024 * 1024)).unwrap();
    std::fs::write(dir.0.join("digits.txt"), "0123456789".repeat(50)).unwrap();
    dir.0.to_str().expect("a UTF-8 temp path").to_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

ringwork::platform::test_all_backends! {
    fn curl_keep_alive(backend: BackendChoice) {
        let Some(server) = Cli::start(backend, &["hello"]) else { return };
        let out = curl(&["--verbose", &url(server.addr, "/a"), &url(server.addr, "/b")]);
        assert_eq!(out.stdout, b"Hello, World!Hello, World!");
        let log = String::from_utf8_lossy(&out.stderr);
        // curl says "Connected to" for each new connection and "Re-using" for a reuse.
        assert_eq!(log.matches("Connected to").count(), 1, "{log}");
        assert!(log.contains("Re-using existing"), "{log}");
    }

    fn curl_static_download_ranges_and_head(backend: BackendChoice) {
        let dir = TempDir::new("interop-web");
        let root = web_root(&dir);
        let Some(server) = Cli::start(backend, &["web", "--root", &root]) else { return };
        let saved = dir.0.join("downloaded.bin");
        curl(&["--output", path_str(&saved), &url(server.addr, "/big.bin")]);
        let got = std::fs::read(&saved).unwrap();
        assert!(got == pattern(3 * 1024 * 1024), "the download differs ({} bytes)", got.len());

        let out = curl(&["--range", "0-99", &url(server.addr, "/big.bin")]);
        assert!(out.stdout == pattern(100), "range 0-99 differs");
        let out = curl(&["--range", "-5", &url(server.addr, "/digits.txt")]);
        assert_eq!(out.stdout, b"56789");

        let out = curl(&["--head", &url(server.addr, "/big.bin")]);
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-length: 3145728\r\n"), "{head}");
        assert!(head.contains("\r\naccept-ranges: bytes\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "HEAD response had a body: {head}");
    }

    fn curl_chunked_upload_and_100_continue(backend: BackendChoice) {
        let Some(server) = json_server(backend) else { return };
        let dir = TempDir::new("interop-upload");
        let (doc, text) = json_doc(300 * 1024);
        let file = dir.0.join("doc.json");
        std::fs::write(&file, &text).unwrap();
        let data = format!("@{}", path_str(&file));
        let target = url(server.addr, "/json");

        let out = curl(&[
            "--verbose", "--header", "Transfer-Encoding: chunked",
            "--header", "Content-Type: application/json", "--data-binary", &data, &target,
        ]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("> Transfer-Encoding: chunked"), "{log}");
        let echoed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON back");
        assert_eq!(echoed, doc);

        let out = curl(&[
            "--verbose", "--header", "Expect: 100-continue", "--data-binary", &data, &target,
        ]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("< HTTP/1.1 100 Continue"), "{log}");
        assert!(log.contains("< HTTP/1.1 200 OK"), "{log}");
        let echoed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON back");
        assert_eq!(echoed, doc);

        // Not JSON: 400; not POST: 405.
        let out = curl(&["--write-out", "%{http_code}", "--output", "/dev/null",
            "--data-binary", "{not json", &target]);
        assert_eq!(out.stdout, b"400");
        let out = curl(&["--write-out", "%{http_code}", "--output", "/dev/null", &target]);
        assert_eq!(out.stdout, b"405");
    }

    fn python_keep_alive(backend: BackendChoice) {
        let Some(server) = json_server(backend) else { return };
        python(server.addr, "keep-alive");
    }

    fn python_chunked_body(backend: BackendChoice) {
        let Some(server) = json_server(backend) else { return };
        python(server.addr, "chunked");
    }

    fn python_pipelining(backend: BackendChoice) {
        let Some(server) = json_server(backend) else { return };
        python(server.addr, "pipelining");
    }
}
