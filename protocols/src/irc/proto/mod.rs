//! IRC without I/O: the message codec, CTCP framing, numerics, the server's connection
//! machine and the server's per-core state (a shard of the network).
//!
//! - [`message`]: [`Message`] parse and encode, tags, case mapping, masks.
//! - [`ctcp`]: CTCP framing.
//! - [`numeric`]: numeric reply codes.
//! - [`conn`]: [`ServerConn`], one client connection of the server (framing, limits,
//!   flood control, keep-alive, registration and CAP), a kit [`Machine`](crate::kit::Machine).
//! - [`shard`]: [`Shard`], one core's part of the network (its clients, and the channels and
//!   nicks whose hash it owns), exchanging [`Op`]s with the other shards.
//! - [`client`]: [`ClientConn`], the client side (registration, auto-PONG, events).

pub mod client;
pub mod conn;
pub mod ctcp;
pub mod message;
pub mod numeric;
pub mod shard;
mod time;

pub use self::client::{ClientConfig, ClientConn, ClientEvent};
pub use self::conn::{Caps, ConnEvent, Delivery, IrcConfig, ServerConn};
pub use self::ctcp::Ctcp;
pub use self::message::{
    EncodeError, Message, ParseError, Prefix, Tag, irc_lower, is_channel_name, is_valid_channel,
    is_valid_nick, mask_matches,
};
pub use self::shard::{ClientId, Op, Shard, ShardOutput};
pub use self::time::format_server_time;
