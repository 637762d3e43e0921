//! The IRC client library ([`IrcClient`]) on real connections, both backends: against our
//! own server (two clients on a 2-core runtime: registration, join, messages), against a
//! scripted std server (automatic PONG, and a reconnection after the server drops the
//! connection), and against miniircd (a Python IRC server from PyPI, installed by
//! `scripts/install-irc-test-deps.sh`; skipped with a loud line when missing, a failure
//! under CI=true). Waits are channel receives with a timeout, never sleeps.
#![cfg(feature = "engine")]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ringwork::platform::testing;
use ringwork::{BackendChoice, Backoff, DriverConfig, Runtime, ShutdownHandle};
use ringwork_protocols::irc::client::{IrcClient, IrcEvent};
use ringwork_protocols::irc::proto::{ClientConfig, ClientEvent, IrcConfig};
use ringwork_protocols::irc::server::IrcServer;

/// How long any one wait may take before the test fails.
const LIMIT: Duration = Duration::from_secs(20);

fn quick() -> Backoff {
    Backoff::new()
        .initial(Duration::from_millis(20))
        .max_delay(Duration::from_millis(200))
        .jitter(0.0)
}

/// Runs `setup` on each core of a `cores`-core runtime in a thread; stops on drop.
struct Running {
    handle: ShutdownHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown(Duration::ZERO);
    }
}

fn run(
    backend: BackendChoice,
    cores: usize,
    setup: impl Fn(&mut ringwork::Reactor) -> Result<(), ringwork::EngineError> + Send + Sync + 'static,
) -> Option<Running> {
    testing::driver(backend, DriverConfig::default())?;
    let runtime = Runtime::builder()
        .cores(cores)
        .pin(false)
        .backend(backend)
        .build()
        .expect("build a runtime");
    let handle = runtime.shutdown_handle();
    std::thread::spawn(move || runtime.run(setup));
    Some(Running { handle })
}

/// A client on this core whose events (as text) go to `tx`, tagged with `name`; it joins
/// `channel` when registered and says `line` there once `peer` joins.
fn chat_client(
    reactor: &mut ringwork::Reactor,
    addr: SocketAddr,
    nick: &str,
    say: Option<(&'static str, &'static str)>,
    tx: mpsc::Sender<String>,
) {
    let client = IrcClient::connect(&reactor.handle(), addr, ClientConfig::new(nick), quick());
    let nick = nick.to_owned();
    reactor.spawn_local(async move {
        while let Some(event) = client.next_event().await {
            match &event {
                IrcEvent::Client(ClientEvent::Registered { .. }) => {
                    client.join("#lib").expect("connected");
                }
                IrcEvent::Client(ClientEvent::Join { nick: who, .. }) => {
                    if let Some((peer, line)) = say
                        && who == peer
                    {
                        client.privmsg("#lib", line).expect("connected");
                    }
                }
                _ => {}
            }
            let text = match event {
                IrcEvent::Client(ClientEvent::Message(m)) => format!("{nick} msg {}", m.command),
                other => format!("{nick} {other:?}"),
            };
            if tx.send(text).is_err() {
                client.stop("test over");
            }
        }
    });
}

/// Lines from `rx` until one satisfies `pred`.
fn until(rx: &mpsc::Receiver<String>, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("timed out; saw {seen:#?}"));
        let done = pred(&line);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

/// The server dropping the connection: the client says so and connects again; the
/// server's PING is answered.
struct Scripted {
    listener: TcpListener,
}

impl Scripted {
    fn new() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").expect("bind"),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("address")
    }

    /// Accepts one connection, reads NICK and USER, welcomes it.
    fn accept(&self) -> (BufReader<TcpStream>, TcpStream) {
        let (stream, _) = self.listener.accept().expect("accept");
        stream.set_read_timeout(Some(LIMIT)).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut got = Vec::new();
        while got.len() < 2 {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).expect("read") > 0,
                "closed early"
            );
            got.push(line.trim_end().to_owned());
        }
        assert_eq!(got, ["NICK libbot", "USER libbot 0 * :libbot"]);
        let mut writer = stream;
        writer
            .write_all(b":srv 001 libbot :Welcome\r\n")
            .expect("write");
        (reader, writer)
    }
}

ringwork::platform::test_all_backends! {
    fn talks_to_our_server_across_cores(backend: BackendChoice) {
        let port = TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("addr").port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = IrcServer::new(IrcConfig::default());
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let Some(_running) = run(backend, 2, move |reactor| {
            let factory = server.attach(reactor);
            reactor.listen_tcp(addr, factory)?;
            let _ = ready_tx.send(());
            // One client per core; the first in the channel greets the other when it joins.
            match reactor.core_index() {
                0 => chat_client(reactor, addr, "zero", Some(("one", "hello from zero")), tx.clone()),
                _ => chat_client(reactor, addr, "one", Some(("zero", "hello from one")), tx.clone()),
            }
            Ok(())
        }) else {
            return;
        };
        for _ in 0..2 {
            ready_rx.recv_timeout(LIMIT).expect("listening");
        }
        let seen = until(&rx, |l| l.contains("Client(Privmsg"));
        let line = seen.last().expect("a line");
        let (to, from) = if line.starts_with("one") { ("one", "zero") } else { ("zero", "one") };
        assert!(
            line.starts_with(&format!("{to} Client(Privmsg {{ from: \"{from}!{from}@127.0.0.1\""))
                && line.contains(&format!("text: \"hello from {from}\"")),
            "{line}"
        );
        assert!(seen.iter().any(|l| l == "zero Connected"));
        assert!(seen.iter().any(|l| l.starts_with("one Client(Registered")));
    }

    fn answers_ping_and_reconnects_with_backoff(backend: BackendChoice) {
        let scripted = Scripted::new();
        let addr = scripted.addr();
        let (tx, rx) = mpsc::channel();
        let Some(_running) = run(backend, 1, move |reactor| {
            let client = IrcClient::connect(&reactor.handle(), addr, ClientConfig::new("libbot"), quick());
            let tx = tx.clone();
            reactor.spawn_local(async move {
                while let Some(event) = client.next_event().await {
                    let _ = tx.send(format!("{event:?}"));
                }
            });
            Ok(())
        }) else {
            return;
        };
        let (mut reader, mut writer) = scripted.accept();
        until(&rx, |l| l.starts_with("Client(Registered"));
        writer.write_all(b"PING :token-1\r\n").expect("write");
        let mut line = String::new();
        reader.read_line(&mut line).expect("the PONG");
        assert_eq!(line, "PONG token-1\r\n");
        drop((reader, writer));
        let seen = until(&rx, |l| l.starts_with("Disconnected"));
        assert_eq!(seen.last().map(String::as_str), Some("Disconnected(\"closed by the server\")"));
        // The next attempt comes after the backoff and registers again.
        let (_reader, _writer) = scripted.accept();
        until(&rx, |l| l == "Connected");
        until(&rx, |l| l.starts_with("Client(Registered"));
    }

    fn talks_to_miniircd(backend: BackendChoice) {
        let Some(mut miniircd) = Miniircd::start() else { return };
        let addr = miniircd.addr;
        let (tx, rx) = mpsc::channel();
        let Some(_running) = run(backend, 1, move |reactor| {
            chat_client(reactor, addr, "mini0", Some(("mini1", "hello miniircd")), tx.clone());
            chat_client(reactor, addr, "mini1", Some(("mini0", "hello miniircd")), tx.clone());
            Ok(())
        }) else {
            return;
        };
        let seen = until(&rx, |l| l.contains("Client(Privmsg"));
        let line = seen.last().expect("a line");
        assert!(line.contains("text: \"hello miniircd\"") && line.contains("target: \"#lib\""), "{line}");
        miniircd.stop();
    }
}

/// A miniircd process on a free port; killed on drop.
struct Miniircd {
    child: Child,
    addr: SocketAddr,
}

impl Miniircd {
    fn start() -> Option<Self> {
        if Command::new("miniircd").arg("--version").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "miniircd is missing: scripts/install-irc-test-deps.sh installs it"
            );
            eprintln!("skipped: miniircd is not installed (scripts/install-irc-test-deps.sh)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("a port")
            .local_addr()
            .expect("addr")
            .port();
        let mut command = Command::new("miniircd");
        command
            .args([
                "--verbose",
                "--listen",
                "127.0.0.1",
                "--ports",
                &port.to_string(),
            ])
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // It refuses to run as root unless told to stay root.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if root {
            command.args(["--setuid", "root"]);
        }
        let mut child = command.spawn().expect("start miniircd");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        // It prints this once its socket listens.
        let wanted = format!("Listening on port {port}.");
        loop {
            let line = lines.next().expect("miniircd ended").expect("its output");
            if line == wanted {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Some(Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Miniircd {
    fn drop(&mut self) {
        self.stop();
    }
}
