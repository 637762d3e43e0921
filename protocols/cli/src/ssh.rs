//! `serve ssh`: its options and how they become an [`SshService`].

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use ringwork::ProcessCommand;
use ringwork_protocols::cred::{PasswordFile, SharedChecker};
use ringwork_protocols::ssh::keys::{AuthorizedKeys, KeyKind, SigningKey};
use ringwork_protocols::ssh::server::ServerConfig;
use ringwork_protocols::ssh::service::SshService;

/// The default `serve ssh` endpoint.
pub(crate) const DEFAULT_SSH: &str = "tcp:2222:interface=127.0.0.1";

/// Options of `serve ssh`.
#[derive(Debug, Args)]
pub(crate) struct SshArgs {
    /// ssh: a host key (OpenSSH format: Ed25519, ECDSA or RSA); generated there (mode
    /// 0600) if absent. Give it several times to offer several key types.
    #[arg(long, value_name = "FILE")]
    pub(crate) host_key: Vec<PathBuf>,
    /// ssh: the type generated for the absent --host-key in the same position: ed25519
    /// (the default), ecdsa (nistp256) or ecdsa384.
    #[arg(long, value_name = "TYPE", value_parser = ["ed25519", "ecdsa", "ecdsa384"])]
    pub(crate) host_key_type: Vec<String>,
    /// ssh: the passphrase of encrypted host keys (the file's first line).
    #[arg(long, value_name = "FILE")]
    pub(crate) host_key_passphrase_file: Option<PathBuf>,
    /// ssh: the public keys that may log in (OpenSSH authorized_keys, with its options:
    /// restrict, no-pty, command=, from=, permitopen=, ...; a line with an option not
    /// supported is skipped and logged).
    #[arg(long, value_name = "FILE")]
    pub(crate) authorized_keys: Option<PathBuf>,
    /// ssh: serve the `sftp` subsystem over DIR (runs `ringwork sftp-server --root DIR`).
    #[arg(long, value_name = "DIR")]
    pub(crate) sftp_root: Option<PathBuf>,
    /// ssh: refuse port forwarding (ssh -L).
    #[arg(long)]
    pub(crate) no_forwarding: bool,
}

impl SshArgs {
    /// The service these options describe (`users`: `--users`, for passwords).
    pub(crate) fn service(&self, users: Option<&std::path::Path>) -> Result<SshService, String> {
        if self.host_key.is_empty() {
            return Err("ssh needs --host-key FILE".into());
        }
        if self.host_key_type.len() > self.host_key.len() {
            return Err("more --host-key-type than --host-key".into());
        }
        let passphrase = match &self.host_key_passphrase_file {
            Some(path) => Some(
                read_passphrase(path).map_err(|e| format!("--host-key-passphrase-file: {e}"))?,
            ),
            None => None,
        };
        let mut host_keys = Vec::new();
        for (i, path) in self.host_key.iter().enumerate() {
            let kind = match self.host_key_type.get(i).map(String::as_str) {
                Some("ecdsa") => KeyKind::EcdsaP256,
                Some("ecdsa384") => KeyKind::EcdsaP384,
                _ => KeyKind::Ed25519,
            };
            let (key, created) =
                SigningKey::load_or_generate_kind(path, kind, passphrase.as_deref())
                    .map_err(|e| format!("--host-key: {e}"))?;
            if created {
                eprintln!("ssh: generated host key {}", path.display());
            }
            eprintln!("ssh: host key {}", key.public().to_openssh());
            host_keys.push(Arc::new(key));
        }
        let authorized = match &self.authorized_keys {
            Some(path) => {
                AuthorizedKeys::load(path).map_err(|e| format!("--authorized-keys: {e}"))?
            }
            None => AuthorizedKeys::default(),
        };
        for why in authorized.refused() {
            eprintln!("ssh: authorized_keys {why}: line skipped");
        }
        let checker: Option<SharedChecker> = match users {
            Some(path) => Some(Arc::new(
                PasswordFile::load(path, false).map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        if authorized.is_empty() && checker.is_none() {
            return Err(
                "ssh needs --authorized-keys FILE or --users FILE (no one could log in)".into(),
            );
        }
        let sftp_command = match &self.sftp_root {
            Some(root) => {
                let exe = std::env::current_exe().map_err(|e| format!("--sftp-root: {e}"))?;
                Some(
                    ProcessCommand::new(exe)
                        .arg("sftp-server")
                        .arg("--root")
                        .arg(root),
                )
            }
            None => None,
        };
        let mut config = ServerConfig::new(Arc::clone(&host_keys[0]), Arc::new(authorized));
        config.host_keys = host_keys;
        Ok(SshService {
            config,
            checker,
            sftp_command,
            forwarding: !self.no_forwarding,
        })
    }
}

/// A passphrase file's first line (without its line end).
pub(crate) fn read_passphrase(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(format!("{}: empty passphrase", path.display()));
    }
    Ok(line.to_vec())
}
