//! Stream framing: Twisted's `protocols.basic`, as sans-IO codecs plus engine adapters.
//!
//! Owns: [`proto`] (the codecs: [`LineDecoder`], [`NetstringDecoder`],
//! [`LengthPrefixedDecoder`], their encoders and the shared [`Decoder`] trait) and, behind
//! the `engine` feature, `adapters` (`FrameReceiver`, `LineReceiver`).
//! Contract: codecs buffer at most their limit plus one read; errors poison a decoder.
//! Does not: touch sockets in `proto`; interpret the frames it delivers.
//! Spec: Twisted `protocols.basic`; netstrings per D. J. Bernstein's netstrings.txt.
//! Tests: each codec's `tests` module; fuzz targets `fuzz/fuzz_targets/{line,netstring,length_prefixed}.rs`.

pub mod proto;

#[cfg(feature = "engine")]
pub mod adapters;
#[cfg(feature = "engine")]
pub mod services;

#[cfg(feature = "engine")]
pub use adapters::{
    FrameHandler, FrameReceiver, LengthPrefixedReceiver, LineContext, LineHandler, LineReceiver,
    Lines, NetstringReceiver,
};

#[cfg(feature = "engine")]
pub use services::{Discard, DiscardDatagram, Echo, EchoDatagram};

pub use proto::Decoder;
pub use proto::length_prefixed::{
    EncodeError, LengthPrefixedDecoder, LengthPrefixedError, LengthPrefixedLimits, Prefix,
    encode_frame,
};
pub use proto::line::{Delimiter, LineDecoder, LineError, LineEvent, LineLimits, encode_line};
pub use proto::netstring::{NetstringDecoder, NetstringError, NetstringLimits, encode_netstring};
