//! `ringwork-load`: the ringwork load generator.
//!
//! Status: the workloads (tcp, http, udp) arrive with issue 6. Until then the binary says so
//! and exits non-zero, so no script mistakes it for a working load generator.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    eprintln!("ringwork-load: no workloads are implemented yet (see issue 6)");
    std::process::ExitCode::from(2)
}
