//! Target aliases, so `cfg` lists are written once (as quinn-udp does).
fn main() {
    cfg_aliases::cfg_aliases! {
        // The io_uring backend exists only on Linux.
        uring: { target_os = "linux" },
        // Child processes (pidfd, pipes and pseudo-terminals driven by the driver): Linux.
        processes: { target_os = "linux" },
    }
}
