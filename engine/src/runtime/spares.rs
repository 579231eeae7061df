//! Spare container directories. A removed container's directory, emptied
//! down to its bare `upper`, `work` and `merged` and the files every
//! container has (written over by the next), waits in `<root>/spares` for
//! the next container, which takes it with one rename instead of making
//! four directories and four files. On a disk with online discard (this project's
//! test machine's root) each directory made and removed costs a tenth of a
//! millisecond; a container's start is a dozen of them.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::fsutil::private_dir;
use crate::image::unpack::remove_tree;
use crate::{Error, Result};

/// How many spares wait at most.
const KEEP: usize = 16;

/// The directories a spare keeps.
const KEPT: [&str; 3] = ["upper", "work", "merged"];

/// The files it keeps too, for the next container's prepare to write over
/// in place (see `fsutil::write_fresh`) rather than make anew.
const KEPT_FILES: [&str; 4] = ["hostname", "hosts", "resolv.conf", "config.json"];

fn spares_dir(root: &Path) -> PathBuf {
    root.join("spares")
}

/// Moves a spare to `staging`, locked (as `run::prepare` holds a new
/// container's directory until its record exists: an old unlocked staging
/// directory is a killed creator's); None when there is none (the caller
/// makes the directory). Racing takers each get another, or none.
pub fn take(root: &Path, staging: &Path) -> Option<std::fs::File> {
    let entries = std::fs::read_dir(spares_dir(root)).ok()?;
    entries.flatten().find_map(|e| {
        let dir = std::fs::File::open(e.path()).ok()?;
        rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive).ok()?;
        std::fs::rename(e.path(), staging).ok()?;
        Some(dir)
    })
}

/// Makes the removed container directory `trash` (out of sight, its root
/// unmounted) a spare when fewer than [`KEEP`] wait: everything but the
/// kept directories goes, `upper` is emptied and reset to a fresh one's
/// mode, owner and attributes, overlayfs's `work/work` goes (the kernel
/// makes it again at the next mount). False when the caller should remove
/// `trash` instead; what is half emptied is then removed as well.
pub fn keep(root: &Path, trash: &Path, id: &str) -> bool {
    let spares = spares_dir(root);
    let full = std::fs::read_dir(&spares).is_ok_and(|d| d.count() >= KEEP);
    !full && private_dir(&spares).is_ok() && bare(trash).is_ok() && {
        std::fs::rename(trash, spares.join(id)).is_ok()
    }
}

fn bare(trash: &Path) -> Result<()> {
    let io = |e: rustix::io::Errno| Error::io(trash, e.into());
    let open = |dir: &OwnedFd, name: &str| {
        rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)
    };
    let dir = rustix::fs::open(
        trash,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    // Only the present layout: upper, work and merged right here.
    for kept in KEPT {
        let st = rustix::fs::statat(&dir, kept, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(Error::Conflict(format!("{kept} is no directory")));
        }
    }
    for (name, is_dir) in entries(&dir)? {
        if KEPT.contains(&name.as_str()) || (!is_dir && KEPT_FILES.contains(&name.as_str())) {
            continue;
        }
        if is_dir {
            remove_tree(&dir, &name)?;
        } else {
            rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()).map_err(io)?;
        }
    }
    let upper = open(&dir, "upper")?;
    for (name, is_dir) in entries(&upper)? {
        if is_dir {
            remove_tree(&upper, &name)?;
        } else {
            rustix::fs::unlinkat(&upper, name.as_str(), AtFlags::empty()).map_err(io)?;
        }
    }
    // The container's root was this directory: whatever it did to it
    // (chmod, chown, attributes) the next one must not inherit.
    rustix::fs::fchown(
        &upper,
        Some(rustix::fs::Uid::ROOT),
        Some(rustix::fs::Gid::ROOT),
    )
    .map_err(io)?;
    rustix::fs::fchmod(&upper, Mode::from_raw_mode(0o755)).map_err(io)?;
    let mut names = vec![0u8; 64 * 1024];
    let n = rustix::fs::flistxattr(&upper, &mut names).map_err(io)?;
    for attr in names[..n].split(|b| *b == 0).filter(|a| !a.is_empty()) {
        let attr = std::ffi::CString::new(attr).expect("split at NULs");
        rustix::fs::fremovexattr(&upper, attr.as_c_str()).map_err(io)?;
    }
    remove_tree(&open(&dir, "work")?, "work")?;
    if !entries(&open(&dir, "merged")?)?.is_empty() {
        return Err(Error::Conflict("merged is not empty".into()));
    }
    Ok(())
}

/// A directory's entries but `.` and `..`, and whether each is a
/// directory.
fn entries(dir: &OwnedFd) -> Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for e in rustix::fs::Dir::read_from(dir).map_err(|e| Error::Layer(format!("reading: {e}")))? {
        let e = e.map_err(|e| Error::Layer(format!("reading: {e}")))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            out.push((name, e.file_type() == FileType::Directory));
        }
    }
    Ok(out)
}
