//! Zero-downtime restart (issue 25): a running server hands its listening sockets to the
//! server that replaces it, over a Unix socket, and then drains.
//!
//! Owns: `--takeover-socket PATH` (the running side: a thread that answers successors on
//! PATH, [`Handover`]) and `--takeover-from PATH` (the new side: [`Received`]).
//! Contract, the exchange on the Unix stream socket:
//!
//! ```text
//! old → new   "ringwork-takeover 1 pid=PID fds=N\n" with N listening sockets (SCM_RIGHTS):
//!             every core's listener of every stream endpoint (each core has its own
//!             SO_REUSEPORT socket, with its own accept queue)
//! new → old   "ready pid=PID\n" once every core of the new process accepts on them
//! old         logs it and begins its graceful shutdown: it stops accepting, answers the
//!             requests it has read with `Connection: close`, exits after --grace at most
//! ```
//!
//! The kernel sockets stay open across the switch (both processes hold them until the old
//! one closes its copies), so no connection is refused and none waiting in an accept queue
//! is lost: each queue has a process accepting on it at every moment. The new process
//! matches the sockets to its endpoints by local address; one it has no endpoint for is
//! closed (logged), an endpoint with no socket is bound as usual. A successor that fails
//! before it is ready (a broken config, a port it cannot bind) closes the connection: the old
//! server logs it and keeps serving.
//! Why this and not a re-exec on SIGUSR2 (nginx): the new process is started by the
//! operator or the service manager like any other (its own command line, environment and
//! binary; under systemd `ExecReload=` or a new unit), not as a child of the old one, and
//! it can refuse to take over without the old one noticing more than a log line. Why not
//! a second SO_REUSEPORT group member: closing the old sockets would reset the connections
//! queued on them.
//! Does not: carry connections (established ones finish in the old process), UDP sockets
//! (bound again by the new process with `--reuse-port`), or anything but stream listeners.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ringwork::platform::Socket;
use ringwork::platform::fdpass::{MAX_FDS, recv_fds, send_fds};
use ringwork::{Cores, ShutdownHandle, SockAddr};

/// The first line's start (and version).
const HEADER: &str = "ringwork-takeover 1";
/// How long a successor may take from receiving the sockets to saying it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a core may take to hand over its listeners' duplicates.
const CORE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the new process waits for the old one's sockets.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest first line accepted.
const MAX_HEADER: usize = 256;

/// Binds the takeover socket at `path`. An existing file is replaced when `replace` (the
/// successor re-binding its predecessor's path), or when nothing answers on it (a stale
/// socket left by a server that exited); a live server on it is refused.
///
/// # Errors
/// A server answers on `path`; the file cannot be removed or bound.
pub fn bind(path: &Path, replace: bool) -> Result<UnixListener, String> {
    let what = || format!("--takeover-socket {}", path.display());
    if path.exists() {
        if !replace && UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{}: a running server listens on it (take over from it with --takeover-from)",
                what()
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("{}: {e}", what()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("{}: {e}", what()))?;
    // Whoever can connect gets the listening sockets and makes this server drain: only
    // its own user (and root) may (connecting needs write permission on the file).
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", what()))?;
    Ok(listener)
}

/// What this process does once every core listens: tell its predecessor (if it took over
/// from one), then answer successors on its takeover socket (if it has one). Both happen on
/// a thread of their own (`ringwork-takeover`), never on a core.
pub struct Plan {
    /// The sockets received with `--takeover-from`.
    pub received: Option<Received>,
    /// `--takeover-socket PATH`, with the socket when it is bound already (a successor binds
    /// it only once ready: its predecessor may be on the same path).
    pub socket: Option<(PathBuf, Option<UnixListener>)>,
    /// `--takeover-from PATH`.
    pub from: Option<PathBuf>,
    /// Starts this process's own graceful shutdown once a successor is ready.
    pub shutdown: ShutdownHandle,
    /// `--grace`.
    pub grace: Duration,
}

impl Plan {
    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.received.is_none() && self.socket.is_none()
    }

    /// Every core listens: runs the plan on its own thread.
    pub fn ready(self, cores: Cores) {
        let spawned = std::thread::Builder::new()
            .name("ringwork-takeover".into())
            .spawn(move || self.run(&cores));
        if let Err(error) = spawned {
            tracing::error!("cannot start the takeover thread: {error}");
        }
    }

    fn run(self, cores: &Cores) {
        if let Some(received) = self.received {
            match received.ready() {
                Ok(pid) => tracing::info!("took over from process {pid}, which now drains"),
                Err(error) => tracing::warn!("{error}"),
            }
        }
        let Some((path, bound)) = self.socket else {
            return;
        };
        let listener = match bound {
            Some(listener) => listener,
            None => match bind(&path, self.from.as_deref() == Some(path.as_path())) {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::error!("{error}: this server cannot hand over to a successor");
                    return;
                }
            },
        };
        Handover {
            listener,
            path,
            shutdown: self.shutdown,
            grace: self.grace,
        }
        .serve(cores);
    }
}

/// The running side: answers successors on the takeover socket.
struct Handover {
    listener: UnixListener,
    path: PathBuf,
    shutdown: ShutdownHandle,
    grace: Duration,
}

impl Handover {
    fn serve(&self, cores: &Cores) {
        tracing::info!("takeover socket on {}", self.path.display());
        for stream in self.listener.incoming() {
            let result = stream
                .map_err(|e| format!("accepting: {e}"))
                .and_then(|stream| hand_over(stream, cores));
            match result {
                Ok((pid, count)) => {
                    // Shut down first, as the signal thread does: the log line must not be
                    // able to prevent it.
                    self.shutdown.hand_over(self.grace);
                    tracing::info!(
                        "taken over by process {pid} ({count} listening sockets handed \
                         over): draining for up to {:?}",
                        self.grace
                    );
                    return;
                }
                Err(error) => tracing::warn!(
                    "takeover on {} failed: {error}; still serving",
                    self.path.display()
                ),
            }
        }
    }
}

/// Sends every core's listening sockets to the successor on `stream` and waits for it to
/// be ready: its process id and the number of sockets.
fn hand_over(stream: UnixStream, cores: &Cores) -> Result<(u32, usize), String> {
    let sockets = collect(cores)?;
    if sockets.len() > MAX_FDS {
        return Err(format!(
            "{} listening sockets: at most {MAX_FDS} can be handed over",
            sockets.len()
        ));
    }
    let count = sockets.len();
    let header = format!("{HEADER} pid={} fds={count}\n", std::process::id());
    let fds: Vec<_> = sockets.iter().map(AsFd::as_fd).collect();
    send_fds((&stream).into(), header.as_bytes(), &fds)
        .map_err(|e| format!("sending the sockets: {e}"))?;
    // Our duplicates: the successor has its own now, and the cores keep accepting on theirs
    // until the shutdown.
    drop(fds);
    drop(sockets);
    stream
        .set_read_timeout(Some(READY_TIMEOUT))
        .map_err(|e| format!("{e}"))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_HEADER as u64))
        .read_line(&mut line)
        .map_err(|e| format!("waiting for the new server to be ready: {e}"))?;
    if line.is_empty() {
        return Err(
            "the new server closed the connection before it was ready (see its log)".into(),
        );
    }
    let pid = line
        .strip_prefix("ready pid=")
        .and_then(|pid| pid.trim_end().parse().ok())
        .ok_or_else(|| format!("the new server answered {line:?}, not ready"))?;
    Ok((pid, count))
}

/// Duplicates of every core's stream listeners (each core copies its own on its thread).
fn collect(cores: &Cores) -> Result<Vec<Socket>, String> {
    let mut all = Vec::new();
    for core in 0..cores.len() {
        let (tx, rx) = mpsc::sync_channel(1);
        cores
            .send(core, move |reactor| {
                let _ = tx.send(reactor.duplicate_listeners());
            })
            .map_err(|e| format!("asking core {core} for its listeners: {e}"))?;
        let sockets = rx
            .recv_timeout(CORE_TIMEOUT)
            .map_err(|_| format!("core {core} did not hand over its listeners"))?
            .map_err(|e| format!("core {core}: {e}"))?;
        all.extend(sockets);
    }
    Ok(all)
}

/// The new side: the sockets received from the running server, until this process is
/// ready.
pub struct Received {
    stream: UnixStream,
    /// The old server's process id.
    pub predecessor: u32,
    sockets: Vec<(Option<SockAddr>, OwnedFd)>,
    /// Which received sockets an endpoint took.
    taken: Vec<bool>,
}

impl Received {
    /// Connects to the running server's takeover socket at `path` and receives its
    /// listening sockets.
    ///
    /// # Errors
    /// Nothing listens on `path`; the exchange failed or is not ringwork's.
    pub fn connect(path: &Path) -> Result<Received, String> {
        let what = |e: String| format!("--takeover-from {}: {e}", path.display());
        let stream = UnixStream::connect(path).map_err(|e| what(e.to_string()))?;
        stream
            .set_read_timeout(Some(RECEIVE_TIMEOUT))
            .map_err(|e| what(e.to_string()))?;
        let mut header = Vec::new();
        let mut fds = Vec::new();
        let mut buf = [0u8; MAX_HEADER];
        while !header.contains(&b'\n') {
            let (n, got) = recv_fds((&stream).into(), &mut buf, MAX_FDS - fds.len())
                .map_err(|e| what(format!("receiving the sockets: {e}")))?;
            if n == 0 {
                return Err(what("the running server closed the connection".into()));
            }
            header.extend_from_slice(&buf[..n]);
            fds.extend(got);
            if header.len() > MAX_HEADER {
                return Err(what("not a ringwork takeover socket".into()));
            }
        }
        let line = String::from_utf8_lossy(&header);
        let (pid, count) = parse_header(line.trim_end())
            .ok_or_else(|| what(format!("not a ringwork takeover socket: {line:?}")))?;
        if count != fds.len() {
            return Err(what(format!(
                "{count} sockets announced, {} received",
                fds.len()
            )));
        }
        let sockets: Vec<_> = fds
            .into_iter()
            .map(|fd| {
                let socket = Socket::from(fd);
                let addr = socket.local_addr().ok();
                (addr, OwnedFd::from(socket))
            })
            .collect();
        tracing::info!(
            "received {} listening sockets from process {pid}",
            sockets.len()
        );
        Ok(Received {
            stream,
            predecessor: pid,
            taken: vec![false; sockets.len()],
            sockets,
        })
    }

    /// The descriptors of the received sockets bound to `addr` (those not taken yet).
    pub fn take(&mut self, addr: &SockAddr) -> Vec<i32> {
        let mut fds = Vec::new();
        for (i, (local, fd)) in self.sockets.iter().enumerate() {
            if !self.taken[i] && local.as_ref().is_some_and(|l| same_address(l, addr)) {
                self.taken[i] = true;
                fds.push(fd.as_raw_fd());
            }
        }
        fds
    }

    /// Logs the received sockets no endpoint took (they close with this value).
    pub fn report_unused(&self) {
        for ((local, _), taken) in self.sockets.iter().zip(&self.taken) {
            if !taken {
                tracing::warn!(
                    "the old server's listener on {} is not among this server's endpoints: \
                     closing it",
                    local
                        .as_ref()
                        .map_or_else(|| "?".to_owned(), display_address)
                );
            }
        }
    }

    /// Tells the old server that every core accepts on the sockets (it then drains and
    /// exits), and closes this process's received copies (each core has its own).
    ///
    /// # Errors
    /// The old server is gone.
    pub fn ready(self) -> Result<u32, String> {
        (&self.stream)
            .write_all(format!("ready pid={}\n", std::process::id()).as_bytes())
            .map_err(|e| format!("telling process {} to drain: {e}", self.predecessor))?;
        Ok(self.predecessor)
    }
}

/// `ringwork-takeover 1 pid=N fds=M`: `(N, M)`.
fn parse_header(line: &str) -> Option<(u32, usize)> {
    let rest = line.strip_prefix(HEADER)?.strip_prefix(" pid=")?;
    let (pid, count) = rest.split_once(" fds=")?;
    Some((pid.parse().ok()?, count.parse().ok()?))
}

/// Whether two socket addresses name the same endpoint (IP and port, or Unix path).
fn same_address(a: &SockAddr, b: &SockAddr) -> bool {
    match (a.as_socket(), b.as_socket()) {
        (Some(a), Some(b)) => a == b,
        (None, None) => a.as_pathname().is_some() && a.as_pathname() == b.as_pathname(),
        _ => false,
    }
}

fn display_address(addr: &SockAddr) -> String {
    match (addr.as_socket(), addr.as_pathname()) {
        (Some(ip), _) => ip.to_string(),
        (None, Some(path)) => format!("unix:{}", path.display()),
        (None, None) => "an unnamed socket".into(),
    }
}

/// The received descriptors core `core` of `cores` listens on, of the `fds` of one
/// endpoint: every socket must have a core accepting on it (its accept queue is its own),
/// so core `c` takes sockets `c`, `c + cores`, ...; a core left without one shares one.
pub fn share(fds: &[i32], core: usize, cores: usize) -> Vec<i32> {
    if fds.is_empty() {
        return Vec::new();
    }
    let mine: Vec<i32> = fds
        .iter()
        .enumerate()
        .filter(|(i, _)| i % cores.max(1) == core)
        .map(|(_, fd)| *fd)
        .collect();
    if mine.is_empty() {
        vec![fds[core % fds.len()]]
    } else {
        mine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_socket_has_a_core_and_every_core_a_socket() {
        let fds = [10, 11, 12, 13];
        assert_eq!(share(&fds, 0, 2), vec![10, 12]);
        assert_eq!(share(&fds, 1, 2), vec![11, 13]);
        assert_eq!(share(&fds, 0, 1), fds.to_vec());
        assert_eq!(share(&fds[..2], 3, 4), vec![11]);
        assert_eq!(share(&fds[..2], 2, 4), vec![10]);
        assert!(share(&[], 0, 2).is_empty());
    }

    #[test]
    fn header_round_trip() {
        assert_eq!(
            parse_header("ringwork-takeover 1 pid=42 fds=3"),
            Some((42, 3))
        );
        assert_eq!(parse_header("ringwork-takeover 2 pid=42 fds=3"), None);
        assert_eq!(parse_header("HTTP/1.1 200 OK"), None);
    }
}
