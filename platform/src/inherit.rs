//! Listening sockets inherited from the process that started this one: systemd's socket
//! activation (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`, descriptors from 3) and any
//! descriptor by number (`fd:N`).
//!
//! Owns: finding the descriptor ([`Inherited::fd`]), checking it is a listening stream
//! socket of the family asked for, and opening it ([`Inherited::open`]).
//! Contract: the inherited descriptor itself is never closed or taken over: it is marked
//! close-on-exec (as `sd_listen_fds` does, so children do not inherit it) and every
//! [`Inherited::open`] returns a duplicate of it (`F_DUPFD_CLOEXEC`), one per core, all
//! sharing the kernel's one accept queue. The environment is read, never changed.
//! Does not: bind, listen or change options (the socket comes as its parent made it; a
//! backlog or socket options given with it are not applied), or support non-Unix targets
//! (every call fails there with [`InheritError::Unsupported`]).

use std::fmt;
use std::io;

use socket2::{Socket, Type};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;

/// The address family an inherited socket must have.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Family {
    /// IPv4 (`AF_INET`, systemd's and Twisted's `INET`).
    Inet,
    /// IPv6 (`AF_INET6`, `INET6`).
    Inet6,
    /// Unix sockets (`AF_UNIX`, `UNIX`).
    Unix,
}

impl Family {
    /// The name as endpoint strings write it (`INET`, `INET6`, `UNIX`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "INET",
            Family::Inet6 => "INET6",
            Family::Unix => "UNIX",
        }
    }

    fn of(addr: &socket2::SockAddr) -> Option<Family> {
        if addr.is_ipv4() {
            Some(Family::Inet)
        } else if addr.is_ipv6() {
            Some(Family::Inet6)
        } else if addr.is_unix() {
            Some(Family::Unix)
        } else {
            None
        }
    }
}

/// Which inherited socket to listen on.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub enum Inherited {
    /// A socket passed by systemd's socket activation (or `systemd-socket-activate`):
    /// descriptor `3 + index`, or the one `LISTEN_FDNAMES` names `name`, of family
    /// `family`. `LISTEN_PID` must be this process.
    Systemd {
        /// The family it must have.
        family: Family,
        /// Its place among the passed descriptors (0 is descriptor 3).
        index: usize,
        /// Its name in `LISTEN_FDNAMES` (systemd's `FileDescriptorName=`), instead of
        /// `index` when given.
        name: Option<String>,
    },
    /// Descriptor `N`, left open by the parent for this process (a listening stream socket
    /// of any family).
    Fd(i32),
}

impl fmt::Display for Inherited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inherited::Systemd {
                family,
                name: Some(name),
                ..
            } => write!(f, "systemd:domain={}:name={name}", family.name()),
            Inherited::Systemd { family, index, .. } => {
                write!(f, "systemd:domain={}:index={index}", family.name())
            }
            Inherited::Fd(fd) => write!(f, "fd:{fd}"),
        }
    }
}

/// Why an inherited socket cannot be listened on.
///
/// The `Display` texts are meant for people and are not stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InheritError {
    /// No systemd sockets were passed to this process.
    #[error("no sockets passed by systemd: {why}")]
    NotActivated {
        /// What is missing or wrong in the environment.
        why: String,
    },
    /// The index or name is not among the passed sockets.
    #[error("{what} is not among the {count} socket(s) systemd passed{names}")]
    NoSuchSocket {
        /// The index or name asked for.
        what: String,
        /// How many were passed.
        count: usize,
        /// The names passed, if any (for the message).
        names: String,
    },
    /// A descriptor number below 0, or one of standard input, output or error.
    #[error("fd:{0}: not a descriptor a listening socket can be inherited on (3 or more)")]
    BadDescriptor(i32),
    /// The descriptor is not open, not a socket, not a stream socket, not listening, or of
    /// another family than asked for.
    #[error("{what}: {why}")]
    Invalid {
        /// The descriptor (`fd 3`).
        what: String,
        /// What is wrong with it.
        why: String,
    },
    /// Inheriting sockets needs Unix.
    #[error("inherited sockets need Unix")]
    Unsupported,
}

impl InheritError {
    /// As an `io::Error` (kind `InvalidInput`, `NotFound` or `Unsupported`), keeping this
    /// error as its source.
    #[must_use]
    pub fn into_io(self) -> io::Error {
        let kind = match &self {
            Self::NotActivated { .. } | Self::NoSuchSocket { .. } => io::ErrorKind::NotFound,
            Self::BadDescriptor(_) | Self::Invalid { .. } => io::ErrorKind::InvalidInput,
            Self::Unsupported => io::ErrorKind::Unsupported,
        };
        io::Error::new(kind, self)
    }
}

impl Inherited {
    /// The descriptor this names, from the environment for systemd sockets.
    ///
    /// # Errors
    /// No or wrong `LISTEN_PID` / `LISTEN_FDS`, an index or name not passed, a descriptor
    /// below 3.
    pub fn fd(&self) -> Result<i32, InheritError> {
        match self {
            Inherited::Fd(fd) if *fd < LISTEN_FDS_START => Err(InheritError::BadDescriptor(*fd)),
            Inherited::Fd(fd) => Ok(*fd),
            Inherited::Systemd { index, name, .. } => systemd_fd(
                |key| std::env::var(key).ok(),
                std::process::id(),
                *index,
                name.as_deref(),
            ),
        }
    }

    /// A new descriptor of the inherited socket (a duplicate: the original stays open and
    /// is marked close-on-exec), after checking it is a listening stream socket (of the
    /// family asked for, for systemd sockets). Each call makes another duplicate, so every
    /// core can listen on it.
    ///
    /// # Errors
    /// As [`Inherited::fd`]; the descriptor not open, not a socket, not a stream socket, not
    /// listening, or of another family ([`InheritError::Invalid`]).
    pub fn open(&self) -> Result<Socket, InheritError> {
        let fd = self.fd()?;
        let what = format!("{self} (fd {fd})");
        let invalid = |why: String| InheritError::Invalid {
            what: what.clone(),
            why,
        };
        let socket = crate::sys::inherit::duplicate(fd).map_err(|e| match e {
            e if e.kind() == io::ErrorKind::Unsupported => InheritError::Unsupported,
            e => invalid(format!("not an open descriptor ({e})")),
        })?;
        let kind = socket
            .r#type()
            .map_err(|e| invalid(format!("not a socket ({e})")))?;
        if kind != Type::STREAM {
            return Err(invalid(format!(
                "not a stream socket (type {kind:?}); only stream listeners are inherited"
            )));
        }
        if !crate::sys::inherit::is_listening(&socket)
            .map_err(|e| invalid(format!("cannot tell whether it listens ({e})")))?
        {
            return Err(invalid("a stream socket that is not listening".into()));
        }
        let local = socket
            .local_addr()
            .map_err(|e| invalid(format!("no local address ({e})")))?;
        let family = Family::of(&local);
        if let (Inherited::Systemd { family: want, .. }, Some(got)) = (self, family)
            && *want != got
        {
            return Err(invalid(format!(
                "of family {}, not domain={}",
                got.name(),
                want.name()
            )));
        }
        if family.is_none() {
            return Err(invalid("neither an IP nor a Unix socket".into()));
        }
        Ok(socket)
    }
}

/// The descriptor of systemd socket `index` (or `name`), from environment `var`, for
/// process `pid` (sd_listen_fds(3)).
fn systemd_fd(
    var: impl Fn(&str) -> Option<String>,
    pid: u32,
    index: usize,
    name: Option<&str>,
) -> Result<i32, InheritError> {
    let missing = |why: String| InheritError::NotActivated { why };
    let listen_pid = var("LISTEN_PID").ok_or_else(|| missing("LISTEN_PID is not set".into()))?;
    if listen_pid.trim().parse::<u32>().ok() != Some(pid) {
        return Err(missing(format!(
            "LISTEN_PID is {listen_pid:?}, not this process ({pid})"
        )));
    }
    let count = var("LISTEN_FDS").ok_or_else(|| missing("LISTEN_FDS is not set".into()))?;
    let count: usize = count
        .trim()
        .parse()
        .ok()
        .filter(|n| *n <= 4096)
        .ok_or_else(|| missing(format!("LISTEN_FDS is {count:?}, not a count")))?;
    if count == 0 {
        return Err(missing("LISTEN_FDS is 0".into()));
    }
    let names: Vec<String> = var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let listed = if names.is_empty() {
        String::new()
    } else {
        format!(" (named {})", names.join(", "))
    };
    let index = match name {
        Some(name) => names
            .iter()
            .take(count)
            .position(|n| n == name)
            .ok_or_else(|| InheritError::NoSuchSocket {
                what: format!("name {name:?}"),
                count,
                names: listed.clone(),
            })?,
        None => index,
    };
    if index >= count {
        return Err(InheritError::NoSuchSocket {
            what: format!("index {index}"),
            count,
            names: listed,
        });
    }
    // `index < count <= 4096`: the sum fits an i32.
    Ok(LISTEN_FDS_START + index as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn systemd_descriptors_by_index_and_name() {
        let vars = [
            ("LISTEN_PID", "42"),
            ("LISTEN_FDS", "2"),
            ("LISTEN_FDNAMES", "web:admin"),
        ];
        assert_eq!(systemd_fd(env(&vars), 42, 0, None).ok(), Some(3));
        assert_eq!(systemd_fd(env(&vars), 42, 1, None).ok(), Some(4));
        assert_eq!(systemd_fd(env(&vars), 42, 0, Some("admin")).ok(), Some(4));
        let error = systemd_fd(env(&vars), 42, 2, None).expect_err("past the end");
        assert_eq!(
            error.to_string(),
            "index 2 is not among the 2 socket(s) systemd passed (named web, admin)"
        );
        let error = systemd_fd(env(&vars), 42, 0, Some("api")).expect_err("no such name");
        assert!(
            error.to_string().starts_with("name \"api\" is not among"),
            "{error}"
        );
    }

    #[test]
    fn systemd_environment_is_checked() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[], "LISTEN_PID is not set"),
            (
                &[("LISTEN_PID", "7"), ("LISTEN_FDS", "1")],
                "not this process (42)",
            ),
            (&[("LISTEN_PID", "42")], "LISTEN_FDS is not set"),
            (
                &[("LISTEN_PID", "42"), ("LISTEN_FDS", "lots")],
                "LISTEN_FDS is \"lots\", not a count",
            ),
        ];
        for (vars, text) in cases {
            let error = systemd_fd(env(vars), 42, 0, None).expect_err(text);
            assert!(matches!(error, InheritError::NotActivated { .. }));
            assert!(error.to_string().contains(text), "{error} says {text}");
        }
    }

    #[test]
    fn low_descriptors_are_refused() {
        for fd in [-1, 0, 1, 2] {
            let error = Inherited::Fd(fd).fd().expect_err("stdio");
            assert!(matches!(error, InheritError::BadDescriptor(_)), "{error}");
        }
    }

    #[test]
    fn names_print_as_endpoints() {
        let systemd = Inherited::Systemd {
            family: Family::Inet6,
            index: 1,
            name: None,
        };
        assert_eq!(systemd.to_string(), "systemd:domain=INET6:index=1");
        assert_eq!(Inherited::Fd(5).to_string(), "fd:5");
    }
}
