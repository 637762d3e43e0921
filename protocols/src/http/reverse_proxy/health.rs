//! Active health checks of upstream servers: a TCP connect or an HTTP request every
//! `interval`, a server taken out of rotation after `fall` failures in a row and put back
//! after `rise` successes.
//!
//! Owns: [`HealthCheck`] (a pool's settings), [`Streak`] (the rise/fall counting, sans-IO),
//! [`HealthState`] (every checked server's state, shared by the cores and the checker
//! threads) and the checker threads ([`HealthState::start`]).
//! Contract: one checker thread per checked server (blocking I/O bounded by `timeout`, off
//! the cores); a server starts up (a proxy starting with a healthy pool serves at once). A
//! pick reads the state with relaxed atomic loads (no lock, no read-modify-write); a server
//! coming back up also ends its passive back-off on every core (its generation changes).
//! Transitions are logged (`upstream ADDR of pool P is down: REASON` / `is up`).
//! Does not: check `https://` servers over TLS (their check is a TCP connect), or follow
//! redirects (a 2xx or 3xx status passes).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::config::{ProxyConfig, ServerAddr};

/// A pool's active health check (`[upstreams.NAME.health]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// `GET` this path and expect a 2xx or 3xx status; `None`: a TCP connect.
    pub path: Option<String>,
    /// Time between two checks of a server. Default 5 s.
    pub interval: Duration,
    /// Bound on one check (connect, and for HTTP the status line). Default 2 s.
    pub timeout: Duration,
    /// Successes in a row that bring a down server back. Default 2.
    pub rise: u32,
    /// Failures in a row that take a server out. Default 3.
    pub fall: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
        }
    }
}

/// A server's check results in a row (sans-IO): up or down, and how many results in a row
/// went against that state.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Streak {
    up: bool,
    against: u32,
}

impl Default for Streak {
    fn default() -> Self {
        Self {
            up: true,
            against: 0,
        }
    }
}

impl Streak {
    /// Whether the server is up.
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Counts one check result; `Some(new state)` when it changes the state: `fall`
    /// failures in a row take an up server down, `rise` successes bring a down one back.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok == self.up {
            self.against = 0;
            return None;
        }
        self.against += 1;
        let needed = if self.up { fall } else { rise };
        if self.against >= needed.max(1) {
            self.up = ok;
            self.against = 0;
            Some(ok)
        } else {
            None
        }
    }
}

/// The state of every server of every pool with a health check, shared by the cores.
#[derive(Debug)]
pub struct HealthState {
    pools: Vec<PoolHealth>,
}

#[derive(Debug)]
struct PoolHealth {
    name: String,
    check: Option<HealthCheck>,
    https: bool,
    servers: Vec<ServerHealth>,
}

#[derive(Debug)]
struct ServerHealth {
    addr: ServerAddr,
    up: AtomicBool,
    /// Counts the times it came back up.
    generation: AtomicU64,
}

impl HealthState {
    /// The state of `config`'s pools (every server up); `None` when no pool has a check.
    #[must_use]
    pub fn new(config: &ProxyConfig) -> Option<Arc<HealthState>> {
        if config.upstreams.iter().all(|u| u.health.is_none()) {
            return None;
        }
        let pools = config
            .upstreams
            .iter()
            .map(|u| PoolHealth {
                name: u.name.clone(),
                check: u.health.clone(),
                https: u.tls.is_some(),
                servers: u
                    .servers
                    .iter()
                    .map(|addr| ServerHealth {
                        addr: addr.clone(),
                        up: AtomicBool::new(true),
                        generation: AtomicU64::new(0),
                    })
                    .collect(),
            })
            .collect();
        Some(Arc::new(HealthState { pools }))
    }

    /// Whether server `server` of pool `pool` passes its checks (`true` without a check).
    #[must_use]
    pub fn is_up(&self, pool: usize, server: usize) -> bool {
        self.server(pool, server)
            .is_none_or(|s| s.up.load(Ordering::Relaxed))
    }

    /// How many times that server came back up (a change ends its passive back-off).
    #[must_use]
    pub fn generation(&self, pool: usize, server: usize) -> u64 {
        self.server(pool, server)
            .map_or(0, |s| s.generation.load(Ordering::Relaxed))
    }

    /// The index of the checked pool named `name` with exactly `servers` (a reloaded
    /// configuration's pool keeps its checks when both are unchanged).
    #[must_use]
    pub fn pool_index(&self, name: &str, servers: &[ServerAddr]) -> Option<usize> {
        self.pools.iter().position(|p| {
            p.check.is_some()
                && p.name == name
                && p.servers.len() == servers.len()
                && p.servers.iter().zip(servers).all(|(s, a)| s.addr == *a)
        })
    }

    fn server(&self, pool: usize, server: usize) -> Option<&ServerHealth> {
        self.pools.get(pool)?.servers.get(server)
    }

    /// Every checked server as `(pool, server address, up)`, for the metrics.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(String, String, bool)> {
        self.pools
            .iter()
            .filter(|p| p.check.is_some())
            .flat_map(|p| {
                p.servers.iter().map(|s| {
                    (
                        p.name.clone(),
                        s.addr.to_string(),
                        s.up.load(Ordering::Relaxed),
                    )
                })
            })
            .collect()
    }

    /// Starts one checker thread per checked server.
    ///
    /// # Errors
    /// A thread could not start.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        for (p, pool) in self.pools.iter().enumerate() {
            let Some(check) = &pool.check else { continue };
            for s in 0..pool.servers.len() {
                let state = Arc::clone(self);
                let check = check.clone();
                std::thread::Builder::new()
                    .name("ringwork-health".into())
                    .spawn(move || state.run(p, s, &check))?;
            }
        }
        Ok(())
    }

    /// A checker thread: checks, counts, waits `interval`, for ever.
    fn run(&self, pool: usize, server: usize, check: &HealthCheck) {
        let pool = &self.pools[pool];
        let state = &pool.servers[server];
        // HTTP checks of https:// pools would need TLS: they connect only.
        let path = if pool.https {
            None
        } else {
            check.path.as_deref()
        };
        let mut streak = Streak::default();
        loop {
            let result = probe(&state.addr, path, check.timeout);
            if let Some(up) = streak.record(result.is_ok(), check.rise, check.fall) {
                if up {
                    state.generation.fetch_add(1, Ordering::Relaxed);
                    state.up.store(true, Ordering::Relaxed);
                    tracing::info!(
                        upstream = %state.addr, pool = %pool.name,
                        "upstream {} of pool {} is up ({} checks passed)",
                        state.addr, pool.name, check.rise
                    );
                } else {
                    state.up.store(false, Ordering::Relaxed);
                    tracing::warn!(
                        upstream = %state.addr, pool = %pool.name,
                        "upstream {} of pool {} is down ({} checks failed: {}); out of rotation",
                        state.addr,
                        pool.name,
                        check.fall,
                        result.as_ref().err().map_or("", String::as_str)
                    );
                }
            }
            // The checker's own period (not a wait for an event).
            std::thread::sleep(check.interval);
        }
    }
}

/// One check of `addr`: a connect within `timeout`, then for `path` a `GET` whose status
/// must be 2xx or 3xx.
fn probe(addr: &ServerAddr, path: Option<&str>, timeout: Duration) -> Result<(), String> {
    let (host, addrs): (String, Vec<std::net::SocketAddr>) = match addr {
        ServerAddr::Addr(a) => (a.to_string(), vec![*a]),
        ServerAddr::Host { name, port } => (
            format!("{name}:{port}"),
            (name.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| format!("resolving: {e}"))?
                .collect(),
        ),
    };
    let mut last = String::from("no address");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connect: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    let Some(path) = path else { return Ok(()) };
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringwork-health-check\r\n\
         Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending: {e}"))?;
    // The status line is enough: "HTTP/1.1 200".
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("reading the status: {e}"))?;
    let status = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| head.starts_with(b"HTTP/1."))
        .ok_or_else(|| "not an HTTP response".to_owned())?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_and_rise_count_results_in_a_row() {
        let mut streak = Streak::default();
        assert!(streak.is_up());
        // fall = 3: two failures, a success, three failures.
        assert_eq!(streak.record(false, 2, 3), None);
        assert_eq!(streak.record(false, 2, 3), None);
        assert_eq!(streak.record(true, 2, 3), None);
        assert_eq!(streak.record(false, 2, 3), None);
        assert_eq!(streak.record(false, 2, 3), None);
        assert_eq!(streak.record(false, 2, 3), Some(false));
        assert!(!streak.is_up());
        assert_eq!(streak.record(false, 2, 3), None);
        // rise = 2: a success, a failure, two successes.
        assert_eq!(streak.record(true, 2, 3), None);
        assert_eq!(streak.record(false, 2, 3), None);
        assert_eq!(streak.record(true, 2, 3), None);
        assert_eq!(streak.record(true, 2, 3), Some(true));
        assert!(streak.is_up());
        // rise/fall of 1 (0 counts as 1): every result decides.
        assert_eq!(streak.record(false, 1, 0), Some(false));
        assert_eq!(streak.record(true, 1, 0), Some(true));
    }
}
