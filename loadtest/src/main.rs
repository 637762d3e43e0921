//! `ringwork-load`: the command-line front end of [`ringwork_loadtest`].
#![forbid(unsafe_code)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ringwork_loadtest::cli::{Cli, Command, CommonArgs, tcp_server_name};
use ringwork_loadtest::dns::{DnsSession, QueryList};
use ringwork_loadtest::http::HttpWorkload;
use ringwork_loadtest::http::h2::H2Workload;
use ringwork_loadtest::tcp::{EchoSession, message};
use ringwork_loadtest::udp::SeqEchoSession;
use ringwork_loadtest::ws::WsEchoSession;
use ringwork_loadtest::ws_fanout::{FanoutOptions, run_fanout};
use ringwork_loadtest::{Report, run_stream, run_udp};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ringwork-load: {message}");
            ExitCode::from(2)
        }
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("{addr}: {e} (expected host:port)"))?
        .next()
        .ok_or_else(|| format!("{addr}: resolves to no address"))
}

/// A DNS server's address: `host:port`, or a host alone for port 53.
fn resolve_dns_server(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    match resolve(addr) {
        Ok(found) => Ok(found),
        Err(_) if !addr.contains(':') => resolve(&format!("{addr}:53")),
        Err(e) => Err(e),
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let (report, common): (Report, &CommonArgs) = match &cli.command {
        Command::Http(args) => {
            let mut urls: Vec<String> = args.url.iter().cloned().collect();
            if let Some(path) = &args.urls {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                urls.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(String::from),
                );
            }
            if urls.is_empty() {
                return Err("http: give a URL or --urls FILE".into());
            }
            let body = match (&args.body, &args.body_file) {
                (Some(b), _) => b.clone().into_bytes(),
                (None, Some(path)) => {
                    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?
                }
                (None, None) => Vec::new(),
            };
            let workload = HttpWorkload::new(&urls, &args.method, &args.headers, &body)?;
            let mut opts = args.common.options("http", &urls[0], workload.addr);
            opts.depth = args.pipeline;
            opts.batch = args.batch;
            opts.reconnect_every = args.reconnect_every;
            if workload.tls {
                opts.tls = Some(args.tls.options(&workload.host));
            } else if args.tls.any() {
                return Err("http: TLS options need an https:// URL".into());
            }
            let report =
                run_stream(&opts, move || workload.session()).map_err(|e| e.to_string())?;
            (report, &args.common)
        }
        Command::H2(args) => {
            let body = args.body.clone().unwrap_or_default().into_bytes();
            let urls = [args.url.clone()];
            let workload = H2Workload::new(&urls, &args.method, &args.headers, &body)?;
            let mut opts = args.common.options("h2", &args.url, workload.addr);
            opts.depth = args.streams.max(1);
            if workload.tls {
                let mut tls = args.tls.options(&workload.host);
                if tls.alpn.is_empty() {
                    tls.alpn = vec!["h2".into()];
                }
                opts.tls = Some(tls);
            } else if args.tls.any() {
                return Err("h2: TLS options need an https:// URL".into());
            }
            let report =
                run_stream(&opts, move || workload.session()).map_err(|e| e.to_string())?;
            (report, &args.common)
        }
        Command::Tcp(args) => {
            if args.size == 0 || args.size > 64 << 20 {
                return Err("tcp: --size must be between 1 byte and 64 MiB".into());
            }
            let addr = resolve(&args.addr)?;
            let mut opts = args.common.options("tcp", &args.addr, addr);
            opts.depth = args.in_flight;
            opts.reconnect_every = args.reconnect_every;
            if args.tls {
                opts.tls = Some(args.tls_options.options(&tcp_server_name(&args.addr)));
            } else if args.tls_options.any() {
                return Err("tcp: TLS options need --tls".into());
            }
            let (msg, verify) = (message(args.size), args.verify);
            let report = run_stream(&opts, move || EchoSession::new(msg.clone(), verify))
                .map_err(|e| e.to_string())?;
            (report, &args.common)
        }
        Command::Ws(args) => {
            if args.size > 16 << 20 {
                return Err("ws: --size must be at most 16 MiB".into());
            }
            let url = ringwork_protocols::websocket::client::WsUrl::parse(&args.url)
                .map_err(|e| e.to_string())?;
            let host_port = if url.host.contains(':') {
                format!("[{}]:{}", url.host, url.port)
            } else {
                format!("{}:{}", url.host, url.port)
            };
            let addr = resolve(&host_port)?;
            let mut opts = args.common.options("ws", &args.url, addr);
            let tls = if url.tls {
                let mut tls = args.tls.options(&url.host);
                if tls.alpn.is_empty() {
                    tls.alpn = vec!["http/1.1".into()];
                }
                Some(tls)
            } else if args.tls.any() {
                return Err("ws: TLS options need a wss:// URL".into());
            } else {
                None
            };
            if let Some(subscribers) = args.subscribers {
                let fanout = FanoutOptions {
                    url: args.url.clone(),
                    addr,
                    subscribers,
                    rate: args.common.rate.unwrap_or(100.0),
                    size: args.size,
                    duration: args.common.duration,
                    warmup: args.common.warmup,
                    connect_timeout: args.common.connect_timeout,
                    tls,
                    run: opts,
                };
                let report = run_fanout(&fanout)?;
                print!("{}", report.summary());
                if let Some(path) = &args.common.json {
                    std::fs::write(path, report.to_json())
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            opts.depth = args.in_flight;
            opts.tls = tls;
            let message: bytes::Bytes = if args.text {
                (0..args.size)
                    .map(|i| b'a' + (i % 26) as u8)
                    .collect::<Vec<u8>>()
                    .into()
            } else {
                message(args.size)
            };
            let (host, path, text, verify) =
                (url.host_field(), url.path.clone(), args.text, args.verify);
            let seeds = AtomicUsize::new(0);
            let report = run_stream(&opts, move || {
                let seed = seeds.fetch_add(1, Ordering::Relaxed) as u64;
                WsEchoSession::new(
                    &host,
                    &path,
                    message.clone(),
                    text,
                    verify,
                    0x9e37_79b9 ^ seed << 20,
                )
            })
            .map_err(|e| e.to_string())?;
            (report, &args.common)
        }
        Command::Udp(args) => {
            let addr = resolve(&args.addr)?;
            let mut opts = args.common.options("udp", &args.addr, addr);
            opts.depth = args.in_flight;
            ringwork_loadtest::run::check_udp_size(args.size).map_err(|e| e.to_string())?;
            let size = args.size;
            let report =
                run_udp(&opts, move || SeqEchoSession::new(size)).map_err(|e| e.to_string())?;
            (report, &args.common)
        }
        Command::Dns(args) => {
            let mut text = String::new();
            if let Some(path) = &args.queries {
                text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                text.push('\n');
            }
            for q in &args.query {
                text.push_str(q);
                text.push('\n');
            }
            if text.trim().is_empty() {
                return Err("dns: give --queries FILE or --query NAME".into());
            }
            let list = QueryList::parse(&text, args.edns).map_err(|e| {
                let source = args
                    .queries
                    .as_ref()
                    .map_or("--query".to_string(), |p| p.display().to_string());
                format!("dns: {source}: {e}")
            })?;
            let addr = resolve_dns_server(&args.addr)?;
            let mut opts = args.common.options("dns", &args.addr, addr);
            opts.depth = args.in_flight;
            let list = Arc::new(list);
            let flows = AtomicUsize::new(0);
            // Each flow starts at its own place in the list (spread over it).
            let spread = (list.len() / opts.connections.max(1)).max(1);
            let report = run_udp(&opts, move || {
                let flow = flows.fetch_add(1, Ordering::Relaxed);
                DnsSession::new(Arc::clone(&list), flow * spread)
            })
            .map_err(|e| e.to_string())?;
            (report, &args.common)
        }
        Command::Merge(args) => {
            let mut reports = Vec::new();
            for path in &args.files {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                reports.push(
                    Report::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?,
                );
            }
            let merged = Report::merge(&reports).map_err(|e| e.to_string())?;
            print!("{}", merged.summary());
            if let Some(path) = &args.json {
                std::fs::write(path, merged.to_json())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    print!("{}", report.summary());
    if let Some(path) = &common.json {
        std::fs::write(path, report.to_json()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if report.panics > 0 {
        eprintln!(
            "ringwork-load: {} internal callbacks panicked; the figures are suspect (please report)",
            report.panics
        );
        return Ok(ExitCode::from(3));
    }
    if report.requests == 0 {
        eprintln!("ringwork-load: {}", explain_failure(&report));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a run got no responses, in words.
fn explain_failure(report: &Report) -> String {
    let e = &report.errors;
    let sample = |k: &str| report.error_samples.get(k).cloned().unwrap_or_default();
    if e.tls > 0 && e.tls >= e.total() / 2 {
        format!(
            "no TLS handshake with {} succeeded ({} failed; first: {})",
            report.target,
            e.tls,
            sample("tls")
        )
    } else if e.connect_refused > 0 && e.connect_refused >= e.total() / 2 {
        format!(
            "connection refused: nothing accepts connections at {} ({} attempts refused)",
            report.target, e.connect_refused
        )
    } else if e.bad_response > 0 {
        format!(
            "the server's responses could not be understood ({} bad responses; first: {})",
            e.bad_response,
            sample("bad_response")
        )
    } else if e.connect_timeout > 0 || e.connect_error > 0 {
        format!(
            "could not connect to {}: {}",
            report.target,
            sample(if e.connect_timeout > 0 {
                "connect_timeout"
            } else {
                "connect_error"
            })
        )
    } else if e.timeout > 0 {
        format!("no responses: {} requests timed out", e.timeout)
    } else if e.total() > 0 {
        format!("no responses; {} errors (see above)", e.total())
    } else {
        "no responses in the measured period".into()
    }
}
