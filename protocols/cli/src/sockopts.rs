//! `serve`'s socket options for the stream listeners it binds: `--backlog`,
//! `--recv-buffer`, `--send-buffer`, `--keepalive`, `--tos`, `--bind-device`, `--fastopen`.
//!
//! Owns: the flags, their parsing, checking them before any core starts, and setting them on
//! a listener's [`ListenerOptions`] (accepted connections inherit the socket options on
//! Linux).
//! Does not: touch UDP endpoints, or inherited sockets (`systemd:`, `fd:`: their parent made
//! them; options given with one are refused, not ignored).

use std::time::Duration;

use clap::Args;
use ringwork::{Keepalive, ListenerOptions, SocketOptions};

/// The flags.
#[derive(Clone, Debug, Default, Args)]
pub struct SocketArgs {
    /// Accept queue length of each stream listener, 1 to 65535 (the kernel caps it at
    /// net.core.somaxconn) [default: 1024].
    #[arg(long, value_name = "N")]
    backlog: Option<u32>,
    /// SO_RCVBUF of each stream listener and its connections, in bytes (Linux doubles it).
    #[arg(long, value_name = "BYTES")]
    recv_buffer: Option<usize>,
    /// SO_SNDBUF of each stream listener and its connections, in bytes.
    #[arg(long, value_name = "BYTES")]
    send_buffer: Option<usize>,
    /// TCP keepalive on accepted connections: idle seconds before the first probe, then
    /// optionally the seconds between probes and the probes before giving up (`60`,
    /// `60,10,4`).
    #[arg(long, value_name = "IDLE[,INTERVAL[,COUNT]]", value_parser = parse_keepalive)]
    keepalive: Option<Keepalive>,
    /// IP_TOS (IPv4) / IPV6_TCLASS (IPv6) byte of what the connections send (`40`,
    /// `0x28`).
    #[arg(long, value_name = "BYTE", value_parser = parse_byte)]
    tos: Option<u8>,
    /// Bind each stream listener to this network interface (SO_BINDTODEVICE, Linux;
    /// needs CAP_NET_RAW).
    #[arg(long, value_name = "IFACE")]
    bind_device: Option<String>,
    /// TCP Fast Open: accept data in the SYN, with at most this many such connections
    /// pending (needs the server bit, 2, of net.ipv4.tcp_fastopen).
    #[arg(long, value_name = "QUEUE")]
    fastopen: Option<u32>,
}

impl SocketArgs {
    /// The socket options given.
    fn socket(&self) -> SocketOptions {
        let mut socket = SocketOptions::new();
        socket.recv_buffer = self.recv_buffer;
        socket.send_buffer = self.send_buffer;
        socket.keepalive = self.keepalive;
        socket.tos = self.tos;
        socket.bind_device.clone_from(&self.bind_device);
        socket
    }

    /// Whether any flag was given.
    pub fn any(&self) -> bool {
        self.backlog.is_some() || self.fastopen.is_some() || !self.socket().is_empty()
    }

    /// Checks every value (before any core starts).
    ///
    /// # Errors
    /// The first bad value, naming its flag.
    pub fn check(&self) -> Result<(), String> {
        for (flag, value) in [("--backlog", self.backlog), ("--fastopen", self.fastopen)] {
            if let Some(n) = value
                && !(1..=65_535).contains(&n)
            {
                return Err(format!("{flag} {n}: must be 1 to 65535"));
            }
        }
        self.socket().validate().map_err(|e| e.to_string())
    }

    /// `options` with these flags set.
    pub fn apply(&self, mut options: ListenerOptions) -> ListenerOptions {
        if let Some(backlog) = self.backlog {
            options = options.backlog(backlog);
        }
        if let Some(queue) = self.fastopen {
            options = options.fastopen(queue);
        }
        options.socket(self.socket())
    }
}

/// `IDLE[,INTERVAL[,COUNT]]`: whole seconds and a probe count.
fn parse_keepalive(text: &str) -> Result<Keepalive, String> {
    let mut parts = text.split(',');
    let secs = |part: Option<&str>, what: &str| -> Result<Option<Duration>, String> {
        part.map(|p| {
            p.trim()
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| format!("{what} {p:?} is not a whole number of seconds"))
        })
        .transpose()
    };
    let idle = secs(parts.next(), "idle time")?.ok_or("an idle time is needed")?;
    let mut keepalive = Keepalive::after(idle);
    if let Some(interval) = secs(parts.next(), "interval")? {
        keepalive = keepalive.interval(interval);
    }
    if let Some(count) = parts.next() {
        let count = count
            .trim()
            .parse()
            .map_err(|_| format!("probe count {count:?} is not a number"))?;
        keepalive = keepalive.count(count);
    }
    if parts.next().is_some() {
        return Err("at most IDLE,INTERVAL,COUNT".into());
    }
    Ok(keepalive)
}

/// A byte, in decimal or `0x` hexadecimal.
fn parse_byte(text: &str) -> Result<u8, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a byte (0 to 255, or 0x00 to 0xff)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_and_tos_parse() {
        let full = parse_keepalive("60,10,4").expect("full");
        assert_eq!(
            full,
            Keepalive::after(Duration::from_secs(60))
                .interval(Duration::from_secs(10))
                .count(4)
        );
        assert_eq!(
            parse_keepalive("30"),
            Ok(Keepalive::after(Duration::from_secs(30)))
        );
        for bad in ["", "x", "1,2,3,4", "1.5", "1,x"] {
            assert!(parse_keepalive(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_byte("0x28"), Ok(0x28));
        assert_eq!(parse_byte("40"), Ok(40));
        assert!(parse_byte("256").is_err());
    }

    #[test]
    fn values_are_checked_naming_the_flag() {
        let args = SocketArgs {
            backlog: Some(0),
            ..SocketArgs::default()
        };
        assert_eq!(args.check(), Err("--backlog 0: must be 1 to 65535".into()));
        let args = SocketArgs {
            keepalive: Some(Keepalive::after(Duration::ZERO)),
            ..SocketArgs::default()
        };
        assert!(
            args.check()
                .expect_err("idle 0")
                .starts_with("TCP_KEEPIDLE 0ns")
        );
        assert!(!SocketArgs::default().any());
        assert!(SocketArgs::default().check().is_ok());
    }
}
