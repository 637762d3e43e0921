//! The mail services' options (`serve smtp`) and how they become a service.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use ringwork::tls::TlsAcceptor;
use ringwork_protocols::cred::PasswordFile;
use ringwork_protocols::mail::smtp::{SmtpConfig, SmtpService};

/// Options of `serve smtp`.
#[derive(Debug, Args)]
pub(crate) struct MailArgs {
    /// smtp: the Maildir root; mail for USER@DOMAIN lands in DIR/USER/{tmp,new,cur}.
    #[arg(long, value_name = "DIR")]
    pub(crate) maildir: Option<PathBuf>,
    /// smtp: a local domain (repeatable) [default: localhost]; the first is the server's
    /// name in its greeting.
    #[arg(long, value_name = "NAME")]
    pub(crate) domain: Vec<String>,
    /// smtp: the users (a `ringwork passwd` file): recipients must be among them, and AUTH
    /// PLAIN/LOGIN (after STARTTLS) checks against them.
    #[arg(long, value_name = "FILE")]
    pub(crate) users: Option<PathBuf>,
    /// smtp: the certificate (PEM) for STARTTLS [with --key; without them, STARTTLS uses
    /// the self-signed certificate that `tls:` endpoints use].
    #[arg(long, value_name = "PEM", requires = "key")]
    pub(crate) cert: Option<PathBuf>,
    /// smtp: the private key (PEM) of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// smtp: the largest message accepted, in bytes (advertised with SIZE).
    #[arg(long, value_name = "BYTES", default_value = "10485760")]
    pub(crate) max_message_size: usize,
}

impl MailArgs {
    /// The SMTP service these options describe.
    pub(crate) fn smtp(&self) -> Result<SmtpService, String> {
        let maildir = self.maildir.clone().ok_or("smtp needs --maildir DIR")?;
        std::fs::create_dir_all(&maildir)
            .map_err(|e| format!("--maildir {}: {e}", maildir.display()))?;
        let mut domains: Vec<String> = self.domain.iter().map(|d| d.to_ascii_lowercase()).collect();
        if domains.is_empty() {
            domains.push("localhost".to_owned());
        }
        let users = match &self.users {
            Some(path) => Some(Arc::new(
                PasswordFile::load(path, false).map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        let (cert, key) = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            _ => {
                let dir = ringwork_protocols::endpoint::default_self_signed_dir();
                let made =
                    ringwork_protocols::endpoint::self_signed(&dir).map_err(|e| e.to_string())?;
                if made.generated {
                    tracing::info!(
                        "STARTTLS uses a new self-signed certificate: {}",
                        made.cert.display()
                    );
                }
                (made.cert, made.key)
            }
        };
        let acceptor = TlsAcceptor::builder()
            .certificate_pem_files(&cert, &key)
            .build()
            .map_err(|e| format!("STARTTLS certificate {}: {e}", cert.display()))?;
        let mut config = SmtpConfig::default();
        config.hostname.clone_from(&domains[0]);
        config.max_message_size = self.max_message_size;
        Ok(SmtpService {
            config,
            maildir,
            domains,
            users,
            acceptor: Some(acceptor),
        })
    }
}
