//! Mail (issue 21): the SMTP and POP3 server machines (sans-IO) and Maildir storage.
//!
//! - [`smtp`]: RFC 5321 ESMTP server as a kit machine ([`smtp::SmtpServer`]), with SIZE,
//!   PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN
//!   after TLS (RFC 4954); and (feature `engine`) its engine glue.
//! - [`pop3`]: RFC 1939 POP3 server as a kit machine (CAPA, STLS), and (feature `engine`)
//!   its engine glue over the same Maildir.
//! - `maildir` (feature `engine`): durable delivery into `DIR/USER/{tmp,new,cur}`.

#[cfg(feature = "engine")]
pub mod maildir;
pub mod pop3;
pub mod smtp;
