//! HTTP/1.1 hello world on monoio, parsed with httparse straight from the read buffer.
//!
//! Each read appends to the connection's 16 KiB buffer; every complete request in it gets
//! its response appended to one output buffer, in order, written with one `write_all`
//! (pipelining). Content-Length bodies are skipped (also across reads). Keep-alive:
//! HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`; a
//! malformed head gets 400 and the connection closes.

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use peer_monoio::date;

const IN_SIZE: usize = 16 * 1024;
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        monoio::spawn(conn(stream));
    }
}

/// What the head of one request asks for.
struct Head {
    len: usize,
    body: u64,
    keep_alive: bool,
}

enum Parsed {
    Complete(Head),
    Partial,
    Bad,
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Bad,
    };
    let mut keep_alive = req.version == Some(1);
    let mut body = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value.to_ascii_lowercase();
            if v.windows(5).any(|w| w == b"close") {
                keep_alive = false;
            } else if v.windows(10).any(|w| w == b"keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                Some(n) => body = n,
                None => return Parsed::Bad,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Bad; // chunked bodies are out of scope: 400 and close
        }
    }
    Parsed::Complete(Head {
        len,
        body,
        keep_alive,
    })
}

fn push_response(out: &mut Vec<u8>, date: &[u8; date::DATE_LEN]) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\nContent-Length: 13\r\n\r\nHello, World!");
}

async fn conn(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(IN_SIZE);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut skip: u64 = 0;
    loop {
        let len = buf.len();
        if len == buf.capacity() {
            return; // a head larger than the buffer
        }
        let (res, slice) = stream.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut pos = 0;
        let mut close = false;
        let date = date::now();
        while pos < buf.len() {
            if skip > 0 {
                let n = (buf.len() - pos).min(usize::try_from(skip).unwrap_or(usize::MAX));
                pos += n;
                skip -= n as u64;
                continue;
            }
            match parse(&buf[pos..]) {
                Parsed::Partial => break,
                Parsed::Bad => {
                    out.extend_from_slice(BAD_REQUEST);
                    close = true;
                    break;
                }
                Parsed::Complete(head) => {
                    push_response(&mut out, &date);
                    pos += head.len;
                    skip = head.body;
                    if !head.keep_alive {
                        close = true;
                        break;
                    }
                }
            }
        }
        if !out.is_empty() {
            let (res, o) = stream.write_all(out).await;
            out = o;
            out.clear();
            if res.is_err() {
                return;
            }
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
        buf.drain(..pos);
    }
}

fn main() {
    let args = peer_monoio::Args::parse("monoio-http");
    peer_monoio::run_per_core("monoio-http", &args, serve)
}
