//! The verifier of [`TlsConnectorBuilder::dangerous_skip_verification`]: a client that
//! accepts any server certificate.
//!
//! Owns: [`AcceptAnyServerCertificate`].
//! Contract: every certificate chain is accepted (expired, self-signed, issued for another
//! name); the handshake signatures are still verified with the provider's algorithms, so
//! the server must hold the key of the certificate it sent. The session is encrypted, but
//! to whoever answered.
//! Does not: pin certificates or keys.
//!
//! [`TlsConnectorBuilder::dangerous_skip_verification`]:
//!     super::TlsConnectorBuilder::dangerous_skip_verification

use std::fmt;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Accepts every server certificate; checks only the handshake signatures.
pub(crate) struct AcceptAnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptAnyServerCertificate {
    /// A verifier checking signatures with `provider`'s algorithms.
    pub(crate) fn new(provider: &CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl fmt::Debug for AcceptAnyServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptAnyServerCertificate")
    }
}

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Insecure on purpose: see `TlsConnectorBuilder::dangerous_skip_verification`.
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
