//! TLS for stream workloads: the client options (`--cacert`, `--sni`, `--alpn`,
//! `--no-resume`, `--cipher-suite`) and the per-core [`TlsConnector`] built from them.
//!
//! Owns: [`TlsOptions`] and turning them into a connector. The handshake itself is the
//! engine's (`Reactor::connect` with `ConnectOptions::tls`): a connection's protocol starts
//! after it, so the driver counts handshakes in `connection_made` and handshake failures in
//! `connection_lost` (`LostReason::Tls`).
//! Contract: the server is always verified (roots from `--cacert` or the system store, and
//! the server name); there is no way to switch verification off. Each core builds its own
//! connector, so the client session cache (resumption) is per core and never shared. The
//! cache is this module's [`TicketStore`], not rustls's default one: that keeps at most 8
//! TLS 1.3 tickets per server, so with more connections than that handshaking at once,
//! most of them would find no ticket and make full handshakes (43% resumed at `-c 50`).
//! Does not: client certificates, TLS versions or key-exchange groups other than rustls's
//! defaults.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use ringwork::tls::rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use ringwork::tls::rustls::crypto::CryptoProvider;
use ringwork::tls::rustls::{ClientConfig, NamedGroup, RootCertStore, SupportedCipherSuite};
use ringwork::tls::{Roots, ServerName, TlsConnector};

/// How a load connection runs TLS.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Trusted roots in PEM (`--cacert`); `None`: the system store.
    pub ca_file: Option<PathBuf>,
    /// The name to ask for by SNI and to verify the certificate against (`--sni`).
    pub server_name: String,
    /// Protocols offered by ALPN, in order (`--alpn h2,http/1.1`).
    pub alpn: Vec<String>,
    /// Offer session resumption (TLS 1.3 tickets); `--no-resume` clears it.
    pub resumption: bool,
    /// Offer only this cipher suite (`--cipher-suite`; IANA or rustls name).
    pub cipher_suite: Option<String>,
}

/// Why the TLS options cannot be used. The Display text is lowercase and unstable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// The connector could not be built (unreadable `--cacert`, no roots, bad name).
    #[error("tls: {0}")]
    Config(#[from] ringwork::tls::TlsConfigError),
    /// `--cipher-suite` names no suite the crypto provider has.
    #[error("tls: unknown cipher suite {name:?} (known: {known})")]
    UnknownCipherSuite {
        /// The name given.
        name: String,
        /// The provider's suites.
        known: String,
    },
    /// rustls refused the restricted configuration.
    #[error("tls: {0}")]
    Rustls(#[from] ringwork::tls::rustls::Error),
}

impl TlsOptions {
    /// Options verifying `server_name`, with resumption on and the system roots.
    #[must_use]
    pub fn new(server_name: &str) -> Self {
        Self {
            server_name: server_name.to_owned(),
            resumption: true,
            ..Self::default()
        }
    }

    /// The server name to verify.
    ///
    /// # Errors
    /// The name is neither a DNS name nor an IP address.
    pub fn server_name(&self) -> Result<ServerName<'static>, TlsSetupError> {
        Ok(ringwork::tls::server_name(&self.server_name)?)
    }

    /// A new connector (call once per core: each has its own resumption cache).
    ///
    /// # Errors
    /// Roots that cannot be loaded, an unknown cipher suite, or a configuration rustls
    /// refuses.
    pub fn connector(&self) -> Result<TlsConnector, TlsSetupError> {
        let mut config = self.rustls_config()?;
        if self.resumption {
            config.resumption = Resumption::store(Arc::new(TicketStore::default()));
        }
        Ok(TlsConnector::from_rustls(Arc::new(config)))
    }

    /// The rustls client configuration of the options (resumption as rustls's default).
    fn rustls_config(&self) -> Result<ClientConfig, TlsSetupError> {
        let Some(name) = &self.cipher_suite else {
            let builder = TlsConnector::builder()
                .alpn(&self.alpn)
                .resumption(self.resumption);
            let builder = match &self.ca_file {
                Some(path) => builder.ca_pem_file(path),
                None => builder.roots(Roots::System),
            };
            return Ok((**builder.build()?.rustls_config()).clone());
        };
        // The engine's builder offers every suite of the provider; to pin one, build the
        // rustls config here with a provider that has only that suite.
        let suite = find_suite(name)?;
        let provider = CryptoProvider {
            cipher_suites: vec![suite],
            ..(*ringwork::tls::crypto_provider()).clone()
        };
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in ringwork::tls::load_certificates(path)? {
                    roots.add(cert)?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    return Err(ringwork::tls::TlsConfigError::NoRoots {
                        what: "system store is empty; give --cacert".into(),
                    }
                    .into());
                }
            }
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version_of(suite)])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        if !self.resumption {
            config.resumption = Resumption::disabled();
        }
        Ok(config)
    }
}

/// Most TLS 1.3 tickets kept per server name (rustls's own cache keeps 8). Servers send
/// one or two per handshake; this covers ~500 connections of one core handshaking at once.
const TICKETS_PER_SERVER: usize = 1024;

/// A client session cache for one core: TLS 1.3 tickets (up to `TICKETS_PER_SERVER` (1,024) per
/// server, newest used first, each at most once), the TLS 1.2 session and the key-exchange
/// hint per server name. Its lock is only ever taken by its own core.
#[derive(Debug, Default)]
pub struct TicketStore {
    servers: Mutex<HashMap<ServerName<'static>, Remembered>>,
}

#[derive(Debug, Default)]
struct Remembered {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl TicketStore {
    fn with<T>(&self, name: &ServerName<'_>, f: impl FnOnce(&mut Remembered) -> T) -> T {
        // A panic while holding the lock leaves plain data behind: keep using it.
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = servers.entry(name.to_owned()).or_default();
        f(entry)
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.with(&server_name, |r| r.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(server_name, |r| r.kx_hint)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with(&server_name, |r| r.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(server_name, |r| r.tls12.clone())
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.with(server_name, |r| r.tls12 = None);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.with(&server_name, |r| {
            if r.tls13.len() >= TICKETS_PER_SERVER {
                r.tls13.pop_front();
            }
            r.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.with(server_name, |r| r.tls13.pop_back())
    }
}

fn version_of(
    suite: SupportedCipherSuite,
) -> &'static ringwork::tls::rustls::SupportedProtocolVersion {
    match suite {
        SupportedCipherSuite::Tls13(_) => &ringwork::tls::rustls::version::TLS13,
        SupportedCipherSuite::Tls12(_) => &ringwork::tls::rustls::version::TLS12,
    }
}

/// `TLS13_AES_128_GCM_SHA256` (rustls) and `TLS_AES_128_GCM_SHA256` (IANA, OpenSSL's
/// TLS 1.3 name) are the same suite.
fn normalize(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase().replace('-', "_");
    match upper.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => upper,
    }
}

/// The provider's suite called `name`.
fn find_suite(name: &str) -> Result<SupportedCipherSuite, TlsSetupError> {
    let all = ringwork::tls::crypto_provider().cipher_suites.clone();
    let wanted = normalize(name);
    all.iter()
        .copied()
        .find(|s| normalize(&format!("{:?}", s.suite())) == wanted)
        .ok_or_else(|| TlsSetupError::UnknownCipherSuite {
            name: name.to_owned(),
            known: all
                .iter()
                .map(|s| normalize(&format!("{:?}", s.suite())))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suite_names() {
        let a = find_suite("TLS_AES_128_GCM_SHA256").unwrap();
        let b = find_suite("tls13_aes_128_gcm_sha256").unwrap();
        assert_eq!(a.suite(), b.suite());
        assert!(matches!(a, SupportedCipherSuite::Tls13(_)));
        let c = find_suite("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256").unwrap();
        assert!(matches!(c, SupportedCipherSuite::Tls12(_)));
        let err = find_suite("RC4").unwrap_err().to_string();
        assert!(err.contains("TLS_AES_256_GCM_SHA384"), "{err}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut opts = TlsOptions::new("not a name!");
        assert!(opts.server_name().is_err());
        opts.ca_file = Some("/nonexistent/ca.pem".into());
        let err = opts.connector().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        opts.cipher_suite = Some("TLS_AES_128_GCM_SHA256".into());
        let err = opts.connector().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
