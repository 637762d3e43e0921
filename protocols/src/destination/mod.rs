//! Destination policy (sans-IO): which hosts and ports a proxy may connect to on a client's
//! behalf, so that a proxy open to clients cannot be turned on the machine's own services
//! (127.0.0.1), the networks behind it (10/8, fc00::/7, ...) or cloud metadata endpoints
//! (169.254.169.254).
//!
//! Owns: [`DestinationPolicy`] (ordered [`Rule`]s, then a default), [`Verdict`]; `host.rs`
//! ([`Host`], [`canonical_ip`], [`classify`], [`AddressClass`]); `rule.rs` ([`Rule`] and
//! its text form, [`RuleError`]).
//! Contract:
//! 1. Canonicalise before checking: [`Host::parse`] turns a name in a numeric form (`0`,
//!    `2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1`, `[::1]`) into the address it
//!    denotes; IPv4-mapped (`::ffff:127.0.0.1`) and IPv4-compatible IPv6 addresses are
//!    checked (and should be connected to) as their IPv4 address ([`canonical_ip`]).
//! 2. A name is checked twice: [`DestinationPolicy::check_name`] before it is resolved (a
//!    name rule may already decide, sparing the lookup), then
//!    [`DestinationPolicy::check`] for *every* address it resolves to, before connecting
//!    to that address: a name that resolves to 127.0.0.1 is loopback.
//! 3. Rules are tried in order and the first that matches decides. When none matches, the
//!    default decides: an address of an [`AddressClass`] (loopback, unspecified,
//!    link-local, private, cgnat, multicast, broadcast, reserved) is denied, any other
//!    allowed. So `allow 127.0.0.1:8080` opens one local service, and a final `deny *`
//!    turns the rules into an allow-list.
//!
//! Does not: resolve names or open sockets (the caller does both, and must check each
//! address it connects to). Used by the SOCKS5 server (`Socks5Config::policy`). The TCP
//! proxy and the reverse proxy connect only to upstreams from their own configuration, not
//! to destinations clients name, so they check nothing; a CONNECT-like service that takes
//! its destination from a client must check it here.
//! Tests: `tests.rs` (every canonical form, allowed and denied).

mod host;
mod rule;

use std::fmt;
use std::net::IpAddr;

pub use host::{AddressClass, Host, canonical_ip, classify, inet_aton, numeric_host};
pub use rule::{Action, Rule, RuleError};

/// Which destinations a proxy may reach: ordered rules, then a default (see the module
/// docs). The [`Default`] has no rules and denies every [`AddressClass`].
///
/// 1. [`Host::parse`] the client's host.
/// 2. An address: [`DestinationPolicy::check`] it. A name: [`DestinationPolicy::check_name`];
///    unless that denies, resolve it and [`DestinationPolicy::check`] each address with the
///    name; connect only to allowed ones.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct DestinationPolicy {
    rules: Vec<Rule>,
    /// The default allows every address (no class is denied).
    allow_all: bool,
}

impl DestinationPolicy {
    /// `rules` in order, then the default (deny every [`AddressClass`], allow the rest).
    #[must_use]
    pub fn new(rules: Vec<Rule>) -> Self {
        Self {
            rules,
            allow_all: false,
        }
    }

    /// No rules, and a default that allows everything, loopback and private networks
    /// included: an open proxy for anyone who can reach it.
    #[must_use]
    pub fn dangerous_allow_all() -> Self {
        Self {
            rules: Vec::new(),
            allow_all: true,
        }
    }

    /// The rules, in the order they are tried.
    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The verdict on `name` (a [`Host::Name`]) and `port` before resolving it, when it
    /// does not depend on the addresses (a name rule, `*` or the port decides); `None` when
    /// it does: resolve, then [`DestinationPolicy::check`] each address. A name in a
    /// numeric form is checked as its address.
    #[must_use]
    pub fn check_name(&self, name: &str, port: u16) -> Option<Verdict<'_>> {
        let name = match Host::parse(name) {
            Host::Addr(ip) => return Some(self.check(None, ip, port)),
            Host::Name(name) => name,
        };
        for rule in &self.rules {
            match rule.matches_name_only(&name, port) {
                Some(true) => return Some(Verdict::rule(rule)),
                Some(false) => {}
                None => return None,
            }
        }
        self.allow_all.then_some(Verdict {
            allowed: true,
            why: Why::Default,
        })
    }

    /// The verdict on connecting to `addr` (canonicalised here) on `port`; `name` is the
    /// host name the client asked for, if it gave one (a [`Host::Name`]: lowercase,
    /// without a trailing dot), so name rules apply to the addresses it resolved to.
    #[must_use]
    pub fn check(&self, name: Option<&str>, addr: IpAddr, port: u16) -> Verdict<'_> {
        let addr = canonical_ip(addr);
        if let Some(rule) = self.rules.iter().find(|r| r.matches(name, addr, port)) {
            return Verdict::rule(rule);
        }
        match classify(addr) {
            Some(class) if !self.allow_all => Verdict {
                allowed: false,
                why: Why::Class(class),
            },
            _ => Verdict {
                allowed: true,
                why: Why::Default,
            },
        }
    }
}

/// Whether a destination may be reached, and why.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Verdict<'a> {
    /// It may.
    pub allowed: bool,
    /// Why.
    pub why: Why<'a>,
}

impl<'a> Verdict<'a> {
    fn rule(rule: &'a Rule) -> Self {
        Self {
            allowed: rule.action() == Action::Allow,
            why: Why::Rule(rule),
        }
    }
}

impl fmt::Display for Verdict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.allowed { "allowed" } else { "denied" };
        match self.why {
            Why::Rule(rule) => write!(f, "{what} by rule \"{rule}\""),
            Why::Class(class) => write!(f, "{what}: {class} address (default policy)"),
            Why::Default => write!(f, "{what} by default"),
        }
    }
}

/// What decided a [`Verdict`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Why<'a> {
    /// The first rule that matched.
    Rule(&'a Rule),
    /// No rule matched, and the default denies this class of address.
    Class(AddressClass),
    /// No rule matched, and the default allows the address.
    Default,
}

#[cfg(test)]
mod tests;
