//! `-v` mounts of a container: host directories, named volumes and
//! anonymous volumes. A volume mounted over image content for the first
//! time is filled with that content (unless `nocopy`), as Docker does; the
//! copy reads the image through descriptors resolved inside the container
//! root, never follows links, and never opens devices or FIFOs.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use super::spec::Bind;
use crate::error::{Error, Result};
use crate::volume::VolumeStore;

/// One `-v` request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MountRequest {
    /// A host path.
    Bind {
        /// Absolute host path.
        source: PathBuf,
        /// Container path.
        target: String,
        /// Read-only.
        read_only: bool,
    },
    /// A tmpfs: memory-backed, gone with the container.
    Tmpfs {
        /// Container path.
        target: String,
        /// Size limit in bytes (0: the kernel's default, half of RAM).
        size: u64,
        /// Permission bits of its root (0: 1777).
        mode: u32,
    },
    /// A named volume, or an anonymous one when `name` is `None`.
    Volume {
        /// The volume's name.
        name: Option<String>,
        /// Container path.
        target: String,
        /// Read-only.
        read_only: bool,
        /// Do not fill a new volume with the image's content.
        nocopy: bool,
        /// A directory inside the volume to mount instead of its root
        /// (Compose's `volume.subpath`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subpath: Option<String>,
    },
}

/// Parses `--tmpfs` and Compose's `tmpfs:` entries: `PATH[:size=64m,mode=1770]`.
pub fn parse_tmpfs(spec: &str) -> Result<MountRequest> {
    let bad = |why: String| Error::Conflict(format!("invalid tmpfs {spec:?}: {why}"));
    let (target, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !target.starts_with('/') {
        return Err(bad("the path must be absolute".into()));
    }
    let (mut size, mut mode) = (0, 0);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", v)) => {
                size = parse_size(v).ok_or_else(|| bad(format!("size {v:?}")))?;
            }
            Some(("mode", v)) => {
                mode = u32::from_str_radix(v, 8).map_err(|_| bad(format!("mode {v:?}")))?;
            }
            // Flags such as noexec or rw: the defaults already say what is safe.
            None if matches!(
                o,
                "rw" | "noexec" | "nosuid" | "nodev" | "exec" | "suid" | "dev"
            ) => {}
            _ => return Err(bad(format!("unknown option {o:?}"))),
        }
    }
    Ok(MountRequest::Tmpfs {
        target: target.to_string(),
        size,
        mode,
    })
}

/// `64m`, `1g`, `4096`, `512k`: bytes, in binary multiples.
fn parse_size(v: &str) -> Option<u64> {
    let v = v.to_ascii_lowercase();
    let v = v.trim_end_matches('b');
    let (num, mult) = match v.chars().last()? {
        'k' => (&v[..v.len() - 1], 1 << 10),
        'm' => (&v[..v.len() - 1], 1 << 20),
        'g' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Parses Docker's `-v [SOURCE:]TARGET[:OPTIONS]`.
pub fn parse(spec: &str) -> Result<MountRequest> {
    let bad = |why: &str| Error::Conflict(format!("invalid volume specification {spec:?}: {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => return Err(bad("too many colons")),
    };
    if !target.starts_with('/') {
        return Err(bad("the container path must be absolute"));
    }
    let mut read_only = false;
    let mut nocopy = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "nocopy" => nocopy = true,
            "z" | "Z" | "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => {}
            other => return Err(bad(&format!("unknown option {other:?}"))),
        }
    }
    if source.is_empty() {
        return Ok(MountRequest::Volume {
            name: None,
            target: target.to_string(),
            read_only,
            nocopy,
            subpath: None,
        });
    }
    if source.starts_with('/') {
        return Ok(MountRequest::Bind {
            source: PathBuf::from(source),
            target: target.to_string(),
            read_only,
        });
    }
    if source.contains('/') || source.starts_with('.') {
        return Err(bad("a host path must be absolute"));
    }
    Ok(MountRequest::Volume {
        name: Some(source.to_string()),
        target: target.to_string(),
        read_only,
        nocopy,
        subpath: None,
    })
}

/// What preparing the mounts produced.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Bind mounts for the runtime spec.
    pub binds: Vec<Bind>,
    /// Anonymous volumes it mounts, inherited ones included.
    pub anonymous: Vec<String>,
    /// Anonymous volumes created for it (removed again if it fails).
    pub created: Vec<String>,
    /// Named volumes it uses.
    pub named: Vec<String>,
    /// tmpfs mounts for the runtime spec.
    pub tmpfs: Vec<super::spec::Tmpfs>,
    /// Every request with its volume's name filled in, so that
    /// `volumes_from` can mount the same sources later.
    pub resolved: Vec<MountRequest>,
}

/// Resolves every request to a bind mount, creating volumes as needed and
/// filling new ones from the image root `rootfs`. An anonymous volume at a
/// path named in `inherit` is that existing volume instead of a new one.
pub fn prepare(
    volumes: &VolumeStore,
    requests: &[MountRequest],
    rootfs: &Path,
    inherit: &BTreeMap<String, String>,
    userns: Option<&super::userns::IdRange>,
) -> Result<Prepared> {
    let mut out = Prepared::default();
    for r in requests {
        match r {
            MountRequest::Bind {
                source,
                target,
                read_only,
            } => {
                if !source.exists() {
                    std::fs::create_dir_all(source).map_err(|e| Error::io(source, e))?;
                }
                out.resolved.push(r.clone());
                out.binds.push(Bind {
                    source: source.clone(),
                    target: target.clone(),
                    read_only: *read_only,
                });
            }
            MountRequest::Tmpfs { target, size, mode } => {
                out.tmpfs.push(super::spec::Tmpfs {
                    target: target.clone(),
                    size: *size,
                    mode: *mode,
                });
                out.resolved.push(r.clone());
            }
            MountRequest::Volume {
                name,
                target,
                read_only,
                nocopy,
                subpath,
            } => {
                let (name, fresh) = match name {
                    Some(n) => {
                        let fresh = volumes.inspect(n).is_err();
                        if fresh {
                            volumes.create(n, "local", BTreeMap::new(), BTreeMap::new())?;
                        }
                        out.named.push(n.clone());
                        (n.clone(), fresh)
                    }
                    None => match inherit.get(target).filter(|v| volumes.inspect(v).is_ok()) {
                        Some(v) => {
                            out.anonymous.push(v.clone());
                            (v.clone(), false)
                        }
                        None => {
                            let n = crate::fsutil::random_id()?;
                            let mut labels = BTreeMap::new();
                            labels.insert("com.docker.volume.anonymous".to_string(), String::new());
                            volumes.create(&n, "local", BTreeMap::new(), labels)?;
                            out.anonymous.push(n.clone());
                            out.created.push(n.clone());
                            (n, true)
                        }
                    },
                };
                let data = volumes.data_path(&name);
                let empty = std::fs::read_dir(&data)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
                if let Some(range) = userns {
                    // Container root owns a new volume, as in Docker's
                    // remapped daemon; what the copy brings keeps the
                    // owners the remapped root sees (host ids in range).
                    if fresh || empty {
                        rustix::fs::chown(&data, Some(uid(range.uid)), Some(gid(range.gid)))
                            .map_err(|e| Error::io(&data, e.into()))?;
                    }
                    // `<root>/volumes/<name>/_data`: both directories above.
                    for dir in data.ancestors().skip(1).take(2) {
                        super::userns::traversable(dir)?;
                    }
                }
                // Docker fills no volume mounted by a subpath.
                if (fresh || empty) && !nocopy && subpath.is_none() {
                    copy_up(rootfs, target, &data)?;
                }
                let source = match subpath {
                    None => data,
                    Some(sub) => {
                        check_subpath(&name, sub)?;
                        let n = out.resolved.iter().filter(|m| has_subpath(m)).count();
                        subpath_fd_path(n)?
                    }
                };
                out.resolved.push(MountRequest::Volume {
                    name: Some(name.clone()),
                    target: target.clone(),
                    read_only: *read_only,
                    nocopy: true,
                    subpath: subpath.clone(),
                });
                out.binds.push(Bind {
                    source,
                    target: target.clone(),
                    read_only: *read_only,
                });
            }
        }
    }
    Ok(out)
}

/// Where the `n`th subpath mount of a container is pinned for its runtime:
/// a descriptor number the process that starts the container fills with
/// [`pin_subpaths`]. The runtime mounts what the descriptor holds, not a
/// path a container sharing the volume could swap for a symlink meanwhile
/// (catalog FS-14).
fn subpath_fd_path(n: usize) -> Result<PathBuf> {
    if n >= SUBPATH_FDS {
        return Err(Error::Conflict(format!(
            "more than {SUBPATH_FDS} volume subpath mounts"
        )));
    }
    Ok(PathBuf::from(format!("/proc/self/fd/{}", SUBPATH_FD + n)))
}

/// The first descriptor of subpath pins, and how many: high, below the
/// usual soft limit of 1024 open files.
const SUBPATH_FD: usize = 900;
const SUBPATH_FDS: usize = 100;

fn has_subpath(m: &MountRequest) -> bool {
    matches!(
        m,
        MountRequest::Volume {
            subpath: Some(_),
            ..
        }
    )
}

/// A subpath names a place inside its volume: relative, without `..`.
fn check_subpath(volume: &str, sub: &str) -> Result<()> {
    let inside = !sub.is_empty()
        && Path::new(sub).components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
    if inside {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "volume {volume}: subpath {sub:?} must be a relative path that stays inside the volume"
        )))
    }
}

/// Opens each subpath mount's directory inside its volume (never
/// following a symlink out of it) at the descriptor the container's spec
/// names; the runtime mounts from there. Held until the container is
/// built; each start resolves them anew, as Docker does.
pub fn pin_subpaths(root: &Path, mounts: &[MountRequest]) -> Result<Vec<OwnedFd>> {
    let subpaths: Vec<(&String, &String)> = mounts
        .iter()
        .filter_map(|m| match m {
            MountRequest::Volume {
                name: Some(name),
                subpath: Some(sub),
                ..
            } => Some((name, sub)),
            _ => None,
        })
        .collect();
    if subpaths.is_empty() {
        return Ok(Vec::new());
    }
    let volumes = VolumeStore::open(root)?;
    let mut pins = Vec::new();
    for (name, sub) in subpaths {
        let data = volumes.data_path(name);
        let failed =
            |e: rustix::io::Errno| Error::Conflict(format!("volume {name}: subpath {sub:?}: {e}"));
        let dir = rustix::fs::open(
            &data,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(&data, e.into()))?;
        let fd = crate::fsutil::openat2(
            &dir,
            sub.as_str(),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(failed)?;
        // A detached copy of the mount there: the runtime's init, in a
        // mount namespace of its own, may attach it but not clone it.
        let tree = rustix::mount::open_tree(
            &fd,
            "",
            rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
                | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC
                | rustix::mount::OpenTreeFlags::AT_EMPTY_PATH
                | rustix::mount::OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(failed)?;
        let number = SUBPATH_FD + pins.len();
        // SAFETY: the number is reserved for pins (see SUBPATH_FD); the fd
        // returned by dup3 is owned below.
        let pinned = unsafe {
            let n = libc::dup3(
                std::os::fd::AsRawFd::as_raw_fd(&tree),
                number as i32,
                libc::O_CLOEXEC,
            );
            if n < 0 {
                return Err(Error::io(&data, std::io::Error::last_os_error()));
            }
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n)
        };
        pins.push(pinned);
    }
    Ok(pins)
}

/// Copies the image's content at `target` (inside `rootfs`) into `dest`.
pub fn copy_up(rootfs: &Path, target: &str, dest: &Path) -> Result<()> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(rootfs, e.into()))?;
    let rel = target.trim_start_matches('/');
    let src = match crate::fsutil::openat2(
        &root,
        if rel.is_empty() { "." } else { rel },
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        // Nothing (or no directory) there in the image: nothing to copy.
        Err(_) => return Ok(()),
    };
    let dst = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(dest, e.into()))?;
    let st = rustix::fs::fstat(&src).map_err(|e| Error::io(dest, e.into()))?;
    rustix::fs::fchown(
        &dst,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )
    .map_err(|e| Error::io(dest, e.into()))?;
    rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))
        .map_err(|e| Error::io(dest, e.into()))?;
    copy_dir(&src, &dst, dest, 0)
}

pub(crate) fn copy_dir(src: &OwnedFd, dst: &OwnedFd, shown: &Path, depth: usize) -> Result<()> {
    if depth > 256 {
        return Err(Error::Conflict(format!(
            "{}: directories nest too deeply to copy",
            shown.display()
        )));
    }
    let io = |e: rustix::io::Errno| Error::io(shown, e.into());
    let names: Vec<String> = rustix::fs::Dir::read_from(src)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    for name in names {
        let st = rustix::fs::statat(src, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
        let owner = (
            Some(rustix::fs::Uid::from_raw(st.st_uid)),
            Some(rustix::fs::Gid::from_raw(st.st_gid)),
        );
        let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rustix::fs::mkdirat(dst, name.as_str(), Mode::from_raw_mode(0o700)).map_err(io)?;
                let s = rustix::fs::openat(
                    src,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)?;
                let d = rustix::fs::openat(
                    dst,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)?;
                copy_dir(&s, &d, shown, depth + 1)?;
                rustix::fs::fchown(&d, owner.0, owner.1).map_err(io)?;
                rustix::fs::fchmod(&d, mode).map_err(io)?;
            }
            FileType::RegularFile => {
                let s = rustix::fs::openat(
                    src,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)?;
                let mut df = crate::fsutil::create_new_at(dst, name.as_str()).map_err(io)?;
                let mut sf = std::fs::File::from(s);
                std::io::copy(&mut sf, &mut df).map_err(|e| Error::io(shown, e))?;
                rustix::fs::fchown(&df, owner.0, owner.1).map_err(io)?;
                rustix::fs::fchmod(&df, mode).map_err(io)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name.as_str(), Vec::new()).map_err(io)?;
                rustix::fs::symlinkat(target.as_c_str(), dst, name.as_str()).map_err(io)?;
                rustix::fs::chownat(
                    dst,
                    name.as_str(),
                    owner.0,
                    owner.1,
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(io)?;
            }
            // Devices, FIFOs and sockets are not copied: opening one could
            // block or reach host hardware.
            _ => {}
        }
    }
    Ok(())
}

fn uid(id: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(id)
}

fn gid(id: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flags_parse_like_docker() {
        assert!(matches!(
            parse("/data").unwrap(),
            MountRequest::Volume { name: None, .. }
        ));
        assert!(matches!(
            parse("db:/var/lib/db:ro").unwrap(),
            MountRequest::Volume {
                name: Some(_),
                read_only: true,
                ..
            }
        ));
        assert!(matches!(
            parse("/srv:/srv").unwrap(),
            MountRequest::Bind { .. }
        ));
        assert!(parse("./rel:/x").is_err());
        assert!(parse("a:relative").is_err());
        assert!(parse("a:/b:bogus").is_err());
    }
}
