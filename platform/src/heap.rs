//! Process-wide tuning of the C allocator (glibc's malloc), for programs built on ringwork.
//!
//! glibc returns freed memory at the top of its heap to the kernel once more than 128 KiB
//! is free (`M_TRIM_THRESHOLD`), and serves every allocation above a dynamic threshold
//! (128 KiB to start) with its own `mmap`. A server that allocates and frees the same
//! buffers every turn (TLS records, file reads, sealed output of 16–64 KiB) then pays page
//! faults and zeroing for memory it has just given back: in the TLS bulk benchmark of issue
//! 17 that was most of the CPU per MB left above nginx's. [`keep_freed_memory`] raises both
//! thresholds so freed memory stays in the process for the next turn, as nginx's pools and
//! jemalloc-style allocators keep it; the price is that RSS after a burst does not shrink
//! back (it is reused by the next one).

/// What [`keep_freed_memory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapTuning {
    /// Both thresholds were raised.
    Applied,
    /// The allocator refused a value (glibc returns 0 from `mallopt`).
    Refused,
    /// Not glibc (musl, other systems): nothing to tune.
    Unsupported,
}

/// Freed memory below `trim_threshold` bytes at the heap's top stays in the process, and
/// allocations up to `mmap_threshold` bytes come from the heap rather than one `mmap` each
///. Call it once, at start, before threads are
/// spawned. Setting the thresholds also turns off glibc's dynamic adjustment of them.
pub fn keep_freed_memory(trim_threshold: usize, mmap_threshold: usize) -> HeapTuning {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use crate::sys::heap::{Param, mallopt};
        let trim = mallopt(Param::TrimThreshold, trim_threshold);
        let mmap = mallopt(Param::MmapThreshold, mmap_threshold);
        if trim && mmap {
            HeapTuning::Applied
        } else {
            HeapTuning::Refused
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (trim_threshold, mmap_threshold);
        HeapTuning::Unsupported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_thresholds() {
        assert_eq!(keep_freed_memory(256 << 20, 32 << 20), HeapTuning::Applied);
        // Back to values close to glibc's defaults for the rest of the test process.
        assert_eq!(keep_freed_memory(128 << 10, 128 << 10), HeapTuning::Applied);
    }
}
