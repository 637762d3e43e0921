//! Mail (issue 21): the SMTP, POP3 and IMAP server machines (sans-IO) and Maildir storage.
//!
//! - [`smtp`]: RFC 5321 ESMTP server as a kit machine ([`smtp::SmtpServer`]), with SIZE,
//!   PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN
//!   after TLS (RFC 4954); and (feature `engine`) its engine glue.
//! - [`pop3`]: RFC 1939 POP3 server as a kit machine (CAPA, STLS), and (feature `engine`)
//!   its engine glue over the same Maildir.
//! - [`imap`]: IMAP4rev1 server as a kit machine (LITERAL+, SASL-IR, IDLE, UIDPLUS,
//!   STARTTLS), and (feature `engine`) its Maildir store and engine glue.
//! - `session`: the plumbing the three machines share.
//! - `maildir` (feature `engine`): durable delivery into `DIR/USER/{tmp,new,cur}`.

pub mod imap;
#[cfg(feature = "engine")]
pub mod maildir;
pub mod pop3;
mod session;
pub mod smtp;

#[cfg(feature = "engine")]
thread_local! {
    /// Failed logins per peer, per core, shared by the mail services.
    static DELAYS: std::cell::RefCell<crate::cred::FailureDelays> =
        std::cell::RefCell::new(crate::cred::FailureDelays::new(Default::default()));
}

/// Records a login outcome of `peer` and returns how long to wait before answering a
/// failure (zero for a success, an unknown peer or a checker that could not decide).
#[cfg(feature = "engine")]
pub(crate) fn failure_delay(
    peer: Option<std::net::IpAddr>,
    outcome: Result<(), &crate::cred::CredError>,
) -> std::time::Duration {
    let Some(peer) = peer else {
        return std::time::Duration::ZERO;
    };
    let now = std::time::Instant::now();
    DELAYS.with_borrow_mut(|table| match outcome {
        Ok(()) => {
            table.record_success(peer);
            std::time::Duration::ZERO
        }
        Err(crate::cred::CredError::Unauthorized) => {
            // 0.5 s after the first failure, doubling (FailureDelaysConfig::default()).
            table.record_failure(peer, now);
            table.delay(peer, now)
        }
        Err(_) => std::time::Duration::ZERO,
    })
}
