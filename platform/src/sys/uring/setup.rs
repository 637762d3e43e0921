//! io_uring setup: kernel checks, ring flags, opcode probe, and why setup failed.
//!
//! Owns: building the ring with the best flags the kernel accepts (SINGLE_ISSUER +
//! DEFER_TASKRUN, else COOP_TASKRUN, else none), probing the opcodes the backend needs, and
//! turning a failure into a [`UringUnavailable`] reason for the fallback log line.

use std::io;

use io_uring::{IoUring, Probe, opcode};

use crate::config::{BackendKind, Capabilities, DriverConfig};
use crate::error::UringUnavailable;

/// Opcodes the backend submits, with names for the capability report.
const REQUIRED_OPCODES: [(u8, &str); 12] = [
    (opcode::AcceptMulti::CODE, "ACCEPT"),
    (opcode::RecvMulti::CODE, "RECV"),
    (opcode::Send::CODE, "SEND"),
    (opcode::SendMsg::CODE, "SENDMSG"),
    (opcode::RecvMsg::CODE, "RECVMSG"),
    (opcode::Connect::CODE, "CONNECT"),
    (opcode::Close::CODE, "CLOSE"),
    (opcode::Shutdown::CODE, "SHUTDOWN"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    (opcode::Timeout::CODE, "TIMEOUT"),
    (opcode::TimeoutRemove::CODE, "TIMEOUT_REMOVE"),
    (opcode::Read::CODE, "READ"),
];

/// Multishot recv with provided buffer rings arrived in Linux 6.0.
const MIN_KERNEL: (u32, u32) = (6, 0);

/// The kernel release string (`uname -r`), if readable.
pub(super) fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

/// `major.minor` of a release string such as `6.18.44-fc-v595`.
pub(super) fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Classifies an `io_uring_setup` failure.
pub(super) fn classify_setup_error(error: &io::Error) -> UringUnavailable {
    match error.raw_os_error() {
        Some(libc::EPERM) => {
            let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .ok()
                .and_then(|s| s.trim().parse::<u8>().ok())
                .unwrap_or(0);
            if sysctl > 0 {
                UringUnavailable::DisabledBySysctl { value: sysctl }
            } else {
                UringUnavailable::DeniedBySeccomp
            }
        }
        Some(libc::ENOSYS) => UringUnavailable::NotImplemented,
        _ => UringUnavailable::SetupFailed {
            step: "io_uring_setup",
            error: error.to_string(),
        },
    }
}

/// Builds a ring and fills in what it found.
pub(super) fn build_ring(
    config: &DriverConfig,
) -> Result<(IoUring, Capabilities), UringUnavailable> {
    if let Some(errno) = config.simulate_uring_setup_errno {
        return Err(classify_setup_error(&io::Error::from_raw_os_error(errno)));
    }
    let kernel = kernel_release();
    if let Some(found) = kernel.as_deref()
        && parse_version(found).is_some_and(|v| v < MIN_KERNEL)
    {
        return Err(UringUnavailable::KernelTooOld {
            found: found.to_string(),
            needed: "6.0",
            feature: "multishot recv with a provided buffer ring",
        });
    }

    // Best first: DEFER_TASKRUN runs completion work only when we enter, on this thread,
    // which avoids the cross-CPU interrupts that make default-flag rings lose to epoll
    // (FINDINGS.md). Older kernels reject unknown flags with EINVAL: try the next set.
    #[derive(Clone, Copy)]
    enum Flags {
        DeferTaskrun,
        CoopTaskrun,
        Plain,
    }
    let mut last_error = None;
    for flags in [Flags::DeferTaskrun, Flags::CoopTaskrun, Flags::Plain] {
        let mut builder = IoUring::builder();
        builder
            .setup_cqsize(config.cq_entries)
            .setup_submit_all()
            .dontfork();
        match flags {
            Flags::DeferTaskrun => {
                builder.setup_single_issuer().setup_defer_taskrun();
            }
            Flags::CoopTaskrun => {
                builder.setup_coop_taskrun().setup_taskrun_flag();
            }
            Flags::Plain => {}
        }
        match builder.build(config.sq_entries) {
            Ok(ring) => {
                let capabilities = Capabilities {
                    backend: Some(BackendKind::Uring),
                    kernel: kernel.clone(),
                    sq_entries: ring.params().sq_entries(),
                    cq_entries: ring.params().cq_entries(),
                    single_issuer: matches!(flags, Flags::DeferTaskrun),
                    defer_taskrun: matches!(flags, Flags::DeferTaskrun),
                    coop_taskrun: matches!(flags, Flags::CoopTaskrun),
                    nodrop: ring.params().is_feature_nodrop(),
                    ext_arg: ring.params().is_feature_ext_arg(),
                    ..Capabilities::default()
                };
                return Ok((ring, capabilities));
            }
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => last_error = Some(error),
            Err(error) => return Err(classify_setup_error(&error)),
        }
    }
    let error = last_error.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL));
    Err(classify_setup_error(&error))
}

/// Checks the opcodes and features the backend relies on and records them.
pub(super) fn probe(
    ring: &IoUring,
    capabilities: &mut Capabilities,
) -> Result<(), UringUnavailable> {
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| UringUnavailable::SetupFailed {
            step: "opcode probe",
            error: e.to_string(),
        })?;
    for (code, name) in REQUIRED_OPCODES {
        if !probe.is_supported(code) {
            return Err(UringUnavailable::MissingOpcode { opcode: name });
        }
        capabilities.opcodes.push(name);
    }
    if !capabilities.ext_arg {
        // Waiting with a timeout in the same enter needs IORING_FEAT_EXT_ARG (5.11).
        return Err(UringUnavailable::KernelTooOld {
            found: capabilities.kernel.clone().unwrap_or_default(),
            needed: "5.11",
            feature: "IORING_FEAT_EXT_ARG",
        });
    }
    // File operations (Driver::file): optional, threads serve them otherwise.
    let file_opcodes = [
        (opcode::OpenAt2::CODE, "OPENAT2"),
        (opcode::Statx::CODE, "STATX"),
    ];
    capabilities.file_ops = true;
    for (code, name) in file_opcodes {
        if probe.is_supported(code) {
            capabilities.opcodes.push(name);
        } else {
            capabilities.file_ops = false;
        }
    }
    // Zero-copy sends: optional, SEND and SENDMSG serve otherwise.
    let zc_opcodes = [
        (opcode::SendZc::CODE, "SEND_ZC"),
        (opcode::SendMsgZc::CODE, "SENDMSG_ZC"),
    ];
    capabilities.send_zc = zc_opcodes.iter().all(|&(code, _)| probe.is_supported(code));
    if capabilities.send_zc {
        capabilities
            .opcodes
            .extend(zc_opcodes.map(|(_, name)| name));
    }
    capabilities.multishot_accept = true;
    capabilities.multishot_recv = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_distribution_release_strings() {
        assert_eq!(parse_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(parse_version("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_version("6.1"), Some((6, 1)));
        assert_eq!(parse_version("garbage"), None);
        assert!(parse_version("5.19.0").unwrap() < MIN_KERNEL);
    }

    #[test]
    fn setup_errors_name_their_cause() {
        assert_eq!(
            classify_setup_error(&io::Error::from_raw_os_error(libc::ENOSYS)),
            UringUnavailable::NotImplemented
        );
        let eperm = classify_setup_error(&io::Error::from_raw_os_error(libc::EPERM));
        assert!(
            matches!(
                eperm,
                UringUnavailable::DeniedBySeccomp | UringUnavailable::DisabledBySysctl { .. }
            ),
            "{eperm:?}"
        );
        assert!(matches!(
            classify_setup_error(&io::Error::from_raw_os_error(libc::ENOMEM)),
            UringUnavailable::SetupFailed { .. }
        ));
    }
}
