//! The `tls:` endpoint's options (sans-IO): certificates, SNI table, ALPN and client
//! verification, as paths and names — the `ringwork` binary loads them.
//!
//! Syntax: `tls:PORT[:interface=IP][:cert=PATH:key=PATH][:sni=NAME,CERT,KEY]...`
//! `[:alpn=P1,P2][:ca=PATH[:verify=optional|required]][:timeout=SECS][:records=full]`.
//! Without `cert` and `key` the binary uses a self-signed certificate for localhost.
//! `records=full` sends full 16 KiB TLS records always instead of small records first after
//! idle (`records=dynamic`, the default; see the engine's `RecordSizing`).

use std::fmt;
use std::path::PathBuf;

use super::EndpointError;

/// Whether a `tls:` listener asks for client certificates.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub enum ClientVerify {
    /// No client certificate is asked for (no `ca=`).
    #[default]
    None,
    /// Verified against `ca=` if sent (`verify=optional`).
    Optional,
    /// Required and verified against `ca=` (the default when `ca=` is given).
    Required,
}

/// A certificate served to clients asking for `name` by SNI.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub struct SniCert {
    /// `example.com`, or `*.example.com`.
    pub name: String,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The options of a `tls:` endpoint.
#[derive(Clone, Debug, Default, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Default certificate chain (PEM); with `key`. `None`: a self-signed one.
    pub cert: Option<PathBuf>,
    /// Default private key (PEM).
    pub key: Option<PathBuf>,
    /// Certificates by SNI name.
    pub sni: Vec<SniCert>,
    /// ALPN protocols in preference order.
    pub alpn: Vec<String>,
    /// Roots for client certificates.
    pub ca: Option<PathBuf>,
    /// Client-certificate policy (needs `ca`).
    pub verify: ClientVerify,
    /// Handshake timeout in seconds (default: the engine's, 10 s).
    pub timeout_secs: Option<u64>,
    /// `records=full`: full 16 KiB records always (default: small records first after
    /// idle, then full ones).
    pub full_records: bool,
}

/// The keys a `tls:` endpoint takes (for errors).
pub(super) const KNOWN: &str =
    "port, interface, cert, key, sni, alpn, ca, verify, timeout, records";

impl TlsOptions {
    /// Applies one `key=value`; `Ok(false)` if the key is not a TLS option.
    pub(super) fn set(&mut self, key: &str, value: &str) -> Result<bool, EndpointError> {
        let once = |slot: &Option<PathBuf>| {
            if slot.is_some() {
                Err(EndpointError::DuplicateOption { key: key.into() })
            } else {
                Ok(Some(PathBuf::from(value)))
            }
        };
        let bad = |why: &str| EndpointError::BadOption {
            key: key.into(),
            value: value.into(),
            why: why.into(),
        };
        match key {
            "cert" => self.cert = once(&self.cert)?,
            "key" => self.key = once(&self.key)?,
            "ca" => self.ca = once(&self.ca)?,
            "sni" => {
                let parts: Vec<&str> = value.split(',').collect();
                let [name, cert, key] = parts[..] else {
                    return Err(bad("expected NAME,CERT,KEY"));
                };
                if name.is_empty() || cert.is_empty() || key.is_empty() {
                    return Err(bad("expected NAME,CERT,KEY"));
                }
                self.sni.push(SniCert {
                    name: name.into(),
                    cert: cert.into(),
                    key: key.into(),
                });
            }
            "alpn" => {
                if !self.alpn.is_empty() {
                    return Err(EndpointError::DuplicateOption { key: key.into() });
                }
                self.alpn = value.split(',').map(str::to_owned).collect();
                if self.alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
                    return Err(bad("protocol names are 1 to 255 bytes, comma-separated"));
                }
            }
            "verify" => {
                self.verify = match value {
                    "optional" => ClientVerify::Optional,
                    "required" => ClientVerify::Required,
                    _ => return Err(bad("expected optional or required")),
                };
            }
            "timeout" => {
                let secs: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad("expected a number of seconds above 0"))?;
                self.timeout_secs = Some(secs);
            }
            "records" => {
                self.full_records = match value {
                    "full" => true,
                    "dynamic" => false,
                    _ => return Err(bad("expected full or dynamic")),
                };
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the options belong together.
    pub(super) fn validate(&mut self) -> Result<(), EndpointError> {
        let pair = |what: &str| EndpointError::BadOption {
            key: what.into(),
            value: String::new(),
            why: "cert= and key= go together".into(),
        };
        match (&self.cert, &self.key) {
            (Some(_), None) => return Err(pair("cert")),
            (None, Some(_)) => return Err(pair("key")),
            _ => {}
        }
        match (&self.ca, self.verify) {
            (None, ClientVerify::Optional | ClientVerify::Required) => {
                return Err(EndpointError::BadOption {
                    key: "verify".into(),
                    value: String::new(),
                    why: "client verification needs ca=PATH".into(),
                });
            }
            (Some(_), ClientVerify::None) => self.verify = ClientVerify::Required,
            _ => {}
        }
        Ok(())
    }
}

/// Writes `text` with `:` and `\` escaped.
pub(super) fn escaped(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        if matches!(c, ':' | '\\') {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    Ok(())
}

impl fmt::Display for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = |f: &mut fmt::Formatter<'_>, key: &str, p: &PathBuf| {
            write!(f, ":{key}=")?;
            escaped(f, &p.to_string_lossy())
        };
        if let Some(cert) = &self.cert {
            path(f, "cert", cert)?;
        }
        if let Some(key) = &self.key {
            path(f, "key", key)?;
        }
        for sni in &self.sni {
            f.write_str(":sni=")?;
            escaped(
                f,
                &format!(
                    "{},{},{}",
                    sni.name,
                    sni.cert.to_string_lossy(),
                    sni.key.to_string_lossy()
                ),
            )?;
        }
        if !self.alpn.is_empty() {
            f.write_str(":alpn=")?;
            escaped(f, &self.alpn.join(","))?;
        }
        if let Some(ca) = &self.ca {
            path(f, "ca", ca)?;
            if self.verify == ClientVerify::Optional {
                f.write_str(":verify=optional")?;
            }
        }
        if let Some(secs) = self.timeout_secs {
            write!(f, ":timeout={secs}")?;
        }
        if self.full_records {
            f.write_str(":records=full")?;
        }
        Ok(())
    }
}
