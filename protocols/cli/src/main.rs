//! `ringwork`: the command-line server (the twistd of this project).
//!
//! ```text
//! ringwork serve echo [--listen ENDPOINT]... [--cores N] [--backend auto|uring|poll] [--grace SECS]
//!     [--write-timeout SECS]
//! ringwork serve tcp-proxy --listen tcp:8000 --upstream ENDPOINT|HOST:PORT [--upstream ..] [--idle-timeout 300s]
//! ringwork serve socks5 --listen tcp:1080 [--user NAME:PASS]...
//! ringwork serve http-proxy --config FILE
//! ```
//!
//! Owns: the command line and turning a [`Service`] plus its endpoints
//! into listeners on a [`Runtime`] (one pinned reactor per core).
//! Contract: every core listens on each TCP endpoint (SO_REUSEPORT among this process's
//! cores; another process's listeners are joined only with `--reuse-port`); Unix and UDP
//! endpoints are served by core 0 (but DNS answers UDP on every core, SO_REUSEPORT among
//! them). One `listening on ENDPOINT (core N, backend B)` log line per
//! listener names the bound address (the real port for port 0). SIGINT or SIGTERM starts
//! a graceful shutdown (`--grace`); a second signal stops at once; exit status 0 then.
//! A bad command line exits with status 2, a failure to start (address in use, io_uring
//! unavailable under `--backend uring`) with status 1.
//! Adding a service: see `service.rs` (the [`Service`] enum, what each service needs and
//! how a core listens for it). The proxy
//! services' options and factories live in `proxy.rs`; where output goes (one
//! non-blocking log sink for everything the process writes) in `logging.rs`; the
//! `--metrics` exporter in `metrics.rs`.
//! This is its own crate (`ringwork-cli`) so that users of the `ringwork-protocols` library
//! do not build clap, tracing-subscriber, toml or rcgen; it turns on the library's
//! `toml-config` and `self-signed` features.
//! Tests: `tests/cli.rs`, `tests/cli_logging.rs` (closed, stalled and flooded stderr),
//! `tests/tls_interop.rs` and `tests/http_interop.rs` (openssl and curl as peers) and
//! `tests/metrics.rs` (Prometheus's parser) run this binary.
#![forbid(unsafe_code)]

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ringwork::logging::LogSink;
use ringwork::{BackendChoice, EngineError, Reactor, ReactorConfig, ReusePort, Runtime};
use ringwork_protocols::Endpoint;
use ringwork_protocols::dns::proto::{Catalog, Zone};
use ringwork_protocols::dns::resolver::{Resolver, ResolverConfig};
use ringwork_protocols::endpoint::ListenSpec;
use ringwork_protocols::http::reverse_proxy::ProxyConfig;
use ringwork_protocols::http::reverse_proxy::health::HealthState;
use ringwork_protocols::http::server::{AccessLog, AccessLogFormat};
use ringwork_protocols::irc::proto::IrcConfig;
use ringwork_protocols::irc::server::IrcServer;
use ringwork_protocols::limits::{ConnectionCap, DEFAULT_RATE_TABLE, RateLimit, SharedRateLimiter};
use ringwork_protocols::websocket::broadcast::Topic;

#[cfg(unix)]
mod batch_wait;
mod buffers;
mod daemon;
mod logging;
mod mail;
mod mail_send;
mod metrics;
mod passwd;
mod proxy;
mod service;
mod sftp;
mod sockopts;
mod ssh;
#[cfg(unix)]
mod takeover;
mod ws_chat;

use logging::Logging;
use proxy::{ProxyArgs, ProxyPlan};
use service::{CONNECTING, Service, ServiceOptions, misplaced_option};

/// Where `serve` listens when no `--listen` is given: loopback only, a fixed port.
const DEFAULT_LISTEN: &str = "tcp:8000:interface=127.0.0.1";

const EXAMPLES: &str = "\
Examples:
  ringwork serve echo
  ringwork serve hello --listen tcp:8080 --cores 1
  ringwork serve web --root ./public --listen tcp:8080 --access-log
  ringwork serve http-proxy --config protocols/examples/http-proxy.toml
  ringwork serve echo --listen tcp:7000 --listen unix:/tmp/echo.sock --cores 2
  ringwork serve discard --listen udp:9000:interface=127.0.0.1 --backend poll
  RUST_LOG=debug ringwork serve echo --listen tcp6:7000:interface=::1
  ringwork serve tcp-proxy --listen tcp:8000 --upstream 127.0.0.1:9000 --upstream 127.0.0.1:9001
  ringwork serve tcp-proxy --listen tcp:8000 --upstream tcp:host=backend.internal:port=80:timeout=5
  ringwork serve tcp-proxy --listen tcp:8443 --upstream tls:host=api.internal:port=443:ca=ca.pem
  ringwork serve socks5 --listen tcp:1080:interface=127.0.0.1 --user alice:secret
  ringwork serve irc --listen tcp:6667 --cores 2 --motd motd.txt --password secret

  printf 'secret\n' | ringwork passwd --file users alice
  sftp -D 'ringwork sftp-server --root ./files'
  ringwork serve smtp --listen tcp:2525 --maildir ./mail --users users --domain example.org
  ringwork serve pop3 --listen tcp:1110 --maildir ./mail --users users
  ringwork serve imap --maildir ./mail --users users --listen tcp:1143 --listen tls:1993";

const ENDPOINT_HELP: &str = "\
Endpoints:
  tcp:PORT[:interface=IPV4]     TCP over IPv4 (default interface 0.0.0.0)
  tcp6:PORT[:interface=IPV6]    TCP over IPv6 (default interface ::)
  udp:PORT[:interface=IP]       UDP, either family (default interface 0.0.0.0)
  unix:PATH                     a Unix stream socket (a stale socket file is replaced)
  tls:PORT[:interface=IP][:cert=PEM:key=PEM][:sni=NAME,CERT,KEY]...[:alpn=P1,P2]
       [:ca=PEM[:verify=optional|required]][:timeout=SECS][:records=full|dynamic]
                                TLS over TCP; without cert/key a self-signed certificate
                                for localhost is made (its path is printed). ALPN: hello,
                                web and http-proxy advertise http/1.1, the others nothing;
                                alpn= may name only protocols the service speaks
  systemd:domain=INET|INET6|UNIX:index=N   (or :name=NAME from LISTEN_FDNAMES)
                                a listening socket passed by systemd socket activation
                                (LISTEN_FDS/LISTEN_PID; index 0 is fd 3), e.g. under
                                systemd-socket-activate -l 8080 ringwork serve hello ...
  fd:N                          a listening stream socket inherited as descriptor N
  haproxy:ENDPOINT              any stream endpoint above, behind a load balancer that
                                sends a PROXY protocol (v1/v2) header first
Client endpoints (--upstream of tcp-proxy; Twisted's clientFromString):
  tcp:host=H:port=P[:timeout=SECS][:bindAddress=IP]
                                TCP to a host name or address (also tcp:H:P, or plain
                                H:P); a name is resolved at every connection and its
                                IPv6 and IPv4 addresses raced (Happy Eyeballs, RFC 8305)
  tls:host=H:port=P[:sni=NAME][:ca=PEM][:verify=no][:timeout=SECS][:bindAddress=IP]
                                TLS over TCP, verifying the server as sni (default: the
                                host) against ca (default: the system's roots)
  unix:path=P[:timeout=SECS]    a Unix stream socket (also unix:P)
  A ':' inside a value is written '\\:' (an IPv6 host needs none: tcp:host=::1:port=80).

Port 0 picks a free port (TCP only with --cores 1, since each core binds its own). Every
core listens on each TCP endpoint (SO_REUSEPORT, shared only by this process's cores unless
--reuse-port); Unix and UDP endpoints are served by core 0; every core accepts on an
inherited socket (systemd:, fd:) through its own duplicate. A port another process holds
fails with 'Address already in use'.

Examples:
  ringwork serve echo
  ringwork serve echo --listen tcp:7000 --listen unix:/tmp/echo.sock --cores 2
  ringwork serve discard --listen udp:9000:interface=127.0.0.1 --backend poll
  ringwork serve hello --listen tls:8443
  ringwork serve web --root . --listen tls:8443:cert=cert.pem:key=key.pem:alpn=http/1.1
  ringwork serve hello --listen haproxy:tcp:8080";

/// The ringwork server: runs a protocol on one io_uring (or poll) reactor per core.
///
/// Logs go to stderr, filtered by RUST_LOG (default info). They never hold a core up: when
/// stderr is full or closed, lines are dropped and counted.
#[derive(Debug, Parser)]
#[command(name = "ringwork", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a service until SIGINT or SIGTERM.
    #[command(after_help = ENDPOINT_HELP)]
    Serve(Box<Serve>),
    /// Add or replace a user of a password file (Argon2id), reading the password from
    /// stdin (a line; on a terminal, without echo).
    Passwd(passwd::Passwd),
    /// Serve one SFTP session on stdin/stdout over --root DIR (as OpenSSH's sftp-server;
    /// for an SSH server's sftp subsystem, or `sftp -D`).
    SftpServer(sftp::SftpServerArgs),
    /// Mail tools: `mail send` (the SMTP client).
    Mail(Box<mail_send::Mail>),
}

/// `ringwork serve`.
#[derive(Debug, Args)]
struct Serve {
    /// The service to run.
    #[arg(value_enum)]
    service: Service,
    /// Where to listen, as an endpoint string (repeatable; see Endpoints below)
    /// [default: tcp:8000:interface=127.0.0.1, or the `listen` of an http-proxy config].
    #[arg(
        long,
        short,
        value_name = "ENDPOINT",
        value_parser = clap::value_parser!(Endpoint),
    )]
    listen: Vec<Endpoint>,
    /// Number of cores (reactor threads, each pinned to a CPU) [default: one per CPU this
    /// process may use]. More than that works, but the reactors share CPUs (a warning says
    /// so).
    #[arg(long, value_name = "N", value_parser = parse_cores)]
    cores: Option<usize>,
    /// I/O backend; auto follows RINGWORK_BACKEND, else io_uring with a poll fallback.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Receive buffers per core (a power of two, at most 32768) [default: 1024].
    #[arg(long, value_name = "COUNT")]
    buffers: Option<u32>,
    /// Size of each receive buffer, in bytes (512..=1048576) [default: 16384].
    #[arg(long, value_name = "BYTES")]
    buffer_size: Option<u32>,
    /// How names are resolved when the server connects by name (tcp-proxy and http-proxy
    /// upstreams, socks5 requests): `dns`, ringwork's stub resolver on every core (reads
    /// /etc/resolv.conf and /etc/hosts once at start; TTL cache; Happy Eyeballs gets each
    /// family as it comes), or `system`, getaddrinfo on a thread pool (follows
    /// nsswitch.conf: mDNS, LDAP, ...).
    #[arg(long, value_enum, default_value_t = ResolverKind::Dns)]
    resolver: ResolverKind,
    /// --resolver dns: the resolv.conf to read (nameservers, search, options).
    #[arg(long, value_name = "FILE", default_value = "/etc/resolv.conf")]
    resolv_conf: std::path::PathBuf,
    /// --resolver dns: the hosts file to read (answers before any query).
    #[arg(long, value_name = "FILE", default_value = "/etc/hosts")]
    hosts_file: std::path::PathBuf,
    /// How long connections may finish after SIGINT or SIGTERM before they are closed.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    grace: Duration,
    /// Cut off a peer that takes no byte of what it is sent for this long (write-stall
    /// timeout, like nginx's send_timeout), on every service: a client that never reads a
    /// download does not hold its connection forever; `0` never [default: 60, or
    /// `timeouts.write` of an http-proxy config].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    write_timeout: Option<Duration>,
    /// web: the directory it serves.
    #[arg(long, value_name = "DIR")]
    root: Option<std::path::PathBuf>,
    /// web: bodies from BYTES up go out by sendfile(2) on plaintext HTTP/1.x; `off`: never
    /// [default: 16384].
    #[arg(long, value_name = "BYTES", value_parser = service::parse_sendfile_min)]
    sendfile_min: Option<u64>,
    /// web: files kept open per core, each used unchecked for VALID (`5s`, `500ms`, `0`)
    /// after its last stat; `off`: every request opens its file [default: 256:1s]
    #[arg(long, value_name = "ENTRIES[:VALID]", value_parser = service::OpenFileCacheConfig::parse)]
    open_file_cache: Option<service::OpenFileCacheConfig>,
    /// hello, web, http-proxy: log every HTTP response. Without FILE, to the log (stderr,
    /// target ringwork::http::access, info level); with FILE, one line per response
    /// appended to FILE by the log thread (never by a core), reopened on SIGUSR1 for
    /// logrotate (docs/operations.md).
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    access_log: Option<Option<std::path::PathBuf>>,
    /// The lines of --access-log FILE: `combined` (nginx's, then rt=, upstream= and ut=)
    /// or `json` (one object per line).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = AccessFormat::Combined)]
    access_log_format: AccessFormat,
    /// Share TCP ports with other processes' SO_REUSEPORT listeners (for a zero-downtime
    /// restart: start the new server with it while the old one, also started with it, still
    /// runs). Without it, a port another process holds fails with "Address already in use".
    #[arg(long)]
    reuse_port: bool,
    /// A repeated warning (accept failures at the descriptor limit, bad TLS ClientHellos,
    /// ...) is logged the first time, then at most once per this many seconds per core,
    /// with a `suppressed=N` count of the ones not logged; 0 logs every one.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    warn_interval: Duration,
    /// hello, web, http-proxy: requests per second each client IP may make (a token bucket
    /// per core; 429 Too Many Requests with Retry-After past it) [default: none, or
    /// `limits.requests_per_second` of an http-proxy config].
    #[arg(long, value_name = "PER_SEC")]
    rate_limit: Option<f64>,
    /// hello, web, http-proxy: requests a client IP may make at once after a pause (the
    /// bucket's size) [default: one second's worth of --rate-limit].
    #[arg(long, value_name = "N", requires = "rate_limit")]
    rate_burst: Option<u32>,
    /// Connections each client IP may have open at once, across all cores (past it a new
    /// one is closed at once) [default: none, or `limits.connections_per_ip` of an
    /// http-proxy config].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_conns_per_ip: Option<u32>,
    /// Write this process's id to FILE (twistd's --pidfile); refuse to start while a live
    /// process holds it; removed on exit.
    #[arg(long, value_name = "FILE")]
    pidfile: Option<std::path::PathBuf>,
    /// Append the log to FILE instead of stderr (reopened on SIGUSR1, for logrotate).
    #[arg(long, value_name = "FILE")]
    logfile: Option<std::path::PathBuf>,
    /// Run as this user (a name or a number) once every listener is bound (twistd's --uid):
    /// bind ports below 1024 as root, then serve as `nobody`. Its primary group too unless
    /// --gid is given.
    #[arg(long, value_name = "USER")]
    uid: Option<String>,
    /// Run as this group (a name or a number) once every listener is bound (twistd's --gid).
    #[arg(long, value_name = "GROUP")]
    gid: Option<String>,
    /// Serve Prometheus metrics at http://ENDPOINT/metrics (a tcp: or tcp6: endpoint, such
    /// as tcp:9100:interface=127.0.0.1): per-core connections, bytes, TLS handshakes,
    /// io_uring batching, and for the HTTP services responses by status class, a
    /// request-time histogram and the proxy's upstream errors (see docs/operations.md).
    #[arg(long, value_name = "ENDPOINT", value_parser = clap::value_parser!(Endpoint))]
    metrics: Option<Endpoint>,
    /// Zero-downtime restart, the running side: listen on a Unix socket at PATH for a
    /// successor (`--takeover-from PATH`), hand it every listening socket, then drain and
    /// exit (docs/operations.md).
    #[arg(long, value_name = "PATH")]
    takeover_socket: Option<std::path::PathBuf>,
    /// Zero-downtime restart, the new side: take the listening sockets of the server whose
    /// --takeover-socket is PATH (matched to this server's endpoints by address), and tell
    /// it to drain once every core accepts on them.
    #[arg(long, value_name = "PATH")]
    takeover_from: Option<std::path::PathBuf>,
    #[command(flatten)]
    socket: sockopts::SocketArgs,
    #[command(flatten)]
    batch_wait: batch_wait::BatchWaitArgs,
    #[command(flatten)]
    proxy: ProxyArgs,
    /// http-proxy: its TOML configuration (routes, upstreams, timeouts; see
    /// docs/http-proxy.md).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// dns: a zone to serve, as an RFC 1035 master file (repeatable; its SOA names the
    /// origin unless the file sets $ORIGIN first).
    #[arg(long, value_name = "FILE")]
    zone: Vec<std::path::PathBuf>,
    /// irc: the message of the day, read from this file at start (one line per line).
    #[arg(long, value_name = "FILE")]
    motd: Option<std::path::PathBuf>,
    /// irc: the connection password clients must send with PASS.
    #[arg(long, value_name = "PW")]
    password: Option<String>,
    /// irc: the server's name, the source of its messages.
    #[arg(long, value_name = "NAME", default_value = "irc.ringwork.local")]
    server_name: String,
    #[command(flatten)]
    mail: mail::MailArgs,
    #[command(flatten)]
    ssh: ssh::SshArgs,
    #[command(flatten)]
    ws_chat: ws_chat::WsChatArgs,
}

/// `--access-log-format`.
#[derive(Clone, Copy, Debug, Eq, PartialEq, ValueEnum)]
enum AccessFormat {
    /// nginx's combined format, then rt=SECS upstream=ADDR ut=SECS.
    Combined,
    /// One JSON object per line.
    Json,
}

impl From<AccessFormat> for AccessLogFormat {
    fn from(format: AccessFormat) -> Self {
        match format {
            AccessFormat::Combined => AccessLogFormat::Combined,
            AccessFormat::Json => AccessLogFormat::Json,
        }
    }
}

/// `--resolver`.
#[derive(Clone, Copy, Debug, Eq, PartialEq, ValueEnum)]
enum ResolverKind {
    /// ringwork's DNS stub resolver, one per core.
    Dns,
    /// The system's getaddrinfo on a thread pool.
    System,
}

/// `--backend`.
#[derive(Clone, Copy, Debug, Eq, PartialEq, ValueEnum)]
enum Backend {
    /// RINGWORK_BACKEND if set, else io_uring with a logged fallback to poll.
    Auto,
    /// io_uring, or an error saying why it cannot work here.
    Uring,
    /// mio readiness (epoll).
    Poll,
}

impl From<Backend> for BackendChoice {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Auto => BackendChoice::Auto,
            Backend::Uring => BackendChoice::Uring,
            Backend::Poll => BackendChoice::Poll,
        }
    }
}

/// Keeps freed memory in the process instead of glibc trimming it back to the kernel after
/// every burst (mmap threshold fixed at glibc's starting 128 KiB) (`ringwork::platform::heap`; docs/operations.md says what it costs);
/// `RINGWORK_MALLOC=trim` keeps glibc's defaults.
fn tune_heap() {
    if std::env::var_os("RINGWORK_MALLOC").is_some_and(|v| v == "trim") {
        return;
    }
    let _ = ringwork::platform::heap::keep_freed_memory(256 << 20, 128 << 10);
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    tune_heap();
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Command::Mail(mail) = cli.command {
        return mail_send::run(*mail);
    }
    let serve = match &mut cli.command {
        Command::Serve(serve) => serve,
        Command::SftpServer(args) => {
            return match sftp::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    let _ = writeln!(std::io::stderr(), "ringwork sftp-server: error: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Mail(_) => unreachable!("mail returned above"),
        Command::Passwd(passwd) => {
            return match passwd::run(passwd) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    let _ = writeln!(std::io::stderr(), "ringwork: error: {error}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    if let Some(serve_matches) = matches.subcommand_matches("serve") {
        serve.proxy.order_rules(serve_matches);
        if let Some(message) = misplaced_option(serve.service, serve_matches) {
            usage_error(message);
        }
    }
    if let Err(message) = serve.proxy.check(serve.service.proxy_kind()) {
        usage_error(message);
    }
    let logging = match Logging::init(serve.warn_interval, serve.logfile.as_deref()) {
        Ok(logging) => logging,
        Err(error) => {
            // Nothing else is written yet; a failed write of this is ignored, not a panic.
            let _ = writeln!(std::io::stderr(), "ringwork: error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(serve) => run_serve(*serve, &logging),
        Command::Passwd(_) | Command::SftpServer(_) | Command::Mail(_) => {
            unreachable!("returned above")
        }
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            logging.say(&format!("ringwork: error: {error}\n"));
            ExitCode::FAILURE
        }
    };
    logging.finish();
    code
}

/// Exits with status 2 and `message`, followed by `ringwork serve`'s usage line.
fn usage_error(message: String) -> ! {
    use clap::CommandFactory;
    let mut command = Cli::command();
    command.build();
    match command.find_subcommand_mut("serve") {
        Some(serve) => serve.error(clap::error::ErrorKind::ArgumentConflict, message),
        None => command.error(clap::error::ErrorKind::ArgumentConflict, message),
    }
    .exit()
}

fn run_serve(mut serve: Serve, logging: &Logging) -> Result<(), Box<dyn Error>> {
    // A restart: the running server's listening sockets, before anything else (its pidfile
    // is ours to replace).
    #[cfg(unix)]
    let mut received = match &serve.takeover_from {
        Some(path) => Some(takeover::Received::connect(path)?),
        None => None,
    };
    // Before anything binds: refuse to start while another server holds the pidfile.
    #[cfg(unix)]
    let _pidfile = match &serve.pidfile {
        Some(path) => Some(daemon::Pidfile::acquire(
            path,
            received.as_ref().map(|r| r.predecessor),
        )?),
        None => None,
    };
    // The takeover socket is bound now (a bad path fails the start), unless this server
    // takes over: its predecessor may be on the same path, bound again once it is ready.
    #[cfg(unix)]
    let takeover_socket = match (&serve.takeover_socket, &received) {
        (Some(path), None) => Some((path.clone(), Some(takeover::bind(path, false)?))),
        (Some(path), Some(_)) => Some((path.clone(), None)),
        (None, _) => None,
    };
    #[cfg(unix)]
    let privileges = daemon::Privileges::resolve(serve.uid.as_deref(), serve.gid.as_deref())?;
    let proxy = match (&serve.config, serve.service) {
        (Some(path), Service::HttpProxy) => {
            let config = ProxyConfig::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
            // `--listen` replaces the file's `listen`; one of them must name an endpoint.
            if serve.listen.is_empty() {
                if config.listen.is_empty() {
                    return Err(format!(
                        "http-proxy has no endpoint: give --listen ENDPOINT or `listen = [..]` in {}",
                        path.display()
                    )
                    .into());
                }
                serve.listen.clone_from(&config.listen);
            }
            serve.cores = serve.cores.or(config.cores);
            Some(config)
        }
        // `misplaced_option` refused --config for the other services.
        _ => None,
    };
    if serve.listen.is_empty() {
        if serve.service == Service::Dns {
            serve.listen.push(DEFAULT_DNS_UDP.parse()?);
            serve.listen.push(DEFAULT_DNS_TCP.parse()?);
        } else if serve.service == Service::Irc {
            serve.listen.push(DEFAULT_IRC.parse()?);
        } else if serve.service == Service::Ssh {
            serve.listen.push(ssh::DEFAULT_SSH.parse()?);
        } else if serve.service == Service::Imap {
            serve.listen.push(mail::DEFAULT_IMAP.parse()?);
        } else {
            serve.listen.push(DEFAULT_LISTEN.parse()?);
        }
    }
    let smtp = match serve.service {
        Service::Smtp => Some(serve.mail.smtp()?),
        _ => None,
    };
    let pop3 = match serve.service {
        Service::Pop3 => Some(serve.mail.pop3()?),
        _ => None,
    };
    let ssh = match serve.service {
        Service::Ssh => Some(serve.ssh.service(serve.mail.users.as_deref())?),
        _ => None,
    };
    let imap = match serve.service {
        Service::Imap => Some(serve.mail.imap()?),
        _ => None,
    };
    let dns = match serve.service {
        Service::Dns => Some(Arc::new(load_zones(&serve.zone)?)),
        _ => None,
    };
    let irc = match serve.service {
        Service::Irc => Some(irc_server(&serve)?),
        _ => None,
    };
    // The write-stall timeout: the flag, else the proxy config's, else 60 s; zero is off.
    let write_timeout = serve
        .write_timeout
        .or(proxy.as_ref().map(|c| c.timeouts.write))
        .unwrap_or(DEFAULT_WRITE_TIMEOUT);
    let write_timeout = Some(write_timeout).filter(|d| !d.is_zero());
    if serve.access_log_format == AccessFormat::Json && !matches!(serve.access_log, Some(Some(_))) {
        return Err(
            "--access-log-format json goes with --access-log FILE (the stderr log has \
                    its own format)"
                .into(),
        );
    }
    // Per-client limits: the flags, else the proxy file's `[limits]`.
    let file_limits = proxy.as_ref().map(|c| c.limits).unwrap_or_default();
    let rate_limit = match serve.rate_limit {
        Some(rate) => {
            let burst = serve
                .rate_burst
                .unwrap_or_else(|| rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32);
            Some(RateLimit::new(rate, burst).map_err(|e| format!("--rate-limit: {e}"))?)
        }
        None => file_limits.requests,
    };
    // One table for the process: a client's budget is the same on every core.
    let rate_limit = rate_limit.map(|limit| SharedRateLimiter::new(limit, DEFAULT_RATE_TABLE));
    let connections_per_ip = serve.max_conns_per_ip.or(file_limits.connections_per_ip);
    let connection_cap = connections_per_ip.map(ConnectionCap::new);
    // What a SIGHUP may change: the limits the proxy's file set, not those of flags.
    #[cfg(unix)]
    let reloadable_limits = proxy::FileLimits {
        requests: rate_limit.clone().filter(|_| serve.rate_limit.is_none()),
        connections: connection_cap
            .clone()
            .filter(|_| serve.max_conns_per_ip.is_none()),
    };
    let mut builder = Runtime::builder()
        .driver_config(
            serve.proxy.driver_config(
                serve.batch_wait.driver_config(
                    serve
                        .service
                        .driver_config(buffers::driver_config(serve.buffers, serve.buffer_size)?),
                ),
            ),
        )
        .backend(serve.backend.into())
        .reactor_config(ReactorConfig {
            write_timeout,
            warning_interval: serve.warn_interval,
            // A WebSocket message (16 MiB at most) is written whole: room for a few.
            write_buffer_limit: if serve.service.is_websocket() {
                64 << 20
            } else {
                ReactorConfig::default().write_buffer_limit
            },
            ..ReactorConfig::default()
        });
    if let Some(cores) = serve.cores {
        builder = builder.cores(cores);
    }
    let default_files = serve.resolv_conf.as_os_str() == "/etc/resolv.conf"
        && serve.hosts_file.as_os_str() == "/etc/hosts";
    if serve.resolver == ResolverKind::System && !default_files {
        return Err("--resolv-conf and --hosts-file go with --resolver dns".into());
    }
    if serve.resolver == ResolverKind::Dns && CONNECTING.contains(&serve.service) {
        let config = ResolverConfig::from_paths(&serve.resolv_conf, &serve.hosts_file)
            .map_err(|e| format!("{e} (--resolver system uses getaddrinfo instead)"))?;
        builder = builder.name_resolver(Resolver::name_resolver_factory(config));
    }
    // What this process may run on: its CPU affinity mask (taskset) and CPU quota (cgroups).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cores = serve.cores.unwrap_or(cpus);
    if cores > cpus {
        // A warning, not a refusal: more reactors than CPUs is correct, only slower (they
        // time-share), and it is how multi-core behaviour is tried on a small machine; a
        // config written for a bigger machine (`cores` in an http-proxy file) still runs.
        tracing::warn!(
            "--cores {cores} is more than the {cpus} CPU{s} this process may use (its CPU \
             affinity mask and quota): {cores} reactors will take turns on {cpus} CPU{s}, and \
             not every one is pinned to a CPU of its own",
            s = if cpus == 1 { "" } else { "s" }
        );
    }
    if cores > 1
        && let Some(endpoint) = serve
            .listen
            .iter()
            // Every TCP listener (tls: and haproxy: too) is bound on every core (and DNS's
            // UDP ports); Unix and other UDP endpoints are served by core 0 only.
            .find(|e| (e.is_stream() || serve.service == Service::Dns) && e.port() == Some(0))
    {
        return Err(format!(
            "{endpoint} with {cores} cores would bind a different free port on each core; \
             give a fixed port or --cores 1"
        )
        .into());
    }
    let runtime = builder.build()?;
    runtime.shutdown_handle().on_signals(serve.grace)?;
    #[cfg(unix)]
    let gate = privileges.map(|p| Arc::new(daemon::PrivilegeDrop::new(p, cores)));
    // `--access-log FILE`: its own sink (thread), reopened on SIGUSR1 (logrotate).
    let access_sink = match &serve.access_log {
        Some(Some(path)) => {
            let sink = LogSink::reopenable(path, ringwork::logging::DEFAULT_QUEUE_BUDGET)
                .map_err(|e| format!("--access-log {}: {e}", path.display()))?;
            Some(sink)
        }
        _ => None,
    };
    let mut reopen: Vec<LogSink> = access_sink.iter().cloned().collect();
    if serve.logfile.is_some() {
        reopen.push(logging.sink());
    }
    if !reopen.is_empty() {
        runtime.on_signal(ringwork::signal::SIGUSR1, move |_reactor| {
            for sink in &reopen {
                sink.reopen();
            }
        })?;
    }

    // The first listener failure with its endpoint, for the error message.
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let sink = Arc::clone(&failure);
    let (service, endpoints) = (serve.service, serve.listen);
    let health = proxy.as_ref().and_then(HealthState::new);
    let http = ServiceOptions {
        health: health.clone(),
        root: serve.root,
        sendfile_min: serve.sendfile_min,
        open_file_cache: serve.open_file_cache.unwrap_or_default(),
        access_log: serve.access_log.is_some(),
        access_file: access_sink
            .as_ref()
            .map(|sink| AccessLog::new(serve.access_log_format.into(), sink.writer())),
        write_timeout,
        proxy,
        dns,
        metrics: serve.metrics.is_some(),
        warn_interval: serve.warn_interval,
        rate_limit: rate_limit.clone(),
        connection_cap: connection_cap.clone(),
        irc,
        chat: Topic::new(serve.ws_chat.topic_config()),
        smtp,
        pop3,
        imap,
        ssh,
    };
    let exporter = match &serve.metrics {
        Some(endpoint) => {
            let (exporter, bound) = metrics::Exporter::start(endpoint)?;
            tracing::info!("metrics on http://{bound}/metrics");
            if let Some(health) = &health {
                exporter.set_health(health);
            }
            Some(exporter)
        }
        None => None,
    };
    let udp_reuse = if serve.reuse_port {
        ReusePort::Shared
    } else {
        ReusePort::Process
    };
    // Check the service's own settings before any core starts.
    http.server(service, None)?;
    if let Some(health) = &health {
        health
            .start()
            .map_err(|e| format!("cannot start the health-check threads: {e}"))?;
    }
    serve.socket.check()?;
    let plan = match service.proxy_kind() {
        Some(kind) => {
            serve.proxy.announce(kind, &endpoints);
            Some(serve.proxy.plan(kind)?.with_write_timeout(write_timeout))
        }
        None => None,
    };
    // Certificates and keys load once, here, before any core starts.
    let mut listeners = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let spec = if endpoint.is_stream() {
            let mut spec = ListenSpec::from_endpoint(&endpoint, service.app_protocols(), None)
                .map_err(|e| format!("serve {}: {e}", service.name()))?;
            if serve.reuse_port {
                spec.options = spec.options.reuse_port(ReusePort::Shared);
            }
            if serve.socket.any() {
                if spec.inherited.is_some() {
                    return Err(format!(
                        "{endpoint}: socket options (--backlog, --keepalive, ...) do not apply \
                         to an inherited socket: its parent made it"
                    )
                    .into());
                }
                spec.options = serve.socket.apply(spec.options);
            }
            if let Some(made) = &spec.self_signed {
                let what = if made.generated { "generated" } else { "using" };
                logging.say(&format!(
                    "{endpoint}: no certificate given; {what} a self-signed one for localhost, \
                     127.0.0.1 and ::1: {}\n  trust it with: curl --cacert {} https://localhost:{}/\n",
                    made.cert.display(),
                    made.cert.display(),
                    endpoint
                        .port()
                        .filter(|p| *p != 0)
                        .map_or_else(|| "PORT".to_owned(), |p| p.to_string())
                ));
            }
            Some(spec)
        } else {
            None
        };
        listeners.push((endpoint, spec));
    }
    // The received sockets each stream endpoint listens on instead of binding.
    #[cfg(unix)]
    let handed: Vec<Vec<i32>> = match received.as_mut() {
        Some(received) => {
            let handed = listeners
                .iter()
                .map(|(_, spec)| match spec {
                    Some(spec) if spec.inherited.is_none() => received.take(&spec.addr),
                    _ => Vec::new(),
                })
                .collect();
            received.report_unused();
            handed
        }
        None => Vec::new(),
    };
    #[cfg(not(unix))]
    let handed: Vec<Vec<i32>> = Vec::new();
    #[cfg(unix)]
    let plan_after_listen = {
        let plan = takeover::Plan {
            received,
            socket: takeover_socket,
            from: serve.takeover_from.clone(),
            shutdown: runtime.shutdown_handle(),
            grace: serve.grace,
        };
        (!plan.is_empty()).then(|| Mutex::new(Some(plan)))
    };
    let listened_cores = std::sync::atomic::AtomicUsize::new(0);
    let listeners = Arc::new(listeners);
    #[cfg(unix)]
    let proxy_file = match service {
        Service::HttpProxy => serve.config.clone(),
        _ => None,
    };
    #[cfg(unix)]
    if proxy_file.is_some() || listeners.iter().any(|(endpoint, _)| is_tls(endpoint)) {
        let reload = Arc::clone(&listeners);
        runtime.on_signal(ringwork::signal::SIGHUP, move |reactor| {
            reload_certificates(&reload);
            if let Some(path) = &proxy_file {
                proxy::reload_routes(reactor, path, &reloadable_limits);
            }
        })?;
    }
    let result = runtime.run(move |reactor| {
        if let (Some(exporter), Some(cores)) = (&exporter, reactor.cores()) {
            exporter.set_cores(cores);
        }
        // Every core holds part of the IRC network (channels and nicks by hash), listener
        // or not.
        if let Some(irc) = &http.irc {
            drop(irc.attach(reactor));
        }
        let listened = listen_all(
            reactor,
            &listeners,
            (&handed, cores),
            service,
            &http,
            plan.as_ref(),
            udp_reuse,
        )
        .map_err(|failed| {
            let (endpoint, error) = *failed;
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(|| format!("cannot listen on {endpoint}: {error}"));
            error
        });
        // Every core passes the gate (a failed one too, or the others would wait for it);
        // the last drops the process's privileges before any serves.
        #[cfg(unix)]
        if let Some(gate) = &gate
            && let Err(what) = gate.arrive()
            && listened.is_ok()
        {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(|| format!("--uid/--gid: {what}"));
            return Err(EngineError::Config { what });
        }
        listened?;
        // The last core to listen runs the takeover plan (tell the predecessor, answer
        // successors).
        let done = listened_cores.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
        #[cfg(unix)]
        if done == cores
            && let Some(plan) = &plan_after_listen
            && let Some(plan) = plan.lock().unwrap_or_else(PoisonError::into_inner).take()
            && let Some(all) = reactor.cores()
        {
            plan.ready(all.clone());
        }
        #[cfg(not(unix))]
        let _ = done;
        reactor.on_stop(|reactor| {
            let stats = reactor.stats();
            tracing::info!(
                "core {} stopped: {} connections accepted, {} bytes received",
                reactor.core_index(),
                stats.accepted,
                stats.bytes_in
            );
        });
        Ok(())
    });
    if let Some(sink) = &access_sink {
        sink.flush(Duration::from_secs(1));
    }
    match result {
        Ok(()) => Ok(()),
        Err(error) => {
            let failure = failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            Err(failure.unwrap_or_else(|| error.to_string()).into())
        }
    }
}

/// Whether `endpoint` is a `tls:` one (behind `haproxy:` too).
fn is_tls(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Tls { .. } => true,
        Endpoint::Haproxy(inner) => is_tls(inner),
        _ => false,
    }
}

/// SIGHUP: every `tls:` listener reads its certificate files again; one that fails keeps
/// its old certificates (and says why). Runs on core 0 (file reads: a reload is rare).
fn reload_certificates(listeners: &[(Endpoint, Option<ListenSpec>)]) {
    for (endpoint, spec) in listeners {
        let Some(spec) = spec else { continue };
        match spec.reload_certificates(endpoint) {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(signal = "SIGHUP", "certificates reloaded for {endpoint}");
            }
            Err(error) => tracing::error!(
                signal = "SIGHUP",
                "cannot reload the certificates of {endpoint}: {error}; still serving the \
                 old ones"
            ),
        }
    }
}

/// Listens on every endpoint this core serves; the first failure with its endpoint.
///
/// `handed` holds, per endpoint, the descriptors received from a predecessor
/// (`--takeover-from`) to listen on instead of binding, and the number of cores: every
/// received socket gets a core (see `takeover::share`).
fn listen_all(
    reactor: &mut Reactor,
    listeners: &[(Endpoint, Option<ListenSpec>)],
    (handed, cores): (&[Vec<i32>], usize),
    service: Service,
    http: &ServiceOptions,
    plan: Option<&ProxyPlan>,
    udp_reuse: ReusePort,
) -> Result<(), Box<(Endpoint, EngineError)>> {
    for (i, (endpoint, spec)) in listeners.iter().enumerate() {
        let fds = handed.get(i).map_or(&[][..], Vec::as_slice);
        let specs: Vec<std::borrow::Cow<'_, ListenSpec>> = match spec {
            #[cfg(unix)]
            Some(spec) if !fds.is_empty() => {
                // A Unix path is core 0's alone: it takes every received socket.
                let share = if spec.unix { 1 } else { cores };
                takeover::share(fds, reactor.core_index(), share)
                    .into_iter()
                    .map(|fd| {
                        let mut spec = spec.clone();
                        spec.inherited = Some(ringwork::platform::inherit::Inherited::Fd(fd));
                        std::borrow::Cow::Owned(spec)
                    })
                    .collect()
            }
            Some(spec) => vec![std::borrow::Cow::Borrowed(spec)],
            None => Vec::new(),
        };
        #[cfg(not(unix))]
        let _ = (fds, cores);
        let results: Vec<_> = if spec.is_none() {
            vec![service.listen(reactor, endpoint, None, http, plan, udp_reuse)]
        } else {
            specs
                .iter()
                .map(|spec| service.listen(reactor, endpoint, Some(spec), http, plan, udp_reuse))
                .collect()
        };
        for result in results {
            match result {
                None => {}
                Some(Ok(bound)) => tracing::info!(
                    "listening on {bound} (core {}, backend {})",
                    reactor.core_index(),
                    reactor.backend()
                ),
                Some(Err(error)) => return Err(Box::new((endpoint.clone(), error))),
            }
        }
    }
    Ok(())
}

/// Where `serve irc` listens when no `--listen` is given.
const DEFAULT_IRC: &str = "tcp:6667:interface=127.0.0.1";

/// The IRC server of `serve irc`: its name, password and MOTD file.
fn irc_server(serve: &Serve) -> Result<IrcServer, String> {
    let mut config = IrcConfig::default();
    if serve.server_name.is_empty() || serve.server_name.contains([' ', ':', '!', '@']) {
        return Err(format!(
            "--server-name {:?}: a server name has no spaces, ':', '!' or '@'",
            serve.server_name
        ));
    }
    config.server_name.clone_from(&serve.server_name);
    config.password.clone_from(&serve.password);
    if let Some(path) = &serve.motd {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("--motd {}: {e}", path.display()))?;
        config.motd = text.lines().map(str::to_owned).collect();
    }
    Ok(IrcServer::new(config))
}

/// Where `serve dns` listens when no `--listen` is given.
const DEFAULT_DNS_UDP: &str = "udp:5353:interface=127.0.0.1";
const DEFAULT_DNS_TCP: &str = "tcp:5353:interface=127.0.0.1";

/// Loads every `--zone` file into one catalog; names the file and line of any error.
fn load_zones(files: &[std::path::PathBuf]) -> Result<Catalog, String> {
    if files.is_empty() {
        return Err("dns needs at least one --zone FILE".into());
    }
    let mut catalog = Catalog::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).map_err(|e| format!("--zone {}: {e}", file.display()))?;
        let zone =
            Zone::parse(&text, &file.display().to_string(), None).map_err(|e| e.to_string())?;
        tracing::info!(
            "zone {} loaded from {}: {} records",
            zone.origin(),
            file.display(),
            zone.record_count()
        );
        catalog
            .add(zone)
            .map_err(|e| format!("--zone {}: {e}", file.display()))?;
    }
    Ok(catalog)
}

/// `--write-timeout` unless given (nginx's `send_timeout`).
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// `--cores N`: at least 1.
fn parse_cores(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("at least 1 (one reactor thread per core)".into()),
        Ok(cores) => Ok(cores),
        Err(_) => Err(format!("{text:?} is not a number of cores")),
    }
}

/// Parses a number of seconds (`10`, `2.5`).
fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::service::SERVICE_OPTIONS;

    /// Every id in `SERVICE_OPTIONS` is an argument of `serve` with that flag (a renamed
    /// field would otherwise make its check silently pass).
    #[test]
    fn service_options_name_real_arguments() {
        let command = Cli::command();
        let serve = command
            .find_subcommand("serve")
            .expect("a serve subcommand");
        for (id, flag, _) in SERVICE_OPTIONS {
            let arg = serve
                .get_arguments()
                .find(|a| a.get_id() == *id)
                .unwrap_or_else(|| panic!("no argument {id}"));
            assert_eq!(
                arg.get_long().map(|l| format!("--{l}")).as_deref(),
                Some(*flag)
            );
        }
    }
}
