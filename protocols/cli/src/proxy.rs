//! The proxy services of `ringwork serve`: `tcp-proxy` and `socks5`.
//!
//! Owns: their options (`--upstream`, `--idle-timeout`, `--user`, `--allow`, `--deny`),
//! the check that `tcp-proxy` has an upstream (a usage error, exit status 2; which service
//! takes which option is `SERVICE_OPTIONS` in `main.rs`), and building each core's factory.
//! Contract: each core builds its own `TcpProxy` or `Socks5Server` (per-core health and
//! counters); names (`--upstream tcp:host=backend:port=80`, SOCKS5 requests) are resolved
//! at each connect through the core's name resolver, never once at start-up.
//! `--allow` and `--deny` rules apply in command-line order, interleaved
//! ([`ProxyArgs::order_rules`] reads the order from clap's indices).

use std::time::Duration;

use clap::{ArgMatches, Args};
use ringwork::DriverConfig;
use ringwork::endpoint::ClientEndpoint;
use ringwork_protocols::Endpoint;
use ringwork_protocols::destination::{DestinationPolicy, Rule, canonical_ip};
use ringwork_protocols::proxy::{RelayConfig, SplicePolicy, TcpProxy, TcpProxyConfig};
use ringwork_protocols::socks5::{Auth, Socks5Config, Socks5Server};

/// Options of the proxy services.
#[derive(Clone, Debug, Args)]
pub struct ProxyArgs {
    /// tcp-proxy: where to forward (repeatable; round-robin, failed ones skipped for a
    /// backoff of 1 s doubling to 30 s): a client endpoint string —
    /// tcp:host=H:port=P[:timeout=S][:bindAddress=IP],
    /// tls:host=H:port=P[:sni=NAME][:ca=FILE][:verify=no], unix:path=P[:timeout=S] — or
    /// HOST:PORT (the same as tcp:host=HOST:port=PORT). A host name is resolved at every
    /// connection (Happy Eyeballs over its IPv6 and IPv4 addresses), not once at start-up.
    #[arg(long, value_name = "ENDPOINT", value_parser = parse_upstream)]
    pub upstream: Vec<ClientEndpoint>,
    /// tcp-proxy, socks5: close a connection pair after this long without a byte either
    /// way (`300s`, `5m`, `1h`, `250ms`; `0` never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// tcp-proxy, socks5: when to splice a direction (move its bytes inside the kernel,
    /// Linux): `off`, `always`, or once it carried this many bytes in a row of reads of
    /// 4 KiB or more (a bulk transfer; `64k` by default, `1m`, `1000`).
    #[arg(long, value_name = "off|always|BYTES", value_parser = parse_splice)]
    pub splice: Option<SplicePolicy>,
    /// tcp-proxy, socks5: capacity of each splice pipe (`64k` by default, `256k`, `1m`; at
    /// most /proc/sys/fs/pipe-max-size): the most a spliced direction moves per system
    /// call and holds in the kernel. Larger pipes cost fewer calls per MB; see
    /// docs/proxy.md for the memory they may pin.
    #[arg(long, value_name = "BYTES", value_parser = parse_pipe_size)]
    pub splice_pipe: Option<usize>,
    /// socks5: require username/password authentication (RFC 1929) with this user
    /// (repeatable). Without any, no authentication is asked.
    #[arg(long, value_name = "NAME:PASS", value_parser = parse_user)]
    pub user: Vec<(String, String)>,
    /// tcp-proxy: send a PROXY protocol header (v1 text or v2 binary) to each upstream
    /// first, naming the client (HAProxy's `send-proxy`).
    #[arg(long, value_name = "v1|v2", value_parser = parse_proxy_version)]
    pub send_proxy: Option<ringwork_protocols::proxy_protocol::Version>,
    /// socks5: let clients reach destinations matching RULE (repeatable). RULE is an
    /// address or network with an optional port or range (127.0.0.1:8080, 10.0.0.0/8,
    /// fc00::/7; an IPv6 address with a port goes in brackets), a host name or *.domain
    /// (*.internal:443), a class (loopback,
    /// private, link-local, cgnat, unspecified, multicast, broadcast, reserved) or *
    /// (*:25). --allow and --deny rules are tried in command-line order, the first match
    /// decides; unmatched destinations are allowed unless loopback, private or another
    /// special address. A name is checked, and so is every address it resolves to.
    #[arg(long, value_name = "RULE", value_parser = parse_allow)]
    pub allow: Vec<Rule>,
    /// socks5: refuse destinations matching RULE (repeatable; see --allow). A last
    /// `--deny '*'` makes the --allow rules before it an allow-list.
    #[arg(long, value_name = "RULE", value_parser = parse_deny)]
    pub deny: Vec<Rule>,
    /// `--allow` and `--deny` merged in command-line order ([`ProxyArgs::order_rules`]).
    #[arg(skip)]
    pub rules: Vec<Rule>,
}

/// The services the options belong to.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ProxyKind {
    /// `serve tcp-proxy`.
    Tcp,
    /// `serve socks5`.
    Socks5,
}

/// What every core needs to build its proxy factory (`Send`, shared by the cores).
#[derive(Clone, Debug)]
pub enum ProxyPlan {
    /// `serve tcp-proxy`.
    Tcp(TcpProxyConfig),
    /// `serve socks5`.
    Socks5(Socks5Config),
}

impl ProxyArgs {
    /// Checks what the service needs (options given to a service that does not take them
    /// were refused before); the message is a usage error.
    pub fn check(&self, kind: Option<ProxyKind>) -> Result<(), String> {
        match kind {
            Some(ProxyKind::Tcp) if self.upstream.is_empty() => {
                Err("tcp-proxy needs at least one --upstream ENDPOINT (tcp:host=H:port=P, or HOST:PORT)".into())
            }
            _ => Ok(()),
        }
    }

    /// Merges `--allow` and `--deny` into [`ProxyArgs::rules`] in the order they were
    /// given on the command line (`serve`: the matches of the `serve` subcommand).
    pub fn order_rules(&mut self, serve: &ArgMatches) {
        let mut ordered: Vec<(usize, Rule)> =
            Vec::with_capacity(self.allow.len() + self.deny.len());
        for (id, rules) in [("allow", &self.allow), ("deny", &self.deny)] {
            if let Some(indices) = serve.indices_of(id) {
                ordered.extend(indices.zip(rules.iter().cloned()));
            }
        }
        ordered.sort_by_key(|(index, _)| *index);
        self.rules = ordered.into_iter().map(|(_, rule)| rule).collect();
    }

    /// Logs what `socks5` lets clients reach, and warns loudly when it listens on an
    /// interface other hosts can reach (not loopback) without `--user`.
    pub fn announce(&self, kind: ProxyKind, endpoints: &[Endpoint]) {
        if kind != ProxyKind::Socks5 {
            return;
        }
        let rules: Vec<String> = self.rules.iter().map(ToString::to_string).collect();
        let rules = match rules.is_empty() {
            true => String::new(),
            false => format!("{}; then ", rules.join(", ")),
        };
        tracing::info!(
            "socks5 destinations: {rules}loopback, private, link-local and other special \
             addresses denied, the rest allowed"
        );
        if !self.user.is_empty() {
            return;
        }
        for endpoint in endpoints.iter().filter(|e| reachable_from_outside(e)) {
            tracing::warn!(
                "socks5 on {endpoint} has no --user: anyone who can reach this interface may \
                 relay through it ({rules}loopback and private destinations denied). Listen \
                 on tcp:PORT:interface=127.0.0.1, or require --user NAME:PASS"
            );
        }
    }

    /// `config` with the splice pipe capacity of `--splice-pipe`, if given.
    pub fn driver_config(&self, config: DriverConfig) -> DriverConfig {
        DriverConfig {
            splice_pipe_size: self.splice_pipe.unwrap_or(config.splice_pipe_size),
            ..config
        }
    }

    /// The plan for `kind` (after [`ProxyArgs::check`]).
    ///
    /// # Errors
    /// A `tls:` upstream whose CA file (or the system's store) cannot be loaded.
    pub fn plan(&self, kind: ProxyKind) -> Result<ProxyPlan, String> {
        let mut relay = RelayConfig::default();
        if let Some(idle) = self.idle_timeout {
            relay.idle_timeout = (!idle.is_zero()).then_some(idle);
        }
        if let Some(splice) = self.splice {
            relay.splice = splice;
        }
        Ok(match kind {
            ProxyKind::Tcp => {
                let mut connectors = Vec::with_capacity(self.upstream.len());
                for upstream in &self.upstream {
                    let connector = upstream
                        .connector()
                        .map_err(|e| format!("--upstream {upstream}: {e}"))?;
                    connectors.push(connector);
                }
                let mut config = TcpProxyConfig::with_endpoints(connectors);
                config.relay = relay;
                config.send_proxy = self.send_proxy;
                ProxyPlan::Tcp(config)
            }
            ProxyKind::Socks5 => {
                let auth = if self.user.is_empty() {
                    Auth::None
                } else {
                    Auth::UserPass(
                        self.user
                            .iter()
                            .map(|(u, p)| (u.clone().into_bytes(), p.clone().into_bytes()))
                            .collect(),
                    )
                };
                let config = Socks5Config {
                    auth,
                    relay,
                    policy: DestinationPolicy::new(self.rules.clone()),
                    ..Socks5Config::default()
                };
                ProxyPlan::Socks5(config)
            }
        })
    }
}

impl ProxyPlan {
    /// The plan with the relays' write-stall timeout set (`--write-timeout`).
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: Option<Duration>) -> Self {
        match &mut self {
            ProxyPlan::Tcp(config) => config.relay.write_timeout = timeout,
            ProxyPlan::Socks5(config) => config.relay.write_timeout = timeout,
        }
        self
    }

    /// This core's factory.
    pub fn tcp_proxy(&self) -> Option<TcpProxy> {
        match self {
            ProxyPlan::Tcp(config) => Some(TcpProxy::new(config.clone())),
            ProxyPlan::Socks5(..) => None,
        }
    }

    /// This core's factory.
    pub fn socks5(&self) -> Option<Socks5Server> {
        match self {
            ProxyPlan::Socks5(config) => Some(Socks5Server::new(config.clone())),
            ProxyPlan::Tcp(_) => None,
        }
    }
}

/// `off`, `always`, or a byte count with an optional `k`/`m`/`g` suffix (powers of 1024).
fn parse_splice(text: &str) -> Result<SplicePolicy, String> {
    let lower = text.trim().to_ascii_lowercase();
    match lower.as_str() {
        "off" | "never" => return Ok(SplicePolicy::Off),
        "always" => return Ok(SplicePolicy::Always),
        _ => {}
    }
    let (digits, shift) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 10),
        Some(b'm') => (&lower[..lower.len() - 1], 20),
        Some(b'g') => (&lower[..lower.len() - 1], 30),
        _ => (lower.as_str(), 0),
    };
    let bad = || format!("{text:?}: expected off, always or a byte count such as 256k");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift)
        .map(SplicePolicy::Bulk)
        .ok_or_else(bad)
}

/// A pipe capacity: a byte count with an optional `k`/`m` suffix, from 4 KiB (one page)
/// to 1 GiB; the kernel rounds it up to a power of two pages.
fn parse_pipe_size(text: &str) -> Result<usize, String> {
    match parse_splice(text) {
        Ok(SplicePolicy::Bulk(n)) if (4096..=1 << 30).contains(&n) => {
            usize::try_from(n).map_err(|e| format!("{text:?}: {e}"))
        }
        _ => Err(format!(
            "{text:?}: expected a size from 4k to 1g, such as 256k"
        )),
    }
}

fn parse_proxy_version(text: &str) -> Result<ringwork_protocols::proxy_protocol::Version, String> {
    use ringwork_protocols::proxy_protocol::Version;
    match text {
        "v1" | "1" => Ok(Version::V1),
        "v2" | "2" => Ok(Version::V2),
        _ => Err(format!("{text:?}: expected v1 or v2")),
    }
}

/// A client endpoint string, or `HOST:PORT` (`tcp:host=HOST:port=PORT`); names are not
/// resolved here but at each connection.
fn parse_upstream(text: &str) -> Result<ClientEndpoint, String> {
    ClientEndpoint::parse_or_host_port(text).map_err(|e| {
        format!("{text:?}: {e} (an upstream is HOST:PORT or an endpoint such as tcp:host=H:port=P)")
    })
}

/// `300s`, `5m`, `1h`, `250ms`, or plain seconds (`300`, `2.5`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 300s or 5m)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

/// Whether other hosts may connect to `endpoint`: an IP listener not on loopback.
fn reachable_from_outside(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Tcp { addr } | Endpoint::Tls { addr, .. } => {
            !canonical_ip(addr.ip()).is_loopback()
        }
        Endpoint::Haproxy(inner) => reachable_from_outside(inner),
        _ => false,
    }
}

/// An `--allow` rule (see [`ringwork_protocols::destination::Rule`]).
fn parse_allow(text: &str) -> Result<Rule, String> {
    Rule::allow(text).map_err(|e| e.to_string())
}

/// A `--deny` rule.
fn parse_deny(text: &str) -> Result<Rule, String> {
    Rule::deny(text).map_err(|e| e.to_string())
}

/// `NAME:PASS` (each 1 to 255 bytes, RFC 1929).
fn parse_user(text: &str) -> Result<(String, String), String> {
    let (name, pass) = text
        .split_once(':')
        .ok_or_else(|| "expected NAME:PASS".to_owned())?;
    for (what, value) in [("name", name), ("password", pass)] {
        if value.is_empty() || value.len() > 255 {
            return Err(format!("the {what} must be 1 to 255 bytes"));
        }
    }
    Ok((name.to_owned(), pass.to_owned()))
}

#[cfg(test)]
mod splice_option_tests {
    use super::*;

    #[test]
    fn splice_option_values() {
        assert_eq!(parse_splice("off"), Ok(SplicePolicy::Off));
        assert_eq!(parse_splice("always"), Ok(SplicePolicy::Always));
        assert_eq!(parse_splice("256k"), Ok(SplicePolicy::Bulk(256 * 1024)));
        assert_eq!(parse_splice("1M"), Ok(SplicePolicy::Bulk(1 << 20)));
        assert_eq!(parse_splice("1000"), Ok(SplicePolicy::Bulk(1000)));
        for bad in ["", "k", "-1", "1x", "99999999999999999999g"] {
            assert!(parse_splice(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn splice_pipe_option_values() {
        assert_eq!(parse_pipe_size("64k"), Ok(64 * 1024));
        assert_eq!(parse_pipe_size("1m"), Ok(1 << 20));
        assert_eq!(parse_pipe_size("4096"), Ok(4096));
        for bad in ["", "off", "always", "4095", "2g", "1x"] {
            assert!(parse_pipe_size(bad).is_err(), "{bad:?} accepted");
        }
    }
}

thread_local! {
    /// This core's reverse proxies (one per listener), for a reload of their routes.
    static CORE_PROXIES: std::cell::RefCell<Vec<ringwork_protocols::http::reverse_proxy::ReverseProxy>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Keeps a handle of `proxy` (a clone shares its tables) on this core for
/// [`reload_routes`].
pub fn register(proxy: &ringwork_protocols::http::reverse_proxy::ReverseProxy) {
    CORE_PROXIES.with(|proxies| proxies.borrow_mut().push(proxy.clone()));
}

/// The per-client limits a reload of the proxy's file may change: those the file set (a
/// command-line flag wins over the file, so its limit is not here).
#[derive(Clone, Debug, Default)]
pub struct FileLimits {
    /// `[limits] requests_per_second`/`burst`, when the file set them.
    pub requests: Option<ringwork_protocols::limits::SharedRateLimiter>,
    /// `[limits] connections_per_ip`, when the file set it.
    pub connections: Option<ringwork_protocols::limits::ConnectionCap>,
}

impl FileLimits {
    /// Applies the reloaded file's `[limits]`: new values for the limits in force; a
    /// limit turned on or off needs a restart (the servers were built with or without it),
    /// said in a WARN line.
    fn reload(&self, limits: &ringwork_protocols::http::reverse_proxy::ClientLimits) {
        match (&self.requests, limits.requests) {
            (Some(limiter), Some(limit)) => limiter.set_limit(limit),
            (None, None) => {}
            (_, new) => tracing::warn!(
                signal = "SIGHUP",
                "[limits] requests_per_second was {} and is now {}: turning it on or off \
                 needs a restart (a --rate-limit flag also overrides the file)",
                if self.requests.is_some() {
                    "set"
                } else {
                    "unset"
                },
                if new.is_some() { "set" } else { "unset" },
            ),
        }
        match (&self.connections, limits.connections_per_ip) {
            (Some(cap), Some(max)) => cap.set_max(max),
            (None, None) => {}
            (_, new) => tracing::warn!(
                signal = "SIGHUP",
                "[limits] connections_per_ip was {} and is now {}: turning it on or off \
                 needs a restart (a --max-conns-per-ip flag also overrides the file)",
                if self.connections.is_some() {
                    "set"
                } else {
                    "unset"
                },
                if new.is_some() { "set" } else { "unset" },
            ),
        }
    }
}

/// SIGHUP for `http-proxy`: reads the configuration file `path` again and, if it loads,
/// gives its routes and upstreams to every core's proxies (requests that start afterwards
/// use them; requests under way and connections are not touched) and its `[limits]` values
/// to the limits the file set (`limits`); logged once every core has the routes. A file
/// that does not load is refused with an ERROR line and the old routes keep serving. Runs
/// on core 0 (a file read: a reload is rare).
pub fn reload_routes(reactor: &mut ringwork::Reactor, path: &std::path::Path, limits: &FileLimits) {
    let config = match ringwork_protocols::http::reverse_proxy::ProxyConfig::load(path) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(
                signal = "SIGHUP",
                "cannot reload {}: {error}; still serving the old routes",
                path.display()
            );
            return;
        }
    };
    limits.reload(&config.limits);
    let Some(cores) = reactor.cores() else {
        return;
    };
    let summary = format!(
        "routes and upstreams reloaded from {} ({} routes, {} upstreams)",
        path.display(),
        config.routes.routes().len(),
        config.upstreams.len()
    );
    let config = std::sync::Arc::new(config);
    let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(cores.len()));
    cores.broadcast(move |_reactor| {
        CORE_PROXIES.with(|proxies| {
            for proxy in proxies.borrow().iter() {
                proxy.reload(&config);
            }
        });
        if left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            tracing::info!(signal = "SIGHUP", "{summary}");
        }
    });
}
