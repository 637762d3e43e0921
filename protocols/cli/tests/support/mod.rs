//! Helpers shared by the tests that run the `ringwork` binary: the wait limit, temporary
//! directories and test data.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use ringwork::platform::testing;
use ringwork::{BackendChoice, DriverConfig};
use ringwork_protocols::Endpoint;

/// How long any one wait may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(20);
/// [`LIMIT`], by the name the process tests use.
pub const PATIENCE: Duration = LIMIT;

/// `len` bytes of a repeating pattern that makes misplaced bytes visible.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A directory removed on drop, unique to this process and thread.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "ringwork-cli-{name}-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `Some(name)` for `--backend name` if that backend works here (`None`: skipped, logged).
pub fn backend(name: &str) -> Option<&str> {
    if name == "uring" {
        testing::driver(BackendChoice::Uring, DriverConfig::default())?;
    }
    Some(name)
}

/// A running `ringwork`, killed on drop; its stderr lines arrive through a channel.
pub struct Server {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringwork"));
        command.args(args);
        Server::spawn(command)
    }

    /// Runs `command` (the binary, or a program that runs it, such as `taskset`).
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .env("RUST_LOG", "info")
            .env_remove("RINGWORK_BACKEND")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringwork");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The endpoints of the next `count` "listening on" lines, as bound.
    pub fn listening(&mut self, count: usize) -> Vec<Endpoint> {
        let mut found = Vec::new();
        while found.len() < count {
            let line = self.next_line().unwrap_or_else(|| {
                panic!(
                    "ringwork ended before listening; stderr:\n{}",
                    self.seen.join("\n")
                )
            });
            if let Some((_, rest)) = line.split_once("listening on ") {
                let text = rest.split(" (core").next().expect("split yields one");
                found.push(text.parse().expect("log line names an endpoint"));
            }
        }
        found
    }

    /// The next stderr line; `None` at end of stream.
    pub fn next_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!(
                    "no output from ringwork in time; stderr:\n{}",
                    self.seen.join("\n")
                )
            }
        }
    }

    /// The next stderr line containing `text` (earlier lines are kept in `seen`); panics,
    /// showing what was seen, if the process exits first.
    pub fn line_with(&mut self, text: &str) -> String {
        loop {
            let line = self
                .next_line()
                .unwrap_or_else(|| panic!("exited before {text:?}:\n{}", self.seen.join("\n")));
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Sends SIGTERM and returns whether the process exited with status 0.
    pub fn terminate(mut self) -> bool {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        // The stderr pipe closes when the process exits.
        let deadline = Instant::now() + PATIENCE;
        while self.next_line().is_some() {
            assert!(
                Instant::now() < deadline,
                "ringwork did not exit after SIGTERM"
            );
        }
        self.child.wait().expect("wait for ringwork").success()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `both_backends!(name, ..)`: for each `fn name(backend: &str)`, a module `name` with two
/// tests, `uring` and `poll`, calling it with that backend's name.
#[allow(unused_macros)] // Not every test binary runs per backend.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn uring() {
                super::$name("uring");
            }
            #[test]
            fn poll() {
                super::$name("poll");
            }
        }
    )*};
}

/// Whether the interop peer `program probe..` runs here (in `dir` when given). A missing
/// peer is a failure under `CI=true` (the project's `installer` script installs it) and a
/// loud skip otherwise.
pub fn peer_in(
    dir: Option<&std::path::Path>,
    program: &str,
    probe: &[&str],
    installer: &str,
) -> bool {
    let mut command = Command::new(program);
    command.args(probe);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let ok = command.output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} {probe:?} failed under CI=true: scripts/{installer} installs the peer"
        );
        eprintln!("skipped: {program} {probe:?} failed (scripts/{installer} installs the peer)");
    }
    ok
}

/// [`peer_in`] from the current directory.
pub fn peer(program: &str, probe: &[&str], installer: &str) -> bool {
    peer_in(None, program, probe, installer)
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound and released).
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free TCP port");
    probe.local_addr().expect("its address").port()
}

/// A port free for both TCP and UDP on 127.0.0.1 a moment ago.
pub fn free_tcp_udp_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("a TCP port");
        let port = tcp.local_addr().expect("its address").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
