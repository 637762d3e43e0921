//! The stub resolver as the engine's [`NameResolver`]: every connect by name (Happy
//! Eyeballs, endpoints, the proxies, the HTTP client) can resolve through it instead of the
//! system's `getaddrinfo` on a thread pool.
//!
//! Owns: the mapping of [`Resolver::lookup`] (A or AAAA) to [`NameResolver::lookup`] and of
//! [`ResolveError`] to [`LookupError`].
//! Contract: one lookup per family, started at once (Happy Eyeballs asks both and starts on
//! the first answer); the addresses in the server's order; no records of the family is
//! `NoAddresses`, every other failure `Failed` with the resolver's reason (NXDOMAIN, timed
//! out and from which servers, the servers' failures). Dropping the future drops the
//! caller's interest (the query finishes and its answer is cached).
//! Install it per runtime core with
//! `Runtime::builder().name_resolver(|reactor| Rc::new(Resolver::new(reactor.handle(), config.clone())?))`
//! (see [`Resolver::name_resolver_factory`]).

use std::net::IpAddr;
use std::rc::Rc;

use ringwork::Reactor;
use ringwork::names::{AddressFamily, LookupFuture, NameResolver, SystemResolver};
use ringwork::resolve::LookupError;

use super::{ResolveError, Resolver, ResolverConfig};
use crate::dns::proto::RType;

impl NameResolver for Resolver {
    fn lookup(&self, host: &str, family: AddressFamily) -> LookupFuture {
        let rtype = match family {
            AddressFamily::V6 => RType::AAAA,
            AddressFamily::V4 => RType::A,
        };
        let lookup = Resolver::lookup(self, host, rtype);
        let host = host.to_owned();
        Box::pin(async move {
            let ips: Vec<IpAddr> = match lookup.await {
                Ok(answer) => answer.ips(),
                Err(error) => return Err(lookup_error(host, error)),
            };
            if ips.is_empty() {
                Err(LookupError::NoAddresses { host })
            } else {
                Ok(ips)
            }
        })
    }
}

/// The engine's form of a resolver error.
fn lookup_error(host: String, error: ResolveError) -> LookupError {
    match error {
        ResolveError::NoRecords { .. } => LookupError::NoAddresses { host },
        ResolveError::TooManyLookups { limit } => LookupError::Busy { limit },
        ResolveError::Shutdown => LookupError::Stopped,
        other => LookupError::Failed {
            host,
            reason: other.to_string(),
        },
    }
}

impl Resolver {
    /// A factory for [`RuntimeBuilder::name_resolver`](ringwork::RuntimeBuilder::name_resolver):
    /// each core gets its own stub resolver with `config`; a core where it cannot be made
    /// (it never fails today: the configuration is already read) falls back to the system
    /// resolver, with a warning.
    pub fn name_resolver_factory(
        config: ResolverConfig,
    ) -> impl Fn(&mut Reactor) -> Rc<dyn NameResolver> + Send + Sync + 'static {
        move |reactor: &mut Reactor| match Resolver::new(reactor.handle(), config.clone()) {
            Ok(resolver) => Rc::new(resolver) as Rc<dyn NameResolver>,
            Err(error) => {
                tracing::warn!(%error, "the DNS resolver could not start; using the system resolver");
                Rc::new(SystemResolver::new(reactor.thread_pool().clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_engines_kinds() {
        let host = || "db.internal".to_string();
        let none = ResolveError::NoRecords {
            name: host(),
            rtype: RType::AAAA,
        };
        assert_eq!(
            lookup_error(host(), none),
            LookupError::NoAddresses { host: host() }
        );
        let nx = lookup_error(host(), ResolveError::NxDomain { name: host() });
        assert!(
            matches!(&nx, LookupError::Failed { host, reason } if host == "db.internal" && reason.contains("NXDOMAIN")),
            "{nx:?}"
        );
        assert_eq!(
            lookup_error(host(), ResolveError::TooManyLookups { limit: 4 }),
            LookupError::Busy { limit: 4 }
        );
        assert_eq!(
            lookup_error(host(), ResolveError::Shutdown),
            LookupError::Stopped
        );
    }
}
