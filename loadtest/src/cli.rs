//! The command line (`ringwork-load http|tcp|udp|merge`), its parsers (durations, CPU
//! lists) and the mapping to [`RunOptions`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ringwork::platform::BackendChoice;

use crate::run::RunOptions;
use crate::tls::TlsOptions;

/// ringwork-load: an HTTP/1.1, TCP and UDP load generator on the ringwork engine.
#[derive(Debug, Parser)]
#[command(name = "ringwork-load", version)]
pub struct Cli {
    /// The workload.
    #[command(subcommand)]
    pub command: Command,
}

/// Workloads and tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP/1.1 requests (keep-alive, optional pipelining).
    Http(HttpArgs),
    /// HTTP/2 requests, -m streams in flight per connection (h2c with prior knowledge for
    /// http://, ALPN h2 for https://).
    H2(H2Args),
    /// TCP echo / ping-pong of fixed-size messages.
    Tcp(TcpArgs),
    /// UDP request/response datagrams with a per-datagram timeout.
    Udp(UdpArgs),
    /// WebSocket echo of fixed-size messages (`ws://host:port/path`).
    Ws(WsArgs),
    /// DNS queries over UDP from a list (dnsperf's `name type` lines), answers counted by
    /// response code.
    Dns(DnsArgs),
    /// Merge JSON reports of concurrent runs into one.
    Merge(MergeArgs),
}

/// Options every load workload takes.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Connections (UDP: flows) across all cores.
    #[arg(short = 'c', long, default_value_t = 10)]
    pub connections: usize,
    /// Measured duration (10s, 500ms, 2m), after the warm-up.
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many responses (the duration still bounds the run).
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Constant total rate (requests/s) with coordinated-omission-corrected latency.
    #[arg(short = 'R', long)]
    pub rate: Option<f64>,
    /// Warm-up period excluded from results.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open connections evenly over this period.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub ramp: Duration,
    /// Response timeout per request (counted as `timeout`, the connection is reopened).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Connect timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Spin instead of sleeping when a send is due within this (`50us`): precise send
    /// times at a constant rate, for a generator on CPUs of its own (costs them whole).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub busy_poll: Duration,
    /// Constant rate: send every request whose slot falls in the same window of this width
    /// (`100us`) at the window's start, one wake-up for all (up to that early; timed from
    /// the actual send then). Cuts the generator's CPU per request; 0: each at its slot.
    /// At most one connection's interval (connections / rate; a longer one is cut to it).
    #[arg(long, default_value = "0s", value_parser = parse_duration, requires = "rate")]
    pub send_window: Duration,
    /// Reactor threads (unpinned; see --cpus).
    #[arg(long, default_value_t = 1)]
    pub cores: usize,
    /// CPUs to pin reactor threads to, one thread each: `1`, `0,2-3`.
    #[arg(long, value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,
    /// Engine backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// The engine backend.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Backend {
    /// io_uring when available, else poll.
    Auto,
    /// io_uring only.
    Uring,
    /// epoll (mio).
    Poll,
}

/// TLS options (`https://` and `wss://` URLs, `tcp --tls`). The server's certificate is always
/// verified: there is no `--insecure`; for a self-signed server, pass its certificate
/// as `--cacert`.
#[derive(Args, Debug)]
pub struct TlsArgs {
    /// Trusted root certificates, PEM (default: the system store).
    #[arg(long, value_name = "PATH")]
    pub cacert: Option<PathBuf>,
    /// Server name sent by SNI and verified in the certificate (default: the URL's host;
    /// tcp: the address's host name, or `localhost` for an IP address).
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Protocols offered by ALPN, comma-separated, in order (`http/1.1`).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub alpn: Vec<String>,
    /// Do not offer session resumption: every handshake is a full one.
    #[arg(long)]
    pub no_resume: bool,
    /// Offer only this cipher suite (`TLS_AES_128_GCM_SHA256`; IANA or rustls names),
    /// so that different servers negotiate the same one.
    #[arg(long, value_name = "NAME")]
    pub cipher_suite: Option<String>,
}

impl TlsArgs {
    /// Whether any TLS option was given.
    #[must_use]
    pub fn any(&self) -> bool {
        self.cacert.is_some()
            || self.sni.is_some()
            || !self.alpn.is_empty()
            || self.no_resume
            || self.cipher_suite.is_some()
    }

    /// The TLS options, verifying `default_name` unless `--sni` was given.
    #[must_use]
    pub fn options(&self, default_name: &str) -> TlsOptions {
        TlsOptions {
            ca_file: self.cacert.clone(),
            server_name: self.sni.clone().unwrap_or_else(|| default_name.to_owned()),
            alpn: self.alpn.clone(),
            resumption: !self.no_resume,
            cipher_suite: self.cipher_suite.clone(),
        }
    }
}

/// `http` options.
#[derive(Args, Debug)]
pub struct HttpArgs {
    /// The URL (`http://host[:port]/path` or `https://...`).
    pub url: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsArgs,
    /// Request method.
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: String,
    /// Extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Request body from a file.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// File of URLs (one per line), requested round-robin.
    #[arg(long)]
    pub urls: Option<PathBuf>,
    /// Requests in flight per connection (pipelining).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Pipeline in batches, as wrk's pipeline.lua: send `--pipeline` requests together and
    /// the next batch only when all of them were answered (closed loop only).
    #[arg(long, conflicts_with = "rate")]
    pub batch: bool,
    /// Open a new connection every N requests (default: keep-alive).
    #[arg(long)]
    pub reconnect_every: Option<u64>,
}

/// `h2` options.
#[derive(Args, Debug)]
pub struct H2Args {
    /// The URL (`http://host[:port]/path`: h2c with prior knowledge; `https://`: TLS with
    /// ALPN h2).
    pub url: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsArgs,
    /// Request method.
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: String,
    /// Extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Request body (at most 16 KiB).
    #[arg(long)]
    pub body: Option<String>,
    /// Streams in flight per connection (h2load's -m); keep it within the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    #[arg(short = 'm', long, default_value_t = 1)]
    pub streams: usize,
}

/// `tcp` options.
#[derive(Args, Debug)]
pub struct TcpArgs {
    /// `host:port`.
    pub addr: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    /// Message size in bytes.
    #[arg(short = 's', long, default_value_t = 128)]
    pub size: usize,
    /// Messages in flight per connection.
    #[arg(long, visible_alias = "pipeline", default_value_t = 1)]
    pub in_flight: usize,
    /// Check every echoed byte.
    #[arg(long)]
    pub verify: bool,
    /// Run TLS on every connection (see the TLS options).
    #[arg(long)]
    pub tls: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls_options: TlsArgs,
    /// Open a new connection every N messages.
    #[arg(long)]
    pub reconnect_every: Option<u64>,
}

/// `ws` options.
#[derive(Args, Debug)]
pub struct WsArgs {
    /// The URL, `ws://host:port/path` or `wss://...` (TLS, ALPN `http/1.1` unless `--alpn`).
    pub url: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsArgs,
    /// Message size in bytes.
    #[arg(short = 's', long, default_value_t = 128)]
    pub size: usize,
    /// Send text messages (ASCII) instead of binary.
    #[arg(long)]
    pub text: bool,
    /// Messages in flight per connection.
    #[arg(long, visible_alias = "pipeline", default_value_t = 1)]
    pub in_flight: usize,
    /// Check every echoed byte.
    #[arg(long)]
    pub verify: bool,
    /// Fan-out mode (against a broadcast server such as `ringwork serve ws-chat`): this
    /// many subscribers only read, one publisher sends `-R` messages/s (default 100) of
    /// `--size` bytes (at least 16); reports delivery latency and deliveries/s. `-c`,
    /// `--in-flight` and `--verify` do not apply.
    #[arg(long, value_name = "N")]
    pub subscribers: Option<usize>,
}

/// `udp` options.
#[derive(Args, Debug)]
pub struct UdpArgs {
    /// `host:port`.
    pub addr: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    /// Datagram size in bytes (at least 8).
    #[arg(short = 's', long, default_value_t = 64)]
    pub size: usize,
    /// Datagrams in flight per flow.
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
}

/// `dns` options.
#[derive(Args, Debug)]
pub struct DnsArgs {
    /// The server, `host[:port]` (port 53 when absent; `[v6]:port` for IPv6).
    pub addr: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    /// A file of queries, one `name type` per line (dnsperf's format; `#` comments).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub queries: Option<PathBuf>,
    /// A query `name [type]` (repeatable; with --queries, added after the file's).
    #[arg(short = 'Q', long, value_name = "NAME [TYPE]")]
    pub query: Vec<String>,
    /// Send an EDNS0 OPT record advertising this UDP payload size (e.g. 1232).
    #[arg(long, value_name = "BYTES")]
    pub edns: Option<u16>,
    /// Queries in flight per flow (socket); latencies are exact with 1.
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
}

/// `merge` options.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Reports to merge.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write the merged JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `250us`, or bare seconds (`1.5`).
///
/// # Errors
/// Anything else.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 10s, 500ms or 2m"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use us, ms, s, m, h)"
            ));
        }
    };
    let secs = n * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A list of CPU numbers (`--cpus`).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct CpuList(pub Vec<usize>);

/// Parses a CPU list: `1`, `0,2-3`.
///
/// # Errors
/// Empty, malformed, or a reversed range.
pub fn parse_cpus(s: &str) -> Result<CpuList, String> {
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let bad = || format!("{s:?}: expected a CPU list like 1 or 0,2-3");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b || b - a > 4096 {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("{s:?}: no CPUs"));
    }
    Ok(CpuList(cpus))
}

/// The server name `tcp --tls` verifies without `--sni`: the host of `host:port` when it
/// is a name, `localhost` when it is an IP address (a local test server's certificate).
#[must_use]
pub fn tcp_server_name(addr: &str) -> String {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        "localhost".into()
    } else {
        host.into()
    }
}

impl CommonArgs {
    /// The run options for `workload` against `addr`.
    #[must_use]
    pub fn options(&self, workload: &str, target: &str, addr: std::net::SocketAddr) -> RunOptions {
        RunOptions {
            connections: self.connections,
            duration: self.duration,
            requests: self.requests,
            rate: self.rate,
            warmup: self.warmup,
            ramp: self.ramp,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            cores: self.cores,
            cpus: self.cpus.as_ref().map(|c| c.0.clone()),
            backend: match self.backend {
                Backend::Auto => BackendChoice::Auto,
                Backend::Uring => BackendChoice::Uring,
                Backend::Poll => BackendChoice::Poll,
            },
            progress: !self.quiet,
            handle_signals: true,
            busy_poll: self.busy_poll,
            send_window: self.send_window,
            ..RunOptions::new(workload, target, addr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn tcp_tls_names() {
        assert_eq!(tcp_server_name("127.0.0.1:7000"), "localhost");
        assert_eq!(tcp_server_name("[::1]:7000"), "localhost");
        assert_eq!(tcp_server_name("echo.example:7000"), "echo.example");
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("1"), Ok(CpuList(vec![1])));
        assert_eq!(parse_cpus("0,2-3"), Ok(CpuList(vec![0, 2, 3])));
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("a").is_err());
        assert!(parse_cpus("").is_err());
    }
}
