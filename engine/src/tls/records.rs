//! How a connection's plaintext becomes TLS records: record sizing (small records first
//! after idle, as nginx's `ssl_dyn_rec` does) and the pieces a turn's writes are kept in so
//! large bodies reach rustls without a copy into the connection's buffer.
//!
//! Owns: [`RecordSizing`] (the policy, set on a [`TlsAcceptor`](super::TlsAcceptor)), the
//! per-session state of that policy ([`Sizer`]), the turn's plaintext pieces ([`Pieces`])
//! and [`encrypt`], which hands them to rustls in record-sized writes.
//! Contract: rustls's buffered writer makes at least one record per write call and cuts a
//! call into records of at most 16 KiB, which may span the pieces given in one call. So the
//! small records are one write each, and the rest of the turn is one vectored write: full
//! records, whatever the pieces' boundaries.

use std::collections::VecDeque;
use std::io::{IoSlice, Write};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rustls::Connection;

/// The largest TLS record payload (plaintext bytes), and what a full record carries.
pub(crate) const FULL_RECORD: usize = 16_384;

/// Pieces written with `write_bytes` at least this large are kept as they are (no copy);
/// smaller ones are copied into the connection's buffer with the writes around them.
pub(crate) const PIECE_MIN: usize = 4096;

/// Bytes a record adds to its plaintext at most, for sizing the output buffer: the 5-byte
/// header, the 16-byte AEAD tag, TLS 1.3's content-type byte or TLS 1.2's 8-byte explicit
/// nonce.
const RECORD_OVERHEAD: usize = 5 + 16 + 8;

/// How a TLS server cuts what it sends into records, like nginx's `ssl_dyn_rec`.
///
/// A record can be decrypted only once all of it has arrived: a browser receiving the
/// start of a page in a 16 KiB record waits for about 12 TCP segments before it can parse
/// anything. So after the handshake, and again after the connection was idle for `idle`,
/// the first `small_records` records carry at most `small_len` bytes each (one TCP segment
/// each); the rest of the burst goes in full 16 KiB records, which cost the least CPU and
/// bytes per megabyte. A bulk transfer pays only for the small records at its start.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct RecordSizing {
    /// Plaintext bytes per small record (nginx's `ssl_dyn_rec_size_lo`: 1369, a
    /// 1500-byte-MTU segment with TCP timestamps and the record's overhead).
    pub small_len: usize,
    /// Small records at the start of a burst; 0 turns sizing off (full records always).
    pub small_records: u32,
    /// A write after this long without one starts with small records again
    /// (`Duration::ZERO`: every turn's writes start small).
    pub idle: Duration,
}

impl RecordSizing {
    /// Full 16 KiB records always: the least CPU per megabyte, the latest first byte.
    pub const FULL: Self = Self {
        small_len: FULL_RECORD,
        small_records: 0,
        idle: Duration::ZERO,
    };

    fn is_off(&self) -> bool {
        self.small_records == 0 || self.small_len == 0 || self.small_len >= FULL_RECORD
    }
}

impl Default for RecordSizing {
    /// 10 records of 1369 bytes (about the 10 segments of TCP's initial congestion window:
    /// past it the client waits a round trip anyway), then full records; idle after 1 s
    /// (nginx's `ssl_dyn_rec_timeout`).
    fn default() -> Self {
        Self {
            small_len: 1369,
            small_records: 10,
            idle: Duration::from_secs(1),
        }
    }
}

/// One session's record sizing: the policy and where the connection is in it.
#[derive(Debug)]
pub(crate) struct Sizer {
    policy: RecordSizing,
    /// When application data was last encrypted (`None`: never).
    last_write: Option<Instant>,
}

impl Sizer {
    pub(crate) fn new(policy: RecordSizing) -> Self {
        Self {
            policy,
            last_write: None,
        }
    }

    /// How many small records the burst written `now` starts with.
    fn small_records(&mut self, now: Instant) -> u32 {
        let idle = self
            .last_write
            .is_none_or(|last| now.saturating_duration_since(last) >= self.policy.idle);
        self.last_write = Some(now);
        if idle && !self.policy.is_off() {
            self.policy.small_records
        } else {
            0
        }
    }
}

/// A turn's plaintext kept as written (large `write_bytes` pieces, in order, without a
/// copy); the connection's buffer holds what was written after the last piece.
#[derive(Debug, Default)]
pub(crate) struct Pieces {
    queue: VecDeque<Bytes>,
    len: usize,
}

impl Pieces {
    /// Plaintext bytes held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Queues `bytes` after everything written before it (the buffer's bytes first).
    pub(crate) fn push(&mut self, wbuf: &mut BytesMut, bytes: Bytes) {
        if !wbuf.is_empty() {
            let earlier = wbuf.split().freeze();
            self.len += earlier.len();
            self.queue.push_back(earlier);
        }
        self.len += bytes.len();
        self.queue.push_back(bytes);
    }

    /// Drops everything held.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.len = 0;
    }
}

/// Encrypts the turn's plaintext (`pieces`, then `wbuf`) into rustls's outgoing records,
/// small ones first as `sizer` says. Empties both.
///
/// # Errors
/// rustls refused plaintext (its connection failed).
pub(crate) fn encrypt(
    conn: &mut Connection,
    sizer: &mut Sizer,
    pieces: &mut Pieces,
    wbuf: &mut BytesMut,
    now: Instant,
) -> std::io::Result<()> {
    let mut rest: VecDeque<&[u8]> = pieces.queue.iter().map(|b| &b[..]).collect();
    if !wbuf.is_empty() {
        rest.push_back(&wbuf[..]);
    }
    if rest.is_empty() {
        return Ok(());
    }
    let small = if conn.is_handshaking() {
        // Buffered by rustls until the handshake ends; sizing starts with the first burst
        // sent under traffic keys.
        0
    } else {
        sizer.small_records(now)
    };
    let mut slices = Vec::with_capacity(rest.len());
    for _ in 0..small {
        if rest.is_empty() {
            break;
        }
        take_front(&mut rest, sizer.policy.small_len, &mut slices);
        write_vectored_all(conn, &slices)?;
        slices.clear();
    }
    slices.extend(rest.iter().map(|s| IoSlice::new(s)));
    write_vectored_all(conn, &slices)?;
    drop(slices);
    drop(rest);
    pieces.clear();
    wbuf.clear();
    Ok(())
}

/// Moves the first `n` bytes of `rest` (fewer if it holds less) into `into`.
fn take_front<'a>(rest: &mut VecDeque<&'a [u8]>, mut n: usize, into: &mut Vec<IoSlice<'a>>) {
    while n > 0 {
        let Some(front) = rest.pop_front() else {
            return;
        };
        if front.len() <= n {
            n -= front.len();
            into.push(IoSlice::new(front));
        } else {
            let (now, later) = front.split_at(n);
            into.push(IoSlice::new(now));
            rest.push_front(later);
            n = 0;
        }
    }
}

/// One rustls write of all of `slices` (one record per 16 KiB, spanning the slices).
fn write_vectored_all(conn: &mut Connection, slices: &[IoSlice<'_>]) -> std::io::Result<()> {
    let total: usize = slices.iter().map(|s| s.len()).sum();
    if total == 0 {
        return Ok(());
    }
    // Unbounded buffer (see `Session::new`): rustls takes everything or fails.
    let taken = conn.writer().write_vectored(slices)?;
    if taken == total {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "rustls took {taken} of {total} plaintext bytes"
        )))
    }
}

/// The largest buffer handed to the driver in one piece. Below glibc's default mmap
/// threshold (128 KiB), so the buffers come from the heap and are reused warm: a buffer of
/// a megabyte is a fresh mapping each turn, and the page faults of filling it cost more
/// than the copy itself (see `benches/RESULTS.md`, tls-bulk).
pub(crate) const SEAL_CHUNK: usize = 64 * 1024;

/// Bytes a turn's output is expected to take for `plaintext` bytes of application data
/// (records of at most 16 KiB), with `extra` bytes of other records (handshake, tickets,
/// alerts) besides.
pub(crate) fn sealed_estimate(plaintext: usize, extra: usize) -> usize {
    let records = plaintext / FULL_RECORD + 1;
    plaintext + records * RECORD_OVERHEAD + extra
}

/// Takes rustls's pending output (one copy of each record) into buffers of at most
/// [`SEAL_CHUNK`] bytes, each sized to what is still expected, and hands each full one to
/// `send`; [`SealSink::finish`] hands over the last.
pub(crate) struct SealSink<'a> {
    chunk: BytesMut,
    /// Bytes still expected (an estimate: never below what a handshake flight takes).
    expected: usize,
    send: &'a mut dyn FnMut(Bytes),
}

impl<'a> SealSink<'a> {
    pub(crate) fn new(expected: usize, send: &'a mut dyn FnMut(Bytes)) -> Self {
        Self {
            chunk: BytesMut::new(),
            expected,
            send,
        }
    }

    /// Hands over the last, partly filled buffer.
    pub(crate) fn finish(mut self) {
        if !self.chunk.is_empty() {
            (self.send)(std::mem::take(&mut self.chunk).freeze());
        }
    }
}

impl Write for SealSink<'_> {
    fn write(&mut self, mut buf: &[u8]) -> std::io::Result<usize> {
        let total = buf.len();
        while !buf.is_empty() {
            let room = self.chunk.capacity() - self.chunk.len();
            if room == 0 {
                if !self.chunk.is_empty() {
                    (self.send)(std::mem::take(&mut self.chunk).freeze());
                }
                let want = self.expected.max(buf.len()).clamp(4096, SEAL_CHUNK);
                self.chunk = BytesMut::with_capacity(want);
                continue;
            }
            let n = room.min(buf.len());
            self.chunk.extend_from_slice(&buf[..n]);
            self.expected = self.expected.saturating_sub(n);
            buf = &buf[n..];
        }
        Ok(total)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        let mut total = 0;
        for buf in bufs {
            total += self.write(buf)?;
        }
        Ok(total)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_front_splits_across_pieces() {
        let a = [1u8; 5];
        let b = [2u8; 7];
        let mut rest: VecDeque<&[u8]> = [&a[..], &b[..]].into_iter().collect();
        let mut into = Vec::new();
        take_front(&mut rest, 8, &mut into);
        let lens: Vec<usize> = into.iter().map(|s| s.len()).collect();
        assert_eq!(lens, [5, 3]);
        assert_eq!(rest.iter().map(|s| s.len()).collect::<Vec<_>>(), [4]);
        into.clear();
        take_front(&mut rest, 100, &mut into);
        assert_eq!(into.len(), 1);
        assert!(rest.is_empty());
    }

    #[test]
    fn sizer_restarts_after_idle_only() {
        let start = Instant::now();
        let mut sizer = Sizer::new(RecordSizing::default());
        assert_eq!(sizer.small_records(start), 10);
        assert_eq!(sizer.small_records(start + Duration::from_millis(999)), 0);
        assert_eq!(sizer.small_records(start + Duration::from_millis(2000)), 10);
        let mut off = Sizer::new(RecordSizing::FULL);
        assert_eq!(off.small_records(start), 0);
    }

    #[test]
    fn seal_sink_hands_over_bounded_buffers_in_order() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut got: Vec<Bytes> = Vec::new();
        let mut send = |b: Bytes| got.push(b);
        let mut sink = SealSink::new(10, &mut send);
        let n = sink
            .write_vectored(&[IoSlice::new(&data[..70_000]), IoSlice::new(&data[70_000..])])
            .unwrap();
        assert_eq!(n, data.len());
        sink.finish();
        assert!(got.iter().all(|b| b.len() <= SEAL_CHUNK));
        assert_eq!(got.concat(), data);
    }
}
