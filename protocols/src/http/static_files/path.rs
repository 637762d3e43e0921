//! Request path → file under a document root.
//!
//! Owns: [`StaticRoot`] and [`resolve`]: percent-decoding, segment checks, joining under the
//! root, symlink-escape checks, directory handling (`index.html`, trailing-slash redirect);
//! [`PathError`] and its status code.
//! Contract: the request path is checked twice. First lexically, on the decoded segments: no
//! `.`/`..` segment (also when written `%2e%2e`), no encoded `/`, no NUL or `\`, and each
//! segment must be one plain path component on this platform (so `C:` cannot replace the
//! root on Windows). Then physically: the joined path is canonicalized (following symlinks)
//! and must still lie under the (canonical) root. Symlinks that stay inside the root are
//! served; symlinks that leave it are [`PathError::Forbidden`].
//! Does not: open or read files, render listings (see `listing.rs`), strip the query (the
//! caller passes the path without `?...`), or guard against the tree changing between this
//! check and the caller's `open` (a root writable by untrusted users is out of scope).
//! Tests: `path/tests.rs`.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Component, Path, PathBuf};

/// The file served for a directory whose request path ends in `/`, when present.
pub const INDEX_FILE: &str = "index.html";

/// The longest file name (decoded segment) looked up, in bytes: no common filesystem allows
/// more, and refusing early keeps `ENAMETOOLONG` (a 500) out of reach of requests.
pub const MAX_NAME_LEN: usize = 255;

/// The longest decoded request path looked up, in bytes (Linux's `PATH_MAX` is 4096).
pub const MAX_PATH_LEN: usize = 4096 - MAX_NAME_LEN;

/// A canonical document root to resolve request paths under.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct StaticRoot {
    // INVARIANT: canonical (absolute, no symlinks, no `.`/`..`) and a directory when built.
    root: PathBuf,
}

impl StaticRoot {
    /// Canonicalizes `dir` and checks that it is a directory.
    ///
    /// # Errors
    /// The error of [`std::fs::canonicalize`] (for example `NotFound`), or
    /// [`io::ErrorKind::NotADirectory`] if `dir` is not a directory.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        let root = fs::canonicalize(dir)?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Self { root })
    }

    /// The canonical root directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Resolves `request_path` under this root; see [`resolve`].
    ///
    /// # Errors
    /// As [`resolve`].
    pub fn resolve(&self, request_path: &[u8]) -> Result<Resolved, PathError> {
        resolve(&self.root, request_path)
    }
}

/// What a request path names.
#[derive(Debug)]
#[non_exhaustive]
pub enum Resolved {
    /// A regular file to serve (possibly a directory's `index.html`).
    File {
        /// The canonical path of the file.
        path: PathBuf,
        /// The file's metadata (symlinks followed), for length and validators.
        metadata: Metadata,
    },
    /// A directory without `index.html`, requested with a trailing `/`: the caller renders a
    /// listing or answers 403, by configuration.
    Directory {
        /// The canonical path of the directory.
        path: PathBuf,
    },
    /// A directory requested without a trailing `/`: answer `301` with `Location` set to the
    /// request path plus `/` (relative links in the page would break otherwise).
    RedirectToSlash,
}

/// Why a request path is not served. Display texts are unstable; they may name server paths,
/// so log them, do not send them.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The request path is malformed.
    #[error("bad request path: {reason}")]
    BadPath {
        /// What is wrong with it.
        reason: BadPathReason,
    },
    /// A segment contains `%2F`: a `/` that is not a separator. Refused rather than guessed.
    #[error("encoded slash at byte {offset} of the request path")]
    EncodedSlash {
        /// Offset of the `%` in the raw request path.
        offset: usize,
    },
    /// A segment is `.` or `..` after percent-decoding, or is not a plain file name on this
    /// platform.
    #[error("path traversal segment at byte {offset} of the request path")]
    Traversal {
        /// Offset of the segment's first byte in the raw request path.
        offset: usize,
    },
    /// The target exists but may not be served: it resolves outside the root (symlink), is
    /// not a regular file or directory, or is not readable.
    #[error("forbidden: {}", path.display())]
    Forbidden {
        /// The path that was refused (as joined or canonicalized).
        path: PathBuf,
    },
    /// No such file (also when a non-directory appears mid-path, a file is requested with a
    /// trailing `/`, or a name is longer than [`MAX_NAME_LEN`] or the path than
    /// [`MAX_PATH_LEN`]).
    #[error("not found: {}", path.display())]
    NotFound {
        /// The joined path that does not exist.
        path: PathBuf,
    },
    /// The filesystem failed in a way the request did not cause (for example a symlink loop
    /// or an IO error).
    #[error("filesystem error {kind} at {}", path.display())]
    Io {
        /// The error kind (the `io::Error` itself is not `Clone`).
        kind: io::ErrorKind,
        /// The path being resolved.
        path: PathBuf,
    },
}

impl PathError {
    /// The HTTP status code to answer with: 400, 403, 404, or 500 for [`PathError::Io`].
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            PathError::BadPath { .. }
            | PathError::EncodedSlash { .. }
            | PathError::Traversal { .. } => 400,
            PathError::Forbidden { .. } => 403,
            PathError::NotFound { .. } => 404,
            PathError::Io { .. } => 500,
        }
    }
}

/// What is malformed in a request path. Display texts are unstable.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BadPathReason {
    /// The path does not start with `/` (not origin-form).
    #[error("does not start with '/'")]
    NotAbsolute,
    /// A `%` is not followed by two hex digits.
    #[error("malformed percent-escape at byte {offset}")]
    BadEscape {
        /// Offset of the `%`.
        offset: usize,
    },
    /// A NUL byte, raw or `%00`.
    #[error("NUL at byte {offset}")]
    Nul {
        /// Offset of the NUL or its escape.
        offset: usize,
    },
    /// A backslash, raw or `%5C` (a separator on Windows, never a name byte here).
    #[error("backslash at byte {offset}")]
    Backslash {
        /// Offset of the backslash or its escape.
        offset: usize,
    },
    /// A decoded segment is not UTF-8 (only on platforms whose paths are not bytes).
    #[error("segment at byte {offset} is not UTF-8")]
    NotUtf8 {
        /// Offset of the segment's first byte.
        offset: usize,
    },
}

impl From<BadPathReason> for PathError {
    fn from(reason: BadPathReason) -> Self {
        PathError::BadPath { reason }
    }
}

/// Resolves a request path under `root`.
///
/// `root` must be canonical: build it with [`StaticRoot::new`], which canonicalizes it,
/// and prefer [`StaticRoot::resolve`]. (A non-canonical root fails closed: canonical targets
/// do not start with it, so they are [`PathError::Forbidden`].) `request_path` is the raw origin-form path of the
/// request target without the query (`/a/b%20c.txt`). Empty segments (`//`) are collapsed.
///
/// A directory requested without a trailing `/` gives [`Resolved::RedirectToSlash`]; with
/// one, its `index.html` if that is a regular file inside the root, else
/// [`Resolved::Directory`]. Only regular files and directories are served.
///
/// # Errors
/// See [`PathError`]: [`PathError::BadPath`], [`PathError::EncodedSlash`] and
/// [`PathError::Traversal`] from the path text alone; [`PathError::NotFound`],
/// [`PathError::Forbidden`] and [`PathError::Io`] from the filesystem.
pub fn resolve(root: &Path, request_path: &[u8]) -> Result<Resolved, PathError> {
    let joined = root.join(relative_path(request_path)?);
    resolve_joined(root, request_path, joined)
}

/// The first, lexical check of [`resolve`] alone: the request path decoded into a path
/// relative to the root (empty for `/`), without touching the filesystem. For a caller that
/// looks the path up itself (confined to the root by the kernel: `openat2` with
/// `RESOLVE_BENEATH`).
///
/// # Errors
/// [`PathError::BadPath`], [`PathError::EncodedSlash`], [`PathError::Traversal`], and
/// [`PathError::NotFound`] for a name or path over the length limits.
pub fn relative_path(request_path: &[u8]) -> Result<PathBuf, PathError> {
    if request_path.first() != Some(&b'/') {
        return Err(BadPathReason::NotAbsolute.into());
    }
    let mut joined = PathBuf::new();
    let mut decoded_len = 0;
    for (offset, segment) in decoded_segments(request_path) {
        let segment = segment?;
        if segment.is_empty() {
            continue;
        }
        decoded_len += segment.len() + 1;
        if segment.len() > MAX_NAME_LEN || decoded_len > MAX_PATH_LEN {
            return Err(PathError::NotFound { path: joined });
        }
        if segment == b"." || segment == b".." {
            return Err(PathError::Traversal { offset });
        }
        let name = segment_os_str(&segment).ok_or(BadPathReason::NotUtf8 { offset })?;
        // One plain component, or it could replace or climb out of the root (a Windows
        // drive prefix such as `C:`, for instance).
        let mut components = Path::new(name).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(c)), None) if c == name => joined.push(name),
            _ => return Err(PathError::Traversal { offset }),
        }
    }
    Ok(joined)
}

/// The filesystem half of [`resolve`], for the lexically checked `joined` path.
fn resolve_joined(
    root: &Path,
    request_path: &[u8],
    joined: PathBuf,
) -> Result<Resolved, PathError> {
    let canonical = canonicalize(&joined)?;
    if !canonical.starts_with(root) {
        return Err(PathError::Forbidden { path: canonical });
    }
    let metadata = metadata(&canonical)?;
    let wants_dir = request_path.ends_with(b"/");
    if metadata.is_dir() {
        if !wants_dir {
            return Ok(Resolved::RedirectToSlash);
        }
        return index_or_directory(root, canonical);
    }
    if wants_dir {
        // `/file.txt/`: a file is not a directory (open(2) says ENOTDIR).
        return Err(PathError::NotFound { path: joined });
    }
    if !metadata.is_file() {
        return Err(PathError::Forbidden { path: canonical });
    }
    Ok(Resolved::File {
        path: canonical,
        metadata,
    })
}

/// `dir/index.html` when it is a regular file inside `root`, else `dir` itself.
fn index_or_directory(root: &Path, dir: PathBuf) -> Result<Resolved, PathError> {
    let index = dir.join(INDEX_FILE);
    let canonical = match canonicalize(&index) {
        Ok(p) => p,
        Err(PathError::NotFound { .. }) => return Ok(Resolved::Directory { path: dir }),
        Err(e) => return Err(e),
    };
    // An index.html symlink leaving the root is refused, not replaced by a listing.
    if !canonical.starts_with(root) {
        return Err(PathError::Forbidden { path: canonical });
    }
    let metadata = metadata(&canonical)?;
    if metadata.is_file() {
        Ok(Resolved::File {
            path: canonical,
            metadata,
        })
    } else {
        Ok(Resolved::Directory { path: dir })
    }
}

fn canonicalize(path: &Path) -> Result<PathBuf, PathError> {
    fs::canonicalize(path).map_err(|e| fs_error(&e, path))
}

fn metadata(path: &Path) -> Result<Metadata, PathError> {
    fs::metadata(path).map_err(|e| fs_error(&e, path))
}

/// The [`PathError`] of a filesystem error met at `path` while looking it up: `NotFound`
/// (also for a non-directory mid-path), `Forbidden` (permission), else `Io`.
#[must_use]
pub fn fs_error(e: &io::Error, path: &Path) -> PathError {
    let path = path.to_path_buf();
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => PathError::NotFound { path },
        io::ErrorKind::PermissionDenied => PathError::Forbidden { path },
        kind => PathError::Io { kind, path },
    }
}

/// The segments of `path` (split on raw `/`, leading `/` skipped), each with the offset of
/// its first byte and its percent-decoded bytes, or why it cannot be decoded.
fn decoded_segments(path: &[u8]) -> impl Iterator<Item = (usize, Result<Vec<u8>, PathError>)> + '_ {
    let mut offset = 0;
    path.split(|&b| b == b'/').map(move |raw| {
        let start = offset;
        offset += raw.len() + 1;
        (start, decode_segment(raw, start))
    })
}

/// Percent-decodes one segment that starts at `base` in the request path.
fn decode_segment(raw: &[u8], base: usize) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let offset = base + i;
        let b = if raw[i] == b'%' {
            let hex = raw.get(i + 1..i + 3);
            let decoded = hex.and_then(|h| Some(hex_value(h[0])? << 4 | hex_value(h[1])?));
            let decoded = decoded.ok_or(BadPathReason::BadEscape { offset })?;
            if decoded == b'/' {
                return Err(PathError::EncodedSlash { offset });
            }
            i += 3;
            decoded
        } else {
            i += 1;
            raw[i - 1]
        };
        match b {
            0 => return Err(BadPathReason::Nul { offset }.into()),
            b'\\' => return Err(BadPathReason::Backslash { offset }.into()),
            _ => out.push(b),
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A decoded segment as a file name: any bytes on Unix, UTF-8 elsewhere.
#[cfg(unix)]
fn segment_os_str(segment: &[u8]) -> Option<&OsStr> {
    use std::os::unix::ffi::OsStrExt;

    Some(OsStr::from_bytes(segment))
}

/// A decoded segment as a file name: any bytes on Unix, UTF-8 elsewhere.
#[cfg(not(unix))]
fn segment_os_str(segment: &[u8]) -> Option<&OsStr> {
    std::str::from_utf8(segment).ok().map(OsStr::new)
}

#[cfg(test)]
mod tests;
