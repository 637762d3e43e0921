//! Datagram sockets under io_uring: one multishot RECVMSG per socket into the provided
//! buffer ring, and every queued datagram sent at once, each SENDMSG owning its header.
//!
//! Owns: [`UdpOps`] (per socket: the receive header, the count of sends in flight) and
//! [`DatagramSends`] (per driver: the in-flight sends, keyed by the `slot` of their `OpId`).
//! Contract:
//! - Receiving: each CQE of the multishot recvmsg carries one datagram in one ring buffer,
//!   laid out by the kernel as `io_uring_recvmsg_out`, the sender's address, the payload;
//!   [`UdpOps::parse`] narrows the buffer to the payload (no copy). One submission serves
//!   every datagram until the multishot ends (buffers ran out, cancel, error), so a burst of
//!   queries costs one `io_uring_enter`, not one each.
//! - Sending: up to [`MAX_SENDS`] sends of a socket are in flight at once (the rest wait in
//!   its queue). A send carries one datagram or a UDP GSO run of them ([`take_run`], see
//!   `sys/udp_gso.rs`): it takes their bytes and destination out of the socket's queue into
//!   its own boxed header (iovecs, `UDP_SEGMENT` control message), dropped only at its CQE,
//!   so the order CQEs arrive in does not matter (a send the kernel had to poll for may
//!   finish after later ones). `EAGAIN`, or a refused GSO send, puts the datagrams back at
//!   the head of the queue in order (the caller then polls for room; a refused socket sends
//!   one datagram per send from then on).
//!
//! Safety: a header box is reused only after its CQE; if the driver gives up draining, the
//! table is leaked with the other memory (see the module above).

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use io_uring::types::{Fd, RecvMsgOut};
use io_uring::{opcode, squeue};
use slab::Slab;
use socket2::SockAddr;

use crate::buf::RecvBuf;
use crate::completion::Completion;
use crate::error::OpError;
use crate::id::{OpId, OpKind, SocketId};
use crate::sys::udp_gso::{self, Gather, SegmentControl};
use crate::table::{Core, Dest};

use super::{empty_msghdr, sockaddr_to_std};

/// What a multishot recvmsg writes before the payload in each buffer: its
/// `io_uring_recvmsg_out` header and room for the sender's address (a `sockaddr_un`, the
/// largest kind, for every datagram socket: so a UDP and a Unix datagram socket have the
/// same payload room, the pool's buffer size, as under the poll backend).
pub(super) const RECV_HEADROOM: u32 =
    (RECVMSG_OUT_LEN + mem::size_of::<libc::sockaddr_un>()) as u32;

/// `struct io_uring_recvmsg_out` (io_uring.h): namelen, controllen, payloadlen, flags, u32
/// each.
const RECVMSG_OUT_LEN: usize = 16;

/// Most datagram sends in flight per socket; the rest wait for a turn. Enough to send a
/// whole burst of answers with one `io_uring_enter`, small enough to keep the SQ for others.
pub(super) const MAX_SENDS: u32 = 64;

/// Per-socket state of a datagram socket.
pub(super) struct UdpOps {
    /// Read by the kernel when the multishot recvmsg is submitted: only `msg_namelen` (room
    /// for the sender's address in each buffer: a `sockaddr_un`, which also holds any IPv4
    /// or IPv6 one) and `msg_controllen` (0) matter.
    recv_msg: libc::msghdr,
    /// Sends in flight (entries of [`DatagramSends`] for this socket).
    pub(super) sends: u32,
    /// Their bytes (for the `queued` figure of `Sent`).
    pub(super) send_bytes: usize,
    /// Send runs of datagrams with UDP GSO ([`DriverConfig::udp_gso`], until the kernel
    /// refuses it for this socket).
    ///
    /// [`DriverConfig::udp_gso`]: crate::DriverConfig::udp_gso
    pub(super) gso: bool,
    /// [`DriverConfig::udp_gso_gather`].
    ///
    /// [`DriverConfig::udp_gso_gather`]: crate::DriverConfig::udp_gso_gather
    pub(super) gather: bool,
}

impl UdpOps {
    pub(super) fn new(gso: bool, gather: bool) -> Box<UdpOps> {
        let mut recv_msg = empty_msghdr();
        recv_msg.msg_namelen = mem::size_of::<libc::sockaddr_un>() as _;
        Box::new(UdpOps {
            recv_msg,
            sends: 0,
            send_bytes: 0,
            gso,
            gather,
        })
    }

    /// The multishot recvmsg of this socket (into buffer group `bgid`).
    pub(super) fn recv_entry(&self, fd: Fd, bgid: u16) -> squeue::Entry {
        opcode::RecvMsgMulti::new(fd, &raw const self.recv_msg, bgid).build()
    }

    /// Splits one multishot recvmsg buffer into (payload, sender, truncated); `None` if the
    /// kernel's layout does not parse or the address is not IPv4/IPv6/Unix (never
    /// expected). An IP sender comes as [`Sender::Ip`], any other as [`Sender::Other`].
    pub(super) fn parse(&self, buf: RecvBuf) -> Option<(RecvBuf, Sender, bool)> {
        let (range, from, truncated) = {
            let out = RecvMsgOut::parse(&buf, &self.recv_msg).ok()?;
            let name = out.name_data();
            // SAFETY: sockaddr_storage is plain old data; zero is a valid value.
            let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let len = name.len().min(mem::size_of::<libc::sockaddr_storage>());
            // SAFETY: copies `len` bytes, no more than either side holds, between two
            // distinct objects (a ring buffer and a local).
            unsafe {
                std::ptr::copy_nonoverlapping(name.as_ptr(), (&raw mut storage).cast::<u8>(), len);
            }
            let from = match sockaddr_to_std(&storage, len as libc::socklen_t) {
                Some(ip) => Sender::Ip(ip),
                // An unnamed Unix sender: no address at all.
                None if len == 0 => Sender::Other(crate::completion::unnamed_unix()?),
                None if i32::from(storage.ss_family) == libc::AF_UNIX => {
                    // SAFETY: the kernel wrote a `sockaddr_un` of `len` bytes (family
                    // AF_UNIX; 2 for an unnamed sender), copied into the zeroed storage
                    // try_init hands over, whose size bounds `len`.
                    let (_, addr) = unsafe {
                        SockAddr::try_init(|target, target_len| {
                            std::ptr::copy_nonoverlapping(
                                (&raw const storage).cast::<u8>(),
                                target.cast::<u8>(),
                                len,
                            );
                            *target_len = len as libc::socklen_t;
                            Ok(())
                        })
                    }
                    .ok()?;
                    Sender::Other(addr)
                }
                None => return None,
            };
            let payload = out.payload_data();
            let start = payload.as_ptr() as usize - buf.as_ptr() as usize;
            (
                start..start + payload.len(),
                from,
                out.is_payload_truncated(),
            )
        };
        Some((buf.narrow(range), from, truncated))
    }
}

/// Who sent a received datagram.
pub(super) enum Sender {
    /// A UDP peer.
    Ip(SocketAddr),
    /// A Unix datagram peer (possibly unnamed).
    Other(SockAddr),
}

/// One send in flight: the header the kernel reads and the bytes it points at. Several
/// datagrams to one destination, all of one size but the last (shorter or equal), go as one
/// UDP GSO send (`UDP_SEGMENT` control message): the kernel splits it into datagrams after
/// one route lookup and one trip down the stack, which is most of a small datagram's cost.
pub(super) struct DatagramSend {
    pub(super) socket: SocketId,
    msg: libc::msghdr,
    iovs: Vec<libc::iovec>,
    /// The `UDP_SEGMENT` control message (used when more than one datagram).
    control: SegmentControl,
    /// The destination, as queued (put back in the queue with the datagrams after `EAGAIN`)
    /// and as the kernel reads it (`msg_name`).
    dest: Dest,
    addr: SockAddr,
    /// The datagrams, in the order queued.
    pub(super) datagrams: Vec<Bytes>,
}

impl DatagramSend {
    /// The bytes of all its datagrams.
    pub(super) fn len(&self) -> usize {
        self.datagrams.iter().map(Bytes::len).sum()
    }
}

/// With GSO and gathering on for the socket, groups `queue`'s datagrams by destination and
/// size before its sends are taken (see `sys/udp_gso.rs`); `room` is the driver's.
pub(super) fn gather(queue: &mut VecDeque<(Bytes, Dest)>, udp: &UdpOps, room: &mut Gather) {
    if udp.gso && udp.gather {
        udp_gso::gather(queue, room);
    }
}

/// Takes the next send off `queue` (its head, or a GSO run: see `sys/udp_gso.rs`) into
/// `run` (empty on entry); returns its destination.
pub(super) fn take_run(
    queue: &mut VecDeque<(Bytes, Dest)>,
    udp: &UdpOps,
    run: &mut Vec<Bytes>,
) -> Option<Dest> {
    let len = udp_gso::run_len(queue, udp.gso);
    let mut to = None;
    for (bytes, addr) in queue.drain(..len) {
        run.push(bytes);
        to = Some(addr);
    }
    to
}

/// The driver's datagram sends in flight.
#[derive(Default)]
pub(super) struct DatagramSends {
    table: Slab<Box<DatagramSend>>,
    /// Boxes of finished sends, reused for the next ones (boxed because a header the kernel
    /// reads must not move: they go back into `table` as they are).
    #[allow(clippy::vec_box)]
    spare: Vec<Box<DatagramSend>>,
}

impl DatagramSends {
    /// Takes the datagrams of `run` (one, or a GSO run: see [`take_run`]) for `to` into a new
    /// in-flight send of `socket` and returns its SQE. `run` is left empty.
    pub(super) fn start(
        &mut self,
        socket: SocketId,
        fd: Fd,
        run: &mut Vec<Bytes>,
        to: Dest,
    ) -> squeue::Entry {
        let mut send = self.spare.pop().unwrap_or_else(|| {
            Box::new(DatagramSend {
                socket,
                msg: empty_msghdr(),
                iovs: Vec::new(),
                control: SegmentControl::new(0),
                dest: Dest::Ip(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
                addr: SockAddr::from(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
                datagrams: Vec::new(),
            })
        });
        send.socket = socket;
        send.addr = to.sock_addr().into_owned();
        send.dest = to;
        send.iovs.clear();
        send.datagrams.clear();
        send.datagrams.append(run);
        // The iovecs point into the `Bytes`, which stay in the box until the CQE.
        let DatagramSend {
            iovs, datagrams, ..
        } = &mut *send;
        iovs.extend(datagrams.iter().map(|bytes| libc::iovec {
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        }));
        // The box does not move once in the table, nor do the vectors' buffers (untouched
        // until the CQE), so these pointers stay valid until the CQE (after which the box is
        // only reused).
        send.msg = empty_msghdr();
        send.msg.msg_name = send.addr.as_ptr().cast_mut().cast();
        send.msg.msg_namelen = send.addr.len();
        send.msg.msg_iov = send.iovs.as_mut_ptr();
        send.msg.msg_iovlen = send.iovs.len() as _;
        if send.datagrams.len() > 1 {
            // A segment is at most udp_gso's MAX_SEGMENT_SIZE bytes.
            send.control = SegmentControl::new(send.datagrams[0].len() as u16);
            send.msg.msg_control = (&raw mut send.control).cast();
            send.msg.msg_controllen = SegmentControl::len() as _;
        }
        let msg = &raw const send.msg;
        let key = self.table.insert(send);
        let user_data = OpId {
            slot: key as u32,
            generation: 0,
            kind: OpKind::SendTo,
        }
        .encode();
        opcode::SendMsg::new(fd, msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(user_data)
    }

    /// The send of `key` finished (its CQE arrived): takes it out of the table; hand it back
    /// with [`DatagramSends::recycle`] once its datagrams are taken.
    pub(super) fn finish(&mut self, key: u32) -> Option<Box<DatagramSend>> {
        self.table.try_remove(key as usize)
    }

    /// Keeps a finished send's box (and its vectors' room) for the next send.
    pub(super) fn recycle(&mut self, mut send: Box<DatagramSend>) {
        send.datagrams.clear();
        send.iovs.clear();
        self.spare.push(send);
    }

    /// Never free the in-flight headers: the kernel may still read them.
    pub(super) fn leak(&mut self) {
        mem::forget(mem::take(&mut self.table));
    }
}

/// Completions of datagram sends (the driver's side of [`DatagramSends`]).
impl super::Uring {
    /// A datagram send finished: report it (or keep the datagram queued after `EAGAIN` or a
    /// cancel that was not a close), and free its header.
    pub(super) fn complete_datagram_send(
        &mut self,
        core: &mut Core,
        out: &mut Vec<Completion>,
        key: u32,
        result: i32,
    ) {
        let Some(mut send) = self.datagram_sends.finish(key) else {
            tracing::error!(key, "completion of an unknown datagram send");
            return;
        };
        self.finish_datagram_send(core, out, &mut send, result);
        self.datagram_sends.recycle(send);
    }

    /// Reports the datagrams of a finished send: each `Sent`, or each a `SendError`, or all
    /// back at the head of the queue (in order) after `EAGAIN`, a cancel that was not a
    /// close, or a refused GSO send (they then go one by one).
    pub(super) fn finish_datagram_send(
        &mut self,
        core: &mut Core,
        out: &mut Vec<Completion>,
        send: &mut DatagramSend,
        result: i32,
    ) {
        let id = send.socket;
        // A socket's slot outlives its sends: it is released only at its close's CQE, which
        // is submitted once none of them is in flight.
        let Some(slot) = self
            .slots
            .get_mut(id.slot() as usize)
            .and_then(Option::as_mut)
        else {
            core.stats.stale += 1;
            return;
        };
        let udp = slot.udp.as_mut().expect("datagram slots have UdpOps");
        udp.sends -= 1;
        udp.send_bytes -= send.len();
        let in_flight = udp.send_bytes;
        if udp.sends == 0 {
            slot.inflight &= !OpKind::SendTo.bit();
            slot.cancelling &= !OpKind::SendTo.bit();
        }
        let refused =
            result < 0 && send.datagrams.len() > 1 && crate::sys::udp_gso::refused(-result);
        if refused && udp.gso {
            tracing::debug!(socket = ?id, errno = -result, "UDP GSO refused: sending datagrams one by one");
            udp.gso = false;
        }
        core.mark_dirty(id);
        let Some(state) = core.current_mut(id.slot(), id.generation()) else {
            core.stats.stale += 1;
            return;
        };
        if state.closing {
            core.stats.stale += 1;
            return;
        }
        match result {
            n if n >= 0 => {
                // Each datagram of the send is reported as if sent one after another.
                let mut queued = in_flight
                    + send.len()
                    + state.datagrams.iter().map(|d| d.0.len()).sum::<usize>();
                for bytes in &send.datagrams {
                    queued -= bytes.len();
                    out.push(Completion::Sent {
                        socket: id,
                        bytes: bytes.len(),
                        queued,
                    });
                }
            }
            r if r == -libc::EAGAIN || r == -libc::ECANCELED || refused => {
                for bytes in send.datagrams.drain(..).rev() {
                    state.datagrams.push_front((bytes, send.dest.clone()));
                }
                if r == -libc::EAGAIN {
                    slot.send_blocked = true;
                    core.stats.eagain_retries += 1;
                }
            }
            r => {
                for _ in &send.datagrams {
                    out.push(Completion::SendError {
                        socket: id,
                        error: OpError::new(
                            OpKind::SendTo,
                            Some(id),
                            io::Error::from_raw_os_error(-r),
                        ),
                    });
                }
            }
        }
    }
}
