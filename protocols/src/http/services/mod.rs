//! Ready-made HTTP handlers: [`hello`] (the benchmark endpoint) and [`StaticFiles`]
//! (`ringwork serve web`).

mod files;

use bytes::Bytes;

pub use self::files::StaticFiles;
use crate::http::server::{HttpServer, Request, Responder, Response, ServerConfig};

/// The body of [`hello`].
pub const HELLO_BODY: &[u8] = b"Hello, World!";

/// Answers every request with `200`, `text/plain` and "Hello, World!" (the TechEmpower
/// plaintext shape: the benchmark endpoint of `ringwork serve hello`). The response is built
/// and its fields checked once per thread ([`Response::prepared`]); each request gets a
/// clone, framed as any response is (Date, Content-Length, Connection, HEAD).
pub fn hello(_request: Request, respond: Responder) {
    thread_local! {
        static HELLO: Response = Response::new(200)
            .header(
                Bytes::from_static(b"Content-Type"),
                Bytes::from_static(b"text/plain"),
            )
            .with_body(Bytes::from_static(HELLO_BODY))
            .prepared();
    }
    respond.send(HELLO.with(Response::clone));
}

/// An [`HttpServer`] running [`hello`].
#[must_use]
pub fn hello_server(config: ServerConfig) -> HttpServer {
    HttpServer::new(hello, config)
}
