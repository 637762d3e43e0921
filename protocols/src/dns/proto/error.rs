//! [`DnsError`]: why DNS bytes or text were refused.

/// Why a DNS message, name, record or zone file was refused. The Display text is
/// lowercase and unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The message is shorter than its header or a section says.
    #[error("message truncated: {0}")]
    Truncated(&'static str),
    /// A name is malformed (too long, a bad pointer, a reserved label type).
    #[error("bad name: {0}")]
    BadName(&'static str),
    /// A record's data does not match its type.
    #[error("bad record data: {0}")]
    BadRdata(&'static str),
    /// The message is well formed but not one this side can use.
    #[error("unsupported message: {0}")]
    Unsupported(&'static str),
    /// A zone file line could not be read.
    #[error("{file}:{line}: {reason}")]
    Zone {
        /// The file (or `<text>`).
        file: String,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The message would not fit its size limit even without its records.
    #[error("message too large for {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
}
