//! Tar archives of trees a container can change while they are read
//! (volumes, a running container's root): every entry is opened relative
//! to its parent directory's descriptor and never through a symlink, so a
//! directory swapped for a link to a host path mid-walk (catalog FS-08)
//! shows up as that link, not as the host's files.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::{Error, Result};

/// Maps a file's owner and group as stored on disk to those in the
/// archive (user namespaces shift them).
pub type Ids<'a> = &'a dyn Fn(u32, u32) -> (u64, u64);

/// The directory at `path`, as the root of a walk.
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(path, e.into()))
}

/// How a tree is written.
#[derive(Clone, Copy)]
pub enum Tree<'a> {
    /// As it is, owners mapped by the function.
    Files(Ids<'a>),
    /// An overlay upper directory as an image layer: whiteouts become
    /// `.wh.` files and opaque directories get `.wh..wh..opq`.
    Layer,
}

/// Appends everything below `dir` to `b`, names relative to it, in name
/// order. What vanishes or changes type while it is read is left out.
pub fn append_tree<W: Write>(b: &mut tar::Builder<W>, dir: &OwnedFd, how: Tree<'_>) -> Result<()> {
    walk(b, dir, Path::new(""), 0, how)
}

/// An empty regular file entry (a whiteout marker).
fn marker<W: Write>(b: &mut tar::Builder<W>, path: &Path) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_data(&mut h, path, std::io::empty())
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &OwnedFd,
    rel: &Path,
    depth: usize,
    how: Tree<'_>,
) -> Result<()> {
    let failed = |e: std::io::Error| Error::Archive(format!("{}: {e}", rel.display()));
    if depth > 256 {
        return Err(Error::Conflict(format!(
            "{}: directories nest too deeply",
            rel.display()
        )));
    }
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).map_err(|e| failed(e.into()))? {
        let entry = entry.map_err(|e| failed(e.into()))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(std::ffi::OsStr::from_bytes(name).to_owned());
        }
    }
    names.sort();
    for name in names {
        let path = rel.join(&name);
        let at = |flags: OFlags| {
            rustix::fs::openat(
                dir,
                name.as_os_str(),
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        // None for what vanished or turned into something else meanwhile.
        let reopen = |flags: OFlags| match at(flags) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => Ok(None),
            Err(e) => Err(failed(e.into())),
        };
        let meta_of = |fd: &OwnedFd| {
            std::fs::File::from(fd.try_clone().map_err(failed)?)
                .metadata()
                .map_err(failed)
        };
        let Some(handle) = reopen(OFlags::PATH)? else {
            continue;
        };
        let first = meta_of(&handle)?;
        let ft = first.file_type();
        if matches!(how, Tree::Layer) && ft.is_char_device() && first.rdev() == 0 {
            let mut wh = std::ffi::OsString::from(".wh.");
            wh.push(&name);
            marker(b, &rel.join(wh)).map_err(failed)?;
            continue;
        }
        // Files and directories are read through a descriptor of their
        // own, and described as what that descriptor holds.
        let opened = if ft.is_file() {
            reopen(OFlags::RDONLY | OFlags::NONBLOCK)?
        } else if ft.is_dir() {
            reopen(OFlags::RDONLY | OFlags::DIRECTORY)?
        } else {
            Some(handle)
        };
        let Some(fd) = opened else {
            continue;
        };
        let meta = meta_of(&fd)?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        if let Tree::Files(ids) = how {
            let (uid, gid) = ids(meta.uid(), meta.gid());
            h.set_uid(uid);
            h.set_gid(gid);
        }
        if meta.file_type().is_symlink() {
            let target =
                rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|e| failed(e.into()))?;
            let target = std::ffi::OsStr::from_bytes(target.as_bytes());
            b.append_link(&mut h, &path, target).map_err(failed)?;
        } else if meta.is_file() {
            b.append_data(&mut h, &path, std::fs::File::from(fd))
                .map_err(failed)?;
        } else {
            h.set_size(0);
            b.append_data(&mut h, &path, std::io::empty())
                .map_err(failed)?;
            if meta.is_dir() {
                let mut opaque = [0u8; 1];
                if matches!(how, Tree::Layer)
                    && rustix::fs::fgetxattr(&fd, "trusted.overlay.opaque", &mut opaque)
                        .is_ok_and(|n| n == 1 && opaque[0] == b'y')
                {
                    marker(b, &path.join(".wh..wh..opq")).map_err(failed)?;
                }
                walk(b, &fd, &path, depth + 1, how)?;
            }
        }
    }
    Ok(())
}
