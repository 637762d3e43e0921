//! WebSocket echo on tokio-tungstenite, as its own echo-server example does it: one task
//! per connection, the read half's text and binary messages forwarded into the write half
//! (`forward` flushes when no more input is ready, so pipelined messages share writes;
//! pings are answered by tungstenite), no compression.

use futures_util::{StreamExt, TryStreamExt, future};
use tokio::net::{TcpListener, TcpStream};

async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::task::spawn_local(echo(stream));
    }
}

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|message| future::ready(message.is_text() || message.is_binary()))
        .forward(write)
        .await;
}

fn main() {
    let args = peer_tokio::Args::parse("tokio-ws-echo");
    peer_tokio::run_per_core("tokio-ws-echo", &args, |l| async move {
        tokio::task::LocalSet::new().run_until(serve(l)).await
    })
}
