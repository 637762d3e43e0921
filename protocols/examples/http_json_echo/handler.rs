//! The handler of the `http_json_echo` example (tests/http_interop.rs runs it too).

use ringwork_protocols::http::proto::Method;
use ringwork_protocols::http::server::{Request, Responder, Response};

/// POST a JSON document, get it back (re-serialized, so it was parsed); 400 for a body
/// that is not JSON, 405 for any other method.
pub fn json_echo(request: Request, respond: Responder) {
    if *request.method() != Method::Post {
        respond.send(Response::error(405).header("Allow", "POST"));
        return;
    }
    match serde_json::from_slice::<serde_json::Value>(request.body()) {
        Ok(value) => respond.send(Response::json(value.to_string())),
        Err(error) => {
            respond.send(Response::error(400).with_body(format!("invalid JSON: {error}\n")));
        }
    }
}
