//! [`StaticFiles`]: a directory served over HTTP, on the static-file building blocks.
//!
//! Owns: turning [`crate::http::static_files`] decisions into responses — 301 to the
//! slash-ended directory URL, listings (optional), 304/412 from preconditions, 206/416
//! from ranges — and sending file contents.
//! Contract: files up to [`StaticFiles::INLINE_MAX`] go out as one response; larger ones
//! stream in [`StaticFiles::CHUNK`] pieces through a [`BodyWriter`](crate::http::server::BodyWriter),
//! waiting on its backpressure, so a file is never read whole into memory and a slow client
//! holds at most the connection's write buffer.
//! Does not: use `sendfile` or io_uring reads (file reads are plain blocking reads on the
//! reactor thread; they hit the page cache for hot files, but a cold disk read stalls the
//! core — a known limit, noted in docs/http.md).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use crate::http::date::format_http_date;
use crate::http::proto::{Method, RequestHead};
use crate::http::server::{Handler, Request, Responder, Response};
use crate::http::static_files::{
    Precondition, Preconditions, RangeOutcome, Resolved, StaticRoot, content_range, content_type,
    etag_for, parse_range, read_listing, render_listing, unsatisfied_range,
};

/// Serves the files under one directory (`ringwork serve web --root DIR`).
#[derive(Debug)]
pub struct StaticFiles {
    root: StaticRoot,
    listings: bool,
}

impl StaticFiles {
    /// Files up to this size are read and sent in one piece.
    pub const INLINE_MAX: u64 = 64 * 1024;
    /// The piece size of a streamed file.
    pub const CHUNK: usize = 64 * 1024;

    /// Serves `dir`, with directory listings on.
    ///
    /// # Errors
    /// `dir` does not exist or is not a directory.
    pub fn new(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(Self {
            root: StaticRoot::new(dir)?,
            listings: true,
        })
    }

    /// Whether a directory without `index.html` gets a listing (else 403).
    #[must_use]
    pub fn with_listings(mut self, listings: bool) -> Self {
        self.listings = listings;
        self
    }

    /// The directory served.
    #[must_use]
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Handler for StaticFiles {
    /// A method this handler refuses is answered at once, without its body: so a client
    /// waiting for `100 Continue` gets the 405 instead and uploads nothing.
    fn stream_body(&self, head: &RequestHead) -> bool {
        !matches!(head.method, Method::Get | Method::Head)
    }

    fn handle(&self, request: Request, respond: Responder) {
        if !matches!(request.method(), Method::Get | Method::Head) {
            respond.send(Response::error(405).header("Allow", "GET, HEAD"));
            return;
        }
        match self.root.resolve(request.path()) {
            Err(error) => {
                tracing::debug!(%error, "static file not served");
                respond.send(Response::error(error.status()));
            }
            Ok(Resolved::RedirectToSlash) => {
                let mut location = request.path().to_vec();
                location.push(b'/');
                if let Some(query) = request.query() {
                    location.push(b'?');
                    location.extend_from_slice(query);
                }
                respond.send(Response::error(301).header("Location", location));
            }
            Ok(Resolved::Directory { path }) => {
                respond.send(self.listing(&request, &path));
            }
            Ok(Resolved::File { path, metadata }) => {
                serve_file(request, respond, &path, &metadata);
            }
        }
    }
}

impl StaticFiles {
    fn listing(&self, request: &Request, dir: &Path) -> Response {
        if !self.listings {
            return Response::error(403);
        }
        let Ok(mut entries) = read_listing(dir) else {
            return Response::error(403);
        };
        let shown = String::from_utf8_lossy(request.path()).into_owned();
        Response::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .with_body(render_listing(&shown, &mut entries))
    }
}

/// Answers for a regular file: preconditions, range, then the bytes.
fn serve_file(request: Request, respond: Responder, path: &Path, metadata: &std::fs::Metadata) {
    let len = metadata.len();
    let etag = etag_for(metadata);
    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let headers = request.headers();
    let preconditions = Preconditions {
        if_match: headers.get("if-match"),
        if_none_match: headers.get("if-none-match"),
        if_modified_since: headers.get("if-modified-since"),
        if_unmodified_since: headers.get("if-unmodified-since"),
        if_range: headers.get("if-range"),
    };
    let validators = |response: Response| {
        response
            .header("ETag", etag.clone())
            .header("Last-Modified", format_http_date(modified).to_vec())
    };
    match preconditions.evaluate(true, &etag, modified) {
        Precondition::NotModified => {
            respond.send(validators(Response::new(304)));
            return;
        }
        Precondition::Failed => {
            respond.send(Response::error(412));
            return;
        }
        _ => {}
    }
    // RFC 9110 §14.2: a server MUST ignore a Range header field received with a request
    // method other than GET.
    let range = match headers.get("range") {
        Some(value)
            if *request.method() == Method::Get
                && preconditions.if_range_allows(&etag, modified) =>
        {
            parse_range(value, len)
        }
        _ => RangeOutcome::Full,
    };
    let (status, start, count) = match range {
        RangeOutcome::Partial {
            start,
            end_inclusive,
        } => (206, start, end_inclusive - start + 1),
        RangeOutcome::Unsatisfiable => {
            respond.send(Response::error(416).header("Content-Range", unsatisfied_range(len)));
            return;
        }
        _ => (200, 0, len),
    };
    let mut response = validators(Response::new(status))
        .header("Content-Type", content_type(path))
        .header("Accept-Ranges", "bytes")
        .header("Content-Length", count.to_string());
    if status == 206 {
        response = response.header(
            "Content-Range",
            content_range(start, start + count - 1, len),
        );
    }
    if *request.method() == Method::Head || count == 0 {
        respond.send(response);
        return;
    }
    let mut file =
        match File::open(path).and_then(|mut f| f.seek(SeekFrom::Start(start)).map(|_| f)) {
            Ok(file) => file,
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "cannot open a resolved file");
                respond.send(Response::error(500));
                return;
            }
        };
    if count <= StaticFiles::INLINE_MAX {
        let mut body = vec![0; count as usize];
        match file.read_exact(&mut body) {
            Ok(()) => respond.send(response.with_body(body)),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "file read failed");
                respond.send(Response::error(500));
            }
        }
        return;
    }
    let mut writer = respond.stream(response);
    let path: PathBuf = path.to_owned();
    request.handle().spawn_local(async move {
        let mut left = count;
        while left > 0 {
            let want = left.min(StaticFiles::CHUNK as u64) as usize;
            let mut chunk = BytesMut::zeroed(want);
            if let Err(error) = file.read_exact(&mut chunk) {
                // Dropping the writer unfinished closes the connection: the client sees
                // a short body rather than wrong bytes.
                tracing::warn!(%error, path = %path.display(), "file read failed mid-body");
                return;
            }
            left -= want as u64;
            let chunk: Bytes = chunk.freeze();
            if !writer.write(chunk) && writer.ready().await.is_err() {
                return;
            }
        }
        writer.finish();
    });
}
