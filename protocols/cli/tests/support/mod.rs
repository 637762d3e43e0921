//! Helpers shared by the tests that run the `ringwork` binary: the wait limit, temporary
//! directories and test data.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

/// How long any one wait may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(20);

/// `len` bytes of a repeating pattern that makes misplaced bytes visible.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A directory removed on drop, unique to this process and thread.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "ringwork-cli-{name}-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
