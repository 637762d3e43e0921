//! TLS configuration: [`TlsAcceptor`] (server side) and [`TlsConnector`] (client side), and
//! their builders.
//!
//! Owns: loading certificates and keys from PEM, the SNI certificate table (exact names and
//! `*.` wildcards, with a default), ALPN lists, client-certificate verification (optional or
//! required), roots for the client (system store, PEM files, or given certificates),
//! resumption on both sides and the handshake timeout.
//! Contract: a built acceptor or connector is immutable and cheap to clone (`Arc`). The
//! engine gives each core its own copy of the rustls config ([`TlsAcceptor::for_core`]):
//! the certificates are shared read-only, while the session cache and the ticketer's nonce
//! counter are per core, so no handshake takes a lock another core holds.
//! Does not: reload certificates at run time (build a new acceptor and listen again); OCSP
//! stapling; certificate transparency.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::danger::AcceptAnyServerCertificate;
use super::records::RecordSizing;
use super::ticketer::TicketSecret;

/// Default handshake timeout: a peer that has not finished its handshake by then is
/// disconnected (slowloris for TLS).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Session ticket lifetime and key rotation period.
const TICKET_LIFETIME_SECS: u32 = 6 * 3600;

/// Server-side session cache entries per core (TLS 1.2 session ids; TLS 1.3 uses tickets).
const SESSION_CACHE_PER_CORE: usize = 4096;

/// Client-side resumption entries per connector.
const CLIENT_SESSIONS: usize = 256;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read or parsed as PEM.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// A PEM input held no certificate.
    #[error("{path}: no certificate found")]
    NoCertificate {
        /// The file (or `<memory>`).
        path: PathBuf,
    },
    /// The private key is not usable (unsupported type, or not the certificate's key).
    #[error("certificate key for {name}: {what}")]
    Key {
        /// The certificate's name in the table (`default` or an SNI name).
        name: String,
        /// What is wrong.
        what: String,
    },
    /// A server configuration without any certificate.
    #[error("no certificate configured (give a default certificate or at least one SNI name)")]
    NoCertificates,
    /// No root certificate could be loaded for a verifying client.
    #[error("no trusted root certificates ({what})")]
    NoRoots {
        /// Where they were looked for.
        what: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    /// [`TlsAcceptor::reload_certificates`] on an acceptor made from a rustls config
    /// ([`TlsAcceptor::from_rustls`]), whose certificates are not the engine's to replace.
    #[error("this acceptor's certificates come from its rustls config and cannot be reloaded")]
    NotReloadable,
    /// A server name that is neither a DNS name nor an IP address.
    #[error("invalid server name {name:?}")]
    ServerName {
        /// The name given.
        name: String,
    },
}

/// The crypto provider every ringwork config uses: rustls's ring provider, or its aws-lc-rs
/// provider when the crate is built with the `aws-lc` feature.
///
/// Both offer the same cipher suites and the same key exchange groups (X25519, P-256, P-384:
/// aws-lc-rs's post-quantum hybrid is left out so that switching the feature changes the
/// implementation, not what is negotiated). Configs built outside the engine (a pinned
/// cipher suite, say) should start from this provider too.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(selected_provider())
}

#[cfg(not(feature = "aws-lc"))]
fn selected_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(feature = "aws-lc")]
fn selected_provider() -> CryptoProvider {
    use rustls::crypto::aws_lc_rs::{self, kx_group};
    CryptoProvider {
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..aws_lc_rs::default_provider()
    }
}

/// The name of the provider [`crypto_provider`] returns (`"ring"` or `"aws-lc-rs"`), for
/// logs and reports.
pub fn crypto_provider_name() -> &'static str {
    if cfg!(feature = "aws-lc") {
        "aws-lc-rs"
    } else {
        "ring"
    }
}

/// Reads every certificate of a PEM file (a chain: leaf first).
///
/// # Errors
/// The file cannot be read, is not PEM, or holds no certificate.
pub fn load_certificates(
    path: impl AsRef<Path>,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let path = path.as_ref();
    let pem_error = |e: rustls_pki_types::pem::Error| TlsConfigError::Pem {
        path: path.to_owned(),
        what: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
///
/// # Errors
/// The file cannot be read or holds no key.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsConfigError::Pem {
        path: path.to_owned(),
        what: e.to_string(),
    })
}

/// A certificate chain with its key, checked to belong together.
fn certified_key(
    name: &str,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsConfigError> {
    let key_error = |what: String| TlsConfigError::Key {
        name: name.to_owned(),
        what,
    };
    if chain.is_empty() {
        return Err(key_error("empty certificate chain".into()));
    }
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| key_error(e.to_string()))?;
    Ok(Arc::new(certified))
}

/// Certificates by server name: exact names, then `*.suffix` wildcards (one label), then the
/// default. Immutable once built.
#[derive(Debug, Default)]
struct SniTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniTable {
    fn insert(&mut self, name: &str, key: Arc<CertifiedKey>) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(suffix) => self.wildcard.insert(suffix.to_owned(), key),
            None => self.exact.insert(name, key),
        };
    }

    fn lookup(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = name {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(key) = self.exact.get(&name) {
                return Some(key.clone());
            }
            if let Some((_, suffix)) = name.split_once('.')
                && let Some(key) = self.wildcard.get(suffix)
            {
                return Some(key.clone());
            }
        }
        self.default.clone()
    }
}

impl SniTable {
    fn is_empty(&self) -> bool {
        self.default.is_none() && self.exact.is_empty() && self.wildcard.is_empty()
    }
}

/// The certificates of an acceptor, replaceable while it serves
/// ([`TlsAcceptor::reload_certificates`]): every core's copy of the acceptor shares this
/// store, so one replacement reaches all of them. A handshake takes the read lock once
/// (uncontended but for a reload), never a request.
#[derive(Debug)]
struct CertStore {
    table: std::sync::RwLock<Arc<SniTable>>,
}

impl CertStore {
    fn current(&self) -> Arc<SniTable> {
        Arc::clone(
            &self
                .table
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current().lookup(client_hello.server_name())
    }
}

/// Whether and how the server asks for client certificates.
#[derive(Clone, Debug, Default)]
pub enum ClientAuth {
    /// No client certificate is requested (the default).
    #[default]
    None,
    /// A certificate is requested and verified against these roots if sent; clients without
    /// one are accepted ([`TlsInfo::peer_certificates`](super::TlsInfo) is then empty).
    Optional(Vec<CertificateDer<'static>>),
    /// A certificate chaining to these roots is required; the handshake fails without one.
    Required(Vec<CertificateDer<'static>>),
}

/// Builds a [`TlsAcceptor`].
#[derive(Debug)]
#[must_use]
pub struct TlsAcceptorBuilder {
    provider: Arc<CryptoProvider>,
    table: SniTable,
    alpn: Vec<Vec<u8>>,
    client_auth: ClientAuth,
    handshake_timeout: Duration,
    resumption: bool,
    record_sizing: RecordSizing,
    error: Option<TlsConfigError>,
}

impl TlsAcceptorBuilder {
    fn record(&mut self, result: Result<(), TlsConfigError>) {
        if let Err(e) = result
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }

    /// The certificate used when the client sends no server name, or one without its own
    /// entry. `chain` is leaf first.
    pub fn certificate(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        let result = certified_key("default", chain, key, &self.provider).map(|k| {
            self.table.default = Some(k);
        });
        self.record(result);
        self
    }

    /// [`TlsAcceptorBuilder::certificate`] from PEM files.
    pub fn certificate_pem_files(self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.pem_files(None, cert.as_ref(), key.as_ref())
    }

    /// A certificate for clients asking for `name` by SNI (`example.com`, or `*.example.com`
    /// for any one label in front of it).
    pub fn sni_certificate(
        mut self,
        name: &str,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        let result =
            certified_key(name, chain, key, &self.provider).map(|k| self.table.insert(name, k));
        self.record(result);
        self
    }

    /// [`TlsAcceptorBuilder::sni_certificate`] from PEM files.
    pub fn sni_certificate_pem_files(
        self,
        name: &str,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Self {
        self.pem_files(Some(name), cert.as_ref(), key.as_ref())
    }

    fn pem_files(mut self, name: Option<&str>, cert: &Path, key: &Path) -> Self {
        let loaded = load_certificates(cert).and_then(|c| Ok((c, load_private_key(key)?)));
        match loaded {
            Ok((chain, key)) => match name {
                Some(name) => self.sni_certificate(name, chain, key),
                None => self.certificate(chain, key),
            },
            Err(e) => {
                self.record(Err(e));
                self
            }
        }
    }

    /// Protocols offered by ALPN, in the server's order of preference (`b"h2"`,
    /// `b"http/1.1"`). A client offering none of them fails the handshake
    /// (`no_application_protocol`), as RFC 7301 asks; a client offering no ALPN at all is
    /// accepted.
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Client-certificate verification (default: none).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// How long a handshake may take (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Session resumption (TLS 1.3 tickets, TLS 1.2 tickets and session ids); on by default.
    pub fn resumption(mut self, on: bool) -> Self {
        self.resumption = on;
        self
    }

    /// How sent data is cut into records (default [`RecordSizing::default`]: small records
    /// first after idle, then full ones; [`RecordSizing::FULL`] for full records always).
    pub fn record_sizing(mut self, sizing: RecordSizing) -> Self {
        self.record_sizing = sizing;
        self
    }

    /// The acceptor.
    ///
    /// # Errors
    /// The first error of the certificates given, no certificate at all, or a configuration
    /// rustls refuses.
    pub fn build(self) -> Result<TlsAcceptor, TlsConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.table.is_empty() {
            return Err(TlsConfigError::NoCertificates);
        }
        let verifier = match &self.client_auth {
            ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
            ClientAuth::Optional(roots) | ClientAuth::Required(roots) => {
                let store = Arc::new(root_store(roots)?);
                let builder =
                    WebPkiClientVerifier::builder_with_provider(store, self.provider.clone());
                let builder = if matches!(self.client_auth, ClientAuth::Optional(_)) {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                builder
                    .build()
                    .map_err(|e| TlsConfigError::Verifier(e.to_string()))?
            }
        };
        let certs = Arc::new(CertStore {
            table: std::sync::RwLock::new(Arc::new(self.table)),
        });
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = self.alpn;
        let tickets = if self.resumption {
            Some(TicketSecret::random(TICKET_LIFETIME_SECS)?)
        } else {
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
            None
        };
        Ok(TlsAcceptor {
            config: Arc::new(config),
            tickets,
            handshake_timeout: self.handshake_timeout,
            record_sizing: self.record_sizing,
            certs: Some(certs),
        })
    }
}

fn root_store(certs: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsConfigError> {
    let mut store = RootCertStore::empty();
    for cert in certs {
        store.add(cert.clone())?;
    }
    if store.is_empty() {
        return Err(TlsConfigError::NoRoots {
            what: "empty list".into(),
        });
    }
    Ok(store)
}

/// The server side of TLS: certificates, ALPN, client authentication, resumption and the
/// handshake timeout. Give it to [`Reactor::listen_tls`](crate::Reactor::listen_tls) or
/// [`Context::start_tls_server`](crate::Context::start_tls_server). Clone it freely (one
/// per core is made by the engine).
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    tickets: Option<TicketSecret>,
    handshake_timeout: Duration,
    record_sizing: RecordSizing,
    /// The certificates (shared with every per-core copy), `None` for
    /// [`TlsAcceptor::from_rustls`].
    certs: Option<Arc<CertStore>>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("alpn", &self.config.alpn_protocols)
            .field("resumption", &self.tickets.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("record_sizing", &self.record_sizing)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// A builder (TLS 1.2 and 1.3, ring's cipher suites, resumption on).
    pub fn builder() -> TlsAcceptorBuilder {
        TlsAcceptorBuilder {
            provider: crypto_provider(),
            table: SniTable::default(),
            alpn: Vec::new(),
            client_auth: ClientAuth::None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            resumption: true,
            record_sizing: RecordSizing::default(),
            error: None,
        }
    }

    /// An acceptor from a rustls config built elsewhere (used as is: no per-core copy of its
    /// session cache or ticketer).
    #[must_use]
    pub fn from_rustls(config: Arc<ServerConfig>) -> Self {
        Self {
            config,
            tickets: None,
            certs: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            record_sizing: RecordSizing::default(),
        }
    }

    /// The rustls configuration.
    #[must_use]
    pub fn rustls_config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// How long a handshake may take.
    #[must_use]
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// How sent data is cut into records.
    #[must_use]
    pub fn record_sizing(&self) -> RecordSizing {
        self.record_sizing
    }

    /// A copy for one core: same certificates (shared, read-only), its own session cache and
    /// ticketer instance (same ticket keys as every other core).
    #[must_use]
    pub fn for_core(&self) -> Self {
        let Some(tickets) = &self.tickets else {
            return self.clone();
        };
        let mut config = (*self.config).clone();
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_PER_CORE);
        config.ticketer = Arc::new(tickets.ticketer());
        Self {
            config: Arc::new(config),
            tickets: self.tickets.clone(),
            handshake_timeout: self.handshake_timeout,
            record_sizing: self.record_sizing,
            certs: self.certs.clone(),
        }
    }

    /// Replaces the certificates (default and SNI) with those of `builder`, for every core's
    /// copy of this acceptor at once: handshakes that start afterwards get the new ones;
    /// established connections keep theirs. Only the certificates are taken from `builder`
    /// (its ALPN, client authentication and timeouts are ignored). On any error nothing
    /// changes and the old certificates keep serving.
    ///
    /// # Errors
    /// The builder's first certificate error, no certificate at all, or an acceptor made
    /// by [`TlsAcceptor::from_rustls`].
    pub fn reload_certificates(&self, builder: TlsAcceptorBuilder) -> Result<(), TlsConfigError> {
        let certs = self.certs.as_ref().ok_or(TlsConfigError::NotReloadable)?;
        if let Some(error) = builder.error {
            return Err(error);
        }
        if builder.table.is_empty() {
            return Err(TlsConfigError::NoCertificates);
        }
        *certs
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(builder.table);
        Ok(())
    }
}

/// Where a client finds the certificates it trusts.
#[derive(Clone, Debug)]
pub enum Roots {
    /// The operating system's store (rustls-native-certs: `/etc/ssl/certs` and the like).
    System,
    /// Exactly these certificates (a private CA, a self-signed server).
    Certificates(Vec<CertificateDer<'static>>),
}

/// Builds a [`TlsConnector`].
#[derive(Debug)]
#[must_use]
pub struct TlsConnectorBuilder {
    provider: Arc<CryptoProvider>,
    roots: Vec<CertificateDer<'static>>,
    system_roots: bool,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: Vec<Vec<u8>>,
    handshake_timeout: Duration,
    resumption: bool,
    /// Accept any server certificate (see `dangerous_skip_verification`).
    skip_verification: bool,
    error: Option<TlsConfigError>,
}

impl TlsConnectorBuilder {
    /// Trusts these roots (in addition to any given before).
    pub fn roots(mut self, roots: Roots) -> Self {
        match roots {
            Roots::System => self.system_roots = true,
            Roots::Certificates(certs) => self.roots.extend(certs),
        }
        self
    }

    /// Trusts the certificates of a PEM file (a CA bundle, or a self-signed server's
    /// certificate).
    pub fn ca_pem_file(mut self, path: impl AsRef<Path>) -> Self {
        match load_certificates(path) {
            Ok(certs) => self.roots.extend(certs),
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                }
            }
        }
        self
    }

    /// Presents this certificate when the server asks for one.
    pub fn client_certificate(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_cert = Some((chain, key));
        self
    }

    /// Protocols to offer by ALPN, in order of preference.
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// How long a handshake may take once TCP is connected (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Session resumption (tickets kept in memory, per connector); on by default.
    pub fn resumption(mut self, on: bool) -> Self {
        self.resumption = on;
        self
    }

    /// Accepts **any** server certificate: expired, self-signed, issued for another name or
    /// by an unknown CA; roots given are not used. The handshake signatures are still
    /// checked (the server holds the key of the certificate it sent), so the session is
    /// encrypted — but to whoever answered: anyone on the path can impersonate the server
    /// and read or change the traffic. For peers on a network you trust whose certificates
    /// cannot be verified (a self-signed appliance); never for the open internet. Prefer
    /// trusting that certificate with [`TlsConnectorBuilder::roots`].
    pub fn dangerous_skip_verification(mut self) -> Self {
        self.skip_verification = true;
        self
    }

    /// The connector.
    ///
    /// # Errors
    /// A PEM file that could not be read, no roots at all (unless verification is skipped),
    /// a bad client certificate, or a configuration rustls refuses.
    pub fn build(self) -> Result<TlsConnector, TlsConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)?;
        let builder = if self.skip_verification {
            let verifier = AcceptAnyServerCertificate::new(&self.provider);
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        } else {
            builder.with_root_certificates(self.root_store()?)
        };
        let mut config = match self.client_cert {
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
        config.alpn_protocols = self.alpn;
        config.resumption = if self.resumption {
            Resumption::in_memory_sessions(CLIENT_SESSIONS)
        } else {
            Resumption::disabled()
        };
        Ok(TlsConnector {
            config: Arc::new(config),
            handshake_timeout: self.handshake_timeout,
        })
    }

    /// The trusted roots: those given and, if asked, the system's.
    fn root_store(&self) -> Result<RootCertStore, TlsConfigError> {
        let mut store = RootCertStore::empty();
        for cert in &self.roots {
            store.add(cert.clone())?;
        }
        if self.system_roots {
            let native = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(native.certs);
            if added == 0 && store.is_empty() {
                let errors: Vec<String> = native.errors.iter().map(ToString::to_string).collect();
                return Err(TlsConfigError::NoRoots {
                    what: format!("system store: {}", errors.join("; ")),
                });
            }
        }
        if store.is_empty() {
            return Err(TlsConfigError::NoRoots {
                what: "give Roots::System, Roots::Certificates or a CA file".into(),
            });
        }
        Ok(store)
    }
}

/// The client side of TLS: trusted roots (and hostname verification), a client certificate,
/// ALPN, resumption and the handshake timeout. Give it to
/// [`ConnectOptions::tls`](crate::ConnectOptions::tls) or
/// [`Context::start_tls_client`](crate::Context::start_tls_client). Sessions to resume are
/// kept per connector: build one per core (in the runtime's init function) so no lock is
/// shared between cores.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    handshake_timeout: Duration,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("alpn", &self.config.alpn_protocols)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// A builder (TLS 1.2 and 1.3, ring's cipher suites, hostname verification, resumption
    /// on). Give it roots.
    pub fn builder() -> TlsConnectorBuilder {
        TlsConnectorBuilder {
            provider: crypto_provider(),
            roots: Vec::new(),
            system_roots: false,
            client_cert: None,
            alpn: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            resumption: true,
            skip_verification: false,
            error: None,
        }
    }

    /// A connector from a rustls config built elsewhere.
    #[must_use]
    pub fn from_rustls(config: Arc<ClientConfig>) -> Self {
        Self {
            config,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The rustls configuration.
    #[must_use]
    pub fn rustls_config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// How long a handshake may take.
    #[must_use]
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_for(name: &str) -> Arc<CertifiedKey> {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let key = PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        certified_key(name, vec![cert.cert.der().clone()], key, &crypto_provider()).unwrap()
    }

    /// Switching the `aws-lc` feature changes the implementation, not what a peer can
    /// negotiate: the same suites in the same order and the same key exchange groups as ring.
    #[test]
    fn the_provider_offers_what_ring_offers() {
        let ring = rustls::crypto::ring::default_provider();
        let ours = crypto_provider();
        let suites =
            |p: &CryptoProvider| -> Vec<_> { p.cipher_suites.iter().map(|s| s.suite()).collect() };
        let groups =
            |p: &CryptoProvider| -> Vec<_> { p.kx_groups.iter().map(|g| g.name()).collect() };
        assert_eq!(suites(&ours), suites(&ring));
        assert_eq!(groups(&ours), groups(&ring));
        let expected = if cfg!(feature = "aws-lc") {
            "aws-lc-rs"
        } else {
            "ring"
        };
        assert_eq!(crypto_provider_name(), expected);
    }

    #[test]
    fn sni_prefers_exact_then_wildcard_then_default() {
        let (exact, wild, default) = (
            key_for("a.example.com"),
            key_for("*.example.com"),
            key_for("localhost"),
        );
        let mut table = SniTable::default();
        table.insert("A.Example.com", exact.clone());
        table.insert("*.example.com", wild.clone());
        table.default = Some(default.clone());
        assert!(Arc::ptr_eq(
            &table.lookup(Some("a.example.com.")).unwrap(),
            &exact
        ));
        assert!(Arc::ptr_eq(
            &table.lookup(Some("b.EXAMPLE.com")).unwrap(),
            &wild
        ));
        // One label only, as in certificate wildcards.
        assert!(Arc::ptr_eq(
            &table.lookup(Some("x.b.example.com")).unwrap(),
            &default
        ));
        assert!(Arc::ptr_eq(&table.lookup(None).unwrap(), &default));
        table.default = None;
        assert!(table.lookup(Some("other.org")).is_none());
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_refused() {
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        let wrong = PrivateKeyDer::try_from(b.key_pair.serialize_der()).unwrap();
        let err = TlsAcceptor::builder()
            .certificate(vec![a.cert.der().clone()], wrong)
            .build()
            .unwrap_err();
        assert!(matches!(err, TlsConfigError::Key { .. }), "{err}");
        assert!(matches!(
            TlsAcceptor::builder().build(),
            Err(TlsConfigError::NoCertificates)
        ));
    }

    #[test]
    fn pem_errors_name_the_file() {
        let err = TlsAcceptor::builder()
            .certificate_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
        let dir = std::env::temp_dir().join(format!("ringwork-tls-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let err = load_certificates(&empty).unwrap_err();
        assert!(matches!(err, TlsConfigError::NoCertificate { .. }), "{err}");
        let err = TlsConnector::builder().build().unwrap_err();
        assert!(matches!(err, TlsConfigError::NoRoots { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
