//! SMTP (RFC 5321): the sans-IO server machine in [`proto`] and (feature `engine`) the
//! engine glue that checks credentials and delivers into Maildir; the client in [`client`].

pub mod client;
pub mod proto;

pub use proto::{Envelope, RcptVerdict, SmtpConfig, SmtpEvent, SmtpServer};
#[cfg(feature = "engine")]
pub mod server;

#[cfg(feature = "engine")]
pub use server::{SmtpApp, SmtpCommand, SmtpService};
