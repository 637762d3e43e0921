//! HTTP/1.1 hello world on hyper 1.x (`server::conn::http1`): keep-alive, and
//! `pipeline_flush` so the responses to a pipelined batch go out in one write. hyper
//! handles HTTP/1.0, `Connection: close` and request bodies.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(res)
}

async fn serve(listener: TcpListener) {
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .pipeline_flush(true)
        .header_read_timeout(None);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(TokioIo::new(stream), service_fn(hello));
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
    }
}

fn main() {
    let args = peer_tokio::Args::parse("tokio-http");
    peer_tokio::run_per_core("tokio-http", &args, |l| async move {
        tokio::task::LocalSet::new().run_until(serve(l)).await
    })
}
