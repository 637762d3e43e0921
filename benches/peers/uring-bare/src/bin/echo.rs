//! TCP echo on bare io_uring: see the crate docs.
fn main() {
    peer_uring_bare::main("uring-bare-echo", peer_uring_bare::Mode::Echo)
}
