//! A JSON echo server on 127.0.0.1:8080 (or the address given as the first argument):
//! POST a JSON document, get the same document back.
//!
//! ```text
//! cargo run -p ringwork-protocols --example http_json_echo
//! curl -d '{"hello": [1, 2, 3]}' localhost:8080      # {"hello":[1,2,3]}
//! curl -d 'not json' localhost:8080                  # 400 Bad Request
//! curl localhost:8080                                # 405 Method Not Allowed
//! ```
//!
//! The request body is read whole before the handler runs (up to `limits.max_body`,
//! 8 MiB by default: 413 past it), chunked or sized. Ctrl-C shuts down gracefully.

mod handler;

use std::net::SocketAddr;
use std::time::Duration;

use ringwork::{EngineError, Runtime};
use ringwork_protocols::http::server::{HttpServer, ServerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    let runtime = Runtime::builder().build()?;
    runtime
        .shutdown_handle()
        .on_signals(Duration::from_secs(5))?;
    println!("JSON echo on http://{addr}/");
    runtime.run(move |reactor| -> Result<(), EngineError> {
        reactor.listen_tcp(
            addr,
            HttpServer::new(handler::json_echo, ServerConfig::default()),
        )?;
        Ok(())
    })?;
    Ok(())
}
