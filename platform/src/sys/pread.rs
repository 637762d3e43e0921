//! Positioned reads on a thread into a buffer's uninitialised capacity ([`read_at_spare`]).
//!
//! Owns: the `pread(2)` of the engine's file reads on its thread pool (under poll; the
//! io_uring backend reads in the ring, `uring/file.rs`).
//! Contract: bytes land in the spare capacity (`capacity - len`) as they are, without the
//! zeroing a `&mut [u8]` view would need first (a memset per byte served, seen by
//! callgrind on the static-file read path); only what the kernel wrote becomes part of the
//! buffer.
//!
//! Safety model: one system call writing into memory the `BytesMut` owns and lends for
//! the call, and `set_len` over exactly the bytes it reports written.
#![allow(unsafe_code)] // pread into the spare capacity, then set_len; each block has a SAFETY note.

use std::fs::File;

use bytes::BytesMut;

/// Reads from `file` at `offset` into `buf`'s spare capacity (`capacity - len`), appending
/// what was read: `pread(2)` straight into the uninitialised bytes, so nothing is zeroed
/// first (a blocking call: for a thread, not a core). Returns the count appended (`0`: the
/// end of the file, or no spare capacity); retries `EINTR`.
///
/// # Errors
/// The OS error of `pread(2)`.
pub fn read_at_spare(file: &File, buf: &mut BytesMut, offset: u64) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let spare = buf.spare_capacity_mut();
    if spare.is_empty() {
        return Ok(0);
    }
    let offset = libc::off_t::try_from(offset).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "a file offset past off_t")
    })?;
    let filled = loop {
        // SAFETY: the pointer and length describe `spare`, memory `buf` owns and nothing
        // else references while this call runs; the kernel writes at most `spare.len()`
        // bytes there and never reads them, so uninitialised memory is fine.
        let read = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast::<libc::c_void>(),
                spare.len(),
                offset,
            )
        };
        match usize::try_from(read) {
            Ok(filled) => break filled,
            Err(_) => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    };
    // SAFETY: `pread` initialised the first `filled` bytes of the spare capacity (it
    // returns at most the length it was given), which follow the `len` bytes already
    // initialised.
    unsafe { buf.set_len(buf.len() + filled) };
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_append_into_the_spare_capacity_up_to_it() {
        let mut file = tempfile();
        file.write_all(b"0123456789").unwrap();
        let mut buf = BytesMut::with_capacity(4);
        buf.extend_from_slice(b"ab");
        // Two spare bytes: no more is read.
        assert_eq!(read_at_spare(&file, &mut buf, 3).unwrap(), 2);
        assert_eq!(&buf[..], b"ab34");
        assert_eq!(
            read_at_spare(&file, &mut buf, 0).unwrap(),
            0,
            "no spare capacity"
        );
        let mut buf = BytesMut::with_capacity(64);
        assert_eq!(
            read_at_spare(&file, &mut buf, 6).unwrap(),
            4,
            "short at the end"
        );
        assert_eq!(&buf[..], b"6789");
        assert_eq!(read_at_spare(&file, &mut buf, 10).unwrap(), 0, "the end");
        assert_eq!(buf.len(), 4);
    }

    #[test]
    fn an_error_says_why_and_appends_nothing() {
        let dir = File::open(std::env::temp_dir()).unwrap();
        let mut buf = BytesMut::with_capacity(8);
        let error = read_at_spare(&dir, &mut buf, 0).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EISDIR));
        assert!(buf.is_empty());
    }

    /// An unnamed temporary file (removed at once; the descriptor keeps it).
    fn tempfile() -> File {
        let path = std::env::temp_dir().join(format!("ringwork-pread-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }
}
