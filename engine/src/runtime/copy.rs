//! `cp` between the host and a running container. Every path inside the
//! container is resolved with `openat2(RESOLVE_IN_ROOT)` under
//! `/proc/<init>/root`: the container's own view, volumes included, where
//! `..` and symlinks (absolute ones too) stay inside its root whatever the
//! container does to them meanwhile. Symlinks are copied as links, never
//! followed; devices, FIFOs and sockets are not copied.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use super::run::{ContainerRecord, find};
use crate::{Error, Result};

/// The container's root as its init sees it.
fn container_root(root: &Path, name: &str) -> Result<(OwnedFd, ContainerRecord)> {
    let (_, record) = find(root, name)?;
    let pid = record
        .pid
        .filter(|_| super::shim::is_up(&record))
        .ok_or_else(|| Error::Conflict(format!("container {name} is not running")))?;
    let path = format!("/proc/{pid}/root");
    let fd = rustix::fs::open(
        path.as_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(&path, e.into()))?;
    Ok((fd, record))
}

fn in_root(root: &OwnedFd, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    crate::fsutil::openat2(
        root,
        if rel.is_empty() { "." } else { rel },
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// `path`'s last component, refusing `..` and empty names.
fn base_name(path: &str) -> Result<String> {
    match Path::new(path.trim_end_matches('/')).file_name() {
        Some(n) => Ok(n.to_string_lossy().into_owned()),
        None => Err(Error::Conflict(format!("cp: {path:?} names no file"))),
    }
}

fn copy_file(src: OwnedFd, dst_dir: &OwnedFd, name: &str, shown: &Path) -> Result<()> {
    let io = |e: rustix::io::Errno| Error::io(shown, e.into());
    let st = rustix::fs::fstat(&src).map_err(io)?;
    remove_non_dir(dst_dir, name, shown)?;
    let mut out = crate::fsutil::create_new_at(dst_dir, name).map_err(io)?;
    std::io::copy(&mut std::fs::File::from(src), &mut out).map_err(|e| Error::io(shown, e))?;
    rustix::fs::fchmod(&out, Mode::from_raw_mode(st.st_mode & 0o7777)).map_err(io)?;
    Ok(())
}

/// Copies `src` (a file or a directory tree) to `name` in `dst_dir`.
fn copy_any(src: OwnedFd, dst_dir: &OwnedFd, name: &str, shown: &Path) -> Result<()> {
    let io = |e: rustix::io::Errno| Error::io(shown, e.into());
    let st = rustix::fs::fstat(&src).map_err(io)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => copy_file(src, dst_dir, name, shown),
        FileType::Directory => {
            match rustix::fs::mkdirat(dst_dir, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io(e)),
            }
            let dst = rustix::fs::openat(
                dst_dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io)?;
            super::mounts::copy_dir(&src, &dst, shown, 0)?;
            rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777)).map_err(io)?;
            Ok(())
        }
        _ => Err(Error::Conflict(format!(
            "cp: {} is not a regular file or a directory",
            shown.display()
        ))),
    }
}

/// Where a copy to `dest` lands: into `dest` when it is a directory that
/// exists, else as `dest` itself.
fn destination(
    open_dir: impl Fn(&str) -> rustix::io::Result<OwnedFd>,
    dest: &str,
    src: &str,
) -> Result<(OwnedFd, String)> {
    if let Ok(dir) = open_dir(dest) {
        return Ok((dir, base_name(src)?));
    }
    let parent = Path::new(dest.trim_end_matches('/'))
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| ".".into());
    let dir = open_dir(&parent).map_err(|e| Error::Conflict(format!("cp: {parent}: {e}")))?;
    Ok((dir, base_name(dest)?))
}

/// `cp CONTAINER:SRC DEST`.
pub fn copy_out(root: &Path, name: &str, src: &str, dest: &Path) -> Result<()> {
    let (croot, record) = container_root(root, name)?;
    let shown = PathBuf::from(format!("{}:{src}", record.name));
    let failed = |e: rustix::io::Errno| Error::Conflict(format!("cp: {}: {e}", shown.display()));
    let from = in_root(
        &croot,
        src,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK,
    );
    let open_dir = |p: &str| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let (dir, leaf) = destination(open_dir, &dest.to_string_lossy(), src)?;
    match from {
        Ok(from) => copy_any(from, &dir, &leaf, &shown),
        // A symlink comes out as itself, as with `docker cp`: its target
        // means something only inside the container.
        Err(rustix::io::Errno::LOOP) => {
            let link = in_root(&croot, src, OFlags::PATH | OFlags::NOFOLLOW).map_err(failed)?;
            let target = rustix::fs::readlinkat(&link, "", Vec::new()).map_err(failed)?;
            copy_link(&target, &dir, &leaf, &shown)
        }
        Err(e) => Err(failed(e)),
    }
}

/// Makes `name` in `dst_dir` a symlink to `target`, in place of a file or
/// link of that name.
fn copy_link(target: &std::ffi::CStr, dst_dir: &OwnedFd, name: &str, shown: &Path) -> Result<()> {
    let io = |e: rustix::io::Errno| Error::io(shown, e.into());
    remove_non_dir(dst_dir, name, shown)?;
    rustix::fs::symlinkat(target, dst_dir, name).map_err(io)
}

/// Clears the way for a new file `name` in `dst_dir`: removes a file or
/// link there (never writing through it), refuses a directory.
fn remove_non_dir(dst_dir: &OwnedFd, name: &str, shown: &Path) -> Result<()> {
    match rustix::fs::statat(dst_dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(old) if FileType::from_raw_mode(old.st_mode) == FileType::Directory => Err(
            Error::Conflict(format!("cp: {} is a directory", shown.display())),
        ),
        Ok(_) => rustix::fs::unlinkat(dst_dir, name, AtFlags::empty())
            .map_err(|e| Error::io(shown, e.into())),
        Err(_) => Ok(()),
    }
}

/// `cp SRC CONTAINER:DEST`.
pub fn copy_in(root: &Path, src: &Path, name: &str, dest: &str) -> Result<()> {
    let (croot, record) = container_root(root, name)?;
    let shown = PathBuf::from(format!("{}:{dest}", record.name));
    let from = rustix::fs::open(
        src,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(src, e.into()))?;
    let open_dir = |p: &str| in_root(&croot, p, OFlags::RDONLY | OFlags::DIRECTORY);
    let (dir, leaf) = destination(open_dir, dest, &src.to_string_lossy())?;
    match &record.userns {
        None => copy_any(from, &dir, &leaf, &shown),
        // Written as the container's root, the owner its root filesystem
        // and volumes can hold (host root maps to nothing there).
        Some(range) => super::userns::as_root_of(range, || copy_any(from, &dir, &leaf, &shown)),
    }
}
