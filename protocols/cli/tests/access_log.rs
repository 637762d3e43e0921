//! `--access-log FILE`: lines in nginx's combined format or JSON, written by the log
//! thread, reopened on SIGUSR1 after logrotate renamed the file; the reverse proxy's lines
//! name the upstream and its time, and its 502 and 504 are WARNed with the upstream's name.
//! Both backends. Waits are on the server's stderr lines and on the file's content (read
//! again until it holds the line, bounded by [`LIMIT`]), never a fixed sleep.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{LIMIT, Server, TempDir, backend};

/// Sends one request (closing) and returns the response.
fn get(addr: SocketAddr, target: &str, extra: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .expect("read to the close");
    reply
}

/// The lines of `path` once it has `count` of them (the log thread writes them a little
/// after the response).
fn lines_when(path: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, not {count}: {text:?}",
            path.display(),
            lines.len()
        );
        // A short pause between reads of the file, not a wait for the event.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The first listener of a server started with `tcp:0`.
fn listen_addr(server: &mut Server) -> SocketAddr {
    let endpoint = server.listening(1).remove(0);
    let text = endpoint.to_string();
    let port = text
        .split(':')
        .nth(1)
        .and_then(|p| p.parse::<u16>().ok())
        .expect("a port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn combined_and_reopen(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let dir = TempDir::new("access-reopen");
    let log = dir.0.join("access.log");
    let log_arg = log.to_str().expect("utf-8 path");
    let mut server = Server::start(&[
        "serve",
        "hello",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
        "--access-log",
        log_arg,
    ]);
    let addr = listen_addr(&mut server);
    let reply = get(addr, "/one?q=\"x\"", "User-Agent: probe/1\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let first = lines_when(&log, 1);
    let line = &first[0];
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains(" +0000] \"GET /one?q=\\x22x\\x22 HTTP/1.1\" 200 "),
        "{line}"
    );
    assert!(line.contains(" \"-\" \"probe/1\" rt="), "{line}");
    assert!(line.ends_with(" upstream=- ut=-"), "{line}");
    assert!(!line.contains("Some("), "{line}");

    // logrotate: rename, signal, and the next line goes to a new file of the old name.
    let rotated = dir.0.join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rename");
    let status = Command::new("kill")
        .args(["-USR1", &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    loop {
        let line = server.next_line().expect("ringwork runs");
        if line.contains("log file reopened") {
            break;
        }
    }
    get(addr, "/two", "");
    let second = lines_when(&log, 1);
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(
        second[0].contains("\"GET /two HTTP/1.1\" 200 "),
        "{second:?}"
    );
    let old = std::fs::read_to_string(&rotated).expect("read the rotated file");
    assert_eq!(old.lines().count(), 1, "{old}");
    assert!(server.terminate(), "ringwork did not exit cleanly");
}

/// A fixed upstream: answers each connection's request with `200 up` (one thread).
fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let mut head = Vec::new();
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
    addr
}

/// A silent upstream: accepts and reads, never answers (kept open for the test's life).
fn silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            held.push(stream);
        }
    });
    addr
}

fn proxy_json_with_upstreams(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let (up, quiet) = (upstream(), silent());
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let dir = TempDir::new("access-proxy");
    let config = dir.0.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[timeouts]\nresponse_head = \"1s\"\n\n\
             [upstreams.up]\nservers = [\"{up}\"]\n\
             [upstreams.quiet]\nservers = [\"{quiet}\"]\n\
             [upstreams.gone]\nservers = [\"{dead_addr}\"]\n\n\
             [[routes]]\npath = \"/slow\"\nupstream = \"quiet\"\n\n\
             [[routes]]\npath = \"/gone\"\nupstream = \"gone\"\n\n\
             [[routes]]\nupstream = \"up\"\n"
        ),
    )
    .expect("write the config");
    let log = dir.0.join("access.json");
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
        "--access-log",
        log.to_str().expect("utf-8"),
        "--access-log-format",
        "json",
    ]);
    let addr = listen_addr(&mut server);
    assert!(get(addr, "/", "User-Agent: probe/2\r\n").ends_with("up"));
    assert!(get(addr, "/gone", "").starts_with("HTTP/1.1 502 "));
    assert!(get(addr, "/slow", "").starts_with("HTTP/1.1 504 "));
    let lines = lines_when(&log, 3);
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let by_target = |target: &str| {
        parsed
            .iter()
            .find(|v| v["target"] == target)
            .unwrap_or_else(|| panic!("no line for {target}: {lines:#?}"))
    };
    let ok = by_target("/");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["upstream"], up.to_string());
    assert_eq!(ok["user_agent"], "probe/2");
    assert_eq!(ok["referer"], serde_json::Value::Null);
    assert!(ok["upstream_time"].as_f64().is_some(), "{ok}");
    assert!(ok["request_time"].as_f64().is_some(), "{ok}");
    let gone = by_target("/gone");
    assert_eq!(gone["status"], 502);
    assert_eq!(gone["upstream"], dead_addr.to_string());
    let slow = by_target("/slow");
    assert_eq!(slow["status"], 504);
    assert_eq!(slow["upstream"], quiet.to_string());
    assert!(
        slow["upstream_time"].as_f64().is_some_and(|t| t >= 0.9),
        "{slow}"
    );
    // Both upstream errors are WARNed naming the upstream.
    for (status, name) in [(502, dead_addr), (504, quiet)] {
        let deadline = Instant::now() + LIMIT;
        while !server.seen.iter().any(|l| {
            l.contains("WARN")
                && l.contains(&format!("status={status}"))
                && l.contains(&format!("upstream={name}"))
        }) {
            assert!(Instant::now() < deadline, "no WARN for {status}");
            server.next_line().expect("ringwork runs");
        }
    }
    assert!(server.terminate(), "ringwork did not exit cleanly");
}

#[test]
fn json_format_needs_a_file() {
    let output = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args([
            "serve",
            "hello",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--cores",
            "1",
        ])
        .args(["--access-log", "--access-log-format", "json"])
        .output()
        .expect("run ringwork");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("goes with --access-log FILE"), "{stderr}");
}

both_backends!(combined_and_reopen, proxy_json_with_upstreams);
