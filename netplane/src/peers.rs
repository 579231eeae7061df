//! The state roots that share a network namespace. Each root keeps its
//! networks and published ports under itself, but a namespace has one
//! firewall: berth's table there holds the rules of every root with
//! networks in it. Otherwise two roots on one host (two users' `--root`,
//! parallel test sandboxes) would overwrite each other's table, publish one
//! host port twice (a DNAT rule binds no socket to find it by) and leave
//! each other's networks unisolated.
//!
//! A root with networks is registered under `/run/berth/roots/` by the
//! namespace's inode and a hash of its path; every firewall sync, under
//! the host-wide [`NamespaceLock`], reads the networks and publications of
//! all the roots registered for its namespace. A root whose bridges are not
//! in this namespace (a deleted namespace's inode reused, a root removed)
//! is dropped from the register by the next sync that meets it.

use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where roots register.
const RUN_DIR: &str = "/run/berth";

/// The host-wide lock on berth's firewall (`/run/berth/firewall.lock`),
/// held from reading the roots' records to applying their rules. Taken
/// after a root's store lock, never before it.
pub struct NamespaceLock {
    _file: std::fs::File,
    netns: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// The inode of this thread's network namespace.
fn netns_inode() -> Result<u64> {
    let p = Path::new("/proc/thread-self/ns/net");
    Ok(std::fs::metadata(p).map_err(io(p))?.ino())
}

/// A hash of a root's path that stays the same across builds (FNV-1a).
fn path_hash(p: &Path) -> u64 {
    p.as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// The names of this namespace's interfaces (`/proc/thread-self/net/dev`
/// is per namespace; `/sys/class/net` is the mounter's).
pub(crate) fn interfaces() -> Vec<String> {
    std::fs::read_to_string("/proc/thread-self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
        .collect()
}

/// Takes the host-wide firewall lock for this thread's namespace.
pub fn lock() -> Result<NamespaceLock> {
    let dir = Path::new(RUN_DIR).join("roots");
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    let path = Path::new(RUN_DIR).join("firewall.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io(&path)(e.into()))?;
    Ok(NamespaceLock {
        _file: file,
        netns: netns_inode()?,
    })
}

impl NamespaceLock {
    fn entry(&self, networks_dir: &Path) -> PathBuf {
        Path::new(RUN_DIR).join("roots").join(format!(
            "{}-{:016x}",
            self.netns,
            path_hash(networks_dir)
        ))
    }

    /// Records that the root of `networks_dir` has networks here.
    pub fn register(&self, networks_dir: &Path) -> Result<()> {
        let entry = self.entry(networks_dir);
        if std::fs::read(&entry).is_ok_and(|b| b == networks_dir.as_os_str().as_encoded_bytes()) {
            return Ok(());
        }
        let tmp = entry.with_extension("tmp");
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(networks_dir.as_os_str().as_encoded_bytes()))
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &entry).map_err(io(&entry))
    }

    /// Takes the root of `networks_dir` off the register.
    pub fn unregister(&self, networks_dir: &Path) {
        let _ = std::fs::remove_file(self.entry(networks_dir));
    }

    /// The networks directories of the other roots registered for this
    /// namespace.
    pub fn others(&self, networks_dir: &Path) -> Vec<PathBuf> {
        let prefix = format!("{}-", self.netns);
        let mut out: Vec<PathBuf> = std::fs::read_dir(Path::new(RUN_DIR).join("roots"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(&prefix) && !name.ends_with(".tmp")
            })
            .filter_map(|e| {
                let bytes = std::fs::read(e.path()).ok()?;
                let dir = PathBuf::from(std::ffi::OsString::from_vec(bytes));
                if !dir.is_dir() {
                    // A root removed with its networks still recorded.
                    let _ = std::fs::remove_file(e.path());
                    return None;
                }
                Some(dir)
            })
            .filter(|p| p != networks_dir)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn applied_path(&self) -> PathBuf {
        Path::new(RUN_DIR)
            .join("roots")
            .join(format!("{}.applied", self.netns))
    }

    /// Records the networks (`<networks dir>/<name>`) whose rules a sync
    /// applied in this namespace; none leaves no file.
    pub fn set_applied(&self, networks: &[PathBuf]) {
        if networks.is_empty() {
            let _ = std::fs::remove_file(self.applied_path());
            return;
        }
        let text: String = networks
            .iter()
            .map(|n| format!("{}\n", n.display()))
            .collect();
        let _ = std::fs::write(self.applied_path(), text);
    }

    /// Whether the last sync in this namespace applied the rules of the
    /// network `<networks dir>/<name>`.
    pub fn applied(&self, network: &Path) -> bool {
        std::fs::read_to_string(self.applied_path())
            .unwrap_or_default()
            .lines()
            .any(|l| Path::new(l) == network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_hash_is_stable_and_tells_paths_apart() {
        assert_eq!(path_hash(Path::new("")), 0xcbf2_9ce4_8422_2325);
        assert_ne!(
            path_hash(Path::new("/var/lib/berth/networks")),
            path_hash(Path::new("/tmp/x/networks"))
        );
    }

    #[test]
    fn interfaces_lists_loopback() {
        assert!(interfaces().iter().any(|i| i == "lo"), "{:?}", interfaces());
    }
}
