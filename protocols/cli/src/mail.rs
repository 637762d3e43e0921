//! The mail services' options (`serve smtp`, `serve pop3`, `serve imap`) and how they
//! become services.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use ringwork::tls::TlsAcceptor;
use ringwork_protocols::cred::PasswordFile;
use ringwork_protocols::mail::imap::{ImapConfig, ImapService};
use ringwork_protocols::mail::pop3::{Pop3Config, Pop3Service};
use ringwork_protocols::mail::smtp::{SmtpConfig, SmtpService};

/// `serve imap`'s endpoint when none is given.
pub(crate) const DEFAULT_IMAP: &str = "tcp:1143:interface=127.0.0.1";

/// Options of `serve smtp`, `serve pop3` and `serve imap`.
#[derive(Debug, Args)]
pub(crate) struct MailArgs {
    /// smtp, pop3, imap: the Maildir root; mail for USER@DOMAIN lands in
    /// DIR/USER/{tmp,new,cur}, and POP3 and IMAP serve DIR/USER/ to USER as INBOX (IMAP
    /// folders are Maildir++ DIR/USER/.NAME/).
    #[arg(long, value_name = "DIR")]
    pub(crate) maildir: Option<PathBuf>,
    /// smtp: a local domain (repeatable) [default: localhost]; the first is the server's
    /// name in its greeting.
    #[arg(long, value_name = "NAME")]
    pub(crate) domain: Vec<String>,
    /// smtp, pop3, imap: the users (a `ringwork passwd` file): SMTP recipients must be
    /// among them, SMTP AUTH (after STARTTLS), POP3 USER/PASS (after STLS) and IMAP LOGIN
    /// (after STARTTLS) check against them.
    #[arg(long, value_name = "FILE")]
    pub(crate) users: Option<PathBuf>,
    /// smtp, pop3, imap: the certificate (PEM) for STARTTLS/STLS [with --key; without them, the
    /// self-signed certificate that `tls:` endpoints use].
    #[arg(long, value_name = "PEM", requires = "key")]
    pub(crate) cert: Option<PathBuf>,
    /// smtp, pop3, imap: the private key (PEM) of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// smtp: the largest message accepted, in bytes (advertised with SIZE).
    #[arg(long, value_name = "BYTES", default_value = "10485760")]
    pub(crate) max_message_size: usize,
}

impl MailArgs {
    fn maildir(&self, service: &str) -> Result<PathBuf, String> {
        let maildir = self
            .maildir
            .clone()
            .ok_or(format!("{service} needs --maildir DIR"))?;
        std::fs::create_dir_all(&maildir)
            .map_err(|e| format!("--maildir {}: {e}", maildir.display()))?;
        Ok(maildir)
    }

    fn users(&self) -> Result<Option<Arc<PasswordFile>>, String> {
        match &self.users {
            Some(path) => Ok(Some(Arc::new(
                PasswordFile::load(path, false).map_err(|e| e.to_string())?,
            ))),
            None => Ok(None),
        }
    }

    /// The STARTTLS/STLS acceptor: --cert/--key, else the self-signed certificate.
    fn acceptor(&self) -> Result<TlsAcceptor, String> {
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
        TlsAcceptor::builder()
            .certificate_pem_files(&cert, &key)
            .build()
            .map_err(|e| format!("STARTTLS certificate {}: {e}", cert.display()))
    }

    /// The POP3 service these options describe.
    pub(crate) fn pop3(&self) -> Result<Pop3Service, String> {
        // The users first: a refused start creates no folder.
        let users = self.users()?.ok_or("pop3 needs --users FILE")?;
        let maildir = self.maildir("pop3")?;
        let mut config = Pop3Config::default();
        // Passwords travel only under TLS: USER/PASS after STLS (or on a tls: endpoint).
        config.plaintext_login = false;
        Ok(Pop3Service {
            config,
            maildir,
            users,
            acceptor: Some(self.acceptor()?),
        })
    }

    /// The IMAP service these options describe.
    pub(crate) fn imap(&self) -> Result<ImapService, String> {
        // The users first: a refused start creates no folder.
        let users = self.users()?.ok_or("imap needs --users FILE")?;
        let maildir = self.maildir("imap")?;
        let mut config = ImapConfig::default();
        // Passwords travel only under TLS: LOGINDISABLED until STARTTLS (or on tls:).
        config.plaintext_login = false;
        Ok(ImapService {
            config,
            maildir,
            users,
            acceptor: Some(self.acceptor()?),
            hostname: "localhost".to_owned(),
            idle_poll: std::time::Duration::from_secs(1),
        })
    }

    /// The SMTP service these options describe.
    pub(crate) fn smtp(&self) -> Result<SmtpService, String> {
        let maildir = self.maildir("smtp")?;
        let mut domains: Vec<String> = self.domain.iter().map(|d| d.to_ascii_lowercase()).collect();
        if domains.is_empty() {
            domains.push("localhost".to_owned());
        }
        let users = self.users()?;
        let acceptor = self.acceptor()?;
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
