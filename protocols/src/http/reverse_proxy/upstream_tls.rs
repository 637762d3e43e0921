//! TLS to upstream servers (`https://` in a pool's `servers`): what the configuration
//! loaded, and the per-core connector built from it.
//!
//! Owns: [`UpstreamTls`] (server names, roots, client certificate, whether to verify),
//! [`UpstreamTls::connector`], and the parsing of one `servers` entry (`ServerEntry`).
//! Contract: PEM files are read once, when the configuration is loaded (errors name the
//! file); each core builds its own connector from the loaded certificates (a connector's
//! resumption cache is per connector, so cores share no lock). `verify = false` uses
//! [`dangerous_insecure_connector`]: encrypted, not authenticated.
//! Does not: open connections (the client does) or resolve names (see `config.rs`).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringwork::tls::{
    CertificateDer, PrivateKeyDer, Roots, ServerName, TlsConfigError, TlsConnector,
};

use crate::http::client::{ALPN_HTTP11, HttpProtocol, dangerous_insecure_connector};

/// How a pool reaches its `https://` servers.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct UpstreamTls {
    /// The name each server is verified as and sent by SNI (index-aligned with the pool's
    /// servers): `tls_server_name`, else the host written in the server's URL (an IP
    /// literal is verified as an IP address).
    pub server_names: Vec<ServerName<'static>>,
    /// `tls_verify`: whether the server's certificate is verified (default true).
    pub verify: bool,
    /// `tls_ca`: the PEM file of trusted roots; `None` for the system's roots.
    pub ca: Option<PathBuf>,
    /// `tls_cert` and `tls_key`: the client certificate presented for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// What the files held.
    material: Arc<Material>,
}

/// Certificates and key read from the files of an [`UpstreamTls`].
#[derive(Default)]
pub(crate) struct Material {
    /// The roots of `tls_ca` (`None`: system roots).
    pub(crate) roots: Option<Vec<CertificateDer<'static>>>,
    /// The client certificate chain and its key.
    pub(crate) client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl PartialEq for Material {
    /// Compares the certificates; keys are not compared (nor printed).
    fn eq(&self, other: &Self) -> bool {
        self.roots == other.roots
            && self.client_cert.as_ref().map(|(chain, _)| chain)
                == other.client_cert.as_ref().map(|(chain, _)| chain)
    }
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("roots", &self.roots.as_ref().map(Vec::len))
            .field("client_cert", &self.client_cert.is_some())
            .finish()
    }
}

impl UpstreamTls {
    /// TLS settings from what the configuration read (see `config/file.rs`).
    // Only the TOML file builds these (feature `toml-config`).
    #[cfg_attr(not(feature = "toml-config"), allow(dead_code))]
    pub(crate) fn new(
        server_names: Vec<ServerName<'static>>,
        verify: bool,
        ca: Option<PathBuf>,
        client_cert: Option<(PathBuf, PathBuf)>,
        material: Material,
    ) -> Self {
        Self {
            server_names,
            verify,
            ca,
            client_cert,
            material: Arc::new(material),
        }
    }

    /// A new connector for one core: ALPN `http/1.1` (`h2` first for a pool that speaks
    /// HTTP/2), the handshake bounded by `handshake_timeout` (the insecure connector keeps
    /// the engine's default, see [`dangerous_insecure_connector`]).
    ///
    /// # Errors
    /// No system roots could be loaded, the client key does not fit its certificate, or
    /// rustls refused the configuration.
    pub fn connector(
        &self,
        handshake_timeout: Duration,
        protocol: HttpProtocol,
    ) -> Result<TlsConnector, TlsConfigError> {
        let client_cert = self
            .material
            .client_cert
            .as_ref()
            .map(|(chain, key)| (chain.clone(), key.clone_key()));
        // An HTTP/2 pool offers h2 first, http/1.1 for servers that do not speak it (the
        // client then goes over HTTP/1.1 to them, unless the pool insists on h2).
        let alpn = if protocol.offers_h2() {
            vec![&b"h2"[..], ALPN_HTTP11]
        } else {
            vec![ALPN_HTTP11]
        };
        if !self.verify {
            if !protocol.offers_h2() {
                return dangerous_insecure_connector(client_cert);
            }
            let mut builder = TlsConnector::builder()
                .dangerous_skip_verification()
                .alpn(alpn);
            if let Some((chain, key)) = client_cert {
                builder = builder.client_certificate(chain, key);
            }
            return builder.build();
        }
        let roots = match &self.material.roots {
            Some(certs) => Roots::Certificates(certs.clone()),
            None => Roots::System,
        };
        let mut builder = TlsConnector::builder()
            .roots(roots)
            .alpn(alpn)
            .handshake_timeout(handshake_timeout);
        if let Some((chain, key)) = client_cert {
            builder = builder.client_certificate(chain, key);
        }
        builder.build()
    }
}

/// One entry of a pool's `servers`: `host:port`, `http://host[:port]` or
/// `https://host[:port]`. Read from the TOML file (feature `toml-config`).
#[cfg_attr(not(feature = "toml-config"), allow(dead_code))]
#[derive(Debug, Eq, PartialEq)]
pub(crate) struct ServerEntry {
    /// `https://`.
    pub(crate) https: bool,
    /// The host as written, without brackets (`api.internal`, `10.0.0.7`, `::1`).
    pub(crate) host: String,
    /// `host:port` to resolve, the port filled in for a URL without one.
    pub(crate) authority: String,
}

#[cfg_attr(not(feature = "toml-config"), allow(dead_code))]
impl ServerEntry {
    /// Parses an entry.
    ///
    /// # Errors
    /// What is wrong: another scheme, a path, user info, no host, or no port where one is
    /// needed (a bare `host:port` has no scheme to take a default from).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let lower = text.to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("https://") {
            (Some(true), &text["https://".len()..])
        } else if lower.starts_with("http://") {
            (Some(false), &text["http://".len()..])
        } else if lower.contains("://") {
            return Err(format!(
                "{text:?}: only http:// and https:// servers are supported"
            ));
        } else {
            (None, text)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(format!("{text:?}: a server has no path"));
        }
        if rest.contains('@') {
            return Err(format!("{text:?}: user info is not supported"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed IPv6 bracket"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| format!("{text:?}: junk after the IPv6 address"))?,
                    ),
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        let port = match (port, https) {
            (Some(port), _) => port
                .parse::<u16>()
                .map_err(|_| format!("{text:?}: bad port {port:?}"))?,
            (None, Some(true)) => 443,
            (None, Some(false)) => 80,
            (None, None) => return Err(format!("{text:?} is not host:port")),
        };
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            https: https.unwrap_or(false),
            host: host.to_owned(),
            authority,
        })
    }

    /// The name to verify the server as: an IP address for an IP literal, else the DNS
    /// name.
    ///
    /// # Errors
    /// The host is not a valid DNS name.
    pub(crate) fn server_name(&self) -> Result<ServerName<'static>, String> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(ServerName::IpAddress(ip.into()));
        }
        ServerName::try_from(self.host.clone())
            .map_err(|_| format!("{:?} is not a valid TLS server name", self.host))
    }
}

#[cfg(test)]
mod tests;
