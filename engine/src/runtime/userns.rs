//! User namespaces (`userns_mode: private`, `run --userns private`), as
//! Docker's `userns-remap` does them: container root is an unprivileged
//! host uid from one range kept per state root, so that volumes keep their
//! owners across re-creations.
//!
//! The image layers and the container's upper directory are idmapped mounts
//! below the overlay (kernel 5.19+, handed to overlayfs as file descriptors,
//! 6.13+): files keep their image owners on disk, container root sees them
//! as its own, and `diff`, `commit` and `export` read the upper directory as
//! for any container. A volume a remapped container creates is owned by the
//! range's root on the host, as Docker makes it.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Ids a container's user namespace maps: container ids `0..size` are host
/// ids `uid..uid + size` (and `gid..gid + size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// Host uid of container root.
    pub uid: u32,
    /// Host gid of container root.
    pub gid: u32,
    /// How many ids are mapped.
    pub size: u32,
}

/// The name of a user in `/etc/subuid` and `/etc/subgid` whose ranges berth
/// uses when they are listed (as Docker uses `dockremap`'s).
const SUBID_USER: &str = "berth";
const SIZE: u32 = 65536;
/// Where berth's choice is kept, under the state root.
const RANGE_FILE: &str = "userns-range";

/// Parses `userns_mode`: `Some(true)` for a private namespace.
pub fn parse_mode(mode: &str) -> Result<bool> {
    match mode {
        "" | "host" => Ok(false),
        "private" => Ok(true),
        other => Err(Error::Conflict(format!(
            "userns_mode {other:?}: berth supports \"host\" (the default) and \"private\" \
             (a user namespace with container root mapped to an unprivileged host uid)"
        ))),
    }
}

/// The state root's range: the one chosen at its first use, else the
/// `berth` entries of `/etc/subuid` and `/etc/subgid`, else the first
/// 65536 ids above 100000 and above every range those files list.
pub fn host_range(root: &Path) -> Result<IdRange> {
    let path = root.join(RANGE_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(range) = serde_json::from_str::<IdRange>(&text)
    {
        return Ok(range);
    }
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    let subgid = std::fs::read_to_string("/etc/subgid").unwrap_or_default();
    let range = match (listed(&subuid), listed(&subgid)) {
        (Some((uid, u)), Some((gid, g))) => IdRange {
            uid,
            gid,
            size: u.min(g),
        },
        _ => {
            let end = [&subuid, &subgid]
                .iter()
                .flat_map(|t| entries(t))
                .map(|(_, start, count)| start.saturating_add(count))
                .max()
                .unwrap_or(0)
                .max(100_000);
            let base = end.div_ceil(SIZE) * SIZE;
            IdRange {
                uid: base,
                gid: base,
                size: SIZE,
            }
        }
    };
    let json = serde_json::to_vec(&range).map_err(|e| Error::Conflict(e.to_string()))?;
    crate::fsutil::write_atomic(&path, &json)?;
    Ok(range)
}

fn entries(text: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    text.lines().filter_map(|l| {
        let mut f = l.trim().split(':');
        let (name, start, count) = (f.next()?, f.next()?, f.next()?);
        Some((name, start.parse().ok()?, count.parse().ok()?))
    })
}

fn listed(text: &str) -> Option<(u32, u32)> {
    entries(text)
        .find(|(name, _, count)| *name == SUBID_USER && *count >= SIZE)
        .map(|(_, start, count)| (start, count))
}

/// A user namespace with `range`'s mapping, held by its fd: what idmapped
/// mounts take. A short-lived child unshares it and waits while the maps
/// are written; the namespace lives on in the fd.
pub fn namespace(range: &IdRange) -> Result<OwnedFd> {
    let err = |what: &str, e: std::io::Error| {
        Error::Conflict(format!("creating a user namespace: {what}: {e}"))
    };
    let (ready_r, ready_w) = pipe().map_err(|e| err("pipe", e))?;
    let (go_r, go_w) = pipe().map_err(|e| err("pipe", e))?;
    // SAFETY: the child only makes async-signal-safe syscalls and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(err("fork", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: raw syscalls on fds this process owns; _exit never returns.
        unsafe {
            // Its copy of the write end would keep the read below from
            // ever seeing the parent's close.
            libc::close(go_w.as_raw_fd());
            let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
            let byte = [u8::from(ok)];
            libc::write(ready_w.as_raw_fd(), byte.as_ptr().cast(), 1);
            let mut b = [0u8];
            libc::read(go_r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(go_r);
    let result = (|| {
        let mut b = [0u8];
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(ready_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n != 1 || b[0] != 1 {
            return Err(err("unshare", std::io::Error::other("the child failed")));
        }
        let map = |file: &str, host: u32| {
            let line = format!("0 {host} {}\n", range.size);
            std::fs::write(format!("/proc/{pid}/{file}"), line).map_err(|e| err(file, e))
        };
        map("uid_map", range.uid)?;
        map("gid_map", range.gid)?;
        let ns =
            std::fs::File::open(format!("/proc/{pid}/ns/user")).map_err(|e| err("ns/user", e))?;
        Ok(OwnedFd::from(ns))
    })();
    drop(go_w);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds that nothing else owns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A detached copy of the mount at `path` whose ids go through `userns`.
pub fn idmapped(path: &Path, userns: BorrowedFd<'_>) -> Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let err = |what: &str, e: std::io::Error| {
        Error::io(
            path,
            std::io::Error::other(format!("idmapped mount: {what}: {e}")),
        )
    };
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| err("open_tree", e.into()))?;
    // struct mount_attr { attr_set, attr_clr, propagation, userns_fd }
    let attr: [u64; 4] = [libc::MOUNT_ATTR_IDMAP, 0, 0, userns.as_raw_fd() as u64];
    // SAFETY: `tree` is an open mount fd, the path an empty C string and
    // `attr` a mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if r < 0 {
        return Err(err("mount_setattr", std::io::Error::last_os_error()));
    }
    Ok(tree)
}

/// Runs `work` as the range's root, for work done through idmapped mounts,
/// where host root has no id: on a thread of its own (credentials are per
/// thread) whose file system ids are the range's root's, capabilities kept.
pub fn as_root_of<T: Send>(range: &IdRange, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            act_as_root_of(range)?;
            work()
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Conflict("work as the remapped root panicked".into())))
    })
}

fn act_as_root_of(range: &IdRange) -> Result<()> {
    const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
    // SAFETY: raw syscalls changing only this thread's credentials.
    unsafe {
        if libc::prctl(libc::PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP) != 0 {
            return Err(Error::Conflict(format!(
                "keeping capabilities: {}",
                std::io::Error::last_os_error()
            )));
        }
        libc::syscall(libc::SYS_setfsgid, range.gid);
        libc::syscall(libc::SYS_setfsuid, range.uid);
        // Both calls return the previous id: asking again tells the current.
        let (uid, gid) = (
            libc::syscall(libc::SYS_setfsuid, u32::MAX),
            libc::syscall(libc::SYS_setfsgid, u32::MAX),
        );
        if uid != libc::c_long::from(range.uid) || gid != libc::c_long::from(range.gid) {
            return Err(Error::Conflict(
                "could not take the remapped root's file system ids".into(),
            ));
        }
    }
    Ok(())
}

/// Lets container root (the range's host uid) reach `dir`, a directory
/// the runtime opens by path from inside the namespace: search, not read.
pub fn traversable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert!(!parse_mode("host").unwrap());
        assert!(!parse_mode("").unwrap());
        assert!(parse_mode("private").unwrap());
        let e = parse_mode("keep-id").unwrap_err().to_string();
        assert!(e.contains("keep-id") && e.contains("private"), "{e}");
    }

    #[test]
    fn subid_entries() {
        let text = "alice:100000:65536\nberth:300000:65536\nbad line\n";
        assert_eq!(listed(text), Some((300000, 65536)));
        assert_eq!(listed("berth:300000:100\n"), None);
        assert_eq!(entries(text).count(), 2);
    }
}
