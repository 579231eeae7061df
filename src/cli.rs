//! The command line, shaped after `docker compose` so that muscle memory and
//! scripts carry over.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Compose projects, daemonless: reads compose.yaml and makes the host match it.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, as `docker compose` names them. `-f` and `-p`
/// go before the command, as with `docker compose`, so that commands keep
/// their own `-f` (`image rm -f`) and `-p` (`container run -p`).
#[derive(Debug, Args)]
pub struct Global {
    /// Compose configuration files (repeatable; `-` reads standard input)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Alternate working directory (default: the first compose file's folder)
    #[arg(long, global = true, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Alternate environment files (repeatable; replaces the project's .env)
    #[arg(long = "env-file", global = true, value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable (repeatable)
    #[arg(
        long = "profile",
        id = "profile",
        global = true,
        value_name = "PROFILE"
    )]
    pub profiles: Vec<String>,
    /// Where berth keeps its state (images, containers, volumes)
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth",
        value_name = "DIR"
    )]
    pub root: PathBuf,
    /// How to show progress: auto, tty, plain (a line per step), quiet, json
    #[arg(
        long,
        global = true,
        default_value = "auto",
        value_parser = ["auto", "tty", "plain", "quiet", "json"]
    )]
    pub progress: String,
    /// Control characters (colours): auto, never, always
    #[arg(
        long,
        global = true,
        default_value = "auto",
        value_parser = ["auto", "never", "always"]
    )]
    pub ansi: String,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and start the project's networks, volumes and containers
    #[command(disable_version_flag = true)]
    Up(UpArgs),
    /// Stop and remove the project's containers and networks (-v: volumes too)
    Down(DownArgs),
    /// List the project's containers
    Ps(PsArgs),
    /// Show the output of the project's containers
    Logs(ComposeLogsArgs),
    /// Start the project's stopped containers
    Start(ServicesArgs),
    /// Stop the project's containers (dependents first)
    Stop(ServicesArgs),
    /// Restart the project's containers
    Restart(ServicesArgs),
    /// Send a signal to the project's containers
    Kill(ComposeKillArgs),
    /// Freeze the processes of the project's running containers
    Pause(ServicesArgs),
    /// Thaw the project's paused containers
    Unpause(ServicesArgs),
    /// Run a command in a service's running container
    Exec(ComposeExecArgs),
    /// Join this terminal to a service's running container (ctrl-p ctrl-q detaches)
    Attach(ComposeAttachArgs),
    /// Run a one-off command in a new container of a service
    Run(ComposeRunArgs),
    /// Create the project's networks, volumes and containers without starting them
    Create(CreateArgs),
    /// Remove the project's stopped containers
    Rm(ComposeRmArgs),
    /// Show the processes running in the project's containers
    Top(ServicesArgs),
    /// Block until the project's containers stop, printing their exit codes
    Wait(ServicesArgs),
    /// List the images the project's containers use
    Images(ServicesArgs),
    /// List projects
    Ls(LsArgs),
    /// Print the host address a service's port is published on
    Port(PortArgs),
    /// Parse, resolve and render the compose file in canonical format
    Config(ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion(CompletionArgs),
    /// Show the berth version
    Version(VersionArgs),
    /// Pull the project's images from their registries
    Pull(ComposePullArgs),
    /// Copy files between a service's container and the host
    Cp(CpArgs),
    /// Show what the project's containers use: CPU, memory, network, disk, processes
    Stats(StatsArgs),
    /// Stream the project's container events (create, start, die, …)
    Events(EventsArgs),
    /// Store credentials for a registry (Docker's config.json)
    Login(LoginArgs),
    /// Manage images (as `docker image`)
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage volumes (as `docker volume`)
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage containers (as `docker container`)
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage networks (as `docker network`)
    #[command(subcommand)]
    Network(NetworkCommand),
    /// The supervisor of one detached container (started by berth itself)
    #[command(name = "__shim", hide = true)]
    Shim(ShimArgs),
    /// The embedded DNS server of the networks (started by berth itself)
    #[command(name = "__dns", hide = true)]
    Dns(DnsArgs),
}

/// `berth network …`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network
    Create(NetworkCreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(NetworkLsArgs),
    /// Show networks as JSON
    Inspect(NetworkNamesArgs),
    /// Remove networks
    #[command(alias = "remove")]
    Rm(NetworkNamesArgs),
    /// Connect a container to a network (at once when it runs)
    Connect(NetworkConnectArgs),
    /// Disconnect a container from a network
    Disconnect(NetworkDisconnectArgs),
}

/// `berth network connect`
#[derive(Debug, Args)]
pub struct NetworkConnectArgs {
    /// Its address on the network
    #[arg(long = "ip", value_name = "IPv4")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Its IPv6 address on the network
    #[arg(long = "ip6", value_name = "IPv6")]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// A name it answers to on this network (repeatable)
    #[arg(long = "alias", value_name = "NAME")]
    pub aliases: Vec<String>,
    /// The network
    pub network: String,
    /// The container
    pub container: String,
}

/// `berth network disconnect`
#[derive(Debug, Args)]
pub struct NetworkDisconnectArgs {
    /// The network
    pub network: String,
    /// The container
    pub container: String,
}

/// `berth network create`
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// The network's name
    pub name: String,
    /// Driver (only `bridge`)
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form, one per family (default: allocated; IPv6: a
    /// random unique local /64)
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Gateway address, one per family (default: the subnet's first host)
    #[arg(long)]
    pub gateway: Vec<String>,
    /// IPv6 too
    #[arg(long)]
    pub ipv6: bool,
    /// Give containers addresses from this part of the subnet only
    #[arg(long)]
    pub ip_range: Option<String>,
    /// An address the network never gives out, `HOST=IPv4` (repeatable)
    #[arg(long = "aux-address", value_name = "HOST=IPv4")]
    pub aux_addresses: Vec<String>,
    /// No access to or from outside the network
    #[arg(long)]
    pub internal: bool,
    /// Labels, `key=value`
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Driver options: `com.docker.network.bridge.name`, `com.docker.network.driver.mtu`
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opts: Vec<String>,
}

/// `berth network ls`
#[derive(Debug, Args)]
pub struct NetworkLsArgs {
    /// Only show names
    #[arg(short, long)]
    pub quiet: bool,
}

/// Commands that take network names.
#[derive(Debug, Args)]
pub struct NetworkNamesArgs {
    /// Networks
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `berth __dns`: no arguments.
#[derive(Debug, Args)]
pub struct DnsArgs {}

/// `berth __shim`
#[derive(Debug, Args)]
pub struct ShimArgs {
    /// The container's id
    pub id: String,
}

/// `berth container …`
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Run a command in a new container
    Run(Box<ContainerRunArgs>),
    /// Create a container without starting it (`start` starts it)
    Create(Box<ContainerRunArgs>),
    /// Join this terminal to a running container's (ctrl-p ctrl-q detaches)
    Attach(ContainerAttachArgs),
    /// Stop running containers and start them again
    Restart(ContainerStopArgs),
    /// List containers
    #[command(aliases = ["ps", "list"])]
    Ls(ContainerLsArgs),
    /// Start stopped containers again, under a supervisor
    Start(ContainerStartArgs),
    /// Stop running containers (stop signal, grace period, then SIGKILL)
    Stop(ContainerStopArgs),
    /// Send a signal to running containers
    Kill(ContainerKillArgs),
    /// Copy files between a container and the host
    Cp(CpArgs),
    /// List the files a container added (A), changed (C) or deleted (D)
    Diff(ContainerNameArg),
    /// Show the processes running in a container
    Top(ContainerNameArg),
    /// List a container's published ports, or where one of them is
    Port(ContainerPortArgs),
    /// Write a container's filesystem to a tarball
    Export(ContainerExportArgs),
    /// Make an image of a container's changes
    Commit(ContainerCommitArgs),
    /// Give a container another name
    Rename(ContainerRenameArgs),
    /// Show what containers use: CPU, memory, network, disk, processes
    Stats(StatsArgs),
    /// Freeze every process of running containers
    Pause(ContainerNamesArgs),
    /// Thaw paused containers
    Unpause(ContainerNamesArgs),
    /// Remove containers
    #[command(alias = "remove")]
    Rm(ContainerRmArgs),
    /// Show a container's output
    Logs(ContainerLogsArgs),
    /// Show containers' records as JSON
    Inspect(ContainerInspectArgs),
    /// Wait for containers to exit and print their exit codes
    Wait(ContainerNamesArgs),
    /// Run a command in a running container
    Exec(ContainerExecArgs),
}

/// What `exec` runs with, for both `berth exec` and `berth container exec`.
#[derive(Debug, Args)]
pub struct ExecOptions {
    /// Set an environment variable (`KEY=VALUE`)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User (name or uid, optionally `:group`)
    #[arg(short = 'u', long)]
    pub user: Option<String>,
}

impl ExecOptions {
    /// The engine's request to run `command` with these options, on a
    /// terminal with `tty`.
    pub fn request(
        &self,
        command: &[String],
        tty: bool,
    ) -> berth_engine::runtime::exec::ExecRequest {
        berth_engine::runtime::exec::ExecRequest {
            args: command.to_vec(),
            env: self.env.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            tty,
        }
    }
}

/// One container.
#[derive(Debug, Args)]
pub struct ContainerNameArg {
    /// The container
    pub name: String,
}

/// `berth container port`
#[derive(Debug, Args)]
pub struct ContainerPortArgs {
    /// The container
    pub name: String,
    /// `PORT[/PROTO]`: only where this container port is published
    pub port: Option<String>,
}

/// `berth container rename`
#[derive(Debug, Args)]
pub struct ContainerRenameArgs {
    /// The container
    pub name: String,
    /// Its new name
    pub new_name: String,
}

/// `berth container commit`
#[derive(Debug, Args)]
pub struct ContainerCommitArgs {
    /// A Dockerfile instruction for the new image's configuration (CMD, ENV, …)
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// The container
    pub name: String,
    /// The new image's reference
    pub reference: Option<String>,
}

/// `berth container export`
#[derive(Debug, Args)]
pub struct ContainerExportArgs {
    /// Write to this file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The container
    pub name: String,
}

/// `berth container exec`
#[derive(Debug, Args)]
pub struct ContainerExecArgs {
    #[command(flatten)]
    pub options: ExecOptions,
    /// Keep standard input open (always: it is the caller's)
    #[arg(short, long)]
    pub interactive: bool,
    /// Run on a terminal joined to this one
    #[arg(short, long)]
    pub tty: bool,
    /// The container
    pub name: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `berth container ls`
#[derive(Debug, Args)]
pub struct ContainerLsArgs {
    /// Show all containers, not only running ones
    #[arg(short, long)]
    pub all: bool,
    /// Only show ids
    #[arg(short, long)]
    pub quiet: bool,
    /// `table` (the default), `json` (one object per line, as `docker ps`
    /// prints them) or a template such as `{{.Names}}\t{{.Status}}`
    #[arg(long)]
    pub format: Option<String>,
}

/// `berth container stop`
#[derive(Debug, Args)]
pub struct ContainerStopArgs {
    /// Seconds to wait before killing
    #[arg(short = 't', long = "timeout", default_value_t = 10)]
    pub timeout: u64,
    /// Containers
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `berth container kill`
#[derive(Debug, Args)]
pub struct ContainerKillArgs {
    /// The signal (name or number)
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Containers
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `berth container rm`
#[derive(Debug, Args)]
pub struct ContainerRmArgs {
    /// Kill and remove running containers
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes too
    #[arg(short, long)]
    pub volumes: bool,
    /// Containers
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `berth container logs`
#[derive(Debug, Args)]
pub struct ContainerLogsArgs {
    /// Follow the output until the container exits
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only the last N lines
    #[arg(short = 'n', long)]
    pub tail: Option<usize>,
    /// The container
    pub name: String,
}

/// `berth container inspect`
#[derive(Debug, Args)]
pub struct ContainerInspectArgs {
    /// Print each container through a template (`{{.State.Status}}`,
    /// `{{json .Config.Labels}}`)
    #[arg(short, long)]
    pub format: Option<String>,
    /// Containers
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Commands that take container names.
#[derive(Debug, Args)]
pub struct ContainerNamesArgs {
    /// Containers
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `berth container start`
#[derive(Debug, Args)]
pub struct ContainerStartArgs {
    /// Attach to its output (and exit with its exit code)
    #[arg(short, long)]
    pub attach: bool,
    /// Attached, send this terminal's input to it too
    #[arg(short, long)]
    pub interactive: bool,
    /// The keys that detach, leaving the container running
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Containers
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// How `attach` joins a container.
#[derive(Debug, Args)]
pub struct AttachOptions {
    /// Do not send this terminal's input to the container
    #[arg(long)]
    pub no_stdin: bool,
    /// The keys that detach, leaving the container running
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Ignored: signals are not proxied (berth attach's Ctrl-C is the
    /// container's, through its terminal)
    #[arg(long, hide = true)]
    pub sig_proxy: Option<bool>,
}

/// `berth container attach`
#[derive(Debug, Args)]
pub struct ContainerAttachArgs {
    #[command(flatten)]
    pub options: AttachOptions,
    /// The container
    pub name: String,
}

/// `berth attach`
#[derive(Debug, Args)]
pub struct ComposeAttachArgs {
    #[command(flatten)]
    pub options: AttachOptions,
    /// Which replica (default: the first)
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// The service
    pub service: String,
}

/// `berth container run`
#[derive(Debug, Args)]
// `-h` is the host name, as with Docker: help is `--help` only.
#[command(disable_help_flag = true)]
pub struct ContainerRunArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Every capability and host device, no seccomp filter or masked paths
    #[arg(long)]
    pub privileged: bool,
    /// A host device: `/dev/fuse`, `/dev/sda:/dev/xvda:r`
    #[arg(long = "device", value_name = "HOST[:CONTAINER[:rwm]]")]
    pub devices: Vec<String>,
    /// Run on a terminal joined to this one
    #[arg(short, long)]
    pub tty: bool,
    /// Keep standard input open (always: it is the caller's)
    #[arg(short, long)]
    pub interactive: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Pull the image first: always, missing (the default) or never
    #[arg(long, value_name = "POLICY", default_value = "missing", value_parser = ["always", "missing", "never"])]
    pub pull: String,
    /// Command to run to check health (run by `/bin/sh -c`)
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between health checks (e.g. `30s`, `1m30s`)
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Longest a health check may run
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Failures in a row that make the container unhealthy
    #[arg(long, default_value_t = 0)]
    pub health_retries: u64,
    /// Grace period after start in which failures do not count
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Time between health checks during the start period
    #[arg(long)]
    pub health_start_interval: Option<String>,
    /// Disable any healthcheck, including the image's
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Mount a tmpfs (`PATH[:size=64m,mode=1777]`)
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Add a line to /etc/hosts (`HOST:IP`)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Mount the volumes of another container (`NAME[:ro|:rw]`)
    #[arg(long = "volumes-from", value_name = "CONTAINER")]
    pub volumes_from: Vec<String>,
    /// Run in the background under a supervisor and print the container id
    #[arg(short, long)]
    pub detach: bool,
    /// Publish a port: `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Set metadata on the container (`key=value`)
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// The container's address on its (first) network
    #[arg(long = "ip", value_name = "IPv4")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// The container's IPv6 address on its (first) network
    #[arg(long = "ip6", value_name = "IPv6")]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// The MAC address of its interface on its (first) network
    #[arg(long = "mac-address", value_name = "MAC", value_parser = mac_address)]
    pub mac_address: Option<String>,
    /// Extra names other containers find this one by on its networks
    #[arg(long = "network-alias", value_name = "NAME")]
    pub aliases: Vec<String>,
    /// Networks to join (repeatable; the first one is the default route)
    #[arg(long = "network", visible_alias = "net", value_name = "NETWORK")]
    pub networks: Vec<String>,
    /// Restart policy of a detached container: no, always, on-failure[:N], unless-stopped
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// The container's name
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` to pass the caller's)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User (name or uid, optionally `:group` or `:gid`)
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Override the image's ENTRYPOINT
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The container's host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// The keys that detach from a foreground `-it` run, leaving the
    /// container running
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// User namespace: `host` (default) or `private` (container root is an
    /// unprivileged host uid)
    #[arg(long, value_name = "MODE", default_value = "host")]
    pub userns: String,
    /// Add a Linux capability
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability (`ALL` for all)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Security options: `seccomp=unconfined|PROFILE.json`, `no-new-privileges`
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Logging driver: json-file (the default; `local` and others are written as json-file) or none
    #[arg(
        long = "log-driver",
        value_name = "DRIVER",
        default_value = "json-file"
    )]
    pub log_driver: String,
    /// Logging option: `max-size=10m`, `max-file=3`
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    /// Run an init (tini) as PID 1 that forwards signals and reaps zombies
    #[arg(long)]
    pub init: bool,
    /// A resource limit: `nofile=1024` or `nofile=1024:2048`
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// A namespaced kernel parameter: `net.ipv4.tcp_keepalive_time=600`
    #[arg(long = "sysctl", value_name = "KEY=VALUE")]
    pub sysctls: Vec<String>,
    /// Size of /dev/shm (`128m`; default 64m)
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Tune the OOM killer's preference (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i32>,
    /// Memory limit (`200m`, `1g`)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap (`-1` for unlimited swap; default: twice the memory)
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// Number of CPUs (`1.5`)
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPUs in which to allow execution (`0-1`, `0,2`)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10 to 1000)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Block IO weight of one device, `DEVICE:WEIGHT` (repeatable)
    #[arg(long = "blkio-weight-device", value_name = "DEVICE:WEIGHT")]
    pub blkio_weight_device: Vec<String>,
    /// Read rate limit of a device, `DEVICE:RATE` (`1mb`; repeatable)
    #[arg(long = "device-read-bps", value_name = "DEVICE:RATE")]
    pub device_read_bps: Vec<String>,
    /// Write rate limit of a device, `DEVICE:RATE` (`1mb`; repeatable)
    #[arg(long = "device-write-bps", value_name = "DEVICE:RATE")]
    pub device_write_bps: Vec<String>,
    /// Read operations per second of a device, `DEVICE:N` (repeatable)
    #[arg(long = "device-read-iops", value_name = "DEVICE:N")]
    pub device_read_iops: Vec<String>,
    /// Write operations per second of a device, `DEVICE:N` (repeatable)
    #[arg(long = "device-write-iops", value_name = "DEVICE:N")]
    pub device_write_iops: Vec<String>,
    /// Mount a volume or host directory: `[NAME|/HOST/PATH:]/CONTAINER/PATH[:ro|nocopy]`
    #[arg(short = 'v', long = "volume", value_name = "SPEC")]
    pub volumes: Vec<String>,
    /// The image to run
    pub image: String,
    /// The command and its arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `berth volume …`
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(VolumeLsArgs),
    /// Show volumes as JSON
    Inspect(VolumeNamesArgs),
    /// Remove volumes
    #[command(alias = "remove")]
    Rm(VolumeNamesArgs),
    /// Remove unused anonymous volumes (all unused ones with --all)
    Prune(VolumePruneArgs),
    /// Write a volume's content to a tar archive
    Export(VolumeExportArgs),
    /// Replace a volume's content with a tar archive
    Import(VolumeImportArgs),
}

/// `berth volume create`
#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// The volume's name
    pub name: String,
    /// Volume driver (only `local`)
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Driver options, `key=value` (`type`, `device`, `o`)
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opts: Vec<String>,
    /// Labels, `key=value`
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

/// `berth volume ls`
#[derive(Debug, Args)]
pub struct VolumeLsArgs {
    /// Only show names
    #[arg(short, long)]
    pub quiet: bool,
}

/// Commands that take volume names.
#[derive(Debug, Args)]
pub struct VolumeNamesArgs {
    /// Volume names
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `berth volume prune`
#[derive(Debug, Args)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask (berth never asks)
    #[arg(short, long)]
    pub force: bool,
}

/// `berth volume export`
#[derive(Debug, Args)]
pub struct VolumeExportArgs {
    /// The volume
    pub name: String,
    /// Write to this file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `berth volume import`
#[derive(Debug, Args)]
pub struct VolumeImportArgs {
    /// The volume
    pub name: String,
    /// The archive (`-` or absent for standard input)
    pub file: Option<PathBuf>,
}

/// `berth image …`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Load images from a docker-save tarball or an OCI archive
    Load(ImageLoadArgs),
    /// Create an image from a root filesystem tarball
    Import(ImageImportArgs),
    /// List images
    #[command(alias = "list")]
    Ls(ImageLsArgs),
    /// Show an image's record, manifest and configuration as JSON
    Inspect(ImageInspectArgs),
    /// Show the layers of an image
    History(ImageNamesArgs),
    /// Give an image another reference
    Tag(ImageTagArgs),
    /// Remove images (a container's image only with --force)
    #[command(alias = "remove")]
    Rm(ImageRmArgs),
    /// Remove images no reference names (-a: every image no container uses)
    Prune(ImagePruneArgs),
    /// Write images to a tar archive (OCI layout and docker-save at once)
    Save(ImageSaveArgs),
    /// Download an image from a registry
    Pull(ImagePullArgs),
    /// Upload an image to a registry
    Push(ImagePushArgs),
}

/// `berth image prune`
#[derive(Debug, Args)]
pub struct ImagePruneArgs {
    /// Every image no container uses, not only unnamed ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask (berth never asks)
    #[arg(short, long)]
    pub force: bool,
}

/// `berth image save`
#[derive(Debug, Args)]
pub struct ImageSaveArgs {
    /// Write to this file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Images
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `berth image pull`
#[derive(Debug, Args)]
pub struct ImagePullArgs {
    /// The image (`busybox`, `registry:5000/team/app:1.2`, `name@sha256:…`)
    pub reference: String,
    /// Print only the image's reference
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth image push`
#[derive(Debug, Args)]
pub struct ImagePushArgs {
    /// The local image, pushed under its own reference
    pub name: String,
    /// Push it under this reference instead
    pub target: Option<String>,
    /// Print only the manifest's address
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth login`
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (`docker.io` when omitted)
    pub server: Option<String>,
    /// User name
    #[arg(short, long)]
    pub username: String,
    /// Password (prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
}

/// `berth image load`
#[derive(Debug, Args)]
pub struct ImageLoadArgs {
    /// Read from this file instead of standard input
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Print nothing
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth image import`
#[derive(Debug, Args)]
pub struct ImageImportArgs {
    /// The tarball (`-` for standard input)
    pub file: PathBuf,
    /// The reference to give the image
    pub reference: Option<String>,
    /// Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL)
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
}

/// `berth image ls`
#[derive(Debug, Args)]
pub struct ImageLsArgs {
    /// Only show image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Table or JSON listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns
    Table,
    /// One JSON object per line
    Json,
}

/// Commands that take image names.
#[derive(Debug, Args)]
pub struct ImageNamesArgs {
    /// Images (reference or id)
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `berth image inspect`
#[derive(Debug, Args)]
pub struct ImageInspectArgs {
    /// Print each image through a template (`{{.Id}}`, `{{json .Config}}`)
    #[arg(short, long)]
    pub format: Option<String>,
    /// Images (reference or id)
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `berth image tag`
#[derive(Debug, Args)]
pub struct ImageTagArgs {
    /// The image (reference or id)
    pub source: String,
    /// The new reference
    pub target: String,
}

/// `berth image rm`
#[derive(Debug, Args)]
pub struct ImageRmArgs {
    /// Images (reference or id)
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove even when used or referenced several times
    #[arg(short, long)]
    pub force: bool,
}

/// `berth up`
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Run in the background (berth does so either way for now)
    #[arg(short, long)]
    pub detach: bool,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Recreate containers even when unchanged
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Keep existing containers even when changed
    #[arg(long)]
    pub no_recreate: bool,
    /// Remove containers of services no longer in the file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Create, but do not start
    #[arg(long)]
    pub no_start: bool,
    /// Replicas of a service, `SERVICE=NUM` (repeatable)
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    /// Wait until the services are running and healthy (implies -d)
    #[arg(long)]
    pub wait: bool,
    /// Stop the project when any container exits (foreground only)
    #[arg(long, conflicts_with = "detach")]
    pub abort_on_container_exit: bool,
    /// Exit with this service's exit code (implies --abort-on-container-exit)
    #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
    pub exit_code_from: Option<String>,
    /// Give up waiting after this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub wait_timeout: Option<u64>,
    /// Recreate the dependents of every recreated service too
    #[arg(long, conflicts_with = "no_recreate")]
    pub always_recreate_deps: bool,
    /// Attach only to these services' output (repeatable)
    #[arg(long = "attach", value_name = "SERVICE", conflicts_with = "detach")]
    pub attach: Vec<String>,
    /// Do not attach to these services' output (repeatable)
    #[arg(long = "no-attach", value_name = "SERVICE", conflicts_with = "detach")]
    pub no_attach: Vec<String>,
    /// Show timestamps in the attached output
    #[arg(long)]
    pub timestamps: bool,
    /// Print the attached output without the `service-1  |` prefixes
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Print the attached output without colours
    #[arg(long)]
    pub no_color: bool,
    /// Pull images before starting: always, missing (the default) or never
    #[arg(long, value_name = "POLICY", value_parser = ["always", "missing", "never"])]
    pub pull: Option<String>,
    /// Give recreated containers new anonymous volumes instead of their
    /// predecessors'
    #[arg(short = 'V', long)]
    pub renew_anon_volumes: bool,
    /// Do not start the named services' dependencies
    #[arg(long)]
    pub no_deps: bool,
    /// Only these services (and what they depend on); all when none
    pub services: Vec<String>,
}

/// `berth down`
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove the project's named volumes and anonymous volumes too
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove containers of services no longer in the file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Remove the services' images too: `all`, or `local` (those without an `image:` name)
    #[arg(long, value_name = "TYPE", value_parser = ["all", "local"])]
    pub rmi: Option<String>,
}

/// `berth logs`
#[derive(Debug, Args)]
pub struct ComposeLogsArgs {
    /// Follow the output until the containers exit
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only the last N lines of each container
    #[arg(short = 'n', long)]
    pub tail: Option<usize>,
    /// Don't prefix lines with the container's name
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Don't colour the prefixes
    #[arg(long)]
    pub no_color: bool,
    /// Only lines since a time (`2026-11-23T10:00:00Z`, a date, unix seconds) or for a while (`10m`, `1h30m`)
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines before a time or a while ago (same forms as --since)
    #[arg(long)]
    pub until: Option<String>,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// Commands that take service names.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth exec`
#[derive(Debug, Args)]
pub struct ComposeExecArgs {
    #[command(flatten)]
    pub options: ExecOptions,
    /// Do not allocate a terminal (one is when standard input is a terminal)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Keep standard input open (always: it is the caller's)
    #[arg(short, long, hide = true)]
    pub interactive: bool,
    /// Allocate a terminal (the default on a terminal)
    #[arg(short, long, hide = true)]
    pub tty: bool,
    /// Which replica of the service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// The service
    pub service: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `berth kill`
#[derive(Debug, Args)]
pub struct ComposeKillArgs {
    /// The signal (name or number)
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth ps`
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show stopped containers too
    #[arg(short, long)]
    pub all: bool,
    /// Only show ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format: `table` or `json` (one object per line)
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only show service names
    #[arg(long)]
    pub services: bool,
    /// Only containers in this state (created, running, exited; repeatable)
    #[arg(long)]
    pub status: Vec<String>,
    /// Services (default: all)
    #[arg(value_name = "SERVICE")]
    pub only: Vec<String>,
}

/// `berth run`
#[derive(Debug, Args)]
pub struct ComposeRunArgs {
    /// Run in the background and print the container id
    #[arg(short, long)]
    pub detach: bool,
    /// Do not allocate a terminal (one is when standard input is a terminal)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Keep standard input open (always: it is the caller's)
    #[arg(short, long, hide = true)]
    pub interactive: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// The container's name (default: `<project>-<service>-run-<id>`)
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (`KEY=VALUE`)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Override the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User (name or uid, optionally `:group`)
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Publish a port: `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Publish the service's own ports too
    #[arg(long)]
    pub service_ports: bool,
    /// Extra mounts (`SOURCE:TARGET[:ro]`)
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// Do not start the services it depends on
    #[arg(long)]
    pub no_deps: bool,
    /// The service
    pub service: String,
    /// The command and its arguments (default: the service's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `berth create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Recreate containers even if their configuration is unchanged
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Keep existing containers even if their configuration changed
    #[arg(long)]
    pub no_recreate: bool,
    /// Remove containers of services no longer in the file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Replicas per service (`SERVICE=NUM`)
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    /// Only these services (and what they depend on); all when none
    pub services: Vec<String>,
}

/// `berth rm`
#[derive(Debug, Args)]
pub struct ComposeRmArgs {
    /// Do not ask (berth never asks; accepted for compatibility)
    #[arg(short, long)]
    pub force: bool,
    /// Stop running containers first
    #[arg(short, long)]
    pub stop: bool,
    /// Remove their anonymous volumes too
    #[arg(short, long)]
    pub volumes: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth ls`
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show stopped projects too
    #[arg(short, long)]
    pub all: bool,
    /// Only show project names
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format: `table` or `json`
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// `berth port`
#[derive(Debug, Args)]
pub struct PortArgs {
    /// `tcp` or `udp`
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Which replica of the service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// The service
    pub service: String,
    /// The container port
    pub private_port: u16,
}

/// `berth completion`
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell
    pub shell: clap_complete::Shell,
}

/// `berth config`
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Services to render (and their dependencies); default: all
    pub services: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Only validate the configuration, print nothing
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the service names, one per line
    #[arg(long = "services")]
    pub list_services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names, one per line
    #[arg(long)]
    pub networks: bool,
    /// Print the profile names, one per line
    #[arg(long = "profiles", id = "list_profiles")]
    pub list_profiles: bool,
    /// Print the image names, one per line
    #[arg(long)]
    pub images: bool,
    /// Pin image tags to the digests their registries serve now
    #[arg(long)]
    pub resolve_image_digests: bool,
    /// Don't interpolate environment variables. Unlike Docker Compose, which
    /// then prints the raw merged file, berth still prints the typed model,
    /// so a variable must stand where its field accepts any text.
    #[arg(long)]
    pub no_interpolate: bool,
    /// Don't check model consistency (undefined networks, volumes …)
    #[arg(long)]
    pub no_consistency: bool,
    /// Save to file (default: standard output)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `berth config --format`
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// YAML, as `docker compose config` prints by default
    Yaml,
    /// JSON, field for field as `docker compose config --format json`
    Json,
}

/// `berth version`
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Show only the version number
    #[arg(long)]
    pub short: bool,
}

/// A `--mac-address` value, checked as it is parsed.
fn mac_address(s: &str) -> Result<String, String> {
    berth_netplane::attach::parse_mac(s).map(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

/// `berth cp` and `berth container cp`
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Which replica of the service (`berth cp` only)
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// `SERVICE:PATH` (or `CONTAINER:PATH`) or a host path
    pub source: String,
    /// `SERVICE:PATH` (or `CONTAINER:PATH`) or a host path
    pub dest: String,
}

/// `berth stats` and `berth container stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one reading and exit
    #[arg(long)]
    pub no_stream: bool,
    /// Services (`berth stats`) or containers (`berth container stats`); all running ones when none
    pub names: Vec<String>,
}

/// `berth events`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
    /// Events from this time on (RFC 3339, as the events show it)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Events before this time, then exit (without it, follow)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Services (all when none)
    pub services: Vec<String>,
}

/// `berth pull`
#[derive(Debug, Args)]
pub struct ComposePullArgs {
    /// Carry on when an image cannot be pulled
    #[arg(long)]
    pub ignore_pull_failures: bool,
    /// Print nothing
    #[arg(short, long)]
    pub quiet: bool,
    /// Services (all when none)
    pub services: Vec<String>,
}
