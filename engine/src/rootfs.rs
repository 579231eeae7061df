//! Container root filesystems: an overlayfs with the image's layers below
//! and the container's own upper and work directories above (its
//! copy-on-write layer).
//!
//! Layers are added one at a time with the new mount API's `lowerdir+`, so
//! an image may have more layers than one mount option string could name.

use std::path::{Path, PathBuf};

use std::os::fd::AsFd;

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags, fsconfig_create,
    fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
};

use crate::error::{Error, Result};
use crate::fsutil::private_dir;
use crate::runtime::userns::{self, IdRange};

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
    /// The layout in a container's state directory: `upper`, `work` and
    /// `merged` in it, or in its `fs/` for a container an earlier berth
    /// made (a directory more for every container).
    pub fn of(dir: &Path) -> ContainerFs {
        let base = crate::fsutil::own_or_older(dir, "fs", "upper");
        ContainerFs {
            upper: base.join("upper"),
            work: base.join("work"),
            merged: base.join("merged"),
        }
    }

    /// [`Self::of`], its directories made if missing.
    pub fn create(dir: &Path) -> Result<ContainerFs> {
        let fs = Self::of(dir);
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

    /// Mounts the overlay of `layers` (bottom first) at `merged`; with
    /// `userns`, every layer and the upper directory through idmapped
    /// mounts (see [`crate::runtime::userns`]).
    ///
    /// A `volatile` overlay is for a container removed when it exits: its
    /// unmount does not sync the upper directory's whole filesystem (a
    /// disk flush, 0.3 ms of every `run --rm` here, more on a busy disk),
    /// and after a crash the kernel refuses to mount its upper again,
    /// which only a container that is thrown away can afford.
    pub fn mount(
        &self,
        layers: &[PathBuf],
        userns: Option<&IdRange>,
        volatile: bool,
    ) -> Result<()> {
        match userns {
            None => self.mount_overlay(layers, None, volatile),
            // overlayfs works in its upper directory with its creator's
            // credentials, which the idmapped upper must map: those of the
            // remapped root (host root maps to nothing there).
            Some(range) => {
                // Mount points for the layers, made as root: the remapped
                // root must own nothing outside its layer and volumes.
                for i in 0..layers.len() {
                    private_dir(&self.lower(i))?;
                }
                userns::as_root_of(range, || self.mount_overlay(layers, Some(range), volatile))
            }
        }
    }

    /// The mount point of the `i`th idmapped layer (topmost first).
    fn lower(&self, i: usize) -> PathBuf {
        let dir = self.upper.parent().unwrap_or(Path::new("/"));
        dir.join("lower").join(i.to_string())
    }

    fn mount_overlay(
        &self,
        layers: &[PathBuf],
        userns: Option<&IdRange>,
        volatile: bool,
    ) -> Result<()> {
        let err = |what: &str, e: rustix::io::Errno| {
            Error::io(
                &self.merged,
                std::io::Error::other(format!("overlay {what}: {e}")),
            )
        };
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| err("fsopen", e))?;
        if layers.is_empty() {
            return Err(Error::Layer("an image needs at least one layer".into()));
        }
        // Named as Docker's are (`df`, mountinfo); "none" otherwise.
        fsconfig_set_string(&fs, "source", "overlay").map_err(|e| err("source", e))?;
        // A kernel before 5.10 has no volatile overlays: it syncs then.
        if volatile {
            let _ = fsconfig_set_flag(&fs, "volatile");
        }
        match userns {
            None => {
                // lowerdir+ takes the topmost layer first.
                for l in layers.iter().rev() {
                    fsconfig_set_string(&fs, "lowerdir+", l.as_path())
                        .map_err(|e| err(&format!("lowerdir {}", l.display()), e))?;
                }
                fsconfig_set_string(&fs, "upperdir", self.upper.as_path())
                    .map_err(|e| err("upperdir", e))?;
                fsconfig_set_string(&fs, "workdir", self.work.as_path())
                    .map_err(|e| err("workdir", e))?;
            }
            Some(range) => {
                // overlayfs takes layers from mounts in its namespace (a
                // detached one is refused): each idmapped copy is attached
                // below the container's directory while the overlay is
                // created, then detached again; the overlay keeps its own.
                let ns = userns::namespace(range)?;
                let dir = self.upper.parent().unwrap_or(Path::new("/"));
                let mut attached = Vec::new();
                let created = (|| {
                    for (i, l) in layers.iter().rev().enumerate() {
                        let at = self.lower(i);
                        let tree = userns::idmapped(l, ns.as_fd())?;
                        move_mount(
                            &tree,
                            "",
                            rustix::fs::CWD,
                            &at,
                            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                        )
                        .map_err(|e| err("idmapped layer", e))?;
                        attached.push(at.clone());
                        fsconfig_set_string(&fs, "lowerdir+", &at)
                            .map_err(|e| err(&format!("lowerdir {}", l.display()), e))?;
                    }
                    // Upper and work directories must be on one mount.
                    let tree = userns::idmapped(dir, ns.as_fd())?;
                    move_mount(
                        &tree,
                        "",
                        rustix::fs::CWD,
                        dir,
                        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                    )
                    .map_err(|e| err("idmapped upper", e))?;
                    attached.push(dir.to_path_buf());
                    fsconfig_set_string(&fs, "upperdir", self.upper.as_path())
                        .map_err(|e| err("upperdir", e))?;
                    fsconfig_set_string(&fs, "workdir", self.work.as_path())
                        .map_err(|e| err("workdir", e))?;
                    fsconfig_create(&fs).map_err(|e| err("create", e))
                })();
                for at in attached.iter().rev() {
                    let _ = rustix::mount::unmount(at.as_path(), UnmountFlags::DETACH);
                }
                created?;
            }
        }
        if userns.is_none() {
            fsconfig_create(&fs).map_err(|e| err("create", e))?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_an_earlier_berth_made_keeps_its_fs_directory() {
        let t = tempfile::tempdir().unwrap();
        let (new, old) = (t.path().join("new"), t.path().join("old"));
        std::fs::create_dir_all(old.join("fs/upper")).unwrap();
        assert_eq!(ContainerFs::of(&new).upper, new.join("upper"));
        assert_eq!(ContainerFs::of(&old).merged, old.join("fs/merged"));
    }
}
