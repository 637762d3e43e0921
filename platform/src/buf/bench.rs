//! The pool's bookkeeping without a driver, for `ringwork-benches` (feature
//! `bench-internals`; re-exported doc-hidden as `ringwork_platform::bench`).
//!
//! Owns: [`ListPool`] (the poll backend's free list) and [`RingPool`] (a provided-buffer
//! ring whose kernel side is simulated: it takes published entries at its own head, as the
//! kernel does when it picks a buffer for a receive).
//! Contract: taking a buffer runs the same pool code as a driver does (`read_with`,
//! `claim`), and dropping the [`RecvBuf`] returns it as in production.
//! Does not: read from a socket, or register the ring with a kernel.
//!
//! Safety model: a [`RingPool`]'s ring is never registered, so no kernel touches its memory;
//! the simulated head hands out each published entry once, as the kernel would.

#[cfg(uring)]
use std::cell::Cell;
use std::io;

#[cfg(uring)]
use super::Mode;
use super::{BufPool, RecvBuf};

/// A poll-backend pool: a free list of `count` buffers of `size` bytes.
#[derive(Debug)]
pub struct ListPool {
    pool: BufPool,
}

impl ListPool {
    /// Allocates the pool.
    ///
    /// # Errors
    /// If `size * count` is zero or does not fit in memory.
    pub fn new(size: u32, count: u16) -> io::Result<Self> {
        BufPool::new_list(size, count).map(|pool| Self { pool })
    }

    /// Takes a free buffer as a read of `len` bytes would (the bytes are left as they are);
    /// `None` when every buffer is lent out.
    #[must_use]
    pub fn take(&self, len: usize) -> Option<RecvBuf> {
        self.pool.read_with(|_| Ok(len))?.ok()
    }

    /// Buffers not lent out.
    #[must_use]
    pub fn available(&self) -> u32 {
        self.pool.available()
    }
}

/// A provided-buffer ring of `count` buffers (a power of two) whose kernel is simulated.
#[cfg(uring)]
#[derive(Debug)]
pub struct RingPool {
    pool: BufPool,
    /// The simulated kernel's head: entries in `head..tail` are published and not taken.
    head: Cell<u16>,
}

#[cfg(uring)]
impl RingPool {
    /// Allocates the ring and its buffers, every buffer published.
    ///
    /// # Errors
    /// If `size * count` is zero or does not fit in memory.
    ///
    /// # Panics
    /// If `count` is not a power of two.
    pub fn new(size: u32, count: u16) -> io::Result<Self> {
        BufPool::new_ring(size, count).map(|pool| Self {
            pool,
            head: Cell::new(0),
        })
    }

    /// Takes the buffer the kernel would pick next, as a receive completion of `len` bytes
    /// hands it over (`len` is capped at the buffer size); `None` when the ring is empty.
    #[must_use]
    pub fn take(&self, len: u32) -> Option<RecvBuf> {
        let Mode::Ring { entries, tail, .. } = &self.pool.inner.mode else {
            unreachable!("RingPool holds a ring pool (made by new_ring)")
        };
        let head = self.head.get();
        if head == tail.get() {
            return None;
        }
        let index = head & (self.pool.count() - 1);
        // SAFETY: `index < count`, so the entry is inside the ring allocation, which the
        // pool keeps alive; the ring is never registered, so only this thread touches it.
        let bid = unsafe { (&raw const (*entries.as_ptr().add(index as usize)).bid).read() };
        self.head.set(head.wrapping_add(1));
        let len = len.min(self.pool.buf_size());
        // SAFETY: `bid` was published at `head` (between the simulated head and the tail) and
        // the head has now moved past it, so it is claimed once, as a kernel completion would
        // be; it is back in the ring only when its `RecvBuf` is dropped.
        Some(unsafe { self.pool.claim(bid, len) })
    }

    /// Buffers not lent out.
    #[must_use]
    pub fn available(&self) -> u32 {
        self.pool.available()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pool_lends_every_buffer_once() {
        let pool = ListPool::new(64, 4).unwrap();
        let bufs: Vec<RecvBuf> = (0..4).map(|_| pool.take(10).unwrap()).collect();
        assert!(pool.take(10).is_none());
        assert!(bufs.iter().all(|b| b.len() == 10));
        drop(bufs);
        assert_eq!(pool.available(), 4);
    }

    #[cfg(uring)]
    #[test]
    fn ring_pool_takes_in_ring_order_and_wraps() {
        let pool = RingPool::new(64, 4).unwrap();
        for round in 0..3 {
            let bufs: Vec<RecvBuf> = (0..4).map(|_| pool.take(100).unwrap()).collect();
            assert!(pool.take(1).is_none(), "round {round}: ring is empty");
            assert!(bufs.iter().all(|b| b.len() == 64), "len capped at the size");
            let mut ids: Vec<u16> = bufs.iter().map(RecvBuf::buffer_id).collect();
            ids.sort_unstable();
            assert_eq!(ids, [0, 1, 2, 3]);
            drop(bufs);
            assert_eq!(pool.available(), 4);
        }
    }
}
