//! WebSocket (RFC 6455, with permessage-deflate, RFC 7692): the sans-IO machine
//! ([`proto`]) and, with the `engine` feature, the server upgrade from an HTTP/1.1 handler
//! (`server`), the client (`client`) and the cross-core broadcast (`broadcast`).
//!
//! Design and limits: docs/websocket.md.

pub mod proto;

pub use self::proto::{CloseCode, Message, WsConfig, WsConn, WsError, WsEvent};
