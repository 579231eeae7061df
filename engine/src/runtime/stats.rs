//! `stats`: what a running container uses, read from its cgroup (v1
//! controllers or the v2 unified tree, whichever holds it) and from its
//! network namespace, as `docker stats` shows it.

use std::path::PathBuf;
use std::time::Instant;

use super::run::ContainerRecord;

/// One reading of a container's counters.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// CPU time used so far, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, without the reclaimable page cache (as Docker counts).
    pub mem_usage: u64,
    /// The memory limit (the host's memory when none is set).
    pub mem_limit: u64,
    /// Processes and threads.
    pub pids: u64,
    /// Bytes received and sent on the container's interfaces.
    pub net: (u64, u64),
    /// Bytes read from and written to block devices.
    pub block: (u64, u64),
}

fn read(path: impl Into<PathBuf>) -> Option<String> {
    std::fs::read_to_string(path.into()).ok()
}

fn number(path: impl Into<PathBuf>) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

/// `key value` lines (`memory.stat`, `cpu.stat`).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn host_memory() -> u64 {
    read("/proc/meminfo")
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Received and sent bytes of every interface but loopback, as the
/// container's init sees them.
fn network(pid: i32) -> (u64, u64) {
    let Some(text) = read(format!("/proc/{pid}/net/dev")) else {
        return (0, 0);
    };
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim() != "lo")
        .filter_map(|(_, rest)| {
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            Some((*f.first()?, *f.get(8)?))
        })
        .fold((0, 0), |(r, t), (a, b)| (r + a, t + b))
}

/// Reads the counters of a running container.
pub fn sample(record: &ContainerRecord) -> Option<Sample> {
    let pid = record.pid?;
    let id = &record.id;
    let v1 = |controller: &str, file: &str| {
        PathBuf::from(format!("/sys/fs/cgroup/{controller}/berth/{id}/{file}"))
    };
    let v2 = PathBuf::from(format!("/sys/fs/cgroup/berth/{id}"));
    let host = host_memory();
    let sample = if v1("memory", "memory.usage_in_bytes").exists() {
        let stat = read(v1("memory", "memory.stat")).unwrap_or_default();
        let usage = number(v1("memory", "memory.usage_in_bytes")).unwrap_or(0);
        let cache = keyed(&stat, "total_inactive_file").unwrap_or(0);
        let limit = number(v1("memory", "memory.limit_in_bytes")).unwrap_or(u64::MAX);
        let blk = read(v1("blkio", "blkio.throttle.io_service_bytes")).unwrap_or_default();
        let op = |name: &str| {
            blk.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() == 3 && f[1] == name).then(|| f[2].parse::<u64>().ok())?
                })
                .sum()
        };
        Sample {
            at: Instant::now(),
            cpu_ns: number(v1("cpuacct", "cpuacct.usage")).unwrap_or(0),
            mem_usage: usage.saturating_sub(cache),
            mem_limit: limit.min(host),
            pids: number(v1("pids", "pids.current")).unwrap_or(0),
            net: network(pid),
            block: (op("Read"), op("Write")),
        }
    } else {
        let stat = read(v2.join("memory.stat")).unwrap_or_default();
        let usage = number(v2.join("memory.current")).unwrap_or(0);
        let limit = number(v2.join("memory.max")).unwrap_or(u64::MAX);
        let io = read(v2.join("io.stat")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            io.split_whitespace()
                .filter_map(|f| f.strip_prefix(name)?.parse::<u64>().ok())
                .sum()
        };
        Sample {
            at: Instant::now(),
            cpu_ns: keyed(&read(v2.join("cpu.stat")).unwrap_or_default(), "usage_usec")
                .unwrap_or(0)
                * 1000,
            mem_usage: usage.saturating_sub(keyed(&stat, "inactive_file").unwrap_or(0)),
            mem_limit: limit.min(host),
            pids: number(v2.join("pids.current")).unwrap_or(0),
            net: network(pid),
            block: (field("rbytes="), field("wbytes=")),
        }
    };
    Some(sample)
}

/// How many processes of container `id` the kernel's OOM killer killed
/// (v1 `memory.oom_control`, v2 `memory.events`).
pub fn oom_kills(id: &str) -> u64 {
    let v1 = read(format!(
        "/sys/fs/cgroup/memory/berth/{id}/memory.oom_control"
    ));
    let v2 = read(format!("/sys/fs/cgroup/berth/{id}/memory.events"));
    [v1, v2]
        .into_iter()
        .flatten()
        .filter_map(|t| keyed(&t, "oom_kill"))
        .sum()
}

/// CPU use between two samples, in percent of one CPU (as `docker stats`:
/// 200% is two CPUs busy).
pub fn cpu_percent(before: &Sample, after: &Sample) -> f64 {
    let wall = after.at.duration_since(before.at).as_nanos() as f64;
    if wall <= 0.0 {
        return 0.0;
    }
    after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / wall * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_are_read_by_key() {
        let stat = "cache 10\ntotal_inactive_file 4096\nrss 5";
        assert_eq!(keyed(stat, "total_inactive_file"), Some(4096));
        assert_eq!(keyed(stat, "missing"), None);
    }
}
