//! `--buffers` and `--buffer-size`: the receive buffers each core's driver keeps (the io_uring
//! buffer ring; the poll backend reads into the same pool). They are most of a server's
//! memory before any connection: 1024 × 16 KiB = 16 MiB per core by default.
//!
//! Owns: parsing and checking the two flags, and the driver settings they make.

use ringwork::platform::DriverConfig;

/// The driver settings for `--buffers COUNT` and `--buffer-size BYTES` (each `None`: the
/// engine's default).
///
/// # Errors
/// A count that is not a power of two in 1..=32768, or a size outside 512..=1 MiB.
pub fn driver_config(count: Option<u32>, size: Option<u32>) -> Result<DriverConfig, String> {
    let mut config = DriverConfig::default();
    if let Some(count) = count {
        if !count.is_power_of_two() || count > 32768 {
            return Err(format!(
                "--buffers {count}: must be a power of two, at most 32768"
            ));
        }
        config.buf_count = u16::try_from(count).map_err(|_| "--buffers: at most 32768")?;
    }
    if let Some(size) = size {
        if !(512..=1 << 20).contains(&size) {
            return Err(format!(
                "--buffer-size {size}: must be between 512 and 1048576 bytes"
            ));
        }
        config.buf_size = size;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sizes_are_checked() {
        let default = DriverConfig::default();
        let config = driver_config(None, None).expect("defaults");
        assert_eq!(
            (config.buf_count, config.buf_size),
            (default.buf_count, default.buf_size)
        );
        let config = driver_config(Some(64), Some(4096)).expect("valid");
        assert_eq!((config.buf_count, config.buf_size), (64, 4096));
        for bad in [0, 3, 100, 65536] {
            let error = driver_config(Some(bad), None).expect_err("bad count");
            assert!(error.contains("--buffers"), "{error}");
        }
        for bad in [0, 511, (1 << 20) + 1] {
            let error = driver_config(None, Some(bad)).expect_err("bad size");
            assert!(error.contains("--buffer-size"), "{error}");
        }
    }
}
