//! Mail (issue 21): the SMTP server machine (sans-IO) and local delivery into Maildir.
//!
//! - [`smtp`]: RFC 5321 ESMTP server as a kit machine ([`smtp::SmtpServer`]), with SIZE,
//!   PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN
//!   after TLS (RFC 4954); and (feature `engine`) its engine glue.
//! - `maildir` (feature `engine`): durable delivery into `DIR/USER/{tmp,new,cur}`.

#[cfg(feature = "engine")]
pub mod maildir;
pub mod smtp;
