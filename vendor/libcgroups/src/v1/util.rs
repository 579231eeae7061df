use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};
use procfs::ProcError;
use procfs::process::MountInfo;

use super::ControllerType;
use super::controller_type::CONTROLLERS;

#[derive(thiserror::Error, Debug)]
pub enum V1MountPointError {
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("failed to get mountinfo: {0}")]
    MountInfo(ProcError),
    #[error("could not find mountpoint for {subsystem}")]
    NotFound { subsystem: ControllerType },
    #[error(transparent)]
    Pathrs(#[from] pathrs::error::Error),
}

/// List all cgroup v1 subsystem mount points on the system. This can include unsupported
/// subsystems, comounted controllers and named hierarchies.
pub fn list_subsystem_mount_points() -> Result<Vec<PathBuf>, V1MountPointError> {
    let reader = BufReader::new(ProcfsHandle::new()?.open(
        ProcfsBase::ProcSelf,
        "mountinfo",
        OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
    )?);

    reader
        .lines()
        .map(|lr| {
            lr.map_err(V1MountPointError::Io)
                .and_then(|line| MountInfo::from_line(&line).map_err(V1MountPointError::MountInfo))
        })
        .try_fold(Vec::new(), |mut mount_points, r| {
            r.map(|m| {
                if m.fs_type == "cgroup" {
                    mount_points.push(m.mount_point);
                }
                mount_points
            })
        })
}

/// List the mount points of all currently supported cgroup subsystems.
pub fn list_supported_mount_points() -> Result<HashMap<ControllerType, PathBuf>, V1MountPointError>
{
    let mut mount_paths = HashMap::with_capacity(CONTROLLERS.len());

    for controller in CONTROLLERS {
        if let Ok(mount_point) = get_subsystem_mount_point(controller) {
            mount_paths.insert(controller.to_owned(), mount_point);
        }
    }

    Ok(mount_paths)
}

pub fn get_subsystem_mount_point(subsystem: &ControllerType) -> Result<PathBuf, V1MountPointError> {
    subsystem_mount_point_in(&cgroup_mounts()?, subsystem)
}

// berth: the cgroup mounts read once for many controllers (a v1
// `Manager::new` asked for each controller's, reading mountinfo each time).
/// The cgroup (v1) mounts of the current mount namespace.
pub fn cgroup_mounts() -> Result<Vec<MountInfo>, V1MountPointError> {
    let reader = BufReader::new(ProcfsHandle::new()?.open(
        ProcfsBase::ProcSelf,
        "mountinfo",
        OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
    )?);
    let mut mounts = Vec::new();
    for line in reader.lines() {
        let m = MountInfo::from_line(&line?).map_err(V1MountPointError::MountInfo)?;
        if m.fs_type == "cgroup" {
            mounts.push(m);
        }
    }
    Ok(mounts)
}

// berth: what `Manager::new` needs of the hierarchies, read once per
// process: a supervisor creates, restarts and deletes its container many
// times, and `preload` lets a caller read them on another thread while it
// prepares the container.
/// The cgroup v1 mounts and the controllers the calling process is in.
#[derive(Debug, Default)]
pub struct Hierarchies {
    pub mounts: Vec<MountInfo>,
    pub controllers: std::collections::HashSet<String>,
}

static HIERARCHIES: std::sync::OnceLock<Hierarchies> = std::sync::OnceLock::new();

/// The hierarchies of this process, read on first use. Unreadable ones
/// leave an empty view, as `Manager::new` treated them before.
pub fn hierarchies() -> &'static Hierarchies {
    HIERARCHIES.get_or_init(|| {
        let controllers = ProcfsHandle::new()
            .ok()
            .and_then(|procfs| {
                procfs
                    .open(
                        ProcfsBase::ProcSelf,
                        "cgroup",
                        OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
                    )
                    .ok()
            })
            .and_then(|f| procfs::FromRead::from_read(f).ok())
            .map(|c: procfs::ProcessCGroups| {
                c.into_iter().flat_map(|c| c.controllers).collect()
            })
            .unwrap_or_default();
        Hierarchies {
            mounts: cgroup_mounts().unwrap_or_default(),
            controllers,
        }
    })
}

/// Reads [`hierarchies`] now, so that later managers find them ready.
pub fn preload() {
    hierarchies();
}

/// Where `subsystem` is mounted among `mounts` ([`cgroup_mounts`]).
pub fn subsystem_mount_point_in(
    mounts: &[MountInfo],
    subsystem: &ControllerType,
) -> Result<PathBuf, V1MountPointError> {
    let subsystem_name = subsystem.to_string();
    mounts
        .iter()
        .find(|m| {
            // Some systems mount net_prio and net_cls in the same directory
            // other systems mount them in their own directories. This
            // should handle both cases.
            match subsystem_name.as_str() {
                "net_cls" => ["net_cls,net_prio", "net_prio,net_cls", "net_cls"]
                    .iter()
                    .any(|s| m.mount_point.ends_with(s)),
                "net_prio" => ["net_cls,net_prio", "net_prio,net_cls", "net_prio"]
                    .iter()
                    .any(|s| m.mount_point.ends_with(s)),
                "cpu" => ["cpu,cpuacct", "cpu"]
                    .iter()
                    .any(|s| m.mount_point.ends_with(s)),
                "cpuacct" => ["cpu,cpuacct", "cpuacct"]
                    .iter()
                    .any(|s| m.mount_point.ends_with(s)),
                _ => m.mount_point.ends_with(&subsystem_name),
            }
        })
        .map(|m| m.mount_point.clone())
        .ok_or(V1MountPointError::NotFound {
            subsystem: *subsystem,
        })
}
