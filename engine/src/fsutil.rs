//! Crash-safe file writes: write to a temporary file in the same directory,
//! fsync it, exchange it with the target, fsync the directory.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path` with `bytes` atomically (readers see the old content or
/// the new, never a part), not durably: for files derived from durable ones
/// (a container's `/etc/hosts`, its health), where an fsync per write
/// would cost every `up` and every healthcheck a disk flush.
pub fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::io(path, std::io::Error::other("no parent directory")))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    if durable {
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    drop(f);
    // Exchanged, not renamed over: ext4 (auto_da_alloc) and XFS flush a
    // file renamed over another at once, 0.1 ms a write here. The old
    // content, now under the temporary name, goes after.
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    // It fails where there is no target yet, or the filesystem cannot.
    let exchanged = renameat_with(CWD, &tmp, CWD, path, RenameFlags::EXCHANGE).is_ok();
    if !exchanged {
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    }
    if durable {
        sync_dir(dir)?;
    }
    match exchanged.then(|| std::fs::remove_file(&tmp)) {
        Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&tmp, e)),
        _ => Ok(()),
    }
}

/// Writes `bytes` over the file at `path` itself (same inode), cut to
/// their length: for a file a running container has bind-mounted, which a
/// replacement would not reach. Not atomic; not truncated first (see
/// `replace`).
pub fn write_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    write_over(path, bytes, false)
}

/// Writes `bytes` as the file at `path`, made if missing, else written
/// over in place and cut to length: for a file no one reads yet (one of a
/// container being created, in a directory reused from a removed one),
/// where a temporary file and a rename would make and free an inode.
pub fn write_fresh(path: &Path, bytes: &[u8]) -> Result<()> {
    write_over(path, bytes, true)
}

fn write_over(path: &Path, bytes: &[u8], create: bool) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all_at(bytes, 0)
        .and_then(|()| f.set_len(bytes.len() as u64))
        .map_err(|e| Error::io(path, e))
}

/// fsyncs a directory so that renames into it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Where a container keeps a part of itself: `dir` itself, or its `sub`
/// where that holds `marker` (the layout an earlier berth made, kept
/// working for the containers it left).
pub fn own_or_older(dir: &Path, sub: &str, marker: &str) -> std::path::PathBuf {
    let old = dir.join(sub);
    if old.join(marker).exists() {
        old
    } else {
        dir.to_path_buf()
    }
}

/// Creates `dir` (and parents) readable by root only.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

/// Creates `name` in the directory `dir` as a new regular file (never
/// following a symlink, never reusing an existing file), mode 0600 until
/// the caller sets the real one.
pub fn create_new_at(
    dir: &impl std::os::fd::AsFd,
    name: &str,
) -> rustix::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map(std::fs::File::from)
}

/// `openat2`, again while the kernel answers EAGAIN: under
/// RESOLVE_IN_ROOT or RESOLVE_BENEATH it does when a rename or mount
/// anywhere on the host raced a `..` it was resolving (a symlink's
/// included), which a busy host makes common.
pub fn openat2<P: rustix::path::Arg + Copy>(
    dir: &impl std::os::fd::AsFd,
    path: P,
    flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
    resolve: rustix::fs::ResolveFlags,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags, mode, resolve) {
            Err(rustix::io::Errno::AGAIN) if tries < 64 => tries += 1,
            done => return done,
        }
    }
}

/// 64 random hex characters (container and volume ids).
pub fn random_id() -> Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_has_the_new_content_and_no_temporary_is_left() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("record.json");
        write_replace(&path, b"first").unwrap();
        write_replace(&path, b"second, longer").unwrap();
        write_atomic(&path, b"third").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["record.json"]);
    }
}
