//! `container run` in the foreground: the overlay root is mounted, the spec
//! written, the container created and started by `libcontainer` from this
//! process (which must be single-threaded: `libcontainer` clones it), waited
//! for, and taken down again. Nothing is left mounted or in a cgroup.
//!
//! ```text
//! containers/<id>/fs/{upper,work,merged}   the root filesystem
//! containers/<id>/bundle/config.json       the OCI runtime spec
//! containers/<id>/state/                   libcontainer's state
//! containers/<id>/{hostname,hosts}         files bound into the container
//! containers/<id>/container.json           berth's record
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use serde::{Deserialize, Serialize};

use super::spec::{self, Bind, ProcessRequest};
use super::user;
use crate::error::{Error, Result};
use crate::fsutil::{private_dir, write_atomic};
use crate::image::ImageStore;
use crate::image::archive::rfc3339;
use crate::image::store::remove_dir;
use crate::rootfs::ContainerFs;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct RunRequest {
    /// The image (reference or id).
    pub image: String,
    /// The container's name (default: the first 12 characters of its id).
    pub name: Option<String>,
    /// Command line, environment, capabilities …
    pub process: ProcessRequest,
    /// `--user` (name or uid, `:group` or `:gid`), resolved in the image.
    pub user: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--read-only` root filesystem.
    pub read_only: bool,
    /// `--rm`: remove the container (and its anonymous volumes) when it exits.
    pub remove: bool,
    /// `-v` mounts.
    pub mounts: Vec<super::mounts::MountRequest>,
}

/// berth's record of a container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex characters.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The image reference as given.
    pub image: String,
    /// The image id.
    pub image_id: String,
    /// The command line.
    pub command: Vec<String>,
    /// Creation time (RFC 3339).
    pub created: String,
    /// `created`, `running` or `exited`.
    pub status: String,
    /// Exit code once exited.
    pub exit_code: Option<i32>,
}

fn random_id() -> Result<String> {
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The containers directory of a state root.
pub fn containers_dir(root: &Path) -> PathBuf {
    root.join("containers")
}

fn name_taken(root: &Path, name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(containers_dir(root)) else {
        return false;
    };
    entries.flatten().any(|e| {
        std::fs::read(e.path().join("container.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<ContainerRecord>(&b).ok())
            .is_some_and(|r| r.name == name)
    })
}

/// Runs a container to completion with the caller's standard streams, and
/// returns its exit code (128 + signal when killed by a signal).
pub fn run_foreground(root: &Path, images: &ImageStore, req: &RunRequest) -> Result<i32> {
    let volumes = crate::volume::VolumeStore::open(root)?;
    let mut anonymous = Vec::new();
    let image = images.resolve(&req.image)?;
    let config = images.config(&image)?;
    let layers = images.layers(&image)?;
    let id = random_id()?;
    let name = req.name.clone().unwrap_or_else(|| id[..12].to_string());
    if !valid_name(&name) {
        return Err(Error::Conflict(format!("invalid container name {name:?}")));
    }
    if name_taken(root, &name) {
        return Err(Error::Conflict(format!(
            "the container name {name:?} is already in use"
        )));
    }
    let dir = containers_dir(root).join(&id);
    private_dir(&dir)?;
    let fs = ContainerFs::create(&dir.join("fs"))?;
    let result = (|| {
        fs.mount(&layers)?;
        let mut process = req.process.clone();
        process.user = user::resolve(
            &fs.merged,
            req.user
                .as_deref()
                .or(config.config.user.as_deref())
                .unwrap_or(""),
        )?;
        let hostname = req.hostname.clone().unwrap_or_else(|| id[..12].to_string());
        write_atomic(&dir.join("hostname"), format!("{hostname}\n").as_bytes())?;
        write_atomic(
            &dir.join("hosts"),
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n")
                .as_bytes(),
        )?;
        let prepared = super::mounts::prepare(&volumes, &req.mounts, &fs.merged)?;
        anonymous = prepared.anonymous.clone();
        let mut binds = vec![
            Bind {
                source: dir.join("hostname"),
                target: "/etc/hostname".into(),
                read_only: false,
            },
            Bind {
                source: dir.join("hosts"),
                target: "/etc/hosts".into(),
                read_only: false,
            },
        ];
        binds.extend(prepared.binds);
        let oci = spec::build(
            &fs.merged,
            &config.config,
            &process,
            &hostname,
            &format!("/berth/{id}"),
            req.read_only,
            &binds,
        )?;
        let bundle = dir.join("bundle");
        private_dir(&bundle)?;
        oci.save(bundle.join("config.json"))
            .map_err(|e| Error::Conflict(format!("writing the runtime spec: {e}")))?;
        let mut record = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            image: req.image.clone(),
            image_id: image.id.clone(),
            command: spec::command_line(&config.config, &process)?,
            created: rfc3339(now()),
            status: "created".into(),
            exit_code: None,
        };
        let save = |r: &ContainerRecord| -> Result<()> {
            let bytes = serde_json::to_vec_pretty(r).map_err(|e| Error::Conflict(e.to_string()))?;
            write_atomic(&dir.join("container.json"), &bytes)
        };
        save(&record)?;
        let lc = |e: libcontainer::error::LibcontainerError| {
            Error::Conflict(format!("container {name}: {e}"))
        };
        let state = dir.join("state");
        private_dir(&state)?;
        let mut container = ContainerBuilder::new(id.clone(), SyscallType::Linux)
            .with_root_path(&state)
            .map_err(lc)?
            .as_init(&bundle)
            .with_systemd(false)
            .with_detach(false)
            .build()
            .map_err(lc)?;
        let code = (|| {
            container.start().map_err(lc)?;
            record.status = "running".into();
            save(&record)?;
            let pid = container
                .pid()
                .ok_or_else(|| Error::Conflict(format!("container {name}: no init process")))?;
            let pid = rustix::process::Pid::from_raw(pid.as_raw())
                .ok_or_else(|| Error::Conflict(format!("container {name}: invalid pid")))?;
            let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                .map_err(|e| Error::Conflict(format!("waiting for container {name}: {e}")))?
                .map(|(_, s)| s);
            let code = match status {
                Some(s) => match (s.exit_status(), s.terminating_signal()) {
                    (Some(c), _) => c,
                    (None, Some(sig)) => 128 + sig,
                    _ => 255,
                },
                None => 255,
            };
            Ok(code)
        })();
        let _ = container.refresh_status();
        let deleted = container.delete(true).map_err(lc);
        let code = code?;
        deleted?;
        record.status = "exited".into();
        record.exit_code = Some(code);
        save(&record)?;
        Ok(code)
    })();
    let unmounted = fs.unmount();
    if req.remove || result.is_err() {
        let _ = remove_dir(&dir);
        for v in &anonymous {
            let _ = volumes.remove(v, &|_| false);
        }
    }
    unmounted?;
    result
}
