//! Creating and running containers. [`prepare`] makes a container's
//! directory, root filesystem, bind files and OCI bundle; [`execute`] starts
//! it through `libcontainer` from the calling process (which must be
//! single-threaded: `libcontainer` clones it) and waits for it. The
//! foreground `container run` does both in the CLI; detached containers are
//! executed by their supervisor (see [`super::shim`]).
//!
//! ```text
//! containers/<id>/fs/{upper,work,merged}   the root filesystem
//! containers/<id>/bundle/config.json       the OCI runtime spec
//! containers/<id>/state/                   libcontainer's state
//! containers/<id>/{hostname,hosts}         files bound into the container
//! containers/<id>/container.json           berth's record
//! containers/<id>/container-json.log       logs of detached containers
//! ```

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::LinuxNamespaceType;
use serde::{Deserialize, Serialize};

use super::mounts::MountRequest;
use super::spec::{self, Bind, ProcessRequest};
use super::user;
use crate::error::{Error, Result};
use crate::fsutil::{private_dir, write_atomic, write_fresh, write_replace};
use crate::image::ImageStore;
use crate::image::archive::rfc3339;
use crate::image::store::remove_dir;
use crate::rootfs::ContainerFs;
use crate::volume::VolumeStore;

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
    /// A user namespace of its own (`userns_mode: private`): container
    /// root is the state root's unprivileged host uid.
    pub userns: bool,
    /// Standard input kept open (`stdin_open`, `-i`) without a terminal:
    /// the supervisor holds a pipe that `attach` writes to.
    pub stdin_open: bool,
    /// An `attach` follows the start at once (a foreground `run -it`): the
    /// supervisor keeps the terminal's first output for it.
    pub awaits_attach: bool,
    /// `--rm`: remove the container (and its anonymous volumes) when it exits.
    pub remove: bool,
    /// `-v` mounts.
    pub mounts: Vec<super::mounts::MountRequest>,
    /// Resource limits.
    pub resources: spec::Resources,
    /// `--restart` policy (detached containers).
    pub restart: String,
    /// `logging:` (detached containers).
    pub log: super::logs::LogConfig,
    /// Networks to join, in order (the first one routes by default).
    pub networks: Vec<String>,
    /// Labels (Compose's project, service, number and config hash).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The configuration the container was created from, recorded so a
    /// later plan can say what changed.
    pub config: Option<serde_json::Value>,
    /// Ports to publish on the host.
    pub ports: Vec<PortBinding>,
    /// Name servers for the container's resolv.conf (default: the host's).
    pub dns: Vec<String>,
    /// Names other containers find it by on every network (service name,
    /// hostname).
    pub dns_names: Vec<String>,
    /// Per network: a fixed address and names on that network only.
    pub network_opts: std::collections::BTreeMap<String, NetworkOpts>,
    /// The healthcheck (default: the image's).
    pub health: Option<super::health::HealthConfig>,
    /// No healthcheck, not even the image's.
    pub no_healthcheck: bool,
    /// `--add-host` / `extra_hosts`: (name, address) lines for /etc/hosts.
    pub extra_hosts: Vec<(String, String)>,
    /// Anonymous volumes of a container this one replaces, by container
    /// path: mounted again instead of new ones, so a recreated Compose
    /// container keeps their data.
    pub inherit_anonymous: std::collections::BTreeMap<String, String>,
    /// `--volumes-from`: `CONTAINER[:ro|:rw]`, whose mounts it shares.
    pub volumes_from: Vec<String>,
    /// `""` (its own namespace, joined to `networks`), `none`, `host`, or
    /// `container:NAME` (another container's network namespace).
    pub network_mode: String,
}

/// A port to publish: `[host_ip:][host_port:]container_port[/protocol]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// Host address (empty: all).
    pub host_ip: String,
    /// Host port (`None`: any free one).
    pub host_port: Option<u16>,
    /// The container's port.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// berth's record of a container.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    /// The kernel's OOM killer killed a process of its last run.
    #[serde(default)]
    pub oom_killed: bool,
    /// The init process, while running.
    #[serde(default)]
    pub pid: Option<i32>,
    /// The init process's start time (clock ticks after boot), to tell a
    /// recycled pid apart.
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// The supervisor's pid, for detached containers.
    #[serde(default)]
    pub shim_pid: Option<i32>,
    /// When it last started.
    #[serde(default)]
    pub started: Option<String>,
    /// When it last exited.
    #[serde(default)]
    pub finished: Option<String>,
    /// Remove when it exits.
    #[serde(default)]
    pub auto_remove: bool,
    /// Runs on a terminal its supervisor keeps (`tty: true`, `-t`).
    #[serde(default)]
    pub tty: bool,
    /// Its standard input is a pipe the supervisor serves to `attach`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    /// Its first attachment gets what the terminal wrote before it came.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaits_attach: bool,
    /// Anonymous volumes created for it.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// Image layers, bottom first, for remounting the root.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
    /// The ids its user namespace maps, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<super::userns::IdRange>,
    /// Set by `stop`/`kill`: the exit was asked for.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// `--restart` policy.
    #[serde(default)]
    pub restart: String,
    /// `logging:`.
    #[serde(default)]
    pub log: super::logs::LogConfig,
    /// How often the supervisor restarted it.
    #[serde(default)]
    pub restart_count: u32,
    /// Networks it joins.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Its healthcheck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::HealthConfig>,
    /// Its mounts, with volume names filled in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<super::mounts::MountRequest>,
    /// As requested, with `container:` followed by the other's id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network_mode: String,
    /// Labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The configuration it was created from (Compose service config).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Ports it publishes.
    #[serde(default)]
    pub ports: Vec<PortBinding>,
    /// Names other containers find it by.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// Per network: a fixed address and aliases.
    #[serde(default)]
    pub network_opts: std::collections::BTreeMap<String, NetworkOpts>,
}

/// How a container joins one network (`services.*.networks.<name>`,
/// `network connect --ip --alias`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOpts {
    /// `ipv4_address`.
    #[serde(default)]
    pub ipv4_address: Option<std::net::Ipv4Addr>,
    /// `ipv6_address`.
    #[serde(default)]
    pub ipv6_address: Option<std::net::Ipv6Addr>,
    /// `aliases`: names on this network only.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `mac_address` of its interface on this network.
    #[serde(default)]
    pub mac_address: Option<String>,
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `name` may name a container (as Docker: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
pub fn valid_name(name: &str) -> bool {
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

/// A prepared container: directory, mounted root, bundle, record.
pub struct Prepared {
    /// Its directory.
    pub dir: PathBuf,
    /// Its root filesystem (mounted).
    pub fs: ContainerFs,
    /// Its record (saved).
    pub record: ContainerRecord,
    /// Its network namespace, made ahead for the start that follows
    /// (see [`super::netns`]); without one, the start makes it.
    pub netns: Option<OwnedFd>,
}

impl Prepared {
    /// Takes the networks from the record on disk, which `network connect`
    /// and `disconnect` change while the container runs.
    /// The state root (`dir` is `<root>/containers/<id>`).
    fn root(&self) -> &Path {
        self.dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"))
    }

    fn refresh_networks(&mut self) {
        if let Ok(r) = load_record(&self.dir) {
            self.record.networks = r.networks;
            self.record.network_opts = r.network_opts;
        }
    }

    /// Saves the record's runtime state (supervisor, pid, running, exit):
    /// atomically but not durably. A killed process loses nothing by it;
    /// a host crash stops every container anyway, and a record whose pid
    /// is gone reads as exited. What a container is (its creation, its
    /// configuration) goes through [`save_record`], durably; this saved
    /// two flushes of the disk per start and one per exit.
    pub fn save(&self) -> Result<()> {
        write_replace(&self.dir.join(RECORD_FILE), &record_bytes(&self.record)?)
    }
}

/// A container's OCI bundle, the directory of its runtime spec: the
/// container's own directory, or its `bundle/` for one an earlier berth
/// made (which kept the spec there).
pub fn bundle_dir(dir: &Path) -> PathBuf {
    crate::fsutil::own_or_older(dir, "bundle", SPEC_FILE)
}

const SPEC_FILE: &str = "config.json";

/// The directory libcontainer keeps a container's runtime state under (in
/// a directory named after its id): [`RUNTIME_DIR`], or where an earlier
/// berth that started the container kept it (its own directory, or its
/// `state/`).
pub fn state_root(dir: &Path, id: &str) -> PathBuf {
    for older in [dir.to_path_buf(), dir.join("state")] {
        if older.join(id).exists() {
            return older;
        }
    }
    PathBuf::from(RUNTIME_DIR)
}

/// Where running containers' runtime state lives (`state.json`, the
/// runtime's socket), as `/run/crun` and `/run/containerd` hold theirs:
/// a tmpfs on most hosts, emptied by a reboot, which ends every container
/// anyway. Ids are random, so state roots never collide in it. (On a disk
/// with online discard, such as this project's test machine's, where
/// `/run` is no tmpfs, the three files and the directory made and
/// removed at every start cost a quarter of a millisecond.)
pub const RUNTIME_DIR: &str = "/run/berth";

/// Writes a container's record.
pub fn save_record(dir: &Path, record: &ContainerRecord) -> Result<()> {
    write_atomic(&dir.join(RECORD_FILE), &record_bytes(record)?)
}

fn record_bytes(record: &ContainerRecord) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(record).map_err(|e| Error::Conflict(e.to_string()))
}

/// Reads a container's record.
pub fn load_record(dir: &Path) -> Result<ContainerRecord> {
    let p = dir.join(RECORD_FILE);
    let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Store {
        path: p,
        msg: e.to_string(),
    })
}

/// The volumes some container of a state root mounts, running or not:
/// Docker refuses to remove those.
pub fn volumes_in_use(root: &Path) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (_, r) in list_records(root) {
        for m in &r.mounts {
            if let super::mounts::MountRequest::Volume { name: Some(n), .. } = m {
                names.insert(n.clone());
            }
        }
        names.extend(r.anonymous_volumes);
    }
    names
}

/// All container records of a state root, oldest first.
pub fn list_records(root: &Path) -> Vec<(PathBuf, ContainerRecord)> {
    let mut out: Vec<(PathBuf, ContainerRecord)> = std::fs::read_dir(containers_dir(root))
        .map(|it| {
            it.flatten()
                .filter_map(|e| load_record(&e.path()).ok().map(|r| (e.path(), r)))
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.1.created.cmp(&b.1.created).then(a.1.id.cmp(&b.1.id)));
    out
}

/// The name prefix of a container directory being made.
const STAGING: &str = ".creating-";
const RECORD_FILE: &str = "container.json";

/// Removes what a killed command left of containers it was still creating
/// (a directory, a mounted root, but no record), so that nothing leaks.
/// Containers being created right now hold their lock and are left alone.
pub fn collect_orphans(root: &Path) {
    let Ok(entries) = std::fs::read_dir(containers_dir(root)) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".removing-") {
            let _ = remove_dir(&dir);
            continue;
        }
        let locked = || {
            std::fs::File::open(&dir).is_ok_and(|f| {
                rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
            })
        };
        if name.starts_with(STAGING) {
            // Killed between making it and locking it, or slow to: a
            // minute's grace.
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 60));
            if old && !locked() {
                let _ = remove_dir(&dir);
            }
            continue;
        }
        // An empty record is an auto-removed container's whose unflushed
        // write a crash lost: garbage like the rest of it.
        let unrecorded = || std::fs::metadata(dir.join(RECORD_FILE)).map_or(true, |m| m.len() == 0);
        if !unrecorded() {
            continue;
        }
        // A creator holds the lock until the record exists; one that wrote
        // it and let go since the first look leaves a container.
        if !locked() && unrecorded() {
            let _ = ContainerFs::of(&dir).unmount();
            let _ = remove_dir(&dir);
        }
    }
}

/// Finds a container by name, full id or id prefix.
pub fn find(root: &Path, name: &str) -> Result<(PathBuf, ContainerRecord)> {
    let all = list_records(root);
    if let Some(hit) = all.iter().find(|(_, r)| r.name == name || r.id == name) {
        return Ok(hit.clone());
    }
    let hits: Vec<_> = all
        .iter()
        .filter(|(_, r)| name.len() >= 3 && r.id.starts_with(name))
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::Conflict(format!("no such container: {name}"))),
        _ => Err(Error::Conflict(format!(
            "container id prefix {name} is ambiguous"
        ))),
    }
}

/// Creates a container (directory, root filesystem, volumes, bundle) without
/// starting it. On error nothing is left behind.
pub fn prepare(root: &Path, images: &ImageStore, req: &RunRequest) -> Result<Prepared> {
    prepare_for(root, images, req, Start::Later)
}

/// When a prepared container starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// In another process (its supervisor): nothing made for the start
    /// would reach it.
    Later,
    /// Right after, in this process: its network namespace is made on the
    /// side while the root is prepared.
    Next,
}

fn prepare_for(
    root: &Path,
    images: &ImageStore,
    req: &RunRequest,
    start: Start,
) -> Result<Prepared> {
    let volumes = VolumeStore::open(root)?;
    let image = images.resolve(&req.image)?;
    let config = images.config(&image)?;
    let mut layers = images.layers(&image)?;
    if let Some(init) = images.init_layer(&image, &layers)? {
        layers.push(init);
    }
    let id = crate::fsutil::random_id()?;
    let name = req.name.clone().unwrap_or_else(|| id[..12].to_string());
    if !valid_name(&name) {
        return Err(Error::Conflict(format!("invalid container name {name:?}")));
    }
    if list_records(root).iter().any(|(_, r)| r.name == name) {
        return Err(Error::Conflict(format!(
            "the container name {name:?} is already in use"
        )));
    }
    let host_network = req.network_mode == "host";
    let joined = match req.network_mode.strip_prefix("container:") {
        Some(target) => Some(find(root, target).map_err(|_| {
            Error::Conflict(format!(
                "network_mode container:{target}: no such container"
            ))
        })?),
        None => None,
    };
    if !matches!(req.network_mode.as_str(), "" | "none" | "host" | "bridge") && joined.is_none() {
        return Err(Error::Conflict(format!(
            "unsupported network mode {:?} (none, host, bridge or container:NAME)",
            req.network_mode
        )));
    }
    if (host_network || joined.is_some()) && (!req.networks.is_empty() || !req.ports.is_empty()) {
        return Err(Error::Conflict(format!(
            "network mode {} cannot be combined with networks or published ports",
            req.network_mode
        )));
    }
    let userns = if req.userns {
        if host_network || joined.is_some() {
            return Err(Error::Conflict(
                "userns_mode private cannot share another namespace's network \
                 (network_mode host or container:)"
                    .into(),
            ));
        }
        Some(super::userns::host_range(root)?)
    } else {
        None
    };
    // The directory is locked until the record exists: a directory without
    // a record whose lock is free belongs to a command that was killed (see
    // `collect_orphans`). It is made and locked under a staging name, so
    // that no `collect_orphans` finds it named and not yet locked.
    let dir = containers_dir(root).join(&id);
    let staging = containers_dir(root).join(format!("{STAGING}{id}"));
    let creating = match super::spares::take(root, &staging) {
        Some(locked) => locked,
        None => {
            private_dir(&staging)?;
            let creating = std::fs::File::open(&staging).map_err(|e| Error::io(&staging, e))?;
            rustix::fs::flock(&creating, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| Error::io(&staging, e.into()))?;
            creating
        }
    };
    std::fs::rename(&staging, &dir).map_err(|e| Error::io(&dir, e))?;
    if userns.is_some() {
        // The runtime reaches the root and bind sources by path from
        // inside the namespace, as the remapped root.
        for d in [root, &containers_dir(root), &dir] {
            super::userns::traversable(d)?;
        }
    }
    let fs = ContainerFs::create(&dir)?;
    let mut anonymous = Vec::new();
    let mut created = Vec::new();
    let mut resolved = Vec::new();
    let own_netns = owns_netns(&req.network_mode, userns.is_some());
    let body = || -> Result<ContainerRecord> {
        fs.mount(&layers, userns.as_ref(), req.remove)?;
        kernel_mount_points(&fs.merged, &req.image)?;
        let mut process = req.process.clone();
        process.user = user::resolve(
            &fs.merged,
            req.user
                .as_deref()
                .or(config.config.user.as_deref())
                .unwrap_or(""),
        )?;
        let requests = mount_requests(root, req, config.config.volumes.as_ref())?;
        let prepared = super::mounts::prepare(
            &volumes,
            &requests,
            &fs.merged,
            &req.inherit_anonymous,
            userns.as_ref(),
        )?;
        anonymous = prepared.anonymous.clone();
        created = prepared.created.clone();
        resolved = prepared.resolved.clone();
        // A container in another's network namespace shares its name files.
        let net_files = match &joined {
            Some((target_dir, _)) => target_dir.clone(),
            None => dir.clone(),
        };
        let hostname = match (&joined, &req.hostname) {
            (_, Some(h)) => h.clone(),
            (Some((target_dir, _)), None) => std::fs::read_to_string(target_dir.join("hostname"))
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| id[..12].to_string()),
            (None, None) if host_network => rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            (None, None) => id[..12].to_string(),
        };
        if joined.is_none() {
            write_fresh(&dir.join("hostname"), format!("{hostname}\n").as_bytes())?;
            // The container's own address comes once it has one (see
            // `name_own_address`).
            let mut hosts = if host_network {
                std::fs::read_to_string("/etc/hosts").unwrap_or_default()
            } else {
                HOSTS_HEADER.to_string()
            };
            for (name, addr) in &req.extra_hosts {
                hosts.push_str(&format!("{addr}\t{name}\n"));
            }
            write_fresh(&dir.join("hosts"), hosts.as_bytes())?;
            write_fresh(&dir.join("resolv.conf"), resolv_conf(&req.dns).as_bytes())?;
        }
        // Read-only in a read-only container, as with Docker.
        let mut binds: Vec<Bind> = [
            ("resolv.conf", "/etc/resolv.conf"),
            ("hostname", "/etc/hostname"),
            ("hosts", "/etc/hosts"),
        ]
        .into_iter()
        .map(|(file, target)| Bind {
            source: net_files.join(file),
            target: target.into(),
            read_only: req.read_only,
        })
        .collect();
        binds.extend(prepared.binds);
        let cgroup = format!("/berth/{id}");
        let oci = spec::build(&spec::SpecRequest {
            rootfs: &fs.merged,
            image: &config.config,
            process: &process,
            hostname: &hostname,
            cgroup: &cgroup,
            read_only: req.read_only,
            binds: &binds,
            resources: &req.resources,
            host_network,
            tmpfs: &prepared.tmpfs,
            userns: userns.as_ref(),
        })?;
        let spec = serde_json::to_vec(&oci)
            .map_err(|e| Error::Conflict(format!("writing the runtime spec: {e}")))?;
        write_fresh(&dir.join(SPEC_FILE), &spec)?;
        let record = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            image: req.image.clone(),
            image_id: image.id.clone(),
            command: spec::command_line(&config.config, &process)?,
            created: rfc3339(now()),
            status: "created".into(),
            auto_remove: req.remove,
            tty: req.process.tty,
            stdin_open: req.stdin_open && !req.process.tty,
            awaits_attach: req.awaits_attach && req.process.tty,
            restart: req.restart.clone(),
            log: req.log.clone(),
            networks: req.networks.clone(),
            labels: req.labels.clone(),
            config: req.config.clone(),
            ports: req.ports.clone(),
            dns_names: req.dns_names.clone(),
            network_opts: req.network_opts.clone(),
            network_mode: match &joined {
                Some((_, target)) => format!("container:{}", target.id),
                None => req.network_mode.clone(),
            },
            health: if req.no_healthcheck {
                None
            } else {
                req.health
                    .clone()
                    .or_else(|| image_healthcheck(config.config.healthcheck.as_ref()))
            },
            anonymous_volumes: anonymous.clone(),
            mounts: resolved.clone(),
            layers: layers.clone(),
            userns,
            ..ContainerRecord::default()
        };
        if req.remove {
            // Gone after the run, and after a crash too (see
            // `collect_orphans`): no disk flush for it.
            write_replace(&dir.join(RECORD_FILE), &record_bytes(&record)?)?;
        } else {
            save_record(&dir, &record)?;
        }
        drop(creating);
        Ok(record)
    };
    let result = match start {
        // Nothing made here would reach the supervisor that starts it.
        Start::Later => body().map(|record| (record, None)),
        Start::Next => std::thread::scope(|s| {
            // Made on the side while the root is prepared: the cgroup
            // hierarchies every start reads, the network namespace.
            let side = s.spawn(|| {
                libcgroups::v1::util::preload();
                own_netns.then(super::netns::create_here).transpose()
            });
            let record = body();
            let netns = side.join().unwrap_or_else(|_| {
                Err(Error::Conflict(
                    "preparing the container: a thread panicked".into(),
                ))
            });
            Ok((record?, netns?))
        }),
    };
    match result {
        Ok((record, netns)) => {
            crate::events::container(root, "create", &record, &[]);
            Ok(Prepared {
                dir,
                fs,
                record,
                netns,
            })
        }
        Err(e) => {
            let _ = fs.unmount();
            let _ = remove_dir(&dir);
            for v in &created {
                let _ = volumes.remove(v, &|_| false);
            }
            Err(e)
        }
    }
}

/// The host's resolver configuration without loopback name servers (which
/// mean nothing inside a container), Docker's public fallback when none is
/// left.
fn resolv_conf(servers_override: &[String]) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    for s in servers_override {
        out.push_str(&format!("nameserver {s}\n"));
    }
    let mut servers = servers_override.len();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("nameserver"), Some(ip)) => {
                if ip.starts_with("127.") || ip == "::1" || !servers_override.is_empty() {
                    continue;
                }
                servers += 1;
                out.push_str(line);
                out.push('\n');
            }
            (Some("search" | "options" | "domain"), _) => {
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// The start time of a process (field 22 of `/proc/<pid>/stat`).
pub fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// How a container gets its network: called once its namespace exists and
/// before its process runs, and again after it exited. The engine knows no
/// network plane; the caller wires one in.
pub trait Network {
    /// Connects the network namespace of `pid` for `record`; returns the
    /// container's address on its first network, if it has one.
    fn connect(&mut self, record: &ContainerRecord, pid: i32) -> Result<Option<IpAddr>>;
    /// Undoes [`Network::connect`] (leases, host-side links); errors are
    /// the implementation's to report.
    fn disconnect(&mut self, record: &ContainerRecord);
}

/// No network beyond the container's own loopback.
pub struct NoNetwork;

impl Network for NoNetwork {
    fn connect(&mut self, _: &ContainerRecord, _: i32) -> Result<Option<IpAddr>> {
        Ok(None)
    }
    fn disconnect(&mut self, _: &ContainerRecord) {}
}

/// Output streams for [`execute`]: inherit the caller's, or these fds.
pub struct Streams {
    /// Standard output of the container's process.
    pub stdout: Option<OwnedFd>,
    /// Standard error of the container's process.
    pub stderr: Option<OwnedFd>,
    /// Standard input (default: inherited).
    pub stdin: Option<OwnedFd>,
    /// A console socket: the process runs on a terminal whose master the
    /// runtime sends there (the streams above are then unused).
    pub console: Option<PathBuf>,
}

/// Refuses an image whose `/proc`, `/sys` or `/dev` is anything but a
/// directory (a symlink out of the root, a file): the runtime mounts
/// filesystems there and writes through them (sysctls, masks, device
/// nodes and links), so they must be the container's own (catalog RT-06,
/// RT-10). The runtime refuses such an image too, without saying why.
fn kernel_mount_points(merged: &Path, image: &str) -> Result<()> {
    // `/dev` too: the runtime makes its nodes and links by path under it.
    for top in ["proc", "sys", "dev"] {
        let what = match std::fs::symlink_metadata(merged.join(top)) {
            Err(_) => continue,
            Ok(m) if m.is_dir() => continue,
            Ok(m) if m.file_type().is_symlink() => "a symbolic link",
            Ok(_) => "not a directory",
        };
        return Err(Error::Conflict(format!(
            "image {image}: /{top} is {what}; a filesystem of the container's own is \
             mounted there, so it must be a directory of the image's own"
        )));
    }
    Ok(())
}

/// Docker's `/etc/hosts` for a container before its own line.
const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
    fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// Names the container's address after its hostname in its `/etc/hosts`,
/// as the last line, as Docker does (programs that look up their own name
/// to tell peers where they are get an address the peers can reach). The
/// line a previous start added goes: the address may have changed. The
/// file is written over in place, since the container has it bind-mounted.
fn name_own_address(dir: &Path, ip: IpAddr) -> Result<()> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))
    };
    let hostname = read("hostname")?.trim().to_string();
    let hosts = read("hosts")?;
    let mut lines: Vec<&str> = hosts.lines().collect();
    let own = |l: &str| {
        l.split_once('\t')
            .is_some_and(|(a, n)| n == hostname && a.parse::<IpAddr>().is_ok())
    };
    if lines.last().is_some_and(|l| own(l)) {
        lines.pop();
    }
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text.push_str(&format!("{ip}\t{hostname}\n"));
    crate::fsutil::write_in_place(&dir.join("hosts"), text.as_bytes())
}

/// Whether a container has a network namespace of its own that berth
/// makes (see [`super::netns`]): not the host's or another container's,
/// and not in a user namespace, which must own it (the runtime makes it
/// there).
fn owns_netns(network_mode: &str, userns: bool) -> bool {
    !userns && network_mode != "host" && !network_mode.starts_with("container:")
}

/// The network namespace of the running container `target`, which the
/// container `name` (whose directory is `dir`) joins.
fn joined_netns(dir: &Path, target: &str, name: &str) -> Result<PathBuf> {
    // `dir` is `<root>/containers/<id>`.
    let root = dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    let (_, t) = find(root, target).map_err(|_| {
        Error::Conflict(format!(
            "container {name}: the container whose network it joins is gone"
        ))
    })?;
    let pid = t.pid.filter(|_| t.status == "running").ok_or_else(|| {
        Error::Conflict(format!(
            "container {name}: the container whose network it joins ({}) is not running",
            t.name
        ))
    })?;
    Ok(PathBuf::from(format!("/proc/{pid}/ns/net")))
}

/// Starts a prepared container and hands its init pid to `wait`, which
/// returns the exit code (128 + signal when killed) once the init is gone.
/// The libcontainer state is deleted afterwards; the root stays mounted.
pub fn execute(
    p: &mut Prepared,
    streams: Streams,
    wait: &mut dyn FnMut(i32) -> Result<i32>,
    net: &mut dyn Network,
) -> Result<i32> {
    let name = p.record.name.clone();
    let lc = |e: libcontainer::error::LibcontainerError| {
        Error::Conflict(format!("container {name}: {e}"))
    };
    // `network connect`/`disconnect` change the record under a running
    // supervisor: each start joins the networks it lists now.
    p.refresh_networks();
    // A previous run's state, from a supervisor that was killed (or from
    // a berth that kept it under `state/`).
    let runtime = PathBuf::from(RUNTIME_DIR);
    for stale in [
        p.dir.join(&p.record.id),
        p.dir.join("state"),
        runtime.join(&p.record.id),
    ] {
        if stale.exists() {
            remove_dir(&stale)?;
        }
    }
    crate::fsutil::private_dir(&runtime)?;
    // The network namespace the init joins: another container's (its init
    // of now: it may have restarted since), or its own, made here unless
    // `prepare` made it; in a user namespace, the init makes it.
    let (made, netns) = match p.record.network_mode.strip_prefix("container:") {
        Some(target) => (None, Some(joined_netns(&p.dir, target, &name)?)),
        None if owns_netns(&p.record.network_mode, p.record.userns.is_some()) => {
            let ns = match p.netns.take() {
                Some(ns) => ns,
                None => super::netns::create()?,
            };
            let path = super::netns::path_of(&ns);
            (Some(ns), Some(path))
        }
        None => (None, None),
    };
    if let Some(root) = p.dir.parent().and_then(Path::parent) {
        super::seccomp::cache::use_root(root);
    }
    // Before the clone, so that the runtime's processes find them read
    // (a no-op after `prepare`): read in each would cost 0.3 ms a start.
    libcgroups::v1::util::preload();
    let pins = super::mounts::pin_subpaths(p.root(), &p.record.mounts)?;
    let mut builder = ContainerBuilder::new(p.record.id.clone(), SyscallType::Linux)
        .with_root_path(&runtime)
        .map_err(lc)?
        .with_console_socket(streams.console.as_deref());
    if let Some(fd) = streams.stdout {
        builder = builder.with_stdout(fd);
    }
    if let Some(fd) = streams.stderr {
        builder = builder.with_stderr(fd);
    }
    if let Some(fd) = streams.stdin {
        builder = builder.with_stdin(fd);
    }
    let mut init = builder
        .as_init(bundle_dir(&p.dir))
        .with_systemd(false)
        .with_detach(streams.console.is_some());
    if let Some(path) = netns {
        init = init.with_namespace_path(LinuxNamespaceType::Network, path);
    }
    let mut container = init.build().map_err(lc)?;
    // The init has joined it, and made its mounts.
    drop(made);
    drop(pins);
    let code = (|| {
        let pid = container
            .pid()
            .ok_or_else(|| Error::Conflict(format!("container {name}: no init process")))?;
        let runtime_made_netns =
            p.record.userns.is_some() && owns_netns(&p.record.network_mode, false);
        if runtime_made_netns {
            super::netns::loopback_up_of(pid.as_raw())?;
        }
        let address = net.connect(&p.record, pid.as_raw())?;
        // Its name files are its own unless it joined another's network.
        if let Some(ip) = address.filter(|_| !p.record.network_mode.starts_with("container:")) {
            name_own_address(&p.dir, ip)?;
        }
        container.start().map_err(lc)?;
        p.record.status = "running".into();
        p.record.pid = Some(pid.as_raw());
        p.record.pid_start = process_start(pid.as_raw());
        p.record.started = Some(rfc3339(now()));
        p.record.exit_code = None;
        p.save()?;
        crate::events::container(p.root(), "start", &p.record, &[]);
        wait(pid.as_raw())
    })();
    // Read before the cgroup goes with the container.
    let oom_killed = super::stats::oom_kills(&p.record.id) > 0;
    let _ = container.refresh_status();
    let deleted = container.delete(true).map_err(lc);
    p.refresh_networks();
    net.disconnect(&p.record);
    let code = code?;
    deleted?;
    // Re-read: `stop` may have marked the exit as asked for meanwhile.
    let current = load_record(&p.dir).unwrap_or_else(|_| p.record.clone());
    p.record.stopped_by_user = current.stopped_by_user;
    p.record.status = "exited".into();
    p.record.exit_code = Some(code);
    p.record.oom_killed = oom_killed;
    p.record.pid = None;
    p.record.pid_start = None;
    p.record.finished = Some(rfc3339(now()));
    // Before the record says exited: `stop` waits for that, and its own
    // event comes after this one.
    if oom_killed {
        crate::events::container(p.root(), "oom", &p.record, &[]);
    }
    crate::events::container(
        p.root(),
        "die",
        &p.record,
        &[("exitCode", code.to_string())],
    );
    p.save()?;
    Ok(code)
}

/// Removes a stopped container: root unmounted, directory and (with
/// `volumes`) its anonymous volumes removed.
pub fn remove(root: &Path, dir: &Path, record: &ContainerRecord, volumes: bool) -> Result<()> {
    super::shim::wait_supervisor_gone(record, std::time::Duration::from_secs(5));
    // A supervisor that was killed leaves libcontainer's state (and the
    // cgroup) behind: delete it through libcontainer, which kills what is
    // left of the container and removes its cgroup.
    let state = state_root(dir, &record.id).join(&record.id);
    if state.exists()
        && let Ok(mut c) = libcontainer::container::Container::load(state)
    {
        c.delete(true)
            .map_err(|e| Error::Conflict(format!("container {}: {e}", record.name)))?;
    }
    ContainerFs::of(dir).unmount()?;
    // Out of sight first, in one step: a kill during the removal leaves a
    // `.removing-` directory that `collect_orphans` finishes, never a
    // container with half its files.
    let trash = dir.with_file_name(format!(".removing-{}", record.id));
    match std::fs::rename(dir, &trash) {
        Ok(()) => {}
        // Removed meanwhile by its supervisor (`--rm`) or another `rm`.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    }
    crate::events::container(root, "destroy", record, &[]);
    // A remapped container's directories are owned and mounted for its
    // range: those are not for another.
    if record.userns.is_some() || !super::spares::keep(root, &trash, &record.id) {
        remove_dir(&trash)?;
    }
    if volumes {
        let store = VolumeStore::open(root)?;
        for v in &record.anonymous_volumes {
            let _ = store.remove(v, &|_| false);
        }
    }
    Ok(())
}

/// The anonymous volumes of a container, by the path they are mounted at.
pub fn anonymous_by_target(record: &ContainerRecord) -> std::collections::BTreeMap<String, String> {
    record
        .mounts
        .iter()
        .filter_map(|m| match m {
            MountRequest::Volume {
                name: Some(n),
                target,
                ..
            } if record.anonymous_volumes.contains(n) => Some((target.clone(), n.clone())),
            _ => None,
        })
        .collect()
}

/// The container's mounts: its own, then those of `volumes_from`
/// containers, then an anonymous volume for each of the image's `VOLUME`s;
/// the first mount at a path wins.
fn mount_requests(
    root: &Path,
    req: &RunRequest,
    image_volumes: Option<&std::collections::BTreeMap<String, serde_json::Value>>,
) -> Result<Vec<MountRequest>> {
    let target = |m: &MountRequest| match m {
        MountRequest::Bind { target, .. }
        | MountRequest::Volume { target, .. }
        | MountRequest::Tmpfs { target, .. } => target.clone(),
    };
    let mut out = req.mounts.clone();
    for from in &req.volumes_from {
        let (name, mode) = match from.rsplit_once(':') {
            Some((n, m)) if m == "ro" || m == "rw" => (n, Some(m == "ro")),
            _ => (from.as_str(), None),
        };
        let (_, source) = find(root, name)
            .map_err(|_| Error::Conflict(format!("volumes_from {name}: no such container")))?;
        for mut m in source.mounts {
            // tmpfs are private to each container.
            if matches!(m, MountRequest::Tmpfs { .. })
                || out.iter().any(|o| target(o) == target(&m))
            {
                continue;
            }
            if let Some(ro) = mode {
                match &mut m {
                    MountRequest::Bind { read_only, .. }
                    | MountRequest::Volume { read_only, .. } => *read_only = ro,
                    MountRequest::Tmpfs { .. } => {}
                }
            }
            out.push(m);
        }
    }
    for path in image_volumes.into_iter().flat_map(|v| v.keys()) {
        let m = MountRequest::Volume {
            name: None,
            target: path.clone(),
            read_only: false,
            nocopy: false,
            subpath: None,
        };
        if !out.iter().any(|o| target(o) == target(&m)) {
            out.push(m);
        }
    }
    Ok(out)
}

/// An image's `Healthcheck` (durations in nanoseconds, as Docker stores them).
fn image_healthcheck(v: Option<&serde_json::Value>) -> Option<super::health::HealthConfig> {
    let v = v?;
    let test: Vec<String> = v["Test"]
        .as_array()?
        .iter()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    let ns = |k: &str| std::time::Duration::from_nanos(v[k].as_u64().unwrap_or(0));
    super::health::HealthConfig::new(
        &test,
        ns("Interval"),
        ns("Timeout"),
        v["Retries"].as_u64().unwrap_or(0),
        ns("StartPeriod"),
        ns("StartInterval"),
    )
}

/// Waits for `pid` (a child of this process) and returns its exit code.
pub fn wait_blocking(pid: i32) -> Result<i32> {
    let pid =
        rustix::process::Pid::from_raw(pid).ok_or_else(|| Error::Conflict("invalid pid".into()))?;
    let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        .map_err(|e| Error::Conflict(format!("waiting for the container: {e}")))?
        .map(|(_, s)| s);
    Ok(match status {
        Some(s) => match (s.exit_status(), s.terminating_signal()) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            _ => 255,
        },
        None => 255,
    })
}

/// Runs a container to completion with the caller's standard streams, and
/// returns its exit code (128 + signal when killed by a signal).
pub fn run_foreground(
    root: &Path,
    images: &ImageStore,
    req: &RunRequest,
    net: &mut dyn Network,
) -> Result<i32> {
    let mut p = prepare_for(root, images, req, Start::Next)?;
    let console = if req.process.tty {
        Some(super::tty::ConsoleSocket::new()?)
    } else {
        None
    };
    let streams = Streams {
        stdout: None,
        stderr: None,
        stdin: None,
        console: console.as_ref().map(super::tty::ConsoleSocket::path),
    };
    let mut wait = |pid: i32| match &console {
        Some(c) => super::tty::relay(c.receive()?, pid),
        None => wait_blocking(pid),
    };
    let result = execute(&mut p, streams, &mut wait, net);
    let unmounted = p.fs.unmount();
    if req.remove || result.is_err() {
        remove(root, &p.dir, &p.record, true)?;
    }
    unmounted?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container_dir(root: &Path, id: &str, record: &[u8], age_secs: u64) -> PathBuf {
        let dir = containers_dir(root).join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(RECORD_FILE), record).unwrap();
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
        std::fs::File::open(&dir)
            .unwrap()
            .set_modified(then)
            .unwrap();
        dir
    }

    #[test]
    fn what_no_creator_holds_is_collected_and_records_are_kept() {
        let root = tempfile::tempdir().unwrap();
        let lost = container_dir(root.path(), "lost", b"", 0);
        let busy = container_dir(root.path(), "busy", b"", 0);
        let held = std::fs::File::open(&busy).unwrap();
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let kept = container_dir(root.path(), "kept", b"{}", 0);
        let young = container_dir(root.path(), &format!("{STAGING}young"), b"", 0);
        let stale = container_dir(root.path(), &format!("{STAGING}stale"), b"", 120);
        collect_orphans(root.path());
        assert!(
            !lost.exists(),
            "an unlocked directory with an empty record is garbage"
        );
        assert!(busy.exists(), "its creator holds it");
        assert!(kept.exists(), "a written record is a container");
        assert!(young.exists(), "its creator may not have locked it yet");
        assert!(!stale.exists(), "a minute is more than any creator takes");
    }
}
