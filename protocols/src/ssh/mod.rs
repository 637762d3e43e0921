//! SSH (issue 23). So far: `sftp` (Unix), the SFTP v3 file-transfer protocol that an SSH
//! server's `sftp` subsystem runs (the `ringwork sftp-server` program speaks it on
//! stdin/stdout).

#[cfg(unix)]
pub mod sftp;
