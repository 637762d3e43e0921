//! The engine examples (`engine/examples/`), run as programs against loopback peers (the
//! chat example, built on ringwork-protocols' `LineReceiver`, is tested in
//! `protocols/tests/chat_example.rs`).
//!
//! Each test runs its body once per backend, with `RINGWORK_BACKEND` set on the example
//! processes (not on this one); the io_uring half is skipped loudly where io_uring is
//! unavailable, and fails instead under `RINGWORK_REQUIRE_URING=1`. Peers are Python's
//! standard library (`python3` must be installed) or `std::net` clients written here.
//! Nothing sleeps: a test waits for an example's "listening on" line and reads with
//! timeouts, and every process is killed when its guard drops, also when a test fails.
//!
//! `cargo test` builds the examples before it runs integration tests; this file finds them
//! beside its own binary (`target/<profile>/examples/`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use ringwork::platform::testing::{self, retry_interrupted};
use ringwork::{BackendChoice, DriverConfig};

/// Longest wait for a process to start, for a reply, or for a process to exit.
const PATIENCE: Duration = Duration::from_secs(30);

const MIB: usize = 1 << 20;

/// The backends to run each test body under: uring where it works (else a loud skip), poll.
fn backends() -> Vec<&'static str> {
    let mut backends = Vec::new();
    if testing::driver(BackendChoice::Uring, DriverConfig::default()).is_some() {
        backends.push("uring");
    }
    backends.push("poll");
    backends
}

/// Runs `body` once per backend, saying which one is running.
fn for_each_backend(body: impl Fn(&str)) {
    for backend in backends() {
        eprintln!("--- backend {backend}");
        body(backend);
    }
}

/// The path of example `name`, built by `cargo test` next to this test's binary.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/examples-<hash>  ->  target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let hint = "`cargo test -p ringwork` builds the examples; with `--test examples` alone it \
                does not: run `cargo build -p ringwork --examples` first";
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {hint}", path.display()));
    // A stale binary would test old code without saying so.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = newest_change(&manifest.join("src"))
        .max(newest_change(&manifest.join(format!("examples/{name}.rs"))));
    assert!(
        sources <= built,
        "{} is older than its sources: {hint}",
        path.display()
    );
    path
}

/// The latest modification time of `path` or of any file under it.
fn newest_change(path: &Path) -> std::time::SystemTime {
    let meta = std::fs::metadata(path).expect("a source path");
    let mut newest = meta.modified().expect("modification time");
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).expect("a source directory") {
            newest = newest.max(newest_change(&entry.expect("a directory entry").path()));
        }
    }
    newest
}

/// A running example; killed and reaped when dropped. Its stdout arrives line by line
/// through a channel, its stderr is kept and shown if the test fails.
struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    exited: bool,
}

impl Proc {
    fn start(name: &str, backend: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(example_path(name))
            .args(args)
            .env("RINGWORK_BACKEND", backend)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = retry_interrupted(|| pipe.read(&mut buf)) {
                let text = String::from_utf8_lossy(&buf[..n]);
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&text);
            }
        });
        Proc {
            name: format!("{name} ({backend})"),
            child,
            lines,
            stderr,
            exited: false,
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The next `count` stdout lines that contain `needle` (other lines are skipped).
    fn lines_with(&self, needle: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut found = Vec::new();
        while found.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => found.push(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no line with {needle:?} within {PATIENCE:?}; stderr:\n{}",
                    self.name,
                    self.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{} ended its output before a line with {needle:?}; stderr:\n{}",
                    self.name,
                    self.stderr()
                ),
            }
        }
        found
    }

    /// The address of its (first) "listening on ADDR" line.
    fn listening_addr(&self) -> SocketAddr {
        let line = self.lines_with("listening on ", 1).remove(0);
        let rest = &line[line.find("listening on ").unwrap() + "listening on ".len()..];
        let addr = rest.split([' ', ',']).next().unwrap();
        addr.parse()
            .unwrap_or_else(|e| panic!("{}: bad address in {line:?}: {e}", self.name))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`INT`, `TERM`) with kill(1).
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits until it exits (its stdout ends); returns its status and its remaining lines.
    fn wait_exit(&mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{} did not exit within {PATIENCE:?}", self.name)
                }
            }
        }
        let status = self.child.wait().expect("wait for the example");
        self.exited = true;
        (status, rest)
    }

    /// Resident memory, from /proc/PID/status.
    fn rss_bytes(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        let kib: usize = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line");
        kib * 1024
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!("--- stderr of {}:\n{}", self.name, self.stderr());
        }
    }
}

/// Runs a Python 3 script (standard library only) with `args`; returns its stdout.
fn python(script: &str, args: &[String]) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("these tests need python3: {e}"));
    assert!(
        output.status.success(),
        "python client failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// A loopback port nothing listens on (for a server with several cores, where port 0 would
/// give each core its own port, and for a refused connection).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a probe listener")
        .port()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Sends each size through a fresh connection from a sender thread, half-closes, reads the
/// echo to its end, and prints `size received digests_match`.
const ECHO_SIZES_PY: &str = r#"
import hashlib, os, socket, sys, threading
port = int(sys.argv[1])
for size in map(int, sys.argv[2:]):
    data = os.urandom(size)
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    def send():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    sender = threading.Thread(target=send)
    sender.start()
    digest, n = hashlib.sha256(), 0
    while chunk := s.recv(1 << 16):
        digest.update(chunk)
        n += len(chunk)
    sender.join()
    s.close()
    print(size, n, digest.hexdigest() == hashlib.sha256(data).hexdigest())
"#;

#[test]
fn echo_round_trips_several_sizes_then_stops_on_sigint() {
    const SIZES: [usize; 6] = [1, 100, 4096, 65_537, 1_000_000, 5 * MIB];
    for_each_backend(|backend| {
        let mut echo = Proc::start("echo", backend, &["--listen", "127.0.0.1:0"]);
        let addr = echo.listening_addr();
        let mut args = vec![addr.port().to_string()];
        args.extend(SIZES.iter().map(ToString::to_string));
        let out = python(ECHO_SIZES_PY, &args);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), SIZES.len(), "{out}");
        for (line, size) in lines.iter().zip(SIZES) {
            assert_eq!(*line, format!("{size} {size} True"));
        }

        // Graceful stop: the per-core line the bench script reads, with exact counts.
        echo.signal("INT");
        let (status, rest) = echo.wait_exit();
        assert!(status.success(), "{status}; stderr:\n{}", echo.stderr());
        let stats = rest
            .iter()
            .find(|line| line.starts_with("echo: core=0 "))
            .unwrap_or_else(|| panic!("no stats line in {rest:?}"));
        let field = |key: &str| -> String {
            let token = stats
                .split(' ')
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key} in {stats}"));
            token.to_string()
        };
        assert_eq!(field("backend"), backend);
        assert_eq!(field("accepted"), SIZES.len().to_string());
        assert_eq!(field("bytes"), SIZES.iter().sum::<usize>().to_string());
        assert!(field("reads").parse::<u64>().unwrap() >= SIZES.len() as u64);
        assert!(field("completions_per_enter").parse::<f64>().unwrap() > 0.0);
    });
}

/// Streams `total` random bytes from a sender thread (then half-closes) while reading the
/// echo to its end; prints `total received sent_sha256 received_sha256`.
const STREAM_PY: &str = r#"
import hashlib, os, socket, sys, threading
port, total = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=60)
sent = hashlib.sha256()
def send():
    left = total
    while left:
        chunk = os.urandom(min(left, 1 << 20))
        sent.update(chunk)
        s.sendall(chunk)
        left -= len(chunk)
    s.shutdown(socket.SHUT_WR)
sender = threading.Thread(target=send)
sender.start()
received, n = hashlib.sha256(), 0
while chunk := s.recv(1 << 18):
    received.update(chunk)
    n += len(chunk)
sender.join()
print(total, n, sent.hexdigest(), received.hexdigest())
"#;

/// The echo example, and the proxy example in front of it.
fn echo_behind_proxy(backend: &str) -> (Proc, Proc, SocketAddr) {
    let echo = Proc::start("echo", backend, &["--listen", "127.0.0.1:0"]);
    let upstream = echo.listening_addr().to_string();
    let proxy = Proc::start(
        "proxy",
        backend,
        &["--listen", "127.0.0.1:0", "--upstream", &upstream],
    );
    let addr = proxy.listening_addr();
    (echo, proxy, addr)
}

#[test]
fn proxy_relays_100_mib_each_way_with_half_close() {
    for_each_backend(|backend| {
        let (_echo, _proxy, addr) = echo_behind_proxy(backend);
        let total = 100 * MIB;
        let out = python(STREAM_PY, &[addr.port().to_string(), total.to_string()]);
        let fields: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "{out}");
        assert_eq!(fields[1], total.to_string(), "bytes back: {out}");
        assert_eq!(fields[2], fields[3], "sha256 of sent and received differ");
    });
}

/// Byte `i` of the stalled client's stream (a 1 MiB xorshift block, repeated).
struct Pattern(Vec<u8>);

impl Pattern {
    fn new() -> Self {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let block = (0..MIB)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Pattern(block)
    }

    /// The bytes of the stream from offset `at`, at most to the end of the block.
    fn from(&self, at: usize) -> &[u8] {
        &self.0[at % MIB..]
    }
}

#[test]
fn proxy_memory_stays_bounded_while_the_client_stalls() {
    const PUSH: usize = 200 * MIB;
    const RSS_LIMIT: usize = 64 * MIB;
    for_each_backend(|backend| {
        let (_echo, proxy, addr) = echo_behind_proxy(backend);
        let pattern = Arc::new(Pattern::new());
        let mut stream = connect(addr);

        // Push without reading: backpressure must stop the client long before 200 MiB (a
        // write that makes no progress for 2 s means the whole chain is full).
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut pushed = 0;
        loop {
            assert!(pushed < PUSH, "pushed all {PUSH} bytes without stalling");
            let end = (PUSH - pushed).min(64 * 1024);
            match retry_interrupted(|| {
                stream.write(&pattern.from(pushed)[..end.min(MIB - pushed % MIB)])
            }) {
                Ok(n) => pushed += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => panic!("write failed after {pushed} bytes: {e}"),
            }
        }
        let rss = proxy.rss_bytes();
        eprintln!(
            "stalled after {} MiB pushed; proxy RSS {:.1} MiB",
            pushed / MIB,
            rss as f64 / MIB as f64
        );
        assert!(
            rss < RSS_LIMIT,
            "proxy RSS {rss} bytes while the client stalls"
        );

        // The stall lost nothing: read everything back while pushing the rest, then
        // half-close and check the stream to its end.
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        let mut reader = stream.try_clone().unwrap();
        let check = Arc::clone(&pattern);
        let reading = thread::spawn(move || {
            let mut buf = vec![0; 256 * 1024];
            let mut got = 0;
            loop {
                let n = retry_interrupted(|| reader.read(&mut buf)).expect("read the echo");
                if n == 0 {
                    return got;
                }
                let mut done = 0;
                while done < n {
                    let expected = check.from(got + done);
                    let len = expected.len().min(n - done);
                    assert!(
                        buf[done..done + len] == expected[..len],
                        "echo differs near byte {}",
                        got + done
                    );
                    done += len;
                }
                got += n;
            }
        });
        while pushed < PUSH {
            let end = (PUSH - pushed).min(MIB - pushed % MIB);
            stream.write_all(&pattern.from(pushed)[..end]).unwrap();
            pushed += end;
        }
        stream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reading.join().expect("reader"), PUSH);
        let rss = proxy.rss_bytes();
        assert!(rss < RSS_LIMIT, "proxy RSS {rss} bytes after the transfer");
    });
}

#[test]
fn proxy_closes_the_client_when_the_upstream_refuses() {
    for_each_backend(|backend| {
        let upstream = format!("127.0.0.1:{}", free_port());
        let proxy = Proc::start(
            "proxy",
            backend,
            &["--listen", "127.0.0.1:0", "--upstream", &upstream],
        );
        // The proxy resets the client as soon as the upstream refuses; the reset can even
        // land while the client's connect is still being confirmed.
        let mut client = match TcpStream::connect_timeout(&proxy.listening_addr(), PATIENCE) {
            Ok(client) => client,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("connect to the proxy: {e}"),
        };
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut buf = [0; 16];
        match retry_interrupted(|| client.read(&mut buf)) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the client to be closed, got {other:?}"),
        }
    });
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    let n = reader.read_line(&mut line).expect("read a line");
    assert!(n > 0, "connection closed");
    line.trim_end_matches('\n').to_string()
}

/// Sends datagrams of several sizes and checks each comes back, from the server's port.
const UDP_PY: &str = r#"
import os, socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(30)
for size in (0, 1, 512, 1400, 9000):
    data = os.urandom(size)
    s.sendto(data, ("127.0.0.1", port))
    got, frm = s.recvfrom(65536)
    print(size, got == data, frm[1] == port)
"#;

#[test]
fn udp_echo_round_trips() {
    for_each_backend(|backend| {
        let udp = Proc::start("udp_echo", backend, &["--listen", "127.0.0.1:0"]);
        let addr = udp.listening_addr();
        let out = python(UDP_PY, &[addr.port().to_string()]);
        let expected = ["0", "1", "512", "1400", "9000"]
            .map(|size| format!("{size} True True"))
            .join("\n");
        assert_eq!(out.trim_end(), expected);
    });
}

/// Runs deferred_client with `args`; returns (success, stdout, stderr).
fn deferred_client(backend: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(example_path("deferred_client"))
        .args(args)
        .env("RINGWORK_BACKEND", backend)
        .stdin(Stdio::null())
        .output()
        .expect("run deferred_client");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn deferred_client_prints_the_reply() {
    for_each_backend(|backend| {
        // Against the echo example.
        let echo = Proc::start("echo", backend, &["--listen", "127.0.0.1:0"]);
        let addr = echo.listening_addr().to_string();
        let message = "a question for the echo example";
        let (ok, out, err) = deferred_client(backend, &["--connect", &addr, "--message", message]);
        assert!(ok, "stderr:\n{err}");
        assert_eq!(out, format!("reply: {message}\n"));

        // Against its own in-process listener.
        let (ok, out, err) = deferred_client(backend, &["--message", "in process"]);
        assert!(ok, "stderr:\n{err}");
        assert_eq!(out, "reply: in process\n");

        // Nobody listening: the deferred resolves with the reason.
        let refused = format!("127.0.0.1:{}", free_port());
        let (ok, out, err) = deferred_client(backend, &["--connect", &refused]);
        assert!(!ok, "stdout:\n{out}");
        assert!(err.contains("refused"), "stderr:\n{err}");
    });
}

/// Runs process_runner with `args`; returns (exit code, stdout, stderr).
#[cfg(target_os = "linux")]
fn process_runner(backend: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(example_path("process_runner"))
        .args(args)
        .env("RINGWORK_BACKEND", backend)
        .stdin(Stdio::null())
        .output()
        .expect("run process_runner");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
#[cfg(target_os = "linux")]
fn process_runner_streams_output_and_reports_the_exit() {
    for_each_backend(|backend| {
        let script = "echo out; echo err >&2; exit 3";
        let (code, out, err) = process_runner(backend, &["--", "sh", "-c", script]);
        assert_eq!(code, Some(3), "stderr:\n{err}");
        assert_eq!(out, "out\n");
        assert!(
            err.contains("err\n") && err.contains("[ended: exit code 3]"),
            "{err}"
        );

        let (code, out, err) = process_runner(backend, &["--input", "fed", "--", "cat"]);
        assert_eq!((code, out.as_str()), (Some(0), "fed"), "stderr:\n{err}");

        let args = ["--pty", "30x90", "--", "sh", "-c", "stty size"];
        let (code, out, err) = process_runner(backend, &args);
        assert_eq!(
            (code, out.as_str()),
            (Some(0), "30 90\r\n"),
            "stderr:\n{err}"
        );

        let args = ["--term-after-ms", "50", "--", "sleep", "100"];
        let (code, _, err) = process_runner(backend, &args);
        assert_eq!(code, Some(128 + 15), "stderr:\n{err}");
        assert!(err.contains("killed by signal 15"), "{err}");
    });
}

/// The `+T ms` time of a line of the timers example.
fn millis_of(line: &str) -> u64 {
    let rest = &line[line.find("+").expect("a +T ms time") + 1..];
    rest.split(' ')
        .next()
        .unwrap()
        .parse()
        .expect("milliseconds")
}

#[test]
fn timers_example_runs_its_calls_and_ticks_on_time() {
    for_each_backend(|backend| {
        let mut timers = Proc::start("timers", backend, &["--interval-ms", "20", "--ticks", "4"]);
        let (status, lines) = timers.wait_exit();
        assert!(status.success(), "{lines:?}");
        let find = |needle: &str| -> &String {
            lines
                .iter()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no {needle:?} line: {lines:?}"))
        };
        // Never before the deadline (a late reactor may print later).
        for (needle, due) in [
            ("one-shot call", 30),
            ("moved call", 50),
            ("a future woke", 70),
        ] {
            let at = millis_of(find(needle));
            assert!(at >= due, "{needle} at {at} ms, due at {due} ms: {lines:?}");
        }
        // `tick N at +T ms (missed M)`. A core stalled past an interval (a loaded CI machine)
        // skips the ticks it missed (Twisted's default): N then jumps by M + 1 and fewer
        // lines are printed, but every index is accounted for and the last one is 3.
        let ticks: Vec<&String> = lines.iter().filter(|l| l.starts_with("tick ")).collect();
        let mut expected = 0;
        for line in &ticks {
            let field = |name: &str| -> u64 {
                let rest =
                    &line[line.find(name).unwrap_or_else(|| panic!("{line}")) + name.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} in {line}"))
            };
            let (index, missed) = (field("tick "), field("(missed "));
            assert_eq!(index, expected + missed, "{lines:?}");
            assert!(millis_of(line) >= 20 * (index + 1), "{line} early");
            expected = index + 1;
        }
        assert_eq!(expected, 4, "the last tick is tick 3: {lines:?}");
        assert!(
            !lines.iter().any(|l| l.contains("never printed")),
            "{lines:?}"
        );
        assert_eq!(lines.last().map(String::as_str), Some("done"), "{lines:?}");
    });
}

#[test]
fn reconnecting_client_rides_out_a_server_restart() {
    for_each_backend(|backend| {
        let addr = format!("127.0.0.1:{}", free_port());
        let args = [
            "--connect",
            &addr,
            "--initial-delay-ms",
            "10",
            "--max-delay-ms",
            "40",
            "--seed",
            "1",
        ];
        let client = Proc::start("reconnecting_client", backend, &args);
        // Down: refused, retried.
        client.lines_with("retrying in", 2);
        // Up: it connects and greets; a line the server sends is printed.
        let listener = TcpListener::bind(&addr).expect("bind the server");
        client.lines_with("connected", 1);
        let (stream, _) = listener.accept().expect("the client's connection");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        assert_eq!(read_line(&mut reader), "hello from ringwork");
        (&stream).write_all(b"ping\n").unwrap();
        client.lines_with("received: ping", 1);
        // Down again: lost, and retried with the delay started over.
        drop((reader, stream, listener));
        client.lines_with("lost: Done", 1);
        let retry = client.lines_with("retrying in", 1).remove(0);
        assert!(retry.ends_with("(retry 1)"), "{retry}");
        // Up again.
        let listener = TcpListener::bind(&addr).expect("bind the server again");
        client.lines_with("connected", 1);
        let (stream, _) = listener.accept().expect("the client's connection");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        assert_eq!(
            read_line(&mut BufReader::new(stream)),
            "hello from ringwork"
        );
    });
}

#[test]
fn reconnecting_client_gives_up_after_max_retries() {
    for_each_backend(|backend| {
        let addr = format!("127.0.0.1:{}", free_port());
        let args = [
            "--connect",
            &addr,
            "--initial-delay-ms",
            "5",
            "--max-retries",
            "2",
        ];
        let mut client = Proc::start("reconnecting_client", backend, &args);
        let (status, lines) = client.wait_exit();
        assert!(!status.success(), "{lines:?}");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("attempt ")).count(),
            3,
            "{lines:?}"
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some("gave up after 2 retries"),
            "{lines:?}"
        );
    });
}
