//! What a container changed (`diff`: its overlay upper directory read
//! against the image's layers) and its whole filesystem as a tarball
//! (`export`), as `docker diff` and `docker export` give them.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

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

/// Lists the changes below `upper` (a descriptor of the container's upper
/// directory, or of one of its directories at `rel`): each directory is
/// opened from its parent's descriptor and never through a symlink, and the
/// image's layers are looked into within their own roots, so a container
/// swapping a directory for a link to a host path lists nothing of the
/// host's.
fn walk(
    upper: &OwnedFd,
    rel: &Path,
    lowers: &[OwnedFd],
    out: &mut Vec<Change>,
    depth: usize,
) -> Result<()> {
    let io = |e: rustix::io::Errno| Error::Conflict(format!("diff: /{}: {e}", rel.display()));
    if depth > 256 {
        return Err(Error::Conflict("diff: directories nest too deeply".into()));
    }
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(upper).map_err(io)? {
        let name = e.map_err(io)?.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let shown = format!("/{}", rel.display());
        let Ok(st) = rustix::fs::statat(upper, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::CharacterDevice && st.st_rdev == 0 {
            out.push(Change {
                kind: 'D',
                path: shown,
            });
            continue;
        }
        let in_image = lowers.iter().any(|l| {
            crate::fsutil::openat2(
                l,
                rel.as_path(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
            .is_ok()
        });
        out.push(Change {
            kind: if in_image { 'C' } else { 'A' },
            path: shown,
        });
        if ft == FileType::Directory {
            let Ok(sub) = rustix::fs::openat(
                upper,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            walk(&sub, &rel, lowers, out, depth + 1)?;
        }
    }
    Ok(())
}

/// The changes of container `name` against its image, sorted by path.
pub fn diff(root: &Path, name: &str) -> Result<Vec<Change>> {
    let (dir, record) = find(root, name)?;
    let fs = ContainerFs::of(&dir);
    let lowers = record
        .layers
        .iter()
        .map(|l| crate::archive::open_dir(l))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    walk(
        &crate::archive::open_dir(&fs.upper)?,
        Path::new(""),
        &lowers,
        &mut out,
        0,
    )?;
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
        // Owners as the container sees them; outside its range, nobody.
        let unshift = |id: u32, base: u32, size: u32| {
            if (base..base.saturating_add(size)).contains(&id) {
                u64::from(id - base)
            } else {
                65534
            }
        };
        let ids = |uid: u32, gid: u32| match &record.userns {
            None => (u64::from(uid), u64::from(gid)),
            Some(r) => (unshift(uid, r.uid, r.size), unshift(gid, r.gid, r.size)),
        };
        let root = crate::archive::open_dir(&fs.merged)?;
        crate::archive::append_tree(&mut b, &root, crate::archive::Tree::Files(&ids))
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
        let upper = crate::archive::open_dir(&fs.upper)?;
        crate::archive::append_tree(&mut b, &upper, crate::archive::Tree::Layer)?;
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
