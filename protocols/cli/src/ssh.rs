//! `serve ssh`: its options and how they become an [`SshService`].

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use ringwork::ProcessCommand;
use ringwork_protocols::cred::{PasswordFile, SharedChecker};
use ringwork_protocols::ssh::keys::{AuthorizedKeys, SigningKey};
use ringwork_protocols::ssh::server::ServerConfig;
use ringwork_protocols::ssh::service::SshService;

/// The default `serve ssh` endpoint.
pub(crate) const DEFAULT_SSH: &str = "tcp:2222:interface=127.0.0.1";

/// Options of `serve ssh`.
#[derive(Debug, Args)]
pub(crate) struct SshArgs {
    /// ssh: the host key (OpenSSH format, Ed25519); generated there (mode 0600) if absent.
    #[arg(long, value_name = "FILE")]
    pub(crate) host_key: Option<PathBuf>,
    /// ssh: the public keys that may log in (OpenSSH authorized_keys; lines with options
    /// are skipped).
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
        let host_key_path = self.host_key.clone().ok_or("ssh needs --host-key FILE")?;
        let (host_key, created) =
            SigningKey::load_or_generate(&host_key_path).map_err(|e| format!("--host-key: {e}"))?;
        if created {
            eprintln!("ssh: generated host key {}", host_key_path.display());
        }
        eprintln!("ssh: host key {}", host_key.public().to_openssh());
        let authorized = match &self.authorized_keys {
            Some(path) => {
                AuthorizedKeys::load(path).map_err(|e| format!("--authorized-keys: {e}"))?
            }
            None => AuthorizedKeys::default(),
        };
        if authorized.skipped() > 0 {
            eprintln!(
                "ssh: {} authorized_keys line(s) skipped (options or unsupported keys)",
                authorized.skipped()
            );
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
        Ok(SshService {
            config: ServerConfig::new(Arc::new(host_key), Arc::new(authorized)),
            checker,
            sftp_command,
            forwarding: !self.no_forwarding,
        })
    }
}
