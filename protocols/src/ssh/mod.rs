//! SSH (issue 23). So far: [`sftp`], the SFTP v3 file-transfer protocol that an SSH server's
//! `sftp` subsystem runs (the `ringwork sftp-server` program speaks it on stdin/stdout).

pub mod sftp;
