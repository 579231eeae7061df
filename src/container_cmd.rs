//! `berth container …`: containers from the command line.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::OwnedFd;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use berth_engine::image::ImageStore;
use berth_engine::runtime::health::HealthConfig;
use berth_engine::runtime::run::{self, ContainerRecord, Network, PortBinding, find, list_records};
use berth_engine::runtime::spec::{ProcessRequest, Throttle, ThrottleKind};
use berth_engine::runtime::{RunRequest, run_foreground};
use berth_engine::runtime::{freeze, shim};
use berth_netplane::store::DEFAULT_BRIDGE;
use berth_netplane::{Networks, PortRequest};

use crate::cli::{ContainerCommand, ContainerRunArgs, Global, ShimArgs};

/// A container as `docker ps --format json` shows it, for `--format`.
fn ps_line(
    r: &run::ContainerRecord,
    status: &str,
    ports: Option<&[berth_netplane::PublishedPort]>,
) -> serde_json::Value {
    let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let ports: Vec<String> = ports
        .unwrap_or_default()
        .iter()
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p.host_ip, p.host_port, p.container_port, p.protocol
            )
        })
        .collect();
    serde_json::json!({
        "ID": &r.id[..12],
        "Image": r.image,
        "Command": format!("\"{}\"", r.command.join(" ")),
        "CreatedAt": r.created,
        "Names": r.name,
        "Labels": labels.join(","),
        "Ports": ports.join(", "),
        "State": if status.starts_with("running") { "running" } else { r.status.as_str() },
        "Status": status,
    })
}

pub fn signal(name: &str) -> anyhow::Result<rustix::process::Signal> {
    use rustix::process::Signal as S;
    let n = name.trim_start_matches("SIG").to_ascii_uppercase();
    let sig = match n.as_str() {
        "KILL" | "9" => S::KILL,
        "TERM" | "15" => S::TERM,
        "INT" | "2" => S::INT,
        "HUP" | "1" => S::HUP,
        "QUIT" | "3" => S::QUIT,
        "USR1" | "10" => S::USR1,
        "USR2" | "12" => S::USR2,
        "STOP" | "19" => S::STOP,
        "CONT" | "18" => S::CONT,
        other => match other.parse::<i32>().ok().and_then(S::from_named_raw) {
            Some(s) => s,
            None => bail!("invalid signal {name:?}"),
        },
    };
    Ok(sig)
}

/// Joins containers to berth networks through the network plane.
pub struct NetplaneHook {
    nets: Networks,
}

impl NetplaneHook {
    /// The hook for a state root.
    pub fn open(root: &std::path::Path) -> anyhow::Result<NetplaneHook> {
        Ok(NetplaneHook {
            nets: Networks::open(root)?,
        })
    }
}

/// The netplane's view of an engine port binding.
pub fn port_request(p: &PortBinding) -> anyhow::Result<PortRequest> {
    Ok(PortRequest {
        host_ip: if p.host_ip.is_empty() {
            std::net::Ipv4Addr::UNSPECIFIED
        } else {
            p.host_ip.parse().with_context(|| {
                format!("invalid host address {:?} (IPv4 only for now)", p.host_ip)
            })?
        },
        host_port: p.host_port,
        container_port: p.container_port,
        protocol: if p.protocol.is_empty() {
            "tcp".into()
        } else {
            p.protocol.clone()
        },
    })
}

/// Parses `-p` specs (`8080:80`, `127.0.0.1:8080:80/udp`, `80`, ranges).
pub fn parse_publish(specs: &[String]) -> anyhow::Result<Vec<PortBinding>> {
    let mut out = Vec::new();
    for spec in specs {
        let ports =
            berth_spec::short::parse_ports(spec).map_err(|e| anyhow::anyhow!("-p {spec}: {e}"))?;
        for p in ports {
            let host_port = if p.published.is_empty() {
                None
            } else {
                Some(p.published.parse::<u16>().with_context(|| {
                    format!(
                        "-p {spec}: a host port range needs a container port range of the same size"
                    )
                })?)
            };
            out.push(PortBinding {
                host_ip: p.host_ip,
                host_port,
                container_port: u16::try_from(p.target).context("port out of range")?,
                protocol: p.protocol,
            });
        }
    }
    Ok(out)
}

/// A command that runs this very berth binary: through `/proc/self/exe`,
/// never a path that could have been replaced since, and from the sealed
/// mount when this process runs sealed (so its children start sealed).
fn berth_command() -> std::process::Command {
    let mut cmd = std::process::Command::new("/proc/self/exe");
    if let Some(name) = std::env::args_os().next() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, name);
    }
    cmd
}

/// Starts the embedded DNS server of this network namespace's networks,
/// unless it runs already, and waits until it answers on `networks`.
pub fn ensure_dns(global: &Global, networks: &[String]) -> anyhow::Result<()> {
    let networks: Vec<String> = networks
        .iter()
        .filter(|n| n.as_str() != DEFAULT_BRIDGE)
        .cloned()
        .collect();
    if networks.is_empty() {
        return Ok(());
    }
    // Under the lock a starting or leaving server takes too: a server seen
    // alive here stays for the networks that exist now.
    let lock = berth_netplane::dns::lock(&global.root)?;
    if berth_netplane::dns::live_server(&global.root).is_none() {
        let mut cmd = berth_command();
        cmd.arg("--root")
            .arg(&global.root)
            .arg("__dns")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // It records itself in dns.pid, so one started by a command killed
        // right after is found by the next; a second one started meanwhile
        // leaves at once. Reaped by init once we exit.
        let child = cmd.spawn().context("starting the DNS server")?;
        std::mem::forget(child);
    }
    drop(lock);
    dns_ready(global, &networks)
}

/// Waits until the DNS server listens on the gateways of `networks`, so the
/// first lookup of a container just started does not go unanswered.
fn dns_ready(global: &Global, networks: &[String]) -> anyhow::Result<()> {
    let nets = Networks::open(&global.root)?;
    let gateways: Vec<std::net::Ipv4Addr> = networks
        .iter()
        .filter_map(|n| nets.inspect(n).ok())
        .filter_map(|n| n.gateway.parse().ok())
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !gateways
        .iter()
        .all(|g| berth_netplane::dns::listening_on(*g))
    {
        if std::time::Instant::now() > deadline {
            let server = berth_netplane::dns::live_server(&global.root);
            bail!(
                "the DNS server ({}) did not start listening on the networks' gateways {gateways:?}",
                server.map_or("not running".to_string(), |p| format!("pid {p}"))
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

impl Network for NetplaneHook {
    fn connect(
        &mut self,
        record: &ContainerRecord,
        pid: i32,
    ) -> berth_engine::Result<Option<std::net::IpAddr>> {
        let conflict = |e: String| berth_engine::Error::Conflict(e);
        let mut first = None;
        let mut names = vec![record.name.clone()];
        names.extend(record.dns_names.iter().cloned());
        names.push(record.id[..12].to_string());
        for (i, n) in record.networks.iter().enumerate() {
            if n == DEFAULT_BRIDGE {
                // Made on demand, and back after a reboot or a removal.
                self.nets
                    .ensure_default()
                    .map_err(|e| conflict(format!("network {n}: {e}")))?;
            }
            let opts = record.network_opts.get(n).cloned().unwrap_or_default();
            let mut names = names.clone();
            names.extend(opts.aliases.iter().cloned());
            let att = self
                .nets
                .connect(
                    n,
                    &record.id,
                    pid,
                    &berth_netplane::attach::Join {
                        ifname: &format!("eth{i}"),
                        default_route: i == 0,
                        names: &names,
                        ip: opts.ipv4_address,
                        ip6: opts.ipv6_address,
                        mac: opts
                            .mac_address
                            .as_deref()
                            .map(berth_netplane::attach::parse_mac)
                            .transpose()
                            .map_err(|e| conflict(format!("network {n}: mac_address {e}")))?,
                    },
                )
                .map_err(|e| conflict(format!("network {n}: {e}")))?;
            if i == 0 {
                first = Some(att.ip.into());
            }
            if i == 0 && !record.ports.is_empty() {
                let reqs = record
                    .ports
                    .iter()
                    .map(port_request)
                    .collect::<anyhow::Result<Vec<_>>>()
                    .map_err(|e| conflict(format!("{e:#}")))?;
                self.nets
                    .publish(&record.id, att.ip, &reqs)
                    .map_err(|e| conflict(format!("container {}: {e}", record.name)))?;
            }
        }
        if record.networks.is_empty() && !record.ports.is_empty() {
            return Err(conflict(format!(
                "container {}: publishing ports needs a network (--network)",
                record.name
            )));
        }
        Ok(first)
    }

    fn disconnect(&mut self, record: &ContainerRecord) {
        if let Err(e) = self.nets.unpublish(&record.id) {
            eprintln!("warning: container {}: {e}", record.name);
        }
        for (i, n) in record.networks.iter().enumerate() {
            if let Err(e) = self.nets.disconnect(n, &record.id, &format!("eth{i}")) {
                eprintln!("warning: network {n}: {e}");
            }
        }
    }
}

fn bytes(flag: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    match v.as_deref() {
        None => Ok(None),
        Some("-1") => Ok(Some(-1)),
        Some(s) => berth_spec::units::UnitBytes::parse(s)
            .map(|b| Some(b.0))
            .with_context(|| format!("invalid size for {flag}: {s:?}")),
    }
}

/// Memory as Docker shows it: binary units.
fn mib(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.2}{}", UNITS[i])
    }
}

/// `stats`: a table of what `recs` use, refreshed every second on a
/// terminal until interrupted, or printed once with `no_stream`.
pub fn stats(recs: &[ContainerRecord], no_stream: bool) -> anyhow::Result<()> {
    use berth_engine::runtime::stats::{cpu_percent, sample};
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let mut before: Vec<Option<_>> = recs.iter().map(sample).collect();
    loop {
        std::thread::sleep(Duration::from_millis(if no_stream { 500 } else { 1000 }));
        let now: Vec<Option<_>> = recs.iter().map(sample).collect();
        let mut out = std::io::stdout().lock();
        if tty && !no_stream {
            // Home and clear, as `docker stats` redraws.
            write!(out, "\x1b[H\x1b[2J")?;
        }
        writeln!(
            out,
            "{:<14}{:<28}{:<9}{:<22}{:<9}{:<20}{:<20}PIDS",
            "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O"
        )?;
        for ((r, b), a) in recs.iter().zip(&before).zip(&now) {
            let (Some(b), Some(a)) = (b, a) else {
                writeln!(out, "{:<14}{:<28}--", &r.id[..12], r.name)?;
                continue;
            };
            let mem_pct = if a.mem_limit > 0 {
                a.mem_usage as f64 / a.mem_limit as f64 * 100.0
            } else {
                0.0
            };
            let size = crate::image_cmd::human_size;
            writeln!(
                out,
                "{:<14}{:<28}{:<9}{:<22}{:<9}{:<20}{:<20}{}",
                &r.id[..12],
                r.name,
                format!("{:.2}%", cpu_percent(b, a)),
                format!("{} / {}", mib(a.mem_usage), mib(a.mem_limit)),
                format!("{mem_pct:.2}%"),
                format!("{} / {}", size(a.net.0), size(a.net.1)),
                format!("{} / {}", size(a.block.0), size(a.block.1)),
                a.pids
            )?;
        }
        out.flush()?;
        if no_stream {
            return Ok(());
        }
        before = now;
    }
}

/// The container side of a `cp` argument: `NAME:PATH`, where NAME holds
/// no `/` (so `./a:b` and `/x:y` are host paths).
fn container_side(arg: &str) -> Option<(&str, &str)> {
    arg.split_once(':')
        .filter(|(name, _)| !name.is_empty() && !name.contains('/') && *name != ".")
}

/// `cp` in either direction; `container` maps the name before the colon
/// to a container's name.
pub fn copy(
    root: &std::path::Path,
    a: &crate::cli::CpArgs,
    container: &dyn Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    use berth_engine::runtime::copy;
    match (container_side(&a.source), container_side(&a.dest)) {
        (Some((name, path)), None) => {
            copy::copy_out(root, &container(name)?, path, std::path::Path::new(&a.dest))?
        }
        (None, Some((name, path))) => copy::copy_in(
            root,
            std::path::Path::new(&a.source),
            &container(name)?,
            path,
        )?,
        (Some(_), Some(_)) => bail!("cp: copying between containers is not supported"),
        (None, None) => bail!("cp: one side must be CONTAINER:PATH"),
    }
    Ok(())
}

/// `nofile=1024` or `nofile=1024:2048`, as `docker run --ulimit`.
fn parse_ulimit(u: &str) -> anyhow::Result<(String, u64, u64)> {
    let (name, limits) = u
        .split_once('=')
        .with_context(|| format!("--ulimit takes NAME=SOFT[:HARD], not {u:?}"))?;
    let num = |v: &str| {
        v.parse::<u64>()
            .with_context(|| format!("--ulimit {u:?}: {v:?} is not a number"))
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => (num(limits)?, num(limits)?),
    };
    if soft > hard {
        anyhow::bail!("--ulimit {u:?}: the soft limit is above the hard one");
    }
    Ok((name.to_string(), soft, hard))
}

/// `DEVICE:VALUE` of the per-device block-IO flags; sizes may have units.
fn device_value(flag: &str, v: &str) -> anyhow::Result<(std::path::PathBuf, u64)> {
    let (dev, value) = v
        .rsplit_once(':')
        .with_context(|| format!("{flag} takes DEVICE:VALUE, not {v:?}"))?;
    let n = berth_spec::units::UnitBytes::parse(value)
        .and_then(|b| u64::try_from(b.0).ok())
        .with_context(|| format!("{flag} {v:?}: {value:?} is not a number"))?;
    Ok((dev.into(), n))
}

fn throttles(a: &ContainerRunArgs) -> anyhow::Result<Vec<Throttle>> {
    let mut out = Vec::new();
    for (kind, values) in [
        (ThrottleKind::ReadBps, &a.device_read_bps),
        (ThrottleKind::WriteBps, &a.device_write_bps),
        (ThrottleKind::ReadIops, &a.device_read_iops),
        (ThrottleKind::WriteIops, &a.device_write_iops),
    ] {
        for v in values {
            let (device, rate) = device_value(&format!("--{}", kind.flag()), v)?;
            out.push(Throttle { kind, device, rate });
        }
    }
    Ok(out)
}

fn request(a: &ContainerRunArgs) -> anyhow::Result<RunRequest> {
    let networks = run_networks(&a.networks);
    if networks.first().is_some_and(|n| n == DEFAULT_BRIDGE) {
        // As `docker run`: these are a user-defined network's.
        if a.ip.is_some() || a.ip6.is_some() {
            bail!("user specified IP address is supported on user defined networks only");
        }
        if !a.aliases.is_empty() {
            bail!("network-scoped alias is supported only for containers in user defined networks");
        }
    }
    let resources = berth_engine::runtime::spec::Resources {
        memory: bytes("--memory", &a.memory)?,
        memory_swap: bytes("--memory-swap", &a.memory_swap)?,
        memory_reservation: bytes("--memory-reservation", &a.memory_reservation)?,
        cpu_shares: a.cpu_shares,
        millicpus: a
            .cpus
            .map(|c| {
                if c > 0.0 && c.is_finite() {
                    Ok((c * 1000.0).round() as u64)
                } else {
                    Err(anyhow::anyhow!("invalid --cpus {c}"))
                }
            })
            .transpose()?,
        cpuset_cpus: a.cpuset_cpus.clone(),
        pids_limit: a.pids_limit,
        blkio_weight: a.blkio_weight,
        blkio_weight_device: a
            .blkio_weight_device
            .iter()
            .map(|v| {
                let (dev, w) = device_value("--blkio-weight-device", v)?;
                let w = u16::try_from(w)
                    .ok()
                    .filter(|w| (10..=1000).contains(w))
                    .with_context(|| {
                        format!("--blkio-weight-device {v:?}: a weight from 10 to 1000")
                    })?;
                Ok((dev, w))
            })
            .collect::<anyhow::Result<_>>()?,
        throttle: throttles(a)?,
    };
    let env = a
        .env
        .iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect();
    Ok(RunRequest {
        inherit_anonymous: Default::default(),
        image: a.image.clone(),
        name: a.name.clone(),
        process: ProcessRequest {
            cmd: (!a.command.is_empty()).then(|| a.command.clone()),
            entrypoint: a.entrypoint.as_ref().map(|e| vec![e.clone()]),
            env,
            workdir: a.workdir.clone(),
            cap_add: a.cap_add.clone(),
            cap_drop: a.cap_drop.clone(),
            security_opt: a.security_opt.clone(),
            ulimits: a
                .ulimits
                .iter()
                .map(|u| parse_ulimit(u))
                .collect::<anyhow::Result<_>>()?,
            sysctls: crate::args::key_values(&a.sysctls, "--sysctl")?,
            oom_score_adj: a.oom_score_adj,
            init: a.init,
            tty: a.tty,
            privileged: a.privileged,
            devices: a
                .devices
                .iter()
                .map(|d| berth_engine::runtime::devices::parse(d))
                .collect::<Result<_, _>>()?,
            shm_size: bytes("--shm-size", &a.shm_size)?.and_then(|b| u64::try_from(b).ok()),
            ..ProcessRequest::default()
        },
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        read_only: a.read_only,
        userns: berth_engine::runtime::userns::parse_mode(&a.userns)?,
        stdin_open: a.interactive,
        awaits_attach: false,
        remove: a.rm,
        mounts: a
            .volumes
            .iter()
            .map(|v| berth_engine::runtime::mounts::parse(v))
            .chain(
                a.tmpfs
                    .iter()
                    .map(|t| berth_engine::runtime::mounts::parse_tmpfs(t)),
            )
            .collect::<Result<_, _>>()?,
        resources,
        restart: {
            shim::RestartPolicy::validate(&a.restart)?;
            a.restart.clone()
        },
        log: berth_engine::runtime::logs::LogConfig::from_options(
            &a.log_driver,
            &crate::args::key_values(&a.log_opts, "--log-opt")?,
        )
        .map_err(anyhow::Error::msg)?,
        volumes_from: a.volumes_from.clone(),
        extra_hosts: a
            .add_host
            .iter()
            .map(|h| {
                h.split_once(':')
                    .or_else(|| h.split_once('='))
                    .map(|(n, a)| (n.to_string(), a.to_string()))
                    .with_context(|| format!("--add-host {h:?}: expected HOST:IP"))
            })
            .collect::<anyhow::Result<_>>()?,
        network_mode: a
            .networks
            .iter()
            .find(|n| is_network_mode(n))
            .cloned()
            .unwrap_or_default(),
        labels: a
            .labels
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect(),
        config: None,
        ports: parse_publish(&a.publish)?,
        dns: Vec::new(),
        dns_names: Vec::new(),
        // As `docker run`: --ip and --network-alias apply to the network
        // given with --network.
        network_opts: networks
            .first()
            .map(|n| {
                let opts = berth_engine::runtime::run::NetworkOpts {
                    ipv4_address: a.ip,
                    ipv6_address: a.ip6,
                    aliases: a.aliases.clone(),
                    mac_address: a.mac_address.clone(),
                };
                (n.clone(), opts)
            })
            .into_iter()
            .collect(),
        health: match &a.health_cmd {
            Some(cmd) => {
                let d = |flag: &str, v: &Option<String>| -> anyhow::Result<Duration> {
                    v.as_deref().map_or(Ok(Duration::ZERO), |s| {
                        berth_spec::units::Duration::parse(s)
                            .map(|d| d.to_std())
                            .with_context(|| format!("--{flag}: invalid duration {s:?}"))
                    })
                };
                HealthConfig::new(
                    &["CMD-SHELL".into(), cmd.clone()],
                    d("health-interval", &a.health_interval)?,
                    d("health-timeout", &a.health_timeout)?,
                    a.health_retries,
                    d("health-start-period", &a.health_start_period)?,
                    d("health-start-interval", &a.health_start_interval)?,
                )
            }
            None => None,
        },
        no_healthcheck: a.no_healthcheck,
        networks,
    })
}

/// The networks `container run --network …` joins: the named ones, or
/// the default bridge when none is named (`default` names it too, as
/// `bridge` does); none for a network mode alone.
fn run_networks(given: &[String]) -> Vec<String> {
    if given.is_empty() {
        return vec![DEFAULT_BRIDGE.to_string()];
    }
    given
        .iter()
        .filter(|n| !is_network_mode(n))
        .map(|n| match n.as_str() {
            "default" => DEFAULT_BRIDGE.to_string(),
            _ => n.clone(),
        })
        .collect()
}

/// `--network` values that are modes rather than networks.
fn is_network_mode(n: &str) -> bool {
    matches!(n, "none" | "host") || n.starts_with("container:")
}

/// Starts the supervisor of a prepared container and waits for its report.
pub fn start_supervisor(global: &Global, id: &str) -> anyhow::Result<i32> {
    start_supervisor_once(global, id, false)
}

/// [`start_supervisor`]; `retried` after a previous supervisor went.
fn start_supervisor_once(global: &Global, id: &str, retried: bool) -> anyhow::Result<i32> {
    // The DNS server may be gone (a reboot, a killed `up` that created the
    // network): every start on a network makes sure it answers.
    let dir = global.root.join("containers").join(id);
    if let Ok(r) = run::load_record(&dir)
        && !r.networks.is_empty()
    {
        ensure_dns(global, &r.networks)?;
    }
    let (ready_r, ready_w): (OwnedFd, OwnedFd) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("creating a pipe")?;
    let mut cmd = berth_command();
    cmd.arg("--root")
        .arg(&global.root)
        .arg("__shim")
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(ready_w))
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("starting the container's supervisor")?;
    drop(cmd);
    let mut report = String::new();
    std::fs::File::from(ready_r).read_to_string(&mut report)?;
    let report = report.trim();
    if let Some(pid) = report.strip_prefix("started ") {
        // The supervisor lives on; its exit is reaped by init once we exit.
        std::mem::forget(child);
        return Ok(pid.parse().unwrap_or(0));
    }
    let _ = child.wait();
    if report == shim::ALREADY_SUPERVISED {
        // Started by an earlier command that was killed: let it finish. Or
        // the supervisor of the last run, which records the exit before
        // it takes the container off its networks: once it is gone, this
        // start is a supervisor's of its own.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let r = run::load_record(&dir)?;
            match r.status.as_str() {
                "created" => {}
                "exited" if shim::supervisor_alive(&r) => {}
                "exited" if !retried => return start_supervisor_once(global, id, true),
                _ => return Ok(r.pid.unwrap_or(0)),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("container {id}: its supervisor never started it");
    }
    bail!(
        "{}",
        report
            .strip_prefix("error: ")
            .unwrap_or(if report.is_empty() {
                "the supervisor failed to start"
            } else {
                report
            })
    )
}

/// `berth __shim ID`: the supervisor's entry point.
pub fn shim(global: &Global, args: &ShimArgs) -> anyhow::Result<ExitCode> {
    // Standard output is the pipe to the CLI that started us.
    let ready = rustix::io::dup(rustix::stdio::stdout()).context("duplicating the report pipe")?;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdout(&null).context("detaching standard output")?;
    let mut net = NetplaneHook::open(&global.root)?;
    let code = shim::supervise(&global.root, &args.id, ready, &mut net);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Creates and starts a container: detached under its supervisor (printing
/// its id), or in the foreground with the caller's streams (returning its
/// exit code). Networks and ports are checked before anything changes.
/// How far [`launch`] goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Run attached, until the container exits.
    Foreground,
    /// Start under a supervisor and return.
    Detached,
    /// Create, do not start (`container create`).
    Created,
}

pub fn launch(global: &Global, req: RunRequest, how: Launch) -> anyhow::Result<ExitCode> {
    launch_with_keys(global, req, how, "ctrl-p,ctrl-q")
}

/// [`launch`], with the keys that detach from a foreground run on a
/// terminal.
pub fn launch_with_keys(
    global: &Global,
    mut req: RunRequest,
    how: Launch,
    detach_keys: &str,
) -> anyhow::Result<ExitCode> {
    let root = &global.root;
    let images = ImageStore::open(root)
        .with_context(|| format!("opening the image store in {}", root.display()))?;
    let mut net = NetplaneHook::open(root)?;
    let mut first = None;
    for n in &req.networks {
        let rec = if n == DEFAULT_BRIDGE {
            net.nets.ensure_default()?
        } else {
            net.nets.inspect(n)?
        };
        first.get_or_insert(rec);
    }
    if let Some(first) = first.filter(|r| r.serves_dns()) {
        // Names resolve through the embedded DNS server on the gateway.
        if !req.dns.contains(&first.gateway) {
            req.dns.insert(0, first.gateway);
        }
    }
    ensure_dns(global, &req.networks)?;
    // A taken host port is an error before anything changes.
    let reqs = req
        .ports
        .iter()
        .map(port_request)
        .collect::<anyhow::Result<Vec<_>>>()?;
    net.nets.check_ports(&reqs, &[])?;
    // `run -it` on a terminal: under a supervisor, attached at once, so
    // that the detach keys leave it running as Docker's do.
    let keys = berth_engine::runtime::attach::parse_detach_keys(detach_keys)?;
    let attached = how == Launch::Foreground
        && req.process.tty
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal();
    if attached {
        req.awaits_attach = true;
        let since = berth_engine::events::now();
        let p = run::prepare(root, &images, &req)?;
        let (dir, id, name) = (p.dir.clone(), p.record.id.clone(), p.record.name.clone());
        drop(p);
        if let Err(e) = start_supervisor(global, &id) {
            if let Ok((dir, rec)) = find(root, &id) {
                let _ = run::remove(root, &dir, &rec, true);
            }
            return Err(e);
        }
        if berth_engine::runtime::attach::attach(&dir, true, &keys)?
            == berth_engine::runtime::attach::Ended::Detached
        {
            eprintln!("\r\ndetached from {name}");
            return Ok(ExitCode::SUCCESS);
        }
        let code = exit_code_of(root, &id, &since).unwrap_or(0);
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)));
    }
    if how != Launch::Foreground {
        let p = run::prepare(root, &images, &req)?;
        let id = p.record.id.clone();
        drop(p);
        if how == Launch::Created {
            println!("{id}");
            return Ok(ExitCode::SUCCESS);
        }
        if let Err(e) = start_supervisor(global, &id) {
            if let Ok((dir, rec)) = find(root, &id) {
                let _ = run::remove(root, &dir, &rec, true);
            }
            return Err(e);
        }
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let code = run_foreground(root, &images, &req, &mut net)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// The exit code of container `id`'s run that began after `since`: from
/// its `die` event, which a `--rm` container leaves behind it.
fn exit_code_of(root: &std::path::Path, id: &str, since: &str) -> Option<i32> {
    let dir = root.join("containers").join(id);
    for _ in 0..100 {
        let code = berth_engine::events::read(root, Some(since), None)
            .into_iter()
            .find(|e| e.id == id && e.action == "die")
            .and_then(|e| e.attributes.get("exitCode")?.parse().ok())
            .or_else(|| {
                run::load_record(&dir)
                    .ok()
                    .filter(|r| r.status == "exited")
                    .and_then(|r| r.exit_code)
            });
        if code.is_some() {
            return code;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Joins the caller to a running container: its terminal, or (without
/// one) its output as it comes; returns its exit code once it exits.
pub fn attach(
    dir: &std::path::Path,
    rec: &ContainerRecord,
    o: &crate::cli::AttachOptions,
) -> anyhow::Result<ExitCode> {
    if !shim::is_up(rec) {
        bail!("container {} is not running: start it first", rec.name);
    }
    if freeze::is_paused(rec) {
        bail!("container {} is paused: unpause it first", rec.name);
    }
    attach_from(dir, rec, o, log_end(dir))
}

/// A log cursor past what container directory `dir` has logged so far.
fn log_end(dir: &std::path::Path) -> berth_engine::runtime::logs::LogCursor {
    let mut cursor = berth_engine::runtime::logs::LogCursor::default();
    cursor.read_new(dir);
    cursor
}

/// [`attach`], following a container without a terminal from `cursor`.
fn attach_from(
    dir: &std::path::Path,
    rec: &ContainerRecord,
    o: &crate::cli::AttachOptions,
    cursor: berth_engine::runtime::logs::LogCursor,
) -> anyhow::Result<ExitCode> {
    use berth_engine::runtime::attach as term;
    let keys = term::parse_detach_keys(&o.detach_keys)?;
    // A terminal's supervisor may be gone already when its container was
    // quicker than this attachment and nobody awaited it.
    let ended = if rec.tty && term::has_terminal(dir) {
        term::attach(dir, !o.no_stdin, &keys)?
    } else {
        if rec.stdin_open && !o.no_stdin && term::has_terminal(dir) {
            // Input goes by the supervisor's pipe, output by the log.
            let input = term::stdin_sender(dir)?;
            std::thread::spawn(input);
        }
        follow_output(dir, cursor)?;
        term::Ended::Exited
    };
    if ended == term::Ended::Detached {
        eprintln!("\r\ndetached from {}", rec.name);
        return Ok(ExitCode::SUCCESS);
    }
    let code = shim::wait_exited(dir, Duration::from_secs(10)).unwrap_or(0);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// Prints what a container without a terminal writes from now on, each
/// stream to its own, until it exits.
fn follow_output(
    dir: &std::path::Path,
    mut cursor: berth_engine::runtime::logs::LogCursor,
) -> anyhow::Result<()> {
    loop {
        let running = run::load_record(dir).is_ok_and(|r| shim::is_up(&r));
        for line in cursor.read_new(dir) {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let text = entry["log"].as_str().unwrap_or_default();
            if entry["stream"] == "stderr" {
                eprint!("{text}");
            } else {
                print!("{text}");
                std::io::stdout().flush()?;
            }
        }
        if !running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `container run` and `create`: pulls the image as `--pull` says, then
/// launches.
fn launch_with_pull(
    global: &Global,
    a: &ContainerRunArgs,
    how: Launch,
) -> anyhow::Result<ExitCode> {
    let req = request(a)?;
    let images = ImageStore::open(&global.root)?;
    let missing = images.resolve(&req.image).is_err();
    if a.pull == "always" || (a.pull == "missing" && missing) {
        crate::image_cmd::pull(global, &images, &req.image, false)?;
    }
    launch_with_keys(global, req, how, &a.detach_keys)
}

/// Runs one `berth container` command.
pub fn run(global: &Global, cmd: &ContainerCommand) -> anyhow::Result<ExitCode> {
    let root = &global.root;
    let mut out = std::io::stdout().lock();
    match cmd {
        ContainerCommand::Run(a) => {
            if !a.detach && a.restart != "no" {
                bail!("--restart needs a detached container (-d)");
            }
            let how = if a.detach {
                Launch::Detached
            } else {
                Launch::Foreground
            };
            launch_with_pull(global, a, how)
        }
        ContainerCommand::Create(a) => launch_with_pull(global, a, Launch::Created),
        ContainerCommand::Attach(a) => {
            let (dir, rec) = find(root, &a.name)?;
            attach(&dir, &rec, &a.options)
        }
        ContainerCommand::Restart(a) => {
            for n in &a.names {
                let (_, rec) = find(root, n)?;
                if shim::is_up(&rec) {
                    shim::stop(
                        root,
                        n,
                        rustix::process::Signal::TERM,
                        Duration::from_secs(a.timeout),
                    )?;
                }
                start_supervisor(global, &rec.id)?;
                writeln!(out, "{n}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Ls(a) if a.format.as_deref().is_some_and(|f| f != "table") => {
            let format = a.format.as_deref().unwrap_or_default();
            let ports: std::collections::BTreeMap<_, _> = berth_netplane::Networks::open(root)?
                .publications()
                .into_iter()
                .collect();
            for (dir, r) in list_records(root).iter().rev() {
                let status = shim::shown_status(dir, r);
                if !a.all && !status.starts_with("running") && status != "paused" {
                    continue;
                }
                let line = ps_line(r, &status, ports.get(&r.id).map(Vec::as_slice));
                if a.quiet {
                    writeln!(out, "{}", &r.id[..12])?;
                } else if format == "json" {
                    writeln!(out, "{line}")?;
                } else {
                    let text = crate::inspect::format(&format.replace("\\t", "\t"), &line)
                        .map_err(anyhow::Error::msg)?;
                    writeln!(out, "{text}")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Ls(a) => {
            let recs = list_records(root);
            if !a.quiet {
                writeln!(
                    out,
                    "{:<14}{:<28}{:<32}{:<28}NAMES",
                    "CONTAINER ID", "IMAGE", "COMMAND", "STATUS"
                )?;
            }
            for (dir, r) in recs.iter().rev() {
                let status = shim::shown_status(dir, r);
                if !a.all && !status.starts_with("running") && status != "paused" {
                    continue;
                }
                if a.quiet {
                    writeln!(out, "{}", &r.id[..12])?;
                    continue;
                }
                let mut command = format!("\"{}\"", r.command.join(" "));
                if command.len() > 28 {
                    command.truncate(26);
                    command.push_str("…\"");
                }
                writeln!(
                    out,
                    "{:<14}{:<28}{:<32}{:<28}{}",
                    &r.id[..12],
                    r.image,
                    command,
                    status,
                    r.name
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Start(a) if a.attach => {
            let [n] = a.names.as_slice() else {
                bail!("start --attach takes one container");
            };
            let (dir, mut rec) = find(root, n)?;
            if shim::is_up(&rec) {
                bail!("container {n} is running already: attach to it instead");
            }
            // What it writes from its start on: a terminal's first output
            // is kept for the attachment, a log is read from here.
            let cursor = log_end(&dir);
            if rec.tty {
                rec.awaits_attach = true;
                run::save_record(&dir, &rec)?;
            }
            start_supervisor(global, &rec.id)?;
            let (dir, rec) = find(root, n)?;
            let o = crate::cli::AttachOptions {
                no_stdin: !a.interactive,
                detach_keys: a.detach_keys.clone(),
                sig_proxy: None,
            };
            attach_from(&dir, &rec, &o, cursor)
        }
        ContainerCommand::Start(a) => {
            for n in &a.names {
                let (_, rec) = find(root, n)?;
                if freeze::is_paused(&rec) {
                    bail!("cannot start paused container {n}: unpause it instead");
                }
                if !shim::is_up(&rec) {
                    start_supervisor(global, &rec.id)?;
                }
                writeln!(out, "{n}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Stop(a) => {
            for n in &a.names {
                shim::stop(
                    root,
                    n,
                    rustix::process::Signal::TERM,
                    Duration::from_secs(a.timeout),
                )?;
                writeln!(out, "{n}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Stats(a) => {
            let recs: Vec<ContainerRecord> = if a.names.is_empty() {
                list_records(root)
                    .into_iter()
                    .map(|(_, r)| r)
                    .filter(shim::is_up)
                    .collect()
            } else {
                a.names
                    .iter()
                    .map(|n| find(root, n).map(|(_, r)| r))
                    .collect::<Result<_, _>>()?
            };
            stats(&recs, a.no_stream)?;
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Rename(a) => {
            let (dir, mut rec) = find(root, &a.name)?;
            if find(root, &a.new_name).is_ok() {
                bail!("the container name {:?} is already in use", a.new_name);
            }
            if !run::valid_name(&a.new_name) {
                bail!(
                    "invalid container name {:?}: use letters, digits, '_', '.', '-'",
                    a.new_name
                );
            }
            rec.name = a.new_name.clone();
            run::save_record(&dir, &rec)?;
            // Other containers find it by its new name at once.
            let nets = berth_netplane::Networks::open(root)?;
            for n in &rec.networks {
                let mut names = vec![rec.name.clone()];
                names.extend(rec.dns_names.iter().cloned());
                names.push(rec.id[..12].to_string());
                if let Some(o) = rec.network_opts.get(n) {
                    names.extend(o.aliases.iter().cloned());
                }
                if shim::is_up(&rec) {
                    nets.lease(n, &rec.id, None, &names)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Commit(a) => {
            let images = ImageStore::open(root)?;
            let reference = a
                .reference
                .as_deref()
                .map(berth_engine::image::Reference::parse)
                .transpose()?;
            let rec = berth_engine::runtime::changes::commit(
                root,
                &images,
                &a.name,
                reference.as_ref(),
                &a.changes,
            )?;
            writeln!(out, "{}", rec.id)?;
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Diff(a) => {
            for c in berth_engine::runtime::changes::diff(root, &a.name)? {
                writeln!(out, "{} {}", c.kind, c.path)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Port(a) => {
            let (_, r) = find(root, &a.name)?;
            let wanted = a
                .port
                .as_deref()
                .map(|p| {
                    let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                    let port = port
                        .parse::<u16>()
                        .with_context(|| format!("{p:?} is no PORT[/PROTO]"))?;
                    anyhow::Ok((port, proto.to_string()))
                })
                .transpose()?;
            let published = berth_netplane::Networks::open(root)?
                .publications()
                .into_iter()
                .find(|(id, _)| *id == r.id)
                .map(|(_, ports)| ports)
                .unwrap_or_default();
            let shown: Vec<_> = published
                .iter()
                .filter(|p| {
                    wanted.as_ref().is_none_or(|(port, proto)| {
                        (p.container_port, &p.protocol) == (*port, proto)
                    })
                })
                .collect();
            if let (Some((port, proto)), true) = (&wanted, shown.is_empty()) {
                bail!("no public port '{port}/{proto}' published for {}", r.name);
            }
            for p in shown {
                if wanted.is_some() {
                    writeln!(out, "{}:{}", p.host_ip, p.host_port)?;
                } else {
                    writeln!(
                        out,
                        "{}/{} -> {}:{}",
                        p.container_port, p.protocol, p.host_ip, p.host_port
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Top(a) => {
            let (_, r) = find(root, &a.name)?;
            let table = r
                .pid
                .filter(|_| berth_engine::runtime::shim::is_up(&r))
                .and_then(crate::top::table);
            let table = table.with_context(|| format!("container {} is not running", r.name))?;
            write!(out, "{table}")?;
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Export(a) => {
            crate::image_cmd::write_archive(a.output.as_deref(), &mut out, |w| {
                Ok(berth_engine::runtime::changes::export(root, &a.name, w)?)
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Cp(a) => {
            copy(root, a, &|name| Ok(name.to_string()))?;
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Pause(a) => {
            for n in &a.names {
                freeze::pause(root, n)?;
                writeln!(out, "{n}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Unpause(a) => {
            for n in &a.names {
                freeze::unpause(root, n)?;
                writeln!(out, "{n}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Kill(a) => {
            let sig = signal(&a.signal)?;
            for n in &a.names {
                shim::kill(root, n, sig)?;
                writeln!(out, "{n}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Rm(a) => {
            for n in &a.names {
                let (dir, rec) = find(root, n)?;
                if shim::is_up(&rec) {
                    if !a.force {
                        bail!(
                            "cannot remove container {n}: it is running (stop it first, or use --force)"
                        );
                    }
                    let stopped = shim::stop(
                        root,
                        n,
                        rustix::process::Signal::KILL,
                        Duration::from_secs(0),
                    );
                    if rec.auto_remove && !dir.exists() {
                        // Its supervisor removed it (`--rm`) as it ended.
                        writeln!(out, "{n}")?;
                        continue;
                    }
                    stopped?;
                }
                run::remove(root, &dir, &rec, a.volumes)?;
                writeln!(out, "{n}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Logs(a) => {
            let (dir, _) = find(root, &a.name)?;
            let mut cursor = berth_engine::runtime::logs::LogCursor::default();
            let mut first = true;
            loop {
                let mut lines = cursor.read_new(&dir);
                if first && let Some(n) = a.tail {
                    let skip = lines.len().saturating_sub(n);
                    lines.drain(..skip);
                }
                first = false;
                let mut err = std::io::stderr().lock();
                for l in lines {
                    let v: serde_json::Value = serde_json::from_str(&l).unwrap_or_default();
                    let text = v["log"].as_str().unwrap_or_default();
                    let prefix = if a.timestamps {
                        format!("{} ", v["time"].as_str().unwrap_or_default())
                    } else {
                        String::new()
                    };
                    if v["stream"] == "stderr" {
                        write!(err, "{prefix}{text}")?;
                    } else {
                        write!(out, "{prefix}{text}")?;
                    }
                }
                out.flush()?;
                if !a.follow {
                    break;
                }
                let running = run::load_record(&dir).is_ok_and(|r| shim::is_up(&r));
                if !running {
                    // One last read catches what was written before the exit.
                    if cursor.at_end(&dir) {
                        break;
                    }
                    continue;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Exec(a) => {
            let code = berth_engine::runtime::exec::exec(
                root,
                &a.name,
                &a.options.request(&a.command, a.tty),
            )?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
        }
        ContainerCommand::Inspect(a) => {
            let all = a
                .names
                .iter()
                .map(|n| find(root, n).map(|(dir, r)| crate::inspect::container(root, &dir, &r)))
                .collect::<Result<Vec<_>, _>>()?;
            crate::inspect::print(&mut out, &all, a.format.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Wait(a) => {
            for n in &a.names {
                let (dir, _) = find(root, n)?;
                let code = shim::wait_exited(&dir, Duration::from_secs(u64::MAX / 4))
                    .context("the container's record disappeared")?;
                writeln!(out, "{code}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
