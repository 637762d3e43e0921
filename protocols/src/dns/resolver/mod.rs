//! The DNS stub resolver: a sans-IO machine ([`ResolverMachine`]) and (feature `engine`)
//! the per-core [`Resolver`] that runs it on real sockets.
//!
//! Owns: the system files as text ([`conf`]: `/etc/resolv.conf`, `/etc/hosts`), the
//! resolver's settings ([`ResolverConfig`]), reading replies ([`reply`]), the per-core
//! cache ([`cache`]), the machine ([`machine`]) — search list and ndots, hosts first,
//! random query ids, validated replies, per-server timeouts and rounds, TCP after TC,
//! failover on SERVFAIL/REFUSED/NOTIMP, CNAME chains, negative caching, in-flight
//! de-duplication — and the engine adapter.
//! Does not (sans-IO part): open sockets, read files or clocks. Does not (at all): DNSSEC
//! validation, recursion from the roots, DNS over TLS/HTTPS, connect-by-name.
//! Design and behaviour: docs/dns.md ("The stub resolver").
//! Spec: RFC 1034 §5 (resolvers), RFC 1035 §7, RFC 2181, RFC 2308, RFC 5452 (spoofing
//! resistance: random ids and source ports), RFC 6891 (EDNS0), RFC 7766 (TCP),
//! resolv.conf(5). Tests: `tests.rs` (the machine against a scripted server and a fake
//! clock), `conf.rs`; fuzz target `fuzz/dns_resolver`.

pub mod cache;
pub mod conf;
pub mod error;
pub mod machine;
pub mod reply;

#[cfg(feature = "engine")]
mod engine;
#[cfg(feature = "engine")]
mod names;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use self::cache::CacheLimits;
pub use self::conf::{ConfError, ConfProblem, Hosts, ResolvConf};
#[cfg(feature = "engine")]
pub use self::engine::{IpOrder, Lookup, Resolver};
pub use self::error::{ResolveError, ServerError, ServerErrorKind};
pub use self::machine::{
    ExchangeId, LookupEvent, LookupId, ResolverMachine, ResolverStats, Transmit,
};

use super::proto::{Name, RData, RType, Record};

/// The EDNS payload size the resolver announces (DNS Flag Day 2020: no IP fragmentation).
pub const EDNS_UDP_SIZE: u16 = 1232;

/// How a resolver asks: servers, search list, timeouts, cache bounds, hosts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResolverConfig {
    /// The servers, in order (see `rotate`).
    pub servers: Vec<SocketAddr>,
    /// Domains appended to names with fewer than `ndots` dots (and tried after others).
    pub search: Vec<Name>,
    /// Names with at least this many dots are tried as given first.
    pub ndots: u8,
    /// How long one server is waited for, per exchange.
    pub timeout: Duration,
    /// Rounds over the servers (at least 1).
    pub attempts: u8,
    /// Start each query at the next server instead of the first.
    pub rotate: bool,
    /// Send EDNS0 (payload size [`EDNS_UDP_SIZE`]); a server answering FORMERR to it is
    /// asked again without.
    pub edns: bool,
    /// Ask over TCP only (resolv.conf `options use-vc`).
    pub tcp_only: bool,
    /// The hosts file: A and AAAA lookups of a name it has are answered from it.
    pub hosts: Hosts,
    /// Cache bounds.
    pub cache: CacheLimits,
    /// Lookups (and queries) in flight at most on this core.
    pub max_lookups: usize,
}

impl ResolverConfig {
    /// Asking `servers`, with glibc's defaults otherwise (no search list, ndots 1, a 5 s
    /// timeout, 2 attempts), EDNS on and no hosts.
    #[must_use]
    pub fn with_servers(servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self {
            servers: servers.into_iter().collect(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
            rotate: false,
            edns: true,
            tcp_only: false,
            hosts: Hosts::new(),
            cache: CacheLimits::default(),
            max_lookups: 4096,
        }
    }

    /// From a resolv.conf and a hosts file. EDNS is on whether or not `options edns0` is
    /// given (with the FORMERR fallback above).
    #[must_use]
    pub fn from_files(conf: &ResolvConf, hosts: Hosts) -> Self {
        Self {
            search: conf.search.clone(),
            ndots: conf.ndots,
            timeout: conf.timeout,
            attempts: conf.attempts,
            rotate: conf.rotate,
            tcp_only: conf.use_vc,
            hosts,
            ..Self::with_servers(conf.nameservers.iter().copied())
        }
    }

    /// Sets the per-server timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the rounds over the servers.
    #[must_use]
    pub fn attempts(mut self, attempts: u8) -> Self {
        self.attempts = attempts;
        self
    }

    /// Sets the search list and ndots.
    #[must_use]
    pub fn search(mut self, search: Vec<Name>, ndots: u8) -> Self {
        self.search = search;
        self.ndots = ndots;
        self
    }

    /// Sets the hosts file.
    #[must_use]
    pub fn hosts(mut self, hosts: Hosts) -> Self {
        self.hosts = hosts;
        self
    }
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Source {
    /// The name was an IP address.
    Literal,
    /// The hosts file.
    Hosts,
    /// A `localhost` name missing from the hosts file: the loopback addresses (RFC 6761
    /// §6.3: never asked of a server).
    Localhost,
    /// The cache (the last step of it, for a chain).
    Cache,
    /// This server (the last step of it, for a chain).
    Server(SocketAddr),
}

/// The records a lookup found.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Answer {
    /// The name the records answer for: the name asked after the search list (absolute).
    pub name: Name,
    /// The type asked for.
    pub rtype: RType,
    /// The CNAME records followed from `name`, in order.
    pub aliases: Vec<Record>,
    /// The records of `rtype` (at the end of the chain), TTLs counted down, in the
    /// server's order.
    pub records: Vec<Record>,
    /// Where it came from.
    pub source: Source,
}

impl Answer {
    /// The name the records are at: the end of the CNAME chain, else `name`.
    #[must_use]
    pub fn canonical(&self) -> &Name {
        match self.aliases.last().map(|r| &r.data) {
            Some(RData::Cname(target)) => target,
            _ => &self.name,
        }
    }

    /// The addresses of its A and AAAA records, in order.
    #[must_use]
    pub fn ips(&self) -> Vec<IpAddr> {
        self.records
            .iter()
            .filter_map(|r| match r.data {
                RData::A(a) => Some(IpAddr::V4(a)),
                RData::Aaaa(a) => Some(IpAddr::V6(a)),
                _ => None,
            })
            .collect()
    }

    /// The smallest TTL left of its records and aliases (seconds).
    #[must_use]
    pub fn ttl(&self) -> u32 {
        self.aliases
            .iter()
            .chain(&self.records)
            .map(|r| r.ttl)
            .min()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
