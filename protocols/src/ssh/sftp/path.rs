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
//! Shares with the static file server (`http::static_files::path`): the canonical root
//! ([`StaticRoot`]), the name and path length limits, and the canonicalize-then-prefix
//! check. Its lexical rules differ: SFTP paths are raw bytes (no percent-encoding) and `..`
//! is a chroot's, not an error.
//! Does not: guard against the tree changing between this check and the caller's open (a
//! root writable by another, hostile local user is out of scope, as for the static file
//! server; `openat2(RESOLVE_IN_ROOT)` would close that gap and needs `unsafe` or a new
//! dependency). NUL bytes and over-long paths are refused.
//! Tests: `fs/tests.rs`.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

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
}

impl SftpRoot {
    /// Canonicalizes `dir` and checks that it is a directory.
    ///
    /// # Errors
    /// As [`StaticRoot::new`]: `NotFound`, `NotADirectory`, ...
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        let root = StaticRoot::new(dir)?.path().to_path_buf();
        Ok(Self { root })
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

    fn check_inside(&self, canonical: PathBuf) -> Result<PathBuf, SftpPathError> {
        if canonical.starts_with(&self.root) {
            Ok(canonical)
        } else {
            Err(SftpPathError::Escapes)
        }
    }
}
