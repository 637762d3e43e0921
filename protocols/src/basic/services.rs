//! The simplest services (RFC 862 echo, RFC 863 discard) as engine protocols.
//!
//! Owns: [`Echo`] and [`Discard`] for stream connections (TCP, Unix sockets) and
//! [`EchoDatagram`] and [`DiscardDatagram`] for UDP.
//! Contract: echo writes back every byte it receives and stops reading while its echo
//! cannot drain (backpressure), closing once the echo is sent after the peer's EOF;
//! discard reads and drops everything. Neither keeps state between callbacks.
//! Does not: parse anything — there is no sans-IO `proto` half to these.
//! Spec: RFC 862 (echo), RFC 863 (discard). Tests: `protocols/cli/tests/cli.rs` runs them
//! through the `ringwork` binary.

use std::net::SocketAddr;

use ringwork::{Context, DatagramContext, DatagramProtocol, Protocol};

/// Writes back every byte received on a stream connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(data);
    }

    // A peer that sends without reading: stop reading it until its echo drains, so the
    // buffered echo stays under the high watermark.
    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        ctx.pause_reading();
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        ctx.resume_reading();
    }

    // `eof_received` keeps its default: close once the echo is sent, so a client that
    // half-closes still gets every byte back.
}

/// Reads and drops every byte received on a stream connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Discard;

impl Protocol for Discard {
    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// Sends every UDP datagram back to its sender.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoDatagram;

impl DatagramProtocol for EchoDatagram {
    fn datagram_received(&mut self, ctx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        ctx.send_to(data, from);
    }
}

/// Drops every UDP datagram.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscardDatagram;

impl DatagramProtocol for DiscardDatagram {
    fn datagram_received(
        &mut self,
        _ctx: &mut DatagramContext<'_>,
        _data: &[u8],
        _from: SocketAddr,
    ) {
    }
}
