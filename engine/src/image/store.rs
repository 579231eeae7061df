//! The image store under `<root>/images`: content-addressed blobs verified
//! on the way in, each layer unpacked once however many images share it, and
//! an index of images and their references, written crash-safely under a
//! file lock.
//!
//! ```text
//! images/blobs/sha256/<hex>     manifests, configurations, layer archives
//! images/layers/<diff-id hex>/  unpacked layers (overlayfs lower dirs)
//! images/index.json             image id → manifest digest and references
//! images/tmp/                   work in progress, discarded on failure
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::config::{Descriptor, ImageConfig, MAX_DOCUMENT, Manifest, media};
use super::digest::Digest;
use super::reference::Reference;
use super::unpack::{Limits, unpack_layer, unpack_layer_hashed_by_caller};
use crate::error::{Error, Result};
use crate::fsutil::{private_dir, sync_dir, write_atomic};

/// One stored image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image id: the digest of its configuration.
    pub id: String,
    /// The digest of its manifest.
    pub manifest: String,
    /// References that name it (normalised).
    pub refs: Vec<String>,
    /// When it entered the store (seconds since the epoch).
    pub loaded: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct Index {
    images: BTreeMap<String, ImageRecord>,
}

/// A summary for `image ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// The record.
    pub record: ImageRecord,
    /// The configuration's `created`, if any.
    pub created: Option<String>,
    /// Uncompressed size of all layers.
    pub size: u64,
}

/// The image store.
#[derive(Clone)]
pub struct ImageStore {
    dir: PathBuf,
    limits: Limits,
}

/// A layer unpacked into a temporary directory, removed unless placed.
pub struct PendingLayer {
    tmp: PathBuf,
    /// The diff ID unpacking computed: `None` for an uncompressed blob,
    /// whose digest it is.
    diff_id: Option<Digest>,
    placed: bool,
}

impl Drop for PendingLayer {
    fn drop(&mut self) {
        if !self.placed {
            let _ = remove_dir(&self.tmp);
        }
    }
}

/// A held lock on the store's index.
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.0, rustix::fs::FlockOperation::Unlock);
    }
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads at most `cap` bytes; more is an error naming `what`.
pub fn read_capped(mut r: impl Read, cap: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    (&mut r)
        .take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(Error::Read)?;
    if buf.len() as u64 > cap {
        return Err(Error::Archive(format!("{what} is larger than {cap} bytes")));
    }
    Ok(buf)
}

/// A writer that hashes what it writes.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W> HashingWriter<W> {
    /// Hashes what goes to `inner`.
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The digest and size of everything written.
    pub fn finish(self) -> Result<(Digest, u64)> {
        let hex: String = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((Digest::sha256_hex(&hex)?, self.size))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads from `inner`, copying what it reads to `out`: one pass over an
/// imported archive both stores and unpacks it.
/// Hands a copy of what is read to another thread.
struct ChannelTee<R> {
    inner: R,
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl<R: Read> Read for ChannelTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.tx
                .send(buf[..n].to_vec())
                .map_err(|_| std::io::Error::other("the blob writer stopped"))?;
        }
        Ok(n)
    }
}

impl ImageStore {
    /// Stores `reader` as a blob and unpacks it as a layer in the same
    /// pass (an archive read once, not written then read back). Returns
    /// the blob's digest and size, and the layer's diff ID. A thread of its
    /// own hashes and writes the blob while this one unpacks; an
    /// uncompressed archive is hashed once, its digest being its diff ID.
    pub fn put_blob_and_layer(
        &self,
        reader: impl Read,
        what: &str,
    ) -> Result<(Digest, u64, Digest)> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(64);
        let tee = ChannelTee { inner: reader, tx };
        self.blob_beside_layer(
            tee,
            what,
            move |file| {
                let mut w = HashingWriter::new(std::io::BufWriter::new(file));
                for chunk in rx {
                    w.write_all(&chunk)?;
                }
                w.flush()?;
                w.inner.get_ref().sync_all()?;
                w.finish().map_err(std::io::Error::other)
            },
            || Ok(()),
        )
    }

    /// [`ImageStore::put_blob_and_layer`] for an archive in a regular
    /// file: the blob thread reads the file at its own offsets, so the
    /// unpacking thread hands it nothing. The file must not change
    /// meanwhile.
    pub fn put_file_blob_and_layer(
        &self,
        archive: &File,
        what: &str,
    ) -> Result<(Digest, u64, Digest)> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let stamp = |f: &File| {
            f.metadata()
                .map(|m| {
                    (
                        m.len(),
                        m.mtime(),
                        m.mtime_nsec(),
                        m.ctime(),
                        m.ctime_nsec(),
                    )
                })
                .map_err(Error::Read)
        };
        let before = stamp(archive)?;
        let source = archive.try_clone().map_err(Error::Read)?;
        self.blob_beside_layer(
            archive,
            what,
            move |file| {
                let mut w = HashingWriter::new(file);
                let mut buf = vec![0; 1 << 20];
                let mut offset = 0;
                loop {
                    let n = source.read_at(&mut buf, offset)?;
                    if n == 0 {
                        break;
                    }
                    w.write_all(&buf[..n])?;
                    offset += n as u64;
                }
                w.inner.sync_all()?;
                w.finish().map_err(std::io::Error::other)
            },
            || {
                if stamp(archive)? == before {
                    Ok(())
                } else {
                    Err(Error::Archive(format!("{what} changed while it was read")))
                }
            },
        )
    }

    /// Unpacks `reader` as a layer while `blob` (on a thread of its own)
    /// writes the blob file it is given and returns its digest and size;
    /// `check` has the last word before both are placed.
    fn blob_beside_layer(
        &self,
        reader: impl Read,
        what: &str,
        blob: impl FnOnce(File) -> std::io::Result<(Digest, u64)> + Send + 'static,
        check: impl FnOnce() -> Result<()>,
    ) -> Result<(Digest, u64, Digest)> {
        let tmp = self.temp_path("blob");
        let layer_tmp = self.temp_path("layer");
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let result = (|| {
            private_dir(&layer_tmp)?;
            let writer = std::thread::spawn(move || blob(file));
            let mut reader = reader;
            let unpacked = unpack_layer_hashed_by_caller(&mut reader, &layer_tmp, &self.limits)
                .and_then(|u| {
                    // Whatever follows the layer's end (compression trailers).
                    std::io::copy(&mut reader, &mut std::io::sink()).map_err(Error::Read)?;
                    Ok(u)
                });
            drop(reader);
            let written = writer
                .join()
                .map_err(|_| Error::Conflict("the blob writer panicked".into()))?
                .map_err(|e| Error::io(&tmp, e));
            // The writer's own error explains a stopped stream best.
            let (digest, size) = written?;
            let (diff_id, _) = unpacked?;
            check()?;
            let diff_id = diff_id.unwrap_or_else(|| digest.clone());
            self.place_layer(&layer_tmp, &diff_id)?;
            let (digest, size) = self.settle(&tmp, (digest, size), None, what)?;
            Ok((digest, size, diff_id))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
            let _ = remove_dir(&layer_tmp);
        }
        result
    }

    /// Opens (creating) the store below `root` (the state root).
    pub fn open(root: &Path) -> Result<ImageStore> {
        let dir = root.join("images");
        for sub in ["blobs/sha256", "layers", "init", "tmp"] {
            private_dir(&dir.join(sub))?;
        }
        Ok(ImageStore {
            dir,
            limits: Limits::default(),
        })
    }

    /// Overrides the unpacking caps (tests use small ones).
    pub fn with_limits(mut self, limits: Limits) -> ImageStore {
        self.limits = limits;
        self
    }

    fn lock(&self) -> Result<Lock> {
        let path = self.dir.join("index.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(&path, e.into()))?;
        Ok(Lock(f))
    }

    fn read_index(&self) -> Result<Index> {
        let path = self.dir.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Store {
                path,
                msg: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index).map_err(|e| Error::Store {
            path: self.dir.join("index.json"),
            msg: e.to_string(),
        })?;
        write_atomic(&self.dir.join("index.json"), &bytes)
    }

    /// A fresh path under `tmp/`.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        self.dir.join("tmp").join(format!(
            "{what}-{}-{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::SeqCst)
        ))
    }

    /// Where a blob lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    /// Where an unpacked layer lives.
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("layers").join(diff_id.hex())
    }

    /// Streams `reader` into the blob store, verifying it against `expected`
    /// when given. Returns the digest and size.
    pub fn put_blob(
        &self,
        reader: impl Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let tmp = self.temp_path("blob");
        let result = (|| {
            let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            let mut w = HashingWriter::new(file);
            let mut r = reader;
            std::io::copy(&mut r, &mut w).map_err(Error::Read)?;
            w.inner.sync_all().map_err(|e| Error::io(&tmp, e))?;
            let hashed = w.finish()?;
            self.settle(&tmp, hashed, expected, what)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Moves a downloaded file into the blob store once its content hashes
    /// to `expected`; the file is removed either way.
    pub fn adopt_blob(&self, path: &Path, expected: &Digest, what: &str) -> Result<u64> {
        let result = (|| {
            let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
            let mut w = HashingWriter::new(std::io::sink());
            std::io::copy(&mut f, &mut w).map_err(Error::Read)?;
            f.sync_all().map_err(|e| Error::io(path, e))?;
            let hashed = w.finish()?;
            self.settle(path, hashed, Some(expected), what)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        }
        result.map(|(_, size)| size)
    }

    /// Moves the file at `tmp`, whose content hashed to `digest`, into the
    /// blob store, unless it is not the `expected` one.
    fn settle(
        &self,
        tmp: &Path,
        (digest, size): (Digest, u64),
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        if let Some(exp) = expected
            && exp != &digest
        {
            return Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: exp.to_string(),
                actual: digest.to_string(),
            });
        }
        let dest = self.blob_path(&digest);
        std::fs::rename(tmp, &dest).map_err(|e| Error::io(&dest, e))?;
        Ok((digest, size))
    }

    /// Stores bytes as a blob.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        self.put_blob(bytes, None, "document")
    }

    /// Reads a (small) blob: manifests and configurations.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(d);
        let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
        read_capped(f, MAX_DOCUMENT, &d.to_string())
    }

    /// Moves an unpacked layer into place under its diff ID, unless one is
    /// there already.
    fn place_layer(&self, tmp: &Path, diff_id: &Digest) -> Result<()> {
        let dest = self.layer_path(diff_id);
        if dest.is_dir() {
            remove_dir(tmp)
        } else {
            std::fs::rename(tmp, &dest).map_err(|e| Error::io(&dest, e))?;
            sync_dir(&self.dir.join("layers"))
        }
    }

    /// Unpacks `reader`, a layer blob still on its way, into a temporary
    /// directory, for [`ImageStore::place_pending`] once the blob is
    /// verified: a pull unpacks while it downloads.
    pub fn unpack_pending(&self, reader: impl Read) -> Result<PendingLayer> {
        let pending = PendingLayer {
            tmp: self.temp_path("layer"),
            diff_id: None,
            placed: false,
        };
        private_dir(&pending.tmp)?;
        let mut pending = pending;
        pending.diff_id = unpack_layer_hashed_by_caller(reader, &pending.tmp, &self.limits)?.0;
        Ok(pending)
    }

    /// Places a layer unpacked while its blob, now verified as `blob`,
    /// downloaded, if it is the `expected` one (the image configuration's
    /// diff ID). An uncompressed blob's digest is its diff ID.
    pub fn place_pending(
        &self,
        mut pending: PendingLayer,
        blob: &Digest,
        expected: &Digest,
        what: &str,
    ) -> Result<()> {
        let actual = pending.diff_id.as_ref().unwrap_or(blob);
        if actual != expected {
            return Err(Error::DigestMismatch {
                what: format!("{what} (diff ID)"),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        self.place_layer(&pending.tmp, expected)?;
        pending.placed = true;
        Ok(())
    }

    /// Moves a downloaded file, hashed on its way in as `hashed`, into the
    /// blob store if it is the `expected` blob; the file is removed either
    /// way.
    pub fn adopt_hashed_blob(
        &self,
        path: &Path,
        hashed: (Digest, u64),
        expected: &Digest,
        what: &str,
    ) -> Result<u64> {
        let result = File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(path, e))
            .and_then(|()| self.settle(path, hashed, Some(expected), what));
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        }
        result.map(|(_, size)| size)
    }

    /// Unpacks a layer archive unless a layer with `expected` diff ID is
    /// already there. The result is verified against `expected` and only then
    /// moved into place. Returns the diff ID.
    pub fn put_layer(
        &self,
        reader: impl Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<Digest> {
        if let Some(d) = expected
            && self.layer_path(d).is_dir()
        {
            return Ok(d.clone());
        }
        let tmp = self.temp_path("layer");
        private_dir(&tmp)?;
        let result = (|| {
            let unpacked = unpack_layer(reader, &tmp, &self.limits)?;
            if let Some(exp) = expected
                && exp != &unpacked.diff_id
            {
                return Err(Error::DigestMismatch {
                    what: format!("{what} (diff ID)"),
                    expected: exp.to_string(),
                    actual: unpacked.diff_id.to_string(),
                });
            }
            self.place_layer(&tmp, &unpacked.diff_id)?;
            Ok(unpacked.diff_id)
        })();
        if result.is_err() {
            let _ = remove_dir(&tmp);
        }
        result
    }

    /// Records an image whose configuration and layer blobs are stored, and
    /// points `refs` at it (taking them from any other image).
    pub fn add_image(
        &self,
        config: &[u8],
        layers: Vec<Descriptor>,
        refs: &[Reference],
    ) -> Result<ImageRecord> {
        let cfg = ImageConfig::parse(config, "image")?;
        let diff_ids = cfg.diff_ids()?;
        if diff_ids.len() != layers.len() {
            return Err(Error::Archive(format!(
                "image configuration lists {} layers, the manifest {}",
                diff_ids.len(),
                layers.len()
            )));
        }
        for d in &diff_ids {
            if !self.layer_path(d).is_dir() {
                return Err(Error::Archive(format!("layer {d} is not unpacked")));
            }
        }
        let (config_digest, config_size) = self.put_bytes(config)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: media::MANIFEST.to_string(),
            config: Descriptor {
                media_type: media::CONFIG.to_string(),
                digest: config_digest.to_string(),
                size: config_size,
                annotations: None,
                platform: None,
            },
            layers,
        };
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Archive(e.to_string()))?;
        let (manifest_digest, _) = self.put_bytes(&bytes)?;
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let names: Vec<String> = refs.iter().map(Reference::to_string).collect();
        for rec in index.images.values_mut() {
            rec.refs.retain(|r| !names.contains(r));
        }
        let id = config_digest.to_string();
        let rec = index
            .images
            .entry(id.clone())
            .or_insert_with(|| ImageRecord {
                id: id.clone(),
                manifest: manifest_digest.to_string(),
                refs: Vec::new(),
                loaded: now(),
            });
        rec.manifest = manifest_digest.to_string();
        for n in names {
            if !rec.refs.contains(&n) {
                rec.refs.push(n);
            }
        }
        rec.refs.sort();
        let rec = rec.clone();
        self.write_index(&index)?;
        Ok(rec)
    }

    /// Every image's references, from the index alone (`list` also
    /// measures each image's layers on disk).
    pub fn references(&self) -> Result<Vec<String>> {
        let index = self.read_index()?;
        Ok(index
            .images
            .values()
            .flat_map(|rec| rec.refs.iter().cloned())
            .collect())
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let index = self.read_index()?;
        let mut out = Vec::new();
        for rec in index.images.values() {
            let cfg = self.config(rec)?;
            let mut size = 0;
            for d in cfg.diff_ids()? {
                size += dir_size(&self.layer_path(&d));
            }
            out.push(ImageSummary {
                record: rec.clone(),
                created: cfg.created.clone(),
                size,
            });
        }
        out.sort_by(|a, b| {
            b.record
                .loaded
                .cmp(&a.record.loaded)
                .then(a.record.id.cmp(&b.record.id))
        });
        Ok(out)
    }

    /// The configuration of an image.
    pub fn config(&self, rec: &ImageRecord) -> Result<ImageConfig> {
        let d = Digest::parse(&rec.id)?;
        ImageConfig::parse(&self.read_blob(&d)?, &rec.id)
    }

    /// The manifest of an image.
    pub fn manifest(&self, rec: &ImageRecord) -> Result<Manifest> {
        let d = Digest::parse(&rec.manifest)?;
        serde_json::from_slice(&self.read_blob(&d)?).map_err(|e| Error::Store {
            path: self.blob_path(&d),
            msg: e.to_string(),
        })
    }

    /// Finds an image by reference, full id or id prefix (at least 4 hex).
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        let index = self.read_index()?;
        if let Ok(r) = Reference::parse(name) {
            let full = r.to_string();
            if let Some(rec) = index.images.values().find(|rec| rec.refs.contains(&full)) {
                return Ok(rec.clone());
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<&ImageRecord> = index
                .images
                .values()
                .filter(|rec| rec.id["sha256:".len()..].starts_with(hex))
                .collect();
            match matches.as_slice() {
                [one] => return Ok((*one).clone()),
                [] => {}
                _ => {
                    return Err(Error::Conflict(format!(
                        "image id prefix {name} is ambiguous"
                    )));
                }
            }
        }
        Err(Error::NoSuchImage(name.to_string()))
    }

    /// Unpacked layer directories of an image, bottom first.
    pub fn layers(&self, rec: &ImageRecord) -> Result<Vec<PathBuf>> {
        Ok(self
            .config(rec)?
            .diff_ids()?
            .iter()
            .map(|d| self.layer_path(d))
            .collect())
    }

    /// The image's init layer (see [`super::init`]) to mount above
    /// `layers`, its own, built on first use; `None` when the image has
    /// every name file or no `/etc` directory.
    pub fn init_layer(&self, rec: &ImageRecord, layers: &[PathBuf]) -> Result<Option<PathBuf>> {
        let dir = self.dir.join("init").join(Digest::parse(&rec.id)?.hex());
        if dir.is_dir() {
            return Ok(Some(dir));
        }
        match super::init::etc_view(layers) {
            Some(view) if !view.missing.is_empty() => {
                super::init::build(&dir, &self.temp_path("init"), &view)?;
                Ok(Some(dir))
            }
            _ => Ok(None),
        }
    }

    /// Adds a reference to an image.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        let rec = self.resolve(source)?;
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let name = target.to_string();
        for r in index.images.values_mut() {
            r.refs.retain(|x| x != &name);
        }
        if let Some(r) = index.images.get_mut(&rec.id) {
            r.refs.push(name);
            r.refs.sort();
        }
        self.write_index(&index)
    }

    /// `image rm`: removes a reference, and the image with its unshared
    /// layers once no reference is left (or at once, by id, with `force`).
    /// `in_use` says whether a container uses an image id. Returns what
    /// happened, one line per reference or image, as `docker rmi` prints it.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        let rec = self.resolve(name)?;
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let mut out = Vec::new();
        let by_ref = Reference::parse(name)
            .ok()
            .map(|r| r.to_string())
            .filter(|r| rec.refs.contains(r));
        let Some(entry) = index.images.get_mut(&rec.id) else {
            return Err(Error::NoSuchImage(name.to_string()));
        };
        if let Some(r) = &by_ref
            && entry.refs.len() > 1
        {
            entry.refs.retain(|x| x != r);
            out.push(format!("Untagged: {r}"));
            self.write_index(&index)?;
            return Ok(out);
        }
        if by_ref.is_none() && entry.refs.len() > 1 && !force {
            return Err(Error::Conflict(format!(
                "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                rec.id
            )));
        }
        if in_use(&rec.id) && !force {
            return Err(Error::Conflict(format!(
                "unable to remove image {name}: it is used by a container (use --force)"
            )));
        }
        for r in &entry.refs {
            out.push(format!("Untagged: {r}"));
        }
        index.images.remove(&rec.id);
        self.write_index(&index)?;
        out.push(format!("Deleted: {}", rec.id));
        self.collect_garbage(&index)?;
        Ok(out)
    }

    /// Removes blobs and layers no image refers to.
    fn collect_garbage(&self, index: &Index) -> Result<()> {
        let mut keep_blobs = std::collections::BTreeSet::new();
        let mut keep_layers = std::collections::BTreeSet::new();
        let mut keep_init = std::collections::BTreeSet::new();
        for rec in index.images.values() {
            let id = Digest::parse(&rec.id)?.hex().to_string();
            keep_blobs.insert(id.clone());
            keep_init.insert(id);
            keep_blobs.insert(Digest::parse(&rec.manifest)?.hex().to_string());
            if let Ok(m) = self.manifest(rec) {
                for l in m.layers {
                    keep_blobs.insert(Digest::parse(&l.digest)?.hex().to_string());
                }
            }
            for d in self.config(rec)?.diff_ids()? {
                keep_layers.insert(d.hex().to_string());
            }
        }
        for (sub, keep) in [
            ("blobs/sha256", &keep_blobs),
            ("layers", &keep_layers),
            ("init", &keep_init),
        ] {
            let dir = self.dir.join(sub);
            for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
                let e = e.map_err(|e| Error::io(&dir, e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let p = e.path();
                if p.is_dir() {
                    remove_dir(&p)?;
                } else {
                    std::fs::remove_file(&p).map_err(|err| Error::io(&p, err))?;
                }
            }
        }
        Ok(())
    }
}

/// Removes a directory tree without following symlinks inside it.
pub fn remove_dir(path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let pfd = rustix::fs::open(
        parent,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io(parent, e.into()))?;
    super::unpack::remove_tree(&pfd, &name)
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(md) = e.metadata() else { continue };
        if md.is_dir() {
            total += dir_size(&e.path());
        } else if md.is_file() {
            total += md.len();
        }
    }
    total
}
