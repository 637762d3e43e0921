//! SFTP version 3 (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it): the codec, the
//! server's connection machine and a root directory to serve.
//!
//! Owns: `codec` (packets ⇄ [`Request`] / [`Response`]), `server` ([`SftpServer`], a kit
//! [`Machine`](crate::kit::Machine): bytes in, requests out, replies encoded), `path`
//! ([`SftpRoot`]: paths confined to a root, the client's `/`) and `fs` ([`RootFs`]: each
//! request run with blocking file I/O, bounded handles, `--read-only`).
//! Contract: the machine never touches files; an application (the `ringwork sftp-server`
//! program, one process per session as OpenSSH's `sftp-server`) takes each
//! [`SftpEvent::Request`], runs it with [`RootFs::execute`] and hands the answer to
//! [`SftpServer::reply`].
//! Extensions offered: `posix-rename@openssh.com`, `hardlink@openssh.com`,
//! `fsync@openssh.com`, `limits@openssh.com`, `statvfs@openssh.com`, `copy-data`,
//! `expand-path@openssh.com` ([`EXTENSIONS`]). Not offered: `fstatvfs`, `lsetstat`,
//! `home-directory`, `users-groups-by-id` (OpenSSH's client falls back without them).
//! Does not: speak SSH (the SSH server's `sftp` subsystem spawns `ringwork sftp-server`).
//! Spec: draft-ietf-secsh-filexfer-02; OpenSSH's `PROTOCOL` §4 (extensions).
//! Tests: `codec/tests.rs`, `server/tests.rs`, `fs/tests.rs`, the CLI's
//! `tests/sftp_interop.rs` (OpenSSH's `sftp` client); fuzz target `fuzz/sftp_server`.

pub mod codec;
pub mod fs;
pub mod path;
pub mod server;

pub use self::codec::{
    Attrs, CodecError, NameEntry, Packet, Request, Response, StatVfs, StatusCode,
};
pub use self::fs::{RootFs, RootFsConfig};
pub use self::path::{SftpPathError, SftpRoot};
pub use self::server::{EXTENSIONS, SftpConfig, SftpEvent, SftpServer};
