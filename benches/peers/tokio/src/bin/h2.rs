//! HTTP/2 hello world on hyper 1.x (`server::conn::http2`, h2c with prior knowledge): the
//! peer of `benches/scripts/h2_hello_bench.sh`. hyper's defaults for streams and windows,
//! one `current_thread` runtime per core (`--cores`), SO_REUSEPORT listeners.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http2;
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

/// Runs each stream's service future on the core's `LocalSet` (no cross-thread spawn).
#[derive(Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: std::future::Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

async fn serve(listener: TcpListener) {
    let builder = http2::Builder::new(LocalExec);
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
    let args = peer_tokio::Args::parse("tokio-h2");
    peer_tokio::run_per_core("tokio-h2", &args, |l| async move {
        tokio::task::LocalSet::new().run_until(serve(l)).await
    })
}
