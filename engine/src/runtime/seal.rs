//! CVE-2019-5736: a container process that gets hold of the runtime's own
//! executable (through `/proc/<pid>/exe` of a runtime process that joined
//! the container, or a `#!/proc/self/exe` entrypoint) could overwrite it and
//! run code as host root on the next start. `libcontainer` clones from the
//! calling process, so berth itself is that runtime, and it leaves this to
//! the embedder (youki does it in its CLI).
//!
//! berth re-executes itself from a detached, read-only bind mount of its
//! own binary: `/proc/<pid>/exe` of every berth process that touches a
//! container then names a file on a read-only mount, which no one can open
//! for writing (EROFS, even as root), whatever tricks with file descriptors
//! are played. Unlike a sealed memfd copy, it is the same inode: no copy of
//! the binary per supervisor, no memory cost.

use std::ffi::{CString, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use rustix::mount::OpenTreeFlags;

use crate::{Error, Result};

/// Whether this process runs from a read-only mount of its executable.
pub fn is_sealed() -> bool {
    rustix::fs::statvfs("/proc/self/exe")
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

fn sys(what: &str, r: libc::c_long) -> Result<()> {
    if r < 0 {
        return Err(Error::Conflict(format!(
            "sealing the berth executable: {what}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Re-executes the current process, with the same arguments and
/// environment, from a read-only bind mount of its executable, unless it
/// already runs from one. Returns only when already sealed or on error.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        "/proc/self/exe",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| Error::Conflict(format!("sealing the berth executable: open_tree: {e}")))?;
    // struct mount_attr { attr_set, attr_clr, propagation, userns_fd }
    let attr: [u64; 4] = [libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NODEV, 0, 0, 0];
    let empty = c"";
    // SAFETY: `tree` is an open mount fd, `empty` a valid C string and
    // `attr` a mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    sys("mount_setattr", r)?;
    let cstrings = |items: Vec<OsString>| -> Result<Vec<CString>> {
        items
            .into_iter()
            .map(|s| {
                CString::new(s.as_bytes())
                    .map_err(|_| Error::Conflict("an argument holds a NUL byte".into()))
            })
            .collect()
    };
    let args = cstrings(std::env::args_os().collect())?;
    let env = cstrings(
        std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                kv
            })
            .collect(),
    )?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into
    // `args` and `env`, which outlive the call; on success it does not
    // return.
    let r = unsafe {
        libc::syscall(
            libc::SYS_execveat,
            tree.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    sys("execveat", r)
}
