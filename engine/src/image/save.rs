//! `image save`: images as one tar archive that is at the same time an OCI
//! image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) and a
//! docker-save archive (`manifest.json` pointing into the same blobs), as
//! Docker 25 and later write them, so `docker load`, `berth image load` and
//! OCI tools all read it. Blobs are streamed from the store, once each.

use std::collections::BTreeSet;
use std::io::Write;

use serde_json::json;

use super::config::media;
use super::digest::Digest;
use super::store::ImageStore;
use crate::error::{Error, Result};

fn tar_err(e: std::io::Error) -> Error {
    Error::Archive(format!("writing the archive: {e}"))
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn add_bytes<W: Write>(b: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    b.append_data(&mut header(bytes.len() as u64, 0o644), name, bytes)
        .map_err(tar_err)
}

/// Writes `names` (references or ids) to `out`.
pub fn save(store: &ImageStore, names: &[String], out: impl Write) -> Result<()> {
    let mut b = tar::Builder::new(out);
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(0);
    for d in ["blobs/", "blobs/sha256/"] {
        b.append_data(&mut dir.clone(), d, std::io::empty())
            .map_err(tar_err)?;
    }
    for name in names {
        let rec = store.resolve(name)?;
        let manifest = store.manifest(&rec)?;
        let manifest_digest = Digest::parse(&rec.manifest)?;
        let blobs = std::iter::once((manifest_digest.clone(), None))
            .chain(std::iter::once((
                Digest::parse(&manifest.config.digest)?,
                None,
            )))
            .chain(
                manifest
                    .layers
                    .iter()
                    .map(|l| Digest::parse(&l.digest).map(|d| (d, Some(l.size))))
                    .collect::<Result<Vec<_>>>()?,
            );
        for (digest, _) in blobs {
            if !written.insert(digest.to_string()) {
                continue;
            }
            let path = store.blob_path(&digest);
            let mut f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            let size = f.metadata().map_err(|e| Error::io(&path, e))?.len();
            b.append_data(
                &mut header(size, 0o444),
                format!("blobs/sha256/{}", digest.hex()),
                &mut f,
            )
            .map_err(tar_err)?;
        }
        // The reference asked for, or every one the image has.
        let refs: Vec<String> = match super::reference::Reference::parse(name) {
            Ok(r) if rec.refs.contains(&r.to_string()) => vec![r.to_string()],
            _ => rec.refs.clone(),
        };
        let size = store.read_blob(&manifest_digest)?.len();
        let mut entry = json!({
            "mediaType": media::MANIFEST,
            "digest": rec.manifest,
            "size": size,
        });
        if let Some(r) = refs.first() {
            entry["annotations"] = json!({
                "io.containerd.image.name": r,
                "org.opencontainers.image.ref.name": r.rsplit_once(':').map_or("latest", |(_, t)| t),
            });
        }
        index.push(entry);
        docker.push(json!({
            "Config": format!("blobs/sha256/{}", Digest::parse(&manifest.config.digest)?.hex()),
            "RepoTags": refs,
            "Layers": manifest
                .layers
                .iter()
                .map(|l| Digest::parse(&l.digest).map(|d| format!("blobs/sha256/{}", d.hex())))
                .collect::<Result<Vec<_>>>()?,
        }));
    }
    add_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::INDEX,
        "manifests": index,
    });
    add_bytes(&mut b, "index.json", index.to_string().as_bytes())?;
    add_bytes(
        &mut b,
        "manifest.json",
        serde_json::Value::from(docker).to_string().as_bytes(),
    )?;
    b.into_inner().map_err(tar_err)?.flush().map_err(tar_err)
}
