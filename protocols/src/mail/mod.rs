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

/// The peer's IP address of a connection (the key of the failure delays).
#[cfg(feature = "engine")]
pub(crate) fn peer_ip(ctx: &ringwork::Context<'_>) -> Option<std::net::IpAddr> {
    ctx.peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.ip())
}

/// The machine's go-ahead to STARTTLS went out: upgrades the connection (server side) with
/// `acceptor`, or aborts it (`protocol` names the service in the warning).
#[cfg(feature = "engine")]
pub(crate) fn start_tls(
    ctx: &mut ringwork::Context<'_>,
    acceptor: Option<&ringwork::tls::TlsAcceptor>,
    protocol: &str,
) {
    let started = match acceptor {
        Some(acceptor) => ctx.start_tls_server(acceptor).map_err(|e| e.to_string()),
        None => Err("no certificate".to_owned()),
    };
    if let Err(error) = started {
        tracing::warn!(%error, protocol, "STARTTLS failed");
        ctx.abort();
    }
}

/// Runs `job` (a credentials check and what follows it) on the thread pool; after a
/// refusal waits the peer's failure delay; then posts `wrap(result)` to the connection.
///
/// # Errors
/// The thread pool refused the job (the caller answers the machine at once).
#[cfg(feature = "engine")]
pub(crate) fn login_later<T: Send + 'static, C: 'static>(
    ctx: &mut ringwork::Context<'_>,
    sender: crate::kit::adapter::MailboxSender<C>,
    peer: Option<std::net::IpAddr>,
    job: impl FnOnce() -> Result<T, crate::cred::CredError> + Send + 'static,
    wrap: fn(Result<T, crate::cred::CredError>) -> C,
) -> Result<(), crate::cred::CredError> {
    use crate::cred::CredError;
    let pending = ctx
        .thread_pool()
        .spawn(job)
        .map_err(|e| CredError::Unavailable(e.to_string()))?;
    let handle = ctx.handle();
    ctx.handle().spawn_local(async move {
        let result = pending
            .await
            .unwrap_or_else(|e| Err(CredError::Unavailable(e.to_string())));
        let delay = failure_delay(peer, result.as_ref().map(|_| ()));
        if !delay.is_zero() {
            let _ = handle.sleep(delay).await;
        }
        let _ = sender.post(wrap(result));
    });
    Ok(())
}
