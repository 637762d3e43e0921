//! Real HTTP clients that nobody here wrote against the `ringwork` binary: curl against
//! `serve hello` (keep-alive) and `serve web --root` (a byte-for-byte static download,
//! ranges, HEAD; Python's http.client downloading a large file whole and in ranges on one
//! keep-alive connection; a 64 MiB file sent by sendfile(2), whole and in ranges, checked
//! by SHA-256 against the file, with curl too), over HTTP/1.1 and over HTTP/2 with prior knowledge on the same port (no
//! flag: the preface decides); a real gRPC client and server (Python's grpcio) through
//! `serve http-proxy` with an HTTP/2 pool. The in-process interop tests (the JSON echo handler, Python's
//! http.client) are `protocols/tests/http_interop.rs`.
//!
//! curl must be installed: a missing one fails the test, naming
//! `scripts/install-http-test-deps.sh` (which CI runs); the tests install nothing. Every test
//! runs on both backends (the binary's `--backend`).

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use ringwork::platform::testing;
use ringwork::{BackendChoice, DriverConfig};
use ringwork_protocols::Endpoint;
use support::{LIMIT, TempDir, pattern};

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
fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
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
/// A child process killed and reaped on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

    /// `--open-file-cache 4:0` reaches the handler: the file is kept open, but checked on
    /// every request, so one replaced by rename is served new at once; `off` serves too.
    fn curl_with_the_open_file_cache_sees_a_replaced_file(backend: BackendChoice) {
        let dir = TempDir::new("interop-web-cache");
        let root = web_root(&dir);
        for cache in ["4:0", "off"] {
            let args = ["web", "--root", &root, "--open-file-cache", cache];
            let Some(server) = Cli::start(backend, &args) else { return };
            std::fs::write(dir.0.join("page.txt"), "first\n").unwrap();
            let out = curl(&[&url(server.addr, "/page.txt"), &url(server.addr, "/page.txt")]);
            assert_eq!(out.stdout, b"first\nfirst\n", "{cache}");
            std::fs::write(dir.0.join("new.txt"), "second\n").unwrap();
            std::fs::rename(dir.0.join("new.txt"), dir.0.join("page.txt")).unwrap();
            let out = curl(&[&url(server.addr, "/page.txt")]);
            assert_eq!(out.stdout, b"second\n", "{cache}");
        }
    }

    fn python_downloads_a_large_file_whole_and_in_ranges(backend: BackendChoice) {
        let dir = TempDir::new("interop-web-py");
        let root = web_root(&dir);
        let Some(server) = Cli::start(backend, &["web", "--root", &root]) else { return };
        // One keep-alive connection: each body is saved as out.N, each status line printed.
        let script = r#"
import http.client, sys
host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection(host, port, timeout=20)
ranges = [None, "bytes=0-99", "bytes=1048576-2097151", "bytes=-1000", "bytes=3000000-"]
for i, wanted in enumerate(ranges):
    conn.request("GET", "/big.bin", headers={"Range": wanted} if wanted else {})
    response = conn.getresponse()
    body = response.read()
    with open("%s.%d" % (out, i), "wb") as f:
        f.write(body)
    print(response.status, response.getheader("Content-Range", "-"))
"#;
        let out_base = dir.0.join("out");
        let port = server.addr.port().to_string();
        let out = run("python3", &["-c", script, "127.0.0.1", &port, path_str(&out_base)]);
        assert!(
            out.status.success(),
            "python http.client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        const BIG: usize = 3 * 1024 * 1024;
        let statuses = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            statuses.lines().collect::<Vec<_>>(),
            [
                "200 -",
                "206 bytes 0-99/3145728",
                "206 bytes 1048576-2097151/3145728",
                "206 bytes 3144728-3145727/3145728",
                "206 bytes 3000000-3145727/3145728",
            ]
        );
        let whole = pattern(BIG);
        let spans = [(0, BIG), (0, 100), (1 << 20, 2 << 20), (BIG - 1000, BIG), (3_000_000, BIG)];
        for (i, (from, to)) in spans.into_iter().enumerate() {
            let got = std::fs::read(format!("{}.{i}", path_str(&out_base))).unwrap();
            assert!(got == whole[from..to], "body {i} differs ({} bytes)", got.len());
        }
    }

    /// 64 MiB by sendfile(2) (`serve web`'s default for bodies from 16 KiB up): Python's
    /// http.client on one keep-alive connection, whole and in ranges, and curl, each body's
    /// SHA-256 checked against the same span of the file on disk.
    fn python_and_curl_download_64_mib_by_sendfile(backend: BackendChoice) {
        const HUGE: usize = 64 * 1024 * 1024;
        let dir = TempDir::new("interop-web-64m");
        let root = web_root(&dir);
        std::fs::write(dir.0.join("huge.bin"), pattern(HUGE)).unwrap();
        let Some(server) = Cli::start(backend, &["web", "--root", &root]) else { return };
        let script = r#"
import hashlib, http.client, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
conn = http.client.HTTPConnection(host, port, timeout=60)
spans = [None, (0, 99), (1, 33554432), (40000000, len(data) - 1), (len(data) - 16384, None)]
for span in spans:
    headers = {}
    if span:
        headers["Range"] = "bytes=%d-%s" % (span[0], "" if span[1] is None else span[1])
    conn.request("GET", "/huge.bin", headers=headers)
    response = conn.getresponse()
    body = response.read()
    start = span[0] if span else 0
    end = len(data) if not span or span[1] is None else span[1] + 1
    same = hashlib.sha256(body).digest() == hashlib.sha256(data[start:end]).digest()
    print(response.status, len(body), "same" if same else "DIFFERENT")
"#;
        let port = server.addr.port().to_string();
        let file = dir.0.join("huge.bin");
        let out = run("python3", &["-c", script, "127.0.0.1", &port, path_str(&file)]);
        assert!(
            out.status.success(),
            "python http.client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(),
            [
                "200 67108864 same",
                "206 100 same",
                "206 33554432 same",
                "206 27108864 same",
                "206 16384 same",
            ]
        );
        let saved = dir.0.join("curl.bin");
        curl(&["--output", path_str(&saved), &url(server.addr, "/huge.bin")]);
        let got = std::fs::read(&saved).unwrap();
        assert!(got == pattern(HUGE), "curl's download differs ({} bytes)", got.len());
        let out = curl(&["--range", "5000000-5999999", &url(server.addr, "/huge.bin")]);
        assert!(out.stdout == pattern(HUGE)[5_000_000..6_000_000], "curl's range differs");
    }

    fn curl_http2_prior_knowledge_to_hello_and_web(backend: BackendChoice) {
        let h2 = "--http2-prior-knowledge";
        let version = ["--write-out", "%{http_version}"];
        let Some(hello) = Cli::start(backend, &["hello"]) else { return };
        let out = curl(&[h2, version[0], version[1], &url(hello.addr, "/a")]);
        assert_eq!(out.stdout, b"Hello, World!2");

        let dir = TempDir::new("interop-web-h2");
        let root = web_root(&dir);
        let Some(server) = Cli::start(backend, &["web", "--root", &root]) else { return };
        let saved = dir.0.join("downloaded.bin");
        curl(&[h2, "--output", path_str(&saved), &url(server.addr, "/big.bin")]);
        let got = std::fs::read(&saved).unwrap();
        assert!(got == pattern(3 * 1024 * 1024), "the h2 download differs ({} bytes)", got.len());
        let out = curl(&[h2, "--range", "-5", &url(server.addr, "/digits.txt")]);
        assert_eq!(out.stdout, b"56789");
        let out = curl(&[h2, "--head", &url(server.addr, "/big.bin")]);
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(head.starts_with("http/2 200"), "{head}");
        assert!(head.contains("\r\ncontent-length: 3145728\r\n"), "{head}");
    }

    fn grpc_through_the_proxy_to_an_http2_pool(backend: BackendChoice) {
        // A real gRPC server and client (Python's grpcio, scripts/install-h2-test-deps.sh):
        // unary with trailing metadata and a server stream, through `serve http-proxy`
        // whose pool speaks HTTP/2.
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/grpc_peer.py");
        let mut server = Peer(Command::new("python3")
            .args([script, "server"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 (scripts/install-h2-test-deps.sh installs grpcio)"));
        let mut line = String::new();
        BufReader::new(server.0.stdout.take().expect("piped")).read_line(&mut line).expect("the server's port");
        let port = line.trim().strip_prefix("port ").unwrap_or_else(|| {
            panic!("grpc server did not start ({line:?}): install grpcio with scripts/install-h2-test-deps.sh")
        }).to_owned();
        let dir = TempDir::new("grpc-proxy");
        let config = dir.0.join("proxy.toml");
        std::fs::write(&config, format!(
            "cores = 1\n[upstreams.grpc]\nservers = [\"127.0.0.1:{port}\"]\nhttp2 = true\n\n[[routes]]\nupstream = \"grpc\"\n"
        )).expect("write the config");
        let Some(proxy) = Cli::start(backend, &["http-proxy", "--config", path_str(&config)]) else { return };
        let out = run("python3", &[script, "client", &proxy.addr.to_string()]);
        drop(server);
        assert!(
            out.status.success() && out.stdout == b"ok\n",
            "grpc client through the proxy:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
