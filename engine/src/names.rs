//! [`NameResolver`]: the per-core hook that turns host names into addresses.
//!
//! Owns: the trait (one lookup per address family, so Happy Eyeballs can start on the
//! first answer), [`AddressFamily`], the default [`SystemResolver`] (the system's
//! `getaddrinfo` on the core's [`ThreadPool`]), and [`parse_ip_literal`], which keeps
//! literal addresses away from any resolver.
//! Contract: a resolver lives on one core (`!Send`, shared as `Rc<dyn NameResolver>`);
//! [`NameResolver::lookup`] never blocks: it returns a future the core awaits, and
//! dropping the future cancels the lookup. Answers are the addresses of one family, in the
//! order to try them (the resolver sorts; RFC 6724 for getaddrinfo), or a [`LookupError`]
//! that names the host and says why. Each reactor has one: the default, or one installed
//! with [`Reactor::set_name_resolver`](crate::Reactor::set_name_resolver) or built per core
//! by [`RuntimeBuilder::name_resolver`](crate::RuntimeBuilder::name_resolver).
//! Does not: connect (see `happy_eyeballs.rs`), cache (the system resolver caches as the
//! system is set up to), or see literal IP addresses: callers parse those first.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use crate::resolve::{LookupError, LookupPool};
use crate::threads::ThreadPool;

/// The future of one lookup: the addresses of one family, or why there are none.
pub type LookupFuture = Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, LookupError>>>>;

/// An IP address family: which records a lookup asks for (AAAA or A).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum AddressFamily {
    /// IPv6 (AAAA records).
    V6,
    /// IPv4 (A records).
    V4,
}

impl AddressFamily {
    /// The family of `ip` (an IPv4-mapped IPv6 address is IPv6).
    #[must_use]
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddressFamily::V4,
            IpAddr::V6(_) => AddressFamily::V6,
        }
    }

    /// Whether `ip` is of this family.
    #[must_use]
    pub fn contains(self, ip: IpAddr) -> bool {
        Self::of(ip) == self
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressFamily::V6 => "IPv6",
            AddressFamily::V4 => "IPv4",
        })
    }
}

/// Turns host names into addresses for one core: the hook behind
/// [`LocalHandle::connect_host`](crate::LocalHandle::connect_host) and every connect by
/// name (Twisted's `IHostnameResolver`). The default is [`SystemResolver`]; a DNS stub
/// resolver, a fixed table or a test double implements this trait and is installed per
/// reactor ([`Reactor::set_name_resolver`](crate::Reactor::set_name_resolver)) or per
/// runtime core ([`RuntimeBuilder::name_resolver`](crate::RuntimeBuilder::name_resolver)).
///
/// # Contract
/// - `host` is a name, never a literal IP address (those are parsed before, see
///   [`parse_ip_literal`]); it is as the user gave it (a trailing dot included).
/// - The future yields the addresses of `family` only, in the order to try them; an empty
///   list is an error ([`LookupError::NoAddresses`]). Errors name `host` and say why.
/// - The future is polled on this core; dropping it cancels the lookup.
/// - Both families of one name are asked for at once (AAAA first), so answer each as soon
///   as it is known: Happy Eyeballs starts connecting on the first.
///
/// # Examples
/// A resolver that answers from a fixed table:
/// ```
/// use std::collections::HashMap;
/// use std::net::IpAddr;
///
/// use ringwork::names::{AddressFamily, LookupFuture, NameResolver};
/// use ringwork::resolve::LookupError;
///
/// struct Table(HashMap<String, Vec<IpAddr>>);
///
/// impl NameResolver for Table {
///     fn lookup(&self, host: &str, family: AddressFamily) -> LookupFuture {
///         let found: Vec<IpAddr> = self.0.get(host).into_iter().flatten()
///             .copied().filter(|ip| family.contains(*ip)).collect();
///         let host = host.to_owned();
///         Box::pin(async move {
///             if found.is_empty() { Err(LookupError::NoAddresses { host }) } else { Ok(found) }
///         })
///     }
/// }
/// ```
pub trait NameResolver {
    /// Looks up the `family` addresses of `host`.
    fn lookup(&self, host: &str, family: AddressFamily) -> LookupFuture;

    /// Looks up every address of `host`: both families at once, the IPv6 ones first. One
    /// family failing is not an error; both failing is (the IPv4 lookup's error, or the
    /// IPv6 one's when IPv4 merely has no address). For callers that need every address
    /// before they connect (a SOCKS server checks each against its policy).
    fn lookup_all(&self, host: &str) -> LookupFuture {
        let v6 = self.lookup(host, AddressFamily::V6);
        let v4 = self.lookup(host, AddressFamily::V4);
        Box::pin(async move {
            let (v6, v4) = (v6.await, v4.await);
            match (v6, v4) {
                (Ok(mut a), Ok(b)) => {
                    a.extend(b);
                    Ok(a)
                }
                (Ok(a), Err(_)) | (Err(_), Ok(a)) => Ok(a),
                (Err(v6), Err(LookupError::NoAddresses { .. })) => Err(v6),
                (Err(_), Err(v4)) => Err(v4),
            }
        })
    }
}

/// The default [`NameResolver`]: the system's resolver (`getaddrinfo`: `/etc/hosts`, DNS,
/// nsswitch) on a [`ThreadPool`], so a slow lookup never blocks a core. Each lookup is one
/// job; `getaddrinfo` is asked for every family and the answer filtered, so the two
/// lookups of one connect by name are two jobs.
#[derive(Clone, Debug)]
pub struct SystemResolver {
    pool: LookupPool,
}

impl SystemResolver {
    /// Lookups as jobs of `pool` (a runtime's or reactor's [`ThreadPool`]).
    #[must_use]
    pub fn new(pool: ThreadPool) -> Self {
        Self {
            pool: LookupPool::with_pool(pool),
        }
    }
}

impl NameResolver for SystemResolver {
    fn lookup(&self, host: &str, family: AddressFamily) -> LookupFuture {
        let queued = self.pool.lookup(host, 0);
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = queued?.await.map_err(|error| match error {
                // A panicking worker does not know the host; say it here.
                LookupError::Failed { host: h, reason } if h.is_empty() => LookupError::Failed {
                    host: host.clone(),
                    reason,
                },
                other => other,
            })?;
            let mut found: Vec<IpAddr> = Vec::with_capacity(addrs.len());
            for ip in addrs.iter().map(SocketAddr::ip) {
                if family.contains(ip) && !found.contains(&ip) {
                    found.push(ip);
                }
            }
            if found.is_empty() {
                Err(LookupError::NoAddresses { host })
            } else {
                Ok(found)
            }
        })
    }
}

/// The IP address `host` spells, if it is a literal: `127.0.0.1`, `::1`, or `[::1]` (as in
/// URLs). Such a host is connected to as it is, never looked up.
#[must_use]
pub fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_parsed_and_names_are_not() {
        assert_eq!(
            parse_ip_literal("127.0.0.1"),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(parse_ip_literal("::1"), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip_literal("[::1]"), Some("::1".parse().unwrap()));
        for name in [
            "localhost",
            "example.com",
            "[localhost]",
            "1.2.3",
            "",
            "[::1",
        ] {
            assert_eq!(parse_ip_literal(name), None, "{name}");
        }
    }

    #[test]
    fn families() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert!(AddressFamily::V4.contains(v4) && !AddressFamily::V4.contains(v6));
        assert_eq!(AddressFamily::of(v6), AddressFamily::V6);
        assert_eq!(AddressFamily::V6.to_string(), "IPv6");
    }
}
