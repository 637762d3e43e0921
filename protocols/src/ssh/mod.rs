//! SSH (RFC 4251-4254): a server and a client as sans-IO kit machines, on `ring`'s
//! primitives (no cryptography written here): `curve25519-sha256` key exchange, Ed25519
//! host keys, `chacha20-poly1305@openssh.com` and `aes256-gcm@openssh.com`, strict KEX,
//! re-keying, publickey (Ed25519, ECDSA, RSA SHA-2) and password authentication, session
//! channels and TCP forwarding; and `sftp` (Unix), the SFTP v3 file-transfer protocol that
//! the server's `sftp` subsystem runs (the `ringwork sftp-server` program speaks it on
//! stdin/stdout). See `docs/ssh.md`.

pub mod authorized;
pub mod channel;
pub mod cipher;
pub mod client;
pub mod keys;
pub mod private_key;
pub mod server;
pub mod transport;
pub mod wire;

#[cfg(feature = "engine")]
pub mod forward;
#[cfg(feature = "engine")]
pub mod service;
#[cfg(unix)]
pub mod sftp;

#[cfg(test)]
mod tests;
