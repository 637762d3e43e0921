//! Zero-downtime restart: `--takeover-socket` / `--takeover-from`. A server with two cores
//! hands its listening sockets to a new process while clients keep connecting (a new
//! connection per request on two client threads, keep-alive on two more): not one
//! connection refused or request failed, the old process exits 0, the new one answers, and hands over to a third in
//! turn. A successor that fails to start leaves the old server serving. Both backends.
//! Waits are on the processes' log lines, their exit and the clients' counters.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{LIMIT, Server, TempDir, backend, free_port};

/// Held by each test for its whole run: a port found free by [`free_port`] is not taken
/// by the other tests of this file before their server binds it.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One request on a new connection: `Ok` for a 200.
fn request(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(LIMIT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("read: {e} after {reply:?}"))?;
    if reply.starts_with("HTTP/1.1 200") && reply.ends_with("Hello, World!") {
        Ok(())
    } else {
        Err(format!("reply {reply:?}"))
    }
}

/// A keep-alive client: requests on one connection until the server answers with
/// `Connection: close`, then on a new one.
#[derive(Default)]
struct KeepAlive {
    stream: Option<TcpStream>,
}

impl KeepAlive {
    fn request(&mut self, addr: SocketAddr) -> Result<(), String> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
                stream
                    .set_read_timeout(Some(LIMIT))
                    .map_err(|e| e.to_string())?;
                self.stream.insert(stream)
            }
        };
        let result = Self::exchange(stream);
        if !matches!(result, Ok(true)) {
            self.stream = None;
        }
        result.map(drop)
    }

    /// One request and its answer; whether the connection stays open.
    fn exchange(stream: &mut TcpStream) -> Result<bool, String> {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .map_err(|e| format!("keep-alive send: {e}"))?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream
                .read(&mut buf)
                .map_err(|e| format!("keep-alive read: {e} after {reply:?}"))?;
            if n == 0 {
                return Err(format!(
                    "keep-alive: closed after {:?}",
                    String::from_utf8_lossy(&reply)
                ));
            }
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if text.ends_with("Hello, World!") {
                if !text.starts_with("HTTP/1.1 200") {
                    return Err(format!("keep-alive reply {text:?}"));
                }
                return Ok(!text.to_ascii_lowercase().contains("connection: close"));
            }
        }
    }
}

/// Client threads requesting in a loop until stopped, counting answers and failures: half
/// on a new connection per request, half keep-alive.
struct Load {
    start: Instant,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let threads = (0..clients)
            .map(|client| {
                let (ok, failures, stop) = (ok.clone(), failures.clone(), stop.clone());
                thread::spawn(move || {
                    let mut keep_alive = KeepAlive::default();
                    while !stop.load(Ordering::Relaxed) {
                        let began = start.elapsed();
                        let result = if client % 2 == 0 {
                            request(addr)
                        } else {
                            keep_alive.request(addr)
                        };
                        match result {
                            Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(error) => {
                                // When it started (it may have waited for the time limit).
                                failures
                                    .lock()
                                    .expect("lock")
                                    .push(format!("client {client} at {began:?}: {error}"));
                                0
                            }
                        };
                    }
                })
            })
            .collect();
        Load {
            start,
            ok,
            failures,
            stop,
            threads,
        }
    }

    /// Waits until `more` requests beyond now have been answered.
    fn answered(&self, more: usize) {
        let target = self.ok.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + LIMIT;
        while self.ok.load(Ordering::Relaxed) < target {
            assert!(
                Instant::now() < deadline,
                "only {} answers; failures: {:?}",
                self.ok.load(Ordering::Relaxed),
                self.failures.lock().expect("lock")
            );
            // A pause between looks at the counter, not a wait for the event.
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("client thread");
        }
        let failures = self.failures.lock().expect("lock").clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

fn serve(backend: &str, port: u16, socket: &str, from: Option<&str>) -> Server {
    let listen = format!("tcp:{port}:interface=127.0.0.1");
    let mut args = vec![
        "serve",
        "hello",
        "--listen",
        &listen,
        "--cores",
        "2",
        "--backend",
        backend,
        "--takeover-socket",
        socket,
    ];
    if let Some(from) = from {
        args.extend(["--takeover-from", from]);
    }
    Server::start(&args)
}

/// Reads `server`'s log to its end and returns whether it exited with status 0.
fn exits(mut server: Server) -> bool {
    while server.next_line().is_some() {}
    server.child.wait().expect("wait").success()
}

fn restart_under_load(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = TempDir::new("takeover");
    let socket = dir.0.join("takeover.sock");
    let socket = socket.to_str().expect("utf-8");
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut old = serve(backend, port, socket, None);
    old.line_with("takeover socket on");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(socket)
            .expect("the socket file")
            .permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o600,
        "only its user may take the server over"
    );
    let load = Load::start(addr, 4);
    load.answered(200);
    // Two restarts in a row: the new process hands over in its turn.
    for generation in 1..=2 {
        let mut new = serve(backend, port, socket, Some(socket));
        let line = old.line_with("taken over by process");
        assert!(
            line.contains(&format!("process {}", new.child.id())),
            "{line}"
        );
        assert!(line.contains("2 listening sockets"), "{line}");
        new.line_with("took over from process");
        new.line_with("takeover socket on");
        assert!(exits(old), "the old server exits 0 after draining");
        let gone = load.start.elapsed();
        // The old one is gone: these are the new one's.
        load.answered(200);
        eprintln!(
            "generation {generation}: {} answered, old one gone at {:?}",
            load.ok.load(Ordering::Relaxed),
            gone
        );
        old = new;
    }
    let (answered, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        answered + failures.len(),
        &failures[..failures.len().min(5)]
    );
    eprintln!("{answered} requests across two restarts, none failed");
    assert!(old.terminate());
}

fn failed_successor_leaves_the_old_serving(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = TempDir::new("takeover-failed");
    let socket = dir.0.join("takeover.sock");
    let socket = socket.to_str().expect("utf-8");
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut old = serve(backend, port, socket, None);
    old.line_with("takeover socket on");
    // The successor also wants a port another socket holds: it cannot start.
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let held_endpoint = format!(
        "tcp:{}:interface=127.0.0.1",
        held.local_addr().expect("addr").port()
    );
    let listen = format!("tcp:{port}:interface=127.0.0.1");
    let failed = Server::start(&[
        "serve",
        "hello",
        "--listen",
        &listen,
        "--listen",
        &held_endpoint,
        "--cores",
        "2",
        "--backend",
        backend,
        "--takeover-from",
        socket,
    ]);
    assert!(!exits(failed), "the successor fails");
    let line = old.line_with("takeover on");
    assert!(line.contains("still serving"), "{line}");
    request(addr).expect("the old server still answers");
    // And a later successor still takes over.
    let mut new = serve(backend, port, socket, Some(socket));
    new.line_with("took over from process");
    assert!(exits(old));
    request(addr).expect("the new server answers");
    assert!(new.terminate());
}

both_backends!(restart_under_load, failed_successor_leaves_the_old_serving);
