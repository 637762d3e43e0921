//! Errors of the HTTP/1.1 parsers, and the status code each one is answered with.
//!
//! Every variant is a peer-input error (the message is rejected and the connection closed
//! after the reply) except [`H1Error::InvalidResponseHeader`], which is our caller's misuse
//! (a handler put CR or LF into a header value).

/// Why an HTTP/1.1 message was rejected. The Display text is lowercase and unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum H1Error {
    /// The request line is longer than the limit (414).
    #[error("request line longer than {limit} bytes")]
    RequestLineTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// The head (start line and fields) is larger than the limit (431).
    #[error("message head larger than {limit} bytes")]
    HeadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// More header fields than the limit (431).
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// The body is larger than the limit (413).
    #[error("body larger than {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// A CR not followed by LF in the head (400).
    #[error("bare CR at byte {offset} of the head")]
    BareCr {
        /// Offset in the head.
        offset: usize,
    },
    /// An LF not preceded by CR in the head (400).
    #[error("bare LF at byte {offset} of the head")]
    BareLf {
        /// Offset in the head.
        offset: usize,
    },
    /// A NUL byte in the head (400).
    #[error("NUL byte at byte {offset} of the head")]
    Nul {
        /// Offset in the head.
        offset: usize,
    },
    /// A field line that begins with whitespace (obsolete line folding, 400).
    #[error("obsolete line folding at byte {offset} of the head")]
    ObsFold {
        /// Offset in the head.
        offset: usize,
    },
    /// Whitespace between a field name and its colon (400).
    #[error("whitespace before the colon at byte {offset} of the head")]
    SpaceBeforeColon {
        /// Offset in the head.
        offset: usize,
    },
    /// The start line or a field line does not follow the grammar (400).
    #[error("malformed {what}")]
    Malformed {
        /// Which part: "method", "request target", "header name", "status line", ...
        what: &'static str,
    },
    /// A version other than HTTP/1.0 or HTTP/1.1 (505).
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// The request target is not in a form allowed for its method (400).
    #[error("request target not allowed: {reason}")]
    BadTarget {
        /// What is wrong.
        reason: &'static str,
    },
    /// An HTTP/1.1 request without exactly one Host field (400).
    #[error("HTTP/1.1 request with {count} Host fields")]
    BadHost {
        /// How many Host fields the request has.
        count: usize,
    },
    /// Both Content-Length and Transfer-Encoding (400).
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    /// A Content-Length that is not a decimal number (400).
    #[error("malformed Content-Length")]
    BadContentLength,
    /// Several Content-Length fields with different values (400).
    #[error("conflicting Content-Length fields")]
    ConflictingContentLength,
    /// A Transfer-Encoding whose final coding is not `chunked`, or `chunked` twice (400).
    #[error("Transfer-Encoding must end with a single chunked: {reason}")]
    BadTransferEncoding {
        /// What is wrong.
        reason: &'static str,
    },
    /// A transfer coding other than chunked, which this implementation does not decode (501).
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// Transfer-Encoding in an HTTP/1.0 message (400).
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    TransferEncodingInHttp10,
    /// An Expect field other than `100-continue` (417).
    #[error("unsupported expectation")]
    UnsupportedExpectation,
    /// A chunk-size line that is not hex digits, overflows, or has bad whitespace (400).
    #[error("malformed chunk size")]
    BadChunkSize,
    /// A chunk extension that does not follow the grammar (400).
    #[error("malformed chunk extension")]
    BadChunkExtension,
    /// Chunk extensions longer than the limit (400).
    #[error("chunk extensions longer than {limit} bytes")]
    ChunkExtensionTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// Chunk data not followed by CRLF (400).
    #[error("chunk data not followed by CRLF")]
    BadChunkTerminator,
    /// The trailer section is larger than the limit (431).
    #[error("trailer section larger than {limit} bytes")]
    TrailersTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The connection ended inside a message (no reply possible).
    #[error("connection closed inside a message")]
    UnexpectedEof,
    /// The head did not arrive within the header-read timeout (408).
    #[error("timed out reading the request head")]
    HeadTimeout,
    /// The body stalled longer than the body-read timeout (408).
    #[error("timed out reading the request body")]
    BodyTimeout,
    /// A response status outside 100..=999 or a header value with CR, LF or NUL: the
    /// handler's bug, answered with 500 instead.
    #[error("invalid response header: {what}")]
    InvalidResponseHeader {
        /// What is wrong.
        what: &'static str,
    },
}

impl H1Error {
    /// The same error with its byte offset moved back by `n` (for a scan of a buffer that
    /// had `n` bytes put in front).
    pub(crate) fn offset_by_minus(self, n: usize) -> Self {
        match self {
            Self::BareCr { offset } => Self::BareCr { offset: offset - n },
            Self::BareLf { offset } => Self::BareLf { offset: offset - n },
            Self::Nul { offset } => Self::Nul { offset: offset - n },
            Self::ObsFold { offset } => Self::ObsFold { offset: offset - n },
            Self::SpaceBeforeColon { offset } => Self::SpaceBeforeColon { offset: offset - n },
            other => other,
        }
    }

    /// The status code a server answers this error with (RFC 9110 §15).
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::RequestLineTooLong { .. } => 414,
            Self::HeadTooLarge { .. }
            | Self::TooManyHeaders { .. }
            | Self::TrailersTooLarge { .. } => 431,
            Self::BodyTooLarge { .. } => 413,
            Self::UnsupportedVersion => 505,
            Self::UnsupportedTransferCoding => 501,
            Self::UnsupportedExpectation => 417,
            Self::HeadTimeout | Self::BodyTimeout => 408,
            Self::InvalidResponseHeader { .. } => 500,
            Self::BareCr { .. }
            | Self::BareLf { .. }
            | Self::Nul { .. }
            | Self::ObsFold { .. }
            | Self::SpaceBeforeColon { .. }
            | Self::Malformed { .. }
            | Self::BadTarget { .. }
            | Self::BadHost { .. }
            | Self::LengthAndTransferEncoding
            | Self::BadContentLength
            | Self::ConflictingContentLength
            | Self::BadTransferEncoding { .. }
            | Self::TransferEncodingInHttp10
            | Self::BadChunkSize
            | Self::BadChunkExtension
            | Self::ChunkExtensionTooLong { .. }
            | Self::BadChunkTerminator
            | Self::UnexpectedEof => 400,
        }
    }
}
