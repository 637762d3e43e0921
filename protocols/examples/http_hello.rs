//! The shortest HTTP server: "Hello, World!" on 127.0.0.1:8080, one reactor per core.
//!
//! `cargo run -p ringwork-protocols --example http_hello`, then `curl localhost:8080`.

use ringwork::{EngineError, Runtime};
use ringwork_protocols::http::server::{HttpServer, Request, Responder, Response, ServerConfig};

fn main() -> Result<(), EngineError> {
    Runtime::builder().build()?.run(|reactor| {
        let hello = |_: Request, respond: Responder| respond.send(Response::text("Hello, World!"));
        let addr = "127.0.0.1:8080".parse().expect("a socket address");
        reactor.listen_tcp(addr, HttpServer::new(hello, ServerConfig::default()))?;
        Ok(())
    })
}
