//! The POP3 server on the engine: [`Pop3Service`] builds one [`Adapter`] per connection
//! around a [`Pop3Server`] machine; logins are checked on the thread pool (with the
//! per-peer failure delay), take the maildrop's lock (an flock on
//! `MAILDIR/USER/ringwork-pop3.lock`, held until the connection ends: RFC 1939's exclusive
//! access; a second session of the user gets `-ERR [IN-USE]`) and list `MAILDIR/USER/`;
//! messages are read and, at QUIT, removed on the thread pool.

use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use ringwork::Context;
use ringwork::tls::TlsAcceptor;

use super::proto::{MessageInfo, Pop3Config, Pop3Event, Pop3Server};
use crate::cred::{AvatarId, Checker, CredError, PasswordFile};
use crate::kit::adapter::{Adapter, Application, Mailbox};
use crate::mail::maildir;

/// Settings shared by every connection of a POP3 service.
#[derive(Clone)]
pub struct Pop3Service {
    /// The machine's settings (`stls` is set from the acceptor).
    pub config: Pop3Config,
    /// User `USER`'s maildrop is `maildir/USER/`.
    pub maildir: PathBuf,
    /// The users.
    pub users: Arc<PasswordFile>,
    /// STLS's certificate; without it STLS is not offered.
    pub acceptor: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Pop3Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Service")
            .field("maildir", &self.maildir)
            .field("stls", &self.acceptor.is_some())
            .finish_non_exhaustive()
    }
}

impl Pop3Service {
    /// The protocol for a new connection (`tls`: it arrived on a `tls:` endpoint).
    #[must_use]
    pub fn connection(&self, tls: bool) -> Adapter<Pop3Server, Pop3App> {
        let mut config = self.config.clone();
        config.stls = self.acceptor.is_some();
        Adapter::new(
            Pop3Server::new(config, tls),
            Pop3App {
                service: Rc::new(self.clone()),
                peer: None,
                paths: Vec::new(),
                lock: None,
            },
        )
    }
}

/// What tasks post back to a connection.
#[derive(Debug)]
pub enum Pop3Command {
    /// The login's outcome: the maildrop's lock, files and listing; `None` when another
    /// session holds the lock.
    Login(Result<Option<(MaildropLock, Vec<maildir::Entry>)>, CredError>),
    /// A message's bytes.
    Message(Result<Bytes, String>),
    /// The removals at QUIT.
    Updated(Result<(), String>),
}

/// The per-connection application of [`Pop3Service`].
pub struct Pop3App {
    service: Rc<Pop3Service>,
    peer: Option<IpAddr>,
    /// The maildrop's files, by the machine's 0-based index.
    paths: Vec<PathBuf>,
    /// Held from the login to the end of the connection.
    lock: Option<MaildropLock>,
}

/// The exclusive lock on a maildrop (released when dropped).
#[derive(Debug)]
pub struct MaildropLock {
    /// Unlocks when dropped.
    #[cfg(unix)]
    _flock: nix::fcntl::Flock<std::fs::File>,
}

impl MaildropLock {
    /// Takes the lock of the Maildir `dir` (created if missing) without waiting; `None`
    /// when another session holds it.
    ///
    /// # Errors
    /// The OS error, with the file named.
    pub fn try_take(dir: &std::path::Path) -> std::io::Result<Option<MaildropLock>> {
        maildir::create(dir)?;
        let path = dir.join("ringwork-pop3.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        #[cfg(unix)]
        {
            use nix::fcntl::{Flock, FlockArg};
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(flock) => Ok(Some(MaildropLock { _flock: flock })),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
                Err((_, errno)) => Err(std::io::Error::new(
                    std::io::Error::from(errno).kind(),
                    format!("locking {}: {errno}", path.display()),
                )),
            }
        }
        #[cfg(not(unix))]
        {
            drop(file);
            Ok(Some(MaildropLock {}))
        }
    }
}

impl std::fmt::Debug for Pop3App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3App")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Pop3App {
    /// Runs `job` on the thread pool and posts its outcome (made into a command by `wrap`).
    fn defer<T: Send + 'static>(
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Pop3Command>,
        job: impl FnOnce() -> Result<T, String> + Send + 'static,
        wrap: fn(Result<T, String>) -> Pop3Command,
    ) -> Result<(), String> {
        let pending = ctx.thread_pool().spawn(job).map_err(|e| e.to_string())?;
        let sender = mailbox.sender();
        ctx.handle().spawn_local(async move {
            let result = pending.await.unwrap_or_else(|e| Err(e.to_string()));
            let _ = sender.post(wrap(result));
        });
        Ok(())
    }
}

impl Application<Pop3Server> for Pop3App {
    type Command = Pop3Command;
    type Status = ();

    fn connected(
        &mut self,
        _m: &mut Pop3Server,
        ctx: &mut Context<'_>,
        _mb: &Mailbox<Pop3Command>,
    ) {
        self.peer = crate::mail::peer_ip(ctx);
    }

    fn event(
        &mut self,
        machine: &mut Pop3Server,
        event: Pop3Event,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Pop3Command>,
    ) {
        match event {
            Pop3Event::StartTls => {
                crate::mail::start_tls(ctx, self.service.acceptor.as_ref(), "pop3");
            }
            Pop3Event::Login(credentials) => {
                let users = Arc::clone(&self.service.users);
                let root = self.service.maildir.clone();
                let job =
                    move || -> Result<Option<(MaildropLock, Vec<maildir::Entry>)>, CredError> {
                        let AvatarId(user) = users.check(&credentials)?;
                        let dir = root.join(user);
                        let unavailable = |e: std::io::Error| CredError::Unavailable(e.to_string());
                        let Some(lock) = MaildropLock::try_take(&dir).map_err(unavailable)? else {
                            return Ok(None);
                        };
                        let entries = maildir::list(&dir).map_err(unavailable)?;
                        Ok(Some((lock, entries)))
                    };
                let sender = mailbox.sender();
                if let Err(e) =
                    crate::mail::login_later(ctx, sender, self.peer, job, Pop3Command::Login)
                {
                    machine.login_result(Err(e));
                }
            }
            Pop3Event::Retrieve { index } => {
                let Some(path) = self.paths.get(index).cloned() else {
                    return machine.message(Err("no such message".into()));
                };
                let job = move || {
                    std::fs::read(&path)
                        .map(Bytes::from)
                        .map_err(|e| format!("{}: {e}", path.display()))
                };
                if let Err(e) = Self::defer(ctx, mailbox, job, Pop3Command::Message) {
                    machine.message(Err(e));
                }
            }
            Pop3Event::Update { deleted } => {
                let paths: Vec<PathBuf> = deleted
                    .iter()
                    .filter_map(|&i| self.paths.get(i).cloned())
                    .collect();
                let job = move || maildir::remove(&paths).map_err(|e| e.to_string());
                if let Err(e) = Self::defer(ctx, mailbox, job, Pop3Command::Updated) {
                    machine.updated(Err(e));
                }
            }
        }
    }

    fn command(&mut self, machine: &mut Pop3Server, command: Pop3Command, _ctx: &mut Context<'_>) {
        match command {
            Pop3Command::Login(Ok(None)) => machine.login_in_use(),
            Pop3Command::Login(Ok(Some((lock, entries)))) => {
                self.lock = Some(lock);
                self.paths = entries.iter().map(|e| e.path.clone()).collect();
                let listing = entries
                    .into_iter()
                    .map(|e| MessageInfo {
                        uid: e.uid,
                        size: e.size,
                    })
                    .collect();
                machine.login_result(Ok(listing));
            }
            Pop3Command::Login(Err(e)) => machine.login_result(Err(e)),
            Pop3Command::Message(result) => {
                if let Err(error) = &result {
                    tracing::warn!(%error, "pop3: reading a message failed");
                }
                machine.message(result);
            }
            Pop3Command::Updated(result) => {
                if let Err(error) = &result {
                    tracing::warn!(%error, "pop3: removing messages failed");
                }
                machine.updated(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_maildrop_until_dropped() {
        let dir = std::env::temp_dir().join(format!("ringwork-pop3-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = MaildropLock::try_take(&dir).unwrap();
        assert!(first.is_some());
        assert!(MaildropLock::try_take(&dir).unwrap().is_none(), "held");
        drop(first);
        assert!(MaildropLock::try_take(&dir).unwrap().is_some(), "released");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
