//! What the runner reads from `/proc` and `/sys`: process trees, their CPU time, RSS and
//! sockets, listening ports, open-file limits and the machine description.
//!
//! Owns: the parsers (pure functions over the files' text, unit-tested with fixtures) and
//! thin readers that apply them to the live files.
//! Contract: a process that vanished while being read counts as zero (it cannot be
//! measured any more); CPU time is in clock ticks (`utime+stime+cutime+cstime`, so reaped
//! children count), RSS in KiB (`VmRSS`).
//! Does not: start or signal processes (see `server.rs`).

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use serde::Serialize;

/// Fields of `/proc/PID/stat` after the parenthesised command name (which may contain
/// spaces and parentheses, so split at the last `)`).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// `(state, ppid, cpu ticks)` of a `/proc/PID/stat` line; ticks are
/// utime+stime+cutime+cstime (fields 14–17).
#[must_use]
pub fn parse_stat(stat: &str) -> Option<(char, u32, u64)> {
    let f = stat_fields(stat)?;
    // f[0] is field 3 (state), so field N is f[N - 3].
    let state = f.first()?.chars().next()?;
    let ppid = f.get(1)?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks += f.get(i)?.parse::<i64>().ok()?.max(0) as u64;
    }
    Some((state, ppid, ticks))
}

/// `VmRSS` of a `/proc/PID/status` text, in KiB (`None` for kernel threads and zombies).
#[must_use]
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Soft and hard "Max open files" of a `/proc/PID/limits` text (`u64::MAX` = unlimited).
#[must_use]
pub fn parse_nofile(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let num = |s: &str| {
        if s == "unlimited" {
            Some(u64::MAX)
        } else {
            s.parse().ok()
        }
    };
    Some((num(it.next()?)?, num(it.next()?)?))
}

/// True if `/proc/net/tcp{,6}` text lists a socket in LISTEN state on `port`.
#[must_use]
pub fn parse_listening(net_tcp: &str, port: u16) -> bool {
    let want = format!(":{port:04X}");
    net_tcp.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[3] == "0A" && f[1].ends_with(&want)
    })
}

/// The first `model name` (x86) or `Model`/`cpu model` (other architectures) of
/// `/proc/cpuinfo`, and the number of `processor` entries.
#[must_use]
pub fn parse_cpuinfo(cpuinfo: &str) -> (String, usize) {
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            (k == "model name" || k == "Model" || k == "cpu model").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let count = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
        .count();
    (model, count)
}

/// `(idle + iowait, total)` jiffies of the aggregate `cpu` line of a `/proc/stat` text.
#[must_use]
pub fn parse_cpu_totals(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total = v.iter().take(8).sum();
    Some((v.get(3)? + v.get(4).unwrap_or(&0), total))
}

/// Share of the machine's CPU time that was idle over `window`, percent.
#[must_use]
pub fn idle_percent(window: std::time::Duration) -> Option<f64> {
    let (i0, t0) = parse_cpu_totals(&read("/proc/stat")?)?;
    std::thread::sleep(window);
    let (i1, t1) = parse_cpu_totals(&read("/proc/stat")?)?;
    (t1 > t0).then(|| 100.0 * (i1 - i0) as f64 / (t1 - t0) as f64)
}

fn read(path: &str) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// `(state, ppid, ticks)` of every live process.
fn all_processes() -> BTreeMap<u32, (char, u32, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(s) = read(&format!("/proc/{pid}/stat"))
            .as_deref()
            .and_then(parse_stat)
        {
            out.insert(pid, s);
        }
    }
    out
}

/// `root` and all its live descendants (zombies excluded).
#[must_use]
pub fn process_tree(root: u32) -> Vec<u32> {
    let all = all_processes();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(all.iter().filter(|(_, s)| s.1 == parent).map(|(p, _)| *p));
        i += 1;
    }
    tree.retain(|p| all.get(p).is_some_and(|s| s.0 != 'Z'));
    tree
}

/// True while `pid` exists and is not a zombie.
#[must_use]
pub fn alive(pid: u32) -> bool {
    read(&format!("/proc/{pid}/stat"))
        .as_deref()
        .and_then(parse_stat)
        .is_some_and(|s| s.0 != 'Z')
}

/// CPU ticks used so far by `pids`.
#[must_use]
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            read(&format!("/proc/{p}/stat"))
                .as_deref()
                .and_then(parse_stat)
        })
        .map(|s| s.2)
        .sum()
}

/// Summed VmRSS of `pids`, in KiB.
#[must_use]
pub fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            read(&format!("/proc/{p}/status"))
                .as_deref()
                .and_then(parse_status_rss_kib)
        })
        .sum()
}

/// Socket file descriptors held by `pids` (each fd counted once per process).
#[must_use]
pub fn socket_fds(pids: &[u32]) -> usize {
    pids.iter()
        .filter_map(|p| fs::read_dir(format!("/proc/{p}/fd")).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| {
            fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// True if something listens on TCP `port` (IPv4 or IPv6, any address).
#[must_use]
pub fn listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| read(p))
        .any(|t| parse_listening(&t, port))
}

/// This process's open-file limits (soft, hard).
#[must_use]
pub fn nofile_limits() -> Option<(u64, u64)> {
    parse_nofile(&read("/proc/self/limits")?)
}

/// The number of ephemeral ports (`net.ipv4.ip_local_port_range`) and `net.core.somaxconn`.
#[must_use]
pub fn net_limits() -> (Option<u64>, Option<u64>) {
    let range = read("/proc/sys/net/ipv4/ip_local_port_range").and_then(|t| {
        let mut it = t.split_whitespace().map(|x| x.parse::<u64>().ok());
        let (lo, hi) = (it.next()??, it.next()??);
        Some(hi.saturating_sub(lo) + 1)
    });
    let somaxconn = read("/proc/sys/net/core/somaxconn").and_then(|t| t.trim().parse().ok());
    (range, somaxconn)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when that fails, the Linux default).
#[must_use]
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// What the results were measured on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu_model: String,
    /// CPUs listed in /proc/cpuinfo.
    pub cpus: usize,
    /// CPUs this process may run on.
    pub available_cpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// Total memory, KiB.
    pub mem_total_kib: Option<u64>,
}

/// Describes this machine from `/proc`.
#[must_use]
pub fn machine() -> Machine {
    let (cpu_model, cpus) = parse_cpuinfo(&read("/proc/cpuinfo").unwrap_or_default());
    let mem_total_kib = read("/proc/meminfo").and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    });
    Machine {
        cpu_model,
        cpus,
        available_cpus: std::thread::available_parallelism().map_or(1, usize::from),
        kernel: read("/proc/sys/kernel/osrelease")
            .map_or_else(|| "unknown".into(), |k| k.trim().to_string()),
        mem_total_kib,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (my (odd) server) S 4200 4242 4242 0 -1 4194560 1234 0 0 0 \
        150 30 7 3 20 0 2 0 123456 1000000 2500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0";

    #[test]
    fn stat_state_ppid_and_ticks_despite_parentheses_in_the_name() {
        assert_eq!(parse_stat(STAT), Some(('S', 4200, 150 + 30 + 7 + 3)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 0"), None);
    }

    #[test]
    fn status_vmrss() {
        let status = "Name:\tnginx\nState:\tS (sleeping)\nVmPeak:\t  20000 kB\nVmRSS:\t    5120 kB\nThreads:\t1\n";
        assert_eq!(parse_status_rss_kib(status), Some(5120));
        assert_eq!(parse_status_rss_kib("Name:\tkthreadd\nState:\tS\n"), None);
    }

    #[test]
    fn limits_nofile() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
            Max processes             31504                31504                processes \n\
            Max open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile(limits), Some((1024, 524288)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile(unlimited), Some((u64::MAX, u64::MAX)));
    }

    #[test]
    fn net_tcp_listening() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
           1: 0100007F:4E21 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n";
        assert!(parse_listening(t, 0x4E20));
        assert!(!parse_listening(t, 0x4E21), "established, not listening");
        assert!(!parse_listening(t, 80));
    }

    #[test]
    fn proc_stat_cpu_totals() {
        let t = "cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 50 2 25 400 10 1 1 5 0 0\nintr 1 2 3\n";
        assert_eq!(parse_cpu_totals(t), Some((820, 990)));
        assert_eq!(parse_cpu_totals("intr 1\n"), None);
    }

    #[test]
    fn cpuinfo_model_and_count() {
        let t = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\n\
                 processor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            parse_cpuinfo(t),
            ("Intel(R) Xeon(R) CPU @ 2.20GHz".to_string(), 2)
        );
        assert_eq!(parse_cpuinfo("").0, "unknown CPU");
    }
}
