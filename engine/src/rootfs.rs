//! Container root filesystems: an overlayfs with the image's layers below
//! and the container's own upper and work directories above (its
//! copy-on-write layer).
//!
//! Layers are added one at a time with the new mount API's `lowerdir+`, so
//! an image may have more layers than one mount option string could name.

use std::path::{Path, PathBuf};

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags, fsconfig_create,
    fsconfig_set_string, fsmount, fsopen, move_mount,
};

use crate::error::{Error, Result};
use crate::fsutil::private_dir;

/// The directories of one container's root filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerFs {
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs's work directory.
    pub work: PathBuf,
    /// Where the merged root is mounted.
    pub merged: PathBuf,
}

impl ContainerFs {
    /// The layout below a container's state directory (created if missing).
    pub fn create(dir: &Path) -> Result<ContainerFs> {
        let fs = ContainerFs {
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
        };
        for d in [&fs.upper, &fs.work, &fs.merged] {
            private_dir(d)?;
        }
        // The container's root directory must be traversable inside it.
        std::fs::set_permissions(
            &fs.upper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| Error::io(&fs.upper, e))?;
        Ok(fs)
    }

    /// Mounts the overlay of `layers` (bottom first) at `merged`.
    pub fn mount(&self, layers: &[PathBuf]) -> Result<()> {
        let err = |what: &str, e: rustix::io::Errno| {
            Error::io(
                &self.merged,
                std::io::Error::other(format!("overlay {what}: {e}")),
            )
        };
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| err("fsopen", e))?;
        // lowerdir+ takes the topmost layer first.
        for l in layers.iter().rev() {
            fsconfig_set_string(&fs, "lowerdir+", l.as_path())
                .map_err(|e| err(&format!("lowerdir {}", l.display()), e))?;
        }
        if layers.is_empty() {
            return Err(Error::Layer("an image needs at least one layer".into()));
        }
        fsconfig_set_string(&fs, "upperdir", self.upper.as_path())
            .map_err(|e| err("upperdir", e))?;
        fsconfig_set_string(&fs, "workdir", self.work.as_path()).map_err(|e| err("workdir", e))?;
        fsconfig_create(&fs).map_err(|e| err("create", e))?;
        let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
            .map_err(|e| err("fsmount", e))?;
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            self.merged.as_path(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| err("move_mount", e))
    }

    /// Unmounts the merged root; not mounted counts as done.
    pub fn unmount(&self) -> Result<()> {
        match rustix::mount::unmount(self.merged.as_path(), UnmountFlags::DETACH) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => Ok(()),
            Err(e) => Err(Error::io(&self.merged, e.into())),
        }
    }
}
