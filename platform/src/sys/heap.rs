//! glibc's `mallopt`, for [`crate::heap`].
#![allow(unsafe_code)] // the mallopt call; its block has a SAFETY note.

/// Which allocator parameter [`mallopt`] sets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param {
    TrimThreshold,
    MmapThreshold,
}

/// Sets one glibc allocator parameter; whether glibc accepted the value.
pub(crate) fn mallopt(param: Param, value: usize) -> bool {
    let param = match param {
        Param::TrimThreshold => libc::M_TRIM_THRESHOLD,
        Param::MmapThreshold => libc::M_MMAP_THRESHOLD,
    };
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets an allocator parameter under glibc's own lock; a value it
    // does not take is refused (return 0), none can corrupt the heap.
    unsafe { libc::mallopt(param, value) == 1 }
}
