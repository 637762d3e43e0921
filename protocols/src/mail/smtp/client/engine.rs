//! The SMTP client on the engine: [`SmtpClient`] runs [`SmtpClientConn`] sessions on the
//! kit adapter and offers two futures.
//!
//! - [`SmtpClient::submit`]: one session to a submission server (host and port), with
//!   STARTTLS and AUTH as configured: a result per recipient.
//! - [`SmtpClient::deliver`]: to a domain, through its MX records asked of our resolver
//!   ([`plan_mx`]: sorted, equal preferences shuffled, the implicit MX, the null MX
//!   refused); each host's addresses raced with Happy Eyeballs; the next MX on a
//!   connection failure or a `4yz`, none after a `5yz`. A result per recipient:
//!   delivered, deferred (with the last reason) or bounced.
//!
//! Does not: queue and retry later (a deferred recipient is reported, not kept), sign
//! (DKIM) or check MTA-STS/DANE. TLS: with [`TlsMode::Required`] the server's certificate
//! is verified (the configured connector, else the system roots); with
//! [`TlsMode::Opportunistic`] and no connector it is not (RFC 7435: encryption without
//! authentication beats plain text, as Postfix's `smtp_tls_security_level = may`).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use rand::TryRngCore;
use ringwork::tls::{Roots, ServerName, TlsConnector, server_name};
use ringwork::{ConnectOptions, Context, Deferred, LocalHandle, LostReason};

use super::conn::{
    ClientConfig, ClientEvent, OutgoingMessage, RecipientResult, RecipientStatus, SmtpClientConn,
    SmtpCredentials, SmtpError, Stage, TlsMode,
};
use super::mx::{MxPlan, plan_mx};
use crate::dns::proto::{RData, RType};
use crate::dns::resolver::{ResolveError, Resolver};
use crate::kit::adapter::{Adapter, Application, Mailbox};

/// Settings of an [`SmtpClient`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SmtpClientConfig {
    /// The session settings (EHLO name, STARTTLS policy, timeouts; `credentials` are set
    /// per [`SmtpClient::submit`]).
    pub session: ClientConfig,
    /// Verifies servers for STARTTLS and implicit TLS. `None`: the system roots when TLS
    /// is required, no verification when it is opportunistic.
    pub connector: Option<TlsConnector>,
    /// TLS from the first byte (port 465, RFC 8314) instead of STARTTLS, for `submit`.
    pub implicit_tls: bool,
    /// Bound on connecting to one host (lookups and attempts).
    pub connect_timeout: Duration,
}

impl Default for SmtpClientConfig {
    fn default() -> Self {
        SmtpClientConfig {
            session: ClientConfig::default(),
            connector: None,
            implicit_tls: false,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// Where [`SmtpClient::deliver`] looks and connects.
#[derive(Clone)]
pub struct DeliverConfig {
    /// The resolver asked for MX and address records.
    pub resolver: Resolver,
    /// The port of every MX host (25; tests use another).
    pub port: u16,
}

impl std::fmt::Debug for DeliverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliverConfig")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// How deferred recipients are tried again ([`SmtpClient::with_retries`]): at most
/// `attempts` tries in all, waiting `first_delay` before the second, doubling up to
/// `max_delay`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all (1: no retry).
    pub attempts: u32,
    /// The wait before the second try.
    pub first_delay: Duration,
    /// The longest wait between tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// One try: no retry.
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
        }
    }
}

/// What one session came to.
#[derive(Clone, Debug)]
pub struct SessionReport {
    /// A result per recipient, per message, in the order given.
    pub results: Vec<Vec<RecipientResult>>,
    /// How the session ended.
    pub closed: Result<(), SmtpError>,
    /// Whether it ran TLS.
    pub tls: bool,
}

/// An SMTP client on one core (cheap to clone).
#[derive(Clone, Debug)]
pub struct SmtpClient {
    handle: LocalHandle,
    config: Rc<SmtpClientConfig>,
}

impl SmtpClient {
    /// A client on the core of `handle`.
    #[must_use]
    pub fn new(handle: LocalHandle, config: SmtpClientConfig) -> SmtpClient {
        SmtpClient {
            handle,
            config: Rc::new(config),
        }
    }

    /// Submits `message` to `host`:`port` (a name, raced with Happy Eyeballs, or an IP
    /// address), authenticating with `credentials` if given (after STARTTLS; see
    /// [`ClientConfig::dangerous_auth_without_tls`]).
    pub async fn submit(
        &self,
        host: &str,
        port: u16,
        credentials: Option<SmtpCredentials>,
        message: OutgoingMessage,
    ) -> SessionReport {
        let mut session = self.config.session.clone();
        session.credentials = credentials;
        self.session(
            host,
            None,
            port,
            session,
            self.config.implicit_tls,
            vec![message],
        )
        .await
    }

    /// Delivers `message` to the mail hosts of `domain` (every recipient is taken to be
    /// in it): a result per recipient.
    pub async fn deliver(
        &self,
        deliver: &DeliverConfig,
        domain: &str,
        message: OutgoingMessage,
    ) -> Vec<RecipientResult> {
        let mut final_results: Vec<Option<RecipientResult>> = vec![None; message.to.len()];
        let mut last_reason = vec![String::new(); message.to.len()];
        let settle = |results: &mut Vec<Option<RecipientResult>>, status, reason: &str| {
            for (i, r) in results.iter_mut().enumerate() {
                if r.is_none() {
                    *r = Some(RecipientResult {
                        address: message.to[i].clone(),
                        status,
                        reply: None,
                        reason: reason.to_owned(),
                    });
                }
            }
        };
        let records = match deliver.resolver.lookup(domain, RType::MX).await {
            Ok(answer) => Some(
                answer
                    .records
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::Mx {
                            preference,
                            exchange,
                        } => Some((*preference, exchange.to_string())),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
            Err(ResolveError::NoRecords { .. }) => None,
            Err(error @ ResolveError::NxDomain { .. }) => {
                settle(
                    &mut final_results,
                    RecipientStatus::Bounced,
                    &format!("MX lookup: {error}"),
                );
                return final_results.into_iter().flatten().collect();
            }
            Err(error) => {
                settle(
                    &mut final_results,
                    RecipientStatus::Deferred,
                    &format!("MX lookup: {error}"),
                );
                return final_results.into_iter().flatten().collect();
            }
        };
        // Only spreads load among equal preferences: any seed will do if the OS has none.
        let seed = rand::rngs::OsRng.try_next_u64().unwrap_or_default();
        let hosts = match plan_mx(domain, records.as_deref(), seed) {
            MxPlan::NullMx => {
                // RFC 7505 §4.1: 556 5.1.10.
                let reason = format!("556 5.1.10 {domain} accepts no mail (null MX)");
                settle(&mut final_results, RecipientStatus::Bounced, &reason);
                return final_results.into_iter().flatten().collect();
            }
            MxPlan::Hosts(hosts) => hosts,
        };
        for mx in hosts {
            let pending: Vec<usize> = (0..message.to.len())
                .filter(|&i| final_results[i].is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            let addrs = match deliver.resolver.lookup_ip(&mx.host).await {
                Ok(ips) => ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, deliver.port))
                    .collect::<Vec<_>>(),
                Err(error) => {
                    for &i in &pending {
                        last_reason[i] = format!("{}: {error}", mx.host);
                    }
                    continue;
                }
            };
            let attempt = OutgoingMessage {
                from: message.from.clone(),
                to: pending.iter().map(|&i| message.to[i].clone()).collect(),
                data: message.data.clone(),
            };
            let report = self
                .session(
                    &mx.host,
                    Some(addrs),
                    deliver.port,
                    self.config.session.clone(),
                    false,
                    vec![attempt],
                )
                .await;
            let stop = report.closed.as_ref().is_err_and(SmtpError::is_permanent);
            let results = report.results.into_iter().next().unwrap_or_default();
            for (result, &i) in results.into_iter().zip(&pending) {
                match result.status {
                    RecipientStatus::Deferred => {
                        last_reason[i] = format!("{}: {}", mx.host, result.reason);
                    }
                    RecipientStatus::Delivered | RecipientStatus::Bounced => {
                        final_results[i] = Some(RecipientResult {
                            reason: format!("{}: {}", mx.host, result.reason),
                            ..result
                        });
                    }
                }
            }
            if stop {
                break;
            }
        }
        final_results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| RecipientResult {
                    address: message.to[i].clone(),
                    status: RecipientStatus::Deferred,
                    reply: None,
                    reason: if last_reason[i].is_empty() {
                        "no mail host could be reached".to_owned()
                    } else {
                        last_reason[i].clone()
                    },
                })
            })
            .collect()
    }

    /// Runs `attempt` for `message`, then again for its recipients still deferred, as
    /// `policy` says (a small in-memory retry: nothing survives the process). A recipient
    /// tried more than once has `(after N attempts)` in its reason.
    pub async fn with_retries<F, Fut>(
        &self,
        policy: RetryPolicy,
        message: OutgoingMessage,
        mut attempt: F,
    ) -> Vec<RecipientResult>
    where
        F: FnMut(OutgoingMessage) -> Fut,
        Fut: std::future::Future<Output = Vec<RecipientResult>>,
    {
        let mut results: Vec<Option<RecipientResult>> = vec![None; message.to.len()];
        let mut delay = policy.first_delay;
        for tried in 1..=policy.attempts.max(1) {
            let pending: Vec<usize> = (0..message.to.len())
                .filter(|&i| {
                    results[i]
                        .as_ref()
                        .is_none_or(|r| r.status == RecipientStatus::Deferred)
                })
                .collect();
            if pending.is_empty() {
                break;
            }
            if tried > 1 {
                let _ = self.handle.sleep(delay).await;
                delay = (delay * 2).min(policy.max_delay);
            }
            let part = OutgoingMessage {
                from: message.from.clone(),
                to: pending.iter().map(|&i| message.to[i].clone()).collect(),
                data: message.data.clone(),
            };
            for (mut result, i) in attempt(part).await.into_iter().zip(pending) {
                if tried > 1 {
                    result.reason = format!("{} (after {tried} attempts)", result.reason);
                }
                results[i] = Some(result);
            }
        }
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| RecipientResult {
                    address: message.to[i].clone(),
                    status: RecipientStatus::Deferred,
                    reply: None,
                    reason: "not attempted".into(),
                })
            })
            .collect()
    }

    /// One session to `host` (its `addrs` if known, else looked up) on `port`, sending
    /// `messages`, then QUIT.
    pub async fn session(
        &self,
        host: &str,
        addrs: Option<Vec<SocketAddr>>,
        port: u16,
        config: ClientConfig,
        implicit_tls: bool,
        messages: Vec<OutgoingMessage>,
    ) -> SessionReport {
        let recipients: Vec<Vec<String>> = messages.iter().map(|m| m.to.clone()).collect();
        let failed = |detail: String| SessionReport {
            results: recipients
                .iter()
                .map(|to| {
                    to.iter()
                        .map(|a| RecipientResult {
                            address: a.clone(),
                            status: RecipientStatus::Deferred,
                            reply: None,
                            reason: detail.clone(),
                        })
                        .collect()
                })
                .collect(),
            closed: Err(SmtpError::Lost {
                stage: Stage::Greeting,
                detail: Some(detail.clone()),
            }),
            tls: false,
        };
        let wants_tls = implicit_tls || config.tls != TlsMode::Off;
        let tls = if wants_tls {
            match self.connector(config.tls, implicit_tls) {
                Ok(connector) => match server_name(host) {
                    Ok(name) => Some((connector, name)),
                    Err(error) => return failed(format!("tls: {error}")),
                },
                Err(error) => return failed(error),
            }
        } else {
            None
        };
        let mut machine = SmtpClientConn::new(config, implicit_tls);
        for message in messages {
            machine.send(message);
        }
        machine.quit();
        let (report, waiter) = Deferred::new();
        let shared = Rc::new(RefCell::new(Collected::default()));
        let app = SessionApp {
            tls: tls.clone(),
            collected: Rc::clone(&shared),
            done: Some(waiter),
        };
        let mut options = ConnectOptions::new().timeout(self.config.connect_timeout);
        if implicit_tls && let Some((connector, name)) = tls {
            options = options.tls(connector, name);
        }
        let adapter = Adapter::new(machine, app);
        let connecting = match addrs {
            Some(addrs) => self.handle.connect_addrs(host, addrs, adapter, options),
            None => self.handle.connect_host(host, port, adapter, options),
        };
        // Kept until the connect is decided: dropping it earlier would cancel it.
        let _ = connecting.await;
        match report.await {
            Ok(report) => report,
            Err(_) => failed(format!("cannot connect to {host}:{port}")),
        }
    }

    fn connector(&self, mode: TlsMode, implicit: bool) -> Result<TlsConnector, String> {
        if let Some(connector) = &self.config.connector {
            return Ok(connector.clone());
        }
        let builder = if mode == TlsMode::Opportunistic && !implicit {
            TlsConnector::builder().dangerous_skip_verification()
        } else {
            TlsConnector::builder().roots(Roots::System)
        };
        builder
            .build()
            .map_err(|e| format!("tls configuration: {e}"))
    }
}

#[derive(Default)]
struct Collected {
    results: Vec<Vec<RecipientResult>>,
    tls: bool,
    lost: Option<String>,
}

/// The application of one client session: upgrades on STARTTLS, collects results.
struct SessionApp {
    tls: Option<(TlsConnector, ServerName<'static>)>,
    collected: Rc<RefCell<Collected>>,
    done: Option<ringwork::Resolver<SessionReport>>,
}

impl Application<SmtpClientConn> for SessionApp {
    type Command = ();
    type Status = ();

    fn event(
        &mut self,
        machine: &mut SmtpClientConn,
        event: ClientEvent,
        ctx: &mut Context<'_>,
        _mailbox: &Mailbox<()>,
    ) {
        match event {
            ClientEvent::StartTls => {
                let started = match &self.tls {
                    Some((connector, name)) => ctx
                        .start_tls_client(connector, name.clone())
                        .map_err(|e| e.to_string()),
                    None => Err("no TLS connector".to_owned()),
                };
                match started {
                    Ok(()) => machine.tls_started(),
                    Err(error) => {
                        self.collected.borrow_mut().lost = Some(format!("STARTTLS: {error}"));
                        ctx.abort();
                    }
                }
            }
            ClientEvent::Ready(_) => self.collected.borrow_mut().tls = machine.is_tls(),
            ClientEvent::Sent(results) => self.collected.borrow_mut().results.push(results),
            ClientEvent::Closed(closed) => {
                let mut collected = self.collected.borrow_mut();
                let closed = match (closed, collected.lost.take()) {
                    (
                        Err(SmtpError::Lost {
                            stage,
                            detail: None,
                        }),
                        Some(detail),
                    ) => Err(SmtpError::Lost {
                        stage,
                        detail: Some(detail),
                    }),
                    (closed, _) => closed,
                };
                let mut results = std::mem::take(&mut collected.results);
                // Name the transport's reason in the recipients' too.
                if let Err(error @ SmtpError::Lost { .. }) = &closed {
                    for r in results.iter_mut().flatten() {
                        if r.reply.is_none() && r.status == RecipientStatus::Deferred {
                            r.reason = error.to_string();
                        }
                    }
                }
                if let Some(done) = self.done.take() {
                    done.resolve(SessionReport {
                        results,
                        closed,
                        tls: collected.tls,
                    });
                }
            }
        }
    }

    fn lost(&mut self, _machine: &mut SmtpClientConn, _ctx: &mut Context<'_>, reason: LostReason) {
        let mut collected = self.collected.borrow_mut();
        if collected.lost.is_none() {
            collected.lost = Some(reason.to_string());
        }
    }
}
