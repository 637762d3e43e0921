//! Identities of sockets, timers and in-flight operations.
//!
//! Owns: [`SocketId`], [`TimerId`], [`OpKind`] and the packing of all three into the 64-bit
//! `user_data` that io_uring hands back with every completion ([`OpId`]).
//! Contract: a slot is reused only after every operation on its previous owner completed,
//! and each reuse bumps the slot's generation; a completion whose generation differs from the
//! slot's current one is stale and is dropped, never delivered to the new owner.
//! Layout of `user_data` (most significant first): `kind: 8 bits | generation: 24 bits |
//! slot: 32 bits`.

use std::fmt;

/// Generations wrap at 2^24 (the width they have in `user_data`).
pub(crate) const GENERATION_MASK: u32 = (1 << 24) - 1;

/// A socket owned by a [`Driver`](crate::Driver): a slot in its socket table plus the
/// generation that slot had when the socket was added.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct SocketId {
    slot: u32,
    generation: u32,
}

impl SocketId {
    pub(crate) fn new(slot: u32, generation: u32) -> Self {
        Self {
            slot,
            generation: generation & GENERATION_MASK,
        }
    }

    /// An id made from its parts, for in-memory transports and tests: it names no socket of
    /// any driver unless a driver handed out the same parts (generations wrap at 2^24).
    #[must_use]
    pub fn from_parts(slot: u32, generation: u32) -> Self {
        Self::new(slot, generation)
    }

    /// The slot index, dense from 0: use it to index a table of per-connection state.
    #[must_use]
    pub fn slot(self) -> u32 {
        self.slot
    }

    /// The generation of the slot when this socket was added.
    #[must_use]
    pub fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "socket {}#{}", self.slot, self.generation)
    }
}

/// A one-shot timer armed with [`Driver::timer`](crate::Driver::timer).
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct TimerId {
    slot: u32,
    generation: u32,
}

impl TimerId {
    pub(crate) fn new(slot: u32, generation: u32) -> Self {
        Self {
            slot,
            generation: generation & GENERATION_MASK,
        }
    }

    pub(crate) fn slot(self) -> u32 {
        self.slot
    }

    pub(crate) fn generation(self) -> u32 {
        self.generation
    }
}

/// The kind of an operation, as carried in `user_data` and in [`OpError`](crate::OpError).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
#[repr(u8)]
pub enum OpKind {
    /// Accepting connections on a listener.
    Accept = 1,
    /// Receiving on a stream socket.
    Recv = 2,
    /// Sending on a stream socket.
    Send = 3,
    /// Connecting a stream socket.
    Connect = 4,
    /// Shutting down the write side of a stream socket.
    Shutdown = 5,
    /// Closing a socket.
    Close = 6,
    /// Cancelling another operation.
    Cancel = 7,
    /// Receiving a datagram with its source address.
    RecvFrom = 8,
    /// Sending a datagram to an address.
    SendTo = 9,
    /// A timer.
    Timeout = 10,
    /// Removing a timer.
    TimeoutRemove = 11,
    /// The cross-thread wake-up.
    Wake = 12,
    /// Adding or binding a socket.
    Open = 13,
    /// Waiting for completions.
    Wait = 14,
    /// Waiting until a spliced socket has bytes to read (see [`Driver::splice`](crate::Driver::splice)).
    SplicePollIn = 15,
    /// Waiting until the destination of a splice can take bytes.
    SplicePollOut = 16,
    /// Setting up a splice (creating its pipe).
    Splice = 17,
    /// Waiting for a child process to exit (its pidfd turning readable).
    ChildExit = 18,
    /// Starting a child process.
    Spawn = 19,
    /// Signalling a child process, or setting its terminal's size.
    Signal = 20,
    /// Waiting for room to send after the kernel finished a send with `EAGAIN` (io_uring
    /// does so on a non-blocking socket once its internal poll retries run out).
    SendPoll = 21,
    /// A file operation ([`Driver::file`](crate::Driver::file)): open, stat, read, close.
    File = 22,
}

impl OpKind {
    #[cfg(test)]
    const ALL: [OpKind; 22] = [
        OpKind::Accept,
        OpKind::Recv,
        OpKind::Send,
        OpKind::Connect,
        OpKind::Shutdown,
        OpKind::Close,
        OpKind::Cancel,
        OpKind::RecvFrom,
        OpKind::SendTo,
        OpKind::Timeout,
        OpKind::TimeoutRemove,
        OpKind::Wake,
        OpKind::Open,
        OpKind::Wait,
        OpKind::SplicePollIn,
        OpKind::SplicePollOut,
        OpKind::Splice,
        OpKind::ChildExit,
        OpKind::Spawn,
        OpKind::Signal,
        OpKind::SendPoll,
        OpKind::File,
    ];

    fn from_u8(value: u8) -> Option<OpKind> {
        Some(match value {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::Connect,
            5 => OpKind::Shutdown,
            6 => OpKind::Close,
            7 => OpKind::Cancel,
            8 => OpKind::RecvFrom,
            9 => OpKind::SendTo,
            10 => OpKind::Timeout,
            11 => OpKind::TimeoutRemove,
            12 => OpKind::Wake,
            13 => OpKind::Open,
            14 => OpKind::Wait,
            15 => OpKind::SplicePollIn,
            16 => OpKind::SplicePollOut,
            17 => OpKind::Splice,
            18 => OpKind::ChildExit,
            19 => OpKind::Spawn,
            20 => OpKind::Signal,
            21 => OpKind::SendPoll,
            22 => OpKind::File,
            _ => return None,
        })
    }

    /// The bit of this kind in an in-flight mask.
    #[cfg(any(uring, test))]
    pub(crate) fn bit(self) -> u32 {
        1 << (self as u8)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            OpKind::Accept => "accept",
            OpKind::Recv => "recv",
            OpKind::Send => "send",
            OpKind::Connect => "connect",
            OpKind::Shutdown => "shutdown",
            OpKind::Close => "close",
            OpKind::Cancel => "cancel",
            OpKind::RecvFrom => "recvfrom",
            OpKind::SendTo => "sendto",
            OpKind::Timeout => "timeout",
            OpKind::TimeoutRemove => "timeout-remove",
            OpKind::Wake => "wake",
            OpKind::Open => "open",
            OpKind::Wait => "wait",
            OpKind::SplicePollIn => "splice-poll-in",
            OpKind::SplicePollOut => "splice-poll-out",
            OpKind::Splice => "splice",
            OpKind::ChildExit => "child-exit",
            OpKind::Spawn => "spawn",
            OpKind::Signal => "signal",
            OpKind::SendPoll => "send-poll",
            OpKind::File => "file",
        };
        f.write_str(name)
    }
}

/// The identity of one in-flight operation, packed into io_uring's `user_data`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct OpId {
    /// Slot in the socket table (or the timer table for timer kinds).
    pub slot: u32,
    /// Generation of the slot when the operation was submitted (24 bits).
    pub generation: u32,
    /// What the operation is.
    pub kind: OpKind,
}

impl OpId {
    /// An operation on `socket`.
    #[must_use]
    pub fn socket(socket: SocketId, kind: OpKind) -> Self {
        Self {
            slot: socket.slot,
            generation: socket.generation,
            kind,
        }
    }

    /// An operation on `timer`.
    #[must_use]
    pub fn timer(timer: TimerId, kind: OpKind) -> Self {
        Self {
            slot: timer.slot,
            generation: timer.generation,
            kind,
        }
    }

    /// Packs the identity into 64 bits.
    #[must_use]
    pub fn encode(self) -> u64 {
        (u64::from(self.kind as u8) << 56)
            | (u64::from(self.generation & GENERATION_MASK) << 32)
            | u64::from(self.slot)
    }

    /// Unpacks a value made by [`OpId::encode`]; `None` for an unknown kind.
    #[must_use]
    pub fn decode(user_data: u64) -> Option<Self> {
        let kind = OpKind::from_u8((user_data >> 56) as u8)?;
        Some(Self {
            slot: user_data as u32,
            generation: ((user_data >> 32) as u32) & GENERATION_MASK,
            kind,
        })
    }

    /// The socket this operation belongs to (meaningful for socket kinds).
    #[must_use]
    pub fn socket_id(self) -> SocketId {
        SocketId::new(self.slot, self.generation)
    }

    /// The timer this operation belongs to (meaningful for timer kinds).
    #[must_use]
    pub fn timer_id(self) -> TimerId {
        TimerId::new(self.slot, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_every_kind_and_extreme_values() {
        for kind in OpKind::ALL {
            for (slot, generation) in [
                (0, 0),
                (1, 7),
                (u32::MAX, GENERATION_MASK),
                (12345, 1 << 23),
            ] {
                let id = OpId {
                    slot,
                    generation,
                    kind,
                };
                assert_eq!(OpId::decode(id.encode()), Some(id));
            }
        }
    }

    #[test]
    fn generation_wraps_at_24_bits() {
        let id = SocketId::new(3, GENERATION_MASK + 2);
        assert_eq!(id.generation(), 1);
        let op = OpId::socket(id, OpKind::Recv);
        assert_eq!(OpId::decode(op.encode()).unwrap().socket_id(), id);
    }

    #[test]
    fn unknown_kinds_are_rejected() {
        assert_eq!(OpId::decode(0), None);
        assert_eq!(OpId::decode(0xff << 56), None);
    }

    #[test]
    fn kind_bits_are_distinct() {
        let mut seen = 0u32;
        for kind in OpKind::ALL {
            assert_eq!(seen & kind.bit(), 0);
            seen |= kind.bit();
        }
    }
}
