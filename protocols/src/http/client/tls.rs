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
//! engine's TLS layer runs rustls with the connector's verifier.

use std::fmt;
use std::sync::Arc;

use ringwork::tls::rustls::client::Resumption;
use ringwork::tls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use ringwork::tls::rustls::crypto::{self, WebPkiSupportedAlgorithms};
use ringwork::tls::rustls::pki_types::UnixTime;
use ringwork::tls::rustls::{self, DigitallySignedStruct, SignatureScheme};
use ringwork::tls::{
    CertificateDer, PrivateKeyDer, Roots, ServerName, TlsConfigError, TlsConnector,
};

/// ALPN offered to servers: this client speaks HTTP/1.1 only.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Sessions kept for resumption by [`dangerous_insecure_connector`].
const INSECURE_SESSIONS: usize = 256;

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
}

impl DefaultConnector {
    /// Replaces the connector.
    pub(crate) fn set(&mut self, connector: TlsConnector) {
        self.built = Some(Ok(connector));
    }

    /// The connector, building it the first time.
    ///
    /// # Errors
    /// Building it failed (now or before): no system roots could be loaded.
    pub(crate) fn get(&mut self) -> Result<TlsConnector, Arc<TlsConfigError>> {
        self.built
            .get_or_insert_with(|| {
                TlsConnector::builder()
                    .roots(Roots::System)
                    .alpn([ALPN_HTTP11])
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
/// certificates cannot be verified; never for the open internet.
///
/// `client_cert` (chain, leaf first, and key) is presented when the server asks for one.
/// ALPN offers `http/1.1`; sessions are resumed; the handshake timeout is the engine's
/// default ([`ringwork::tls::DEFAULT_HANDSHAKE_TIMEOUT`]: a connector made from a rustls
/// config cannot set its own).
///
/// # Errors
/// The client certificate's key does not fit it, or rustls refuses the configuration.
pub fn dangerous_insecure_connector(
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<TlsConnector, TlsConfigError> {
    let provider = Arc::new(crypto::ring::default_provider());
    let verifier = Arc::new(InsecureAcceptAnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_cert {
        Some((chain, key)) => {
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsConfigError::Key {
                    name: "client".into(),
                    what: e.to_string(),
                })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.resumption = Resumption::in_memory_sessions(INSECURE_SESSIONS);
    Ok(TlsConnector::from_rustls(Arc::new(config)))
}

/// The verifier of [`dangerous_insecure_connector`]: every certificate is accepted; only the
/// handshake signatures are verified.
struct InsecureAcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for InsecureAcceptAnyCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InsecureAcceptAnyCertificate")
    }
}

impl ServerCertVerifier for InsecureAcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Insecure on purpose: see `dangerous_insecure_connector`.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
