//! From an [`Endpoint`] to what the engine listens with (feature `engine`): the socket
//! address and the [`ListenerOptions`] — TLS loaded from the endpoint's files (or, with
//! feature `self-signed`, a self-signed certificate for localhost) and the PROXY protocol
//! for `haproxy:`.
//!
//! Owns: [`ListenSpec`], [`ListenSpec::from_endpoint`], [`AppProtocols`] (which ALPN
//! protocols a `tls:` listener advertises), `self_signed` (feature `self-signed`).
//! Contract: everything that can fail (files, keys) fails here, once, before any core
//! starts; a spec is `Send + Sync` and cheap to use on every core
//! ([`Reactor::listen_with`](ringwork::Reactor::listen_with) makes the per-core TLS copy).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ringwork::platform::inherit::{Family, InheritError, Inherited};
use ringwork::tls::{
    ClientAuth, RecordSizing, TlsAcceptor, TlsAcceptorBuilder, TlsConfigError, load_certificates,
};
use ringwork::{EngineError, Factory, ListenerOptions, Reactor, SockAddr};

use super::{ClientVerify, Domain, Endpoint, TlsOptions};

/// The application protocols a service speaks, for TLS ALPN (RFC 7301): what a `tls:`
/// listener advertises when its endpoint has no `alpn=`, and which protocols an `alpn=`
/// may name. A listener never advertises a protocol its service cannot speak: a client
/// would pick it (curl picks `h2` when offered) and then fail on the first bytes.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum AppProtocols {
    /// The service speaks exactly these (ALPN names, in preference order): advertised by
    /// default; an `alpn=` naming another is refused. An empty list: a protocol without an
    /// ALPN name (SOCKS5), so nothing is advertised and any `alpn=` is refused.
    Only(&'static [&'static str]),
    /// The service does not interpret the bytes (echo, discard, a TCP relay whose upstream
    /// speaks whatever it speaks): nothing advertised by default; any `alpn=` is accepted.
    Opaque,
}

impl AppProtocols {
    /// HTTP/1.1 (`http/1.1`, as nginx and Go advertise it).
    pub const HTTP_1_1: Self = Self::Only(&["http/1.1"]);

    /// HTTP/2 and HTTP/1.1 (`h2` first, as nginx with `http2 on` and Go advertise them):
    /// what [`HttpServer`](crate::http::server::HttpServer) speaks.
    pub const HTTP: Self = Self::Only(&["h2", "http/1.1"]);

    /// What to advertise for an endpoint that asked for `requested` (empty: no `alpn=`).
    ///
    /// # Errors
    /// The first requested protocol this service does not speak.
    fn advertise(self, requested: &[String]) -> Result<Vec<String>, String> {
        match self {
            Self::Opaque => Ok(requested.to_vec()),
            Self::Only(speaks) if requested.is_empty() => {
                Ok(speaks.iter().map(|p| (*p).to_owned()).collect())
            }
            Self::Only(speaks) => match requested.iter().find(|p| !speaks.contains(&p.as_str())) {
                Some(other) => Err(other.clone()),
                None => Ok(requested.to_vec()),
            },
        }
    }
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
#[derive(Clone, Debug)]
pub struct SelfSigned {
    /// The certificate (PEM): what a client trusts (`curl --cacert PATH`).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Whether it was made now (else an earlier one was reused).
    pub generated: bool,
}

/// Why an endpoint cannot be listened on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenSpecError {
    /// The TLS configuration could not be loaded.
    #[error("{endpoint}: {source}")]
    Tls {
        /// The endpoint as written.
        endpoint: String,
        /// What failed.
        #[source]
        source: TlsConfigError,
    },
    /// The self-signed certificate could not be made or stored.
    #[error("self-signed certificate in {dir}: {what}")]
    SelfSigned {
        /// Where it was to be stored.
        dir: PathBuf,
        /// What failed.
        what: String,
    },
    /// A `tls:` endpoint without `cert=`/`key=` (or `sni=`), in a build without feature
    /// `self-signed` to make a certificate for it.
    #[error(
        "{endpoint}: no certificate given (cert=PEM:key=PEM); this build cannot make a \
         self-signed one (feature self-signed of ringwork-protocols)"
    )]
    NoCertificate {
        /// The endpoint as written.
        endpoint: String,
    },
    /// An `alpn=` protocol the service does not speak.
    #[error(
        "{endpoint}: alpn={protocol} is a protocol this service does not speak ({})",
        speaks_text(speaks)
    )]
    AlpnNotSpoken {
        /// The endpoint as written.
        endpoint: String,
        /// The protocol named.
        protocol: String,
        /// What the service speaks.
        speaks: &'static [&'static str],
    },
    /// Not a stream endpoint (UDP).
    #[error("{0} is not a stream endpoint")]
    NotStream(String),
    /// An inherited socket (`systemd:`, `fd:`) that is not there or not a listening stream
    /// socket of the family asked for.
    #[error("{endpoint}: {source}")]
    Inherited {
        /// The endpoint as written.
        endpoint: String,
        /// What is wrong.
        #[source]
        source: InheritError,
    },
}

/// What one stream endpoint listens with.
#[derive(Clone, Debug)]
pub struct ListenSpec {
    /// The socket address (TCP or Unix).
    pub addr: SockAddr,
    /// TLS and preamble.
    pub options: ListenerOptions,
    /// The self-signed certificate in use, if the endpoint gave none.
    pub self_signed: Option<SelfSigned>,
    /// A Unix socket (served by one core: a path is one socket).
    pub unix: bool,
    /// The inherited socket to listen on (`systemd:`, `fd:`) instead of binding `addr`
    /// (then its address); every core listens on its own duplicate.
    pub inherited: Option<Inherited>,
}

impl ListenSpec {
    /// Reads the certificate files of `endpoint` (the one this spec was made from) again and
    /// gives them to every core's copy of its TLS acceptor: new handshakes get them,
    /// established connections keep theirs. `Ok(false)` for an endpoint without TLS.
    ///
    /// # Errors
    /// A certificate or key that does not load (or match): nothing changes, the old
    /// certificates keep serving.
    pub fn reload_certificates(&self, endpoint: &Endpoint) -> Result<bool, TlsConfigError> {
        let inner = match endpoint {
            Endpoint::Haproxy(inner) => &**inner,
            other => other,
        };
        let (Endpoint::Tls { tls, .. }, Some(acceptor)) = (inner, &self.options.tls) else {
            return Ok(false);
        };
        let mut builder = TlsAcceptor::builder();
        if let Some(made) = &self.self_signed {
            builder = builder.certificate_pem_files(&made.cert, &made.key);
        }
        acceptor.reload_certificates(certificates(builder, tls))?;
        Ok(true)
    }

    /// Loads what `endpoint` needs for a service that speaks `protocols` (what a `tls:`
    /// listener advertises by ALPN; see [`AppProtocols`]). `self_signed_dir` is where a
    /// self-signed certificate is kept (default: [`default_self_signed_dir`]; feature
    /// `self-signed`).
    ///
    /// # Errors
    /// A certificate or key that cannot be loaded, a self-signed certificate that cannot be
    /// stored (or, without feature `self-signed`, a `tls:` endpoint without a certificate),
    /// an `alpn=` protocol the service does not speak, or a UDP endpoint.
    pub fn from_endpoint(
        endpoint: &Endpoint,
        protocols: AppProtocols,
        self_signed_dir: Option<&Path>,
    ) -> Result<Self, ListenSpecError> {
        let (inner, haproxy) = match endpoint {
            Endpoint::Haproxy(inner) => (&**inner, true),
            other => (other, false),
        };
        let mut options = ListenerOptions::default();
        if haproxy {
            options = options.preamble(crate::proxy_protocol::preamble);
        }
        let mut spec = match inner {
            Endpoint::Tcp { addr } => Self {
                addr: (*addr).into(),
                options,
                self_signed: None,
                unix: false,
                inherited: None,
            },
            Endpoint::Unix { path } => Self {
                addr: SockAddr::unix(path)
                    .map_err(|e| ListenSpecError::NotStream(format!("{endpoint}: {e}")))?,
                options,
                self_signed: None,
                unix: true,
                inherited: None,
            },
            Endpoint::Tls { addr, tls } => {
                let alpn = protocols.advertise(&tls.alpn).map_err(|protocol| {
                    ListenSpecError::AlpnNotSpoken {
                        endpoint: endpoint.to_string(),
                        protocol,
                        speaks: match protocols {
                            AppProtocols::Only(speaks) => speaks,
                            AppProtocols::Opaque => &[],
                        },
                    }
                })?;
                let (acceptor, self_signed) =
                    acceptor(tls, &alpn, self_signed_dir).map_err(|e| match e {
                        Loaded::Tls(source) => ListenSpecError::Tls {
                            endpoint: endpoint.to_string(),
                            source,
                        },
                        Loaded::SelfSigned(e) => e,
                        Loaded::NoCertificate => ListenSpecError::NoCertificate {
                            endpoint: endpoint.to_string(),
                        },
                    })?;
                Self {
                    addr: (*addr).into(),
                    options: options.tls(acceptor),
                    self_signed,
                    unix: false,
                    inherited: None,
                }
            }
            Endpoint::Systemd {
                domain,
                index,
                name,
            } => {
                let family = match domain {
                    Domain::Inet => Family::Inet,
                    Domain::Inet6 => Family::Inet6,
                    Domain::Unix => Family::Unix,
                };
                let inherited = Inherited::Systemd {
                    family,
                    index: *index,
                    name: name.clone(),
                };
                Self::inherited(endpoint, inherited, options)?
            }
            Endpoint::Fd { fd } => Self::inherited(endpoint, Inherited::Fd(*fd), options)?,
            Endpoint::Udp { .. } | Endpoint::Haproxy(_) => {
                return Err(ListenSpecError::NotStream(endpoint.to_string()));
            }
        };
        spec.options.preamble_timeout = ringwork::DEFAULT_PREAMBLE_TIMEOUT;
        Ok(spec)
    }
}

impl ListenSpec {
    /// The spec of an inherited socket, checked here, once, before any core starts (each
    /// core opens its own duplicate when it listens).
    fn inherited(
        endpoint: &Endpoint,
        inherited: Inherited,
        options: ListenerOptions,
    ) -> Result<Self, ListenSpecError> {
        let inherit_error = |source| ListenSpecError::Inherited {
            endpoint: endpoint.to_string(),
            source,
        };
        let socket = inherited.open().map_err(inherit_error)?;
        let addr = socket.local_addr().map_err(|e| {
            inherit_error(InheritError::Invalid {
                what: inherited.to_string(),
                why: format!("no local address ({e})"),
            })
        })?;
        Ok(Self {
            addr,
            options,
            self_signed: None,
            unix: false,
            inherited: Some(inherited),
        })
    }

    /// Listens on this endpoint from `reactor` with `factory`: binds
    /// [`ListenSpec::addr`] ([`Reactor::listen_with`]), or takes the inherited socket
    /// ([`Reactor::listen_inherited`]). Returns the bound address.
    ///
    /// # Errors
    /// As [`Reactor::listen_with`] and [`Reactor::listen_inherited`].
    pub fn listen(
        &self,
        reactor: &mut Reactor,
        factory: impl Factory,
    ) -> Result<SockAddr, EngineError> {
        match &self.inherited {
            Some(inherited) => reactor.listen_inherited(inherited, &self.options, factory),
            None => reactor.listen_with(&self.addr, &self.options, factory),
        }
    }
}

enum Loaded {
    Tls(TlsConfigError),
    // Only made with feature `self-signed`.
    #[cfg_attr(not(feature = "self-signed"), allow(dead_code))]
    SelfSigned(ListenSpecError),
    // Only made without feature `self-signed`.
    #[cfg_attr(feature = "self-signed", allow(dead_code))]
    NoCertificate,
}

/// "it speaks http/1.1", for [`ListenSpecError::AlpnNotSpoken`].
fn speaks_text(speaks: &[&str]) -> String {
    match speaks {
        [] => "it has no ALPN name: give no alpn=".to_owned(),
        _ => format!("it speaks {}", speaks.join(", ")),
    }
}

/// The acceptor of a `tls:` endpoint advertising `alpn` (checked against the service).
fn acceptor(
    tls: &TlsOptions,
    alpn: &[String],
    dir: Option<&Path>,
) -> Result<(TlsAcceptor, Option<SelfSigned>), Loaded> {
    let mut builder = TlsAcceptor::builder();
    let mut self_signed_cert = None;
    if tls.cert.is_none() && tls.sni.is_empty() {
        let made = fallback_certificate(dir)?;
        builder = builder.certificate_pem_files(&made.cert, &made.key);
        self_signed_cert = Some(made);
    }
    builder = certificates(builder, tls);
    if !alpn.is_empty() {
        builder = builder.alpn(alpn);
    }
    if let Some(ca) = &tls.ca {
        let roots = load_certificates(ca).map_err(Loaded::Tls)?;
        builder = builder.client_auth(match tls.verify {
            ClientVerify::Optional => ClientAuth::Optional(roots),
            ClientVerify::Required | ClientVerify::None => ClientAuth::Required(roots),
        });
    }
    if let Some(secs) = tls.timeout_secs {
        builder = builder.handshake_timeout(Duration::from_secs(secs));
    }
    if tls.full_records {
        builder = builder.record_sizing(RecordSizing::FULL);
    }
    let acceptor = builder.build().map_err(Loaded::Tls)?;
    Ok((acceptor, self_signed_cert))
}

/// `builder` with the certificate files of `tls` (default and SNI) added.
fn certificates(mut builder: TlsAcceptorBuilder, tls: &TlsOptions) -> TlsAcceptorBuilder {
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        builder = builder.certificate_pem_files(cert, key);
    }
    for sni in &tls.sni {
        builder = builder.sni_certificate_pem_files(&sni.name, &sni.cert, &sni.key);
    }
    builder
}

/// The certificate of a `tls:` endpoint that names none: a self-signed one kept in `dir`
/// (default [`default_self_signed_dir`]).
#[cfg(feature = "self-signed")]
fn fallback_certificate(dir: Option<&Path>) -> Result<SelfSigned, Loaded> {
    let dir = dir.map_or_else(default_self_signed_dir, Path::to_path_buf);
    self_signed(&dir).map_err(Loaded::SelfSigned)
}

/// Without feature `self-signed` there is none: an error naming the options.
#[cfg(not(feature = "self-signed"))]
fn fallback_certificate(_dir: Option<&Path>) -> Result<SelfSigned, Loaded> {
    Err(Loaded::NoCertificate)
}

/// Where `ringwork serve --listen tls:PORT` keeps its self-signed certificate:
/// `$XDG_DATA_HOME/ringwork/self-signed`, else `~/.local/share/ringwork/self-signed`, else
/// the temporary directory.
#[must_use]
pub fn default_self_signed_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ringwork").join("self-signed")
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1` in `dir`
/// (`localhost.pem`, `localhost.key`): reused if both files are there and load, else made
/// (the key file readable by the owner only).
///
/// # Errors
/// The directory or files cannot be written, or rcgen fails.
#[cfg(feature = "self-signed")]
pub fn self_signed(dir: &Path) -> Result<SelfSigned, ListenSpecError> {
    let cert = dir.join("localhost.pem");
    let key = dir.join("localhost.key");
    let usable = load_certificates(&cert).is_ok() && ringwork::tls::load_private_key(&key).is_ok();
    if usable {
        return Ok(SelfSigned {
            cert,
            key,
            generated: false,
        });
    }
    let fail = |what: String| ListenSpecError::SelfSigned {
        dir: dir.to_owned(),
        what,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| fail(e.to_string()))?;
    write_private(&key, made.key_pair.serialize_pem().as_bytes())
        .map_err(|e| fail(format!("{}: {e}", key.display())))?;
    std::fs::write(&cert, made.cert.pem()).map_err(|e| fail(format!("{}: {e}", cert.display())))?;
    Ok(SelfSigned {
        cert,
        key,
        generated: true,
    })
}

#[cfg(all(unix, feature = "self-signed"))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)
}

#[cfg(all(not(unix), feature = "self-signed"))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

#[cfg(test)]
mod alpn_tests {
    use super::*;

    #[test]
    fn a_listener_advertises_only_what_its_service_speaks() {
        let strings = |list: &[&str]| list.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        let http = AppProtocols::HTTP_1_1;
        assert_eq!(http.advertise(&[]), Ok(strings(&["http/1.1"])));
        assert_eq!(
            http.advertise(&strings(&["http/1.1"])),
            Ok(strings(&["http/1.1"]))
        );
        assert_eq!(
            http.advertise(&strings(&["h2", "http/1.1"])),
            Err("h2".to_owned())
        );
        let none = AppProtocols::Only(&[]);
        assert_eq!(none.advertise(&[]), Ok(vec![]));
        assert_eq!(none.advertise(&strings(&["x"])), Err("x".to_owned()));
        let opaque = AppProtocols::Opaque;
        assert_eq!(opaque.advertise(&[]), Ok(vec![]));
        assert_eq!(
            opaque.advertise(&strings(&["h2", "x"])),
            Ok(strings(&["h2", "x"]))
        );
    }

    #[test]
    fn an_alpn_the_service_does_not_speak_is_an_error_naming_it() {
        let endpoint: Endpoint = "tls:0:interface=127.0.0.1:cert=c.pem:key=k.pem:alpn=h2"
            .parse()
            .unwrap();
        let error = ListenSpec::from_endpoint(&endpoint, AppProtocols::HTTP_1_1, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(
                "alpn=h2 is a protocol this service does not speak (it speaks http/1.1)"
            ),
            "{error}"
        );
    }
}

#[cfg(all(test, feature = "self-signed"))]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_reused() {
        let dir =
            std::env::temp_dir().join(format!("ringwork-selfsigned-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = self_signed(&dir).unwrap();
        assert!(first.generated);
        let second = self_signed(&dir).unwrap();
        assert!(!second.generated);
        let endpoint: Endpoint = "haproxy:tls:0:interface=127.0.0.1:alpn=http/1.1"
            .parse()
            .unwrap();
        let spec =
            ListenSpec::from_endpoint(&endpoint, AppProtocols::HTTP_1_1, Some(&dir)).unwrap();
        assert!(spec.options.tls.is_some() && spec.options.preamble.is_some());
        assert!(spec.self_signed.is_some());
        let missing: Endpoint = "tls:0:cert=/nonexistent.pem:key=/nonexistent.key"
            .parse()
            .unwrap();
        let error = ListenSpec::from_endpoint(&missing, AppProtocols::Opaque, Some(&dir))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent.pem"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
