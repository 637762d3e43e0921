//! Socket options set when a socket is made: [`SocketOptions`] (buffer sizes, TCP
//! keepalive, IP_TOS / IPV6_TCLASS, SO_BINDTODEVICE), validated with [`SocketOptionError`]s
//! that name the option, and the read-back helpers tests and users check them with.
//!
//! Owns: validation (before any system call, so a bad value fails the same way everywhere),
//! applying the options to a new socket before it binds or connects, and the options
//! socket2 does not cover (TCP_FASTOPEN, TCP_FASTOPEN_CONNECT, a listener's accept queue
//! from TCP_INFO, interface indexes), whose system calls live in `sys/sockopt.rs`.
//! Contract: [`SocketOptions::apply`] sets every given option or fails on the first one
//! the kernel refuses, naming it; options left `None` keep the OS defaults. Accepted
//! connections inherit a listener's options on Linux (buffer sizes, keepalive, TOS,
//! device).
//! Does not: choose values (every option defaults to the OS's), or change options of a
//! socket after the fact (use [`Driver::with_socket`](crate::Driver::with_socket)).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, Socket};

/// Longest interface name SO_BINDTODEVICE takes (IFNAMSIZ 16, with its NUL).
pub const MAX_DEVICE_NAME: usize = 15;

/// Largest keepalive idle time or interval, in seconds (Linux MAX_TCP_KEEPIDLE and
/// MAX_TCP_KEEPINTVL).
pub const MAX_KEEPALIVE_SECS: u64 = 32_767;

/// Largest keepalive probe count (Linux MAX_TCP_KEEPCNT).
pub const MAX_KEEPALIVE_COUNT: u32 = 127;

/// Largest listen backlog or TCP Fast Open queue length accepted (the kernel further caps
/// both at `net.core.somaxconn`).
pub const MAX_QUEUE: u32 = 65_535;

/// Largest SO_RCVBUF / SO_SNDBUF request (the kernel doubles the value and takes an `int`).
pub const MAX_BUFFER: usize = (i32::MAX / 2) as usize;

/// TCP keepalive: probe an idle connection, and drop it when the peer stops answering.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Keepalive {
    /// Idle time before the first probe (TCP_KEEPIDLE): whole seconds, 1 s to 32,767 s.
    pub idle: Duration,
    /// Time between probes (TCP_KEEPINTVL): whole seconds, 1 s to 32,767 s; `None` keeps
    /// the OS default (Linux: 75 s).
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped (TCP_KEEPCNT), 1 to 127; `None`
    /// keeps the OS default (Linux: 9).
    pub count: Option<u32>,
}

impl Keepalive {
    /// Keepalive after `idle` of silence, with the OS's interval and count.
    #[must_use]
    pub fn after(idle: Duration) -> Self {
        Self {
            idle,
            interval: None,
            count: None,
        }
    }

    /// With this interval between probes.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// With this many unanswered probes before the connection is dropped.
    #[must_use]
    pub fn count(mut self, count: u32) -> Self {
        self.count = Some(count);
        self
    }
}

/// Options of a stream or datagram socket, set before it binds or connects. Every field
/// left `None` keeps the OS default.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// use ringwork_platform::{Keepalive, SocketOptions};
///
/// let options = SocketOptions::new()
///     .recv_buffer(256 * 1024)
///     .keepalive(Keepalive::after(Duration::from_secs(60)).count(4))
///     .tos(0x10);
/// assert!(options.validate().is_ok());
/// assert!(SocketOptions::new().recv_buffer(0).validate().is_err());
/// ```
#[derive(Clone, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct SocketOptions {
    /// SO_RCVBUF in bytes, 1 to [`MAX_BUFFER`] (Linux doubles it for bookkeeping and caps
    /// it at `net.core.rmem_max`; reading it back gives the doubled value). Set before
    /// listen, it also bounds the TCP window scale of accepted connections.
    pub recv_buffer: Option<usize>,
    /// SO_SNDBUF in bytes, as [`SocketOptions::recv_buffer`] (`net.core.wmem_max`).
    pub send_buffer: Option<usize>,
    /// SO_KEEPALIVE with its timings (TCP only).
    pub keepalive: Option<Keepalive>,
    /// IP_TOS for IPv4, IPV6_TCLASS for IPv6: the DSCP and ECN byte of every packet sent.
    pub tos: Option<u8>,
    /// SO_BINDTODEVICE (Linux): only packets of this interface (`"eth0"`, `"lo"`, a VRF)
    /// reach the socket, and it sends only through it. 1 to [`MAX_DEVICE_NAME`] bytes.
    pub bind_device: Option<String>,
}

impl SocketOptions {
    /// No options: every OS default.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// With this SO_RCVBUF.
    #[must_use]
    pub fn recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }

    /// With this SO_SNDBUF.
    #[must_use]
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = Some(bytes);
        self
    }

    /// With TCP keepalive.
    #[must_use]
    pub fn keepalive(mut self, keepalive: Keepalive) -> Self {
        self.keepalive = Some(keepalive);
        self
    }

    /// With this IP_TOS / IPV6_TCLASS byte.
    #[must_use]
    pub fn tos(mut self, tos: u8) -> Self {
        self.tos = Some(tos);
        self
    }

    /// Bound to this network interface (SO_BINDTODEVICE, Linux).
    #[must_use]
    pub fn bind_device(mut self, device: impl Into<String>) -> Self {
        self.bind_device = Some(device.into());
        self
    }

    /// Whether no option is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Checks every value without touching a socket.
    ///
    /// # Errors
    /// The first value out of range ([`SocketOptionError::Invalid`]), or an option this
    /// target cannot set ([`SocketOptionError::Unsupported`]).
    pub fn validate(&self) -> Result<(), SocketOptionError> {
        for (option, size) in [
            ("SO_RCVBUF", self.recv_buffer),
            ("SO_SNDBUF", self.send_buffer),
        ] {
            if let Some(size) = size
                && !(1..=MAX_BUFFER).contains(&size)
            {
                return Err(invalid(option, size, "must be 1 byte to 1 GiB"));
            }
        }
        if let Some(keepalive) = &self.keepalive {
            keepalive_secs("TCP_KEEPIDLE", keepalive.idle)?;
            if let Some(interval) = keepalive.interval {
                keepalive_secs("TCP_KEEPINTVL", interval)?;
            }
            if let Some(count) = keepalive.count
                && !(1..=MAX_KEEPALIVE_COUNT).contains(&count)
            {
                return Err(invalid("TCP_KEEPCNT", count, "must be 1 to 127 probes"));
            }
        }
        if let Some(device) = &self.bind_device {
            if device.is_empty() || device.len() > MAX_DEVICE_NAME {
                return Err(invalid(
                    "SO_BINDTODEVICE",
                    format!("{device:?}"),
                    "an interface name is 1 to 15 bytes",
                ));
            }
            if device
                .bytes()
                .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
            {
                return Err(invalid(
                    "SO_BINDTODEVICE",
                    format!("{device:?}"),
                    "an interface name has no NUL, '/' or white space",
                ));
            }
            if !cfg!(target_os = "linux") {
                return Err(SocketOptionError::Unsupported {
                    option: "SO_BINDTODEVICE",
                    why: "binding to a device needs Linux",
                });
            }
        }
        Ok(())
    }

    /// Validates, then sets every given option on `socket` (of family `ip`: `Some(true)`
    /// for IPv4, `Some(false)` for IPv6, `None` for Unix sockets, which take only the buffer
    /// sizes). Call it before bind or connect.
    ///
    /// # Errors
    /// As [`SocketOptionError`]: a bad value, an option the socket's family does not take
    /// (keepalive, TOS or a device on a Unix socket), or the kernel's refusal with the
    /// option's name (ENODEV for a device that does not exist, EPERM without the right).
    pub fn apply(&self, socket: &Socket, ip: Option<bool>) -> Result<(), SocketOptionError> {
        self.validate()?;
        let set = |option: &'static str, value: String| {
            move |source: io::Error| SocketOptionError::Set {
                option,
                value,
                source,
            }
        };
        if let Some(size) = self.recv_buffer {
            socket
                .set_recv_buffer_size(size)
                .map_err(set("SO_RCVBUF", size.to_string()))?;
        }
        if let Some(size) = self.send_buffer {
            socket
                .set_send_buffer_size(size)
                .map_err(set("SO_SNDBUF", size.to_string()))?;
        }
        let needs_ip = |option| SocketOptionError::Unsupported {
            option,
            why: "only IP sockets take it",
        };
        if let Some(keepalive) = &self.keepalive {
            if ip.is_none() {
                return Err(needs_ip("SO_KEEPALIVE"));
            }
            set_keepalive(socket, keepalive)
                .map_err(set("SO_KEEPALIVE", format!("idle {:?}", keepalive.idle)))?;
        }
        if let Some(tos) = self.tos {
            match ip {
                None => return Err(needs_ip("IP_TOS")),
                Some(true) => socket
                    .set_tos_v4(u32::from(tos))
                    .map_err(set("IP_TOS", format!("{tos:#04x}")))?,
                Some(false) => set_tclass(socket, tos)?,
            }
        }
        if let Some(device) = &self.bind_device {
            if ip.is_none() {
                return Err(needs_ip("SO_BINDTODEVICE"));
            }
            bind_device(socket, device)?;
        }
        Ok(())
    }
}

/// Why a socket option was refused.
///
/// The `Display` texts are meant for people and are not stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketOptionError {
    /// A value out of range, found before any system call.
    #[error("{option} {value}: {why}")]
    Invalid {
        /// The option (`SO_RCVBUF`, `TCP_KEEPIDLE`, ...).
        option: &'static str,
        /// The value as given.
        value: String,
        /// What it must be.
        why: &'static str,
    },
    /// The option does not exist for this kind of socket or on this target.
    #[error("{option} unsupported: {why}")]
    Unsupported {
        /// The option.
        option: &'static str,
        /// Why not.
        why: &'static str,
    },
    /// The kernel refused the option.
    #[error("cannot set {option} to {value}: {source}")]
    Set {
        /// The option.
        option: &'static str,
        /// The value.
        value: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl SocketOptionError {
    /// As an `io::Error` (kind `InvalidInput` or `Unsupported`, or the OS error's), keeping
    /// this error as its source, for [`OpError`](crate::OpError)s.
    pub(crate) fn into_io(self) -> io::Error {
        let kind = match &self {
            Self::Invalid { .. } => io::ErrorKind::InvalidInput,
            Self::Unsupported { .. } => io::ErrorKind::Unsupported,
            Self::Set { source, .. } => source.kind(),
        };
        io::Error::new(kind, self)
    }
}

/// A listen backlog or TCP Fast Open queue length in range, as the `int` listen takes.
///
/// # Errors
/// [`SocketOptionError::Invalid`] outside 1 to [`MAX_QUEUE`].
pub(crate) fn queue_len(option: &'static str, len: u32) -> Result<i32, SocketOptionError> {
    if (1..=MAX_QUEUE).contains(&len) {
        Ok(len as i32)
    } else {
        Err(invalid(option, len, "must be 1 to 65535"))
    }
}

fn invalid(option: &'static str, value: impl ToString, why: &'static str) -> SocketOptionError {
    SocketOptionError::Invalid {
        option,
        value: value.to_string(),
        why,
    }
}

fn keepalive_secs(option: &'static str, value: Duration) -> Result<(), SocketOptionError> {
    let whole = value.subsec_nanos() == 0;
    if whole && (1..=MAX_KEEPALIVE_SECS).contains(&value.as_secs()) {
        Ok(())
    } else {
        Err(invalid(
            option,
            format!("{value:?}"),
            "must be whole seconds, 1 s to 32767 s",
        ))
    }
}

fn set_keepalive(socket: &Socket, keepalive: &Keepalive) -> io::Result<()> {
    let params = socket2::TcpKeepalive::new().with_time(keepalive.idle);
    #[cfg(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "freebsd",
        windows
    ))]
    let params = match keepalive.interval {
        Some(interval) => params.with_interval(interval),
        None => params,
    };
    #[cfg(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "freebsd",
        windows
    ))]
    let params = match keepalive.count {
        Some(count) => params.with_retries(count),
        None => params,
    };
    socket.set_tcp_keepalive(&params)
}

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
fn set_tclass(socket: &Socket, tos: u8) -> Result<(), SocketOptionError> {
    socket
        .set_tclass_v6(u32::from(tos))
        .map_err(|source| SocketOptionError::Set {
            option: "IPV6_TCLASS",
            value: format!("{tos:#04x}"),
            source,
        })
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
fn set_tclass(_socket: &Socket, _tos: u8) -> Result<(), SocketOptionError> {
    Err(SocketOptionError::Unsupported {
        option: "IPV6_TCLASS",
        why: "not available on this target",
    })
}

#[cfg(target_os = "linux")]
fn bind_device(socket: &Socket, device: &str) -> Result<(), SocketOptionError> {
    socket
        .bind_device(Some(device.as_bytes()))
        .map_err(|source| SocketOptionError::Set {
            option: "SO_BINDTODEVICE",
            value: format!("{device:?}"),
            source,
        })
}

#[cfg(not(target_os = "linux"))]
fn bind_device(_socket: &Socket, _device: &str) -> Result<(), SocketOptionError> {
    Err(SocketOptionError::Unsupported {
        option: "SO_BINDTODEVICE",
        why: "binding to a device needs Linux",
    })
}

/// The family of an IP address as [`SocketOptions::apply`] takes it.
pub(crate) fn ip_family(addr: &socket2::SockAddr) -> Option<bool> {
    addr.as_socket().map(|a| matches!(a, SocketAddr::V4(_)))
}

/// A listener's accept queue, from Linux's TCP_INFO (see [`listen_queue`]).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct ListenQueue {
    /// Connections waiting to be accepted.
    pub waiting: u32,
    /// The most that may wait: the backlog given to listen, capped by
    /// `net.core.somaxconn`. One more than this is held before SYNs are dropped.
    pub max: u32,
}

/// The accept queue of listening TCP socket `socket` (Linux: TCP_INFO's `tcpi_unacked`
/// and `tcpi_sacked` on a listener).
///
/// # Errors
/// `Unsupported` off Linux; the OS error (ENOTSOCK, EOPNOTSUPP for a non-TCP socket).
pub fn listen_queue(socket: SockRef<'_>) -> io::Result<ListenQueue> {
    let info = crate::sys::sockopt::tcp_info(&socket)?;
    Ok(ListenQueue {
        waiting: info.unacked,
        max: info.sacked,
    })
}

/// Whether the SYN that opened TCP connection `socket` carried data the peer acknowledged
/// (TCP Fast Open worked: TCP_INFO's `TCPI_OPT_SYN_DATA`, Linux).
///
/// # Errors
/// `Unsupported` off Linux; the OS error.
pub fn syn_data_acked(socket: SockRef<'_>) -> io::Result<bool> {
    crate::sys::sockopt::tcp_info(&socket).map(|info| info.syn_data)
}

/// The TCP state of `socket` as TCP_INFO reports it (Linux `TCP_ESTABLISHED` = 1,
/// `TCP_SYN_SENT` = 2, ..., `TCP_LISTEN` = 10).
///
/// # Errors
/// `Unsupported` off Linux; the OS error.
pub fn tcp_state(socket: SockRef<'_>) -> io::Result<u8> {
    crate::sys::sockopt::tcp_info(&socket).map(|info| info.state)
}

/// The TCP Fast Open queue length of listener `socket` (TCP_FASTOPEN; 0: off).
///
/// # Errors
/// `Unsupported` off Linux; the OS error.
pub fn fastopen_queue(socket: SockRef<'_>) -> io::Result<u32> {
    crate::sys::sockopt::fastopen(&socket)
}

/// Whether TCP_FASTOPEN_CONNECT is on for `socket` (Linux 4.11).
///
/// # Errors
/// `Unsupported` off Linux; the OS error.
pub fn fastopen_connect(socket: SockRef<'_>) -> io::Result<bool> {
    crate::sys::sockopt::fastopen_connect(&socket)
}

/// The index of network interface `name` (`if_nametoindex`: `"lo"` is usually 1), for
/// IPv6 multicast and scoped addresses.
///
/// # Errors
/// `NotFound` for an unknown interface; `InvalidInput` for a name with a NUL;
/// `Unsupported` off Unix.
pub fn interface_index(name: &str) -> io::Result<u32> {
    crate::sys::sockopt::interface_index(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_out_of_range_are_refused_by_name() {
        let cases = [
            (SocketOptions::new().recv_buffer(0), "SO_RCVBUF 0"),
            (
                SocketOptions::new().send_buffer(MAX_BUFFER + 1),
                "SO_SNDBUF 1073741824",
            ),
            (
                SocketOptions::new().keepalive(Keepalive::after(Duration::ZERO)),
                "TCP_KEEPIDLE 0ns",
            ),
            (
                SocketOptions::new().keepalive(Keepalive::after(Duration::from_millis(1500))),
                "TCP_KEEPIDLE 1.5s",
            ),
            (
                SocketOptions::new().keepalive(
                    Keepalive::after(Duration::from_secs(1)).interval(Duration::from_secs(40_000)),
                ),
                "TCP_KEEPINTVL 40000s",
            ),
            (
                SocketOptions::new().keepalive(Keepalive::after(Duration::from_secs(1)).count(0)),
                "TCP_KEEPCNT 0",
            ),
            (
                SocketOptions::new().keepalive(Keepalive::after(Duration::from_secs(1)).count(128)),
                "TCP_KEEPCNT 128",
            ),
            (SocketOptions::new().bind_device(""), "SO_BINDTODEVICE \"\""),
            (
                SocketOptions::new().bind_device("a-very-long-name0"),
                "SO_BINDTODEVICE \"a-very-long-name0\"",
            ),
            (
                SocketOptions::new().bind_device("eth 0"),
                "SO_BINDTODEVICE \"eth 0\"",
            ),
        ];
        for (options, text) in cases {
            let error = options.validate().expect_err(text);
            assert!(
                matches!(error, SocketOptionError::Invalid { .. }),
                "{text}: {error:?}"
            );
            assert!(error.to_string().starts_with(text), "{error} names {text}");
        }
    }

    #[test]
    fn values_in_range_pass() {
        let options = SocketOptions::new()
            .recv_buffer(1)
            .send_buffer(MAX_BUFFER)
            .keepalive(
                Keepalive::after(Duration::from_secs(MAX_KEEPALIVE_SECS))
                    .interval(Duration::from_secs(1))
                    .count(MAX_KEEPALIVE_COUNT),
            )
            .tos(0xff);
        assert!(options.validate().is_ok());
        assert!(!options.is_empty());
        assert!(SocketOptions::new().is_empty());
    }

    #[test]
    fn queue_lengths_are_checked() {
        assert_eq!(queue_len("backlog", 1).ok(), Some(1));
        assert_eq!(queue_len("backlog", MAX_QUEUE).ok(), Some(65_535));
        for bad in [0, MAX_QUEUE + 1] {
            let error = queue_len("backlog", bad).expect_err("out of range");
            assert!(error.to_string().contains("1 to 65535"), "{error}");
        }
    }
}
