//! Remote forwarding (`ssh -R`, RFC 4254 §7.1): a `tcpip-forward` request opens a listener
//! on the SSH connection's core; each connection it accepts becomes a `forwarded-tcpip`
//! channel to the client. The listeners live as long as their SSH connection (or until
//! `cancel-tcpip-forward`): they are closed with it.
//!
//! Owns: the bind address a request may have (loopback only, as OpenSSH's default
//! `GatewayPorts no`), the relay protocol of an accepted connection before and after its
//! channel is confirmed, and the table of a connection's forwards.
//! Contract: an accepted connection does not read until its channel is confirmed (at most
//! one read already in flight is held, then sent first); a refused channel closes it.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;

use bytes::Bytes;
use ringwork::{Context, LostReason, Protocol, SockAddr};

use super::channel::ChannelId;
use super::service::SshCommand;
use crate::kit::adapter::MailboxSender;

/// Where a `tcpip-forward` for `address` listens: loopback only (OpenSSH's default
/// `GatewayPorts no` binds the loopback address whatever the client asks). `None` for an
/// address that names something else (a host name other than `localhost`, another IP).
#[must_use]
pub fn bind_address(address: &str, port: u32) -> Option<SocketAddr> {
    let port = u16::try_from(port).ok()?;
    let ip = match address {
        "" | "*" | "0.0.0.0" | "localhost" | "127.0.0.1" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "::" | "::1" => IpAddr::V6(Ipv6Addr::LOCALHOST),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// One forward of a connection: what the client asked and where it listens.
#[derive(Clone, Debug)]
pub struct Forward {
    /// The address string the client sent (echoed in `forwarded-tcpip`).
    pub address: String,
    /// The port the client asked for (0: any).
    pub requested: u32,
    /// Where the listener is bound.
    pub bound: SocketAddr,
}

impl Forward {
    /// Whether `cancel-tcpip-forward` for `address` and `port` names this forward.
    #[must_use]
    pub fn matches(&self, address: &str, port: u32) -> bool {
        self.address == address && (port == self.requested || port == u32::from(self.bound.port()))
    }
}

/// What an accepted connection shares with its SSH connection until its channel is open.
#[derive(Debug, Default)]
pub struct Slot {
    /// The channel, once confirmed.
    pub channel: Option<ChannelId>,
    /// Bytes read before the channel was confirmed (one read at most: reading is paused).
    pub held: Vec<u8>,
    /// The peer finished sending before the channel was confirmed.
    pub eof: bool,
    /// The connection ended before the channel was confirmed.
    pub lost: bool,
}

/// The shared slot of one accepted connection.
pub type SharedSlot = Rc<RefCell<Slot>>;

/// The protocol of a connection accepted on a forward's listener.
pub struct ForwardedRelay {
    sender: MailboxSender<SshCommand>,
    address: String,
    slot: SharedSlot,
}

impl ForwardedRelay {
    /// A relay posting to `sender` for the forward of `address`.
    #[must_use]
    pub fn new(sender: MailboxSender<SshCommand>, address: String) -> Self {
        Self {
            sender,
            address,
            slot: SharedSlot::default(),
        }
    }

    fn channel(&self) -> Option<ChannelId> {
        self.slot.borrow().channel
    }
}

impl Protocol for ForwardedRelay {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        // Nothing is read until the client accepts the channel.
        ctx.pause_reading();
        let port = ctx
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map_or(0, |a| a.port());
        let origin = ctx
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let accepted = SshCommand::Accepted {
            address: self.address.clone(),
            port: u32::from(port),
            conn: ctx.id(),
            origin,
            slot: Rc::clone(&self.slot),
        };
        if self.sender.post(accepted).is_err() {
            ctx.close();
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let Some(channel) = self.channel() else {
            self.slot.borrow_mut().held.extend_from_slice(data);
            return;
        };
        let command = SshCommand::Output {
            channel,
            data: Bytes::copy_from_slice(data),
            stderr: false,
        };
        if self.sender.post(command).is_err() {
            ctx.close();
        }
    }

    fn eof_received(&mut self, _ctx: &mut Context<'_>) {
        match self.channel() {
            Some(channel) => {
                let _ = self.sender.post(SshCommand::Eof { channel });
            }
            None => self.slot.borrow_mut().eof = true,
        }
    }

    fn write_drained(&mut self, _ctx: &mut Context<'_>) {
        if let Some(channel) = self.channel() {
            let _ = self.sender.post(SshCommand::Drained { channel });
        }
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, _reason: LostReason) {
        match self.channel() {
            Some(channel) => {
                let _ = self.sender.post(SshCommand::Ended {
                    channel,
                    status: None,
                });
            }
            None => self.slot.borrow_mut().lost = true,
        }
    }
}

/// Closes this core's listener at `bound` (from a job of the core: the SSH connection
/// that owned it ended or cancelled it).
pub fn close_listener(ctx: &Context<'_>, bound: SocketAddr) {
    ctx.handle().run(move |reactor| {
        reactor.close_listener(&SockAddr::from(bound));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_binds() {
        for address in ["", "*", "0.0.0.0", "localhost", "127.0.0.1"] {
            assert_eq!(
                bind_address(address, 8022),
                Some(SocketAddr::from(([127, 0, 0, 1], 8022))),
                "{address:?}"
            );
        }
        assert_eq!(
            bind_address("::1", 0),
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0))
        );
        assert_eq!(bind_address("10.0.0.1", 80), None);
        assert_eq!(bind_address("example.com", 80), None);
        assert_eq!(bind_address("localhost", 70_000), None);
    }

    #[test]
    fn a_cancel_names_the_requested_or_the_bound_port() {
        let forward = Forward {
            address: "localhost".into(),
            requested: 0,
            bound: SocketAddr::from(([127, 0, 0, 1], 40_000)),
        };
        assert!(forward.matches("localhost", 0));
        assert!(forward.matches("localhost", 40_000));
        assert!(!forward.matches("127.0.0.1", 40_000));
        assert!(!forward.matches("localhost", 40_001));
    }
}
