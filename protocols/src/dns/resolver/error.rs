//! [`ResolveError`]: why a lookup gave no records; [`ServerError`]: what one server did.

use std::fmt;
use std::net::SocketAddr;

use super::super::proto::RType;
use super::super::proto::message::rcode;

/// Why a lookup gave no records. The Display text is lowercase and unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name does not exist (NXDOMAIN, for every name the search list made of it).
    #[error("{name}: no such name (NXDOMAIN)")]
    NxDomain {
        /// The name as asked.
        name: String,
    },
    /// The name exists without records of that type (NODATA).
    #[error("{name}: no {} records", .rtype.name())]
    NoRecords {
        /// The name as asked.
        name: String,
        /// The type asked for.
        rtype: RType,
    },
    /// No server answered in time, in any round.
    #[error("{name}: no answer from {} (timed out)", list(.servers))]
    TimedOut {
        /// The name as asked.
        name: String,
        /// The servers asked, in the order first asked.
        servers: Vec<SocketAddr>,
    },
    /// The servers failed (SERVFAIL, REFUSED, NOTIMP, unreachable, bad answers), or some
    /// failed and the others timed out.
    #[error("{name}: the servers failed: {}", list(.failures))]
    ServerFailure {
        /// The name as asked.
        name: String,
        /// What each exchange came to, in order (at most one per server and round).
        failures: Vec<ServerError>,
    },
    /// The name cannot be asked for (an empty label, over 255 bytes, ...).
    #[error("{name:?}: not a valid name: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The CNAME chain is longer than the resolver follows, or loops.
    #[error("{name}: CNAME chain longer than {limit} or looping")]
    AliasChain {
        /// The name as asked.
        name: String,
        /// Links followed at most.
        limit: usize,
    },
    /// Too many lookups are in flight on this core.
    #[error("too many lookups in flight (limit {limit})")]
    TooManyLookups {
        /// The limit ([`ResolverConfig::max_lookups`](super::ResolverConfig::max_lookups)).
        limit: usize,
    },
    /// The configuration could not be read or is unusable.
    #[error("resolver configuration: {0}")]
    Config(String),
    /// The resolver (or its core) went away before the answer.
    #[error("the resolver was shut down")]
    Shutdown,
}

/// What one exchange with one server came to, when it was not an answer.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ServerError {
    /// The server.
    pub server: SocketAddr,
    /// What happened.
    pub kind: ServerErrorKind,
}

/// What went wrong with one server.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum ServerErrorKind {
    /// No acceptable answer within the timeout.
    TimedOut,
    /// An answer with this response code (SERVFAIL, REFUSED, NOTIMP, FORMERR, ...).
    Rcode(u16),
    /// It could not be reached (no socket, connection refused or lost, ...).
    Unreachable(String),
    /// Its answer over TCP was not a well-formed answer to the question.
    Malformed,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.server)?;
        match &self.kind {
            ServerErrorKind::TimedOut => f.write_str("timed out"),
            ServerErrorKind::Rcode(code) => f.write_str(&rcode_name(*code)),
            ServerErrorKind::Unreachable(why) => write!(f, "unreachable ({why})"),
            ServerErrorKind::Malformed => f.write_str("malformed answer"),
        }
    }
}

/// The mnemonic of a response code (`SERVFAIL`), else `RCODEn`.
#[must_use]
pub fn rcode_name(code: u16) -> String {
    let known = match code {
        rcode::NOERROR => "NOERROR",
        rcode::FORMERR => "FORMERR",
        rcode::SERVFAIL => "SERVFAIL",
        rcode::NXDOMAIN => "NXDOMAIN",
        rcode::NOTIMP => "NOTIMP",
        rcode::REFUSED => "REFUSED",
        rcode::BADVERS => "BADVERS",
        other => return format!("RCODE{other}"),
    };
    known.to_owned()
}

/// `a, b, c`.
fn list<T: fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
    parts.join(", ")
}
