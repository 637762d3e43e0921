//! TLS acceptance tests of ringwork-load against in-process ringwork TLS servers (test CA
//! certificates), on every backend: handshake and resumption counts with
//! `--reconnect-every 1`, `--no-resume`, TCP echo over TLS with `--verify`, and an
//! untrusted server certificate (exit 1 naming the problem).

mod common;

use common::Server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ringwork::platform::{BackendChoice, test_all_backends};
use ringwork::testing::certs::{TestCa, TestCert};
use ringwork::tls::TlsAcceptor;
use ringwork::{Context, Factory, Protocol};
use ringwork_loadtest::http::HttpWorkload;
use ringwork_loadtest::tcp::{EchoSession, message};
use ringwork_loadtest::tls::TlsOptions;
use ringwork_loadtest::{Report, RunOptions, run_stream};

/// Starts a TLS server presenting `cert`; `None` when the backend cannot run here.
fn serve_tls<F: Factory>(
    backend: BackendChoice,
    cert: &TestCert,
    make: impl FnOnce() -> F + Send + 'static,
) -> Option<Server> {
    let acceptor = TlsAcceptor::builder()
        .certificate(cert.chain(), cert.key())
        .build()
        .expect("acceptor");
    common::serve(backend, move |reactor| {
        reactor
            .listen_tls(SocketAddr::from(([127, 0, 0, 1], 0)), &acceptor, make())
            .expect("listen")
    })
}

/// Answers every request head (no bodies) with a 5-byte 200.
#[derive(Default)]
struct Hello {
    tail: Vec<u8>,
}

impl Protocol for Hello {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.tail.extend_from_slice(data);
        while let Some(end) = self.tail.windows(4).position(|w| w == b"\r\n\r\n") {
            self.tail.drain(..end + 4);
            ctx.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        }
    }
}

/// Echoes everything.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(data);
    }
}

fn tls_options(ca: &TestCa) -> TlsOptions {
    let dir = scratch();
    let path = dir.join("ca.pem");
    std::fs::write(&path, &ca.cert_pem).expect("write ca");
    TlsOptions {
        ca_file: Some(path),
        ..TlsOptions::new("localhost")
    }
}

/// A directory of this test process (CA files).
fn scratch() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ringwork-load-tls-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// One connection, `n` requests, a new TLS connection for each: strictly sequential, so
/// handshakes and requests match exactly.
fn https_run(server: &Server, backend: BackendChoice, tls: TlsOptions, n: u64) -> Report {
    let url = format!("https://{}/", server.addr);
    let w = HttpWorkload::new(std::slice::from_ref(&url), "GET", &[], b"").expect("workload");
    assert!(w.tls);
    let opts = RunOptions {
        backend,
        connections: 1,
        requests: Some(n),
        duration: Duration::from_secs(20),
        reconnect_every: Some(1),
        tls: Some(tls),
        ..RunOptions::new("http", &url, server.addr)
    };
    run_stream(&opts, move || w.session()).expect("run")
}

test_all_backends! {
    /// `--reconnect-every 1` over https: one handshake per request; from the second one on,
    /// sessions resume (TLS 1.3 tickets from the per-core cache).
    fn https_handshake_per_request_resumes(backend: BackendChoice) {
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let Some(server) = serve_tls(backend, &cert, || Hello::default) else { return };
        let r = https_run(&server, backend, tls_options(&ca), 30);
        let s = r.summary();
        assert_eq!((r.requests, r.errors.total(), r.panics), (30, 0, 0), "{s}");
        assert_eq!(r.tls_handshakes, r.requests, "{s}");
        assert!(r.tls_resumed > 0 && r.tls_resumed < r.tls_handshakes, "{s}");
        assert!(r.handshakes_per_sec > 0.0, "{s}");
        assert!(r.tls_session.as_deref().is_some_and(|t| t.starts_with("TLSv1.3")), "{s}");
        assert!(s.contains("handshakes"), "{s}");
    }

    /// Many connections handshaking at once all find a ticket after their first handshake:
    /// only the first handshake of each connection slot is full (rustls's default cache,
    /// 8 tickets per server, would make most of them full).
    fn https_resumes_with_many_connections(backend: BackendChoice) {
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let Some(server) = serve_tls(backend, &cert, || Hello::default) else { return };
        let url = format!("https://{}/", server.addr);
        let w = HttpWorkload::new(std::slice::from_ref(&url), "GET", &[], b"").expect("workload");
        let opts = RunOptions {
            backend,
            connections: 32,
            requests: Some(640),
            duration: Duration::from_secs(20),
            reconnect_every: Some(1),
            tls: Some(tls_options(&ca)),
            ..RunOptions::new("http", &url, server.addr)
        };
        let r = run_stream(&opts, move || w.session()).expect("run");
        let s = r.summary();
        assert_eq!((r.requests, r.errors.total()), (640, 0), "{s}");
        assert!(r.tls_handshakes >= 640, "{s}");
        assert!(r.tls_handshakes - r.tls_resumed <= 32, "{s}");
    }

    /// `--no-resume`: every handshake is a full one.
    fn https_no_resume_makes_full_handshakes(backend: BackendChoice) {
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let Some(server) = serve_tls(backend, &cert, || Hello::default) else { return };
        let tls = TlsOptions { resumption: false, ..tls_options(&ca) };
        let r = https_run(&server, backend, tls, 20);
        let s = r.summary();
        assert_eq!((r.requests, r.errors.total()), (20, 0), "{s}");
        assert_eq!((r.tls_handshakes, r.tls_resumed), (20, 0), "{s}");
    }

    /// TCP echo over TLS, every byte verified; keep-alive: one handshake per connection.
    fn tcp_echo_over_tls_verified(backend: BackendChoice) {
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let Some(server) = serve_tls(backend, &cert, || || Echo) else { return };
        let opts = RunOptions {
            backend,
            connections: 3,
            duration: Duration::from_millis(800),
            depth: 2,
            tls: Some(tls_options(&ca)),
            ..RunOptions::new("tcp", &server.addr.to_string(), server.addr)
        };
        let msg = message(4000);
        let r = run_stream(&opts, move || EchoSession::new(msg.clone(), true)).expect("run");
        let s = r.summary();
        assert!(r.requests > 50, "{s}");
        assert_eq!((r.errors.total(), r.panics), (0, 0), "{s}");
        assert_eq!(r.tls_handshakes, 3, "{s}");
        assert!(r.in_mb_per_sec > 0.0 && s.contains("MB/s"), "{s}");
    }
}

/// The binary against a server whose certificate another CA signed: exit 1, the reason
/// names the certificate problem; against the right CA with `--cipher-suite`, the JSON
/// carries the handshake counts and the pinned suite.
#[test]
fn binary_tls() {
    let (ca, other) = (TestCa::new(), TestCa::new());
    let cert = other.server(&["localhost"]);
    let Some(server) = serve_tls(BackendChoice::Auto, &cert, || Hello::default) else {
        return;
    };
    let ca_file = tls_options(&ca).ca_file.unwrap();
    let bin = env!("CARGO_BIN_EXE_ringwork-load");
    let url = format!("https://{}/", server.addr);
    let out = std::process::Command::new(bin)
        .args(["http", &url, "-c", "2", "-d", "1s", "--sni", "localhost"])
        .arg("--cacert")
        .arg(&ca_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("TLS handshake") && stderr.contains("certificate"),
        "{stderr}"
    );
    assert!(stdout.contains("tls "), "{stdout}");

    let right = tls_options(&other).ca_file.unwrap();
    let json = right.with_file_name("report.json");
    let out = std::process::Command::new(bin)
        .args([
            "http",
            &url,
            "-c",
            "1",
            "-n",
            "10",
            "--reconnect-every",
            "1",
        ])
        .args([
            "--sni",
            "localhost",
            "--cipher-suite",
            "TLS_AES_128_GCM_SHA256",
        ])
        .args(["--alpn", "http/1.1", "--quiet"])
        .arg("--cacert")
        .arg(&right)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = Report::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((r.requests, r.tls_handshakes), (10, 10), "{stdout}");
    assert!(
        r.tls_session.as_deref() == Some("TLSv1.3 TLS13_AES_128_GCM_SHA256"),
        "{stdout}"
    );

    // No verification bypass exists; TLS options without TLS are refused.
    for args in [
        &["http", url.as_str(), "--insecure"][..],
        &["http", "http://127.0.0.1:1/", "--no-resume"],
        &["tcp", "127.0.0.1:1", "--cacert", "/x.pem"],
        &["http", url.as_str(), "--cipher-suite", "RC4", "-d", "1s"],
    ] {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    }
}

/// TLS counts merge like the other counts; reports written before TLS existed still load.
#[test]
fn tls_fields_merge_and_default() {
    let ca = TestCa::new();
    let cert = ca.server(&["localhost"]);
    let Some(server) = serve_tls(BackendChoice::Auto, &cert, || Hello::default) else {
        return;
    };
    let a = https_run(&server, BackendChoice::Auto, tls_options(&ca), 5);
    let merged = Report::merge(&[a.clone(), a.clone()]).unwrap();
    assert_eq!(merged.tls_handshakes, 10);
    assert_eq!(merged.tls_resumed, 2 * a.tls_resumed);
    assert!((merged.handshakes_per_sec - 2.0 * a.handshakes_per_sec).abs() < 1e-6);
    assert_eq!(merged.tls_session, a.tls_session);
    let mut old: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
    let fields = old.as_object_mut().unwrap();
    for key in [
        "tls_handshakes",
        "tls_resumed",
        "handshakes_per_sec",
        "tls_session",
        "in_mb_per_sec",
    ] {
        fields.remove(key);
    }
    fields["errors"].as_object_mut().unwrap().remove("tls");
    let r = Report::from_json(&old.to_string()).unwrap();
    assert_eq!(
        (r.tls_handshakes, r.errors.tls, r.tls_session),
        (0, 0, None)
    );
}
