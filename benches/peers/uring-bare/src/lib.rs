//! uring-bare: TCP echo and HTTP hello world on the `io-uring` crate directly, with no
//! runtime in between: the ceiling that shows what ringwork's own layers cost.
//!
//! One thread per core (`--cores N`), each with its own ring and SO_REUSEPORT listener,
//! thread i pinned to CPU i when the process may run there (as ringwork pins). Per ring:
//! one multishot accept and one provided-buffer ring ([`bufring`]); per connection, one
//! multishot recv whose bytes are copied out of the kernel's buffer (which goes straight
//! back to the ring) and at most one send at a time:
//! - echo: the bytes received are queued in `next` and sent back;
//! - http: they are appended to `input`; every complete head in it (see [`http`]) gets its
//!   response queued in `next` (pipelining: one send per batch); `Connection: close`,
//!   HTTP/1.0, a bad head (400) or a head over 16 KiB end the connection after the send.
//!
//! Sending: `out` is in flight while `next` collects; when a send completes (partial sends
//! resubmit the rest), the two swap. Closing: once nothing is left to send, shutdown(2)
//! ends the multishot recv, and the close follows its last CQE.
//!
//! Ring setup: `PEER_URING_SETUP=defer` (default: SINGLE_ISSUER | DEFER_TASKRUN, as
//! ringwork uses; falls back to `coop`, then `plain`), `coop` (COOP_TASKRUN |
//! TASKRUN_FLAG) or `plain`.
//!
//! Safety model: the kernel reads a connection's `out` only while its send is in flight,
//! and this code does not touch `out` from that push to the send's CQE. Recv buffers: see
//! [`bufring`]. A slot is freed only on the CQE of its close, issued when neither a recv
//! nor a send is in flight.

pub mod bufring;
pub mod http;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::process::exit;
use std::thread;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use socket2::{Domain, Protocol, Socket, Type};

/// Which workload a binary serves.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Mode {
    Echo,
    Http,
}

const MAX_HEAD: usize = 16 * 1024;
const RING_ENTRIES: u32 = 1024;

/// Op kinds, in the low 8 bits of `user_data` (the connection slot is in the rest).
const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const CLOSE: u64 = 3;

fn user_data(slot: usize, kind: u64) -> u64 {
    (slot as u64) << 8 | kind
}

#[derive(Default)]
struct Conn {
    fd: RawFd,
    // INVARIANT: while `sending`, the kernel reads `out[sent..]`: `out` is neither changed
    // nor dropped until the send's CQE.
    out: Vec<u8>,
    /// Bytes of `out` the kernel has taken.
    sent: usize,
    /// Bytes to send once `out` is done.
    next: Vec<u8>,
    /// Http: request bytes not consumed yet.
    input: Vec<u8>,
    /// Http: body bytes still to discard.
    skip: u64,
    recv_armed: bool,
    sending: bool,
    /// No more input is wanted: shut down and close once everything is sent.
    closing: bool,
    shut: bool,
}

/// One thread's ring and connections.
struct Worker {
    ring: IoUring,
    bufs: bufring::BufRing,
    mode: Mode,
    listener: RawFd,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
}

impl Worker {
    /// Pushes `entry`, submitting first when the submission queue is full.
    ///
    /// # Safety
    /// Every buffer `entry` points to must stay valid and unaliased by writes until the
    /// entry's CQE is reaped.
    unsafe fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: the caller guarantees the buffers of `entry` outlive its completion.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                if e.raw_os_error() != Some(libc::EINTR) && e.raw_os_error() != Some(libc::EBUSY) {
                    eprintln!("io_uring submit: {e}");
                    exit(1);
                }
            }
        }
    }

    fn arm_accept(&mut self) {
        let entry = opcode::AcceptMulti::new(types::Fd(self.listener))
            .build()
            .user_data(user_data(0, ACCEPT));
        // SAFETY: a multishot accept without an address buffer points to no memory.
        unsafe { self.push(&entry) };
    }

    fn conn(&mut self, slot: usize) -> &mut Conn {
        let free_slot = || unreachable!("completion for a free slot {slot}");
        self.conns[slot].as_mut().unwrap_or_else(free_slot)
    }

    fn arm_recv(&mut self, slot: usize) {
        let c = self.conn(slot);
        c.recv_armed = true;
        let entry = opcode::RecvMulti::new(types::Fd(c.fd), bufring::BGID)
            .build()
            .user_data(user_data(slot, RECV));
        // SAFETY: the recv writes only buffers of the ring (see `bufring`).
        unsafe { self.push(&entry) };
    }

    /// Sends `out[sent..]`.
    fn send(&mut self, slot: usize) {
        let c = self.conn(slot);
        let rest = &c.out[c.sent..];
        let entry = opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(slot, SEND));
        // SAFETY: `out` stays untouched until this send's CQE (see `Conn::out`).
        unsafe { self.push(&entry) };
    }

    /// Starts the next send, or ends the connection, as its state asks.
    fn settle(&mut self, slot: usize) {
        let c = self.conn(slot);
        if c.sending || (!c.closing && c.next.is_empty()) {
            return;
        }
        if !c.next.is_empty() {
            std::mem::swap(&mut c.out, &mut c.next);
            (c.sent, c.sending) = (0, true);
            return self.send(slot);
        }
        if c.recv_armed {
            if !std::mem::replace(&mut c.shut, true) {
                // SAFETY: plain syscall on a socket this thread owns (its close comes later).
                unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
            }
            return; // the recv's last CQE follows, then the close
        }
        // Nothing is in flight and no CQE of this connection will come but the close's.
        let entry = opcode::Close::new(types::Fd(c.fd)).build().user_data(user_data(slot, CLOSE));
        // SAFETY: a close points to no memory.
        unsafe { self.push(&entry) };
    }

    fn on_accept(&mut self, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.arm_accept(); // the kernel ended the multishot (e.g. on an error)
        }
        if res < 0 {
            return; // EMFILE, ECONNABORTED, ...: keep accepting
        }
        // TCP_NODELAY is inherited from the listener (Linux).
        let conn = Conn { fd: res, ..Conn::default() };
        let slot = self.free.pop().unwrap_or(self.conns.len());
        if slot == self.conns.len() {
            self.conns.push(None);
        }
        self.conns[slot] = Some(conn);
        self.arm_recv(slot);
    }

    fn on_recv(&mut self, slot: usize, res: i32, flags: u32) {
        let mode = self.mode;
        let Some(c) = self.conns[slot].as_mut() else { unreachable!("free slot {slot}") };
        c.recv_armed = cqueue::more(flags);
        if let Some(bid) = cqueue::buffer_select(flags) {
            if res > 0 && !c.closing {
                let bytes = self.bufs.bytes(bid, res as usize);
                match mode {
                    Mode::Echo => c.next.extend_from_slice(bytes),
                    Mode::Http => c.input.extend_from_slice(bytes),
                }
            }
            self.bufs.give_back(bid);
        }
        if res <= 0 && res != -libc::ENOBUFS {
            c.closing = true; // EOF or error
        } else if mode == Mode::Http && !c.closing {
            answer(c);
        }
        // Multishot ended with the socket still open (ENOBUFS: every buffer was out; they
        // are all back by now): arm it again.
        if !c.recv_armed && !c.closing {
            self.arm_recv(slot);
        }
        self.settle(slot);
    }

    fn on_send(&mut self, slot: usize, res: i32) {
        let c = self.conn(slot);
        c.sent += res.max(0) as usize;
        if res >= 0 && c.sent < c.out.len() {
            return self.send(slot); // partial send: the rest
        }
        c.sending = false;
        c.out.clear();
        if res < 0 {
            c.closing = true;
            c.next.clear();
        }
        self.settle(slot);
    }

    fn run(mut self) -> io::Error {
        self.arm_accept();
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(RING_ENTRIES as usize * 2);
        loop {
            if let Err(e) = self.ring.submit_and_wait(1) {
                if e.raw_os_error() != Some(libc::EINTR) && e.raw_os_error() != Some(libc::EBUSY) {
                    return e;
                }
            }
            cqes.extend(self.ring.completion().map(|e| (e.user_data(), e.result(), e.flags())));
            for (data, res, flags) in cqes.drain(..) {
                let slot = (data >> 8) as usize;
                match data & 0xff {
                    ACCEPT => self.on_accept(res, flags),
                    RECV => self.on_recv(slot, res, flags),
                    SEND => self.on_send(slot, res),
                    CLOSE => {
                        self.conns[slot] = None;
                        self.free.push(slot);
                    }
                    kind => unreachable!("unknown op kind {kind}"),
                }
            }
        }
    }
}

/// Answers every complete request in `c.input` into `c.next` and drops the bytes
/// consumed; sets `closing` when the connection must end after these responses.
fn answer(c: &mut Conn) {
    let date = http::date();
    let mut pos = 0;
    while pos < c.input.len() && !c.closing {
        if c.skip > 0 {
            let n = (c.input.len() - pos).min(usize::try_from(c.skip).unwrap_or(usize::MAX));
            pos += n;
            c.skip -= n as u64;
            continue;
        }
        match http::scan(&c.input[pos..]) {
            http::Scan::Partial => {
                c.closing = c.input.len() - pos > MAX_HEAD;
                break;
            }
            http::Scan::Bad => {
                c.next.extend_from_slice(http::BAD_REQUEST);
                c.closing = true;
            }
            http::Scan::Complete(head) => {
                http::push_response(&mut c.next, &date);
                pos += head.len;
                c.skip = head.body;
                c.closing = !head.keep_alive;
            }
        }
    }
    c.input.drain(..pos);
}

/// Builds a ring with the setup flags `PEER_URING_SETUP` asks for, falling back to
/// weaker ones on kernels that refuse them.
fn build_ring() -> io::Result<(IoUring, &'static str)> {
    let first = match std::env::var("PEER_URING_SETUP").as_deref() {
        Ok("plain") => 2,
        Ok("coop") => 1,
        _ => 0,
    };
    let mut result = Err(io::Error::other("no ring setup"));
    for &kind in &["defer", "coop", "plain"][first..] {
        let mut b = IoUring::builder();
        match kind {
            "defer" => drop(b.setup_single_issuer().setup_defer_taskrun()),
            "coop" => drop(b.setup_coop_taskrun().setup_taskrun_flag()),
            _ => {}
        }
        result = b.build(RING_ENTRIES).map(|ring| (ring, kind));
        if result.is_ok() {
            break;
        }
    }
    result
}

/// Pins the calling thread to CPU `index` when the process may run there (`cpus` is
/// the process's affinity mask, read before any thread is pinned): the rule ringwork's
/// runtime applies to its core threads, so both sides get the same placement.
fn pin(cpus: &[core_affinity::CoreId], index: usize) {
    if let Some(&cpu) = cpus.iter().find(|c| c.id == index) {
        if !core_affinity::set_for_current(cpu) {
            eprintln!("warning: could not pin thread {index} to CPU {}", cpu.id);
        }
    }
}

fn listener(addr: Ipv4Addr, port: u16) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?; // accepted sockets inherit it
    socket.bind(&SocketAddr::from((addr, port)).into())?;
    socket.listen(4096)?;
    Ok(socket)
}

fn usage(name: &str) -> ! {
    eprintln!("usage: {name} --port P --cores N [--addr 127.0.0.1]");
    exit(2)
}

fn die(name: &str, what: &str, e: io::Error) -> ! {
    eprintln!("{name}: {what}: {e}");
    exit(1)
}

/// Parses `--port P --cores N [--addr A]` and serves `mode` on N threads; never returns.
pub fn main(name: &'static str, mode: Mode) -> ! {
    let (mut addr, mut port, mut cores) = (Ipv4Addr::LOCALHOST, 8080u16, 1usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(name));
        let ok = match flag.as_str() {
            "--port" => value.parse().map(|v| port = v).is_ok(),
            "--cores" => value.parse().map(|v| cores = v).is_ok(),
            "--addr" => value.parse().map(|v| addr = v).is_ok(),
            _ => false,
        };
        if !ok || cores == 0 {
            usage(name);
        }
    }
    let sockets: Vec<Socket> = (0..cores)
        .map(|_| listener(addr, port))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| die(name, &format!("cannot listen on {addr}:{port}"), e));
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    let serve = move |i: usize, socket: Socket| -> ! {
        pin(&cpus, i);
        let (ring, kind) = build_ring().unwrap_or_else(|e| die(name, "io_uring setup", e));
        let bufs = bufring::BufRing::new(&ring).unwrap_or_else(|e| die(name, "buffer ring", e));
        if i == 0 {
            eprintln!(
                "{name} listening on {addr}:{port}, {cores} thread(s), io_uring setup: {kind}"
            );
        }
        let (listener, conns, free) = (socket.as_raw_fd(), Vec::new(), Vec::new());
        let worker = Worker { ring, bufs, mode, listener, conns, free };
        die(name, "io_uring", worker.run()) // `socket` lives (open) until the process exits
    };
    let mut sockets = sockets.into_iter().enumerate();
    let first = sockets.next();
    for (i, socket) in sockets {
        let serve = serve.clone();
        thread::spawn(move || serve(i, socket));
    }
    let (i, socket) = first.unwrap_or_else(|| usage(name));
    serve(i, socket) // worker 0 on the main thread
}
