//! Private keys: the server's host keys and the client's user key (Ed25519, ECDSA
//! P-256/P-384, RSA), signing with `ring`, and OpenSSH's private key file format
//! (`-----BEGIN OPENSSH PRIVATE KEY-----`), read and written, unencrypted or protected by a
//! passphrase the way `ssh-keygen -N` does it (`bcrypt` KDF, `aes256-ctr`).
//!
//! No cryptography is written here: signing is `ring`'s, the KDF is the `bcrypt-pbkdf`
//! crate's, AES-CTR the `aes`/`ctr` crates', and RSA's CRT exponents (which OpenSSH's file
//! does not store and `ring` needs) are derived with `num-bigint`.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use super::keys::{KeyError, KeyKind, PublicKey, format_error};
use super::wire::{Reader, WireError, Writer};

const OPENSSH_MAGIC: &[u8] = b"openssh-key-v1\0";
const PEM_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PEM_END: &str = "-----END OPENSSH PRIVATE KEY-----";
/// The bcrypt rounds of keys this module encrypts (`ssh-keygen`'s default).
const BCRYPT_ROUNDS: u32 = 16;
/// More rounds than this are refused: a file that would take minutes to open is a mistake
/// or an attack (`ssh-keygen -a 1000` is far below it).
const MAX_BCRYPT_ROUNDS: u32 = 1 << 16;

/// A key pair: a host key of the server, or the client's user key.
pub struct SigningKey {
    secret: Secret,
    public: PublicKey,
    comment: String,
}

enum Secret {
    Ed25519 {
        pair: Ed25519KeyPair,
        seed: [u8; 32],
    },
    Ecdsa {
        pair: EcdsaKeyPair,
        /// The private scalar, big-endian, the curve's width.
        scalar: Vec<u8>,
    },
    Rsa {
        pair: RsaKeyPair,
        /// n, e, d, iqmp, p, q as OpenSSH stores them (big-endian magnitudes).
        fields: [Vec<u8>; 6],
    },
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public.to_openssh())
            .finish_non_exhaustive()
    }
}

fn random_error(_: ring::error::Unspecified) -> KeyError {
    format_error("the system random source failed")
}

/// The `ring` algorithm and scalar width of an ECDSA kind.
fn ecdsa_params(
    kind: KeyKind,
) -> (
    &'static signature::EcdsaSigningAlgorithm,
    usize,
    &'static str,
) {
    if kind == KeyKind::EcdsaP384 {
        (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, 48, "nistp384")
    } else {
        (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, 32, "nistp256")
    }
}

impl SigningKey {
    /// A new random Ed25519 key.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn generate(comment: &str) -> Result<Self, KeyError> {
        Self::generate_kind(KeyKind::Ed25519, comment)
    }

    /// A new random key of `kind`: Ed25519 or ECDSA (RSA keys are made with `ssh-keygen`).
    ///
    /// # Errors
    /// When the system's random source fails, or for [`KeyKind::Rsa`].
    pub fn generate_kind(kind: KeyKind, comment: &str) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        match kind {
            KeyKind::Ed25519 => {
                let mut seed = [0u8; 32];
                rng.fill(&mut seed).map_err(random_error)?;
                Self::ed25519(seed, comment)
            }
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 => {
                let (alg, width, _) = ecdsa_params(kind);
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(random_error)?;
                let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
                    .map_err(|e| format_error(format!("generated ECDSA key refused: {e}")))?;
                let scalar = pkcs8_scalar(pkcs8.as_ref(), width)
                    .ok_or_else(|| format_error("generated ECDSA key: no private scalar"))?;
                let point = pair.public_key().as_ref().to_vec();
                Self::ecdsa(kind, &scalar, &point, comment)
            }
            KeyKind::Rsa => Err(format_error(
                "RSA keys are not generated here: make one with ssh-keygen -t rsa",
            )),
        }
    }

    fn ed25519(seed: [u8; 32], comment: &str) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| format_error("invalid Ed25519 seed"))?;
        let mut w = Writer::new();
        w.string("ssh-ed25519").string(pair.public_key().as_ref());
        Ok(Self {
            public: PublicKey::from_blob(&w.finish())?,
            secret: Secret::Ed25519 { pair, seed },
            comment: comment.to_owned(),
        })
    }

    fn ecdsa(kind: KeyKind, scalar: &[u8], point: &[u8], comment: &str) -> Result<Self, KeyError> {
        let (alg, width, curve) = ecdsa_params(kind);
        if scalar.len() > width {
            return Err(format_error("ECDSA private key is too long"));
        }
        let mut fixed = vec![0u8; width];
        fixed[width - scalar.len()..].copy_from_slice(scalar);
        let pair =
            EcdsaKeyPair::from_private_key_and_public_key(alg, &fixed, point, &SystemRandom::new())
                .map_err(|e| format_error(format!("ECDSA key refused: {e}")))?;
        let mut w = Writer::new();
        w.string(format!("ecdsa-sha2-{curve}"))
            .string(curve)
            .string(point);
        Ok(Self {
            public: PublicKey::from_blob(&w.finish())?,
            secret: Secret::Ecdsa {
                pair,
                scalar: fixed,
            },
            comment: comment.to_owned(),
        })
    }

    /// `fields`: n, e, d, iqmp, p, q (OpenSSH's order).
    fn rsa(fields: [Vec<u8>; 6], comment: &str) -> Result<Self, KeyError> {
        use num_bigint::BigUint;
        let [n, e, d, iqmp, p, q] = &fields;
        let one = BigUint::from(1u8);
        let d_big = BigUint::from_bytes_be(d);
        let (p_big, q_big) = (BigUint::from_bytes_be(p), BigUint::from_bytes_be(q));
        if p_big <= one || q_big <= one {
            return Err(format_error("malformed RSA key (p or q)"));
        }
        // The CRT exponents: dP = d mod (p-1), dQ = d mod (q-1).
        let dp = (&d_big % (&p_big - &one)).to_bytes_be();
        let dq = (&d_big % (&q_big - &one)).to_bytes_be();
        let components = ring::rsa::KeyPairComponents {
            public_key: ring::rsa::PublicKeyComponents { n, e },
            d,
            p,
            q,
            dP: &dp,
            dQ: &dq,
            qInv: iqmp,
        };
        let pair = RsaKeyPair::from_components(&components)
            .map_err(|e| format_error(format!("RSA key refused: {e}")))?;
        // ring checks the components only partly at load; a private exponent that does not
        // match shows when signing (ring verifies its result): find out now, not at login.
        let mut sig = vec![0u8; pair.public().modulus_len()];
        pair.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            b"ringwork key check",
            &mut sig,
        )
        .map_err(|_| format_error("RSA key refused: its private parts do not match"))?;
        let mut w = Writer::new();
        w.string("ssh-rsa").mpint(e).mpint(n);
        Ok(Self {
            public: PublicKey::from_blob(&w.finish())?,
            secret: Secret::Rsa { pair, fields },
            comment: comment.to_owned(),
        })
    }

    /// Reads an unencrypted OpenSSH private key file.
    ///
    /// # Errors
    /// [`KeyError`] naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        Self::load_with_passphrase(path, None)
    }

    /// Reads an OpenSSH private key file, decrypting it with `passphrase` if it is
    /// encrypted.
    ///
    /// # Errors
    /// [`KeyError`] naming the file and what is wrong (a wrong passphrase says so).
    pub fn load_with_passphrase(path: &Path, passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_openssh_with_passphrase(&text, passphrase)
            .map_err(|e| format_error(format!("{}: {e}", path.display())))
    }

    /// Reads `path` if it exists, else generates an Ed25519 key and writes it there (mode
    /// 0600).
    ///
    /// # Errors
    /// [`KeyError`] when the file is unreadable, not a key, or cannot be written.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), KeyError> {
        Self::load_or_generate_kind(path, KeyKind::Ed25519, None)
    }

    /// Reads `path` (decrypting with `passphrase` if it is encrypted) if it exists, else
    /// generates a key of `kind` and writes it there, unencrypted (mode 0600), as `sshd`'s
    /// own host keys are: a server that starts unattended keeps its key readable.
    ///
    /// # Errors
    /// [`KeyError`] when the file is unreadable, not a key, or cannot be written.
    pub fn load_or_generate_kind(
        path: &Path,
        kind: KeyKind,
        passphrase: Option<&[u8]>,
    ) -> Result<(Self, bool), KeyError> {
        if path.exists() {
            return Ok((Self::load_with_passphrase(path, passphrase)?, false));
        }
        let key = Self::generate_kind(kind, "ringwork host key")?;
        key.save(path)?;
        Ok((key, true))
    }

    /// Writes the key, unencrypted, in OpenSSH's format, readable only by its owner (mode
    /// 0600).
    ///
    /// # Errors
    /// [`KeyError::Io`] when the file cannot be created.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        write_private_file(path, &self.to_openssh())
    }

    /// Parses OpenSSH's private key format, unencrypted.
    ///
    /// # Errors
    /// [`KeyError::Format`] for anything but one unencrypted key of a supported type.
    pub fn from_openssh(text: &str) -> Result<Self, KeyError> {
        Self::from_openssh_with_passphrase(text, None)
    }

    /// Parses OpenSSH's private key format; an encrypted key (`bcrypt` + `aes256-ctr`, what
    /// `ssh-keygen -N` writes) is decrypted with `passphrase`.
    ///
    /// # Errors
    /// [`KeyError::Format`]: malformed, several keys, an unsupported type or cipher, an
    /// encrypted key without a passphrase, or a wrong passphrase.
    pub fn from_openssh_with_passphrase(
        text: &str,
        passphrase: Option<&[u8]>,
    ) -> Result<Self, KeyError> {
        let start = text
            .find(PEM_BEGIN)
            .ok_or_else(|| format_error("not an OpenSSH private key"))?;
        let body = &text[start + PEM_BEGIN.len()..];
        let end = body
            .find(PEM_END)
            .ok_or_else(|| format_error("no END line"))?;
        let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
        let data = B64.decode(b64).map_err(|_| format_error("bad base64"))?;
        let bad = |_: WireError| format_error("malformed key");
        let rest = data
            .strip_prefix(OPENSSH_MAGIC)
            .ok_or_else(|| format_error("bad magic"))?;
        let mut r = Reader::new(rest);
        let cipher = r.utf8().map_err(bad)?;
        let kdf = r.utf8().map_err(bad)?;
        let kdf_options = r.string().map_err(bad)?;
        if r.u32().map_err(bad)? != 1 {
            return Err(format_error("exactly one key per file"));
        }
        let public_blob = r.string().map_err(bad)?;
        let mut private = r.string().map_err(bad)?.to_vec();
        let encrypted = match (cipher, kdf) {
            ("none", "none") => false,
            ("aes256-ctr", "bcrypt") => {
                let passphrase = passphrase
                    .ok_or_else(|| format_error("the key is encrypted: a passphrase is needed"))?;
                let mut o = Reader::new(kdf_options);
                let salt = o.string().map_err(bad)?;
                let rounds = o.u32().map_err(bad)?;
                if rounds == 0 || rounds > MAX_BCRYPT_ROUNDS {
                    return Err(format_error(format!("bcrypt rounds {rounds} out of range")));
                }
                aes256_ctr(passphrase, salt, rounds, &mut private)?;
                true
            }
            (cipher, kdf) => {
                return Err(format_error(format!(
                    "key encryption {cipher} with {kdf} is not supported (ssh-keygen's default \
                     aes256-ctr with bcrypt is)"
                )));
            }
        };
        let mut p = Reader::new(&private);
        if p.u32().map_err(bad)? != p.u32().map_err(bad)? {
            return Err(format_error(if encrypted {
                "wrong passphrase"
            } else {
                "check bytes differ"
            }));
        }
        let key = Self::read_private(&mut p)?;
        if key.public.blob() != public_blob {
            return Err(format_error("public key does not match the private key"));
        }
        Ok(key)
    }

    fn read_private(p: &mut Reader<'_>) -> Result<Self, KeyError> {
        let bad = |_: WireError| format_error("malformed private key");
        let kind = p.utf8().map_err(bad)?;
        match kind {
            "ssh-ed25519" => {
                let public = p.string().map_err(bad)?;
                let secret = p.string().map_err(bad)?;
                let comment = p.utf8().unwrap_or("");
                if secret.len() != 64 || public.len() != 32 || &secret[32..] != public {
                    return Err(format_error("malformed Ed25519 key"));
                }
                let mut seed = [0u8; 32];
                seed.copy_from_slice(&secret[..32]);
                let key = Self::ed25519(seed, comment)?;
                if key.public.blob()[key.public.blob().len() - 32..] != *public {
                    return Err(format_error("public key does not match the private key"));
                }
                Ok(key)
            }
            "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" => {
                let kind = if kind.ends_with("256") {
                    KeyKind::EcdsaP256
                } else {
                    KeyKind::EcdsaP384
                };
                let curve = p.utf8().map_err(bad)?;
                if curve != ecdsa_params(kind).2 {
                    return Err(format_error("ECDSA curve does not match the key type"));
                }
                let point = p.string().map_err(bad)?;
                let scalar = p.mpint_unsigned().map_err(bad)?;
                let comment = p.utf8().unwrap_or("");
                Self::ecdsa(kind, scalar, point, comment)
            }
            "ssh-rsa" => {
                let mut fields: [Vec<u8>; 6] = Default::default();
                for field in &mut fields {
                    *field = p.mpint_unsigned().map_err(bad)?.to_vec();
                }
                let comment = p.utf8().unwrap_or("");
                Self::rsa(fields, comment)
            }
            other => Err(format_error(format!(
                "key type {other} is not supported (ed25519, ecdsa nistp256/nistp384, rsa are)"
            ))),
        }
    }

    /// The private section before padding: check bytes, the key's fields, its comment.
    fn private_section(&self, check: u32) -> Writer {
        let mut w = Writer::new();
        w.u32(check).u32(check);
        match &self.secret {
            Secret::Ed25519 { pair, seed } => {
                let mut secret = seed.to_vec();
                secret.extend_from_slice(pair.public_key().as_ref());
                w.string("ssh-ed25519")
                    .string(pair.public_key().as_ref())
                    .string(&secret);
            }
            Secret::Ecdsa { pair, scalar } => {
                let (_, _, curve) = ecdsa_params(self.public.kind());
                w.string(self.public.type_name())
                    .string(curve)
                    .string(pair.public_key().as_ref())
                    .mpint(scalar);
            }
            Secret::Rsa { fields, .. } => {
                w.string("ssh-rsa");
                for field in fields {
                    w.mpint(field);
                }
            }
        }
        w.string(&self.comment);
        w
    }

    /// The key in OpenSSH's private key format, unencrypted.
    #[must_use]
    pub fn to_openssh(&self) -> String {
        // A check value only tells a wrong passphrase: its randomness does not matter here.
        let mut check = [0u8; 4];
        let _ = SystemRandom::new().fill(&mut check);
        let private = padded(self.private_section(u32::from_be_bytes(check)), 8);
        self.armor("none", "none", &[], &private)
    }

    /// The key in OpenSSH's private key format, encrypted with `passphrase` as
    /// `ssh-keygen -N` does (`bcrypt`, 16 rounds, `aes256-ctr`).
    ///
    /// # Errors
    /// When the random source fails or the passphrase is empty.
    pub fn to_openssh_encrypted(&self, passphrase: &[u8]) -> Result<String, KeyError> {
        let rng = SystemRandom::new();
        let mut check = [0u8; 4];
        let mut salt = [0u8; 16];
        rng.fill(&mut check).map_err(random_error)?;
        rng.fill(&mut salt).map_err(random_error)?;
        let mut private = padded(self.private_section(u32::from_be_bytes(check)), 16);
        aes256_ctr(passphrase, &salt, BCRYPT_ROUNDS, &mut private)?;
        let mut options = Writer::new();
        options.string(salt).u32(BCRYPT_ROUNDS);
        Ok(self.armor("aes256-ctr", "bcrypt", options.as_slice(), &private))
    }

    fn armor(&self, cipher: &str, kdf: &str, kdf_options: &[u8], private: &[u8]) -> String {
        let mut w = Writer::new();
        w.raw(OPENSSH_MAGIC)
            .string(cipher)
            .string(kdf)
            .string(kdf_options)
            .u32(1)
            .string(self.public.blob())
            .string(private);
        let b64 = B64.encode(w.finish());
        let mut out = String::from(PEM_BEGIN);
        out.push('\n');
        for line in b64.as_bytes().chunks(70) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(PEM_END);
        out.push('\n');
        out
    }

    /// The public key blob.
    #[must_use]
    pub fn public_blob(&self) -> Vec<u8> {
        self.public.blob().to_vec()
    }

    /// The public key.
    #[must_use]
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// The signature algorithms this key signs with, preferred first: its key type, or
    /// `rsa-sha2-512` and `rsa-sha2-256` for RSA (never SHA-1 `ssh-rsa`).
    #[must_use]
    pub fn algorithms(&self) -> &'static [&'static str] {
        match self.public.kind() {
            KeyKind::Ed25519 => &["ssh-ed25519"],
            KeyKind::EcdsaP256 => &["ecdsa-sha2-nistp256"],
            KeyKind::EcdsaP384 => &["ecdsa-sha2-nistp384"],
            KeyKind::Rsa => &["rsa-sha2-512", "rsa-sha2-256"],
        }
    }

    /// The preferred algorithm of its signatures (the first of [`SigningKey::algorithms`]).
    #[must_use]
    pub fn algorithm(&self) -> &'static str {
        self.algorithms()[0]
    }

    /// A signature blob over `data` with [`SigningKey::algorithm`].
    ///
    /// # Errors
    /// When the random source fails (ECDSA and RSA signing draw from it).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.sign_as(self.algorithm(), data)
    }

    /// A signature blob (`string algorithm, string signature`) over `data` with
    /// `algorithm`, one of [`SigningKey::algorithms`].
    ///
    /// # Errors
    /// An algorithm this key does not sign with, or a failed random source.
    pub fn sign_as(&self, algorithm: &str, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        if !self.algorithms().contains(&algorithm) {
            return Err(format_error(format!(
                "a {} key does not sign {algorithm}",
                self.public.type_name()
            )));
        }
        let rng = SystemRandom::new();
        let mut w = Writer::new();
        w.string(algorithm);
        match &self.secret {
            Secret::Ed25519 { pair, .. } => {
                w.string(pair.sign(data).as_ref());
            }
            Secret::Ecdsa { pair, scalar } => {
                let sig = pair.sign(&rng, data).map_err(random_error)?;
                let (r, s) = sig.as_ref().split_at(scalar.len());
                let mut inner = Writer::new();
                inner.mpint(r).mpint(s);
                w.string(inner.as_slice());
            }
            Secret::Rsa { pair, .. } => {
                let padding: &'static dyn signature::RsaEncoding = if algorithm == "rsa-sha2-512" {
                    &signature::RSA_PKCS1_SHA512
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(padding, &rng, data, &mut sig)
                    .map_err(|_| format_error("RSA signing failed"))?;
                w.string(&sig);
            }
        }
        Ok(w.finish())
    }
}

/// Pads a private section to `block` bytes with 1, 2, 3, ... (OpenSSH's padding).
fn padded(mut w: Writer, block: usize) -> Vec<u8> {
    let mut pad = 1u8;
    while !w.as_slice().len().is_multiple_of(block) {
        w.u8(pad);
        pad = pad.wrapping_add(1);
    }
    w.finish()
}

/// bcrypt-pbkdf(passphrase, salt, rounds) gives AES-256's key and CTR's IV; the keystream
/// is applied to `data` in place (encrypts and decrypts).
fn aes256_ctr(
    passphrase: &[u8],
    salt: &[u8],
    rounds: u32,
    data: &mut [u8],
) -> Result<(), KeyError> {
    use ctr::cipher::{KeyIvInit, StreamCipher};
    if passphrase.is_empty() {
        return Err(format_error("an empty passphrase"));
    }
    let mut key_iv = [0u8; 48];
    bcrypt_pbkdf::bcrypt_pbkdf(passphrase, salt, rounds, &mut key_iv)
        .map_err(|e| format_error(format!("bcrypt-pbkdf: {e}")))?;
    let (key, iv) = key_iv.split_at(32);
    let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new_from_slices(key, iv)
        .map_err(|_| format_error("aes256-ctr key length"))?;
    cipher.apply_keystream(data);
    key_iv.fill(0);
    Ok(())
}

/// The private scalar of a PKCS#8 ECDSA document made by `ring` (its ECPrivateKey:
/// `INTEGER 1, OCTET STRING d`). The caller's key pair, built from the same document,
/// is checked against it when the scalar is used.
fn pkcs8_scalar(doc: &[u8], width: usize) -> Option<Vec<u8>> {
    let marker = [0x02, 0x01, 0x01, 0x04, u8::try_from(width).ok()?];
    let at = doc.windows(marker.len()).position(|w| w == marker)? + marker.len();
    doc.get(at..at + width).map(<[u8]>::to_vec)
}

fn write_private_file(path: &Path, text: &str) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(kind: KeyKind) {
        let key = SigningKey::generate_kind(kind, "test").unwrap();
        let again = SigningKey::from_openssh(&key.to_openssh()).unwrap();
        assert_eq!(key.public_blob(), again.public_blob());
        let public = PublicKey::from_openssh(&key.public().to_openssh()).unwrap();
        for alg in again.algorithms() {
            let sig = again.sign_as(alg, b"data").unwrap();
            assert!(public.verify(b"data", &sig), "{alg}");
            assert!(!public.verify(b"other", &sig), "{alg}");
        }
        assert!(!public.verify(b"data", b"garbage"));
    }

    #[test]
    fn generated_keys_round_trip_through_openssh_format_and_sign() {
        round_trip(KeyKind::Ed25519);
        round_trip(KeyKind::EcdsaP256);
        round_trip(KeyKind::EcdsaP384);
        assert!(SigningKey::generate_kind(KeyKind::Rsa, "x").is_err());
    }

    #[test]
    fn encrypted_key_needs_the_right_passphrase() {
        let key = SigningKey::generate_kind(KeyKind::EcdsaP256, "enc").unwrap();
        let text = key.to_openssh_encrypted(b"secret").unwrap();
        let again = SigningKey::from_openssh_with_passphrase(&text, Some(b"secret")).unwrap();
        assert_eq!(again.public_blob(), key.public_blob());
        let wrong = SigningKey::from_openssh_with_passphrase(&text, Some(b"nope")).unwrap_err();
        assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
        let none = SigningKey::from_openssh(&text).unwrap_err();
        assert!(none.to_string().contains("passphrase is needed"), "{none}");
    }

    #[test]
    fn an_rsa_key_whose_private_parts_do_not_match_is_refused_at_load() {
        // Found by fuzz/run-stable.sh ssh_keys: ring took the components, then every
        // signature failed (also a seed of that target): the mode byte, then the key.
        let input = include_bytes!("testdata/rsa-private-parts-mismatch");
        let text = format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", B64.encode(&input[1..]));
        let err = SigningKey::from_openssh(&text).unwrap_err();
        assert!(err.to_string().contains("private parts"), "{err}");
    }

    #[test]
    fn sign_as_refuses_another_algorithm() {
        let key = SigningKey::generate("k").unwrap();
        assert!(key.sign_as("rsa-sha2-256", b"x").is_err());
    }
}
