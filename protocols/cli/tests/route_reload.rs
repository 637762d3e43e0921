//! SIGHUP reloads the reverse proxy's routes and upstreams from its file, both backends:
//! two `serve web` upstreams answering "A" and "B"; the route goes to A, then the file is
//! changed to send it to B and SIGHUP sent: once the proxy logs the reload, a new
//! connection and a keep-alive connection made before the reload both get B (the
//! connection was not cut); a broken file is refused with an ERROR line and B keeps
//! answering. The file's `[limits]` reload with it: a client refused 429 under a tight
//! limit passes once the file's looser limit is reloaded. Waits are on the log lines.

#[macro_use]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use support::{LIMIT, Server, TempDir, backend};

fn get(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    stream
        .write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// One request on a keep-alive connection; the body (one byte: "A" or "B").
fn keep_alive_get(stream: &mut BufReader<TcpStream>) -> String {
    stream
        .get_mut()
        .write_all(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut length = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).expect("read a head line");
        assert!(!line.is_empty(), "the connection was closed");
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).expect("read the body");
    String::from_utf8(body).expect("text")
}

fn web(backend: &str, root: &std::path::Path) -> (Server, u16) {
    let mut server = Server::start(&[
        "serve",
        "web",
        "--root",
        root.to_str().expect("utf-8"),
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let port = server.listening(1)[0].port().expect("a port");
    (server, port)
}

fn config(route_to: &str, port_a: u16, port_b: u16) -> String {
    format!(
        r#"listen = ["tcp:0:interface=127.0.0.1"]
[upstreams.a]
servers = ["127.0.0.1:{port_a}"]
[upstreams.b]
servers = ["127.0.0.1:{port_b}"]
[[routes]]
upstream = "{route_to}"
"#
    )
}

fn hup(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

fn routes_reload_on_sighup(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let dir = TempDir::new("route-reload");
    for name in ["a", "b"] {
        let root = dir.0.join(name);
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join("who"), name.to_uppercase()).expect("write");
    }
    let (_a, port_a) = web(backend, &dir.0.join("a"));
    let (_b, port_b) = web(backend, &dir.0.join("b"));
    let file = dir.0.join("proxy.toml");
    std::fs::write(&file, config("a", port_a, port_b)).expect("write config");
    let mut proxy = Server::start(&[
        "serve",
        "http-proxy",
        "--config",
        file.to_str().expect("utf-8"),
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let addr = SocketAddr::from((
        [127, 0, 0, 1],
        proxy.listening(1)[0].port().expect("a port"),
    ));
    assert_eq!(get(addr), "A");
    let mut kept = BufReader::new(TcpStream::connect(addr).expect("connect"));
    kept.get_ref()
        .set_read_timeout(Some(LIMIT))
        .expect("timeout");
    assert_eq!(keep_alive_get(&mut kept), "A");

    // The route now goes to b.
    std::fs::write(&file, config("b", port_a, port_b)).expect("write config");
    hup(&proxy);
    let line = proxy.line_with("routes and upstreams reloaded from");
    assert!(line.contains("(1 routes, 2 upstreams)"), "{line}");
    assert_eq!(get(addr), "B");
    assert_eq!(
        keep_alive_get(&mut kept),
        "B",
        "the keep-alive connection survives"
    );

    // A broken file is refused; the routes in force keep serving.
    std::fs::write(
        &file,
        "listen = [\"tcp:0\"]\n[[routes]]\nupstream = \"nowhere\"\n",
    )
    .expect("write config");
    hup(&proxy);
    let line = proxy.line_with("cannot reload");
    assert!(line.contains("still serving the old routes"), "{line}");
    assert!(line.contains("ERROR"), "{line}");
    assert_eq!(get(addr), "B");
    assert_eq!(keep_alive_get(&mut kept), "B");
    assert!(proxy.terminate());
}

/// The status of one request on a new connection.
fn status(addr: SocketAddr) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    stream
        .write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    reply
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {reply:?}"))
}

fn limits_reload_on_sighup(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let dir = TempDir::new("limits-reload");
    let root = dir.0.join("a");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(root.join("who"), "A").expect("write");
    let (_a, port_a) = web(backend, &root);
    let file = dir.0.join("proxy.toml");
    let with_limits = |limits: &str| format!("{}{limits}", config("a", port_a, port_a));
    std::fs::write(
        &file,
        with_limits("[limits]\nrequests_per_second = 0.01\nburst = 1\n"),
    )
    .expect("write config");
    let mut proxy = Server::start(&[
        "serve",
        "http-proxy",
        "--config",
        file.to_str().expect("utf-8"),
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let addr = SocketAddr::from((
        [127, 0, 0, 1],
        proxy.listening(1)[0].port().expect("a port"),
    ));
    assert_eq!((status(addr), status(addr)), (200, 429));
    // A looser limit from the file: a token every 10 µs, 100 at once.
    std::fs::write(
        &file,
        with_limits("[limits]\nrequests_per_second = 100000\nburst = 100\n"),
    )
    .expect("write config");
    hup(&proxy);
    proxy.line_with("routes and upstreams reloaded from");
    assert_eq!((status(addr), status(addr)), (200, 200));
    // Turning the limit off needs a restart: said, and the limit in force stays.
    std::fs::write(&file, with_limits("")).expect("write config");
    hup(&proxy);
    let line = proxy.line_with("requests_per_second was set and is now unset");
    assert!(line.contains("needs a restart"), "{line}");
    assert!(proxy.terminate());
}

both_backends!(routes_reload_on_sighup, limits_reload_on_sighup);
