//! Real HTTP clients that nobody here wrote, against the server: curl (chunked upload,
//! 100-continue) and Python's http.client (keep-alive, a chunked request body, pipelining
//! over a raw socket).
//!
//! Server: in-process, the JSON echo handler of `examples/http_json_echo` (the same source
//! file). curl against the `ringwork` binary (keep-alive, a static download, ranges, HEAD)
//! is `protocols/cli/tests/http_interop.rs`. curl and
//! python3 must be installed: a missing one fails the test, naming
//! `scripts/install-http-test-deps.sh` (which CI runs); the tests install nothing.
#![cfg(feature = "engine")]

mod common;
#[path = "../examples/http_json_echo/handler.rs"]
mod json_echo;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

use common::{LIMIT, Server, TempDir};
use ringwork::BackendChoice;
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

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

ringwork::platform::test_all_backends! {
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
