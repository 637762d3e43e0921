//! Content-Type by file extension.
//!
//! Owns: [`content_type`], a fixed table of common web types.
//! Contract: the extension (after the last `.`) is compared ASCII-case-insensitively; text
//! types carry `charset=utf-8`; anything unknown is `application/octet-stream`.
//! Does not: sniff file contents.

use std::path::Path;

/// The type for files whose extension is not in the table.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// (extension, media type). Lowercase extensions; looked up case-insensitively.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
];

/// The `Content-Type` to send for `path`, chosen by its extension.
///
/// # Examples
/// ```
/// use std::path::Path;
/// use ringwork_protocols::http::static_files::content_type;
///
/// assert_eq!(content_type(Path::new("site/INDEX.HTML")), "text/html; charset=utf-8");
/// assert_eq!(content_type(Path::new("blob")), "application/octet-stream");
/// ```
#[must_use]
pub fn content_type(path: &Path) -> &'static str {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return DEFAULT_CONTENT_TYPE;
    };
    TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or(DEFAULT_CONTENT_TYPE, |&(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (path, expected type)
    const CASES: &[(&str, &str)] = &[
        ("index.html", "text/html; charset=utf-8"),
        ("INDEX.HTM", "text/html; charset=utf-8"),
        ("a/b/style.Css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("mod.mjs", "text/javascript; charset=utf-8"),
        ("data.json", "application/json"),
        ("app.js.map", "application/json"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("README.md", "text/markdown; charset=utf-8"),
        ("feed.xml", "application/xml"),
        ("logo.SVG", "image/svg+xml"),
        ("a.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.JPEG", "image/jpeg"),
        ("a.gif", "image/gif"),
        ("a.webp", "image/webp"),
        ("a.avif", "image/avif"),
        ("favicon.ico", "image/x-icon"),
        ("m.wasm", "application/wasm"),
        ("doc.pdf", "application/pdf"),
        ("a.zip", "application/zip"),
        ("a.tar.gz", "application/gzip"),
        ("a.tar", "application/x-tar"),
        ("v.mp4", "video/mp4"),
        ("v.webm", "video/webm"),
        ("s.mp3", "audio/mpeg"),
        ("s.ogg", "audio/ogg"),
        ("s.wav", "audio/wav"),
        ("f.woff", "font/woff"),
        ("f.woff2", "font/woff2"),
        ("f.ttf", "font/ttf"),
        ("f.otf", "font/otf"),
        ("t.csv", "text/csv; charset=utf-8"),
        // Unknown, missing or odd extensions.
        ("a.exe", DEFAULT_CONTENT_TYPE),
        ("Makefile", DEFAULT_CONTENT_TYPE),
        (".html", DEFAULT_CONTENT_TYPE), // a dotfile named ".html" has no extension
        ("a.", DEFAULT_CONTENT_TYPE),
        ("a.htmlx", DEFAULT_CONTENT_TYPE),
        ("dir.html/file", DEFAULT_CONTENT_TYPE),
        ("", DEFAULT_CONTENT_TYPE),
    ];

    #[test]
    fn types_by_extension() {
        for &(path, want) in CASES {
            assert_eq!(content_type(Path::new(path)), want, "{path}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_extension_is_unknown() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;

        let p = Path::new(OsStr::from_bytes(b"a.\xffhtml"));
        assert_eq!(content_type(p), DEFAULT_CONTENT_TYPE);
    }
}
