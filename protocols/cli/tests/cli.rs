//! The `ringwork` binary run as a program: `serve echo` and `serve discard` over TCP, UDP and
//! a Unix socket under both backends, `serve tcp-proxy` and `serve socks5` round trips,
//! `socks5` destination rules and its warning, bad endpoints and bad proxy options (exit 2),
//! an address in use (also by another ringwork: SO_REUSEPORT), `--reuse-port`, SIGTERM,
//! `--help`.
//!
//! The io_uring half is skipped loudly where io_uring is unavailable, and fails instead
//! under `RINGWORK_REQUIRE_URING=1`. Nothing sleeps: a test waits for the "listening on"
//! log line through a pipe with a timeout, and every child is killed when its guard drops,
//! also when a test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ringwork::platform::testing::retry_interrupted;
use ringwork_protocols::Endpoint;
use support::{PATIENCE, Server, TempDir, backend, free_port};

#[macro_use]
mod support;

fn tcp_addr(endpoint: &Endpoint) -> SocketAddr {
    match endpoint {
        Endpoint::Tcp { addr } | Endpoint::Udp { addr } => *addr,
        other => panic!("expected an IP endpoint, got {other}"),
    }
}

/// Runs `ringwork ARGS` to its exit; one that runs past [`PATIENCE`] (a server that
/// should have refused to start) is killed and fails the test.
fn run(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringwork");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(output) => output.expect("wait for ringwork"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("ringwork {args:?} still running after {PATIENCE:?} (expected it to exit)");
        }
    }
}

fn echo_round_trip(mut stream: impl Read + Write) {
    let message = b"hello ringwork\n";
    stream.write_all(message).expect("write");
    let mut reply = [0; 15];
    stream.read_exact(&mut reply).expect("read echo");
    assert_eq!(&reply, message);
}

fn tcp_echo(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let mut server = Server::start(&[
        "serve",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let endpoints = server.listening(1);
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.contains(&format!("backend {backend}"))),
        "{:?}",
        server.seen
    );
    let addr = tcp_addr(&endpoints[0]);
    assert_ne!(addr.port(), 0, "the log names the bound port");
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    echo_round_trip(&stream);
    drop(stream);
    assert!(server.terminate(), "exit status 0 after SIGTERM");
}

fn tcp_discard(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let mut server = Server::start(&[
        "serve",
        "discard",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let addr = tcp_addr(&server.listening(1)[0]);
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream.write_all(&[7; 100_000]).expect("write");
    stream.shutdown(Shutdown::Write).expect("half-close");
    // Nothing comes back: the server closes after our EOF without a byte.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("read to eof");
    assert!(rest.is_empty(), "discard sent {} bytes", rest.len());
    assert!(server.terminate());
}

fn udp_echo(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let mut server = Server::start(&[
        "serve",
        "echo",
        "--listen",
        "udp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let addr = tcp_addr(&server.listening(1)[0]);
    assert_ne!(addr.port(), 0);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    socket.send_to(b"ping", addr).expect("send");
    let mut buf = [0; 64];
    let (n, from) = retry_interrupted(|| socket.recv_from(&mut buf)).expect("echoed datagram");
    assert_eq!((&buf[..n], from), (&b"ping"[..], addr));
    assert!(server.terminate());
}

fn unix_echo(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let dir = TempDir::new(&format!("unix-{backend}"));
    let path = dir.0.join("echo.sock");
    let listen = format!("unix:{}", path.display());
    let mut server = Server::start(&[
        "serve",
        "echo",
        "--listen",
        &listen,
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let endpoints = server.listening(2);
    assert!(endpoints.contains(&Endpoint::Unix { path: path.clone() }));
    let stream = UnixStream::connect(&path).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    echo_round_trip(&stream);
    drop(stream);
    assert!(server.terminate());
}

/// `serve hello`: an HTTP/1.1 exchange over a raw socket, two requests on one connection.
fn tcp_hello(backend: &str) {
    let Some(backend) = self::backend(backend) else {
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
    ]);
    let addr = tcp_addr(&server.listening(1)[0]);
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .expect("read until the server closes");
    assert_eq!(reply.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{reply}");
    assert_eq!(reply.matches("\r\n\r\nHello, World!").count(), 2, "{reply}");
    assert!(reply.contains("Connection: close\r\n"), "{reply}");
    assert!(server.terminate(), "exit status 0 after SIGTERM");
}

/// `serve http-proxy`: a proxy process in front of a `serve hello` process, configured
/// by a TOML file that says where to listen; two requests on one client connection.
fn tcp_http_proxy(backend: &str) {
    http_proxy_round_trip(backend, false);
}

/// `serve http-proxy --listen`: the endpoint from the command line, the file without
/// `listen` (docs/http-proxy.md: `--listen` replaces it).
fn http_proxy_listen_flag(backend: &str) {
    http_proxy_round_trip(backend, true);
}

fn http_proxy_round_trip(backend: &str, listen_flag: bool) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let mut upstream = Server::start(&[
        "serve",
        "hello",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let upstream_addr = tcp_addr(&upstream.listening(1)[0]);
    let dir = TempDir::new(&format!("http-proxy-{backend}"));
    let config = dir.0.join("proxy.toml");
    let listen = match listen_flag {
        true => "",
        false => "listen = [\"tcp:0:interface=127.0.0.1\"]\n",
    };
    std::fs::write(
        &config,
        format!(
            "{listen}cores = 1\n\n[upstreams.hello]\nservers = [\"{upstream_addr}\"]\n\n[[routes]]\nupstream = \"hello\"\n"
        ),
    )
    .expect("write the config");
    let config = config.to_str().expect("utf-8 path");
    let mut args = vec![
        "serve",
        "http-proxy",
        "--config",
        config,
        "--backend",
        backend,
    ];
    if listen_flag {
        args.extend(["--listen", "tcp:0:interface=127.0.0.1"]);
    }
    let mut proxy = Server::start(&args);
    let addr = tcp_addr(&proxy.listening(1)[0]);
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .expect("read until the proxy closes");
    assert_eq!(reply.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{reply}");
    assert_eq!(reply.matches("Hello, World!").count(), 2, "{reply}");
    // HTTP/2 from the client with no flag (h2c with prior knowledge on the same port),
    // HTTP/1.1 to the upstream.
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--http2-prior-knowledge",
        ])
        .args([
            "--write-out",
            " %{http_version}",
            &format!("http://{addr}/h2"),
        ])
        .output()
        .expect("run curl (scripts/install-http-test-deps.sh)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, World! 2",
        "{out:?}"
    );
    assert!(proxy.terminate(), "exit status 0 after SIGTERM");
    assert!(upstream.terminate(), "exit status 0 after SIGTERM");
}

both_backends!(
    tcp_echo,
    tcp_discard,
    udp_echo,
    unix_echo,
    tcp_hello,
    tcp_http_proxy,
    http_proxy_listen_flag
);

#[test]
fn http_proxy_config_errors() {
    let output = run(&["serve", "http-proxy", "--listen", "tcp:0", "--cores", "1"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("http-proxy needs --config FILE"),
        "stderr: {stderr}"
    );

    let dir = TempDir::new("http-proxy-bad");
    let config = dir.0.join("bad.toml");
    std::fs::write(
        &config,
        "listen = [\"tcp:0\"]\n[upstreams.a]\nservers = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"b\"\n",
    )
    .expect("write the config");
    let output = run(&[
        "serve",
        "http-proxy",
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 5: routes[0].upstream: no upstream named \"b\""),
        "stderr: {stderr}"
    );
    // Endpoints neither in the file nor on the command line.
    let no_listen = dir.0.join("no-listen.toml");
    std::fs::write(
        &no_listen,
        "[upstreams.a]\nservers = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"a\"\n",
    )
    .expect("write the config");
    let no_listen = no_listen.to_str().expect("utf-8");
    let output = run(&["serve", "http-proxy", "--config", no_listen]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no endpoint: give --listen ENDPOINT or `listen = [..]` in")
            && stderr.contains("no-listen.toml"),
        "stderr: {stderr}"
    );
    // The example configuration in the repository is valid.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/http-proxy.toml");
    ringwork_protocols::http::reverse_proxy::ProxyConfig::load(std::path::Path::new(example))
        .expect("the example config is valid");
}

#[test]
fn web_without_root_fails() {
    let output = run(&["serve", "web", "--listen", "tcp:0", "--cores", "1"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("web needs --root DIR"), "stderr: {stderr}");
    let output = run(&[
        "serve",
        "web",
        "--root",
        "/nonexistent/ringwork",
        "--listen",
        "tcp:0",
        "--cores",
        "1",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--root /nonexistent/ringwork"),
        "stderr: {stderr}"
    );
}

#[test]
fn hello_over_udp_fails() {
    let output = run(&["serve", "hello", "--listen", "udp:0", "--cores", "1"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not support endpoint udp"),
        "stderr: {stderr}"
    );
}

#[test]
fn unknown_endpoint_type_fails() {
    let output = run(&["serve", "echo", "--listen", "bogus:1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown endpoint type \"bogus\""),
        "stderr: {stderr}"
    );
}

#[test]
fn port_zero_with_several_cores_fails() {
    let output = run(&["serve", "echo", "--listen", "tcp:0", "--cores", "2"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--cores 1"), "stderr: {stderr}");
}

#[test]
fn help_mentions_serve() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("serve"), "stdout: {stdout}");
    let output = run(&["serve", "--help"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("tcp:8000:interface=127.0.0.1"),
        "stdout: {stdout}"
    );
}

#[test]
fn address_in_use_fails() {
    // A std listener has no SO_REUSEPORT, so ringwork's bind on its port fails.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = format!(
        "tcp:{}:interface=127.0.0.1",
        taken.local_addr().expect("addr").port()
    );
    let output = run(&["serve", "echo", "--cores", "1", "--listen", &listen]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {listen}")) && stderr.contains("in use"),
        "stderr: {stderr}"
    );
}

/// Runs `ringwork` expecting it to fail at start-up; fails the test if it starts listening
/// instead. Returns its exit code and stderr.
fn start_expecting_failure(args: &[&str]) -> (Option<i32>, String) {
    let mut server = Server::start(args);
    while let Some(line) = server.next_line() {
        assert!(
            !line.contains("listening on "),
            "ringwork {args:?} started: {}",
            server.seen.join("\n")
        );
    }
    let status = server.child.wait().expect("wait for ringwork");
    (status.code(), server.seen.join("\n"))
}

/// A second `serve hello` on a port a first one (two cores, SO_REUSEPORT among them) holds
/// fails with "Address already in use" instead of taking half the connections; with
/// `--reuse-port` it starts. A second UDP server fails the same way.
fn busy_port(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let listen = format!("tcp:{}:interface=127.0.0.1", free_port());
    let args = |cores, extra: Option<&'static str>| {
        let mut args = vec![
            "serve",
            "hello",
            "--listen",
            listen.as_str(),
            "--cores",
            cores,
            "--backend",
            backend,
        ];
        args.extend(extra);
        args
    };
    let mut first = Server::start(&args("2", None));
    first.listening(2);
    for cores in ["1", "2"] {
        let (code, stderr) = start_expecting_failure(&args(cores, None));
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("cannot listen on {listen}"))
                && stderr.contains("Address already in use"),
            "stderr: {stderr}"
        );
    }
    // Told to share, the second joins (the kernel asks only that both be the same user).
    let mut second = Server::start(&args("1", Some("--reuse-port")));
    second.listening(1);
    assert!(second.terminate());
    assert!(first.terminate(), "exit status 0 after SIGTERM");

    // Both started with it (a zero-downtime restart): the second starts beside the first.
    let mut first = Server::start(&args("2", Some("--reuse-port")));
    first.listening(2);
    let mut second = Server::start(&args("1", Some("--reuse-port")));
    second.listening(1);
    assert!(second.terminate());
    assert!(first.terminate());

    let udp = format!("udp:{}:interface=127.0.0.1", free_port());
    let udp_args = [
        "serve",
        "echo",
        "--listen",
        &udp,
        "--cores",
        "1",
        "--backend",
        backend,
    ];
    let mut first = Server::start(&udp_args);
    first.listening(1);
    let (code, stderr) = start_expecting_failure(&udp_args);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("Address already in use"),
        "stderr: {stderr}"
    );
    assert!(first.terminate());
}

both_backends!(busy_port);

/// `serve tcp-proxy` in front of a one-shot std upstream (once spliced through 1 MiB pipes),
/// then `serve socks5` in front of the same kind of upstream: a round trip through each.
fn proxies(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    // An upstream answering each connection's first line with "up: LINE".
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = listener.local_addr().expect("address");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            let _ = stream.write_all(format!("up: {line}").as_bytes());
        }
    });
    let common = [
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ];

    // An address, a name in the old HOST:PORT form and an endpoint string: names are
    // resolved at each connection by the core's resolver.
    let port = upstream.port();
    for upstream_arg in [
        upstream.to_string(),
        format!("localhost:{port}"),
        format!("tcp:host=localhost:port={port}:timeout=5"),
    ] {
        let mut args = vec![
            "serve",
            "tcp-proxy",
            "--upstream",
            &upstream_arg,
            "--idle-timeout",
            "30s",
        ];
        args.extend_from_slice(&common);
        if upstream_arg.starts_with("tcp:") {
            // Spliced from the first byte, through 1 MiB pipes (--splice-pipe).
            args.extend_from_slice(&["--splice", "always", "--splice-pipe", "1m"]);
        }
        let mut server = Server::start(&args);
        let addr = tcp_addr(&server.listening(1)[0]);
        for _ in 0..2 {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
            stream.write_all(b"via tcp-proxy\n").expect("write");
            let mut reply = String::new();
            BufReader::new(&stream).read_line(&mut reply).expect("read");
            assert_eq!(reply, "up: via tcp-proxy\n", "--upstream {upstream_arg}");
        }
        assert!(server.terminate(), "exit status 0 after SIGTERM");
    }

    // The default resolver is ringwork's stub resolver: a name only its --hosts-file knows
    // reaches the upstream; with --resolver system (getaddrinfo, which reads /etc/hosts)
    // the same name is unknown and the client is closed.
    let dir = std::env::temp_dir().join(format!(
        "ringwork-cli-hosts-{}-{backend}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 backend.ringwork-test\n").expect("hosts file");
    let named = format!("tcp:host=backend.ringwork-test:port={port}");
    let hosts_arg = hosts.display().to_string();
    for (resolver, reaches) in [("dns", true), ("system", false)] {
        let mut args = vec![
            "serve",
            "tcp-proxy",
            "--upstream",
            &named,
            "--resolver",
            resolver,
        ];
        if resolver == "dns" {
            args.extend_from_slice(&["--hosts-file", &hosts_arg]);
        }
        args.extend_from_slice(&common);
        let mut server = Server::start(&args);
        let addr = tcp_addr(&server.listening(1)[0]);
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream.write_all(b"by name\n").expect("write");
        let mut reply = String::new();
        let _ = BufReader::new(&stream).read_line(&mut reply);
        if reaches {
            assert_eq!(reply, "up: by name\n", "--resolver {resolver}");
        } else {
            assert_eq!(reply, "", "--resolver {resolver}: closed without a reply");
        }
        assert!(server.terminate(), "exit status 0 after SIGTERM");
    }
    let _ = std::fs::remove_dir_all(&dir);

    // The upstream is on loopback: the default policy refuses it, a rule opens it.
    let allow = format!("127.0.0.1:{}", upstream.port());
    let mut args = vec!["serve", "socks5", "--user", "u:p", "--allow", &allow];
    args.extend_from_slice(&common);
    let mut server = Server::start(&args);
    let addr = tcp_addr(&server.listening(1)[0]);
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let SocketAddr::V4(v4) = upstream else {
        panic!("IPv4")
    };
    let mut hello = vec![5, 1, 2, 1, 1, b'u', 1, b'p', 5, 1, 0, 1];
    hello.extend_from_slice(&v4.ip().octets());
    hello.extend_from_slice(&v4.port().to_be_bytes());
    hello.extend_from_slice(b"via socks5\n");
    stream.write_all(&hello).expect("write");
    let mut head = [0u8; 2 + 2 + 10];
    stream.read_exact(&mut head).expect("the handshake replies");
    assert_eq!(head[..6], [5, 2, 1, 0, 5, 0]);
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).expect("read");
    assert_eq!(reply, "up: via socks5\n");
    drop(stream);
    assert!(server.terminate(), "exit status 0 after SIGTERM");
}

both_backends!(proxies, write_timeout_cuts_off_clients_that_never_read);

/// `--write-timeout`: a client that sends without ever reading what comes back (echoes,
/// pipelined HTTP responses) is cut off once the server's bytes stop moving for the
/// timeout; the client sees it as a failed write (reset) instead of a write blocked for
/// good.
fn write_timeout_cuts_off_clients_that_never_read(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let requests = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(2048);
    for (service, payload) in [("echo", vec![b'e'; 64 * 1024]), ("hello", requests)] {
        let mut server = Server::start(&[
            "serve",
            service,
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--cores",
            "1",
            "--backend",
            backend,
            "--write-timeout",
            "0.3",
        ]);
        let addr = tcp_addr(&server.listening(1)[0]);
        let socket = {
            use socket2::{Domain, Socket, Type};
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
            socket.connect(&addr.into()).expect("connect");
            socket
        };
        let mut stream = TcpStream::from(socket);
        stream.set_write_timeout(Some(PATIENCE)).expect("timeout");
        let started = Instant::now();
        let error = loop {
            if let Err(e) = stream.write_all(&payload) {
                break e;
            }
        };
        assert!(
            matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{service}: {error} after {:?}",
            started.elapsed()
        );
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{service}: cut too early"
        );
        drop(stream);
        assert!(server.terminate(), "exit status 0 after SIGTERM");
    }
}

/// A SOCKS5 CONNECT to `target` (no authentication); returns the REP byte.
fn socks5_connect_reply(proxy: SocketAddr, target: SocketAddr) -> u8 {
    let mut stream = TcpStream::connect(proxy).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let SocketAddr::V4(v4) = target else {
        panic!("IPv4")
    };
    let mut request = vec![5, 1, 0, 5, 1, 0, 1];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    stream.write_all(&request).expect("write");
    let mut reply = [0u8; 2 + 10];
    stream
        .read_exact(&mut reply)
        .expect("the handshake replies");
    assert_eq!(reply[..2], [5, 0]);
    reply[3]
}

/// `serve socks5`: loopback destinations refused by default; `--allow` and `--deny` apply
/// in command-line order; a loud warning without `--user` on a non-loopback interface.
fn socks5_destination_rules(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    // Accepts and closes: a relayed pair ends at once, so no shutdown waits out its grace.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = listener.local_addr().expect("address");
    thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let exact = target.to_string();
    for (rules, rep) in [
        (&[][..], 0x02),
        (&["--allow", "loopback"][..], 0x00),
        (&["--deny", &exact, "--allow", "loopback"][..], 0x02),
        (&["--allow", "loopback", "--deny", &exact][..], 0x00),
        (&["--allow", "*.internal", "--deny", "*"][..], 0x02),
    ] {
        let mut args = vec![
            "serve",
            "socks5",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--cores",
            "1",
            "--backend",
            backend,
        ];
        args.extend_from_slice(rules);
        let mut server = Server::start(&args);
        let proxy = tcp_addr(&server.listening(1)[0]);
        assert_eq!(socks5_connect_reply(proxy, target), rep, "{rules:?}");
        assert!(
            !server.seen.iter().any(|l| l.contains("WARN")),
            "a warning on loopback: {:?}",
            server.seen
        );
        assert!(server.terminate());
    }

    // All interfaces, no --user: a warning before the server starts.
    let mut server = Server::start(&[
        "serve",
        "socks5",
        "--listen",
        "tcp:0",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    server.listening(1);
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.contains("WARN") && l.contains("has no --user")),
        "no warning: {:?}",
        server.seen
    );
    assert!(server.terminate());
}

both_backends!(socks5_destination_rules);

/// Options of other services are refused, naming the service (exit 2), instead of being
/// ignored; `--cores 0` says what is needed.
#[test]
fn options_of_other_services_are_refused() {
    for (args, message) in [
        (
            &["serve", "hello", "--root", "/tmp"][..],
            "--root does not apply to `serve hello`; it is an option of web",
        ),
        (
            &["serve", "echo", "--access-log"],
            "--access-log does not apply to `serve echo`; it is an option of hello, web, http-proxy",
        ),
        (
            &["serve", "web", "--root", "/tmp", "--config", "x.toml"],
            "--config does not apply to `serve web`; it is an option of http-proxy",
        ),
        (
            &["serve", "hello", "--splice", "off"],
            "--splice does not apply to `serve hello`; it is an option of tcp-proxy, socks5",
        ),
        (
            &["serve", "echo", "--splice-pipe", "1m"],
            "--splice-pipe does not apply to `serve echo`; it is an option of tcp-proxy, socks5",
        ),
        (
            &["serve", "socks5", "--send-proxy", "v1"],
            "--send-proxy does not apply to `serve socks5`; it is an option of tcp-proxy",
        ),
        (
            &["serve", "http-proxy", "--idle-timeout", "5s"],
            "--idle-timeout does not apply to `serve http-proxy`",
        ),
        (
            &["serve", "hello", "--cores", "0"],
            "'--cores <N>': at least 1",
        ),
    ] {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// The first CPU this process may run on (`Cpus_allowed_list` of /proc/self/status).
fn first_allowed_cpu() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/self/status");
    let first = list
        .trim()
        .split([',', '-'])
        .next()
        .expect("split yields one");
    first.to_owned()
}

/// `--cores` above the CPUs this process may use: it serves, with a warning saying so.
/// Under `taskset -c CPU` (one CPU of several) the affinity mask counts, not the
/// machine's CPUs.
fn cores_beyond_the_cpus_warn(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let warned = |server: &Server, text: &str| {
        server
            .seen
            .iter()
            .any(|l| l.contains("WARN") && l.contains(text))
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let over = (cpus + 1).to_string();
    let listen = format!("tcp:{}:interface=127.0.0.1", free_port());
    let mut server = Server::start(&[
        "serve",
        "echo",
        "--listen",
        &listen,
        "--cores",
        &over,
        "--backend",
        backend,
    ]);
    server.listening(cpus + 1);
    let text = format!("--cores {over} is more than the {cpus} CPU");
    assert!(warned(&server, &text), "no warning: {:?}", server.seen);
    assert!(server.terminate());

    if cpus < 2 {
        eprintln!("skipped: the taskset half needs 2 CPUs, this process may use {cpus}");
        return;
    }
    if Command::new("taskset").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "taskset is not installed (CI is set)"
        );
        eprintln!("skipped: taskset is not installed");
        return;
    }
    let mut command = Command::new("taskset");
    command
        .args(["-c", &first_allowed_cpu(), env!("CARGO_BIN_EXE_ringwork")])
        .args(["serve", "echo", "--listen", &listen, "--cores", "2"])
        .args(["--backend", backend]);
    let mut server = Server::spawn(command);
    server.listening(2);
    let text = "--cores 2 is more than the 1 CPU this process may use";
    assert!(warned(&server, text), "no warning: {:?}", server.seen);
    assert!(server.terminate());
}

both_backends!(cores_beyond_the_cpus_warn);

#[test]
fn bad_proxy_arguments_exit_2() {
    for (args, message) in [
        (&["serve", "tcp-proxy"][..], "needs at least one --upstream"),
        (
            &["serve", "tcp-proxy", "--upstream", "nowhere"],
            "an upstream is HOST:PORT or an endpoint",
        ),
        (
            &[
                "serve",
                "tcp-proxy",
                "--upstream",
                "tcp:host=backend:port=http",
            ],
            "bad port \"http\"",
        ),
        (
            &[
                "serve",
                "tcp-proxy",
                "--upstream",
                "tls:host=backend:port=443:verify=maybe",
            ],
            "bad verify \"maybe\"",
        ),
        (
            &[
                "serve",
                "tcp-proxy",
                "--upstream",
                "127.0.0.1:1",
                "--idle-timeout",
                "5 parsecs",
            ],
            "--idle-timeout",
        ),
        (&["serve", "socks5", "--user", "nopassword"], "NAME:PASS"),
        (
            &["serve", "socks5", "--upstream", "127.0.0.1:1"],
            "--upstream does not apply to `serve socks5`; it is an option of tcp-proxy",
        ),
        (
            &["serve", "echo", "--user", "a:b"],
            "--user does not apply to `serve echo`; it is an option of socks5",
        ),
        (
            &["serve", "socks5", "--allow", "10.0.0.1/8"],
            "did you mean 10.0.0.0/8?",
        ),
        (
            &["serve", "socks5", "--deny", "2130706433"],
            "write it as 127.0.0.1",
        ),
        (
            &["serve", "socks5", "--allow", "127.0.0.1:http"],
            "not a port or port range",
        ),
        (
            &[
                "serve",
                "tcp-proxy",
                "--upstream",
                "127.0.0.1:1",
                "--deny",
                "*",
            ],
            "--deny does not apply to `serve tcp-proxy`; it is an option of socks5",
        ),
        (
            &["serve", "hello", "--allow", "loopback"],
            "--allow does not apply to `serve hello`; it is an option of socks5",
        ),
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
