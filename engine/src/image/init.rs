//! An image's init layer: one read-only layer, shared by all containers of
//! the image, that holds empty `/etc/hosts`, `/etc/hostname` and
//! `/etc/resolv.conf` where the image has none. The runtime binds each
//! container's own files over them; without this layer it created the
//! three (and a copy of `/etc`) in every container's upper directory,
//! which cost each start and each removal five files on disk, and showed
//! them in `diff` and `commit` (Docker's per-container init layer keeps
//! them out of both too).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The files the runtime binds into every container.
pub const NAME_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// What the image's layers (bottom first) show at `/etc`, as overlayfs
/// merges them: `/etc`'s metadata when it is a directory, and which name
/// files are missing (absent, whited out, or not regular files).
pub struct EtcView {
    /// The topmost `/etc`'s: its owner, mode and times are the merged ones.
    pub meta: std::fs::Metadata,
    /// The name files the layer must supply.
    pub missing: Vec<&'static str>,
}

/// `None` when `/etc` is no directory in the merged view.
pub fn etc_view(layers: &[PathBuf]) -> Option<EtcView> {
    let mut meta = None;
    let mut below = Vec::new();
    for layer in layers.iter().rev() {
        let etc = layer.join("etc");
        let Ok(m) = std::fs::symlink_metadata(&etc) else {
            continue;
        };
        if !m.is_dir() {
            // A whiteout or a file hides every lower `/etc`.
            meta.as_ref()?;
            break;
        }
        let opaque = rustix::fs::lgetxattr(&etc, "trusted.overlay.opaque", &mut [0u8; 1])
            .is_ok_and(|n| n == 1);
        meta.get_or_insert(m);
        below.push(etc);
        if opaque {
            break;
        }
    }
    let meta = meta?;
    let missing = NAME_FILES
        .into_iter()
        .filter(|name| !regular_in(&below, name))
        .collect();
    Some(EtcView { meta, missing })
}

/// Whether the topmost entry named `name` in `dirs` (topmost first) is a
/// regular file; a whiteout (a 0/0 character device) means absent.
fn regular_in(dirs: &[PathBuf], name: &str) -> bool {
    for d in dirs {
        if let Ok(m) = std::fs::symlink_metadata(d.join(name)) {
            let whiteout = m.file_type().is_char_device() && m.rdev() == 0;
            return !whiteout && m.is_file();
        }
    }
    false
}

/// Builds the layer at `dir` (through `tmp`, renamed into place): `/etc`
/// with the image's owner, mode and times, and an empty file for each
/// missing name file.
pub fn build(dir: &Path, tmp: &Path, view: &EtcView) -> Result<()> {
    let etc = tmp.join("etc");
    let made = (|| {
        crate::fsutil::private_dir(&etc)?;
        for name in &view.missing {
            let p = etc.join(name);
            std::fs::write(&p, b"").map_err(|e| Error::io(&p, e))?;
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(|e| Error::io(&p, e))?;
        }
        let io = |e: rustix::io::Errno| Error::io(&etc, e.into());
        rustix::fs::chown(
            &etc,
            Some(rustix::fs::Uid::from_raw(view.meta.uid())),
            Some(rustix::fs::Gid::from_raw(view.meta.gid())),
        )
        .map_err(io)?;
        rustix::fs::chmod(
            &etc,
            rustix::fs::Mode::from_raw_mode(view.meta.mode() & 0o7777),
        )
        .map_err(io)?;
        let at = |s: i64, ns: i64| rustix::fs::Timespec {
            tv_sec: s,
            tv_nsec: ns as _,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &etc,
            &rustix::fs::Timestamps {
                last_access: at(view.meta.atime(), view.meta.atime_nsec()),
                last_modification: at(view.meta.mtime(), view.meta.mtime_nsec()),
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io)?;
        std::fs::rename(tmp, dir).map_err(|e| Error::io(dir, e))
    })();
    if made.is_err() {
        let _ = super::store::remove_dir(tmp);
        // Another start of the same image built it first.
        if dir.join("etc").is_dir() {
            return Ok(());
        }
    }
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_follows_overlay_rules() {
        let t = tempfile::tempdir().unwrap();
        let (low, high) = (t.path().join("low"), t.path().join("high"));
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::write(low.join("etc/hosts"), b"x").unwrap();
        std::fs::write(low.join("etc/hostname"), b"x").unwrap();
        std::fs::create_dir_all(high.join("etc")).unwrap();
        std::os::unix::fs::symlink("/run/resolv.conf", high.join("etc/resolv.conf")).unwrap();
        let v = etc_view(&[low.clone(), high.clone()]).unwrap();
        assert_eq!(
            v.missing,
            vec!["resolv.conf"],
            "a symlink is not a file to bind over"
        );

        let only = etc_view(&[t.path().join("none")]);
        assert!(only.is_none(), "no /etc, no init layer");

        std::fs::remove_dir_all(high.join("etc")).unwrap();
        std::fs::write(high.join("etc"), b"").unwrap();
        assert!(
            etc_view(&[low, high]).is_none(),
            "a file hides the lower /etc"
        );
    }
}
