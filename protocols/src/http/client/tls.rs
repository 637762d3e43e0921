//! TLS for the HTTP/1.1 client: which connector and server name a request uses, the pool's
//! view of them, the per-core default connector, and a connector that skips certificate
//! verification (for upstreams whose certificates cannot be checked).
//!
//! Owns: [`TlsTarget`] (per request), `TlsKey` (what the pool keys TLS connections by),
//! `DefaultConnector` (system roots, built lazily once per client), and
//! [`dangerous_insecure_connector`].
//! Contract: a connection made through connector C, verifying the server as name N, is
//! reused only for requests with the same C and N to the same address; plaintext
//! connections are keyed apart from every TLS one. Building the default connector can fail
//! (no system roots): the failure is kept and returned to every TLS request as
//! [`ClientError::TlsConfig`](super::ClientError::TlsConfig), never a panic.
//! Does not: load files (see the reverse proxy's config), or verify anything itself: the
//! engine's TLS layer runs rustls with the connector's verifier (the insecure one is the
//! engine's too).

use std::sync::Arc;

use ringwork::tls::{
    CertificateDer, PrivateKeyDer, Roots, ServerName, TlsConfigError, TlsConnector,
};

/// ALPN offered to servers: this client speaks HTTP/1.1 only.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// How a request reaches its server over TLS (`https://`).
#[derive(Clone, Debug)]
pub struct TlsTarget {
    /// The name sent by SNI and verified against the server's certificate: a DNS name, or
    /// [`ServerName::IpAddress`] for an IP literal.
    pub server_name: ServerName<'static>,
    /// The connector (roots, client certificate, ALPN); `None` uses the client's (see
    /// [`HttpClient::set_tls_connector`](super::HttpClient::set_tls_connector)).
    pub connector: Option<TlsConnector>,
}

impl TlsTarget {
    /// TLS verifying the server as `server_name`, with the client's connector.
    #[must_use]
    pub fn new(server_name: ServerName<'static>) -> Self {
        Self {
            server_name,
            connector: None,
        }
    }
}

/// What the pool keys a TLS connection by, besides its address.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub(crate) struct TlsKey {
    pub(crate) server_name: ServerName<'static>,
    /// The identity of the connector's rustls config (its `Arc` address).
    // INVARIANT: every connection made with a config holds that `Arc` (rustls keeps it in
    // the session) for as long as the connection can be pooled, so the address is not
    // reused by another config while a connection keyed by it exists.
    connector: usize,
}

impl TlsKey {
    pub(crate) fn new(server_name: ServerName<'static>, connector: &TlsConnector) -> Self {
        Self {
            server_name,
            connector: Arc::as_ptr(connector.rustls_config()) as usize,
        }
    }
}

/// The connector of requests that bring none: given by the caller, or built on first use
/// (system roots, ALPN `http/1.1`), once.
#[derive(Default)]
pub(crate) struct DefaultConnector {
    built: Option<Result<TlsConnector, Arc<TlsConfigError>>>,
    /// The same, offering `h2` first (for requests that try HTTP/2).
    built_h2: Option<Result<TlsConnector, Arc<TlsConfigError>>>,
    /// Set by the application: serves every request.
    set: bool,
}

impl DefaultConnector {
    /// Replaces the connector.
    pub(crate) fn set(&mut self, connector: TlsConnector) {
        self.built = Some(Ok(connector));
        self.set = true;
    }

    /// The connector, building it the first time.
    ///
    /// # Errors
    /// Building it failed (now or before): no system roots could be loaded.
    /// The connector (`h2`: for a request that tries HTTP/2, offering `h2` first).
    pub(crate) fn get(&mut self, h2: bool) -> Result<TlsConnector, Arc<TlsConfigError>> {
        let (slot, alpn) = if h2 && !self.set {
            (&mut self.built_h2, vec![&b"h2"[..], ALPN_HTTP11])
        } else {
            (&mut self.built, vec![ALPN_HTTP11])
        };
        slot.get_or_insert_with(|| {
            TlsConnector::builder()
                .roots(Roots::System)
                .alpn(alpn)
                .build()
                .map_err(Arc::new)
        })
        .clone()
    }
}

/// A connector that accepts **any** server certificate: expired, self-signed, for another
/// name. The handshake signature is still checked (the server holds the key of the
/// certificate it sent), so the session is encrypted, but to whoever answered: anyone on
/// the path can impersonate the server. For upstreams on a trusted network whose
/// certificates cannot be verified; never for the open internet. It is the engine's
/// [`TlsConnectorBuilder::dangerous_skip_verification`](ringwork::tls::TlsConnectorBuilder::dangerous_skip_verification)
/// with this client's ALPN.
///
/// `client_cert` (chain, leaf first, and key) is presented when the server asks for one.
/// ALPN offers `http/1.1`; sessions are resumed; the handshake timeout is the engine's
/// default ([`ringwork::tls::DEFAULT_HANDSHAKE_TIMEOUT`]).
///
/// # Errors
/// The client certificate's key does not fit it, or rustls refuses the configuration.
pub fn dangerous_insecure_connector(
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<TlsConnector, TlsConfigError> {
    let mut builder = TlsConnector::builder()
        .dangerous_skip_verification()
        .alpn([ALPN_HTTP11]);
    if let Some((chain, key)) = client_cert {
        builder = builder.client_certificate(chain, key);
    }
    builder.build()
}
