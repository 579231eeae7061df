//! The OCI runtime spec of a container: what to run (the image's
//! entrypoint and command with the request's overrides), as whom, and with
//! Docker's defaults for capabilities, mounts, masked and read-only paths.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBlockIoBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, MountBuilder, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};

use crate::error::{Error, Result};
use crate::image::config::RunConfig;

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Docker's masked paths.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// [`MASKED_PATHS`] and, as Docker masks them since 2025 (a side channel
/// on CPU temperature, GHSA-6fw5-f8r9-fgfm), each of this host's CPUs'
/// `thermal_throttle` directory.
fn masked_paths() -> Vec<String> {
    // The host's CPUs, looked up once per process.
    static THROTTLES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let mut paths: Vec<String> = MASKED_PATHS.iter().map(|s| s.to_string()).collect();
    paths.extend(THROTTLES.get_or_init(cpu_throttles).iter().cloned());
    paths
}

fn cpu_throttles() -> Vec<String> {
    let cpus = Path::new("/sys/devices/system/cpu");
    let mut throttles: Vec<String> = std::fs::read_dir(cpus)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let n = name.strip_prefix("cpu")?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(name)
        })
        .map(|cpu| cpus.join(cpu).join("thermal_throttle"))
        .filter(|p| p.exists())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    throttles.sort();
    throttles
}

/// Docker's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Every capability berth holds (`privileged`).
fn all_capabilities() -> HashSet<Capability> {
    let held = held_capabilities();
    CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| held & (1u64 << i) != 0)
        .filter_map(|(_, n)| capability(n).ok())
        .collect()
}

/// Capability names in kernel order (bit 0 first).
const CAPABILITY_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities berth itself may hand out (its permitted set): a
/// container cannot be given more.
fn held_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapPrm:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// Parses a capability name (`NET_ADMIN` or `CAP_NET_ADMIN`).
pub fn capability(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full.clone()))
        .map_err(|_| Error::Conflict(format!("unknown capability {name:?}")))
}

/// The process of a container: command line, environment, working dir.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessRequest {
    /// Replaces the image's CMD.
    pub cmd: Option<Vec<String>>,
    /// Replaces the image's ENTRYPOINT (and then its CMD too).
    pub entrypoint: Option<Vec<String>>,
    /// Extra `KEY=VALUE` pairs over the image's.
    pub env: Vec<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Resolved user: uid, gid, supplementary gids.
    pub user: (u32, u32, Vec<u32>),
    /// Capabilities to add.
    pub cap_add: Vec<String>,
    /// Capabilities to drop (`ALL` drops every one).
    pub cap_drop: Vec<String>,
    /// `security_opt`: `seccomp=unconfined|FILE`, `no-new-privileges[=true]`.
    pub security_opt: Vec<String>,
    /// `ulimits`: (name as in `nofile`, soft, hard). Unset limits are
    /// inherited, as Docker's containers inherit the daemon's.
    pub ulimits: Vec<(String, u64, u64)>,
    /// `sysctls`, namespaced ones only.
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// `oom_score_adj`.
    pub oom_score_adj: Option<i32>,
    /// `shm_size` in bytes (Docker's default: 64 MiB).
    pub shm_size: Option<u64>,
    /// `init: true`: a reaping init (tini) runs as PID 1, the command under it.
    pub init: bool,
    /// Run on a terminal (`run -t`, foreground only).
    pub tty: bool,
    /// `privileged`: every capability and host device, no seccomp filter,
    /// no masked or read-only paths.
    pub privileged: bool,
    /// `devices`: host devices given to the container.
    pub devices: Vec<super::devices::Device>,
}

/// Where the init of `init: true` appears in the container, as with Docker.
const INIT_PATH: &str = "/sbin/docker-init";

/// The host's static tini, bind-mounted read-only as the container's init:
/// static, so it runs whatever the image's C library.
fn init_binary() -> Result<PathBuf> {
    ["/usr/bin/tini-static", "/usr/bin/docker-init"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Conflict(
                "init: true needs a static tini on the host: apt-get install tini".into(),
            )
        })
}

/// `nofile` → RLIMIT_NOFILE, for every limit `ulimit` knows.
fn rlimit_type(name: &str) -> Result<oci_spec::runtime::PosixRlimitType> {
    use oci_spec::runtime::PosixRlimitType as T;
    Ok(match name {
        "as" => T::RlimitAs,
        "core" => T::RlimitCore,
        "cpu" => T::RlimitCpu,
        "data" => T::RlimitData,
        "fsize" => T::RlimitFsize,
        "locks" => T::RlimitLocks,
        "memlock" => T::RlimitMemlock,
        "msgqueue" => T::RlimitMsgqueue,
        "nice" => T::RlimitNice,
        "nofile" => T::RlimitNofile,
        "nproc" => T::RlimitNproc,
        "rss" => T::RlimitRss,
        "rtprio" => T::RlimitRtprio,
        "rttime" => T::RlimitRttime,
        "sigpending" => T::RlimitSigpending,
        "stack" => T::RlimitStack,
        _ => return Err(Error::Conflict(format!("ulimits: unknown limit {name:?}"))),
    })
}

/// Refuses a sysctl that is not namespaced (it would change the host), as
/// Docker does; `net.*` only when the container has its own network.
pub fn check_sysctl(key: &str, host_network: bool) -> Result<()> {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        return Ok(());
    }
    if key.starts_with("net.") {
        if host_network {
            return Err(Error::Conflict(format!(
                "sysctl {key}: not allowed with the host's network (it would change the host)"
            )));
        }
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "sysctl {key}: not namespaced, so it would change the host; only net.*, kernel.msg*, kernel.sem, kernel.shm* and fs.mqueue.* are allowed"
    )))
}

/// What `security_opt` asks for.
struct Security {
    /// The seccomp profile file, `unconfined`, or none for the default.
    seccomp: Option<String>,
    no_new_privileges: bool,
}

fn security(opts: &[String]) -> Result<Security> {
    let mut out = Security {
        seccomp: None,
        no_new_privileges: false,
    };
    for o in opts {
        // Docker takes both `key=value` and the older `key:value`.
        let (key, value) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match key {
            "seccomp" if !value.is_empty() => out.seccomp = Some(value.to_string()),
            "no-new-privileges" => {
                out.no_new_privileges = match value {
                    "" | "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::Conflict(format!(
                            "security_opt {o:?}: no-new-privileges takes true or false"
                        )));
                    }
                }
            }
            // No LSM is loaded for containers here: accepted, as Docker
            // does on hosts without AppArmor or SELinux.
            "apparmor" | "label" => {}
            _ => {
                return Err(Error::Conflict(format!(
                    "security_opt {o:?}: expected seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false], apparmor=… or label=…"
                )));
            }
        }
    }
    Ok(out)
}

/// The command line to run, with Docker's ENTRYPOINT/CMD rules.
pub fn command_line(image: &RunConfig, req: &ProcessRequest) -> Result<Vec<String>> {
    let (entry, cmd) = match &req.entrypoint {
        Some(e) => (e.clone(), req.cmd.clone().unwrap_or_default()),
        None => (
            image.entrypoint.clone().unwrap_or_default(),
            req.cmd
                .clone()
                .or_else(|| image.cmd.clone())
                .unwrap_or_default(),
        ),
    };
    let args: Vec<String> = entry.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::Conflict(
            "no command specified: the image has no CMD or ENTRYPOINT".into(),
        ));
    }
    Ok(args)
}

/// The environment, as Docker composes it: its own defaults (`PATH`,
/// `HOSTNAME`, and `TERM=xterm` on a terminal), then the image's variables
/// and the request's, each replacing a variable of the same name where it
/// stands or coming after.
pub fn environment(image: &RunConfig, extra: &[String], hostname: &str, tty: bool) -> Vec<String> {
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".into());
    }
    for e in image.env.iter().flatten().chain(extra) {
        let key = e.split('=').next().unwrap_or(e);
        match env.iter_mut().find(|x| x.split('=').next() == Some(key)) {
            Some(x) => x.clone_from(e),
            None => env.push(e.clone()),
        }
    }
    env
}

/// Refuses a working directory through `/proc`'s links to a process's
/// open files, root or cwd (`/proc/self/fd/3`): at the runtime's `chdir`
/// they can still name a directory of the host (CVE-2024-21626). The
/// runtime refuses them too, without saying why.
pub fn check_workdir(dir: String) -> Result<String> {
    let parts: Vec<&str> = dir
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let magic = parts.len() >= 3
        && parts[0] == "proc"
        && matches!(
            parts[2],
            "fd" | "fdinfo" | "cwd" | "root" | "map_files" | "task"
        );
    if magic {
        return Err(Error::Conflict(format!(
            "working directory {dir}: a path through /proc's links to open files can lead \
             outside the container (CVE-2024-21626)"
        )));
    }
    Ok(dir)
}

/// Resource limits, with Docker's flag semantics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// `-m`: memory limit in bytes.
    pub memory: Option<i64>,
    /// `--memory-swap`: memory plus swap in bytes, -1 for unlimited swap.
    /// Unset with `-m` set means as much swap again as memory.
    pub memory_swap: Option<i64>,
    /// `--memory-reservation`: soft limit in bytes.
    pub memory_reservation: Option<i64>,
    /// `-c` / `--cpu-shares`: relative CPU weight.
    pub cpu_shares: Option<u64>,
    /// `--cpus`: CPUs' worth of time, as millicpus (1500 = 1.5 CPUs).
    pub millicpus: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`.
    pub blkio_weight: Option<u16>,
    /// `--blkio-weight-device`: a block device's path and its weight.
    pub blkio_weight_device: Vec<(PathBuf, u16)>,
    /// `--device-read-bps` and its kin.
    pub throttle: Vec<Throttle>,
}

/// One per-device block-IO limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// What is limited.
    pub kind: ThrottleKind,
    /// The block device's path on the host.
    pub device: PathBuf,
    /// Bytes or operations per second.
    pub rate: u64,
}

/// What a [`Throttle`] limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThrottleKind {
    /// `--device-read-bps`.
    ReadBps,
    /// `--device-write-bps`.
    WriteBps,
    /// `--device-read-iops`.
    ReadIops,
    /// `--device-write-iops`.
    WriteIops,
}

impl ThrottleKind {
    /// The flag that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            ThrottleKind::ReadBps => "device-read-bps",
            ThrottleKind::WriteBps => "device-write-bps",
            ThrottleKind::ReadIops => "device-read-iops",
            ThrottleKind::WriteIops => "device-write-iops",
        }
    }
}

fn oci(e: oci_spec::OciSpecError) -> Error {
    Error::Conflict(format!("building the runtime spec: {e}"))
}

/// The major and minor numbers of the block device at `path`.
fn block_device(path: &Path, flag: &str) -> Result<(i64, i64)> {
    let st = rustix::fs::stat(path)
        .map_err(|e| Error::Conflict(format!("{flag} {}: {e}", path.display())))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::BlockDevice {
        return Err(Error::Conflict(format!(
            "{flag} {}: not a block device",
            path.display()
        )));
    }
    let dev = st.st_rdev;
    Ok((
        i64::from(rustix::fs::major(dev)),
        i64::from(rustix::fs::minor(dev)),
    ))
}

/// `blockIO` of the runtime spec, when any of its limits is set.
fn block_io(r: &Resources) -> Result<Option<oci_spec::runtime::LinuxBlockIo>> {
    if r.blkio_weight.is_none() && r.blkio_weight_device.is_empty() && r.throttle.is_empty() {
        return Ok(None);
    }
    let mut b = LinuxBlockIoBuilder::default();
    if let Some(w) = r.blkio_weight {
        b = b.weight(w);
    }
    let mut weights = Vec::new();
    for (path, w) in &r.blkio_weight_device {
        let (major, minor) = block_device(path, "blkio-weight-device")?;
        weights.push(
            oci_spec::runtime::LinuxWeightDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .weight(*w)
                .build()
                .map_err(oci)?,
        );
    }
    if !weights.is_empty() {
        b = b.weight_device(weights);
    }
    let mut by_kind: BTreeMap<ThrottleKind, Vec<oci_spec::runtime::LinuxThrottleDevice>> =
        BTreeMap::new();
    for t in &r.throttle {
        let (major, minor) = block_device(&t.device, t.kind.flag())?;
        by_kind.entry(t.kind).or_default().push(
            oci_spec::runtime::LinuxThrottleDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .rate(t.rate)
                .build()
                .map_err(oci)?,
        );
    }
    for (kind, devices) in by_kind {
        b = match kind {
            ThrottleKind::ReadBps => b.throttle_read_bps_device(devices),
            ThrottleKind::WriteBps => b.throttle_write_bps_device(devices),
            ThrottleKind::ReadIops => b.throttle_read_iops_device(devices),
            ThrottleKind::WriteIops => b.throttle_write_iops_device(devices),
        };
    }
    Ok(Some(b.build().map_err(oci)?))
}

/// A bind mount of a file or directory into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// Host path.
    pub source: PathBuf,
    /// Container path.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
}

/// A tmpfs mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tmpfs {
    /// Container path.
    pub target: String,
    /// Size limit in bytes (0: none but the kernel's).
    pub size: u64,
    /// Permission bits (0: 1777).
    pub mode: u32,
}

/// Everything the OCI spec of one container is made from.
pub struct SpecRequest<'a> {
    /// The mounted root filesystem.
    pub rootfs: &'a Path,
    /// The image's run configuration.
    pub image: &'a RunConfig,
    /// The process request.
    pub process: &'a ProcessRequest,
    /// Host name.
    pub hostname: &'a str,
    /// cgroup path.
    pub cgroup: &'a str,
    /// Read-only root.
    pub read_only: bool,
    /// Bind mounts.
    pub binds: &'a [Bind],
    /// Resource limits.
    pub resources: &'a Resources,
    /// Share the host's network namespace (`network_mode: host`).
    pub host_network: bool,
    /// tmpfs mounts.
    pub tmpfs: &'a [Tmpfs],
    /// A user namespace with these ids.
    pub userns: Option<&'a super::userns::IdRange>,
}

/// The complete OCI spec for one container.
pub fn build(r: &SpecRequest<'_>) -> Result<Spec> {
    let (rootfs, image, req, hostname, cgroup, read_only, binds, resources) = (
        r.rootfs,
        r.image,
        r.process,
        r.hostname,
        r.cgroup,
        r.read_only,
        r.binds,
        r.resources,
    );
    let mut caps: HashSet<Capability> = if req.privileged {
        all_capabilities()
    } else if req.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        HashSet::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|c| capability(c))
            .collect::<Result<_>>()?
    };
    for c in &req.cap_drop {
        if !c.eq_ignore_ascii_case("ALL") {
            caps.remove(&capability(c)?);
        }
    }
    let held = held_capabilities();
    for c in &req.cap_add {
        let cap = capability(c)?;
        let index = CAPABILITY_NAMES
            .iter()
            .position(|n| capability(n).ok() == Some(cap));
        if index.is_some_and(|i| held & (1u64 << i) == 0) {
            return Err(Error::Conflict(format!(
                "cap_add {c}: berth itself does not hold this capability, so it cannot give it"
            )));
        }
        caps.insert(cap);
    }
    // Inheritable and ambient sets stay empty (CVE-2022-24769), and a
    // non-root user starts without effective or permitted capabilities, as
    // with Docker. Both are set explicitly: the builder's defaults are not empty.
    let running = if req.user.0 == 0 {
        caps.clone()
    } else {
        HashSet::new()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(running.clone())
        .permitted(running)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(oci)?;
    let security = security(&req.security_opt)?;
    let seccomp = match &security.seccomp {
        None if req.privileged => None,
        None => Some(super::seccomp::default_profile(&caps)?),
        Some(value) => super::seccomp::from_option(value)?,
    };
    let user = UserBuilder::default()
        .uid(req.user.0)
        .gid(req.user.1)
        .additional_gids(req.user.2.clone())
        .build()
        .map_err(oci)?;
    let process = ProcessBuilder::default()
        .args({
            let mut args = command_line(image, req)?;
            if req.init {
                args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
            }
            args
        })
        .env(environment(image, &req.env, hostname, req.tty))
        .cwd(check_workdir(
            req.workdir
                .clone()
                .or_else(|| image.working_dir.clone())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
        )?)
        .user(user)
        .capabilities(capabilities)
        .terminal(req.tty)
        .build()
        .map_err(oci)?;
    // `libcontainer` loads the filter while it still holds CAP_SYS_ADMIN only
    // when the field is absent: `Some(false)` would make it load the filter
    // after dropping capabilities, without no_new_privs, and fail.
    let mut process = process;
    process.set_no_new_privileges(security.no_new_privileges.then_some(true));
    let rlimits = req
        .ulimits
        .iter()
        .map(|(name, soft, hard)| {
            oci_spec::runtime::PosixRlimitBuilder::default()
                .typ(rlimit_type(name)?)
                .soft(*soft)
                .hard(*hard)
                .build()
                .map_err(oci)
        })
        .collect::<Result<Vec<_>>>()?;
    process.set_rlimits((!rlimits.is_empty()).then_some(rlimits));
    process.set_oom_score_adj(req.oom_score_adj);
    let mut spec = Spec::default();
    if security.seccomp.is_none() {
        spec.set_annotations(Some(
            [(
                "io.berth.seccomp.profile".to_string(),
                super::seccomp::PROFILE_VERSION.to_string(),
            )]
            .into(),
        ));
    }
    spec.set_process(Some(process));
    spec.set_hostname(Some(hostname.to_string()));
    spec.set_root(Some(
        RootBuilder::default()
            .path(rootfs.to_path_buf())
            .readonly(read_only)
            .build()
            .map_err(oci)?,
    ));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    // Docker's /proc: nothing set-uid, executable or a device from it.
    for m in mounts
        .iter_mut()
        .filter(|m| m.destination() == Path::new("/proc"))
    {
        m.set_options(Some(["nosuid", "noexec", "nodev"].map(String::from).into()));
    }
    if req.privileged {
        // A privileged container may write /sys and its cgroups, as with
        // Docker.
        for m in mounts.iter_mut().filter(|m| {
            m.destination() == Path::new("/sys") || m.destination() == Path::new("/sys/fs/cgroup")
        }) {
            let options = m.options().clone().unwrap_or_default();
            m.set_options(Some(options.into_iter().filter(|o| o != "ro").collect()));
        }
    }
    if let Some(size) = req.shm_size {
        for m in mounts
            .iter_mut()
            .filter(|m| m.destination() == Path::new("/dev/shm"))
        {
            let mut options: Vec<String> = m
                .options()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|o| !o.starts_with("size="))
                .collect();
            options.push(format!("size={}k", size.div_ceil(1024)));
            m.set_options(Some(options));
        }
    }
    for b in binds {
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        if b.read_only {
            options.push("ro".into());
        }
        mounts.push(
            MountBuilder::default()
                .destination(PathBuf::from(&b.target))
                .typ("bind")
                .source(b.source.clone())
                .options(options)
                .build()
                .map_err(oci)?,
        );
    }
    if req.init {
        mounts.push(
            MountBuilder::default()
                .destination(PathBuf::from(INIT_PATH))
                .typ("bind")
                .source(init_binary()?)
                .options(vec![
                    "bind".to_string(),
                    "ro".to_string(),
                    "nosuid".to_string(),
                ])
                .build()
                .map_err(oci)?,
        );
    }
    for t in r.tmpfs {
        // Docker's defaults: no executables, no set-uid, no devices.
        let mut options = vec![
            "nosuid".to_string(),
            "nodev".to_string(),
            "noexec".to_string(),
            format!("mode={:o}", if t.mode == 0 { 0o1777 } else { t.mode }),
        ];
        if t.size != 0 {
            options.push(format!("size={}", t.size));
        }
        mounts.push(
            MountBuilder::default()
                .destination(PathBuf::from(&t.target))
                .typ("tmpfs")
                .source("tmpfs")
                .options(options)
                .build()
                .map_err(oci)?,
        );
    }
    spec.set_mounts(Some(mounts));
    if let Some(linux) = spec.linux_mut() {
        let mut res = linux.resources().clone().unwrap_or_default();
        if resources.memory.is_some() || resources.memory_reservation.is_some() {
            let mut m = LinuxMemoryBuilder::default();
            if let Some(limit) = resources.memory {
                m = m.limit(limit);
                // Docker: `-m` alone allows as much swap again.
                let swap = match resources.memory_swap {
                    Some(-1) => -1,
                    Some(total) => total,
                    None => limit.saturating_mul(2),
                };
                m = m.swap(swap);
            }
            if let Some(r) = resources.memory_reservation {
                m = m.reservation(r);
            }
            res.set_memory(Some(m.build().map_err(oci)?));
        }
        if resources.cpu_shares.is_some()
            || resources.millicpus.is_some()
            || resources.cpuset_cpus.is_some()
        {
            let mut c = LinuxCpuBuilder::default();
            if let Some(sh) = resources.cpu_shares {
                c = c.shares(sh);
            }
            if let Some(m) = resources.millicpus {
                c = c
                    .period(100_000u64)
                    .quota(i64::try_from(m * 100).unwrap_or(i64::MAX));
            }
            if let Some(set) = &resources.cpuset_cpus {
                c = c.cpus(set.clone());
            }
            res.set_cpu(Some(c.build().map_err(oci)?));
        }
        if let Some(p) = resources.pids_limit {
            res.set_pids(Some(
                LinuxPidsBuilder::default().limit(p).build().map_err(oci)?,
            ));
        }
        res.set_block_io(block_io(resources)?);
        linux.set_resources(Some(res));
        linux.set_cgroups_path(Some(PathBuf::from(cgroup)));
        if r.host_network {
            let namespaces = linux.namespaces().clone().unwrap_or_default();
            linux.set_namespaces(Some(
                namespaces
                    .into_iter()
                    .filter(|n| n.typ() != LinuxNamespaceType::Network)
                    .collect(),
            ));
        }
        linux.set_seccomp(seccomp);
        if let Some(range) = r.userns {
            let mut namespaces = linux.namespaces().clone().unwrap_or_default();
            namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::User)
                    .build()
                    .map_err(oci)?,
            );
            linux.set_namespaces(Some(namespaces));
            let map = |host: u32| {
                LinuxIdMappingBuilder::default()
                    .container_id(0u32)
                    .host_id(host)
                    .size(range.size)
                    .build()
                    .map_err(oci)
            };
            linux.set_uid_mappings(Some(vec![map(range.uid)?]));
            linux.set_gid_mappings(Some(vec![map(range.gid)?]));
        }
        for key in req.sysctls.keys() {
            check_sysctl(key, r.host_network)?;
        }
        if !req.sysctls.is_empty() {
            linux.set_sysctl(Some(
                req.sysctls
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ));
        }
        // Privileged: none at all (not oci-spec's defaults), as with Docker.
        let (masked, readonly) = if req.privileged {
            (Vec::new(), Vec::new())
        } else {
            (
                masked_paths(),
                READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
            )
        };
        linux.set_masked_paths(Some(masked));
        linux.set_readonly_paths(Some(readonly));
        let (mut nodes, mut rules) = super::devices::mapped(&req.devices)?;
        if req.privileged {
            let (all, any) = super::devices::all_host()?;
            nodes.extend(all);
            rules.extend(any);
        }
        if !nodes.is_empty() || !rules.is_empty() {
            let mut res = linux.resources().clone().unwrap_or_default();
            let mut cg = res.devices().clone().unwrap_or_default();
            cg.extend(rules);
            res.set_devices(Some(cg));
            linux.set_resources(Some(res));
            let mut devs = linux.devices().clone().unwrap_or_default();
            devs.extend(nodes);
            linux.set_devices(Some(devs));
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_dockers_defaults_then_the_images_then_the_requests() {
        let image = RunConfig {
            env: Some(vec!["PATH=/bin".into(), "A=image".into(), "B=image".into()]),
            ..RunConfig::default()
        };
        assert_eq!(
            environment(&image, &["B=run".into(), "C=run".into()], "box", true),
            [
                "PATH=/bin",
                "HOSTNAME=box",
                "TERM=xterm",
                "A=image",
                "B=run",
                "C=run"
            ]
        );
        assert_eq!(
            environment(
                &RunConfig::default(),
                &["HOSTNAME=mine".into()],
                "box",
                false
            ),
            [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME=mine"
            ]
        );
    }

    /// Catalog RT-25: only namespaced sysctls, `net.*` only with a network
    /// of the container's own.
    #[test]
    fn only_namespaced_sysctls_pass() {
        for bad in [
            "kernel.core_pattern",
            "kernel.modprobe",
            "vm.swappiness",
            "vm.overcommit_memory",
            "fs.file-max",
            "fs.protected_symlinks",
            "kernel.shm",
            "kernel.domainname",
        ] {
            assert!(check_sysctl(bad, false).is_err(), "{bad}");
        }
        for good in [
            "net.ipv4.ip_forward",
            "kernel.shmmax",
            "kernel.msgmnb",
            "kernel.sem",
            "fs.mqueue.msg_max",
        ] {
            assert!(check_sysctl(good, false).is_ok(), "{good}");
        }
        assert!(check_sysctl("net.ipv4.ip_forward", true).is_err());
    }

    #[test]
    fn working_directories_through_proc_links_are_refused() {
        for bad in [
            "/proc/self/fd/3",
            "/proc/1/cwd",
            "//proc/./thread-self/root/x",
            "/proc/7/task/7/fd/4",
        ] {
            assert!(check_workdir(bad.into()).is_err(), "{bad}");
        }
        for good in ["/", "/proc", "/proc/sys", "/srv/proc/self/fd", "/app"] {
            assert_eq!(check_workdir(good.into()).unwrap(), good);
        }
    }

    #[test]
    fn entrypoint_and_cmd_follow_docker_rules() {
        let image = RunConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["default".into()]),
            ..RunConfig::default()
        };
        let run = |req: ProcessRequest| command_line(&image, &req).unwrap();
        assert_eq!(run(ProcessRequest::default()), ["/entry", "default"]);
        assert_eq!(
            run(ProcessRequest {
                cmd: Some(vec!["x".into()]),
                ..ProcessRequest::default()
            }),
            ["/entry", "x"]
        );
        assert_eq!(
            run(ProcessRequest {
                entrypoint: Some(vec!["sh".into()]),
                ..ProcessRequest::default()
            }),
            ["sh"]
        );
        assert!(command_line(&RunConfig::default(), &ProcessRequest::default()).is_err());
        assert!(capability("net_admin").is_ok() && capability("CAP_SYS_ADMIN").is_ok());
        assert!(capability("NOPE").is_err());
    }
}
