//! Keys: public keys as SSH blobs and their signature checks (Ed25519, ECDSA P-256/P-384,
//! RSA with SHA-256/512), the `authorized_keys` and `known_hosts` files. Private keys
//! (host and user keys, OpenSSH's private key file format) are in `private_key`.
//!
//! No cryptography is written here: signing and verifying are `ring`'s; this module only
//! converts between SSH's encodings and the forms `ring` takes.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature;

use super::wire::{Reader, WireError};

/// Why a key or key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The contents are not a key this implementation reads.
    #[error("{0}")]
    Format(String),
}

pub(crate) fn format_error(what: impl Into<String>) -> KeyError {
    KeyError::Format(what.into())
}

pub use super::private_key::SigningKey;

/// The kind of a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `ssh-ed25519`.
    Ed25519,
    /// `ecdsa-sha2-nistp256`.
    EcdsaP256,
    /// `ecdsa-sha2-nistp384`.
    EcdsaP384,
    /// `ssh-rsa` (signatures with `rsa-sha2-256` or `rsa-sha2-512`, never SHA-1).
    Rsa,
}

/// A public key as its SSH blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    blob: Vec<u8>,
    kind: KeyKind,
}

impl PublicKey {
    /// Parses a public key blob.
    ///
    /// # Errors
    /// [`KeyError::Format`] for an unknown or malformed key.
    pub fn from_blob(blob: &[u8]) -> Result<Self, KeyError> {
        let mut r = Reader::new(blob);
        let bad = |_| format_error("malformed public key");
        let kind = match r.utf8().map_err(bad)? {
            "ssh-ed25519" => {
                if r.string().map_err(bad)?.len() != 32 {
                    return Err(format_error("Ed25519 key is not 32 bytes"));
                }
                KeyKind::Ed25519
            }
            name @ ("ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384") => {
                let curve = r.utf8().map_err(bad)?;
                r.string().map_err(bad)?;
                if !name.ends_with(curve) {
                    return Err(format_error("ECDSA curve does not match the key type"));
                }
                if curve == "nistp256" {
                    KeyKind::EcdsaP256
                } else {
                    KeyKind::EcdsaP384
                }
            }
            "ssh-rsa" => {
                r.mpint_unsigned().map_err(bad)?;
                r.mpint_unsigned().map_err(bad)?;
                KeyKind::Rsa
            }
            other => return Err(format_error(format!("key type {other} is not supported"))),
        };
        if !r.is_empty() {
            return Err(format_error("trailing bytes after the public key"));
        }
        Ok(Self {
            blob: blob.to_vec(),
            kind,
        })
    }

    /// Parses `TYPE BASE64 [COMMENT]` (a `.pub` file's line).
    ///
    /// # Errors
    /// [`KeyError::Format`] for a malformed line.
    pub fn from_openssh(line: &str) -> Result<Self, KeyError> {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(b64)) = (words.next(), words.next()) else {
            return Err(format_error("expected TYPE BASE64"));
        };
        let blob = B64.decode(b64).map_err(|_| format_error("bad base64"))?;
        let key = Self::from_blob(&blob)?;
        if Reader::new(&blob).utf8().ok() != Some(kind) {
            return Err(format_error("key type does not match the key"));
        }
        Ok(key)
    }

    /// `TYPE BASE64`.
    #[must_use]
    pub fn to_openssh(&self) -> String {
        format!("{} {}", self.type_name(), B64.encode(&self.blob))
    }

    /// The blob.
    #[must_use]
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// Its kind.
    #[must_use]
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The key type name in its blob.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            KeyKind::Ed25519 => "ssh-ed25519",
            KeyKind::EcdsaP256 => "ecdsa-sha2-nistp256",
            KeyKind::EcdsaP384 => "ecdsa-sha2-nistp384",
            KeyKind::Rsa => "ssh-rsa",
        }
    }

    /// Whether `algorithm` (as named in a userauth request or signature) signs with this
    /// key: the key type itself, or `rsa-sha2-256`/`rsa-sha2-512` for RSA (`ssh-rsa`,
    /// SHA-1, is refused).
    #[must_use]
    pub fn accepts_algorithm(&self, algorithm: &str) -> bool {
        match self.kind {
            KeyKind::Rsa => matches!(algorithm, "rsa-sha2-256" | "rsa-sha2-512"),
            _ => algorithm == self.type_name(),
        }
    }

    /// Checks signature blob `signature` over `data`.
    #[must_use]
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> bool {
        self.verify_inner(data, signature).unwrap_or(false)
    }

    fn verify_inner(&self, data: &[u8], signature: &[u8]) -> Result<bool, WireError> {
        let mut s = Reader::new(signature);
        let algorithm = s.utf8()?;
        let sig = s.string()?;
        if !s.is_empty() || !self.accepts_algorithm(algorithm) {
            return Ok(false);
        }
        let mut k = Reader::new(&self.blob);
        k.string()?;
        Ok(match self.kind {
            KeyKind::Ed25519 => {
                let public = k.string()?;
                signature::UnparsedPublicKey::new(&signature::ED25519, public)
                    .verify(data, sig)
                    .is_ok()
            }
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 => {
                k.string()?;
                let point = k.string()?;
                let (alg, width): (&signature::EcdsaVerificationAlgorithm, usize) =
                    if self.kind == KeyKind::EcdsaP256 {
                        (&signature::ECDSA_P256_SHA256_FIXED, 32)
                    } else {
                        (&signature::ECDSA_P384_SHA384_FIXED, 48)
                    };
                let mut rs = Reader::new(sig);
                let r = rs.mpint_unsigned()?;
                let s = rs.mpint_unsigned()?;
                if r.len() > width || s.len() > width {
                    return Ok(false);
                }
                let mut fixed = vec![0u8; 2 * width];
                fixed[width - r.len()..width].copy_from_slice(r);
                fixed[2 * width - s.len()..].copy_from_slice(s);
                signature::UnparsedPublicKey::new(alg, point)
                    .verify(data, &fixed)
                    .is_ok()
            }
            KeyKind::Rsa => {
                let e = k.mpint_unsigned()?;
                let n = k.mpint_unsigned()?;
                let params = if algorithm == "rsa-sha2-512" {
                    &signature::RSA_PKCS1_2048_8192_SHA512
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                // OpenSSH may drop leading zeros of the signature: pad to the modulus.
                let mut padded = sig.to_vec();
                if padded.len() < n.len() {
                    let mut p = vec![0u8; n.len() - padded.len()];
                    p.extend_from_slice(sig);
                    padded = p;
                }
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, data, &padded)
                    .is_ok()
            }
        })
    }
}

pub use super::authorized::{AuthorizedKey, AuthorizedKeys, KeyOptions};

/// What a `known_hosts` file says about a host's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// The key is listed for the host.
    Known,
    /// The host is listed with other keys only: possibly an attack.
    Changed,
    /// The host is not listed.
    Unknown,
    /// The key is marked `@revoked`.
    Revoked,
}

/// A `known_hosts` file: plain and hashed (`|1|salt|hash`) host names, `[host]:port`,
/// `*`/`?` patterns and `@revoked` (`@cert-authority` lines are skipped).
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<(bool, String, Vec<u8>)>,
}

impl KnownHosts {
    /// Parses the file's text (malformed lines are skipped).
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let mut first = words.next().unwrap_or("");
            let mut revoked = false;
            if first.starts_with('@') {
                if first != "@revoked" {
                    continue;
                }
                revoked = true;
                first = words.next().unwrap_or("");
            }
            let rest: Vec<&str> = words.collect();
            if let Ok(key) = PublicKey::from_openssh(&rest.join(" ")) {
                entries.push((revoked, first.to_owned(), key.blob));
            }
        }
        Self { entries }
    }

    /// Reads and parses `path`.
    ///
    /// # Errors
    /// [`KeyError::Io`] when it cannot be read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::parse(&text))
    }

    /// What the file says about `blob` for `host` on `port` (`[host]:port` unless 22).
    #[must_use]
    pub fn check(&self, host: &str, port: u16, blob: &[u8]) -> HostKeyStatus {
        let name = if port == 22 {
            host.to_owned()
        } else {
            format!("[{host}]:{port}")
        };
        let mut status = HostKeyStatus::Unknown;
        for (revoked, hosts, key) in &self.entries {
            if !hosts_match(hosts, &name) {
                continue;
            }
            if key == blob {
                if *revoked {
                    return HostKeyStatus::Revoked;
                }
                status = HostKeyStatus::Known;
            } else if !*revoked && status == HostKeyStatus::Unknown {
                status = HostKeyStatus::Changed;
            }
        }
        status
    }
}

fn hosts_match(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        let Some((salt, hash)) = hashed.split_once('|') else {
            return false;
        };
        let (Ok(salt), Ok(hash)) = (B64.decode(salt), B64.decode(hash)) else {
            return false;
        };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        return ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok();
    }
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob(pattern.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

pub(crate) fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && glob(rest, &name[1..]),
        Some((c, rest)) => name
            .split_first()
            .is_some_and(|(n, tail)| n.eq_ignore_ascii_case(c) && glob(rest, tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_matches_plain_patterns_ports_and_reports_changes() {
        let key = SigningKey::generate("k").unwrap().public();
        let other = SigningKey::generate("o").unwrap().public();
        let text = format!("[127.0.0.1]:2222,*.example.org {}\n", key.to_openssh());
        let known = KnownHosts::parse(&text);
        assert_eq!(
            known.check("127.0.0.1", 2222, key.blob()),
            HostKeyStatus::Known
        );
        assert_eq!(
            known.check("a.example.org", 22, key.blob()),
            HostKeyStatus::Known
        );
        assert_eq!(
            known.check("127.0.0.1", 2222, other.blob()),
            HostKeyStatus::Changed
        );
        assert_eq!(
            known.check("127.0.0.1", 22, key.blob()),
            HostKeyStatus::Unknown
        );
    }
}
