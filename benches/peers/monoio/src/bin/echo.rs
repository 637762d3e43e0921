//! TCP echo on monoio: one task per connection; an owned 16 KiB buffer goes to `read`
//! and its filled part to `write_all`, and comes back each time (rent-style I/O).

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        monoio::spawn(echo(stream));
    }
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let (res, b) = stream.read(buf).await;
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let (res, slice) = stream.write_all(monoio::buf::IoBuf::slice(b, 0..n)).await;
        buf = slice.into_inner();
        if res.is_err() {
            return;
        }
    }
}

fn main() {
    let args = peer_monoio::Args::parse("monoio-echo");
    peer_monoio::run_per_core("monoio-echo", &args, serve)
}
