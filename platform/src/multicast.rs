//! UDP multicast settings of a datagram socket: joining and leaving groups (IPv4 and IPv6,
//! by interface), the TTL / hop limit and loopback of what it sends, and the interface it
//! sends through ([`Multicast`], applied by
//! [`Driver::multicast`](crate::Driver::multicast)).
//!
//! Owns: validation (a multicast group of the socket's family, a TTL up to 255, an
//! interface that exists) and the mapping to IP_ADD_MEMBERSHIP / IPV6_JOIN_GROUP,
//! IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS, IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP and
//! IP_MULTICAST_IF / IPV6_MULTICAST_IF.
//! Contract: a setting applies to the socket from the call on, on either backend (datagrams
//! already queued by the kernel stay); a failure changes nothing and names the setting.
//! Does not: choose a group or an interface, or send (use
//! [`Driver::send_to`](crate::Driver::send_to) to the group's address).

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use socket2::{InterfaceIndexOrAddress, SockRef};

/// A network interface for multicast.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub enum Interface {
    /// The one the kernel picks (by its routing table).
    Any,
    /// The interface of this index (`if_nametoindex`; see
    /// [`options::interface_index`](crate::options::interface_index)).
    Index(u32),
    /// The interface of this name (`"lo"`, `"eth0"`), looked up when applied.
    Name(String),
    /// The IPv4 interface holding this address (IPv4 sockets only).
    Address(Ipv4Addr),
}

/// One multicast setting of a UDP socket.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Multicast {
    /// Receive datagrams sent to `group` arriving on `interface` (IP_ADD_MEMBERSHIP,
    /// IPV6_JOIN_GROUP). The socket must be bound to the group's port (and to the
    /// unspecified address or the group's) to see them.
    Join {
        /// The group: an IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) multicast address of the
        /// socket's family.
        group: IpAddr,
        /// Where to listen for it.
        interface: Interface,
    },
    /// Stop receiving `group` on `interface` (the same pair as its join).
    Leave {
        /// The group.
        group: IpAddr,
        /// The interface it was joined on.
        interface: Interface,
    },
    /// The TTL (IPv4) or hop limit (IPv6) of multicast datagrams sent, 0 to 255; the
    /// default 1 keeps them on the local network.
    Ttl(u32),
    /// Whether multicast datagrams sent are also delivered to this host's members
    /// (default on).
    Loopback(bool),
    /// The interface multicast datagrams are sent through.
    SendInterface(Interface),
    /// Linux (IP_MULTICAST_ALL / IPV6_MULTICAST_ALL, default on): whether a socket bound to
    /// the unspecified address also receives the groups *other* sockets of this host
    /// joined on its port. Off: only the groups it joined itself.
    AllGroups(bool),
}

/// Why a multicast setting was refused.
///
/// The `Display` texts are meant for people and are not stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MulticastError {
    /// The group is not a multicast address.
    #[error("{0} is not a multicast address")]
    NotMulticast(IpAddr),
    /// The group or interface is of the other family than the socket.
    #[error("{what} on an {socket} socket")]
    WrongFamily {
        /// What was given.
        what: String,
        /// The socket's family (`IPv4`, `IPv6`).
        socket: &'static str,
    },
    /// A TTL above 255.
    #[error("multicast TTL {0}: must be 0 to 255")]
    BadTtl(u32),
    /// The interface name is not known.
    #[error("interface {name:?}: {source}")]
    NoInterface {
        /// The name.
        name: String,
        /// The lookup's error.
        #[source]
        source: io::Error,
    },
    /// The setting does not exist on this target.
    #[error("{0} needs Linux")]
    Unsupported(&'static str),
    /// Not a UDP socket over IP.
    #[error("multicast needs an IP datagram socket")]
    NotIp,
    /// The kernel refused the setting.
    #[error("{option}: {source}")]
    Os {
        /// The option (`IP_ADD_MEMBERSHIP`, ...).
        option: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl MulticastError {
    /// As an `io::Error` (kind `InvalidInput`, `NotFound`, or the OS error's), keeping this
    /// error as its source.
    pub(crate) fn into_io(self) -> io::Error {
        let kind = match &self {
            Self::NotMulticast(_) | Self::WrongFamily { .. } | Self::BadTtl(_) | Self::NotIp => {
                io::ErrorKind::InvalidInput
            }
            Self::NoInterface { .. } => io::ErrorKind::NotFound,
            Self::Unsupported(_) => io::ErrorKind::Unsupported,
            Self::Os { source, .. } => source.kind(),
        };
        io::Error::new(kind, self)
    }
}

impl Multicast {
    /// Applies this setting to UDP socket `socket`.
    ///
    /// # Errors
    /// As [`MulticastError`].
    pub fn apply(&self, socket: SockRef<'_>) -> Result<(), MulticastError> {
        let local = socket.local_addr().map_err(|source| MulticastError::Os {
            option: "getsockname",
            source,
        })?;
        let v4 = match local.as_socket() {
            Some(addr) => addr.is_ipv4(),
            None => return Err(MulticastError::NotIp),
        };
        let family = if v4 { "IPv4" } else { "IPv6" };
        let os = |option: &'static str| move |source| MulticastError::Os { option, source };
        match self {
            Multicast::Join { group, interface } | Multicast::Leave { group, interface } => {
                let join = matches!(self, Multicast::Join { .. });
                if !group.is_multicast() {
                    return Err(MulticastError::NotMulticast(*group));
                }
                match group {
                    IpAddr::V4(group) if v4 => {
                        let interface = v4_interface(interface)?;
                        if join {
                            socket
                                .join_multicast_v4_n(group, &interface)
                                .map_err(os("IP_ADD_MEMBERSHIP"))
                        } else {
                            socket
                                .leave_multicast_v4_n(group, &interface)
                                .map_err(os("IP_DROP_MEMBERSHIP"))
                        }
                    }
                    IpAddr::V6(group) if !v4 => {
                        let index = v6_interface(interface)?;
                        if join {
                            socket
                                .join_multicast_v6(group, index)
                                .map_err(os("IPV6_JOIN_GROUP"))
                        } else {
                            socket
                                .leave_multicast_v6(group, index)
                                .map_err(os("IPV6_LEAVE_GROUP"))
                        }
                    }
                    _ => Err(MulticastError::WrongFamily {
                        what: format!("group {group}"),
                        socket: family,
                    }),
                }
            }
            Multicast::Ttl(ttl) if *ttl > 255 => Err(MulticastError::BadTtl(*ttl)),
            Multicast::Ttl(ttl) if v4 => socket
                .set_multicast_ttl_v4(*ttl)
                .map_err(os("IP_MULTICAST_TTL")),
            Multicast::Ttl(hops) => socket
                .set_multicast_hops_v6(*hops)
                .map_err(os("IPV6_MULTICAST_HOPS")),
            Multicast::Loopback(on) if v4 => socket
                .set_multicast_loop_v4(*on)
                .map_err(os("IP_MULTICAST_LOOP")),
            Multicast::Loopback(on) => socket
                .set_multicast_loop_v6(*on)
                .map_err(os("IPV6_MULTICAST_LOOP")),
            Multicast::SendInterface(interface) if v4 => {
                let address = match interface {
                    Interface::Address(address) => *address,
                    Interface::Any => Ipv4Addr::UNSPECIFIED,
                    other => {
                        return Err(MulticastError::WrongFamily {
                            what: format!("sending interface {other:?} (IPv4 takes an address)"),
                            socket: family,
                        });
                    }
                };
                socket
                    .set_multicast_if_v4(&address)
                    .map_err(os("IP_MULTICAST_IF"))
            }
            Multicast::SendInterface(interface) => socket
                .set_multicast_if_v6(v6_interface(interface)?)
                .map_err(os("IPV6_MULTICAST_IF")),
            Multicast::AllGroups(all) => all_groups(&socket, v4, *all),
        }
    }
}

#[cfg(target_os = "linux")]
fn all_groups(socket: &SockRef<'_>, v4: bool, all: bool) -> Result<(), MulticastError> {
    let os = |option: &'static str| move |source| MulticastError::Os { option, source };
    if v4 {
        socket
            .set_multicast_all_v4(all)
            .map_err(os("IP_MULTICAST_ALL"))
    } else {
        socket
            .set_multicast_all_v6(all)
            .map_err(os("IPV6_MULTICAST_ALL"))
    }
}

#[cfg(not(target_os = "linux"))]
fn all_groups(_socket: &SockRef<'_>, _v4: bool, _all: bool) -> Result<(), MulticastError> {
    Err(MulticastError::Unsupported("IP_MULTICAST_ALL"))
}

fn index_of(name: &str) -> Result<u32, MulticastError> {
    crate::options::interface_index(name).map_err(|source| MulticastError::NoInterface {
        name: name.to_owned(),
        source,
    })
}

fn v4_interface(interface: &Interface) -> Result<InterfaceIndexOrAddress, MulticastError> {
    Ok(match interface {
        Interface::Any => InterfaceIndexOrAddress::Address(Ipv4Addr::UNSPECIFIED),
        Interface::Index(index) => InterfaceIndexOrAddress::Index(*index),
        Interface::Name(name) => InterfaceIndexOrAddress::Index(index_of(name)?),
        Interface::Address(address) => InterfaceIndexOrAddress::Address(*address),
    })
}

fn v6_interface(interface: &Interface) -> Result<u32, MulticastError> {
    match interface {
        Interface::Any => Ok(0),
        Interface::Index(index) => Ok(*index),
        Interface::Name(name) => index_of(name),
        Interface::Address(address) => Err(MulticastError::WrongFamily {
            what: format!("interface address {address}"),
            socket: "IPv6",
        }),
    }
}
