//! Credentials (Twisted's `cred`): one [`Checker`] interface for every protocol that
//! authenticates (SMTP AUTH, POP3, IMAP, later SOCKS5 and HTTP basic auth).
//!
//! A checker takes [`Credentials`] and returns the [`AvatarId`] they prove (the user
//! name as the mailbox knows it) or a [`CredError`]. [`PasswordFile`] is the checker over
//! a file of Argon2id hashes (PHC strings, one `user:hash` line each) that `ringwork
//! passwd` writes. [`FailureDelays`] is the per-peer delay after failed attempts, a
//! bounded table, sans-IO (time comes in).
//!
//! Checking a password is slow on purpose (Argon2id takes tens of milliseconds and
//! memory): a checker is called on the engine's thread pool, never on a reactor —
//! [`check_deferred`] (feature `engine`) does that.

mod delay;
mod file;

pub use delay::{FailureDelays, FailureDelaysConfig};
pub use file::{PasswordFile, PasswordFileError, hash_password, valid_user};

use std::fmt;
use std::sync::Arc;

/// What a client presents to prove who it is.
#[derive(Clone)]
pub enum Credentials {
    /// A user name and a password (SMTP AUTH PLAIN/LOGIN, POP3 USER/PASS, IMAP LOGIN).
    UsernamePassword {
        /// The user name as sent.
        username: String,
        /// The password as sent (never logged: `Debug` hides it).
        password: Vec<u8>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::UsernamePassword { username, .. } => f
                .debug_struct("UsernamePassword")
                .field("username", username)
                .field("password", &"<hidden>")
                .finish(),
        }
    }
}

/// Who the credentials proved the client to be: the user name a mailbox is kept under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AvatarId(pub String);

impl fmt::Display for AvatarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredError {
    /// Unknown user or wrong password (the two are not told apart, to the client or in
    /// timing: an unknown user is checked against a dummy hash).
    #[error("authentication failed")]
    Unauthorized,
    /// The checker cannot answer now (its file is unreadable, the pool is busy).
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}

/// A credentials checker (Twisted's `ICredentialsChecker`). Blocking: call it on a thread
/// pool ([`check_deferred`]).
pub trait Checker: Send + Sync {
    /// Checks `credentials`: the avatar they prove, or why not.
    ///
    /// # Errors
    /// [`CredError::Unauthorized`] for a wrong user or password;
    /// [`CredError::Unavailable`] when the checker cannot decide.
    fn check(&self, credentials: &Credentials) -> Result<AvatarId, CredError>;
}

/// A shared checker, as connections hold it.
pub type SharedChecker = Arc<dyn Checker>;

/// Runs `checker` on `credentials` on the engine's thread pool; await the result on the
/// core (in a task) and post it to the connection.
///
/// # Errors
/// [`CredError::Unavailable`] when the pool's queue is full (the future is never made).
#[cfg(feature = "engine")]
pub fn check_deferred(
    pool: &ringwork::ThreadPool,
    checker: SharedChecker,
    credentials: Credentials,
) -> Result<ringwork::ThreadResult<Result<AvatarId, CredError>>, CredError> {
    pool.spawn(move || checker.check(&credentials))
        .map_err(|e| CredError::Unavailable(e.to_string()))
}

/// Decodes a SASL PLAIN message (RFC 4616: `authzid NUL authcid NUL password`) into
/// credentials. An authorization identity other than empty or the user itself is refused
/// (no proxy authorization).
///
/// # Errors
/// [`CredError::Unauthorized`] for a malformed message or a foreign authzid.
pub fn sasl_plain(message: &[u8]) -> Result<Credentials, CredError> {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CredError::Unauthorized);
    };
    let username = std::str::from_utf8(authcid).map_err(|_| CredError::Unauthorized)?;
    if username.is_empty() || (!authzid.is_empty() && authzid != authcid) {
        return Err(CredError::Unauthorized);
    }
    Ok(Credentials::UsernamePassword {
        username: username.to_owned(),
        password: password.to_vec(),
    })
}

#[cfg(test)]
mod tests;
