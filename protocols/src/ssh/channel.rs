//! Channel bookkeeping (RFC 4254 §5) shared by the server and client machines: window
//! accounting in both directions, outgoing data held until the peer's window has room,
//! and the end of a channel (EOF, exit status, CLOSE) sent after its data.
//!
//! Memory is bounded both ways: the peer may send at most our window (more is a protocol
//! error), and we hold outgoing data only up to what the application put in while
//! `ChannelTable::writable` said yes, plus one write.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};

use super::wire::{Writer, msg};

/// A channel, by the number this end gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u32);

/// The window this end opens for each channel.
pub const LOCAL_WINDOW: u32 = 2 * 1024 * 1024;
/// The largest data packet this end accepts.
pub const LOCAL_MAX_PACKET: u32 = 32 * 1024;
/// Outgoing bytes held per channel before `ChannelTable::writable` says no.
pub const OUT_HIGH_WATER: usize = 256 * 1024;

/// What a channel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A session (exec, shell, subsystem).
    Session,
    /// A TCP connection (direct-tcpip or forwarded-tcpip).
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The peer asked to open it; the application has not answered.
    Offered,
    /// We asked to open it; the peer has not answered.
    Requested,
    Open,
}

pub(crate) struct Channel {
    pub(crate) kind: ChannelKind,
    pub(crate) phase: Phase,
    pub(crate) remote: u32,
    remote_window: u32,
    remote_max_packet: u32,
    /// What the peer may still send.
    local_window: u32,
    /// Bytes the application released but not yet announced with WINDOW_ADJUST.
    released: u32,
    out: BytesMut,
    err: BytesMut,
    /// The application stopped writing (said it was full) and waits for room.
    pub(crate) blocked: bool,
    eof_wanted: bool,
    eof_sent: bool,
    pub(crate) eof_received: bool,
    /// Requests (`exit-status`, `exit-signal`) to send after the data and EOF.
    trailers: Vec<Vec<u8>>,
    close_wanted: bool,
    pub(crate) close_sent: bool,
    pub(crate) close_received: bool,
}

/// Every channel of one connection.
#[derive(Default)]
pub(crate) struct ChannelTable {
    channels: BTreeMap<u32, Channel>,
    next: u32,
}

/// Why a channel message was refused.
#[derive(Debug)]
pub(crate) struct ChannelError(pub(crate) &'static str);

impl ChannelTable {
    pub(crate) fn len(&self) -> usize {
        self.channels.len()
    }

    /// A new channel; `remote` and its window are known (peer opened it) or zero (we did).
    pub(crate) fn insert(
        &mut self,
        kind: ChannelKind,
        phase: Phase,
        remote: u32,
        window: u32,
        max_packet: u32,
    ) -> ChannelId {
        while self.channels.contains_key(&self.next) {
            self.next = self.next.wrapping_add(1);
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        self.channels.insert(
            id,
            Channel {
                kind,
                phase,
                remote,
                remote_window: window,
                remote_max_packet: max_packet.clamp(1, 256 * 1024),
                local_window: LOCAL_WINDOW,
                released: 0,
                out: BytesMut::new(),
                err: BytesMut::new(),
                blocked: false,
                eof_wanted: false,
                eof_sent: false,
                eof_received: false,
                trailers: Vec::new(),
                close_wanted: false,
                close_sent: false,
                close_received: false,
            },
        );
        ChannelId(id)
    }

    /// What channel `id` carries.
    pub(crate) fn kind(&self, id: ChannelId) -> Option<ChannelKind> {
        self.channels.get(&id.0).map(|c| c.kind)
    }

    pub(crate) fn get(&self, id: ChannelId) -> Option<&Channel> {
        self.channels.get(&id.0)
    }

    pub(crate) fn get_mut(&mut self, id: ChannelId) -> Option<&mut Channel> {
        self.channels.get_mut(&id.0)
    }

    pub(crate) fn remove(&mut self, id: ChannelId) {
        self.channels.remove(&id.0);
    }

    /// The peer confirmed a channel we opened.
    pub(crate) fn confirmed(
        &mut self,
        id: ChannelId,
        remote: u32,
        window: u32,
        max_packet: u32,
    ) -> bool {
        match self.channels.get_mut(&id.0) {
            Some(ch) if ch.phase == Phase::Requested => {
                ch.phase = Phase::Open;
                ch.remote = remote;
                ch.remote_window = window;
                ch.remote_max_packet = max_packet.clamp(1, 256 * 1024);
                true
            }
            _ => false,
        }
    }

    /// Incoming data of `len` bytes: charged to the window.
    pub(crate) fn received(&mut self, id: ChannelId, len: usize) -> Result<(), ChannelError> {
        let ch = self
            .channels
            .get_mut(&id.0)
            .ok_or(ChannelError("data for an unknown channel"))?;
        if ch.phase != Phase::Open || ch.eof_received || ch.close_received {
            return Err(ChannelError("data on a channel not open for it"));
        }
        let len = u32::try_from(len).map_err(|_| ChannelError("data too long"))?;
        if len > ch.local_window || len > LOCAL_MAX_PACKET {
            return Err(ChannelError("data beyond the window"));
        }
        ch.local_window -= len;
        Ok(())
    }

    /// The application consumed `n` bytes: the window reopens (WINDOW_ADJUST once half).
    pub(crate) fn release(&mut self, id: ChannelId, n: usize, out: &mut Vec<Vec<u8>>) {
        let Some(ch) = self.channels.get_mut(&id.0) else {
            return;
        };
        ch.released = ch
            .released
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        let room = LOCAL_WINDOW.saturating_sub(ch.local_window);
        ch.released = ch.released.min(room);
        if ch.released >= LOCAL_WINDOW / 2 && !ch.close_sent && !ch.close_received {
            let mut w = Writer::message(msg::CHANNEL_WINDOW_ADJUST);
            w.u32(ch.remote).u32(ch.released);
            ch.local_window += ch.released;
            ch.released = 0;
            out.push(w.finish());
        }
    }

    /// The peer's window grew.
    pub(crate) fn adjust(&mut self, id: ChannelId, n: u32) {
        if let Some(ch) = self.channels.get_mut(&id.0) {
            ch.remote_window = ch.remote_window.saturating_add(n);
        }
    }

    /// Queues data (`stderr`: extended data type 1).
    pub(crate) fn write(&mut self, id: ChannelId, data: &[u8], stderr: bool) {
        if let Some(ch) = self.channels.get_mut(&id.0)
            && !ch.eof_wanted
            && !ch.close_wanted
            && !ch.close_received
        {
            if stderr {
                ch.err.extend_from_slice(data)
            } else {
                ch.out.extend_from_slice(data)
            }
            if ch.out.len() + ch.err.len() >= OUT_HIGH_WATER {
                ch.blocked = true;
            }
        }
    }

    /// Whether the application may write more to `id` now.
    /// The transport has room again: every open channel counts as blocked, so that the
    /// next flush gives each with room a `Writable` (a writer told "not writable" because
    /// of the transport, not its channel, waits for that event too).
    pub(crate) fn block_open(&mut self) {
        for ch in self.channels.values_mut() {
            if ch.phase == Phase::Open {
                ch.blocked = true;
            }
        }
    }

    pub(crate) fn writable(&self, id: ChannelId) -> bool {
        self.channels
            .get(&id.0)
            .is_some_and(|ch| ch.out.len() + ch.err.len() < OUT_HIGH_WATER)
    }

    pub(crate) fn want_eof(&mut self, id: ChannelId) {
        if let Some(ch) = self.channels.get_mut(&id.0) {
            ch.eof_wanted = true;
        }
    }

    pub(crate) fn want_trailer(&mut self, id: ChannelId, request: &str, body: &[u8]) {
        if let Some(ch) = self.channels.get_mut(&id.0) {
            let mut w = Writer::message(msg::CHANNEL_REQUEST);
            w.u32(ch.remote).string(request).bool(false).raw(body);
            ch.trailers.push(w.finish());
        }
    }

    pub(crate) fn want_close(&mut self, id: ChannelId) {
        if let Some(ch) = self.channels.get_mut(&id.0) {
            ch.close_wanted = true;
        }
    }

    /// Moves what the windows allow into packets; returns channels whose writer may go on
    /// (were blocked, now have room) and channels fully closed (CLOSE both ways).
    pub(crate) fn flush(
        &mut self,
        out: &mut Vec<Vec<u8>>,
        budget: &mut usize,
        transport_writable: bool,
    ) -> (Vec<ChannelId>, Vec<ChannelId>) {
        let mut writable = Vec::new();
        let mut closed = Vec::new();
        for (&id, ch) in &mut self.channels {
            if ch.phase != Phase::Open {
                continue;
            }
            if !ch.close_sent && !ch.close_received {
                for stderr in [false, true] {
                    loop {
                        let buf = if stderr { &mut ch.err } else { &mut ch.out };
                        let n = buf
                            .len()
                            .min(ch.remote_window as usize)
                            .min(ch.remote_max_packet as usize)
                            .min(*budget);
                        if n == 0 {
                            break;
                        }
                        let chunk = buf.split_to(n);
                        let mut w = if stderr {
                            let mut w = Writer::message(msg::CHANNEL_EXTENDED_DATA);
                            w.u32(ch.remote).u32(1);
                            w
                        } else {
                            let mut w = Writer::message(msg::CHANNEL_DATA);
                            w.u32(ch.remote);
                            w
                        };
                        w.string(&chunk);
                        ch.remote_window -= n as u32;
                        *budget -= n;
                        out.push(w.finish());
                    }
                }
                if transport_writable
                    && ch.blocked
                    && ch.out.len() + ch.err.len() < OUT_HIGH_WATER / 2
                {
                    ch.blocked = false;
                    writable.push(ChannelId(id));
                }
                let drained = ch.out.is_empty() && ch.err.is_empty();
                if drained && ch.eof_wanted && !ch.eof_sent {
                    ch.eof_sent = true;
                    let mut w = Writer::message(msg::CHANNEL_EOF);
                    w.u32(ch.remote);
                    out.push(w.finish());
                }
                if drained && (ch.eof_sent || ch.close_wanted) {
                    out.append(&mut ch.trailers);
                }
                if drained && ch.close_wanted {
                    ch.close_sent = true;
                    let mut w = Writer::message(msg::CHANNEL_CLOSE);
                    w.u32(ch.remote);
                    out.push(w.finish());
                }
            } else {
                ch.out.clear();
                ch.err.clear();
            }
            if ch.close_received && !ch.close_sent {
                ch.close_sent = true;
                let mut w = Writer::message(msg::CHANNEL_CLOSE);
                w.u32(ch.remote);
                out.push(w.finish());
            }
            if ch.close_sent && ch.close_received {
                closed.push(ChannelId(id));
            }
        }
        for id in &closed {
            self.channels.remove(&id.0);
        }
        (writable, closed)
    }
}

/// `Bytes` of a data payload's string field (copied out of the packet).
pub(crate) fn data_bytes(data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len());
    b.extend_from_slice(data);
    let _ = b.remaining();
    b.freeze()
}
