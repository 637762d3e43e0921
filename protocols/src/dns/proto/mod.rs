//! DNS as sans-IO code: names, messages, record data, zone files and the authoritative
//! answer.
//!
//! Owns: [`name`] (wire and presentation forms, compression-safe reading), [`message`]
//! (header, query and message reading, writing with compression and truncation), [`rdata`]
//! (A, AAAA, NS, CNAME, PTR, MX, SOA, TXT, SRV, CAA and opaque types), [`zone`] (RFC 1035
//! master files), [`authority`] (a query's bytes in, the response's bytes out) and [`tcp`]
//! (DNS over TCP as a kit machine).
//! Does not: touch sockets or clocks. Why not hickory-proto: a server that aims past NSD and
//! Knot answers from a borrowed query without allocating per name or record, and these
//! types stay small enough to fuzz whole; hickory's owned message model allocates per label
//! and record and brings a large dependency tree.
//! Spec: RFC 1034, RFC 1035, RFC 2181, RFC 2308, RFC 3597, RFC 4343, RFC 4592, RFC 6891,
//! RFC 7766 (TCP). Tests: each module's; fuzz targets `fuzz/dns_message`, `fuzz/dns_answer`.

pub mod authority;
pub mod error;
pub mod message;
pub mod name;
pub mod rdata;
pub mod tcp;
pub mod zone;

pub use self::authority::{Catalog, Transport};
pub use self::error::DnsError;
pub use self::message::{Edns, Header, Message, MessageWriter, Query, Question, Record, Section};
pub use self::name::Name;
pub use self::rdata::{RData, RType, Soa};
pub use self::zone::Zone;
