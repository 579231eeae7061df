//! Unpacking one image layer into an empty directory, safe against hostile
//! archives.
//!
//! The `tar` crate is used as a parser only. Every filesystem operation is
//! relative to a directory file descriptor: parents are resolved with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so no entry, symlink
//! or hard link can reach outside the layer; files are created with
//! `O_EXCL | O_NOFOLLOW`; ownership, modes and times are set on descriptors
//! or with `AT_SYMLINK_NOFOLLOW`. Names with `..` or a leading `/` are
//! refused, and so is anything that resolves through a symlink leading out.
//! Whiteouts become overlayfs whiteouts. Sizes, entry counts and path lengths
//! are capped, and the decompressed stream is hashed to give the layer's
//! diff ID.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags, makedev,
};
use sha2::{Digest as _, Sha256};

use super::digest::Digest;
use crate::error::{Error, Result};

/// Caps that bound what one layer may cost.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Entries in one layer.
    pub max_entries: u64,
    /// Bytes of the decompressed stream.
    pub max_bytes: u64,
    /// Bytes in one entry's path.
    pub max_path: usize,
    /// Components in one entry's path.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 2_000_000,
            max_bytes: 64 << 30,
            max_path: 4096,
            max_depth: 256,
        }
    }
}

/// What unpacking produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream.
    pub size: u64,
}

/// Hashes (unless told not to) and counts what passes through, and stops
/// at a byte cap.
struct Hashing<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
    cap: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        if self.count > self.cap {
            return Err(io::Error::other(format!(
                "layer expands to more than {} bytes",
                self.cap
            )));
        }
        Ok(n)
    }
}

/// Wraps `reader` in the decompressor its magic bytes call for (gzip, zstd,
/// or none). Decompression is done in-process: nothing from an image runs.
pub fn decompressed<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    decompressing(reader).map(|(r, _)| r)
}

/// [`decompressed`], and whether the stream was compressed.
fn decompressing<'a>(reader: impl Read + 'a) -> Result<(Box<dyn Read + 'a>, bool)> {
    let mut buf = BufReader::with_capacity(1 << 16, reader);
    let head = buf.fill_buf().map_err(Error::Read)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((Box::new(flate2::read::MultiGzDecoder::new(buf)), true))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let dec = ruzstd::decoding::StreamingDecoder::new(buf)
            .map_err(|e| Error::Layer(format!("invalid zstd stream: {e}")))?;
        Ok((Box::new(dec), true))
    } else {
        Ok((Box::new(buf), false))
    }
}

/// Unpacks a (possibly compressed) layer into `dest`, which must be an empty
/// directory. On error `dest` may hold a partial layer: the caller discards it.
pub fn unpack_layer(reader: impl Read, dest: &Path, limits: &Limits) -> Result<Unpacked> {
    let (diff_id, size) = unpack(reader, dest, limits, true)?;
    let diff_id = diff_id.ok_or_else(|| Error::Layer("the layer was not hashed".into()))?;
    Ok(Unpacked { diff_id, size })
}

/// [`unpack_layer`] for a caller that hashes what it reads itself: an
/// uncompressed stream is not hashed twice, and its diff ID is `None` (the
/// caller's digest of it).
pub fn unpack_layer_hashed_by_caller(
    reader: impl Read,
    dest: &Path,
    limits: &Limits,
) -> Result<(Option<Digest>, u64)> {
    unpack(reader, dest, limits, false)
}

fn unpack(
    reader: impl Read,
    dest: &Path,
    limits: &Limits,
    hash_plain: bool,
) -> Result<(Option<Digest>, u64)> {
    let (stream, compressed) = decompressing(reader)?;
    let mut hashing = Hashing {
        inner: stream,
        hasher: (compressed || hash_plain).then(Sha256::new),
        count: 0,
        cap: limits.max_bytes,
    };
    let root = rustix::fs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(dest, e.into()))?;
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let mut unpacker = Unpacker {
            root: &root,
            limits,
            entries: 0,
            dir_times: Vec::new(),
            open: Vec::new(),
            buf: vec![0; 1 << 18],
        };
        // A layer without a `./` entry still gets a traversable root.
        rustix::fs::fchmod(unpacker.root_dir()?, Mode::from_raw_mode(0o755))
            .map_err(|e| Error::Layer(format!("setting the layer root's mode: {e}")))?;
        let entries = archive.entries().map_err(Error::Read)?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::Layer(format!("invalid tar stream: {e}")))?;
            unpacker.entry(entry)?;
        }
        unpacker.finish()?;
    }
    // The diff ID covers the whole stream, trailing blocks included.
    io::copy(&mut hashing, &mut io::sink()).map_err(Error::Read)?;
    let diff_id = match hashing.hasher {
        Some(h) => {
            let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            Some(Digest::sha256_hex(&hex)?)
        }
        None => None,
    };
    Ok((diff_id, hashing.count))
}

struct Unpacker<'a> {
    root: &'a OwnedFd,
    limits: &'a Limits,
    entries: u64,
    /// Directories whose times are set last, once nothing more is added.
    dir_times: Vec<(Vec<String>, Timestamps)>,
    /// The directories along the last entry's parent path, each with its
    /// name: the next entry mostly shares them.
    open: Vec<(String, OwnedFd)>,
    /// A regular file's content passes through here.
    buf: Vec<u8>,
}

fn reject(name: &str, why: &str) -> Error {
    Error::Layer(format!("layer entry {name:?}: {why}"))
}

/// Splits an entry name into safe components, refusing escapes.
fn components(raw: &[u8], limits: &Limits) -> std::result::Result<Vec<String>, String> {
    if raw.is_empty() {
        return Err("empty name".into());
    }
    if raw.contains(&0) {
        return Err("name contains a NUL byte".into());
    }
    if raw.len() > limits.max_path {
        return Err(format!("name longer than {} bytes", limits.max_path));
    }
    let name = std::str::from_utf8(raw).map_err(|_| "name is not UTF-8".to_string())?;
    if name.starts_with('/') {
        return Err("absolute path".into());
    }
    let mut out = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("path escapes the layer (`..`)".into()),
            c => out.push(c.to_string()),
        }
    }
    if out.len() > limits.max_depth {
        return Err(format!("deeper than {} levels", limits.max_depth));
    }
    Ok(out)
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn is_errno(e: &rustix::io::Errno, want: rustix::io::Errno) -> bool {
    *e == want
}

impl Unpacker<'_> {
    fn root_dir(&self) -> Result<OwnedFd> {
        rustix::fs::openat(
            self.root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Layer(format!("opening the layer root: {e}")))
    }

    /// Opens (creating as needed) the directory `comps` below the root,
    /// refusing any resolution that leaves the root.
    fn dir(&self, comps: &[String], name: &str) -> Result<OwnedFd> {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut cur = rustix::fs::openat2(self.root, ".", flags, Mode::empty(), resolve)
            .map_err(|e| Error::Layer(format!("opening the layer root: {e}")))?;
        for (i, comp) in comps.iter().enumerate() {
            let path = comps[..=i].join("/");
            match rustix::fs::openat2(self.root, &path, flags, Mode::empty(), resolve) {
                Ok(fd) => cur = fd,
                Err(e) if is_errno(&e, rustix::io::Errno::NOENT) => {
                    match rustix::fs::mkdirat(&cur, comp.as_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        Err(e) if is_errno(&e, rustix::io::Errno::EXIST) => {
                            // A dangling symlink sits where a directory is needed.
                            return Err(reject(name, "parent is a symlink that leads nowhere"));
                        }
                        Err(e) => return Err(reject(name, &format!("creating {path}: {e}"))),
                    }
                    cur = rustix::fs::openat2(self.root, &path, flags, Mode::empty(), resolve)
                        .map_err(|e| reject(name, &format!("opening {path}: {e}")))?;
                }
                Err(e) if is_errno(&e, rustix::io::Errno::XDEV) => {
                    return Err(reject(
                        name,
                        &format!("{path} is a symlink leading outside the layer"),
                    ));
                }
                Err(e) if is_errno(&e, rustix::io::Errno::NOTDIR) => {
                    return Err(reject(name, &format!("{path} is not a directory")));
                }
                Err(e) => return Err(reject(name, &format!("opening {path}: {e}"))),
            }
        }
        Ok(cur)
    }

    /// The directory `parents` below the root, as [`Unpacker::dir`] would
    /// open it. The directories along the last path stay open, so an entry
    /// costs one step per component that differs from the last one's: each
    /// step opens one name below the one before, refusing symlinks, and a
    /// symlink takes the full resolution from the root. Still right for
    /// later entries: replacing a directory on the path takes an entry
    /// whose parents stop above it, which closes it here first.
    fn parent_dir(&mut self, parents: &[String], name: &str) -> Result<&OwnedFd> {
        let same = self
            .open
            .iter()
            .zip(parents)
            .take_while(|((open, _), want)| open == *want)
            .count();
        self.open.truncate(same);
        for i in same..parents.len() {
            let fd = self.step(&parents[..=i], name)?;
            self.open.push((parents[i].clone(), fd));
        }
        Ok(self.open.last().map_or(self.root, |(_, fd)| fd))
    }

    /// Opens (creating it if missing) the last of `comps`, the others being
    /// open on `self.open`.
    fn step(&self, comps: &[String], name: &str) -> Result<OwnedFd> {
        let below = self.open.last().map_or(self.root, |(_, fd)| fd);
        let comp = comps[comps.len() - 1].as_str();
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let open = || rustix::fs::openat2(below, comp, flags, Mode::empty(), resolve);
        match open() {
            Ok(fd) => Ok(fd),
            Err(e) if is_errno(&e, rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(below, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    Err(e) if is_errno(&e, rustix::io::Errno::EXIST) => {}
                    Err(e) => {
                        return Err(reject(name, &format!("creating {}: {e}", comps.join("/"))));
                    }
                }
                match open() {
                    Ok(fd) => Ok(fd),
                    Err(_) => self.dir(comps, name),
                }
            }
            // A symlink (followed only inside the layer) or an error the
            // full resolution names.
            Err(_) => self.dir(comps, name),
        }
    }

    /// Removes whatever is at `leaf` in `parent`, unless it is a directory
    /// and `keep_dir` is set. Returns whether a directory was kept.
    fn clear(parent: &OwnedFd, leaf: &str, keep_dir: bool) -> Result<bool> {
        match rustix::fs::statat(parent, leaf, AtFlags::SYMLINK_NOFOLLOW) {
            Err(_) => Ok(false),
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && keep_dir {
                    return Ok(true);
                }
                if is_dir {
                    remove_tree(parent, leaf)?;
                } else {
                    rustix::fs::unlinkat(parent, leaf, AtFlags::empty())
                        .map_err(|e| Error::Layer(format!("replacing {leaf}: {e}")))?;
                }
                Ok(false)
            }
        }
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(Error::Layer(format!(
                "layer has more than {} entries",
                self.limits.max_entries
            )));
        }
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let comps = components(&raw, self.limits).map_err(|why| reject(&shown, &why))?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header
            .uid()
            .ok()
            .and_then(|u| u32::try_from(u).ok())
            .unwrap_or(0);
        let gid = header
            .gid()
            .ok()
            .and_then(|g| u32::try_from(g).ok())
            .unwrap_or(0);
        let mtime = header.mtime().unwrap_or(0);
        let owner = (
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        );
        let Some((leaf, parents)) = comps.split_last() else {
            // The layer root itself (`./`): only its metadata.
            if kind == tar::EntryType::Directory {
                let fd = self.root_dir()?;
                Self::metadata(&fd, &shown, owner, mode, &[])?;
            }
            return Ok(());
        };

        // Whiteouts: overlayfs markers in this layer's own directory.
        if let Some(target) = leaf.strip_prefix(".wh.") {
            let parent = self.parent_dir(parents, &shown)?;
            if target == ".wh..opq" {
                let dir = rustix::fs::openat(
                    parent,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| reject(&shown, &format!("opening the opaque directory: {e}")))?;
                rustix::fs::fsetxattr(&dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                    .map_err(|e| reject(&shown, &format!("marking the directory opaque: {e}")))?;
                return Ok(());
            }
            if target.is_empty() || target == "." || target == ".." || target.starts_with(".wh.") {
                return Err(reject(&shown, "invalid whiteout name"));
            }
            Self::clear(parent, target, false)?;
            rustix::fs::mknodat(
                parent,
                target,
                FileType::CharacterDevice,
                Mode::empty(),
                makedev(0, 0),
            )
            .map_err(|e| reject(&shown, &format!("creating the whiteout: {e}")))?;
            return Ok(());
        }

        let (root, limits) = (self.root, self.limits);
        let parent = self.parent_dir(parents, &shown)?;
        let leaf = leaf.as_str();
        let xattrs: Vec<(String, Vec<u8>)> = entry
            .pax_extensions()
            .ok()
            .flatten()
            .into_iter()
            .flatten()
            .filter_map(|ext| {
                let ext = ext.ok()?;
                let key = ext.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_string();
                // overlayfs honours trusted.overlay.* from lower layers: only
                // berth writes those. Other trusted.* are not an image's to set.
                if key.starts_with("trusted.") {
                    return None;
                }
                Some((key, ext.value_bytes().to_vec()))
            })
            .collect();

        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(parent, leaf, Mode::from_raw_mode(0o700)) {
                    Err(e) if is_errno(&e, rustix::io::Errno::EXIST) => {
                        if !Self::clear(parent, leaf, true)? {
                            rustix::fs::mkdirat(parent, leaf, Mode::from_raw_mode(0o700)).map_err(
                                |e| reject(&shown, &format!("creating the directory: {e}")),
                            )?;
                        }
                    }
                    other => other
                        .map_err(|e| reject(&shown, &format!("creating the directory: {e}")))?,
                }
                let fd = rustix::fs::openat(
                    parent,
                    leaf,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| reject(&shown, &format!("opening the directory: {e}")))?;
                Self::metadata(&fd, &shown, owner, mode, &xattrs)?;
                self.dir_times.push((comps.clone(), timestamps(mtime)));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                // Into an empty layer most names are new: clear only what
                // is in the way.
                let created = match crate::fsutil::create_new_at(&parent, leaf) {
                    Err(e) if is_errno(&e, rustix::io::Errno::EXIST) => {
                        Self::clear(parent, leaf, false)?;
                        crate::fsutil::create_new_at(&parent, leaf)
                    }
                    other => other,
                };
                let mut file =
                    created.map_err(|e| reject(&shown, &format!("creating the file: {e}")))?;
                loop {
                    let n = entry
                        .read(&mut self.buf)
                        .map_err(|e| reject(&shown, &format!("reading the file: {e}")))?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n])
                        .map_err(|e| reject(&shown, &format!("writing the file: {e}")))?;
                }
                Self::metadata(file.as_fd(), &shown, owner, mode, &xattrs)?;
                rustix::fs::futimens(&file, &timestamps(mtime))
                    .map_err(|e| reject(&shown, &format!("setting times: {e}")))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| reject(&shown, "symlink without a target"))?
                    .into_owned();
                if target.is_empty() || target.contains(&0) {
                    return Err(reject(&shown, "invalid symlink target"));
                }
                Self::clear(parent, leaf, false)?;
                // The target is data: the kernel resolves it inside the
                // container's root, and berth never follows it on the host.
                rustix::fs::symlinkat(target.as_slice(), parent, leaf)
                    .map_err(|e| reject(&shown, &format!("creating the symlink: {e}")))?;
                rustix::fs::chownat(parent, leaf, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| reject(&shown, &format!("setting the owner: {e}")))?;
                rustix::fs::utimensat(parent, leaf, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| reject(&shown, &format!("setting times: {e}")))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| reject(&shown, "hard link without a target"))?
                    .into_owned();
                // Absolute targets name a path inside the layer (as Kaniko
                // writes them); `..` never leaves it.
                let trimmed: Vec<u8> = target.iter().copied().skip_while(|b| *b == b'/').collect();
                let tcomps = components(&trimmed, limits)
                    .map_err(|why| reject(&shown, &format!("link target: {why}")))?;
                if tcomps.is_empty() {
                    return Err(reject(&shown, "hard link to the layer root"));
                }
                let src = rustix::fs::openat2(
                    root,
                    tcomps.join("/"),
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
                )
                .map_err(|e| {
                    reject(
                        &shown,
                        &format!("hard link target {}: {e}", tcomps.join("/")),
                    )
                })?;
                let st = rustix::fs::fstat(&src).map_err(|e| reject(&shown, &e.to_string()))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Err(reject(&shown, "hard link to a directory"));
                }
                Self::clear(parent, leaf, false)?;
                rustix::fs::linkat(&src, "", parent, leaf, AtFlags::EMPTY_PATH)
                    .map_err(|e| reject(&shown, &format!("creating the hard link: {e}")))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match kind {
                    tar::EntryType::Char | tar::EntryType::Block => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if kind == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, makedev(major, minor))
                    }
                    _ => (FileType::Fifo, 0),
                };
                Self::clear(parent, leaf, false)?;
                rustix::fs::mknodat(parent, leaf, ft, Mode::from_raw_mode(mode), dev)
                    .map_err(|e| reject(&shown, &format!("creating the node: {e}")))?;
                rustix::fs::chownat(parent, leaf, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| reject(&shown, &format!("setting the owner: {e}")))?;
                rustix::fs::chmodat(parent, leaf, Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(|e| reject(&shown, &format!("setting the mode: {e}")))?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(reject(&shown, &format!("unsupported entry type {other:?}")));
            }
        }
        Ok(())
    }

    /// Owner, mode (after the owner: chown clears set-id bits) and xattrs.
    fn metadata(
        fd: impl AsFd,
        shown: &str,
        owner: (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>),
        mode: u32,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<()> {
        rustix::fs::fchown(&fd, owner.0, owner.1)
            .map_err(|e| reject(shown, &format!("setting the owner: {e}")))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| reject(shown, &format!("setting the mode: {e}")))?;
        for (k, v) in xattrs {
            if let Err(e) = rustix::fs::fsetxattr(&fd, k.as_str(), v, XattrFlags::empty()) {
                // A capability the kernel refuses is dropped, not fatal.
                if k != "security.capability" {
                    return Err(reject(shown, &format!("setting xattr {k}: {e}")));
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let dir_times = std::mem::take(&mut self.dir_times);
        for (comps, times) in dir_times.iter().rev() {
            let Some((leaf, parents)) = comps.split_last() else {
                continue;
            };
            let shown = comps.join("/");
            let parent = self.parent_dir(parents, &shown)?;
            rustix::fs::utimensat(parent, leaf.as_str(), times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| reject(&shown, &format!("setting times: {e}")))?;
        }
        Ok(())
    }
}

/// Removes a directory tree below `parent` without following symlinks.
pub fn remove_tree(parent: &OwnedFd, name: &str) -> Result<()> {
    // What is gone already counts as removed: another berth process may be
    // removing the same tree (one finishing what a killed one left).
    let gone = |e: &rustix::io::Errno| *e == rustix::io::Errno::NOENT;
    let dir = match rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(Error::Layer(format!("removing {name}: {e}"))),
    };
    let mut names = Vec::new();
    {
        let iter = rustix::fs::Dir::read_from(&dir)
            .map_err(|e| Error::Layer(format!("reading {name}: {e}")))?;
        for ent in iter {
            let ent = ent.map_err(|e| Error::Layer(format!("reading {name}: {e}")))?;
            let n = ent.file_name().to_string_lossy().into_owned();
            if n != "." && n != ".." {
                names.push((n, ent.file_type() == FileType::Directory));
            }
        }
    }
    for (n, is_dir) in names {
        if is_dir {
            remove_tree(&dir, &n)?;
        } else {
            match rustix::fs::unlinkat(&dir, n.as_str(), AtFlags::empty()) {
                Err(e) if !gone(&e) => return Err(Error::Layer(format!("removing {n}: {e}"))),
                _ => {}
            }
        }
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Err(e) if !gone(&e) => Err(Error::Layer(format!("removing {name}: {e}"))),
        _ => Ok(()),
    }
}
