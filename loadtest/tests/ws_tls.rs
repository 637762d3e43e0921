//! `ringwork-load ws` over TLS (`wss://`), on both backends: the binary's echo mode with
//! `--verify` against ringwork's WebSocket echo service on a TLS listener (what
//! `ringwork serve ws-echo --listen tls:..` runs, test CA certificate given as `--cacert`)
//! and against Python's `websockets` serving TLS (`scripts/ws-peers/ws_peer.py server
//! --tls`); the fan-out mode through ringwork's broadcast server on a TLS listener; and a
//! certificate the client does not trust (no message, exit 1 naming TLS).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ringwork::DriverConfig;
use ringwork::platform::{BackendChoice, test_all_backends};
use ringwork::testing::certs::TestCa;
use ringwork::tls::TlsAcceptor;
use ringwork_loadtest::tls::TlsOptions;
use ringwork_loadtest::ws_fanout::{FanoutOptions, run_fanout};
use ringwork_loadtest::{Report, RunOptions};
use ringwork_protocols::http::server::ServerConfig;
use ringwork_protocols::websocket::broadcast::{Topic, TopicConfig, ws_chat_server};
use ringwork_protocols::websocket::proto::WsConfig;
use ringwork_protocols::websocket::server::ws_echo_server;

/// A CA and a `localhost`/`127.0.0.1` server certificate written to a fresh directory.
struct Pki {
    dir: PathBuf,
    ca: TestCa,
    ca_pem: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir =
            std::env::temp_dir().join(format!("ringwork-load-wss-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let ca = TestCa::new();
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, &ca.cert_pem).expect("write ca");
        let (cert, key) = ca
            .server(&["localhost", "127.0.0.1"])
            .write_pem(&dir, "server");
        Pki {
            dir,
            ca,
            ca_pem,
            cert,
            key,
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        let cert = self.ca.server(&["localhost", "127.0.0.1"]);
        TlsAcceptor::builder()
            .certificate(cert.chain(), cert.key())
            .build()
            .expect("acceptor")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn backend_name(backend: BackendChoice) -> &'static str {
    match backend {
        BackendChoice::Uring => "uring",
        BackendChoice::Poll => "poll",
        BackendChoice::Auto => "auto",
    }
}

/// Runs `ringwork-load ws URL --verify ..` for one second; its exit success, report and
/// stderr.
fn load(
    url: &str,
    backend: BackendChoice,
    extra: &[&str],
    dir: &Path,
) -> (bool, Option<Report>, String) {
    let json = dir.join(format!("report-{}.json", backend_name(backend)));
    let _ = std::fs::remove_file(&json);
    let output = Command::new(env!("CARGO_BIN_EXE_ringwork-load"))
        .args([
            "ws", url, "-c", "4", "-d", "1s", "-s", "3000", "--verify", "--quiet",
        ])
        .args(["--backend", backend_name(backend), "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .expect("run ringwork-load");
    let report = std::fs::read_to_string(&json)
        .ok()
        .map(|text| Report::from_json(&text).expect("a valid report"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), report, stderr)
}

/// Checks a run that should have echoed verified messages without an error.
fn assert_echoed(run: (bool, Option<Report>, String)) {
    let (ok, report, stderr) = run;
    assert!(ok, "ringwork-load failed: {stderr}");
    let report = report.expect("a JSON report");
    assert!(report.requests > 10, "{} echoes\n{stderr}", report.requests);
    assert_eq!(report.errors.total(), 0, "{:?}\n{stderr}", report.errors);
}

/// Python's `websockets` echo server over TLS; stopped on drop.
struct PythonPeer {
    child: Child,
    port: u16,
}

impl PythonPeer {
    fn start(cert: &Path, key: &Path) -> Option<PythonPeer> {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ws-peers/ws_peer.py");
        let spawned = Command::new("python3")
            .arg(script)
            .args(["server", "--tls"])
            .args([cert, key])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let missing = |why: String| {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "python3 websockets peer did not start ({why}): scripts/install-ws-test-deps.sh"
            );
            eprintln!(
                "skipped: python3 websockets peer did not start ({why}); see scripts/install-ws-test-deps.sh"
            );
            None
        };
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => return missing(error.to_string()),
        };
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        match line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
        {
            Some(port) => Some(PythonPeer { child, port }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                missing(format!("said {line:?}"))
            }
        }
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn backend_runs(backend: BackendChoice) -> bool {
    ringwork::platform::testing::driver(backend, DriverConfig::default()).is_some()
}

test_all_backends! {
    /// Echo over `wss://` against ringwork's echo service, with `--cacert` and `--sni`
    /// (the URL's host is an IP address, the certificate also names `localhost`); and the
    /// same server refused without the CA.
    fn echo_against_ringwork(backend: BackendChoice) {
        let pki = Pki::new(&format!("ringwork-{}", backend_name(backend)));
        let acceptor = pki.acceptor();
        let Some(server) = common::serve(backend, move |reactor| {
            let ws = WsConfig::default();
            reactor
                .listen_tls(
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                    &acceptor,
                    ws_echo_server(ServerConfig::default(), ws),
                )
                .expect("listen")
        }) else {
            return;
        };
        let url = format!("wss://127.0.0.1:{}/echo", server.addr.port());
        let ca = pki.ca_pem.to_str().expect("utf-8 path");
        assert_echoed(load(&url, backend, &["--cacert", ca], &pki.dir));
        assert_echoed(load(&url, backend, &["--cacert", ca, "--sni", "localhost"], &pki.dir));
        // Without the CA (system roots), the certificate is refused: exit 1, nothing echoed.
        let (ok, report, stderr) = load(&url, backend, &[], &pki.dir);
        assert!(!ok, "an untrusted certificate must fail the run");
        assert!(stderr.contains("TLS"), "{stderr}");
        assert_eq!(report.map_or(0, |r| r.requests), 0);
        // TLS options need a wss:// URL.
        let plain = format!("ws://127.0.0.1:{}/", server.addr.port());
        let (ok, _, stderr) = load(&plain, backend, &["--cacert", ca], &pki.dir);
        assert!(!ok && stderr.contains("wss://"), "{stderr}");
    }

    /// Echo over `wss://` against Python's `websockets` serving TLS.
    fn echo_against_python_websockets(backend: BackendChoice) {
        if !backend_runs(backend) {
            return;
        }
        let pki = Pki::new(&format!("python-{}", backend_name(backend)));
        let Some(peer) = PythonPeer::start(&pki.cert, &pki.key) else { return };
        let url = format!("wss://localhost:{}/", peer.port);
        let ca = pki.ca_pem.to_str().expect("utf-8 path");
        assert_echoed(load(&url, backend, &["--cacert", ca], &pki.dir));
    }

    /// Fan-out over `wss://`: 20 subscribers of ringwork's broadcast server on a TLS
    /// listener each get every measured message.
    fn fanout_over_tls(backend: BackendChoice) {
        let pki = Pki::new(&format!("fanout-{}", backend_name(backend)));
        let acceptor = pki.acceptor();
        let Some(server) = common::serve(backend, move |reactor| {
            let topic = Topic::new(TopicConfig::default()).local(reactor);
            let chat = ws_chat_server(ServerConfig::default(), WsConfig::default(), topic);
            reactor
                .listen_tls(SocketAddr::from(([127, 0, 0, 1], 0)), &acceptor, chat)
                .expect("listen")
        }) else {
            return;
        };
        let url = format!("wss://127.0.0.1:{}/", server.addr.port());
        let run = RunOptions {
            backend,
            cores: 1,
            ..RunOptions::new("ws", &url, server.addr)
        };
        let tls = TlsOptions {
            ca_file: Some(pki.ca_pem.clone()),
            alpn: vec!["http/1.1".into()],
            ..TlsOptions::new("localhost")
        };
        let opts = FanoutOptions {
            url,
            addr: server.addr,
            subscribers: 20,
            rate: 200.0,
            size: 64,
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(10),
            tls: Some(tls),
            run,
        };
        let report = run_fanout(&opts).expect("run");
        let summary = report.summary();
        assert_eq!(report.connected, 20, "{summary}");
        assert!(report.published >= 150, "{summary}");
        assert_eq!(report.delivered, report.published * 20, "{summary}");
        assert_eq!(report.lost, 0, "{summary}");
    }
}
