//! The services of `ringwork serve`: the [`Service`] enum (its `--help` text), what each
//! needs besides its endpoints ([`ServiceOptions`]), and how a core listens on an endpoint
//! for a service (`Service::listen`). The flags that belong to some services only are
//! checked here too (`misplaced_option`).
//!
//! Adding a service: a [`Service`] variant with a doc comment, its ALPN in
//! `Service::app_protocols`, one arm in each of `Service::listen_stream` and
//! `Service::bind_datagram`, and its own flags in `SERVICE_OPTIONS`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use ringwork::{DriverConfig, EngineError, Reactor, ReusePort};
use ringwork_protocols::Endpoint;
use ringwork_protocols::basic::{Discard, DiscardDatagram, Echo, EchoDatagram};
use ringwork_protocols::dns::proto::Catalog;
use ringwork_protocols::dns::proto::tcp::TcpConfig;
use ringwork_protocols::dns::server::{UdpServer, tcp_server};
use ringwork_protocols::endpoint::{AppProtocols, ListenSpec};
use ringwork_protocols::http::reverse_proxy::health::HealthState;
use ringwork_protocols::http::reverse_proxy::{ProxyConfig, ReverseProxy};
use ringwork_protocols::http::server::{AccessLog, HttpServer, ServerConfig};
use ringwork_protocols::http::services::{StaticFiles, hello_server};
pub(crate) use ringwork_protocols::http::static_files::OpenFileCacheConfig;
use ringwork_protocols::irc::server::IrcServer;
use ringwork_protocols::limits::{ConnectionCap, SharedRateLimiter};
use ringwork_protocols::mail::imap::ImapService;
use ringwork_protocols::mail::pop3::Pop3Service;
use ringwork_protocols::mail::smtp::SmtpService;
use ringwork_protocols::websocket::broadcast::{Topic, ws_chat_server};
use ringwork_protocols::websocket::server::{service_config, ws_echo_server};

use crate::metrics;
use crate::proxy::{self, ProxyKind, ProxyPlan};

/// What the services need besides their endpoint.
#[derive(Clone, Debug)]
pub(crate) struct ServiceOptions {
    pub(crate) root: Option<std::path::PathBuf>,
    /// `--sendfile-min` of `web` (`None`: `StaticFiles::SENDFILE_MIN`).
    pub(crate) sendfile_min: Option<u64>,
    /// `--open-file-cache` of `web`.
    pub(crate) open_file_cache: OpenFileCacheConfig,
    pub(crate) access_log: bool,
    /// `--access-log FILE`: where each HTTP server's lines go.
    pub(crate) access_file: Option<AccessLog>,
    /// The write-stall timeout (`None`: off).
    pub(crate) write_timeout: Option<Duration>,
    /// The loaded `--config` of `http-proxy`.
    pub(crate) proxy: Option<ProxyConfig>,
    /// The proxy's active health checks (one state for every core), if its file has any.
    pub(crate) health: Option<Arc<HealthState>>,
    /// The zones of `dns`, loaded once and shared by every core.
    pub(crate) dns: Option<Arc<Catalog>>,
    /// Whether HTTP servers count responses for `--metrics`.
    pub(crate) metrics: bool,
    /// `--warn-interval` (the reverse proxy limits its upstream-error warnings itself).
    pub(crate) warn_interval: Duration,
    /// `--rate-limit`/`--rate-burst` (or the proxy file's `[limits]`): one table shared by
    /// every core's HTTP servers.
    pub(crate) rate_limit: Option<SharedRateLimiter>,
    /// `--max-conns-per-ip` (or `limits.connections_per_ip`): shared by every core.
    pub(crate) connection_cap: Option<ConnectionCap>,
    /// The IRC server, made once and attached on every core.
    pub(crate) irc: Option<IrcServer>,
    /// The topic of `ws-chat`, shared by every core.
    pub(crate) chat: Topic,
    /// `smtp`: the mail service (Maildir root, domains, users, STARTTLS certificate).
    pub(crate) smtp: Option<SmtpService>,
    /// `pop3`: the POP3 service (Maildir root, users, STLS certificate).
    pub(crate) pop3: Option<Pop3Service>,
    /// `imap`: the IMAP service (Maildir root, users, STARTTLS certificate).
    pub(crate) imap: Option<ImapService>,
    /// `ssh`: host key, authorized keys, password checker, sftp command.
    pub(crate) ssh: Option<ringwork_protocols::ssh::service::SshService>,
}

impl ServiceOptions {
    pub(crate) fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::default();
        config.access_log = self.access_log;
        config.write_timeout = self.write_timeout;
        config
    }

    /// The HTTP server for `service` on the core of `reactor` (`None` for the non-HTTP
    /// services).
    pub(crate) fn server(
        &self,
        service: Service,
        reactor: Option<&Reactor>,
    ) -> Result<Option<HttpServer>, EngineError> {
        let server = match service {
            Service::HttpProxy => {
                let config = self.proxy.as_ref().ok_or_else(|| EngineError::Config {
                    what: "http-proxy needs --config FILE".into(),
                })?;
                reactor.map(|reactor| {
                    let mut server = ringwork_protocols::http::reverse_proxy::server_config(config);
                    server.access_log = self.access_log;
                    server.write_timeout = self.write_timeout;
                    if self.metrics {
                        let metrics = metrics::core_http_metrics();
                        let mut proxy = ReverseProxy::with_metrics(
                            reactor.handle(),
                            config,
                            Rc::clone(&metrics),
                        )
                        .warning_interval(self.warn_interval);
                        if let Some(health) = &self.health {
                            proxy = proxy.health(health);
                        }
                        proxy::register(&proxy);
                        HttpServer::with_metrics(proxy, server, metrics)
                    } else {
                        let mut proxy = ReverseProxy::new(reactor.handle(), config)
                            .warning_interval(self.warn_interval);
                        if let Some(health) = &self.health {
                            proxy = proxy.health(health);
                        }
                        proxy::register(&proxy);
                        HttpServer::new(proxy, server)
                    }
                })
            }
            Service::Hello if self.metrics => Some(HttpServer::with_metrics(
                ringwork_protocols::http::services::hello,
                self.config(),
                metrics::core_http_metrics(),
            )),
            Service::Hello => Some(hello_server(self.config())),
            Service::WsEcho => Some(ws_echo_server(self.config(), service_config())),
            Service::WsChat => reactor.map(|reactor| {
                ws_chat_server(self.config(), service_config(), self.chat.local(reactor))
            }),
            Service::Web => {
                let root = self.root.as_ref().ok_or_else(|| EngineError::Config {
                    what: "web needs --root DIR".into(),
                })?;
                let files = StaticFiles::new(root)
                    .map_err(|e| EngineError::Config {
                        what: format!("--root {}: {e}", root.display()),
                    })?
                    .with_sendfile_min(self.sendfile_min.unwrap_or(StaticFiles::SENDFILE_MIN))
                    .with_open_file_cache(self.open_file_cache);
                Some(if self.metrics {
                    HttpServer::with_metrics(files, self.config(), metrics::core_http_metrics())
                } else {
                    HttpServer::new(files, self.config())
                })
            }
            Service::Echo
            | Service::Discard
            | Service::TcpProxy
            | Service::Socks5
            | Service::Dns
            | Service::Irc
            | Service::Smtp
            | Service::Pop3
            | Service::Imap
            | Service::Ssh => None,
        };
        Ok(server.map(|server| {
            let server = match &self.access_file {
                Some(log) => server.access_log(log.clone()),
                None => server,
            };
            match &self.rate_limit {
                Some(limiter) => server.rate_limit(limiter.clone()),
                None => server,
            }
        }))
    }

    /// The zones of `dns`.
    pub(crate) fn catalog(&self) -> Result<&Arc<Catalog>, EngineError> {
        self.dns.as_ref().ok_or_else(|| EngineError::Config {
            what: "dns needs --zone FILE".into(),
        })
    }
}

/// The services `ringwork serve` runs.
#[derive(Clone, Copy, Debug, Eq, PartialEq, ValueEnum)]
pub(crate) enum Service {
    /// Echo (RFC 862): sends back every byte (TCP, Unix) or datagram (UDP).
    Echo,
    /// Discard (RFC 863): reads and drops everything.
    Discard,
    /// HTTP/1.1 and HTTP/2 "Hello, World!" (text/plain) on every path: the benchmark endpoint.
    Hello,
    /// HTTP/1.1 and HTTP/2 static files from --root DIR (ranges, conditional requests,
    /// listings).
    Web,
    /// TCP port forward to --upstream ENDPOINT or HOST:PORT (repeatable; round-robin with
    /// health; names resolved at every connection).
    TcpProxy,
    /// SOCKS5 proxy (CONNECT; --user NAME:PASS for username/password authentication).
    Socks5,
    /// HTTP/1.1 and HTTP/2 reverse proxy configured by --config FILE (routes by Host and path prefix
    /// to upstream pools; streams bodies both ways).
    HttpProxy,
    /// WebSocket echo (RFC 6455, permessage-deflate when offered): every message back to
    /// its sender; a WebSocket upgrade on any path.
    WsEcho,
    /// WebSocket chat: every message to every client on every core (one encoding per
    /// message per core; a client more than 1 MiB behind is closed with 1013).
    WsChat,
    /// Authoritative DNS for the zones of --zone FILE (repeatable, RFC 1035 master files)
    /// over UDP and TCP (and DNS over TLS on tls: endpoints), on every core [default
    /// endpoints: udp:5353 and tcp:5353 on 127.0.0.1].
    Dns,
    /// IRC server (RFC 1459/2812 with IRCv3 tags; channels shared across cores) [default
    /// endpoint: tcp:6667 on 127.0.0.1].
    Irc,
    /// SMTP (RFC 5321 ESMTP) delivering into --maildir DIR for the users of --users FILE
    /// at the --domain names; STARTTLS (--cert/--key), AUTH PLAIN/LOGIN after it.
    Smtp,
    /// POP3 (RFC 1939; STLS, CAPA) over the same --maildir DIR for the users of --users
    /// FILE; USER/PASS only after STLS or on a tls: endpoint.
    Pop3,
    /// IMAP4rev1 (RFC 3501; IDLE, UIDPLUS, LITERAL+) over the same --maildir DIR for the
    /// users of --users FILE; LOGIN only after STARTTLS or on a tls: endpoint [default
    /// endpoint: tcp:1143 on 127.0.0.1].
    Imap,
    /// SSH server (exec, shell with a PTY, -L forwarding, the sftp subsystem): --host-key
    /// FILE, --authorized-keys FILE, --users FILE [default endpoint: tcp:2222 on 127.0.0.1].
    Ssh,
}

impl Service {
    /// `config` with what this service changes in each core's driver: DNS lets its UDP
    /// answers leave in any order (clients match them by id), so the driver gathers the
    /// answers of one size to one client into one GSO send (`udp_gso_gather`).
    pub(crate) fn driver_config(self, config: DriverConfig) -> DriverConfig {
        DriverConfig {
            udp_gso_gather: config.udp_gso_gather || self == Service::Dns,
            ..config
        }
    }

    /// Its name on the command line (`http-proxy`).
    pub(crate) fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_owned())
    }

    /// What a `tls:` listener of this service advertises by ALPN, and which `alpn=` it
    /// accepts: never a protocol the service cannot answer.
    pub(crate) fn app_protocols(self) -> AppProtocols {
        match self {
            // WebSocket over HTTP/2 is RFC 8441's extended CONNECT.
            Service::Hello
            | Service::Web
            | Service::HttpProxy
            | Service::WsEcho
            | Service::WsChat => AppProtocols::HTTP,
            // DNS over TLS (RFC 7858 names no ALPN; RFC 8310's "dot" is what clients send).
            Service::Dns => AppProtocols::Only(&["dot"]),
            // SOCKS5 has no ALPN name.
            Service::Socks5 | Service::Smtp | Service::Pop3 | Service::Ssh => {
                AppProtocols::Only(&[])
            }
            Service::Imap => AppProtocols::Only(&["imap"]),
            Service::Echo | Service::Discard | Service::TcpProxy | Service::Irc => {
                AppProtocols::Opaque
            }
        }
    }

    /// Whether this is a WebSocket service.
    pub(crate) fn is_websocket(self) -> bool {
        matches!(self, Service::WsEcho | Service::WsChat)
    }

    /// Which proxy service this is, if one.
    pub(crate) fn proxy_kind(self) -> Option<ProxyKind> {
        match self {
            Service::TcpProxy => Some(ProxyKind::Tcp),
            Service::Socks5 => Some(ProxyKind::Socks5),
            _ => None,
        }
    }

    /// Listens on a TCP endpoint or Unix socket; returns the endpoint as bound.
    pub(crate) fn listen_stream(
        self,
        reactor: &mut Reactor,
        endpoint: &Endpoint,
        spec: &ListenSpec,
        http: &ServiceOptions,
        plan: Option<&ProxyPlan>,
    ) -> Result<Endpoint, EngineError> {
        let server = http.server(self, Some(reactor))?;
        let tcp_proxy = plan.and_then(ProxyPlan::tcp_proxy);
        let socks5 = plan.and_then(ProxyPlan::socks5);
        let listener = Listener {
            spec,
            cap: http.connection_cap.as_ref(),
        };
        let bound = match (self, server) {
            (_, Some(server)) => listener.listen(reactor, server)?,
            (Service::TcpProxy | Service::Socks5, None) => match (tcp_proxy, socks5) {
                (Some(proxy), _) => listener.listen(reactor, proxy)?,
                (None, Some(socks5)) => listener.listen(reactor, socks5)?,
                (None, None) => return Err(unsupported(self, endpoint)),
            },
            (Service::Discard, None) => listener.listen(reactor, || Discard)?,
            (Service::Smtp, None) => {
                let smtp = http.smtp.clone().ok_or_else(|| EngineError::Config {
                    what: "smtp needs --maildir DIR".into(),
                })?;
                let tls = spec.options.tls.is_some();
                listener.listen(reactor, move || smtp.connection(tls))?
            }
            (Service::Pop3, None) => {
                let pop3 = http.pop3.clone().ok_or_else(|| EngineError::Config {
                    what: "pop3 needs --maildir DIR and --users FILE".into(),
                })?;
                let tls = spec.options.tls.is_some();
                listener.listen(reactor, move || pop3.connection(tls))?
            }
            (Service::Imap, None) => {
                let imap = http.imap.clone().ok_or_else(|| EngineError::Config {
                    what: "imap needs --maildir DIR and --users FILE".into(),
                })?;
                let tls = spec.options.tls.is_some();
                listener.listen(reactor, move || imap.connection(tls))?
            }
            (Service::Ssh, None) => {
                let ssh = http.ssh.clone().ok_or_else(|| EngineError::Config {
                    what: "ssh needs --host-key FILE".into(),
                })?;
                listener.listen(reactor, move || ssh.protocol())?
            }
            (Service::Dns, None) => {
                let catalog = Arc::clone(http.catalog()?);
                listener.listen(reactor, tcp_server(catalog, TcpConfig::default()))?
            }
            (Service::Irc, None) => {
                let irc = http.irc.as_ref().ok_or_else(|| EngineError::Config {
                    what: "irc: no server configured".into(),
                })?;
                let factory = irc.attach(reactor);
                listener.listen(reactor, factory)?
            }
            (_, None) => listener.listen(reactor, || Echo)?,
        };
        Ok(with_bound(endpoint, &bound))
    }

    pub(crate) fn bind_datagram(
        self,
        reactor: &mut Reactor,
        endpoint: &Endpoint,
        http: &ServiceOptions,
        reuse: ReusePort,
    ) -> Result<Endpoint, EngineError> {
        let Endpoint::Udp { addr } = endpoint else {
            return Err(unsupported(self, endpoint));
        };
        let id = match self {
            Service::Echo => reactor.bind_udp(*addr, EchoDatagram)?,
            Service::Discard => reactor.bind_udp(*addr, DiscardDatagram)?,
            // Every core binds the address; the kernel spreads queries over them.
            Service::Dns => {
                reactor.bind_udp_with(*addr, UdpServer::new(Arc::clone(http.catalog()?)), reuse)?
            }
            Service::Hello
            | Service::Web
            | Service::HttpProxy
            | Service::TcpProxy
            | Service::Socks5
            | Service::Irc
            | Service::WsEcho
            | Service::WsChat
            | Service::Smtp
            | Service::Pop3
            | Service::Imap
            | Service::Ssh => {
                return Err(unsupported(self, endpoint));
            }
        };
        let addr = reactor
            .udp_local_addr(id)?
            .as_socket()
            .ok_or_else(|| EngineError::Config {
                what: "a UDP socket without an IP address".into(),
            })?;
        Ok(Endpoint::Udp { addr })
    }

    /// Listens on `endpoint` from core `core`; `None` when another core serves it.
    pub(crate) fn listen(
        self,
        reactor: &mut Reactor,
        endpoint: &Endpoint,
        spec: Option<&ListenSpec>,
        http: &ServiceOptions,
        plan: Option<&ProxyPlan>,
        reuse: ReusePort,
    ) -> Option<Result<Endpoint, EngineError>> {
        match (endpoint, spec) {
            // A Unix path is one socket: core 0's.
            (_, Some(spec)) if spec.unix && reactor.core_index() != 0 => None,
            (_, Some(spec)) => Some(self.listen_stream(reactor, endpoint, spec, http, plan)),
            // A UDP port is core 0's, but DNS answers on every core (SO_REUSEPORT).
            (Endpoint::Udp { .. }, None) if reactor.core_index() == 0 || self == Service::Dns => {
                Some(self.bind_datagram(reactor, endpoint, http, reuse))
            }
            _ => None,
        }
    }
}

/// One stream listener of a core, with the connection cap per client if any.
pub(crate) struct Listener<'a> {
    spec: &'a ListenSpec,
    cap: Option<&'a ConnectionCap>,
}

impl Listener<'_> {
    pub(crate) fn listen(
        &self,
        reactor: &mut Reactor,
        factory: impl ringwork::Factory,
    ) -> Result<ringwork::SockAddr, EngineError> {
        match self.cap {
            Some(cap) => self.spec.listen(reactor, cap.wrap(factory)),
            None => self.spec.listen(reactor, factory),
        }
    }
}

/// The options that belong to some services only: clap's id, the flag, and the services
/// that take it. A flag given to another service is a usage error naming the service, not
/// silently ignored (`serve hello --root DIR`).
pub(crate) const SERVICE_OPTIONS: &[(&str, &str, &[Service])] = &[
    ("root", "--root", &[Service::Web]),
    ("sendfile_min", "--sendfile-min", &[Service::Web]),
    ("open_file_cache", "--open-file-cache", &[Service::Web]),
    ("config", "--config", &[Service::HttpProxy]),
    ("batch_wait", "--batch-wait", &[Service::Dns]),
    (
        "access_log",
        "--access-log",
        &[Service::Hello, Service::Web, Service::HttpProxy],
    ),
    (
        "access_log_format",
        "--access-log-format",
        &[Service::Hello, Service::Web, Service::HttpProxy],
    ),
    (
        "rate_limit",
        "--rate-limit",
        &[Service::Hello, Service::Web, Service::HttpProxy],
    ),
    (
        "rate_burst",
        "--rate-burst",
        &[Service::Hello, Service::Web, Service::HttpProxy],
    ),
    ("chat_max_queued", "--chat-max-queued", &[Service::WsChat]),
    (
        "chat_max_queued_total",
        "--chat-max-queued-total",
        &[Service::WsChat],
    ),
    ("upstream", "--upstream", &[Service::TcpProxy]),
    ("send_proxy", "--send-proxy", &[Service::TcpProxy]),
    (
        "idle_timeout",
        "--idle-timeout",
        &[Service::TcpProxy, Service::Socks5],
    ),
    ("splice", "--splice", &[Service::TcpProxy, Service::Socks5]),
    (
        "splice_pipe",
        "--splice-pipe",
        &[Service::TcpProxy, Service::Socks5],
    ),
    ("user", "--user", &[Service::Socks5]),
    ("allow", "--allow", &[Service::Socks5]),
    ("deny", "--deny", &[Service::Socks5]),
    ("zone", "--zone", &[Service::Dns]),
    ("motd", "--motd", &[Service::Irc]),
    ("password", "--password", &[Service::Irc]),
    ("server_name", "--server-name", &[Service::Irc]),
    ("maildir", "--maildir", MAIL),
    ("domain", "--domain", &[Service::Smtp]),
    (
        "users",
        "--users",
        &[Service::Smtp, Service::Pop3, Service::Imap, Service::Ssh],
    ),
    ("host_key", "--host-key", &[Service::Ssh]),
    ("authorized_keys", "--authorized-keys", &[Service::Ssh]),
    ("sftp_root", "--sftp-root", &[Service::Ssh]),
    ("no_forwarding", "--no-forwarding", &[Service::Ssh]),
    ("cert", "--cert", MAIL),
    ("key", "--key", MAIL),
    ("max_message_size", "--max-message-size", &[Service::Smtp]),
    ("resolver", "--resolver", CONNECTING),
    ("resolv_conf", "--resolv-conf", CONNECTING),
    ("hosts_file", "--hosts-file", CONNECTING),
];

/// The mail services (one Maildir, one users file).
pub(crate) const MAIL: &[Service] = &[Service::Smtp, Service::Pop3, Service::Imap];

/// The services that connect to names (and so resolve them).
pub(crate) const CONNECTING: &[Service] = &[Service::TcpProxy, Service::HttpProxy, Service::Socks5];

/// The first option in `serve` (the `serve` subcommand's matches) that `service` does not
/// take, as a usage message.
pub(crate) fn misplaced_option(service: Service, serve: &clap::ArgMatches) -> Option<String> {
    SERVICE_OPTIONS.iter().find_map(|(id, flag, services)| {
        let given = serve.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        (given && !services.contains(&service)).then(|| {
            let owners: Vec<String> = services.iter().map(|s| s.name()).collect();
            format!(
                "{flag} does not apply to `serve {}`; it is an option of {}",
                service.name(),
                owners.join(", ")
            )
        })
    })
}

/// `endpoint` with the port the OS chose (for port 0).
pub(crate) fn with_bound(endpoint: &Endpoint, bound: &ringwork::SockAddr) -> Endpoint {
    let port = bound.as_socket().map(|a| a.port());
    match (endpoint, port) {
        (Endpoint::Tcp { addr }, Some(port)) => Endpoint::Tcp {
            addr: std::net::SocketAddr::new(addr.ip(), port),
        },
        (Endpoint::Tls { addr, tls }, Some(port)) => Endpoint::Tls {
            addr: std::net::SocketAddr::new(addr.ip(), port),
            tls: tls.clone(),
        },
        (Endpoint::Haproxy(inner), _) => Endpoint::Haproxy(Box::new(with_bound(inner, bound))),
        _ => endpoint.clone(),
    }
}

pub(crate) fn unsupported(service: Service, endpoint: &Endpoint) -> EngineError {
    EngineError::Config {
        what: format!("{} does not support endpoint {endpoint}", service.name()),
    }
}

/// `--sendfile-min`: a byte count, or `off` (never: every body is read and written).
pub(crate) fn parse_sendfile_min(value: &str) -> Result<u64, String> {
    if value == "off" {
        return Ok(u64::MAX);
    }
    value
        .parse()
        .map_err(|e| format!("{value:?} is neither a byte count nor `off`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dns_gathers_udp_answers_for_gso() {
        let gathers = |service: Service| {
            service
                .driver_config(DriverConfig::default())
                .udp_gso_gather
        };
        assert!(gathers(Service::Dns));
        assert!(!gathers(Service::Hello));
        assert!(!gathers(Service::Echo));
        // What the caller asked for is kept.
        let asked = DriverConfig {
            udp_gso_gather: true,
            ..DriverConfig::default()
        };
        assert!(Service::Echo.driver_config(asked).udp_gso_gather);
    }
}
