//! HTTP/1.1 hello world on bare io_uring: see the crate docs.
fn main() {
    peer_uring_bare::main("uring-bare-http", peer_uring_bare::Mode::Http)
}
