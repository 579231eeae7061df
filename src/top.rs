//! `top`: the processes of a running container, found by its pid
//! namespace in the host's `/proc` (no `ps` of the host or the image runs).

use std::fmt::Write;

/// A table of every process in the pid namespace of `init`, or `None`
/// when `init` is gone.
pub fn table(init: i32) -> Option<String> {
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).ok()?;
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|p| p == ns)
        })
        .collect();
    pids.sort_unstable();
    let mut out = format!("{:<8}{:<10}{:<10}CMD\n", "UID", "PID", "PPID");
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or("?")
                .to_string()
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                c.split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<8}{:<10}{:<10}{cmd}",
            field("Uid:"),
            pid,
            field("PPid:")
        );
    }
    Some(out)
}
