//! SMTP client (RFC 5321): the sans-IO session machine and (feature `engine`) the engine
//! glue that submits to a server or delivers to a domain's MX hosts.
//!
//! - [`reply`]: the reply parser ([`parse_reply`]) and EHLO [`Extensions`];
//! - `conn`: [`SmtpClientConn`], one session as a kit machine (STARTTLS, AUTH, pipelined
//!   transactions, per-recipient results);
//! - [`mx`]: ordering MX records (RFC 5321 §5.1, RFC 7505 null MX);
//! - `engine` (feature `engine`): [`SmtpClient`]: `submit` and `deliver` futures.
//!
//! Design and use: docs/mail.md ("The SMTP client").

mod conn;
pub mod mx;
pub mod reply;

#[cfg(feature = "engine")]
mod engine;

pub use self::conn::{
    ClientConfig, ClientEvent, OutgoingMessage, RecipientResult, RecipientStatus, SmtpClientConn,
    SmtpCredentials, SmtpError, Stage, Timeouts, TlsMode, stuff,
};
#[cfg(feature = "engine")]
pub use self::engine::{DeliverConfig, RetryPolicy, SessionReport, SmtpClient, SmtpClientConfig};
pub use self::mx::{MxHost, MxPlan, plan_mx};
pub use self::reply::{Extensions, Reply, ReplyError, ReplyLimits, parse_reply};

#[cfg(test)]
mod tests;
