//! Target aliases, so `cfg` lists are written once (as quinn-udp does).
fn main() {
    cfg_aliases::cfg_aliases! {
        // The io_uring backend exists only on Linux.
        uring: { target_os = "linux" },
    }
}
