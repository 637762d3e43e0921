//! IRC (RFC 1459, RFC 2812, IRCv3 tags and capabilities): the sans-IO codec and machines
//! ([`proto`]), and (feature `engine`) the server with channels across cores
//! ([`server`]) and the client library ([`client`]). Design: docs/irc.md.

pub mod proto;

#[cfg(feature = "engine")]
pub mod client;
#[cfg(feature = "engine")]
pub mod server;
