//! Certificates for TLS tests: a throw-away CA and the certificates it signs (server, client,
//! expired, for another name), made with rcgen at run time — no key material in the repo.
//!
//! Owns: [`TestCa`] and [`TestCert`].
//! Contract: every certificate is ECDSA P-256 and valid (rcgen's default: 1975 to 4096)
//! unless made expired; PEM files are written only on request ([`TestCert::write_pem`]).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and its private key.
#[derive(Debug)]
pub struct TestCert {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    /// Its key (PKCS#8 DER).
    key: Vec<u8>,
    /// The certificate in PEM.
    pub cert_pem: String,
    /// The key in PEM.
    pub key_pem: String,
}

impl TestCert {
    /// The private key.
    #[must_use]
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }

    /// The chain to present: this certificate alone (the CA is the peer's root).
    #[must_use]
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone()]
    }

    /// Writes `NAME.pem` and `NAME.key` into `dir`; returns their paths.
    ///
    /// # Panics
    /// If the files cannot be written (a test helper).
    pub fn write_pem(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write test certificate");
        std::fs::write(&key, &self.key_pem).expect("write test key");
        (cert, key)
    }
}

/// A test certificate authority.
pub struct TestCa {
    key: KeyPair,
    issuer: rcgen::Certificate,
    /// The CA certificate (the root a peer trusts).
    pub cert: CertificateDer<'static>,
    /// The CA certificate in PEM.
    pub cert_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// How a leaf certificate is made.
#[derive(Clone, Copy)]
enum Leaf {
    Server,
    Client,
    Expired,
}

impl TestCa {
    /// A new CA (named `ringwork test CA PID N`, distinct per CA).
    ///
    /// # Panics
    /// If rcgen fails (a test helper).
    #[must_use]
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A distinct name per CA: a verifier then tells "unknown issuer" from "bad signature".
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ringwork test CA {} {n}", std::process::id());
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = params.self_signed(&key).expect("self-sign CA");
        Self {
            cert: issuer.der().clone(),
            cert_pem: issuer.pem(),
            key,
            issuer,
        }
    }

    fn leaf(&self, names: &[&str], kind: Leaf) -> TestCert {
        let key = KeyPair::generate().expect("generate key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| "client".into()),
        );
        params.extended_key_usages = vec![match kind {
            Leaf::Client => ExtendedKeyUsagePurpose::ClientAuth,
            Leaf::Server | Leaf::Expired => ExtendedKeyUsagePurpose::ServerAuth,
        }];
        // rcgen's default validity (1975 to 4096) covers any test run.
        if let Leaf::Expired = kind {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .expect("sign leaf");
        TestCert {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key: key.serialize_der(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    #[must_use]
    pub fn server(&self, names: &[&str]) -> TestCert {
        self.leaf(names, Leaf::Server)
    }

    /// A client certificate (extended key usage `clientAuth`) named `name`.
    #[must_use]
    pub fn client(&self, name: &str) -> TestCert {
        self.leaf(&[name], Leaf::Client)
    }

    /// A server certificate for `names` that expired in 2021.
    #[must_use]
    pub fn expired(&self, names: &[&str]) -> TestCert {
        self.leaf(names, Leaf::Expired)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
