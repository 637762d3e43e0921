//! The IMAP server on the engine: [`ImapService`] builds one [`Adapter`] per connection
//! around an [`ImapServer`] machine. Logins are checked on the thread pool (with the
//! per-peer failure delay); each mailbox command runs on the thread pool against the
//! session's [`Session`] (moved into the job and back, so one runs at a time). IDLE
//! rescans the selected mailbox every [`ImapService::idle_poll`] (a timer, not inotify)
//! and reports what changed (`* N EXISTS`, `* N EXPUNGE`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ringwork::Context;
use ringwork::tls::TlsAcceptor;

use super::parse::Command;
use super::proto::{ImapConfig, ImapEvent, ImapServer, Response, Status};
use super::store::{Outcome, Session};
use crate::cred::{AvatarId, Checker, CredError, PasswordFile};
use crate::kit::adapter::{Adapter, Application, Mailbox};

/// Settings shared by every connection of an IMAP service.
#[derive(Clone)]
pub struct ImapService {
    /// The machine's settings (`starttls` is set from the acceptor).
    pub config: ImapConfig,
    /// User `USER`'s INBOX is `maildir/USER/`, folder `F` is `maildir/USER/.F/`.
    pub maildir: PathBuf,
    /// The users.
    pub users: Arc<PasswordFile>,
    /// STARTTLS's certificate; without it STARTTLS is not offered.
    pub acceptor: Option<TlsAcceptor>,
    /// The host name in the names of files this service writes (APPEND, COPY).
    pub hostname: String,
    /// How often an idling client's mailbox is rescanned.
    pub idle_poll: Duration,
}

impl std::fmt::Debug for ImapService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapService")
            .field("maildir", &self.maildir)
            .field("starttls", &self.acceptor.is_some())
            .field("idle_poll", &self.idle_poll)
            .finish_non_exhaustive()
    }
}

impl ImapService {
    /// The protocol for a new connection (`tls`: it arrived on a `tls:` endpoint).
    #[must_use]
    pub fn connection(&self, tls: bool) -> Adapter<ImapServer, ImapApp> {
        let mut config = self.config.clone();
        config.starttls = self.acceptor.is_some();
        Adapter::new(
            ImapServer::new(config, tls),
            ImapApp {
                service: Rc::new(self.clone()),
                peer: None,
                session: None,
                logged_in: false,
                queued: None,
                pending: Vec::new(),
                ticking: false,
            },
        )
    }
}

/// Work for the session on the thread pool.
#[derive(Debug)]
enum Job {
    Run(Command),
    More,
    IdlePoll,
    IdleDone,
}

/// What tasks post back to a connection.
#[derive(Debug)]
pub enum ImapCommand {
    /// The login's outcome, with the user's session.
    Login(Result<(AvatarId, Box<Session>), CredError>),
    /// A job finished: the session back, and what it answered (`None`: the job failed
    /// to run).
    Done(Option<Box<Session>>, JobResult),
    /// Time to rescan for an idling client.
    IdleTick,
}

/// A finished job's answer.
#[derive(Debug)]
pub enum JobResult {
    /// A command's (or a FETCH part's) outcome.
    Outcome(Outcome),
    /// IDLE's rescan: untagged data.
    Changes(Vec<u8>),
    /// IDLE ended: the last changes.
    IdleDone(Vec<u8>),
    /// The thread pool failed.
    Failed(String),
}

/// The per-connection application of [`ImapService`].
pub struct ImapApp {
    service: Rc<ImapService>,
    peer: Option<IpAddr>,
    /// The session, when no job holds it.
    session: Option<Box<Session>>,
    logged_in: bool,
    /// A job that waits for the session (an IDLE rescan was running).
    queued: Option<Job>,
    /// Changes found after IDLE ended, sent with the next answer.
    pending: Vec<u8>,
    /// An IDLE rescan timer runs.
    ticking: bool,
}

impl std::fmt::Debug for ImapApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapApp")
            .field("peer", &self.peer)
            .field("logged_in", &self.logged_in)
            .finish_non_exhaustive()
    }
}

impl ImapApp {
    /// Runs `job` on the session (now, or once the running job gave it back).
    fn start(
        &mut self,
        job: Job,
        machine: &mut ImapServer,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<ImapCommand>,
    ) {
        let Some(mut session) = self.session.take() else {
            if self.logged_in {
                // An IDLE rescan holds the session: this job runs when it comes back.
                self.queued = Some(job);
            } else if !matches!(job, Job::IdlePoll) {
                // The session was lost with a failed job: answer, do not leave it waiting.
                machine.respond(Response::new(
                    Vec::new(),
                    Status::No,
                    "[UNAVAILABLE] Session lost, log in again",
                ));
            }
            return;
        };
        let work = move || {
            let result = match job {
                Job::Run(command) => JobResult::Outcome(session.run(command)),
                Job::More => JobResult::Outcome(session.fetch_more()),
                Job::IdlePoll => JobResult::Changes(session.idle_poll()),
                Job::IdleDone => JobResult::IdleDone(session.idle_poll()),
            };
            (session, result)
        };
        match ctx.thread_pool().spawn(work) {
            Ok(pending) => {
                let sender = mailbox.sender();
                ctx.handle().spawn_local(async move {
                    let command = match pending.await {
                        Ok((session, result)) => ImapCommand::Done(Some(session), result),
                        Err(e) => ImapCommand::Done(None, JobResult::Failed(e.to_string())),
                    };
                    let _ = sender.post(command);
                });
            }
            Err(e) => {
                self.logged_in = false;
                machine.respond(Response::new(
                    Vec::new(),
                    Status::No,
                    format!("[UNAVAILABLE] {e}"),
                ));
            }
        }
    }

    fn tick_later(&mut self, ctx: &mut Context<'_>, mailbox: &Mailbox<ImapCommand>) {
        if self.ticking {
            return;
        }
        self.ticking = true;
        let sender = mailbox.sender();
        let handle = ctx.handle();
        let delay = self.service.idle_poll;
        ctx.handle().spawn_local(async move {
            let _ = handle.sleep(delay).await;
            let _ = sender.post(ImapCommand::IdleTick);
        });
    }

    fn answer(&mut self, machine: &mut ImapServer, outcome: Outcome) {
        let mut response = outcome.response;
        if !self.pending.is_empty() {
            let mut data = std::mem::take(&mut self.pending);
            data.extend_from_slice(&response.data);
            response.data = data.into();
        }
        if outcome.more {
            machine.respond_part(response.data);
        } else {
            machine.respond(response);
        }
    }
}

impl Application<ImapServer> for ImapApp {
    type Command = ImapCommand;
    type Status = ();

    fn connected(
        &mut self,
        _m: &mut ImapServer,
        ctx: &mut Context<'_>,
        _mb: &Mailbox<ImapCommand>,
    ) {
        self.peer = crate::mail::peer_ip(ctx);
    }

    fn event(
        &mut self,
        machine: &mut ImapServer,
        event: ImapEvent,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<ImapCommand>,
    ) {
        match event {
            ImapEvent::StartTls => {
                crate::mail::start_tls(ctx, self.service.acceptor.as_ref(), "imap");
            }
            ImapEvent::Login(credentials) => {
                let users = Arc::clone(&self.service.users);
                let root = self.service.maildir.clone();
                let host = self.service.hostname.clone();
                let job = move || -> Result<(AvatarId, Box<Session>), CredError> {
                    let user = users.check(&credentials)?;
                    let session = Session::new(root.join(&user.0), &host);
                    Ok((user, Box::new(session)))
                };
                let sender = mailbox.sender();
                if let Err(e) =
                    crate::mail::login_later(ctx, sender, self.peer, job, ImapCommand::Login)
                {
                    machine.login_result(Err(e));
                }
            }
            ImapEvent::Request { command, .. } => {
                self.start(Job::Run(command), machine, ctx, mailbox);
            }
            ImapEvent::More => self.start(Job::More, machine, ctx, mailbox),
            ImapEvent::Idle => self.tick_later(ctx, mailbox),
            ImapEvent::IdleDone => self.start(Job::IdleDone, machine, ctx, mailbox),
        }
    }

    fn command(&mut self, machine: &mut ImapServer, command: ImapCommand, _ctx: &mut Context<'_>) {
        match command {
            ImapCommand::Login(result) => {
                let result = result.map(|(user, session)| {
                    self.session = Some(session);
                    self.logged_in = true;
                    user
                });
                machine.login_result(result);
            }
            ImapCommand::IdleTick => {
                self.ticking = false;
                if machine.is_idle() && self.session.is_some() {
                    // Started in `settled`, which has the mailbox the job posts to.
                    self.queued.get_or_insert(Job::IdlePoll);
                }
            }
            ImapCommand::Done(session, result) => {
                self.session = session;
                match result {
                    JobResult::Outcome(outcome) => self.answer(machine, outcome),
                    JobResult::Changes(data) => {
                        if machine.is_idle() {
                            machine.unsolicited(&data);
                        } else {
                            self.pending.extend_from_slice(&data);
                        }
                    }
                    JobResult::IdleDone(data) => {
                        self.pending.extend_from_slice(&data);
                        let outcome = Outcome {
                            response: Response::new(Vec::new(), Status::Ok, "IDLE terminated"),
                            more: false,
                        };
                        self.answer(machine, outcome);
                    }
                    JobResult::Failed(error) => {
                        tracing::warn!(%error, "imap: a mailbox job failed");
                        self.logged_in = false;
                        machine.respond(Response::new(
                            Vec::new(),
                            Status::No,
                            "[SERVERBUG] Internal error",
                        ));
                    }
                }
            }
        }
    }

    fn settled(
        &mut self,
        machine: &mut ImapServer,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<ImapCommand>,
    ) {
        if self.session.is_some()
            && let Some(job) = self.queued.take()
        {
            if matches!(job, Job::IdlePoll) && !machine.is_idle() {
                return;
            }
            self.start(job, machine, ctx, mailbox);
            return;
        }
        if machine.is_idle() && self.session.is_some() {
            self.tick_later(ctx, mailbox);
        }
    }
}
