//! twistd's habits: `--pidfile` (written, refused while held by a live server, removed on
//! exit), `--logfile` (the log in a file, reopened on SIGUSR1) and `--uid`/`--gid` (as
//! root: bind a port below 1024, then every thread of the process runs as `nobody`).
//! Both backends. Waits are on the child's output, its exit or a file's content.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{LIMIT, Server, TempDir, backend};

/// The content of `path` once `ready` holds for it, bounded by [`LIMIT`].
fn file_when(path: &Path, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if ready(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{}: {text:?}", path.display());
        // A short pause between reads of the file, not a wait for the event.
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn hello(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    reply
}

fn pidfile(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let dir = TempDir::new("pidfile");
    let pidfile = dir.0.join("ringwork.pid");
    let pid_arg = pidfile.to_str().expect("utf-8");
    let mut server = Server::start(&[
        "serve",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
        "--pidfile",
        pid_arg,
    ]);
    server.listening(1);
    let text = std::fs::read_to_string(&pidfile).expect("the pidfile exists while it runs");
    assert_eq!(text, format!("{}\n", server.child.id()));
    // A second server with the same pidfile refuses to start, naming the holder.
    let output = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args([
            "serve",
            "echo",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--cores",
            "1",
        ])
        .args(["--backend", backend, "--pidfile", pid_arg])
        .output()
        .expect("run ringwork");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("process {} is running", server.child.id())),
        "{stderr}"
    );
    assert!(
        pidfile.exists(),
        "the refused server removed the holder's pidfile"
    );
    assert!(server.terminate(), "ringwork did not exit cleanly");
    assert!(!pidfile.exists(), "the pidfile is removed on a clean exit");
    // A stale pidfile (its process is gone) is replaced.
    std::fs::write(&pidfile, "999999999\n").expect("write a stale pidfile");
    let mut server = Server::start(&[
        "serve",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
        "--pidfile",
        pid_arg,
    ]);
    server.listening(1);
    assert_eq!(
        std::fs::read_to_string(&pidfile).expect("read"),
        format!("{}\n", server.child.id())
    );
    assert!(server.terminate());
}

fn logfile_reopens(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let dir = TempDir::new("logfile");
    let log = dir.0.join("ringwork.log");
    let server = Server::start(&[
        "serve",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
        "--logfile",
        log.to_str().expect("utf-8"),
    ]);
    file_when(&log, |t| t.contains("listening on tcp:"));
    let rotated = dir.0.join("ringwork.log.1");
    std::fs::rename(&log, &rotated).expect("rename");
    let status = Command::new("kill")
        .args(["-USR1", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // The reopen is logged to the new file.
    let fresh = file_when(&log, |t| t.contains("log file reopened"));
    assert!(!fresh.contains("listening on"), "{fresh}");
    assert!(server.terminate());
    // What the server logs while stopping goes to the new file too: the core's "stopped"
    // line (logged on the core before the process exits and flushed at exit; the signal
    // thread's "shutting down" line comes after the shutdown it starts, so an idle server
    // can exit first — CI saw that once).
    let fresh = std::fs::read_to_string(&log).expect("read");
    assert!(fresh.contains("core 0 stopped"), "{fresh}");
}

/// A port below 1024 free on 127.0.0.1 (only root can bind it), searched from `from` (each
/// backend's test its own range: they run in parallel).
fn low_port(from: u16) -> u16 {
    (from..from + 150)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below 1024")
}

/// The real, effective, saved and file-system uids of every thread of process `pid`.
fn thread_uids(pid: u32) -> Vec<String> {
    let mut uids = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("its threads") {
        let status = std::fs::read_to_string(task.expect("a thread").path().join("status"))
            .expect("a thread's status");
        let line = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .expect("a Uid line");
        uids.push(
            line.split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    uids
}

fn drops_privileges_after_binding(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root: this test must run there"
        );
        eprintln!("skipped: not root (binding a port below 1024 needs it)");
        return;
    }
    let nobody = Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .expect("id -u nobody");
    let nobody = String::from_utf8_lossy(&nobody.stdout).trim().to_owned();
    let port = low_port(if backend == "uring" { 700 } else { 860 });
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
        "--uid",
        "nobody",
    ]);
    while !server
        .next_line()
        .expect("ringwork runs")
        .contains("dropped privileges")
    {}
    let uids = thread_uids(server.child.id());
    let expected = [nobody.as_str(); 4].join(" ");
    assert!(uids.len() >= 2, "{uids:?}");
    assert!(
        uids.iter().all(|u| *u == expected),
        "{uids:?}, expected {expected}"
    );
    let reply = hello(SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(server.terminate());
}

#[test]
fn unknown_uid_is_refused_before_binding() {
    let output = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args([
            "serve",
            "echo",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--cores",
            "1",
        ])
        .args(["--uid", "no-such-user-ringwork"])
        .output()
        .expect("run ringwork");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--uid no-such-user-ringwork: no such user"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}

both_backends!(pidfile, logfile_reopens, drops_privileges_after_binding);
