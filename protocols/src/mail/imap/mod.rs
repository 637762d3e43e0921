//! IMAP4rev1 (RFC 3501, with LITERAL+, SASL-IR, IDLE, UIDPLUS and UNSELECT): the sans-IO
//! server machine in [`proto`] over the command syntax of [`parse`], and (feature
//! `engine`) the Maildir store of one session ([`store`], with [`message`]'s header
//! handling) and the engine glue ([`server`]) over the same Maildir the SMTP server
//! delivers into.

pub mod parse;
pub mod proto;

pub use parse::Command;
pub use proto::{ImapConfig, ImapEvent, ImapServer, Response, Selection, Status};

#[cfg(feature = "engine")]
pub mod message;
#[cfg(feature = "engine")]
pub mod server;
#[cfg(feature = "engine")]
pub mod store;

#[cfg(feature = "engine")]
pub use server::{ImapApp, ImapCommand, ImapService};
