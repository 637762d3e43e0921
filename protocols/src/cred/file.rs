//! The password file: `user:$argon2id$v=19$m=..,t=..,p=..$salt$hash` lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use super::{AvatarId, Checker, CredError, Credentials};

/// A password file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    /// Reading or writing the file failed.
    #[error("password file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not `user:PHC-hash`.
    #[error("password file {path} line {line}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A user name that cannot be stored (empty, or with `:`, `/`, whitespace or control
    /// characters — it also names a Maildir folder).
    #[error("invalid user name {0:?}: use letters, digits and . _ - + @ only")]
    BadUser(String),
    /// Hashing failed (parameters refused by the library).
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// Hashes `password` with Argon2id (the library's default parameters, a random salt) into
/// a PHC string. Slow on purpose: never on a reactor.
///
/// # Errors
/// [`PasswordFileError::Hash`] if the library refuses (it does not with its defaults).
pub fn hash_password(password: &[u8]) -> Result<String, PasswordFileError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordFileError::Hash(e.to_string()))
}

/// Whether `user` may be stored: it becomes a file-name component (`DIR/USER/`).
#[must_use]
pub fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && !user.starts_with('.')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+@".contains(&b))
}

/// Users and their Argon2id hashes; a [`Checker`].
#[derive(Debug, Clone)]
pub struct PasswordFile {
    users: BTreeMap<String, String>,
    /// Verified against for an unknown user, so that it costs as long as a wrong password.
    dummy: String,
}

impl Default for PasswordFile {
    fn default() -> Self {
        PasswordFile::new()
    }
}

impl PasswordFile {
    /// An empty file.
    #[must_use]
    pub fn new() -> PasswordFile {
        // A fixed valid PHC string with the default parameters (m=19456, t=2, p=1): no
        // password matches it, and verifying against it costs what a real check costs.
        let dummy = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                     Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm8"
            .to_owned();
        PasswordFile {
            users: BTreeMap::new(),
            dummy,
        }
    }

    /// Parses file contents (`#` comments and blank lines allowed).
    ///
    /// # Errors
    /// [`PasswordFileError::Parse`] naming the first bad line.
    pub fn parse(text: &str, path: &str) -> Result<PasswordFile, PasswordFileError> {
        let mut file = PasswordFile::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| PasswordFileError::Parse {
                path: path.to_owned(),
                line: index + 1,
                reason: reason.to_owned(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash"))?;
            if !valid_user(user) {
                return Err(bad("invalid user name"));
            }
            let parsed = PasswordHash::new(hash).map_err(|e| bad(&format!("bad hash: {e}")))?;
            if parsed.algorithm.as_str() != "argon2id" {
                return Err(bad("hash is not argon2id"));
            }
            file.users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(file)
    }

    /// Reads and parses `path`; a missing file is an empty one when `missing_ok`.
    ///
    /// # Errors
    /// [`PasswordFileError`] for an unreadable or malformed file.
    pub fn load(path: &Path, missing_ok: bool) -> Result<PasswordFile, PasswordFileError> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => PasswordFile::parse(&text, &name),
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(PasswordFile::new())
            }
            Err(source) => Err(PasswordFileError::Io { path: name, source }),
        }
    }

    /// Adds or replaces `user` with a hash of `password` (slow: Argon2id).
    ///
    /// # Errors
    /// [`PasswordFileError::BadUser`] or [`PasswordFileError::Hash`].
    pub fn set_password(&mut self, user: &str, password: &[u8]) -> Result<(), PasswordFileError> {
        if !valid_user(user) {
            return Err(PasswordFileError::BadUser(user.to_owned()));
        }
        let hash = hash_password(password)?;
        self.users.insert(user.to_owned(), hash);
        Ok(())
    }

    /// Whether `user` is in the file.
    #[must_use]
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The users, in order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// The file's text.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut text = String::from("# ringwork password file: user:argon2id-PHC-hash\n");
        for (user, hash) in &self.users {
            text.push_str(user);
            text.push(':');
            text.push_str(hash);
            text.push('\n');
        }
        text
    }

    /// Writes the file atomically (a temporary file beside it, fsynced, renamed over it),
    /// readable by its owner only.
    ///
    /// # Errors
    /// [`PasswordFileError::Io`].
    pub fn save(&self, path: &Path) -> Result<(), PasswordFileError> {
        let io = |source| PasswordFileError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = Path::new(&tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(tmp).map_err(io)?;
        file.write_all(self.to_text().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(tmp, path).map_err(io)
    }
}

impl Checker for PasswordFile {
    fn check(&self, credentials: &Credentials) -> Result<AvatarId, CredError> {
        let Credentials::UsernamePassword { username, password } = credentials;
        let (stored, known) = match self.users.get(username.as_str()) {
            Some(hash) => (hash.as_str(), true),
            None => (self.dummy.as_str(), false),
        };
        let hash = PasswordHash::new(stored)
            .map_err(|e| CredError::Unavailable(format!("stored hash: {e}")))?;
        // The final comparison of hash outputs is constant-time (password-hash's `Output`
        // compares with `subtle`); an unknown user pays for a full verification too.
        let matched = Argon2::default().verify_password(password, &hash).is_ok();
        if matched && known {
            Ok(AvatarId(username.clone()))
        } else {
            Err(CredError::Unauthorized)
        }
    }
}
