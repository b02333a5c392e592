//! This process's CPU time and resident memory, read from `/proc/self`
//! (Linux): what `bench scale` divides by workers and worker-hours.

/// CPU time (user + system) of this whole process, in milliseconds; 0 where
/// `/proc/self/schedstat` is unreadable.
pub fn cpu_ms() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ns: u64 = 0;
    for e in dir.flatten() {
        let s = std::fs::read_to_string(e.path().join("schedstat")).unwrap_or_default();
        ns += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ns as f64 / 1e6
}

/// Resident memory of this process in bytes (`VmRSS`); 0 when unreadable.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    rss_of(&status)
}

fn rss_of(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Available memory of the machine in bytes (`MemAvailable`), if known.
pub fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_reads_the_kilobytes_of_vmrss() {
        assert_eq!(rss_of("Name:\tx\nVmRSS:\t  2048 kB\n"), 2048 * 1024);
        assert_eq!(rss_of("Name:\tx\n"), 0);
        assert!(cpu_ms() > 0.0);
        assert!(rss_bytes() > 0);
    }
}
