//! WebSocket (RFC 6455, with permessage-deflate, RFC 7692): the sans-IO machine
//! ([`proto`]) and, with the `engine` feature, the server upgrade from an HTTP/1.1 handler
//! (`server`: [`Request::upgrade_websocket`](crate::http::server::Request::upgrade_websocket))
//! the client (`client`) and cross-core pub/sub (`broadcast`, `ringwork serve ws-chat`).
//!
//! Design, limits and close codes: docs/websocket.md.

#[cfg(feature = "engine")]
pub mod broadcast;
#[cfg(feature = "engine")]
pub mod client;
pub mod proto;
#[cfg(feature = "engine")]
pub mod server;

pub use self::proto::{CloseCode, Message, WsConfig, WsConn, WsError, WsEvent};
