//! What a container changed (`diff`: its overlay upper directory read
//! against the image's layers) and its whole filesystem as a tarball
//! (`export`), as `docker diff` and `docker export` give them.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::rootfs::ContainerFs;
use crate::{Error, Result};

use super::run::find;
use super::userns::IdRange;

/// One change: `A`dded, `C`hanged or `D`eleted, and the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `A`, `C` or `D`.
    pub kind: char,
    /// The path inside the container.
    pub path: String,
}

/// A directory's entries in name order, for output that does not depend on
/// the filesystem's.
fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
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
    for e in sorted_entries(&upper.join(rel))? {
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
    let fs = ContainerFs::of(&dir);
    let mut out = Vec::new();
    walk(&fs.upper, Path::new(""), &record.layers, &mut out, 0)?;
    Ok(out)
}

/// Writes container `name`'s filesystem (image and changes, not volumes)
/// to `out` as a tarball. A stopped container's root is mounted for the
/// time it takes.
pub fn export(root: &Path, name: &str, out: impl Write) -> Result<()> {
    let (dir, record) = find(root, name)?;
    let fs = ContainerFs::of(&dir);
    // Mounted already (running) when the merged root sits on another
    // device than its parent.
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    let mounted = dev(&fs.merged) != fs.merged.parent().and_then(dev);
    if !mounted {
        fs.mount(&record.layers, record.userns.as_ref(), false)?;
    }
    let result = (|| {
        let mut b = tar::Builder::new(out);
        // Links inside the container stay links: nothing is followed out.
        b.follow_symlinks(false);
        match &record.userns {
            None => b
                .append_dir_all(".", &fs.merged)
                .map_err(|e| Error::Archive(format!("exporting {name}: {e}")))?,
            Some(range) => shifted_entries(&mut b, &fs.merged, Path::new(""), 0, range)?,
        }
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

/// Appends `top/rel` to a tarball with the owners a remapped container
/// sees (the merged root shows host ids in its range).
fn shifted_entries<W: Write>(
    b: &mut tar::Builder<W>,
    top: &Path,
    rel: &Path,
    depth: usize,
    range: &IdRange,
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let tar_err = |e: std::io::Error| Error::Archive(format!("exporting: {e}"));
    if depth > 256 {
        return Err(Error::Conflict(
            "export: directories nest too deeply".into(),
        ));
    }
    let unshift = |id: u32, base: u32| {
        if (base..base.saturating_add(range.size)).contains(&id) {
            u64::from(id - base)
        } else {
            65534
        }
    };
    for e in sorted_entries(&top.join(rel))? {
        let name = rel.join(e.file_name());
        let path = e.path();
        let m = std::fs::symlink_metadata(&path).map_err(|err| Error::io(&path, err))?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&m, tar::HeaderMode::Complete);
        h.set_uid(unshift(m.uid(), range.uid));
        h.set_gid(unshift(m.gid(), range.gid));
        if m.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(|err| Error::io(&path, err))?;
            b.append_link(&mut h, &name, target).map_err(tar_err)?;
        } else if m.is_file() {
            // Never through a link swapped in since the look above.
            let f = rustix::fs::open(
                &path,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|err| Error::io(&path, err.into()))?;
            b.append_data(&mut h, &name, std::fs::File::from(f))
                .map_err(tar_err)?;
        } else {
            h.set_size(0);
            b.append_data(&mut h, &name, std::io::empty())
                .map_err(tar_err)?;
        }
        if m.is_dir() {
            shifted_entries(b, top, &name, depth + 1, range)?;
        }
    }
    Ok(())
}

/// Appends the upper directory `upper/rel` to a layer tarball: overlayfs
/// whiteouts become `.wh.` files and opaque directories `.wh..wh..opq`, as
/// image layers spell them.
fn layer_entries<W: Write>(
    b: &mut tar::Builder<W>,
    upper: &Path,
    rel: &Path,
    depth: usize,
) -> Result<()> {
    let tar_err = |e: std::io::Error| Error::Archive(format!("writing the layer: {e}"));
    if depth > 256 {
        return Err(Error::Conflict(
            "commit: directories nest too deeply".into(),
        ));
    }
    for e in sorted_entries(&upper.join(rel))? {
        let name = rel.join(e.file_name());
        let m = std::fs::symlink_metadata(e.path()).map_err(|err| Error::io(e.path(), err))?;
        if is_whiteout(&m) {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(0);
            h.set_mode(0o644);
            let wh = rel.join(format!(".wh.{}", e.file_name().to_string_lossy()));
            b.append_data(&mut h, wh, std::io::empty())
                .map_err(tar_err)?;
            continue;
        }
        b.append_path_with_name(e.path(), &name).map_err(tar_err)?;
        if m.is_dir() {
            let mut opaque = [0u8; 1];
            if rustix::fs::lgetxattr(e.path().as_path(), "trusted.overlay.opaque", &mut opaque)
                .is_ok_and(|n| n == 1 && opaque[0] == b'y')
            {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                h.set_mode(0o644);
                b.append_data(&mut h, name.join(".wh..wh..opq"), std::io::empty())
                    .map_err(tar_err)?;
            }
            layer_entries(b, upper, &name, depth + 1)?;
        }
    }
    Ok(())
}

/// `commit`: a new image made of container `name`'s image plus one layer
/// holding what the container changed, with `changes` (`CMD`, `ENV` …)
/// applied to its configuration.
pub fn commit(
    root: &Path,
    store: &crate::image::ImageStore,
    name: &str,
    reference: Option<&crate::image::Reference>,
    changes: &[String],
) -> Result<crate::image::ImageRecord> {
    use crate::image::config::{Descriptor, media};
    let (dir, record) = find(root, name)?;
    let fs = ContainerFs::of(&dir);
    let base = store.resolve(&record.image_id)?;
    let manifest = store.manifest(&base)?;
    let mut cfg = store.config(&base)?;
    let tmp = store.temp_path("commit");
    let written = (|| {
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut b = tar::Builder::new(std::io::BufWriter::new(f));
        b.follow_symlinks(false);
        layer_entries(&mut b, &fs.upper, Path::new(""), 0)?;
        b.into_inner()
            .map_err(|e| Error::Archive(format!("writing the layer: {e}")))?
            .flush()
            .map_err(|e| Error::io(&tmp, e))
    })();
    let stored = written.and_then(|()| {
        let f = std::fs::File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        store.put_blob(f, None, "committed layer")
    });
    let _ = std::fs::remove_file(&tmp);
    let (blob, size) = stored?;
    let path = store.blob_path(&blob);
    let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let diff_id = store.put_layer(f, None, "committed layer")?;
    for c in changes {
        crate::image::archive::apply_change(&mut cfg.config, c)?;
    }
    let now = crate::image::archive::rfc3339(super::run::now());
    cfg.created = Some(now.clone());
    cfg.rootfs.diff_ids.push(diff_id.to_string());
    cfg.history.push(serde_json::json!({
        "created": now,
        "created_by": format!("berth container commit {}", record.name),
    }));
    let config = serde_json::to_vec(&cfg).map_err(|e| Error::Archive(e.to_string()))?;
    let mut layers = manifest.layers;
    layers.push(Descriptor {
        media_type: media::LAYER.to_string(),
        digest: blob.to_string(),
        size,
        annotations: None,
        platform: None,
    });
    let refs: Vec<crate::image::Reference> = reference.cloned().into_iter().collect();
    store.add_image(&config, layers, &refs)
}
