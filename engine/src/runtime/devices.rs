//! Host devices in containers: `devices:` / `--device` give one each
//! (created in the container's `/dev` and allowed in its device cgroup),
//! `privileged` gives every one the host has, as Docker does.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
};

use crate::{Error, Result};

/// One device mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The host's device node.
    pub host: PathBuf,
    /// Where it appears in the container.
    pub container: String,
    /// Cgroup access: some of `r`, `w`, `m`.
    pub access: String,
}

/// `/dev/fuse`, `/dev/sda:/dev/xvda`, `/dev/sda:/dev/xvda:r`.
pub fn parse(s: &str) -> Result<Device> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || Error::Conflict(format!("device {s:?}: expected HOST[:CONTAINER[:rwm]]"));
    let (host, container, access) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, c] if c.chars().all(|x| "rwm".contains(x)) && !c.is_empty() => (*h, *h, *c),
        [h, c] => (*h, *c, "rwm"),
        [h, c, a] if a.chars().all(|x| "rwm".contains(x)) && !a.is_empty() => (*h, *c, *a),
        _ => return Err(bad()),
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        return Err(bad());
    }
    Ok(Device {
        host: PathBuf::from(host),
        container: container.to_string(),
        access: access.to_string(),
    })
}

fn node(host: &Path, container: &str) -> Result<LinuxDevice> {
    let m = std::fs::metadata(host).map_err(|e| Error::io(host, e))?;
    let typ = if m.file_type().is_char_device() {
        LinuxDeviceType::C
    } else if m.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(Error::Conflict(format!(
            "device {}: not a character or block device",
            host.display()
        )));
    };
    let rdev = m.rdev();
    LinuxDeviceBuilder::default()
        .path(PathBuf::from(container))
        .typ(typ)
        .major(i64::from(rustix::fs::major(rdev)))
        .minor(i64::from(rustix::fs::minor(rdev)))
        .file_mode(m.mode() & 0o777)
        .uid(m.uid())
        .gid(m.gid())
        .build()
        .map_err(|e| Error::Conflict(format!("device {}: {e}", host.display())))
}

fn allow(d: &LinuxDevice, access: &str) -> Result<LinuxDeviceCgroup> {
    LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(d.typ())
        .major(d.major())
        .minor(d.minor())
        .access(access.to_string())
        .build()
        .map_err(|e| Error::Conflict(format!("device cgroup rule: {e}")))
}

/// The nodes and cgroup rules for `devices`.
pub fn mapped(devices: &[Device]) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>)> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    for d in devices {
        let n = node(&d.host, &d.container)?;
        rules.push(allow(&n, &d.access)?);
        nodes.push(n);
    }
    Ok((nodes, rules))
}

/// Every device node directly under the host's `/dev`, and a rule that
/// allows any device: `privileged`.
pub fn all_host() -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>)> {
    let mut nodes = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/dev") {
        for e in entries.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if !(ft.is_char_device() || ft.is_block_device()) {
                continue;
            }
            // Every container has these of its own already; its terminal
            // devices stay its own.
            let name = e.file_name().to_string_lossy().into_owned();
            let own = [
                "console", "ptmx", "tty", "null", "zero", "full", "random", "urandom",
            ];
            if own.contains(&name.as_str()) {
                continue;
            }
            if let Ok(n) = node(&path, &path.to_string_lossy()) {
                nodes.push(n);
            }
        }
    }
    nodes.sort_by(|a, b| a.path().cmp(b.path()));
    let any = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .access("rwm".to_string())
        .build()
        .map_err(|e| Error::Conflict(format!("device cgroup rule: {e}")))?;
    Ok((nodes, vec![any]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_as_docker_writes_them() {
        let d = parse("/dev/fuse").unwrap();
        assert_eq!(
            (d.container.as_str(), d.access.as_str()),
            ("/dev/fuse", "rwm")
        );
        let d = parse("/dev/sda:/dev/xvda:r").unwrap();
        assert_eq!(
            (d.container.as_str(), d.access.as_str()),
            ("/dev/xvda", "r")
        );
        assert_eq!(parse("/dev/null:rw").unwrap().container, "/dev/null");
        assert!(parse("dev/null").is_err());
        assert!(parse("/a:/b:x").is_err());
    }
}
