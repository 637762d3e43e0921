//! Active health checks of the reverse proxy's upstreams, both backends: two `serve web`
//! upstreams (answering "A" and "B"), an HTTP check every 50 ms with rise 2 and fall 2,
//! and a passive back-off of an hour (so that only the checks can bring a server back).
//! Upstream A is killed: the proxy logs it down, the metric `ringwork_upstream_up` says 0,
//! and every request is answered by B; A is started again on its port: the proxy logs it
//! up, the metric says 1, and A gets traffic again. Waits are on the log lines.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use support::{LIMIT, Server, TempDir, backend};

fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    let status = reply[9..12].parse().expect("a status");
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn web(backend: &str, root: &std::path::Path, listen: &str) -> (Server, u16) {
    let mut server = Server::start(&[
        "serve",
        "web",
        "--root",
        root.to_str().expect("utf-8"),
        "--listen",
        listen,
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let port = server.listening(1)[0].port().expect("a port");
    (server, port)
}

fn scrape(addr: &str) -> String {
    let addr: SocketAddr = addr.parse().expect("metrics address");
    get(addr, "/metrics").1
}

fn dead_upstream_out_and_back(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let dir = TempDir::new("health");
    for name in ["a", "b"] {
        let root = dir.0.join(name);
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join("who"), name.to_uppercase()).expect("write");
    }
    let (mut a, port_a) = web(backend, &dir.0.join("a"), "tcp:0:interface=127.0.0.1");
    let (_b, port_b) = web(backend, &dir.0.join("b"), "tcp:0:interface=127.0.0.1");
    let config = dir.0.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = ["tcp:0:interface=127.0.0.1"]
[upstreams.app]
servers = ["127.0.0.1:{port_a}", "127.0.0.1:{port_b}"]
backoff = "1h"
[upstreams.app.health]
path = "/who"
interval = "50ms"
timeout = "1s"
rise = 2
fall = 2
[[routes]]
upstream = "app"
"#
        ),
    )
    .expect("write config");
    let mut proxy = Server::start(&[
        "serve",
        "http-proxy",
        "--config",
        config.to_str().expect("utf-8"),
        "--cores",
        "1",
        "--backend",
        backend,
        "--metrics",
        "tcp:0:interface=127.0.0.1",
    ]);
    let metrics = proxy.line_with("metrics on http://");
    let metrics = metrics
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the metrics address")
        .to_owned();
    let addr = SocketAddr::from((
        [127, 0, 0, 1],
        proxy.listening(1)[0].port().expect("a port"),
    ));
    let answers: Vec<String> = (0..4).map(|_| get(addr, "/who").1).collect();
    assert!(
        answers.contains(&"A".to_owned()) && answers.contains(&"B".to_owned()),
        "{answers:?}"
    );
    let up_a = format!("ringwork_upstream_up{{pool=\"app\",server=\"127.0.0.1:{port_a}\"}}");
    assert!(scrape(&metrics).contains(&format!("{up_a} 1")));

    // A dies: out of rotation, and every request still answered (by B).
    drop(a);
    let line = proxy.line_with(&format!("upstream 127.0.0.1:{port_a} of pool app is down"));
    assert!(line.contains("2 checks failed"), "{line}");
    assert!(scrape(&metrics).contains(&format!("{up_a} 0")));
    for _ in 0..10 {
        assert_eq!(get(addr, "/who"), (200, "B".to_owned()));
    }

    // A is back on its port: in rotation again (the hour of back-off does not apply).
    let listen_a = format!("tcp:{port_a}:interface=127.0.0.1");
    (a, _) = web(backend, &dir.0.join("a"), &listen_a);
    proxy.line_with(&format!("upstream 127.0.0.1:{port_a} of pool app is up"));
    assert!(scrape(&metrics).contains(&format!("{up_a} 1")));
    let answers: Vec<String> = (0..4).map(|_| get(addr, "/who").1).collect();
    assert!(answers.contains(&"A".to_owned()), "{answers:?}");
    drop(a);
}

mod dead_upstream_out_and_back {
    #[test]
    fn uring() {
        super::dead_upstream_out_and_back("uring");
    }
    #[test]
    fn poll() {
        super::dead_upstream_out_and_back("poll");
    }
}
