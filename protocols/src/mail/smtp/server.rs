//! The SMTP server on the engine: [`SmtpService`] builds one [`Adapter`] per connection
//! around an [`SmtpServer`] machine; recipients are decided from the local domains and
//! the users file, credentials are checked on the thread pool (with the per-peer failure
//! delay), messages are delivered into `MAILDIR/USER/` on the thread pool and acknowledged
//! only once durable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use ringwork::tls::TlsAcceptor;
use ringwork::{Context, LostReason};

use super::proto::{Envelope, RcptVerdict, SmtpConfig, SmtpEvent, SmtpServer};
use crate::cred::{AvatarId, Checker, CredError, PasswordFile, valid_user};
use crate::kit::adapter::{Adapter, Application, Mailbox};
use crate::mail::maildir;

/// Settings shared by every connection of an SMTP service.
#[derive(Clone)]
pub struct SmtpService {
    /// The machine's settings (`starttls`/`auth` are set from the acceptor and users).
    pub config: SmtpConfig,
    /// Mail for `USER@DOMAIN` goes to `maildir/USER/`.
    pub maildir: PathBuf,
    /// Local domains (lower case).
    pub domains: Vec<String>,
    /// The users: recipients must be among them, and AUTH checks against them. Without it,
    /// any well-formed local part is a mailbox and AUTH is not offered.
    pub users: Option<Arc<PasswordFile>>,
    /// STARTTLS's certificate; without it STARTTLS is not offered.
    pub acceptor: Option<TlsAcceptor>,
}

impl std::fmt::Debug for SmtpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpService")
            .field("maildir", &self.maildir)
            .field("domains", &self.domains)
            .field("users", &self.users.as_ref().map(|u| u.users().count()))
            .field("starttls", &self.acceptor.is_some())
            .finish_non_exhaustive()
    }
}

impl SmtpService {
    /// The protocol for a new connection (`tls`: it arrived on a `tls:` endpoint).
    #[must_use]
    pub fn connection(&self, tls: bool) -> Adapter<SmtpServer, SmtpApp> {
        let mut config = self.config.clone();
        config.starttls = self.acceptor.is_some();
        config.auth = self.users.is_some();
        Adapter::new(
            SmtpServer::new(config, tls),
            SmtpApp {
                service: Rc::new(self.clone()),
                peer: None,
            },
        )
    }

    /// The verdict on `address` for a client authenticated as `user`.
    #[must_use]
    pub fn verdict(&self, address: &str, user: Option<&AvatarId>) -> RcptVerdict {
        let Some((local, domain)) = address.rsplit_once('@') else {
            // RFC 5321 §4.5.1: `postmaster` without a domain is local.
            return if address.eq_ignore_ascii_case("postmaster") {
                self.local_verdict("postmaster")
            } else {
                RcptVerdict::UnknownUser
            };
        };
        if self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            self.local_verdict(local)
        } else if user.is_some() {
            RcptVerdict::NoRelayRoute
        } else {
            RcptVerdict::RelayDenied
        }
    }

    fn local_verdict(&self, local: &str) -> RcptVerdict {
        let known = valid_user(local) && self.users.as_ref().is_none_or(|u| u.contains(local));
        if known {
            RcptVerdict::Accept
        } else {
            RcptVerdict::UnknownUser
        }
    }
}

/// What tasks post back to a connection.
#[derive(Debug)]
pub enum SmtpCommand {
    /// The checker's answer (after the failure delay).
    Auth(Result<AvatarId, CredError>),
    /// The delivery's outcome.
    Delivered(Result<(), String>),
}

/// The per-connection application of [`SmtpService`].
pub struct SmtpApp {
    service: Rc<SmtpService>,
    peer: Option<IpAddr>,
}

impl std::fmt::Debug for SmtpApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpApp")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Application<SmtpServer> for SmtpApp {
    type Command = SmtpCommand;
    type Status = ();

    fn connected(
        &mut self,
        _m: &mut SmtpServer,
        ctx: &mut Context<'_>,
        _mb: &Mailbox<SmtpCommand>,
    ) {
        self.peer = crate::mail::peer_ip(ctx);
    }

    fn event(
        &mut self,
        machine: &mut SmtpServer,
        event: SmtpEvent,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<SmtpCommand>,
    ) {
        match event {
            SmtpEvent::Recipient { address, user } => {
                let verdict = self.service.verdict(&address, user.as_ref());
                machine.recipient(&address, verdict);
            }
            SmtpEvent::StartTls => {
                crate::mail::start_tls(ctx, self.service.acceptor.as_ref(), "smtp");
            }
            SmtpEvent::Auth(credentials) => {
                let Some(users) = self.service.users.clone() else {
                    machine.auth_result(Err(CredError::Unavailable("no users".into())));
                    return;
                };
                let job = move || users.check(&credentials);
                let sender = mailbox.sender();
                if let Err(e) =
                    crate::mail::login_later(ctx, sender, self.peer, job, SmtpCommand::Auth)
                {
                    machine.auth_result(Err(e));
                }
            }
            SmtpEvent::Message { envelope, data } => {
                let service = Rc::clone(&self.service);
                let targets: Vec<PathBuf> = mailboxes(&service, &envelope);
                let header = trace_header(&service.config.hostname, &envelope);
                let host = service.config.hostname.clone();
                let job = move || -> Result<(), String> {
                    for dir in &targets {
                        maildir::deliver(dir, &host, &[header.as_bytes(), &data])
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                };
                let sender = mailbox.sender();
                match ctx.thread_pool().spawn(job) {
                    Err(e) => machine.delivered(Err(e.to_string())),
                    Ok(pending) => {
                        ctx.handle().spawn_local(async move {
                            let result = pending.await.unwrap_or_else(|e| Err(e.to_string()));
                            if let Err(error) = &result {
                                tracing::warn!(%error, "smtp: delivery failed");
                            }
                            let _ = sender.post(SmtpCommand::Delivered(result));
                        });
                    }
                }
            }
        }
    }

    fn command(&mut self, machine: &mut SmtpServer, command: SmtpCommand, _ctx: &mut Context<'_>) {
        match command {
            SmtpCommand::Auth(result) => machine.auth_result(result),
            SmtpCommand::Delivered(result) => machine.delivered(result),
        }
    }

    fn lost(&mut self, _m: &mut SmtpServer, _ctx: &mut Context<'_>, _reason: LostReason) {}
}

/// The Maildirs of the envelope's (accepted, hence local) recipients, each once.
fn mailboxes(service: &SmtpService, envelope: &Envelope) -> Vec<PathBuf> {
    let mut users: Vec<String> = envelope
        .to
        .iter()
        .map(|a| a.rsplit_once('@').map_or(a.as_str(), |(l, _)| l).to_owned())
        .collect();
    users.sort();
    users.dedup();
    users.into_iter().map(|u| service.maildir.join(u)).collect()
}

/// `Return-Path:` and `Received:` lines prepended to a delivered message.
fn trace_header(host: &str, envelope: &Envelope) -> String {
    let date = httpdate_like();
    let with = match (envelope.tls, envelope.user.is_some()) {
        (false, false) => "ESMTP",
        (true, false) => "ESMTPS",
        (false, true) => "ESMTPA",
        (true, true) => "ESMTPSA",
    };
    format!(
        "Return-Path: <{}>\r\nReceived: from {} by {host} with {with}; {date}\r\n",
        envelope.from, envelope.helo
    )
}

/// The `Received:` date (IMF-fixdate is a valid RFC 5322 date, zone `GMT`).
fn httpdate_like() -> String {
    let date = crate::http::date::format_http_date(std::time::SystemTime::now());
    String::from_utf8_lossy(&date).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(users: Option<&[&str]>) -> SmtpService {
        let users = users.map(|names| {
            let text: String = names
                .iter()
                .map(|n| {
                    format!("{n}:$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n")
                })
                .collect();
            Arc::new(PasswordFile::parse(&text, "mem").expect("valid file"))
        });
        SmtpService {
            config: SmtpConfig::default(),
            maildir: PathBuf::from("/nonexistent"),
            domains: vec!["example.org".into(), "localhost".into()],
            users,
            acceptor: None,
        }
    }

    #[test]
    fn recipients_are_local_users_and_relay_is_refused() {
        let alice = AvatarId("alice".into());
        let with_users = service(Some(&["alice", "postmaster"]));
        assert_eq!(
            with_users.verdict("alice@example.org", None),
            RcptVerdict::Accept
        );
        assert_eq!(
            with_users.verdict("alice@EXAMPLE.org", None),
            RcptVerdict::Accept
        );
        assert_eq!(
            with_users.verdict("bob@example.org", None),
            RcptVerdict::UnknownUser
        );
        assert_eq!(with_users.verdict("Postmaster", None), RcptVerdict::Accept);
        assert_eq!(with_users.verdict("alice", None), RcptVerdict::UnknownUser);
        assert_eq!(
            with_users.verdict("x@other.test", None),
            RcptVerdict::RelayDenied
        );
        assert_eq!(
            with_users.verdict("x@other.test", Some(&alice)),
            RcptVerdict::NoRelayRoute
        );
        let anyone = service(None);
        assert_eq!(anyone.verdict("carol@localhost", None), RcptVerdict::Accept);
        assert_eq!(
            anyone.verdict("../etc@localhost", None),
            RcptVerdict::UnknownUser
        );
        assert_eq!(
            anyone.verdict(".hidden@localhost", None),
            RcptVerdict::UnknownUser
        );
    }

    #[test]
    fn each_recipient_mailbox_once() {
        let envelope = Envelope {
            to: vec![
                "alice@example.org".into(),
                "alice@localhost".into(),
                "bob@localhost".into(),
            ],
            ..Envelope::default()
        };
        let boxes = mailboxes(&service(None), &envelope);
        assert_eq!(
            boxes,
            [
                PathBuf::from("/nonexistent/alice"),
                PathBuf::from("/nonexistent/bob")
            ]
        );
    }
}
