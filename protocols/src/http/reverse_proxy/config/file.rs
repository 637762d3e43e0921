//! The reverse proxy's TOML file (feature `toml-config`): parsing, validation, and errors
//! that name the line and the field.
//!
//! Owns: `ProxyConfig::load`, `ProxyConfig::from_toml`.
//! Contract: every problem is reported with the line it is on (1-based) and the field,
//! e.g. `line 12: routes[1].upstream: no upstream named "apu"`. Server names that are not
//! IP literals are kept as names ([`ServerAddr::Host`](super::ServerAddr::Host)), resolved by
//! the proxy at each new upstream connection, never here. The PEM files of `https://`
//! pools (`tls_ca`, `tls_cert`, `tls_key`) are read here too, and a connector is built once
//! to check them, so a missing file, bad PEM or a key that does not fit is a load error.
//! Paths are relative to the configuration file's directory ([`ProxyConfig::load`]) or to
//! the working directory ([`ProxyConfig::from_toml`]).
//! Does not: open sockets. The format is documented in `docs/http-proxy.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringwork::tls::{load_certificates, load_private_key, server_name};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, ProxyConfig, Timeouts, UpstreamConfig};
use crate::endpoint::Endpoint;
use crate::http::client::HttpProtocol;
use crate::http::reverse_proxy::balance::Balance;
use crate::http::reverse_proxy::headers::ForwardedMode;
use crate::http::reverse_proxy::health::HealthCheck;
use crate::http::reverse_proxy::routing::{HostPattern, Route, RouteTable};
use crate::http::reverse_proxy::upstream_tls::{Material, ServerEntry, UpstreamTls};

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    /// Optional: the program may give the endpoints instead (`ringwork serve --listen`).
    listen: Option<Spanned<Vec<Spanned<String>>>>,
    cores: Option<Spanned<usize>>,
    #[serde(default)]
    timeouts: RawTimeouts,
    max_body: Option<Spanned<Scalar>>,
    #[serde(default)]
    forwarded: RawForwarded,
    keepalive: Option<Spanned<usize>>,
    max_connections_per_server: Option<Spanned<usize>>,
    upstreams: BTreeMap<String, Spanned<RawUpstream>>,
    routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    requests_per_second: Option<Spanned<f64>>,
    burst: Option<Spanned<u32>>,
    connections_per_ip: Option<Spanned<u32>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect: Option<Spanned<Scalar>>,
    response_head: Option<Spanned<Scalar>>,
    idle: Option<Spanned<Scalar>>,
    body: Option<Spanned<Scalar>>,
    write: Option<Spanned<Scalar>>,
    tunnel: Option<Spanned<Scalar>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForwarded {
    mode: Option<Spanned<String>>,
    proto: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    servers: Vec<Spanned<String>>,
    backoff: Option<Spanned<Scalar>>,
    balance: Option<Spanned<String>>,
    hash_key: Option<Spanned<String>>,
    health: Option<Spanned<RawHealth>>,
    tls_ca: Option<Spanned<String>>,
    tls_server_name: Option<Spanned<String>>,
    tls_verify: Option<Spanned<bool>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    #[serde(default)]
    http2: bool,
    protocol: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    path: Option<Spanned<String>>,
    interval: Option<Spanned<Scalar>>,
    timeout: Option<Spanned<Scalar>>,
    rise: Option<Spanned<u32>>,
    fall: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    host: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    upstream: Spanned<String>,
    host_rewrite: Option<Spanned<String>>,
    #[serde(default)]
    strip_prefix: bool,
    rate_limit: Option<Spanned<f64>>,
    rate_burst: Option<Spanned<u32>>,
}

/// A duration or size: a bare integer (seconds, bytes) or a string with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(u64),
    Str(String),
}

/// Builds errors with lines from spans of `source`.
struct Lines<'a> {
    source: &'a str,
}

impl Lines<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.source.len());
        self.source.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::Invalid {
            line: Some(self.line(span)),
            field: field.into(),
            message: message.to_string(),
        }
    }
}

impl ProxyConfig {
    /// Reads and validates the file at `path`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] if it cannot be read, else as [`ProxyConfig::from_toml`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&source, path.parent())
    }

    /// Parses and validates a configuration (file paths in it are relative to the working
    /// directory).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the line and field of the first problem.
    pub fn from_toml(source: &str) -> Result<Self, ConfigError> {
        Self::parse(source, None)
    }

    /// [`ProxyConfig::from_toml`] with relative paths taken from `base`.
    fn parse(source: &str, base: Option<&Path>) -> Result<Self, ConfigError> {
        let lines = Lines { source };
        let raw: Raw = toml::from_str(source).map_err(|e| ConfigError::Invalid {
            line: e.span().map(|s| lines.line(s)),
            field: "toml".into(),
            message: e.message().trim().to_owned(),
        })?;

        let mut listen = Vec::new();
        let entries = raw.listen.as_ref().map_or(&[][..], |l| l.get_ref());
        for (i, entry) in entries.iter().enumerate() {
            let field = format!("listen[{i}]");
            let endpoint: Endpoint = entry
                .get_ref()
                .parse()
                .map_err(|e| lines.error(entry.span(), &field, e))?;
            if matches!(endpoint, Endpoint::Udp { .. }) {
                return Err(lines.error(
                    entry.span(),
                    field,
                    "HTTP needs a stream endpoint (tcp, tcp6, unix)",
                ));
            }
            listen.push(endpoint);
        }
        // No `listen` at all: the program gives the endpoints. An empty list is a mistake.
        if let Some(given) = raw.listen.as_ref().filter(|l| l.get_ref().is_empty()) {
            return Err(lines.error(given.span(), "listen", "at least one endpoint is needed"));
        }
        let cores = match raw.cores {
            Some(c) if *c.get_ref() == 0 => {
                return Err(lines.error(c.span(), "cores", "must be at least 1"));
            }
            c => c.map(Spanned::into_inner),
        };

        let defaults = Timeouts::default();
        let duration = |value: &Option<Spanned<Scalar>>, field: &str, default: Duration| {
            value.as_ref().map_or(Ok(default), |v| {
                parse_duration(v.get_ref()).map_err(|m| lines.error(v.span(), field, m))
            })
        };
        let timeouts = Timeouts {
            connect: duration(&raw.timeouts.connect, "timeouts.connect", defaults.connect)?,
            response_head: duration(
                &raw.timeouts.response_head,
                "timeouts.response_head",
                defaults.response_head,
            )?,
            idle: duration(&raw.timeouts.idle, "timeouts.idle", defaults.idle)?,
            body: duration(&raw.timeouts.body, "timeouts.body", defaults.body)?,
            write: duration(&raw.timeouts.write, "timeouts.write", defaults.write)?,
            tunnel: duration(&raw.timeouts.tunnel, "timeouts.tunnel", defaults.tunnel)?,
        };
        let max_body = match &raw.max_body {
            None => 8 << 20,
            Some(v) => parse_size(v.get_ref()).map_err(|m| lines.error(v.span(), "max_body", m))?,
        };
        let forwarded = match &raw.forwarded.mode {
            None => ForwardedMode::Append,
            Some(mode) => match mode.get_ref().as_str() {
                "append" => ForwardedMode::Append,
                "replace" => ForwardedMode::Replace,
                "off" => ForwardedMode::Off,
                other => {
                    return Err(lines.error(
                        mode.span(),
                        "forwarded.mode",
                        format!("{other:?} is not one of \"append\", \"replace\", \"off\""),
                    ));
                }
            },
        };
        let proto = match &raw.forwarded.proto {
            None => "http".to_owned(),
            Some(p) if matches!(p.get_ref().as_str(), "http" | "https") => p.get_ref().clone(),
            Some(p) => {
                return Err(lines.error(
                    p.span(),
                    "forwarded.proto",
                    "must be \"http\" or \"https\"",
                ));
            }
        };

        let keepalive = raw.keepalive.as_ref().map_or(32, |k| *k.get_ref());
        let max_connections_per_server = match &raw.max_connections_per_server {
            None => 64,
            Some(n) if *n.get_ref() == 0 => {
                return Err(lines.error(
                    n.span(),
                    "max_connections_per_server",
                    "must be at least 1",
                ));
            }
            Some(n) => *n.get_ref(),
        };
        let mut upstreams = Vec::new();
        for (name, upstream) in &raw.upstreams {
            let field = format!("upstreams.{name}");
            if upstream.get_ref().servers.is_empty() {
                return Err(lines.error(upstream.span(), format!("{field}.servers"), "no servers"));
            }
            let mut servers = Vec::new();
            let mut entries = Vec::new();
            for (i, server) in upstream.get_ref().servers.iter().enumerate() {
                let error = |m| lines.error(server.span(), format!("{field}.servers[{i}]"), m);
                let entry = ServerEntry::parse(server.get_ref()).map_err(error)?;
                if entries
                    .first()
                    .is_some_and(|e: &ServerEntry| e.https != entry.https)
                {
                    return Err(error(
                        "mixes http and https servers (one scheme per upstream pool)".into(),
                    ));
                }
                servers.push(
                    entry
                        .authority
                        .parse::<super::ServerAddr>()
                        .map_err(error)?,
                );
                entries.push(entry);
            }
            let backoff = duration(
                &upstream.get_ref().backoff,
                &format!("{field}.backoff"),
                Duration::from_secs(10),
            )?;
            let raw_upstream = upstream.get_ref();
            let balance = Balance::parse(
                raw_upstream
                    .balance
                    .as_ref()
                    .map_or("round-robin", |b| b.get_ref().as_str()),
                raw_upstream.hash_key.as_ref().map(|k| k.get_ref().as_str()),
            )
            .map_err(|m| {
                let (span, name) = match (&raw_upstream.balance, &raw_upstream.hash_key) {
                    (Some(b), _) if Balance::parse(b.get_ref(), None).is_err() => {
                        (b.span(), "balance")
                    }
                    (_, Some(k)) => (k.span(), "hash_key"),
                    (Some(b), None) => (b.span(), "balance"),
                    (None, None) => (upstream.span(), "balance"),
                };
                lines.error(span, format!("{field}.{name}"), m)
            })?;
            let health = match &raw_upstream.health {
                None => None,
                Some(h) => {
                    let raw = h.get_ref();
                    let defaults = HealthCheck::default();
                    let count = |v: &Option<Spanned<u32>>, name: &str, default: u32| match v {
                        None => Ok(default),
                        Some(n) if *n.get_ref() == 0 => Err(lines.error(
                            n.span(),
                            format!("{field}.health.{name}"),
                            "must be at least 1",
                        )),
                        Some(n) => Ok(*n.get_ref()),
                    };
                    let path = match &raw.path {
                        Some(p)
                            if !p.get_ref().starts_with('/')
                                || p.get_ref().bytes().any(|b| b <= b' ' || b == 0x7f) =>
                        {
                            return Err(lines.error(
                                p.span(),
                                format!("{field}.health.path"),
                                "a path starting with / (no spaces or control characters)",
                            ));
                        }
                        Some(p) => Some(p.get_ref().clone()),
                        None => None,
                    };
                    let check = HealthCheck {
                        path,
                        interval: duration(
                            &raw.interval,
                            &format!("{field}.health.interval"),
                            defaults.interval,
                        )?,
                        timeout: duration(
                            &raw.timeout,
                            &format!("{field}.health.timeout"),
                            defaults.timeout,
                        )?,
                        rise: count(&raw.rise, "rise", defaults.rise)?,
                        fall: count(&raw.fall, "fall", defaults.fall)?,
                    };
                    if check.interval.is_zero() || check.timeout.is_zero() {
                        return Err(lines.error(
                            h.span(),
                            format!("{field}.health"),
                            "interval and timeout must be above zero",
                        ));
                    }
                    Some(check)
                }
            };
            let tls = upstream_tls(&lines, &field, upstream.get_ref(), &entries, base)?;
            let protocol = upstream_protocol(&lines, &field, upstream.get_ref(), tls.is_some())?;
            if tls.as_ref().is_some_and(|t| !t.verify) {
                tracing::warn!(
                    upstream = %name,
                    "{field}.tls_verify = false: the certificates of its servers are NOT \
                     verified; anyone on the path to them can read and change the traffic"
                );
            }
            upstreams.push(UpstreamConfig {
                name: name.clone(),
                servers,
                backoff,
                balance,
                health,
                tls,
                protocol,
            });
        }

        let mut routes = Vec::new();
        for (i, route) in raw.routes.iter().enumerate() {
            let field = |name: &str| format!("routes[{i}].{name}");
            let raw_route = route.get_ref();
            let host = match &raw_route.host {
                None => HostPattern::Any,
                Some(h) => HostPattern::parse(h.get_ref())
                    .map_err(|m| lines.error(h.span(), field("host"), m))?,
            };
            let prefix = match &raw_route.path {
                None => "/".to_owned(),
                Some(p)
                    if p.get_ref().starts_with('/')
                        && !p.get_ref().bytes().any(|b| b <= b' ' || b == 0x7f) =>
                {
                    p.get_ref().clone()
                }
                Some(p) => {
                    return Err(lines.error(
                        p.span(),
                        field("path"),
                        "a path prefix starts with '/' and has no spaces or controls",
                    ));
                }
            };
            let name = &raw_route.upstream;
            let upstream = upstreams
                .iter()
                .position(|u| &u.name == name.get_ref())
                .ok_or_else(|| {
                    lines.error(
                        name.span(),
                        field("upstream"),
                        format!("no upstream named {:?}", name.get_ref()),
                    )
                })?;
            let host_rewrite = match &raw_route.host_rewrite {
                None => None,
                Some(h)
                    if !h.get_ref().is_empty()
                        && h.get_ref().bytes().all(|b| b.is_ascii_graphic()) =>
                {
                    Some(h.get_ref().clone())
                }
                Some(h) => {
                    return Err(lines.error(
                        h.span(),
                        field("host_rewrite"),
                        "not a valid Host value",
                    ));
                }
            };
            let rate_limit = match (&raw_route.rate_limit, &raw_route.rate_burst) {
                (None, None) => None,
                (None, Some(burst)) => {
                    return Err(lines.error(
                        burst.span(),
                        field("rate_burst"),
                        "goes with rate_limit",
                    ));
                }
                (Some(rate), burst) => {
                    if let Some(b) = burst.as_ref().filter(|b| *b.get_ref() == 0) {
                        return Err(lines.error(
                            b.span(),
                            field("rate_burst"),
                            "must be at least 1",
                        ));
                    }
                    // Default burst: one second's worth (at least 1), as in [limits].
                    let default = rate.get_ref().ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
                    let burst = burst.as_ref().map_or(default, |b| *b.get_ref());
                    Some(
                        crate::limits::RateLimit::new(*rate.get_ref(), burst)
                            .map_err(|m| lines.error(rate.span(), field("rate_limit"), m))?,
                    )
                }
            };
            routes.push(Route {
                host,
                prefix,
                upstream,
                host_rewrite,
                strip_prefix: raw_route.strip_prefix,
                rate_limit,
            });
        }
        if routes.is_empty() {
            return Err(ConfigError::Invalid {
                line: None,
                field: "routes".into(),
                message: "at least one route is needed".into(),
            });
        }
        let requests = match (&raw.limits.requests_per_second, &raw.limits.burst) {
            (None, None) => None,
            (None, Some(burst)) => {
                return Err(lines.error(
                    burst.span(),
                    "limits.burst",
                    "goes with limits.requests_per_second",
                ));
            }
            (Some(rate), burst) => {
                // Default burst: one second's worth (at least 1).
                let default = rate.get_ref().ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
                let burst = burst.as_ref().map_or(default, |b| *b.get_ref());
                Some(
                    crate::limits::RateLimit::new(*rate.get_ref(), burst)
                        .map_err(|m| lines.error(rate.span(), "limits.requests_per_second", m))?,
                )
            }
        };
        let connections_per_ip = match &raw.limits.connections_per_ip {
            Some(n) if *n.get_ref() == 0 => {
                return Err(lines.error(
                    n.span(),
                    "limits.connections_per_ip",
                    "must be at least 1",
                ));
            }
            n => n.as_ref().map(|n| *n.get_ref()),
        };
        Ok(Self {
            listen,
            cores,
            limits: super::ClientLimits {
                requests,
                connections_per_ip,
            },
            timeouts,
            max_body,
            forwarded,
            proto,
            keepalive,
            max_connections_per_server,
            upstreams,
            routes: RouteTable::new(routes),
        })
    }
}

/// The TLS settings of the pool `field` (`upstreams.NAME`) with servers `entries`: `None`
/// for `http` servers (where any `tls_*` key is an error). Reads the PEM files and builds a
/// connector once, so every file problem is reported now, naming the key.
/// A pool's `protocol` (or the older `http2 = true`).
fn upstream_protocol(
    lines: &Lines<'_>,
    field: &str,
    raw: &RawUpstream,
    https: bool,
) -> Result<HttpProtocol, ConfigError> {
    let Some(name) = &raw.protocol else {
        // `http2 = true`: prior knowledge in plaintext, ALPN (HTTP/1.1 accepted) over TLS.
        return Ok(if raw.http2 {
            HttpProtocol::H2c
        } else {
            HttpProtocol::Http1
        });
    };
    let error = |message: &str| lines.error(name.span(), format!("{field}.protocol"), message);
    if raw.http2 {
        return Err(error("give protocol or http2, not both"));
    }
    let protocol = HttpProtocol::from_name(name.get_ref())
        .ok_or_else(|| error("expected \"h1\", \"h2\", \"h2c\" or \"auto\""))?;
    if protocol == HttpProtocol::H2c && https {
        return Err(error(
            "h2c is HTTP/2 without TLS: use \"h2\" or \"auto\" for https:// servers",
        ));
    }
    Ok(protocol)
}

fn upstream_tls(
    lines: &Lines<'_>,
    field: &str,
    raw: &RawUpstream,
    entries: &[ServerEntry],
    base: Option<&Path>,
) -> Result<Option<UpstreamTls>, ConfigError> {
    let https = entries.first().is_some_and(|e| e.https);
    let spans = [
        ("tls_ca", raw.tls_ca.as_ref().map(Spanned::span)),
        (
            "tls_server_name",
            raw.tls_server_name.as_ref().map(Spanned::span),
        ),
        ("tls_verify", raw.tls_verify.as_ref().map(Spanned::span)),
        ("tls_cert", raw.tls_cert.as_ref().map(Spanned::span)),
        ("tls_key", raw.tls_key.as_ref().map(Spanned::span)),
    ];
    if !https {
        if let Some((key, Some(span))) = spans.into_iter().find(|(_, span)| span.is_some()) {
            return Err(lines.error(
                span,
                format!("{field}.{key}"),
                "TLS options need https:// servers (write \"https://host:port\")",
            ));
        }
        return Ok(None);
    }
    let path = |value: &Spanned<String>| match base {
        Some(base) => base.join(value.get_ref()),
        None => PathBuf::from(value.get_ref()),
    };
    let verify = raw.tls_verify.as_ref().is_none_or(|v| *v.get_ref());
    let mut material = Material::default();
    let mut ca = None;
    if let Some(value) = &raw.tls_ca {
        if !verify {
            return Err(lines.error(
                value.span(),
                format!("{field}.tls_ca"),
                "has no use with tls_verify = false (nothing is verified)",
            ));
        }
        let file = path(value);
        let certs = load_certificates(&file)
            .map_err(|e| lines.error(value.span(), format!("{field}.tls_ca"), e))?;
        material.roots = Some(certs);
        ca = Some(file);
    }
    let client_cert = match (&raw.tls_cert, &raw.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let (cert_file, key_file) = (path(cert), path(key));
            let chain = load_certificates(&cert_file)
                .map_err(|e| lines.error(cert.span(), format!("{field}.tls_cert"), e))?;
            let private = load_private_key(&key_file)
                .map_err(|e| lines.error(key.span(), format!("{field}.tls_key"), e))?;
            material.client_cert = Some((chain, private));
            Some((cert_file, key_file))
        }
        (Some(value), None) | (None, Some(value)) => {
            let (given, missing) = match raw.tls_cert {
                Some(_) => ("tls_cert", "tls_key"),
                None => ("tls_key", "tls_cert"),
            };
            return Err(lines.error(
                value.span(),
                format!("{field}.{given}"),
                format!("needs {missing} too (a client certificate and its key)"),
            ));
        }
    };
    let server_names = match &raw.tls_server_name {
        Some(name) => {
            let parsed = server_name(name.get_ref())
                .map_err(|e| lines.error(name.span(), format!("{field}.tls_server_name"), e))?;
            vec![parsed; entries.len()]
        }
        None => entries
            .iter()
            .zip(&raw.servers)
            .enumerate()
            .map(|(i, (entry, server))| {
                entry
                    .server_name()
                    .map_err(|m| lines.error(server.span(), format!("{field}.servers[{i}]"), m))
            })
            .collect::<Result<_, _>>()?,
    };
    let tls = UpstreamTls::new(server_names, verify, ca, client_cert, material);
    // The key must fit the certificate, and the system roots (if used) must load: build a
    // connector once now so that the cores never meet these errors.
    if let Err(error) = tls.connector(Duration::from_secs(1), HttpProtocol::Http1) {
        let span = raw
            .tls_cert
            .as_ref()
            .or(raw.tls_ca.as_ref())
            .map(Spanned::span)
            .or_else(|| raw.servers.first().map(Spanned::span))
            .unwrap_or(0..0);
        let key = match (&raw.tls_cert, &raw.tls_ca) {
            (Some(_), _) => "tls_cert",
            (None, Some(_)) => "tls_ca",
            (None, None) => "servers",
        };
        return Err(lines.error(span, format!("{field}.{key}"), error));
    }
    Ok(Some(tls))
}

/// `30` (seconds), `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
fn parse_duration(value: &Scalar) -> Result<Duration, String> {
    let text = match value {
        Scalar::Int(secs) => return Ok(Duration::from_secs(*secs)),
        Scalar::Str(text) => text.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30, \"250ms\", \"5s\", \"2m\")"))?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => return Err(format!("unknown unit {other:?} (ms, s, m, h)")),
    };
    if duration.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(duration)
}

/// `1048576` (bytes), `"512KiB"`, `"8MiB"`, `"1GiB"` (also KB/MB/GB = powers of 1000).
fn parse_size(value: &Scalar) -> Result<u64, String> {
    let text = match value {
        Scalar::Int(n) => return Ok(*n),
        Scalar::Str(text) => text.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 1048576, \"512KiB\", \"8MiB\")"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} (B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(scale).ok_or_else(|| "too large".to_owned())
}
