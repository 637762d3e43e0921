//! Starting, probing and stopping one server process, pinned with `taskset`.
//!
//! Owns: [`Ports`] (a fresh free port for every run), [`Server::start`] (spawn under
//! `taskset -c CPUS`, under `chrt -f 10` too for `compare --fifo`, output to a log file,
//! wait until the port accepts a TCP connection by polling), and [`Server::stop`] (SIGTERM, SIGKILL to the whole tree after a deadline,
//! then check that every process is gone and the port is released).
//! Contract: a started [`Server`] is always stopped, also on error paths ([`Drop`] kills
//! the tree). Errors are plain text: they end up in the tables as `failed: <reason>`.
//! Does not: measure anything (see `procfs.rs`).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::compare::procfs;

/// How long a server may take to accept its first connection.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Polling interval while waiting for a process or a port.
const POLL: Duration = Duration::from_millis(10);

/// Hands out ports nothing listens on, a new one for every run (a leftover process sharing
/// a port through SO_REUSEPORT would corrupt the next measurement).
#[derive(Debug)]
pub struct Ports {
    next: u16,
}

impl Ports {
    /// Starts at `base`.
    #[must_use]
    pub fn new(base: u16) -> Self {
        Self { next: base }
    }

    /// The next port that is not listening.
    ///
    /// # Errors
    /// When 1000 ports in a row are busy.
    pub fn fresh(&mut self) -> Result<u16, String> {
        for _ in 0..1000 {
            let p = self.next;
            self.next = self.next.checked_add(1).unwrap_or(20_000);
            if !procfs::listening(p) {
                return Ok(p);
            }
        }
        Err(format!("no free port below {}", self.next))
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// Its pid (the process `taskset` exec'ed into).
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

/// Runs `taskset -c cpus cmd...`, under `chrt -f 10` (SCHED_FIFO) when `fifo`: both
/// exec the command, so the child's pid is the command's.
pub(crate) fn pinned(cpus: &str, fifo: bool, cmd: &[String]) -> Command {
    let mut c = if fifo {
        let mut c = Command::new("chrt");
        c.args(["-f", "10", "taskset"]);
        c
    } else {
        Command::new("taskset")
    };
    c.arg("-c").arg(cpus).args(cmd);
    c
}

/// The last `n` lines of a log file, for error messages.
#[must_use]
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

impl Server {
    /// Starts `cmd` pinned to `cpus` (under SCHED_FIFO when `fifo`) in `dir` and waits until
    /// `port` accepts connections.
    ///
    /// # Errors
    /// The reason, with the end of the server's log, when it cannot be spawned, exits, or
    /// does not accept within 15 s (it is stopped then).
    pub fn start(
        cmd: &[String],
        cpus: &str,
        fifo: bool,
        port: u16,
        dir: &Path,
        log: PathBuf,
    ) -> Result<Self, String> {
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = pinned(cpus, fifo, cmd)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start taskset {}: {e}", cmd.join(" ")))?;
        let mut server = Self {
            pid: child.id(),
            child: Some(child),
            port,
            log,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(format!(
                    "exited ({status}) before accepting on port {}: {}",
                    self.port,
                    log_tail(&self.log, 5)
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.stop();
                return Err(format!(
                    "did not accept on port {} within {READY_TIMEOUT:?}: {}",
                    self.port,
                    log_tail(&self.log, 5)
                ));
            }
            sleep(POLL);
        }
    }

    /// True while the server process runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server and its descendants.
    #[must_use]
    pub fn tree(&self) -> Vec<u32> {
        procfs::process_tree(self.pid)
    }

    /// SIGTERM, up to 5 s, then SIGKILL to whatever is left of the tree; waits until every
    /// process is gone and the port is released.
    ///
    /// # Errors
    /// A description of what would not go away (a process or the port).
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let tree = procfs::process_tree(self.pid);
        signal("TERM", &[self.pid]);
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut note = String::new();
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                note = format!("ignored SIGTERM for {STOP_TIMEOUT:?}, killed; ");
                break;
            }
            sleep(POLL);
        }
        // Descendants that outlive their parent (a worker) would keep the port.
        let left: Vec<u32> = tree.iter().copied().filter(|p| procfs::alive(*p)).collect();
        signal("KILL", &left);
        let _ = child.wait();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let alive: Vec<u32> = tree.iter().copied().filter(|p| procfs::alive(*p)).collect();
            let bound = procfs::listening(self.port);
            if alive.is_empty() && !bound {
                return if note.is_empty() { Ok(()) } else { Err(note) };
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{note}still alive: {alive:?}, port {} still listening: {bound}",
                    self.port
                ));
            }
            sleep(POLL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let tree = procfs::process_tree(self.pid);
            signal("KILL", &tree);
            let _ = child.wait();
        }
    }
}

/// Sends `SIG<name>` to `pids` with kill(1) (this crate has no `unsafe` for kill(2)).
fn signal(name: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(c: &Command) -> Vec<String> {
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn pinned_and_under_sched_fifo() {
        let cmd = ["srv".to_string(), "--port".into(), "1".into()];
        assert_eq!(
            argv(&pinned("0", false, &cmd)),
            ["taskset", "-c", "0", "srv", "--port", "1"]
        );
        assert_eq!(
            argv(&pinned("1", true, &cmd)),
            [
                "chrt", "-f", "10", "taskset", "-c", "1", "srv", "--port", "1"
            ]
        );
    }
}
