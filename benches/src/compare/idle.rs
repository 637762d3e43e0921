//! Memory per idle connection: the server's RSS before and with N idle connections open.
//!
//! Owns: opening the connections from the runner process (std sockets, connected, then set
//! non-blocking and left silent), waiting until the server holds them, and reading RSS
//! (VmRSS summed over the server's process tree).
//! Contract: the caller raised RLIMIT_NOFILE (the `compare` binary re-executes itself under
//! `ulimit -n`) and passes the count it may open ([`budget`]); fewer opened or accepted
//! than asked is reported in `note`, never hidden. Connections are closed before returning.
//! Does not: start or stop the server.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::compare::procfs;

/// The idle-connections measurement of one server.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Idle {
    /// Connections asked for.
    pub requested: u32,
    /// Connections the runner opened.
    pub opened: u32,
    /// New sockets the server's processes hold (accepted connections).
    pub accepted: i64,
    /// RSS of the server tree before, KiB.
    pub rss_before_kib: u64,
    /// RSS of the server tree with the connections open, KiB.
    pub rss_with_kib: u64,
    /// Why fewer connections than asked were opened or accepted.
    pub note: Option<String>,
}

impl Idle {
    /// Extra RSS per accepted connection, KiB.
    #[must_use]
    pub fn per_conn_kib(&self) -> Option<f64> {
        (self.accepted > 0)
            .then(|| (self.rss_with_kib as f64 - self.rss_before_kib as f64) / self.accepted as f64)
    }
}

/// How many idle connections may be opened: `wanted`, capped by the open-file limit (less a
/// reserve of 256 for everything else) and by the ephemeral port range; the reason when
/// capped.
#[must_use]
pub fn budget(
    wanted: u32,
    nofile_soft: Option<u64>,
    ephemeral_ports: Option<u64>,
) -> (u32, Option<String>) {
    let mut n = u64::from(wanted);
    let mut why = None;
    if let Some(soft) = nofile_soft {
        let cap = soft.saturating_sub(256);
        if cap < n {
            n = cap;
            why = Some(format!(
                "RLIMIT_NOFILE is {soft}: at most {cap} idle connections (raise the hard limit)"
            ));
        }
    }
    if let Some(ports) = ephemeral_ports {
        let cap = ports.saturating_sub(1000);
        if cap < n {
            n = cap;
            why = Some(format!(
                "net.ipv4.ip_local_port_range has {ports} ports: at most {cap} idle connections"
            ));
        }
    }
    (u32::try_from(n).unwrap_or(u32::MAX), why)
}

/// Opens `n` connections to `127.0.0.1:port` and measures the tree of `server_pid`.
#[must_use]
pub fn measure(
    server_pid: u32,
    port: u16,
    requested: u32,
    n: u32,
    cap_note: Option<String>,
) -> Idle {
    let tree = || procfs::process_tree(server_pid);
    let mut out = Idle {
        requested,
        rss_before_kib: procfs::rss_kib(&tree()),
        note: cap_note,
        ..Idle::default()
    };
    let sockets_before = procfs::socket_fds(&tree()) as i64;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut conns = Vec::with_capacity(n as usize);
    for i in 0..n {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                let _ = s.set_nonblocking(true);
                conns.push(s);
            }
            Err(e) => {
                out.note = Some(format!("connect {} of {n} failed: {e}", i + 1));
                break;
            }
        }
    }
    out.opened = conns.len() as u32;
    // Wait until the server holds them all, or its count stops growing for 1 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut last, mut since) = (-1i64, Instant::now());
    loop {
        let held = procfs::socket_fds(&tree()) as i64 - sockets_before;
        if held >= i64::from(out.opened) || Instant::now() > deadline {
            out.accepted = held;
            break;
        }
        if held != last {
            (last, since) = (held, Instant::now());
        } else if since.elapsed() > Duration::from_secs(1) {
            out.accepted = held;
            break;
        }
        sleep(Duration::from_millis(20));
    }
    if out.accepted < i64::from(out.opened) && out.note.is_none() {
        out.note = Some(format!(
            "the server holds {} of {} connections (its own connection limit?)",
            out.accepted, out.opened
        ));
    }
    out.rss_with_kib = procfs::rss_kib(&tree());
    drop(conns);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_caps_by_nofile_and_ports() {
        assert_eq!(budget(10_000, Some(20_000), Some(28_232)), (10_000, None));
        let (n, why) = budget(10_000, Some(1024), Some(28_232));
        assert_eq!(n, 768);
        assert!(why.unwrap().contains("RLIMIT_NOFILE"));
        let (n, why) = budget(10_000, Some(1 << 20), Some(5000));
        assert_eq!(n, 4000);
        assert!(why.unwrap().contains("ip_local_port_range"));
        assert_eq!(budget(10, None, None), (10, None));
    }

    #[test]
    fn per_connection_rss() {
        let idle = Idle {
            accepted: 100,
            rss_before_kib: 1000,
            rss_with_kib: 1400,
            ..Idle::default()
        };
        assert_eq!(idle.per_conn_kib(), Some(4.0));
        assert_eq!(Idle::default().per_conn_kib(), None);
    }
}
