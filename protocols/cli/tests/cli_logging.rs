//! The `ringwork` binary when its log output fails or floods, run as a program on both
//! backends:
//!
//! - stderr closed by its reader (as `ringwork serve ... 2>&1 | head -1` does): SIGTERM still
//!   stops the server at once with status 0; `--access-log` lines and an `http-proxy`
//!   upstream failure are logged into the closed pipe while requests are answered and the
//!   server lives on;
//! - stderr a pipe nobody reads for a while: requests are answered all the same (the lines
//!   wait in a bounded queue, the rest are dropped) and, once reading resumes, a warning
//!   says how many lines were lost;
//! - a flood of accept failures (descriptor limit lowered with `ulimit -n`) and of
//!   ClientHellos with a garbage SNI (rustls warns about each): one line per
//!   `--warn-interval`, with a `suppressed=N` count, and no raw control bytes from the peer.
//!
//! The io_uring half is skipped loudly where io_uring is unavailable, and fails instead
//! under `RINGWORK_REQUIRE_URING=1`. Nothing sleeps: the test waits for stderr lines, replies
//! and the child's exit, each with a timeout as a failure bound only; every child is killed
//! when its guard drops, also when a test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use ringwork::platform::testing;
use ringwork::{BackendChoice, DriverConfig};
use ringwork_protocols::Endpoint;
use support::TempDir;

#[macro_use]
mod support;

/// How long any one wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// `--grace` of the servers here.
const GRACE: Duration = Duration::from_secs(5);

/// `Some(name)` for `--backend name` if that backend works here (`None`: skipped, logged).
fn backend(name: &str) -> Option<&str> {
    if name == "uring" {
        testing::driver(BackendChoice::Uring, DriverConfig::default())?;
    }
    Some(name)
}

/// What the test does with the child's stderr after its "listening on" line.
enum Stderr {
    /// Keep reading every line.
    Read,
    /// Close the pipe: every later write of the child fails (EPIPE).
    Close,
    /// Stop reading (the pipe fills up) until told to go on.
    Pause(Receiver<()>),
}

/// A running `ringwork`, killed on drop unless it exited; its stderr lines (raw bytes, each
/// with its `\n`) arrive through a channel.
struct Proc {
    pid: u32,
    exit: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    lines: Receiver<Vec<u8>>,
    /// Every line received so far (for failure messages).
    seen: Vec<Vec<u8>>,
}

impl Proc {
    /// Starts `ringwork ARGS` (with `RUST_LOG=info`); `ulimit` lowers its descriptor limit.
    fn start(args: &[&str], stderr: Stderr, ulimit: Option<u32>) -> Proc {
        let bin = env!("CARGO_BIN_EXE_ringwork");
        let mut command = match ulimit {
            None => Command::new(bin),
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(bin);
                sh
            }
        };
        let mut child = command
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("RINGWORK_BACKEND")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringwork");
        let pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut pipe = BufReader::new(pipe);
            let mut pause = Some(stderr);
            loop {
                let mut line = Vec::new();
                match pipe.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let listening = contains(&line, "listening on ");
                if tx.send(line).is_err() {
                    return;
                }
                if listening {
                    match pause.take() {
                        Some(Stderr::Close) => return,
                        Some(Stderr::Pause(go)) => {
                            let _ = go.recv();
                        }
                        Some(Stderr::Read) | None => {}
                    }
                }
            }
        });
        let pid = child.id();
        let (exited, exit) = mpsc::channel();
        thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exited.send(status);
            }
        });
        Proc {
            pid,
            exit,
            status: None,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next stderr line; `None` at the end of the stream.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("no output in time; stderr:\n{}", self.dump()),
        }
    }

    /// The next line containing `text`.
    fn expect_line(&mut self, text: &str) -> Vec<u8> {
        loop {
            match self.next_line() {
                Some(line) if contains(&line, text) => return line,
                Some(_) => {}
                None => panic!("stderr ended without {text:?}; stderr:\n{}", self.dump()),
            }
        }
    }

    /// The loopback address of the (one) listener, from its "listening on" line.
    fn listening(&mut self) -> SocketAddr {
        let line = self.expect_line("listening on ");
        let text = String::from_utf8_lossy(&line);
        let (_, rest) = text.split_once("listening on ").expect("checked");
        let endpoint: Endpoint = rest
            .split(" (core")
            .next()
            .expect("split yields one")
            .parse()
            .expect("the log line names an endpoint");
        let port = endpoint.port().expect("an IP endpoint");
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Every line until the end of stderr.
    fn rest(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.next_line()).collect()
    }

    /// Sends signal `name`; whether `kill` succeeded.
    fn signal(&self, name: &str) -> bool {
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long it took.
    fn terminate(&mut self) -> (ExitStatus, Duration) {
        let start = Instant::now();
        assert!(
            self.signal("TERM"),
            "kill -TERM failed; stderr:\n{}",
            self.dump()
        );
        let status = self.exited(PATIENCE).unwrap_or_else(|| {
            panic!(
                "ringwork did not exit within {PATIENCE:?} of SIGTERM; stderr:\n{}",
                self.dump()
            )
        });
        (status, start.elapsed())
    }

    /// The exit status, waiting at most `patience` for it.
    fn exited(&mut self, patience: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.exit.recv_timeout(patience).ok();
        }
        self.status
    }

    /// Asserts the process has not exited (a zero wait: it answered a request just now).
    fn assert_alive(&mut self) {
        if let Some(status) = self.exited(Duration::ZERO) {
            panic!("ringwork exited ({status}); stderr:\n{}", self.dump());
        }
    }

    fn dump(&self) -> String {
        self.seen
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited(Duration::ZERO).is_none() {
            // It may have exited just now (then kill fails): the wait ends either way.
            self.signal("KILL");
            let _ = self.exited(PATIENCE);
        }
    }
}

fn contains(line: &[u8], text: &str) -> bool {
    line.windows(text.len()).any(|w| w == text.as_bytes())
}

/// The `suppressed=N` count of a line.
fn suppressed(line: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(line);
    let (_, rest) = text.split_once("suppressed=")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// One `GET /` on a new connection (closed after it); returns the whole reply.
fn get(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .expect("write the request");
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .expect("read until the server closes");
    reply
}

fn serve_args<'a>(service: &'a str, backend: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "serve",
        service,
        "--cores",
        "1",
        "--backend",
        backend,
        "--grace",
        "5",
    ];
    if !extra.iter().any(|a| *a == "--listen" || *a == "--config") {
        args.extend(["--listen", "tcp:0:interface=127.0.0.1"]);
    }
    args.extend(extra);
    args
}

/// SIGTERM after the stderr reader left: the signal thread's log line fails (it used to
/// panic, leaving SIGTERM and SIGINT ignored for good), yet the server stops at once.
fn sigterm_after_stderr_closed(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let mut server = Proc::start(&serve_args("hello", backend, &[]), Stderr::Close, None);
    let addr = server.listening();
    // A log line the server writes after the reader left (the one core's stop line also
    // goes to the closed pipe).
    assert!(get(addr).contains("Hello, World!"));
    let (status, took) = server.terminate();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    assert!(took < GRACE, "took {took:?}, grace {GRACE:?}");
}

/// `--access-log` after the stderr reader left: every response is a failed log write; the
/// requests are answered and the server lives (it used to exit with status 101).
fn access_log_after_stderr_closed(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let args = serve_args("hello", backend, &["--access-log"]);
    let mut server = Proc::start(&args, Stderr::Close, None);
    let addr = server.listening();
    for i in 0..3 {
        let reply = get(addr);
        assert!(
            reply.starts_with("HTTP/1.1 200 OK\r\n"),
            "request {i}: {reply}"
        );
        assert!(reply.ends_with("Hello, World!"), "request {i}: {reply}");
        server.assert_alive();
    }
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0));
}

/// `http-proxy` with its upstream down, after the stderr reader left: the upstream failure
/// is logged into the closed pipe, the client gets its 502 and the proxy lives.
fn http_proxy_failure_after_stderr_closed(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    // A port nobody listens on: connects are refused.
    let down = TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = down.local_addr().expect("local addr");
    drop(down);
    let dir = TempDir::new(&format!("log-proxy-{backend}"));
    let config = dir.0.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"tcp:0:interface=127.0.0.1\"]\ncores = 1\n\n[upstreams.down]\nservers = [\"{upstream}\"]\n\n[[routes]]\nupstream = \"down\"\n"
        ),
    )
    .expect("write the config");
    let config = config.to_str().expect("utf-8 path");
    let args = serve_args("http-proxy", backend, &["--config", config]);
    let mut proxy = Proc::start(&args, Stderr::Close, None);
    let addr = proxy.listening();
    let reply = get(addr);
    assert!(reply.starts_with("HTTP/1.1 502 "), "{reply}");
    proxy.assert_alive();
    // Still serving (the upstream is backed off now; any answer will do).
    let reply = get(addr);
    assert!(reply.starts_with("HTTP/1.1 5"), "{reply}");
    proxy.assert_alive();
    let (status, _) = proxy.terminate();
    assert_eq!(status.code(), Some(0));
}

/// Requests of [`stalled_stderr_costs_lines_not_service`]: with the pipe (64 KiB) and the
/// sink's queue (1 MiB, about 200 bytes an access line) full, lines must be dropped.
const STALLED_REQUESTS: usize = 8000;

/// stderr a pipe nobody reads: the access log fills it, yet every request is answered (a
/// core that wrote to stderr itself would block once the pipe is full). When reading
/// resumes, the queued lines arrive and a warning counts the dropped ones.
fn stalled_stderr_costs_lines_not_service(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let (go, paused) = mpsc::channel();
    let args = serve_args("hello", backend, &["--access-log"]);
    let mut server = Proc::start(&args, Stderr::Pause(paused), None);
    let addr = server.listening();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut requests = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(STALLED_REQUESTS - 1);
    requests.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let mut sender = stream.try_clone().expect("clone the stream");
    let writer = thread::spawn(move || {
        sender.write_all(&requests).expect("write the requests");
        let _ = sender.shutdown(Shutdown::Write);
    });
    let mut replies = Vec::new();
    stream
        .read_to_end(&mut replies)
        .expect("read every reply until the server closes");
    writer.join().expect("the writer thread");
    let answered = replies
        .windows(b"Hello, World!".len())
        .filter(|w| *w == b"Hello, World!")
        .count();
    assert_eq!(
        answered, STALLED_REQUESTS,
        "replies while stderr was stalled"
    );
    server.assert_alive();
    go.send(()).expect("resume reading stderr");
    let report = server.expect_line("log lines lost");
    assert!(
        suppressed(&report).is_none(),
        "{}",
        String::from_utf8_lossy(&report)
    );
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0));
    let lines = server.rest();
    let access = server
        .seen
        .iter()
        .filter(|l| contains(l, "ringwork::http::access"))
        .count();
    let lost: u64 = server
        .seen
        .iter()
        .filter(|l| contains(l, "log lines lost"))
        .map(|l| lost_count(l))
        .sum();
    assert!(lost > 0, "lines were dropped");
    assert_eq!(
        access as u64 + lost,
        STALLED_REQUESTS as u64,
        "every access line written or counted as lost ({} lines after the report)",
        lines.len()
    );
}

/// The `lost=N` count of a "log lines lost" line.
fn lost_count(line: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(line);
    let (_, rest) = text
        .split_once("lost=")
        .unwrap_or_else(|| panic!("no lost= in {text}"));
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text}"))
}

/// The interval of the flood tests, short so that a few windows pass quickly.
const FLOOD_INTERVAL: Duration = Duration::from_secs(1);

/// At the descriptor limit, accepting fails every 100 ms (the backoff) for as long as the
/// clients hold on: one warning per interval, each with the count of those not logged (it
/// used to be one line per failure: ten a second per core).
fn accept_flood_is_rate_limited(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let interval = FLOOD_INTERVAL.as_secs().to_string();
    let args = serve_args("echo", backend, &["--warn-interval", &interval]);
    let mut server = Proc::start(&args, Stderr::Read, Some(40));
    let addr = server.listening();
    // More connections than descriptors: the rest wait in the backlog, and each retry of
    // accept fails with EMFILE.
    let clients: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let first = server.expect_line("accept failed");
    let start = Instant::now();
    assert_eq!(
        suppressed(&first),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first)
    );
    for i in 1..4 {
        let line = server.expect_line("accept failed");
        let count = suppressed(&line).unwrap_or(0);
        assert!(
            count >= 1,
            "warning {i} after the first counts those not logged: {}",
            String::from_utf8_lossy(&line)
        );
    }
    // Three more windows passed (less a little for the delivery of the first line).
    let took = start.elapsed();
    assert!(
        took >= FLOOD_INTERVAL * 2,
        "4 warnings within {took:?} (interval {FLOOD_INTERVAL:?})"
    );
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0));
    drop(clients);
}

/// A ClientHello (TLS record) whose server_name extension carries `name` as a host_name.
fn client_hello(name: &[u8]) -> Vec<u8> {
    fn u16be(n: usize) -> [u8; 2] {
        u16::try_from(n).expect("fits in u16").to_be_bytes()
    }
    let mut entry = vec![0]; // host_name
    entry.extend(u16be(name.len()));
    entry.extend(name);
    let mut server_name = u16be(entry.len()).to_vec();
    server_name.extend(entry);
    let mut extensions = vec![0, 0]; // server_name
    extensions.extend(u16be(server_name.len()));
    extensions.extend(server_name);
    let mut body = vec![3, 3]; // TLS 1.2 (legacy_version)
    body.extend([7; 32]); // random
    body.push(0); // no session id
    body.extend(u16be(2));
    body.extend([0x13, 0x01]); // TLS_AES_128_GCM_SHA256
    body.extend([1, 0]); // null compression
    body.extend(u16be(extensions.len()));
    body.extend(extensions);
    let length = u32::try_from(body.len()).expect("small").to_be_bytes();
    let mut handshake = vec![1]; // client_hello
    handshake.extend(&length[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 3, 1];
    record.extend(u16be(handshake.len()));
    record.extend(handshake);
    record
}

/// A garbage SNI meant to forge a log line and colour a terminal.
const EVIL_SNI: &[u8] = b"\x1b[31mevil\r\nFAKE LOG LINE\x00\x07 x";

/// Attempts of [`bad_sni_flood_is_rate_limited_and_escaped`].
const BAD_HELLOS: usize = 20;

/// rustls warns (through the `log` crate) about every ClientHello with an invalid SNI,
/// quoting the bytes: the warnings are limited to one per interval, and the bytes never
/// reach the output raw.
fn bad_sni_flood_is_rate_limited_and_escaped(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let args = serve_args(
        "hello",
        backend,
        &[
            "--listen",
            "tls:0:interface=127.0.0.1",
            "--warn-interval",
            "600",
        ],
    );
    let mut server = Proc::start(&args, Stderr::Read, None);
    let addr = server.listening();
    let hello = client_hello(EVIL_SNI);
    for _ in 0..BAD_HELLOS {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream.write_all(&hello).expect("send the ClientHello");
        // The server answers with an alert and closes: the ClientHello was processed.
        let mut alert = Vec::new();
        stream
            .read_to_end(&mut alert)
            .expect("read until the server closes");
        assert_eq!(alert.first(), Some(&0x15), "an alert record: {alert:?}");
    }
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0));
    server.rest();
    let sni: Vec<&Vec<u8>> = server.seen.iter().filter(|l| contains(l, "SNI")).collect();
    assert_eq!(
        sni.len(),
        1,
        "one SNI warning for {BAD_HELLOS} bad ClientHellos; stderr:\n{}",
        server.dump()
    );
    for line in &server.seen {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        assert!(
            !body.iter().any(|b| b.is_ascii_control()),
            "raw control bytes in {line:?}"
        );
        assert!(!line.starts_with(b"FAKE"), "a forged line: {line:?}");
    }
}

/// The access log line of a request whose target has bytes past ASCII (httparse lets
/// 0x80-0xFF through): a right-to-left override (U+202E) and a line separator (U+2028)
/// would reorder or split the line on a terminal; they are logged as `\xNN` escapes.
fn access_log_escapes_the_target(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let args = serve_args("hello", backend, &["--access-log"]);
    let mut server = Proc::start(&args, Stderr::Read, None);
    let addr = server.listening();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
        .write_all(
            "GET /a\u{202e}b\u{2028}c\\d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                .as_bytes(),
        )
        .expect("write the request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    let line = server.expect_line("ringwork::http::access");
    let text = String::from_utf8(line.clone()).expect("an ASCII line");
    assert!(
        text.contains(r"target=/a\xe2\x80\xaeb\xe2\x80\xa8c\\d "),
        "{text}"
    );
    assert!(line.is_ascii(), "{text}");
    // No Rust debug forms: the peer is an address, not `Some(..)`.
    assert!(text.contains(" peer=127.0.0.1:"), "{text}");
    assert!(!text.contains("Some("), "{text}");
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0));
}

both_backends!(
    sigterm_after_stderr_closed,
    access_log_after_stderr_closed,
    http_proxy_failure_after_stderr_closed,
    stalled_stderr_costs_lines_not_service,
    accept_flood_is_rate_limited,
    bad_sni_flood_is_rate_limited_and_escaped,
    access_log_escapes_the_target,
);
