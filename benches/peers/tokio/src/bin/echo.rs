//! TCP echo on tokio: one task per connection, read into a 16 KiB buffer and `write_all`
//! it back.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::task::spawn_local(echo(stream));
    }
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn main() {
    let args = peer_tokio::Args::parse("tokio-echo");
    peer_tokio::run_per_core("tokio-echo", &args, |l| async move {
        tokio::task::LocalSet::new().run_until(serve(l)).await
    })
}
