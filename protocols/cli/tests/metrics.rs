//! `--metrics`: known traffic, then a scrape parsed by a real Prometheus parser
//! (`prometheus_client.parser.text_string_to_metric_families` from PyPI, installed by
//! `scripts/install-ops-test-deps.sh`; a missing parser fails the test under `CI=true`),
//! whose counters must match the traffic, on both backends.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Instant;

use support::{LIMIT, Server, TempDir, backend};

/// A Python program printing every sample of the scrape at `argv[1]` as
/// `name{label="value",...} number`, labels sorted, after prometheus_client's parser took
/// it (a scrape the parser refuses fails the program).
const PARSE: &str = r#"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value!r}")
"#;

/// Whether python3 has prometheus_client; under CI=true a missing one is a failure.
fn parser_installed() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus_client is missing: scripts/install-ops-test-deps.sh installs it"
        );
        eprintln!("skipped: prometheus_client is not installed (scripts/install-ops-test-deps.sh)");
    }
    ok
}

/// The samples of one scrape, by `name{labels}`.
fn scrape(url: &str) -> BTreeMap<String, f64> {
    let output = Command::new("python3")
        .args(["-c", PARSE, url])
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "the Prometheus parser refused the scrape: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("name value");
            (key.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// The sample `key`, or a failure listing what the scrape had.
fn sample(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:#?}"))
}

/// Starts `ringwork serve ARGS --metrics tcp:0`: the metrics URL and the first listener.
fn start(args: &[&str]) -> (Server, String, SocketAddr) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--metrics", "tcp:0:interface=127.0.0.1"]);
    let mut server = Server::start(&all);
    let mut url = None;
    let mut listen = None;
    while url.is_none() || listen.is_none() {
        let line = server
            .next_line()
            .unwrap_or_else(|| panic!("ringwork ended early:\n{}", server.seen.join("\n")));
        if let Some((_, rest)) = line.split_once("metrics on ") {
            url = Some(rest.trim().to_owned());
        }
        if let Some((_, rest)) = line.split_once("listening on tcp:") {
            let port: u16 = rest
                .split(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a port");
            listen = Some(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    (server, url.expect("set"), listen.expect("set"))
}

/// Sends `requests` on one connection and reads until the server closes it; returns the
/// bytes sent and received.
fn exchange(addr: SocketAddr, requests: &[u8]) -> (usize, usize) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    stream.write_all(requests).expect("send");
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .expect("read to the server's close");
    (requests.len(), reply.len())
}

/// Scrapes until `ready` holds for the samples (a connection's close reaches the server
/// after the client saw its end), at most [`LIMIT`].
fn scrape_until(
    url: &str,
    ready: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let samples = scrape(url);
        if ready(&samples) || Instant::now() > deadline {
            return samples;
        }
    }
}

fn hello_counters(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    if !parser_installed() {
        return;
    }
    let (server, url, addr) = start(&[
        "serve",
        "hello",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let keep = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let last = b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (mut sent, mut received) = (0, 0);
    // Five connections of two requests each, then one that is not HTTP (400).
    for _ in 0..5 {
        let (s, r) = exchange(addr, &[&keep[..], &last[..]].concat());
        sent += s;
        received += r;
    }
    let (s, r) = exchange(addr, b"NOT HTTP\r\n\r\n");
    sent += s;
    received += r;
    let samples = scrape_until(&url, |s| {
        s.get("ringwork_connections_closed_total{core=\"0\"}") == Some(&6.0)
    });
    let core = "{core=\"0\"}";
    assert_eq!(
        sample(
            &samples,
            &format!("ringwork_connections_accepted_total{core}")
        ),
        6.0
    );
    assert_eq!(
        sample(
            &samples,
            &format!("ringwork_connections_closed_total{core}")
        ),
        6.0
    );
    assert_eq!(
        sample(&samples, &format!("ringwork_connections_open{core}")),
        0.0
    );
    assert_eq!(
        sample(&samples, &format!("ringwork_received_bytes_total{core}")),
        sent as f64
    );
    assert_eq!(
        sample(&samples, &format!("ringwork_sent_bytes_total{core}")),
        received as f64
    );
    assert_eq!(
        sample(&samples, "ringwork_http_responses_total{code=\"2xx\"}"),
        10.0
    );
    assert_eq!(
        sample(&samples, "ringwork_http_responses_total{code=\"4xx\"}"),
        1.0
    );
    assert_eq!(
        sample(&samples, "ringwork_http_responses_total{code=\"5xx\"}"),
        0.0
    );
    // The 400 answered input that never became a request: not timed.
    assert_eq!(
        sample(&samples, "ringwork_http_request_duration_seconds_count{}"),
        10.0
    );
    assert_eq!(
        sample(
            &samples,
            "ringwork_http_request_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        10.0
    );
    assert_eq!(
        sample(
            &samples,
            &format!("ringwork_core_info{{backend=\"{backend}\",core=\"0\"}}")
        ),
        1.0
    );
    let enters = sample(&samples, &format!("ringwork_io_enters_total{core}"));
    let completions = sample(&samples, &format!("ringwork_io_completions_total{core}"));
    assert!(enters > 0.0 && completions > 0.0, "{samples:#?}");
    let ratio = sample(
        &samples,
        &format!("ringwork_io_completions_per_enter{core}"),
    );
    assert!((ratio - completions / enters).abs() < 0.01, "{samples:#?}");
    assert_eq!(sample(&samples, "ringwork_scrape_cores_missing{}"), 0.0);
    assert!(server.terminate(), "ringwork did not exit cleanly");
}

/// The reverse proxy counts a dead upstream's 502s by pool.
fn proxy_upstream_errors(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    if !parser_installed() {
        return;
    }
    // A port nobody listens on: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_port = dead.local_addr().expect("addr").port();
    drop(dead);
    let dir = TempDir::new("metrics-proxy");
    let config = dir.0.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[upstreams.gone]\nservers = [\"127.0.0.1:{dead_port}\"]\n\n[[routes]]\nupstream = \"gone\"\n"
        ),
    )
    .expect("write the config");
    let (server, url, addr) = start(&[
        "serve",
        "http-proxy",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    for _ in 0..3 {
        let (_, received) = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(received > 0);
    }
    // The counters are not promised to be updated by the time the client has read its
    // response (this read once missed them on a loaded machine): wait for them, as
    // `hello_counters` does, with the same bound.
    let samples = scrape_until(&url, |s| {
        s.get("ringwork_http_responses_total{code=\"5xx\"}") == Some(&3.0)
            && s.get("ringwork_proxy_upstream_errors_total{kind=\"502\",pool=\"gone\"}")
                == Some(&3.0)
    });
    assert_eq!(
        sample(&samples, "ringwork_http_responses_total{code=\"5xx\"}"),
        3.0
    );
    assert_eq!(
        sample(
            &samples,
            "ringwork_proxy_upstream_errors_total{kind=\"502\",pool=\"gone\"}"
        ),
        3.0
    );
    assert!(server.terminate(), "ringwork did not exit cleanly");
}

/// TLS handshakes by result: `openssl s_client -reconnect` makes one full TLS 1.2 handshake
/// and resumes it five times; a client that sends no ClientHello fails one.
fn tls_handshakes(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    if !parser_installed() {
        return;
    }
    let openssl = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !openssl {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is missing: scripts/install-http-test-deps.sh installs it"
        );
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let dir = TempDir::new("metrics-tls");
    let ca = ringwork::testing::certs::TestCa::new();
    let (cert, key) = ca.server(&["localhost"]).write_pem(&dir.0, "server");
    let listen = format!(
        "tls:0:interface=127.0.0.1:cert={}:key={}",
        cert.display(),
        key.display()
    );
    let mut server = Server::start(&[
        "serve",
        "echo",
        "--listen",
        &listen,
        "--cores",
        "1",
        "--backend",
        backend,
        "--metrics",
        "tcp:0:interface=127.0.0.1",
    ]);
    let mut url = None;
    let mut port = None;
    while url.is_none() || port.is_none() {
        let line = server.next_line().expect("ringwork runs");
        if let Some((_, rest)) = line.split_once("metrics on ") {
            url = Some(rest.trim().to_owned());
        }
        if let Some((_, rest)) = line.split_once("listening on tls:") {
            port = rest.split(':').next().and_then(|p| p.parse::<u16>().ok());
        }
    }
    let (url, port) = (url.expect("set"), port.expect("set"));
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_2",
            "-reconnect",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(out.matches("Reused, TLSv1.2").count(), 5, "{out}");
    let (_, received) = exchange(
        SocketAddr::from(([127, 0, 0, 1], port)),
        b"not a ClientHello\r\n",
    );
    assert!(received > 0, "no alert for a bad ClientHello");
    let samples = scrape_until(&url, |s| {
        s.get("ringwork_connections_closed_total{core=\"0\"}") == Some(&7.0)
    });
    let kind =
        |result: &str| format!("ringwork_tls_handshakes_total{{core=\"0\",result=\"{result}\"}}");
    assert_eq!(sample(&samples, &kind("full")), 1.0);
    assert_eq!(sample(&samples, &kind("resumed")), 5.0);
    assert_eq!(sample(&samples, &kind("failed")), 1.0);
    assert!(server.terminate(), "ringwork did not exit cleanly");
}

/// Anything but `GET /metrics` is 404; the exporter answers every scrape with a
/// `Connection: close` response.
#[test]
fn metrics_other_paths_are_404() {
    let (server, url, _) = start(&[
        "serve",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
    ]);
    let authority = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let mut stream = TcpStream::connect(&authority).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    assert!(reply.starts_with("HTTP/1.1 404 "), "{reply}");
    let mut stream = TcpStream::connect(&authority).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(
        reply.contains("ringwork_connections_accepted_total{core=\"0\"} 0"),
        "{reply}"
    );
    assert!(server.terminate());
}

#[test]
fn metrics_flag_refuses_a_unix_endpoint() {
    let output = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args([
            "serve",
            "echo",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--cores",
            "1",
        ])
        .args(["--metrics", "unix:/tmp/ringwork-metrics-test.sock"])
        .output()
        .expect("run ringwork");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tcp: or tcp6: endpoint"), "{stderr}");
}

both_backends!(hello_counters, proxy_upstream_errors, tls_handshakes);
