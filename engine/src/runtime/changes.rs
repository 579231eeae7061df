//! What a container changed (`diff`: its overlay upper directory read
//! against the image's layers) and its whole filesystem as a tarball
//! (`export`), as `docker diff` and `docker export` give them.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::rootfs::ContainerFs;
use crate::{Error, Result};

use super::run::find;

/// One change: `A`dded, `C`hanged or `D`eleted, and the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `A`, `C` or `D`.
    pub kind: char,
    /// The path inside the container.
    pub path: String,
}

/// An overlayfs whiteout: a character device numbered 0/0.
fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn walk(
    upper: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    out: &mut Vec<Change>,
    depth: usize,
) -> Result<()> {
    if depth > 256 {
        return Err(Error::Conflict("diff: directories nest too deeply".into()));
    }
    let dir = upper.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let rel = rel.join(e.file_name());
        let shown = format!("/{}", rel.display());
        let m = std::fs::symlink_metadata(e.path()).map_err(|err| Error::io(e.path(), err))?;
        if is_whiteout(&m) {
            out.push(Change {
                kind: 'D',
                path: shown,
            });
            continue;
        }
        let in_image = lowers
            .iter()
            .any(|l| std::fs::symlink_metadata(l.join(&rel)).is_ok());
        out.push(Change {
            kind: if in_image { 'C' } else { 'A' },
            path: shown,
        });
        if m.is_dir() {
            walk(upper, &rel, lowers, out, depth + 1)?;
        }
    }
    Ok(())
}

/// The changes of container `name` against its image, sorted by path.
pub fn diff(root: &Path, name: &str) -> Result<Vec<Change>> {
    let (dir, record) = find(root, name)?;
    let fs = ContainerFs::create(&dir.join("fs"))?;
    let mut out = Vec::new();
    walk(&fs.upper, Path::new(""), &record.layers, &mut out, 0)?;
    Ok(out)
}

/// Writes container `name`'s filesystem (image and changes, not volumes)
/// to `out` as a tarball. A stopped container's root is mounted for the
/// time it takes.
pub fn export(root: &Path, name: &str, out: impl Write) -> Result<()> {
    let (dir, record) = find(root, name)?;
    let fs = ContainerFs::create(&dir.join("fs"))?;
    // Mounted already (running) when the merged root sits on another
    // device than its parent.
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    let mounted = dev(&fs.merged) != fs.merged.parent().and_then(dev);
    if !mounted {
        fs.mount(&record.layers)?;
    }
    let result = (|| {
        let mut b = tar::Builder::new(out);
        // Links inside the container stay links: nothing is followed out.
        b.follow_symlinks(false);
        b.append_dir_all(".", &fs.merged)
            .map_err(|e| Error::Archive(format!("exporting {name}: {e}")))?;
        b.into_inner()
            .map_err(|e| Error::Archive(format!("exporting {name}: {e}")))?
            .flush()
            .map_err(|e| Error::Archive(format!("exporting {name}: {e}")))
    })();
    if !mounted {
        fs.unmount()?;
    }
    result
}
