//! SFTP paths → files under a root directory, confined to it.
//!
//! Owns: [`SftpRoot`]: the client sees the root as `/`. A path (absolute, or relative to
//! `/`) is normalized lexically first — empty and `.` segments dropped, `..` removes the
//! segment before it and stops at the root, as in a chroot — so `../../etc/passwd` and
//! `/etc/passwd` both name `ROOT/etc/passwd`. Then physically: [`SftpRoot::follow`]
//! canonicalizes the whole path (following symlinks) and [`SftpRoot::entry`] canonicalizes
//! only its parent (for requests about a name itself: `LSTAT`, `REMOVE`, `RENAME`,
//! `SYMLINK`, creating a file); either must lie under the canonical root, else the request
//! is refused with `SSH_FX_PERMISSION_DENIED`. Symlinks inside the root work; symlinks out
//! of it are refused when followed.
//! Then the use: the checked path is opened again *relative to a descriptor of the root*,
//! [`SftpRoot::open_beneath`] with Linux's `openat2(RESOLVE_BENEATH)`, and requests about a
//! name run as `*at` calls on its parent directory opened that way
//! ([`SftpRoot::parent_beneath`]): a component swapped for a symlink between the check and
//! the use (another session racing this one) cannot lead outside the root — the kernel
//! refuses it (`EXDEV`, answered `SSH_FX_PERMISSION_DENIED`). Without `openat2` (a kernel
//! before 5.6, or another Unix) the open is a plain `openat` of the checked path: the check
//! alone confines it, with that race open.
//! Shares with the static file server (`http::static_files::path`): the canonical root
//! ([`StaticRoot`]), the name and path length limits, and the canonicalize-then-prefix
//! check. Its lexical rules differ: SFTP paths are raw bytes (no percent-encoding) and `..`
//! is a chroot's, not an error.
//! Does not: refuse NUL bytes and over-long paths anywhere but in [`SftpRoot::normalize`].
//! Tests: `fs/tests.rs`.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

use crate::http::static_files::StaticRoot;
use crate::http::static_files::path::{MAX_NAME_LEN, MAX_PATH_LEN};

/// Why a path is refused before any file is touched.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SftpPathError {
    /// It resolves outside the root (through a symlink), or names the root where a
    /// name inside it is needed (removing or renaming `/`).
    #[error("path leaves the root")]
    Escapes,
    /// A NUL byte, an over-long name or path.
    #[error("bad path: {0}")]
    Bad(&'static str),
    /// The filesystem's error while resolving (no such file, permission denied, ...).
    #[error("{0}")]
    Io(io::ErrorKind),
}

/// A canonical root directory that SFTP paths resolve under.
#[derive(Clone, Debug)]
pub struct SftpRoot {
    // INVARIANT: canonical (absolute, no symlinks, no `.`/`..`) and a directory when built.
    root: PathBuf,
    /// The root directory, opened: what [`SftpRoot::open_beneath`] resolves beneath.
    dir: Arc<OwnedFd>,
}

impl SftpRoot {
    /// Canonicalizes `dir` and checks that it is a directory.
    ///
    /// # Errors
    /// As [`StaticRoot::new`]: `NotFound`, `NotADirectory`, ...
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        let root = StaticRoot::new(dir)?.path().to_path_buf();
        let dir = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            root,
            dir: Arc::new(dir),
        })
    }

    /// The canonical root directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The normalized segments of `raw` (see the module docs).
    ///
    /// # Errors
    /// [`SftpPathError::Bad`] for a NUL byte, a segment over 255 bytes or a path over
    /// `PATH_MAX`.
    pub fn normalize(raw: &[u8]) -> Result<Vec<&[u8]>, SftpPathError> {
        if raw.len() > MAX_PATH_LEN {
            return Err(SftpPathError::Bad("path too long"));
        }
        if raw.contains(&0) {
            return Err(SftpPathError::Bad("NUL byte in path"));
        }
        let mut segments = Vec::new();
        for segment in raw.split(|&b| b == b'/') {
            match segment {
                b"" | b"." => {}
                b".." => {
                    segments.pop();
                }
                name if name.len() > MAX_NAME_LEN => {
                    return Err(SftpPathError::Bad("name too long"));
                }
                name => segments.push(name),
            }
        }
        Ok(segments)
    }

    /// The path the client sees for `segments`: `/` and the segments joined by `/`.
    #[must_use]
    pub fn virtual_path(segments: &[&[u8]]) -> Vec<u8> {
        let mut path = Vec::new();
        for segment in segments {
            path.push(b'/');
            path.extend_from_slice(segment);
        }
        if path.is_empty() {
            path.push(b'/');
        }
        path
    }

    /// The server path under the root for `segments`, not yet checked for symlinks.
    #[must_use]
    pub fn join(&self, segments: &[&[u8]]) -> PathBuf {
        let mut path = self.root.clone();
        for segment in segments {
            path.push(OsStr::from_bytes(segment));
        }
        path
    }

    /// `raw` resolved with every symlink followed: the canonical server path, inside the
    /// root.
    ///
    /// # Errors
    /// [`SftpPathError::Escapes`] if it resolves outside the root; `Io` if it does not
    /// exist; `Bad` as [`SftpRoot::normalize`].
    pub fn follow(&self, raw: &[u8]) -> Result<PathBuf, SftpPathError> {
        let segments = Self::normalize(raw)?;
        let canonical =
            fs::canonicalize(self.join(&segments)).map_err(|e| SftpPathError::Io(e.kind()))?;
        self.check_inside(canonical)
    }

    /// `raw`'s parent resolved (symlinks followed) and its last name appended, not
    /// followed: the path to act on for requests about the name itself.
    ///
    /// # Errors
    /// [`SftpPathError::Escapes`] if the parent resolves outside the root or `raw` is the
    /// root itself; `Io` if the parent does not exist; `Bad` as [`SftpRoot::normalize`].
    pub fn entry(&self, raw: &[u8]) -> Result<PathBuf, SftpPathError> {
        let segments = Self::normalize(raw)?;
        let Some((name, parent)) = segments.split_last() else {
            return Err(SftpPathError::Escapes);
        };
        let canonical =
            fs::canonicalize(self.join(parent)).map_err(|e| SftpPathError::Io(e.kind()))?;
        let mut path = self.check_inside(canonical)?;
        path.push(OsStr::from_bytes(name));
        Ok(path)
    }

    /// The client's view of a canonical server path under the root; `None` outside it.
    #[must_use]
    pub fn to_virtual(&self, path: &Path) -> Option<Vec<u8>> {
        let rest = path.strip_prefix(&self.root).ok()?;
        let segments: Vec<&[u8]> = rest
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.as_bytes()),
                _ => None,
            })
            .collect();
        Some(Self::virtual_path(&segments))
    }

    /// Opens `path` — a canonical path under the root, as [`SftpRoot::follow`] and
    /// [`SftpRoot::entry`] return — relative to the root's descriptor, with no component
    /// resolved outside the root (see the module docs). `O_CLOEXEC` is added.
    ///
    /// # Errors
    /// The open's error; `CrossesDevices` (`EXDEV`) when a component now leads outside the
    /// root; `PermissionDenied` if `path` is not under the root at all.
    pub fn open_beneath(&self, path: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let relative = self.relative(path)?;
        let flags = flags | OFlags::CLOEXEC;
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::ResolveFlags;
            use rustix::io::Errno;
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            // EAGAIN: a rename elsewhere raced the lookup; the kernel asks for a retry.
            for _ in 0..4 {
                match rustix::fs::openat2(&*self.dir, relative, flags, mode, resolve) {
                    Err(Errno::AGAIN) => {}
                    Err(Errno::NOSYS) => break,
                    result => return result.map_err(io::Error::from),
                }
            }
        }
        Ok(rustix::fs::openat(&*self.dir, relative, flags, mode)?)
    }

    /// The parent directory of `entry` (a path from [`SftpRoot::entry`]) opened with
    /// [`SftpRoot::open_beneath`], and the name in it: for `*at` calls on the name itself.
    ///
    /// # Errors
    /// As [`SftpRoot::open_beneath`]; `PermissionDenied` for a path without a name.
    pub fn parent_beneath<'p>(&self, entry: &'p Path) -> io::Result<(OwnedFd, &'p OsStr)> {
        let (Some(parent), Some(name)) = (entry.parent(), entry.file_name()) else {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        };
        // O_PATH (Linux): the directory need not be readable to act on its names.
        #[cfg(target_os = "linux")]
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        #[cfg(not(target_os = "linux"))]
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        Ok((self.open_beneath(parent, flags, Mode::empty())?, name))
    }

    /// `path` relative to the root (`.` for the root itself).
    fn relative<'p>(&self, path: &'p Path) -> io::Result<&'p Path> {
        let relative = path
            .strip_prefix(&self.root)
            .map_err(|_| io::Error::from(io::ErrorKind::PermissionDenied))?;
        Ok(if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        })
    }

    fn check_inside(&self, canonical: PathBuf) -> Result<PathBuf, SftpPathError> {
        if canonical.starts_with(&self.root) {
            Ok(canonical)
        } else {
            Err(SftpPathError::Escapes)
        }
    }
}
