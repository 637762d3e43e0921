//! `ringwork mail send`: one message from stdin, submitted to a server (`--server
//! HOST:PORT`) or delivered to each recipient domain's MX hosts (`--mx`), with the SMTP
//! client of `ringwork_protocols::mail::smtp::client`. One line per recipient on stdout;
//! the exit status says the worst outcome (0 all delivered, 75 some deferred, 69 some
//! bounced: sysexits' EX_TEMPFAIL and EX_UNAVAILABLE).

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use ringwork::tls::TlsConnector;
use ringwork::{DriverConfig, Reactor, ReactorConfig};
use ringwork_protocols::dns::resolver::{Resolver, ResolverConfig};
use ringwork_protocols::mail::smtp::client::{
    ClientConfig, DeliverConfig, OutgoingMessage, RecipientResult, RecipientStatus, RetryPolicy,
    SmtpClient, SmtpClientConfig, SmtpCredentials, Timeouts, TlsMode,
};

/// `ringwork mail`.
#[derive(Debug, Args)]
pub(crate) struct Mail {
    #[command(subcommand)]
    command: MailCommand,
}

#[derive(Debug, Subcommand)]
enum MailCommand {
    /// Send the message on stdin (headers and body) to --to recipients, through --server
    /// or the recipients' MX hosts (--mx). The password for --user comes from
    /// RINGWORK_SMTP_PASSWORD or --password-file (stdin carries the message).
    Send(Send),
}

/// STARTTLS policy on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum StartTls {
    /// Fail unless the server offers STARTTLS and the handshake (verified) succeeds.
    Required,
    /// STARTTLS when offered (not verified unless --tls-ca is given), else in the clear.
    Opportunistic,
    /// Never.
    Off,
}

/// `ringwork mail send`.
#[derive(Debug, Args)]
struct Send {
    /// The reverse path (envelope sender); `""` for the null sender.
    #[arg(long, value_name = "ADDRESS")]
    from: String,
    /// A recipient (repeatable).
    #[arg(long, value_name = "ADDRESS", required = true)]
    to: Vec<String>,
    /// Submit to this server (HOST:PORT; a name is resolved and raced with Happy Eyeballs).
    #[arg(
        long,
        value_name = "HOST:PORT",
        conflicts_with = "mx",
        required_unless_present = "mx"
    )]
    server: Option<String>,
    /// Deliver to each recipient domain's MX hosts (asked of the resolver of --resolv-conf).
    #[arg(long)]
    mx: bool,
    /// --mx: the port of the MX hosts.
    #[arg(long, value_name = "PORT", default_value_t = 25)]
    mx_port: u16,
    /// --mx: the resolv.conf naming the DNS servers.
    #[arg(long, value_name = "FILE", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// --mx: ask this DNS server (ADDR:PORT, repeatable) instead of --resolv-conf's.
    #[arg(long, value_name = "ADDR:PORT")]
    dns_server: Vec<SocketAddr>,
    /// STARTTLS policy [default: required with --user, else opportunistic].
    #[arg(long, value_enum)]
    starttls: Option<StartTls>,
    /// TLS from the first byte (port 465) instead of STARTTLS (--server only).
    #[arg(long, conflicts_with = "mx")]
    tls: bool,
    /// Verify the server's certificate against this CA (PEM) instead of the system roots.
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<PathBuf>,
    /// Do not verify the server's certificate (encrypted, not authenticated).
    #[arg(long, conflicts_with = "tls_ca")]
    tls_insecure: bool,
    /// AUTH as this user (PLAIN or LOGIN, only over TLS unless --allow-auth-in-clear).
    #[arg(long, value_name = "USER", requires = "server")]
    user: Option<String>,
    /// The password's file (its first line), when RINGWORK_SMTP_PASSWORD is not set.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Allow AUTH without TLS (the password crosses in the clear: loopback tests only).
    #[arg(long)]
    allow_auth_in_clear: bool,
    /// The name said in EHLO.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    helo: String,
    /// Try deferred recipients again this many times (in this process; nothing is queued
    /// on disk).
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,
    /// The wait before the first retry, in seconds (doubling after each, to 1 hour).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    retry_delay: f64,
    /// Bound on each command's reply, in seconds [default: RFC 5321's 2 to 10 minutes].
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

/// Runs `ringwork mail ...`; the exit code says the worst recipient outcome.
pub(crate) fn run(mail: Mail) -> ExitCode {
    let MailCommand::Send(send) = mail.command;
    match send_mail(send) {
        Ok(results) => {
            let mut out = std::io::stdout().lock();
            for r in &results {
                let word = match r.status {
                    RecipientStatus::Delivered => "delivered",
                    RecipientStatus::Deferred => "deferred",
                    RecipientStatus::Bounced => "bounced",
                };
                let _ = writeln!(out, "{} {word}: {}", r.address, r.reason);
            }
            let worst = |s| results.iter().any(|r| r.status == s);
            if worst(RecipientStatus::Bounced) {
                ExitCode::from(69)
            } else if worst(RecipientStatus::Deferred) {
                ExitCode::from(75)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ringwork: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn send_mail(send: Send) -> Result<Vec<RecipientResult>, String> {
    let credentials = match &send.user {
        Some(user) => Some(SmtpCredentials {
            username: user.clone(),
            password: password(send.password_file.as_ref())?,
        }),
        None => None,
    };
    let mut data = Vec::new();
    std::io::stdin()
        .read_to_end(&mut data)
        .map_err(|e| format!("reading the message from stdin: {e}"))?;
    let tls = match send.starttls {
        Some(StartTls::Required) => TlsMode::Required,
        Some(StartTls::Opportunistic) => TlsMode::Opportunistic,
        Some(StartTls::Off) => TlsMode::Off,
        None if credentials.is_some() => TlsMode::Required,
        None => TlsMode::Opportunistic,
    };
    let connector = if send.tls_insecure {
        Some(
            TlsConnector::builder()
                .dangerous_skip_verification()
                .build(),
        )
    } else {
        send.tls_ca
            .as_ref()
            .map(|ca| TlsConnector::builder().ca_pem_file(ca).build())
    }
    .transpose()
    .map_err(|e| format!("tls: {e}"))?;
    let mut session = ClientConfig::default();
    session.helo_name = send.helo.clone();
    session.tls = tls;
    session.dangerous_auth_without_tls = send.allow_auth_in_clear;
    if let Some(secs) = send.timeout {
        session.timeouts = Timeouts::all(Duration::from_secs(secs));
    }
    let mut config = SmtpClientConfig::default();
    config.session = session;
    config.connector = connector;
    config.implicit_tls = send.tls;
    let message = OutgoingMessage {
        from: send.from.clone(),
        to: send.to.clone(),
        data: data.into(),
    };
    let retry = RetryPolicy {
        attempts: send.retries.saturating_add(1),
        first_delay: Duration::try_from_secs_f64(send.retry_delay)
            .map_err(|e| format!("--retry-delay {}: {e}", send.retry_delay))?,
        max_delay: Duration::from_secs(3600),
    };
    let target = match &send.server {
        Some(server) => Target::Server(split_host_port(server)?),
        None if !send.dns_server.is_empty() => Target::Mx {
            resolver: ResolverConfig::with_servers(send.dns_server.iter().copied()),
            port: send.mx_port,
        },
        None => Target::Mx {
            resolver: ResolverConfig::from_paths(
                &send.resolv_conf,
                std::path::Path::new("/etc/hosts"),
            )
            .map_err(|e| e.to_string())?,
            port: send.mx_port,
        },
    };
    let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())
        .map_err(|e| e.to_string())?;
    let handle = reactor.handle();
    let client = SmtpClient::new(handle.clone(), config);
    let outcome: Rc<RefCell<Option<Outcome>>> = Rc::default();
    let slot = Rc::clone(&outcome);
    let stopper = handle.clone();
    reactor.spawn_local(async move {
        let result = match target {
            Target::Server((host, port)) => Ok(client
                .with_retries(retry, message, |part| {
                    let (client, host, credentials) =
                        (client.clone(), host.clone(), credentials.clone());
                    async move {
                        let report = client.submit(&host, port, credentials, part).await;
                        report.results.into_iter().flatten().collect()
                    }
                })
                .await),
            Target::Mx { resolver, port } => match Resolver::new(stopper.clone(), resolver) {
                Ok(resolver) => {
                    let deliver = DeliverConfig { resolver, port };
                    Ok(client
                        .with_retries(retry, message, |part| {
                            let (client, deliver) = (client.clone(), deliver.clone());
                            async move { deliver_by_domain(&client, &deliver, part).await }
                        })
                        .await)
                }
                Err(error) => Err(error.to_string()),
            },
        };
        *slot.borrow_mut() = Some(result);
        stopper.run(|reactor| reactor.stop());
    });
    reactor.run().map_err(|e| e.to_string())?;
    let result = outcome.borrow_mut().take();
    result.unwrap_or_else(|| Err("the client stopped without a result".into()))
}

/// What the client task hands back: a result per recipient, or why there is none.
type Outcome = Result<Vec<RecipientResult>, String>;

enum Target {
    Server((String, u16)),
    Mx { resolver: ResolverConfig, port: u16 },
}

/// Delivers to each recipient domain in turn; the results in the order of `--to`.
async fn deliver_by_domain(
    client: &SmtpClient,
    deliver: &DeliverConfig,
    message: OutgoingMessage,
) -> Vec<RecipientResult> {
    let domain_of = |a: &str| a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
    let mut domains: Vec<String> = message.to.iter().filter_map(|a| domain_of(a)).collect();
    domains.sort();
    domains.dedup();
    let mut results: Vec<Option<RecipientResult>> = vec![None; message.to.len()];
    for domain in domains {
        let to: Vec<usize> = (0..message.to.len())
            .filter(|&i| domain_of(&message.to[i]).as_deref() == Some(domain.as_str()))
            .collect();
        let part = OutgoingMessage {
            from: message.from.clone(),
            to: to.iter().map(|&i| message.to[i].clone()).collect(),
            data: message.data.clone(),
        };
        for (r, i) in client
            .deliver(deliver, &domain, part)
            .await
            .into_iter()
            .zip(to)
        {
            results[i] = Some(r);
        }
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| RecipientResult {
                address: message.to[i].clone(),
                status: RecipientStatus::Bounced,
                reply: None,
                reason: "no domain in the address".into(),
            })
        })
        .collect()
}

/// `HOST:PORT`, `[V6]:PORT` or `V4:PORT`.
fn split_host_port(server: &str) -> Result<(String, u16), String> {
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = server
        .rsplit_once(':')
        .ok_or_else(|| format!("--server {server}: expected HOST:PORT"))?;
    let port = port
        .parse()
        .map_err(|_| format!("--server {server}: bad port {port:?}"))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

/// RINGWORK_SMTP_PASSWORD, else the first line of `file`.
fn password(file: Option<&PathBuf>) -> Result<String, String> {
    if let Ok(password) = std::env::var("RINGWORK_SMTP_PASSWORD") {
        return Ok(password);
    }
    let file = file.ok_or("--user needs RINGWORK_SMTP_PASSWORD or --password-file FILE")?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("--password-file {}: {e}", file.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}
