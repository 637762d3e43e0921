//! HTML directory listings.
//!
//! Owns: [`read_listing`] (directory entries, capped at [`MAX_LISTING_ENTRIES`]) and
//! [`render_listing`] (a small HTML page).
//! Contract: names are sorted bytewise; directories get a trailing `/`. Every href is a
//! relative reference whose bytes outside RFC 3986 `unreserved` are percent-encoded, so a
//! name can neither break out of the attribute nor become a scheme (`javascript:`); all text
//! is HTML-escaped.
//! Does not: decide whether listings are enabled (the caller's configuration), or send the
//! page.
//! Tests: `listing/tests.rs`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

/// The most entries [`read_listing`] returns; the rest of a huge directory is left out.
pub const MAX_LISTING_ENTRIES: usize = 10_000;

/// One entry of a directory listing.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub struct DirEntryInfo {
    /// The file name (one path component).
    pub name: OsString,
    /// Whether the entry is a directory (symlinks followed).
    pub is_dir: bool,
    /// Length in bytes (symlinks followed); shown for files only.
    pub len: u64,
}

impl DirEntryInfo {
    /// An entry with the given name, kind and length.
    #[must_use]
    pub fn new(name: impl Into<OsString>, is_dir: bool, len: u64) -> Self {
        Self {
            name: name.into(),
            is_dir,
            len,
        }
    }
}

/// Reads the entries of `dir`, at most [`MAX_LISTING_ENTRIES`], unsorted.
///
/// Symlinks are followed for the kind and length; entries whose metadata cannot be read
/// (dangling symlinks, races with deletion) are left out. Dotfiles are included.
///
/// # Errors
/// The error of [`std::fs::read_dir`], or of reading the directory stream.
pub fn read_listing(dir: &Path) -> io::Result<Vec<DirEntryInfo>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        if out.len() >= MAX_LISTING_ENTRIES {
            break;
        }
        let entry = entry?;
        let Ok(metadata) = fs::metadata(entry.path()) else {
            continue;
        };
        out.push(DirEntryInfo {
            name: entry.file_name(),
            is_dir: metadata.is_dir(),
            len: if metadata.is_dir() { 0 } else { metadata.len() },
        });
    }
    Ok(out)
}

/// Renders an HTML listing of `entries` (sorted in place by name) for the directory at
/// `request_path`.
///
/// `request_path` is the decoded path shown to the reader (`/docs/`); it is only displayed
/// (HTML-escaped), never used in a link: hrefs are relative to the directory, whose URL
/// ends in `/` (see [`Resolved::RedirectToSlash`](super::Resolved::RedirectToSlash)). A
/// `../` link is added unless `request_path` is `/`.
#[must_use]
pub fn render_listing(request_path: &str, entries: &mut [DirEntryInfo]) -> String {
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let title = html_escape(request_path);
    let mut page = String::with_capacity(512 + entries.len() * 128);
    page.push_str("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n");
    // Writing to a String cannot fail.
    let _ = writeln!(page, "<title>Index of {title}</title>\n</head>\n<body>");
    let _ = writeln!(page, "<h1>Index of {title}</h1>\n<table>");
    if request_path != "/" {
        page.push_str("<tr><td><a href=\"../\">../</a></td><td></td></tr>\n");
    }
    for entry in entries.iter() {
        let bytes = name_bytes(&entry.name);
        let mut href = percent_encode(&bytes);
        let mut text = html_escape(&String::from_utf8_lossy(&bytes));
        let size = if entry.is_dir {
            href.push('/');
            text.push('/');
            "-".to_owned()
        } else {
            entry.len.to_string()
        };
        let _ = writeln!(
            page,
            "<tr><td><a href=\"{href}\">{text}</a></td><td>{size}</td></tr>"
        );
    }
    page.push_str("</table>\n</body>\n</html>\n");
    page
}

/// The bytes of a file name: exact on Unix, UTF-8 (lossy) elsewhere.
#[cfg(unix)]
fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;

    name.as_bytes().to_vec()
}

/// The bytes of a file name: exact on Unix, UTF-8 (lossy) elsewhere.
#[cfg(not(unix))]
fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    name.to_string_lossy().into_owned().into_bytes()
}

/// Percent-encodes every byte outside RFC 3986 `unreserved` (ALPHA / DIGIT / `-._~`).
fn percent_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
