//! POP3 (RFC 1939, 2449, 2595): the sans-IO server machine in [`proto`] and (feature
//! `engine`) the engine glue over the same Maildir the SMTP server delivers into.

pub mod proto;

pub use proto::{MessageInfo, Pop3Config, Pop3Event, Pop3Server};
#[cfg(feature = "engine")]
pub mod server;

#[cfg(feature = "engine")]
pub use server::{MaildropLock, Pop3App, Pop3Command, Pop3Service};
