//! Per-client limits end to end: `--rate-limit`/`--rate-burst` (and an http-proxy file's
//! `[limits]`) answer 429 with Retry-After once the burst is spent; `--max-conns-per-ip`
//! closes a client's connection past its cap and lets one in again after a close. Both
//! backends. The rate itself (±10 %) is checked without a clock in `limits::tests` of
//! ringwork-protocols; here the rate is so slow (one token per 10 s) that no token comes
//! back during the test.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

use support::{LIMIT, Server, TempDir, backend, free_port};

fn listen_addr(server: &mut Server) -> SocketAddr {
    let endpoint = server.listening(1).remove(0).to_string();
    let port = endpoint
        .split(':')
        .nth(1)
        .and_then(|p| p.parse::<u16>().ok())
        .expect("a port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `count` pipelined requests on one connection (the last closing): the statuses in order
/// and the Retry-After values.
fn pipelined(addr: SocketAddr, count: usize) -> (Vec<u16>, Vec<String>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    let mut requests = String::new();
    for i in 0..count {
        let close = if i + 1 == count {
            "Connection: close\r\n"
        } else {
            ""
        };
        requests.push_str(&format!("GET /{i} HTTP/1.1\r\nHost: x\r\n{close}\r\n"));
    }
    stream.write_all(requests.as_bytes()).expect("send");
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .expect("read to the close");
    let statuses = reply
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| reply[at + 9..at + 12].parse().ok())
        .collect();
    let retry = reply
        .lines()
        .filter_map(|l| l.strip_prefix("Retry-After: "))
        .map(str::to_owned)
        .collect();
    (statuses, retry)
}

fn http_rate_limit(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let mut server = Server::start(&[
        "serve",
        "hello",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
        "--rate-limit",
        "0.1",
        "--rate-burst",
        "5",
    ]);
    let addr = listen_addr(&mut server);
    let (statuses, retry) = pipelined(addr, 8);
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    // 1 / 0.1 = 10 s until the next token (rounded up to whole seconds).
    assert_eq!(retry, ["10", "10", "10"]);
    // Another connection of the same client shares its bucket.
    let (statuses, _) = pipelined(addr, 1);
    assert_eq!(statuses, [429]);
    assert!(server.terminate());
}

/// Two cores: a client's connections land on both (SO_REUSEPORT), and together they get
/// the one burst, not one per core.
fn http_rate_limit_across_cores(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let port = free_port();
    let listen = format!("tcp:{port}:interface=127.0.0.1");
    let mut server = Server::start(&[
        "serve",
        "hello",
        "--listen",
        &listen,
        "--cores",
        "2",
        "--backend",
        backend,
        "--rate-limit",
        "0.01",
        "--rate-burst",
        "6",
    ]);
    server.listening(2);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // 24 connections of one request each: the kernel's hash of each new source port spreads
    // them over both cores (24 on one core alone has odds of 2^-23).
    let statuses: Vec<u16> = (0..24).flat_map(|_| pipelined(addr, 1).0).collect();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(passed, 6, "one burst of 6 for the process: {statuses:?}");
    assert_eq!(statuses.len() - passed, 18);
    assert!(server.terminate());
}

fn proxy_file_limits(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    // An upstream answering each connection's one request.
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up = upstream.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in upstream.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nup");
        }
    });
    let dir = TempDir::new("limits-proxy");
    let config = dir.0.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[limits]\nrequests_per_second = 0.1\nburst = 2\n\n\
             [upstreams.up]\nservers = [\"{up}\"]\n\n[[routes]]\nupstream = \"up\"\n"
        ),
    )
    .expect("write the config");
    let mut server = Server::start(&[
        "serve",
        "http-proxy",
        "--config",
        config.to_str().expect("utf-8"),
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let addr = listen_addr(&mut server);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.extend(pipelined(addr, 1).0);
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    assert!(server.terminate());
}

/// Whether `stream` echoes a line (false: the server closed or reset it).
fn echoes(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    if stream.write_all(b"ping\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).is_ok() && &reply == b"ping\n"
}

fn connection_cap(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    // Two cores bind one fixed port (a free one, found by binding port 0).
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("tcp:{port}:interface=127.0.0.1");
    let mut server = Server::start(&[
        "serve",
        "echo",
        "--listen",
        &listen,
        "--cores",
        "2",
        "--backend",
        backend,
        "--max-conns-per-ip",
        "2",
    ]);
    server.listening(2);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut first = TcpStream::connect(addr).expect("connect");
    let mut second = TcpStream::connect(addr).expect("connect");
    assert!(echoes(&mut first) && echoes(&mut second));
    // The cap holds across the two cores (SO_REUSEPORT spreads connections over them).
    for _ in 0..4 {
        let mut third = TcpStream::connect(addr).expect("connect");
        assert!(!echoes(&mut third), "a third connection was served");
    }
    drop(first);
    // Once the server has seen the close, a new connection is served again.
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut again = TcpStream::connect(addr).expect("connect");
        if echoes(&mut again) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connection served after a close"
        );
    }
    assert!(echoes(&mut second));
    assert!(server.terminate());
}

both_backends!(
    http_rate_limit,
    http_rate_limit_across_cores,
    proxy_file_limits,
    connection_cap
);
