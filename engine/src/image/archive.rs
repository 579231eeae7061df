//! `image load` (docker-save tarballs and OCI image layouts, plain or
//! gzip/zstd-compressed) and `image import` (a root filesystem tarball).
//!
//! An archive is untrusted: it is first extracted into the store's `tmp/`
//! with every name checked (no `..`, no absolute paths, no links on disk;
//! symlinked layer files of old docker-save archives are resolved by name,
//! inside the archive only), documents are size-capped, every blob is
//! verified against its digest and every layer against its diff ID before
//! anything is committed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::config::{Descriptor, ImageConfig, MAX_DOCUMENT, RunConfig, media};
use super::digest::Digest;
use super::reference::Reference;
use super::store::{ImageRecord, ImageStore, read_capped, remove_dir};
use super::unpack::decompressed;
use crate::error::{Error, Result};
use crate::fsutil::private_dir;

/// How deep OCI indexes may nest.
const MAX_INDEX_DEPTH: usize = 8;

/// An extracted archive: files on disk, symlinks kept as a name map.
struct Extracted {
    dir: PathBuf,
    links: BTreeMap<String, String>,
}

fn clean_name(raw: &str) -> Option<String> {
    if raw.starts_with('/') || raw.contains('\0') {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    (!out.is_empty()).then(|| out.join("/"))
}

impl Extracted {
    /// The file an archive member name refers to, following the archive's
    /// own symlinks by name (bounded), never leaving the archive.
    fn file(&self, name: &str) -> Result<PathBuf> {
        let mut cur = clean_name(name)
            .ok_or_else(|| Error::Archive(format!("archive member {name:?}: invalid path")))?;
        for _ in 0..16 {
            match self.links.get(&cur) {
                None => {
                    let p = self.dir.join(&cur);
                    if !p.is_file() {
                        return Err(Error::Archive(format!(
                            "archive member {name:?} is missing"
                        )));
                    }
                    return Ok(p);
                }
                Some(target) => {
                    let base = cur.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    let joined = if target.starts_with('/') {
                        target.clone()
                    } else {
                        format!("{base}/{target}")
                    };
                    // Resolve `..` lexically, refusing to climb out of the archive.
                    let mut parts: Vec<&str> = Vec::new();
                    for c in joined.split('/') {
                        match c {
                            "" | "." => {}
                            ".." => {
                                if parts.pop().is_none() {
                                    return Err(Error::Archive(format!(
                                        "archive member {name:?} links outside the archive"
                                    )));
                                }
                            }
                            c => parts.push(c),
                        }
                    }
                    cur = parts.join("/");
                }
            }
        }
        Err(Error::Archive(format!(
            "archive member {name:?}: too many links"
        )))
    }

    fn document(&self, name: &str) -> Result<Vec<u8>> {
        let p = self.file(name)?;
        let f = File::open(&p).map_err(|e| Error::io(&p, e))?;
        read_capped(f, MAX_DOCUMENT, name)
    }
}

fn extract(reader: impl Read, dir: &Path) -> Result<Extracted> {
    let stream = decompressed(reader)?;
    let mut ar = tar::Archive::new(stream);
    let mut links = BTreeMap::new();
    for entry in ar.entries().map_err(Error::Read)? {
        let mut entry = entry.map_err(|e| Error::Archive(format!("invalid archive: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(name) = clean_name(&raw) else {
            if raw.trim_matches(['.', '/']).is_empty() {
                continue;
            }
            return Err(Error::Archive(format!(
                "archive member {raw:?}: invalid path"
            )));
        };
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                private_dir(&dir.join(&name))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let p = dir.join(&name);
                if let Some(parent) = p.parent() {
                    private_dir(parent)?;
                }
                let mut f = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&p)
                    .map_err(|e| Error::io(&p, e))?;
                std::io::copy(&mut entry, &mut f).map_err(Error::Read)?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let target = if entry.header().entry_type() == tar::EntryType::Link {
                    format!("/{target}")
                } else {
                    target
                };
                links.insert(name, target);
            }
            _ => {}
        }
    }
    Ok(Extracted {
        dir: dir.to_path_buf(),
        links,
    })
}

fn layer_media_type(path: &Path) -> Result<&'static str> {
    let mut head = [0u8; 4];
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(if n >= 2 && head[..2] == [0x1f, 0x8b] {
        media::LAYER_GZIP
    } else if n == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
        media::LAYER_ZSTD
    } else {
        media::LAYER
    })
}

/// Stores one layer file: verified unpack, then the archive as a blob.
fn store_layer(
    store: &ImageStore,
    path: &Path,
    diff_id: &Digest,
    what: &str,
) -> Result<Descriptor> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    store.put_layer(f, Some(diff_id), what)?;
    let media_type = layer_media_type(path)?;
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let (digest, size) = store.put_blob(f, None, what)?;
    Ok(Descriptor {
        media_type: media_type.to_string(),
        digest: digest.to_string(),
        size,
        annotations: None,
        platform: None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Loads every image of a docker-save or OCI archive.
pub fn load(store: &ImageStore, reader: impl Read) -> Result<Vec<ImageRecord>> {
    let tmp = store.temp_path("load");
    private_dir(&tmp)?;
    let result = (|| {
        let ex = extract(reader, &tmp)?;
        if ex.file("manifest.json").is_ok() {
            load_docker(store, &ex)
        } else if ex.file("index.json").is_ok() {
            load_oci(store, &ex)
        } else {
            Err(Error::Archive(
                "not an image archive: neither manifest.json (docker save) nor index.json (OCI layout) found".into(),
            ))
        }
    })();
    let _ = remove_dir(&tmp);
    result
}

fn load_docker(store: &ImageStore, ex: &Extracted) -> Result<Vec<ImageRecord>> {
    let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&ex.document("manifest.json")?)
        .map_err(|e| Error::Archive(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let config = ex.document(&e.config)?;
        let cfg = ImageConfig::parse(&config, &e.config)?;
        let diff_ids = cfg.diff_ids()?;
        if diff_ids.len() != e.layers.len() {
            return Err(Error::Archive(format!(
                "{}: configuration lists {} layers, manifest.json {}",
                e.config,
                diff_ids.len(),
                e.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for (name, diff_id) in e.layers.iter().zip(&diff_ids) {
            layers.push(store_layer(store, &ex.file(name)?, diff_id, name)?);
        }
        let refs = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>>>()?;
        out.push(store.add_image(&config, layers, &refs)?);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciDocument {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    ("linux", arch)
}

fn platform_matches(d: &Descriptor) -> bool {
    let (os, arch) = host_platform();
    match &d.platform {
        None => true,
        Some(p) => {
            p.get("os").and_then(|v| v.as_str()) == Some(os)
                && p.get("architecture").and_then(|v| v.as_str()) == Some(arch)
        }
    }
}

fn load_oci(store: &ImageStore, ex: &Extracted) -> Result<Vec<ImageRecord>> {
    let blob = |d: &Digest| -> Result<PathBuf> { ex.file(&format!("blobs/sha256/{}", d.hex())) };
    let doc = |d: &Digest| -> Result<(OciDocument, Vec<u8>)> {
        let p = blob(d)?;
        let bytes = read_capped(
            File::open(&p).map_err(|e| Error::io(&p, e))?,
            MAX_DOCUMENT,
            &d.to_string(),
        )?;
        if &Digest::of(&bytes) != d {
            return Err(Error::DigestMismatch {
                what: "OCI document".into(),
                expected: d.to_string(),
                actual: Digest::of(&bytes).to_string(),
            });
        }
        let parsed =
            serde_json::from_slice(&bytes).map_err(|e| Error::Archive(format!("{d}: {e}")))?;
        Ok((parsed, bytes))
    };
    let index: OciDocument = serde_json::from_slice(&ex.document("index.json")?)
        .map_err(|e| Error::Archive(format!("index.json: {e}")))?;
    let mut out = Vec::new();
    for top in index.manifests.unwrap_or_default() {
        let refs: Vec<Reference> = top
            .annotations
            .as_ref()
            .and_then(|a| {
                a.get("io.containerd.image.name")
                    .or_else(|| a.get("org.opencontainers.image.ref.name"))
            })
            .and_then(|n| {
                n.contains(['/', ':'])
                    .then(|| Reference::parse(n).ok())
                    .flatten()
            })
            .into_iter()
            .collect();
        // Follow nested indexes to the manifest for this host's platform.
        let mut desc = top.clone();
        let mut depth = 0;
        let manifest = loop {
            depth += 1;
            if depth > MAX_INDEX_DEPTH {
                return Err(Error::Archive("OCI indexes nest too deeply".into()));
            }
            let d = Digest::parse(&desc.digest)?;
            let (m, _) = doc(&d)?;
            if m.manifests.is_some() && m.layers.is_some() {
                return Err(Error::Archive(format!(
                    "{d}: document is both an index and a manifest"
                )));
            }
            match m.manifests {
                Some(list) => {
                    desc = list.into_iter().find(platform_matches).ok_or_else(|| {
                        Error::Archive(format!("{d}: no manifest for this platform"))
                    })?;
                }
                None => break m,
            }
        };
        if manifest
            .media_type
            .as_deref()
            .is_some_and(|t| t != media::MANIFEST && t != media::DOCKER_MANIFEST)
        {
            return Err(Error::Archive(format!(
                "unsupported manifest type {:?}",
                manifest.media_type
            )));
        }
        let config_desc = manifest
            .config
            .ok_or_else(|| Error::Archive("manifest without a configuration".into()))?;
        let config_digest = Digest::parse(&config_desc.digest)?;
        let cp = blob(&config_digest)?;
        let config = read_capped(
            File::open(&cp).map_err(|e| Error::io(&cp, e))?,
            MAX_DOCUMENT,
            "configuration",
        )?;
        if Digest::of(&config) != config_digest {
            return Err(Error::DigestMismatch {
                what: "image configuration".into(),
                expected: config_digest.to_string(),
                actual: Digest::of(&config).to_string(),
            });
        }
        let cfg = ImageConfig::parse(&config, "configuration")?;
        let diff_ids = cfg.diff_ids()?;
        let layer_descs = manifest.layers.unwrap_or_default();
        if diff_ids.len() != layer_descs.len() {
            return Err(Error::Archive(
                "layer count differs between manifest and configuration".into(),
            ));
        }
        let mut layers = Vec::new();
        for (l, diff_id) in layer_descs.iter().zip(&diff_ids) {
            let d = Digest::parse(&l.digest)?;
            let p = blob(&d)?;
            let f = File::open(&p).map_err(|e| Error::io(&p, e))?;
            store.put_blob(f, Some(&d), &format!("layer {d}"))?;
            let f = File::open(&p).map_err(|e| Error::io(&p, e))?;
            store.put_layer(f, Some(diff_id), &format!("layer {d}"))?;
            layers.push(Descriptor {
                media_type: l.media_type.clone(),
                digest: d.to_string(),
                size: l.size,
                annotations: None,
                platform: None,
            });
        }
        out.push(store.add_image(&config, layers, &refs)?);
    }
    Ok(out)
}

/// RFC 3339 UTC time of `secs` since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86400;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn exec_form(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(t)
    {
        return v;
    }
    vec!["/bin/sh".into(), "-c".into(), t.to_string()]
}

/// Applies `--change` instructions (Dockerfile syntax) to a run config.
pub fn apply_change(cfg: &mut RunConfig, change: &str) -> Result<()> {
    let (instr, rest) = change
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((change.trim(), ""));
    let rest = rest.trim();
    let bad = |why: &str| Error::Archive(format!("--change {change:?}: {why}"));
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => cfg.cmd = Some(exec_form(rest)),
        "ENTRYPOINT" => cfg.entrypoint = Some(exec_form(rest)),
        "WORKDIR" => cfg.working_dir = Some(rest.to_string()),
        "USER" => cfg.user = Some(rest.to_string()),
        "STOPSIGNAL" => cfg.stop_signal = Some(rest.to_string()),
        "ENV" => {
            let pairs: Vec<(String, String)> = if rest.contains('=') {
                rest.split_whitespace()
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect()
            } else {
                let (k, v) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| bad("ENV needs a value"))?;
                vec![(k.to_string(), v.trim().to_string())]
            };
            let env = cfg.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs {
                env.retain(|e| e.split('=').next() != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
        }
        "EXPOSE" => {
            let ports = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in rest.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                ports.insert(p, serde_json::json!({}));
            }
        }
        "LABEL" => {
            let labels = cfg.labels.get_or_insert_with(BTreeMap::new);
            for kv in rest.split_whitespace() {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| bad("LABEL needs key=value"))?;
                labels.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        "VOLUME" => {
            let vols = cfg.volumes.get_or_insert_with(BTreeMap::new);
            let list: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest).map_err(|e| bad(&e.to_string()))?
            } else {
                rest.split_whitespace().map(String::from).collect()
            };
            for v in list {
                vols.insert(v, serde_json::json!({}));
            }
        }
        other => return Err(bad(&format!("unsupported instruction {other}"))),
    }
    Ok(())
}

/// `image import`: a root filesystem tarball becomes a one-layer image.
pub fn import(
    store: &ImageStore,
    reader: impl Read,
    reference: Option<&Reference>,
    changes: &[String],
) -> Result<ImageRecord> {
    let stored = store.put_blob_and_layer(reader, "imported archive")?;
    imported(store, stored, reference, changes)
}

/// [`import`] of an archive in a file: a regular file is read twice at
/// once, by the unpacking and by the blob's writer, rather than passed
/// from one to the other.
pub fn import_file(
    store: &ImageStore,
    file: &std::fs::File,
    reference: Option<&Reference>,
    changes: &[String],
) -> Result<ImageRecord> {
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return import(store, file, reference, changes);
    }
    let stored = store.put_file_blob_and_layer(file, "imported archive")?;
    imported(store, stored, reference, changes)
}

/// The image around an imported layer.
fn imported(
    store: &ImageStore,
    (blob, size, diff_id): (Digest, u64, Digest),
    reference: Option<&Reference>,
    changes: &[String],
) -> Result<ImageRecord> {
    let path = store.blob_path(&blob);
    let mut run = RunConfig::default();
    for c in changes {
        apply_change(&mut run, c)?;
    }
    let (os, arch) = host_platform();
    let created = rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let cfg = ImageConfig {
        architecture: arch.to_string(),
        os: os.to_string(),
        created: Some(created.clone()),
        config: run,
        rootfs: super::config::RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.to_string()],
        },
        history: vec![serde_json::json!({"created": created, "created_by": "berth image import"})],
    };
    let config = serde_json::to_vec(&cfg).map_err(|e| Error::Archive(e.to_string()))?;
    let desc = Descriptor {
        media_type: layer_media_type(&path)?.to_string(),
        digest: blob.to_string(),
        size,
        annotations: None,
        platform: None,
    };
    let refs: Vec<Reference> = reference.cloned().into_iter().collect();
    store.add_image(&config, vec![desc], &refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn changes() {
        let mut c = RunConfig::default();
        apply_change(&mut c, "CMD [\"httpd\", \"-f\"]").unwrap();
        apply_change(&mut c, "ENV A=1 B=2").unwrap();
        apply_change(&mut c, "ENTRYPOINT /bin/sh").unwrap();
        apply_change(&mut c, "EXPOSE 80").unwrap();
        assert_eq!(c.cmd.unwrap(), ["httpd", "-f"]);
        assert_eq!(c.env.unwrap(), ["A=1", "B=2"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "/bin/sh"]);
        assert!(c.exposed_ports.unwrap().contains_key("80/tcp"));
        assert!(apply_change(&mut RunConfig::default(), "RUN rm -rf /").is_err());
    }
}
