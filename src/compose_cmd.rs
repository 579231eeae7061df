//! `berth up`, `down` and `ps`: the Compose commands, wiring the planner,
//! the reconciler, the engine and the network plane together.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use berth_engine::image::ImageStore;
use berth_engine::runtime::mounts::MountRequest;
use berth_engine::runtime::run::{self, RunRequest, find, list_records};
use berth_engine::runtime::spec::{ProcessRequest, Resources, Throttle, ThrottleKind};
use berth_engine::runtime::{freeze, shim, succession};
use berth_engine::volume::VolumeStore;
use berth_netplane::store::DEFAULT_BRIDGE;
use berth_netplane::{NetworkRequest, Networks};
use berth_planner::{
    ContainerState, DesiredState, DownOptions, ObservedContainer, ObservedNetwork, ObservedState,
    ObservedVolume, Op, Plan, PlanNode, PullPolicy, UpOptions, labels, plan_down, plan_up,
};
use berth_reconciler::Runtime;
use berth_spec::Project;

use crate::cli::{
    ComposeExecArgs, ComposeKillArgs, ComposeLogsArgs, ComposeRmArgs, ComposeRunArgs, DownArgs,
    Global, LsArgs, PortArgs, PsArgs, ServicesArgs, UpArgs,
};
use crate::config_cmd::load_options;
use crate::project_lock::ProjectLock;
use berth_engine::runtime::health::HealthConfig;

fn load(global: &Global) -> anyhow::Result<Project> {
    let opts = load_options(global, &[])?;
    let loaded = berth_spec::load(&opts)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded.project)
}

/// What exists of `project`, from the engine's and the network plane's records.
/// The project's desired state, with image names as the store records
/// them (`busybox` is `docker.io/library/busybox:latest`), so the planner
/// compares like with like.
fn desired_state(project: &Project, scale: &BTreeMap<String, u32>) -> DesiredState {
    let mut desired = DesiredState::from_project(project, scale);
    for c in desired.containers.values_mut() {
        if let Ok(r) = berth_engine::image::Reference::parse(&c.image) {
            c.image = r.to_string();
        }
    }
    desired
}

fn observe(root: &std::path::Path, project: &str) -> anyhow::Result<ObservedState> {
    run::collect_orphans(root);
    let mut state = ObservedState::default();
    for (_, r) in list_records(root) {
        if r.labels.get(labels::PROJECT).map(String::as_str) != Some(project) {
            continue;
        }
        let state_of = match state_name(&r) {
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "created" => ContainerState::Created,
            _ => ContainerState::Exited,
        };
        state.containers.push(ObservedContainer {
            name: r.name.clone(),
            labels: r.labels.clone(),
            state: state_of,
            config: r.config.clone(),
        });
    }
    let networks = Networks::open(root)?;
    for n in networks.list()? {
        state.networks.insert(
            n.name.clone(),
            ObservedNetwork {
                name: n.name.clone(),
                labels: n.labels.clone(),
                incomplete: !networks.is_complete(&n),
            },
        );
    }
    for v in VolumeStore::open(root)?.list()? {
        state.volumes.insert(
            v.name.clone(),
            ObservedVolume {
                name: v.name.clone(),
                labels: v.labels.clone(),
            },
        );
    }
    state.images.extend(ImageStore::open(root)?.references()?);
    Ok(state)
}

/// Docker Compose's labels for where a project comes from (`berth ls`).
const CONFIG_FILES_LABEL: &str = "com.docker.compose.project.config_files";
const WORKING_DIR_LABEL: &str = "com.docker.compose.project.working_dir";

/// The engine and the network plane behind the reconciler's trait.
struct HostRuntime<'a> {
    global: &'a Global,
    project: &'a Project,
    images: ImageStore,
    volumes: VolumeStore,
    networks: Networks,
    anonymous: Anonymous,
    /// Containers the plan removes and creates again.
    recreating: BTreeSet<String>,
    /// The live progress board, on a terminal.
    board: Option<&'a crate::progress::Board>,
}

/// What becomes of the anonymous volumes of the containers a plan removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Anonymous {
    /// A recreated container's successor mounts them again; a container
    /// removed for good leaves them (as Docker Compose does: `volume prune`
    /// collects them).
    Keep,
    /// `up -V`: successors get new ones.
    Renew,
    /// `down -v`: removed with their containers.
    Remove,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl<'a> HostRuntime<'a> {
    /// The runtime over the stores of `global`'s state root.
    fn open(
        global: &'a Global,
        project: &'a Project,
        anonymous: Anonymous,
        recreating: BTreeSet<String>,
        board: Option<&'a crate::progress::Board>,
    ) -> anyhow::Result<HostRuntime<'a>> {
        Ok(HostRuntime {
            global,
            project,
            images: ImageStore::open(&global.root)?,
            volumes: VolumeStore::open(&global.root)?,
            networks: Networks::open(&global.root)?,
            anonymous,
            recreating,
            board,
        })
    }

    /// Stops one container with its service's stop signal and grace period.
    fn stop_one(&self, name: &str, service: &str) -> Result<(), String> {
        stop_container(self.global, self.project, name, service).map_err(|e| format!("{e:#}"))
    }

    fn request(&self, name: &str, desired: &DesiredState) -> Result<RunRequest, String> {
        let d = desired
            .containers
            .get(name)
            .ok_or_else(|| format!("{name} is not a container of the project"))?;
        let svc = &self.project.services[&d.service];
        let mut mounts = Vec::new();
        for v in &svc.volumes {
            match v.kind.as_str() {
                "bind" => mounts.push(MountRequest::Bind {
                    source: PathBuf::from(&v.source),
                    target: v.target.clone(),
                    read_only: v.read_only,
                }),
                "volume" => {
                    let name = if v.source.is_empty() {
                        None
                    } else {
                        Some(
                            self.project
                                .volumes
                                .get(&v.source)
                                .map(|pv| pv.name.clone())
                                .unwrap_or_else(|| v.source.clone()),
                        )
                    };
                    mounts.push(MountRequest::Volume {
                        name,
                        target: v.target.clone(),
                        read_only: v.read_only,
                        nocopy: v.volume.as_ref().is_some_and(|o| o.nocopy),
                        subpath: v
                            .volume
                            .as_ref()
                            .map(|o| o.subpath.clone())
                            .filter(|s| !s.is_empty()),
                    });
                }
                "tmpfs" => mounts.push(MountRequest::Tmpfs {
                    target: v.target.clone(),
                    size: v
                        .tmpfs
                        .as_ref()
                        .map_or(0, |t| u64::try_from(t.size.0).unwrap_or(0)),
                    mode: v.tmpfs.as_ref().map_or(0, |t| t.mode),
                }),
                other => {
                    return Err(format!(
                        "service {}: volumes of type {other} are not supported yet",
                        d.service
                    ));
                }
            }
        }
        for t in &svc.tmpfs {
            mounts.push(
                berth_engine::runtime::mounts::parse_tmpfs(t)
                    .map_err(|e| format!("service {}: {e}", d.service))?,
            );
        }
        // File secrets and configs are read-only bind mounts, as Docker
        // Compose makes them outside a swarm: secrets under /run/secrets,
        // configs at the root, unless a target says otherwise.
        for (kind, refs, objects, base) in [
            (
                "secret",
                &svc.secrets,
                &self.project.secrets,
                "/run/secrets",
            ),
            ("config", &svc.configs, &self.project.configs, ""),
        ] {
            for r in refs {
                let object = objects.get(&r.source).ok_or_else(|| {
                    format!(
                        "service {}: {kind} {:?} is not defined at the top level",
                        d.service, r.source
                    )
                })?;
                if object.file.is_empty() {
                    return Err(format!(
                        "service {}: {kind} {:?}: {kind}s from the environment, inline \
                         content or outside the project are not supported yet (only from a file)",
                        d.service, r.source
                    ));
                }
                let target = match r.target.as_str() {
                    "" => format!("{base}/{}", r.source),
                    t if t.starts_with('/') => t.to_string(),
                    t => format!("{base}/{t}"),
                };
                mounts.push(MountRequest::Bind {
                    source: PathBuf::from(&object.file),
                    target,
                    read_only: true,
                });
            }
        }
        let networks = match svc.network_mode.as_str() {
            "" => {
                let mut keys: Vec<(&String, i64)> = svc
                    .networks
                    .iter()
                    .map(|(k, v)| (k, v.as_ref().map_or(0, |n| n.priority)))
                    .collect();
                keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                keys.into_iter()
                    .map(|(k, _)| {
                        self.project
                            .networks
                            .get(k)
                            .map_or(k.clone(), |n| n.name.clone())
                    })
                    .collect()
            }
            // Docker's default bridge, as with Docker Compose.
            "bridge" => vec![DEFAULT_BRIDGE.to_string()],
            _ => Vec::new(),
        };
        let network_mode = match svc.network_mode.split_once(':') {
            Some(("service", target)) => {
                // Replica 1 of the service, as Docker Compose picks it.
                let c = desired.first_of(target).ok_or_else(|| {
                    format!(
                        "service {}: network_mode service:{target}: no container of {target}",
                        d.service
                    )
                })?;
                format!("container:{}", c.name)
            }
            _ => svc.network_mode.clone(),
        };
        let limits = svc
            .deploy
            .as_ref()
            .and_then(|dp| dp.resources.limits.as_ref());
        let memory = (svc.mem_limit.0 != 0)
            .then_some(svc.mem_limit.0)
            .or_else(|| limits.map(|l| l.memory.0).filter(|m| *m != 0));
        let cpus = if svc.cpus != 0.0 {
            svc.cpus
        } else {
            limits.map_or(0.0, |l| l.cpus)
        };
        let mut req = RunRequest {
            inherit_anonymous: BTreeMap::new(),
            image: d.image.clone(),
            name: Some(d.name.clone()),
            process: ProcessRequest {
                cmd: svc.command.clone(),
                entrypoint: svc.entrypoint.clone(),
                tty: svc.tty,
                env: svc
                    .environment
                    .iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                    .collect(),
                workdir: (!svc.working_dir.is_empty()).then(|| svc.working_dir.clone()),
                cap_add: svc.cap_add.clone(),
                cap_drop: svc.cap_drop.clone(),
                security_opt: svc.security_opt.clone(),
                ulimits: svc
                    .ulimits
                    .iter()
                    .map(|(name, u)| {
                        let (soft, hard) = match u {
                            berth_spec::model::Ulimit::Single(n) => (*n, *n),
                            berth_spec::model::Ulimit::SoftHard { soft, hard } => (*soft, *hard),
                        };
                        let limit = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
                        (name.clone(), limit(soft), limit(hard))
                    })
                    .collect(),
                sysctls: svc.sysctls.clone(),
                oom_score_adj: i32::try_from(svc.oom_score_adj).ok().filter(|v| *v != 0),
                shm_size: u64::try_from(svc.shm_size.0).ok().filter(|v| *v != 0),
                init: svc.init == Some(true),
                privileged: svc.privileged,
                devices: svc
                    .devices
                    .iter()
                    .map(|d| berth_engine::runtime::devices::Device {
                        host: PathBuf::from(&d.source),
                        container: if d.target.is_empty() {
                            d.source.clone()
                        } else {
                            d.target.clone()
                        },
                        access: if d.permissions.is_empty() {
                            "rwm".into()
                        } else {
                            d.permissions.clone()
                        },
                    })
                    .collect(),
                ..ProcessRequest::default()
            },
            user: (!svc.user.is_empty()).then(|| svc.user.clone()),
            hostname: (!svc.hostname.is_empty()).then(|| svc.hostname.clone()),
            read_only: svc.read_only,
            userns: berth_engine::runtime::userns::parse_mode(&svc.userns_mode)
                .map_err(|e| format!("service {}: {e}", d.service))?,
            stdin_open: svc.stdin_open,
            awaits_attach: false,
            remove: false,
            mounts,
            resources: Resources {
                memory,
                memory_swap: (svc.memswap_limit.0 != 0).then_some(svc.memswap_limit.0),
                memory_reservation: (svc.mem_reservation.0 != 0).then_some(svc.mem_reservation.0),
                cpu_shares: u64::try_from(svc.cpu_shares).ok().filter(|s| *s != 0),
                millicpus: (cpus > 0.0).then(|| (f64::from(cpus) * 1000.0).round() as u64),
                cpuset_cpus: (!svc.cpuset.is_empty()).then(|| svc.cpuset.clone()),
                pids_limit: (svc.pids_limit != 0).then_some(svc.pids_limit),
                blkio_weight: svc
                    .blkio_config
                    .as_ref()
                    .and_then(|b| u16::try_from(b.weight).ok())
                    .filter(|w| *w != 0),
                blkio_weight_device: svc
                    .blkio_config
                    .iter()
                    .flat_map(|b| &b.weight_device)
                    .map(|w| (w.path.clone().into(), u16::try_from(w.weight).unwrap_or(u16::MAX)))
                    .collect(),
                throttle: throttles(svc.blkio_config.as_ref()),
            },
            log: match &svc.logging {
                Some(l) => {
                    berth_engine::runtime::logs::LogConfig::from_options(&l.driver, &l.options)
                        .map_err(|e| format!("service {}: {e}", d.service))?
                }
                None => Default::default(),
            },
            restart: if svc.restart.is_empty() {
                "no".into()
            } else {
                svc.restart.clone()
            },
            networks: networks.clone(),
            labels: {
                let mut l = d.labels.clone();
                l.insert(
                    CONFIG_FILES_LABEL.into(),
                    self.project
                        .compose_files
                        .iter()
                        .map(|f| f.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(","),
                );
                l.insert(
                    WORKING_DIR_LABEL.into(),
                    self.project.working_dir.to_string_lossy().into_owned(),
                );
                l
            },
            config: Some(d.config.clone()),
            dns: match networks.first() {
                // No embedded DNS there: the host's name servers.
                Some(n) if n == DEFAULT_BRIDGE => {
                    self.networks.ensure_default().map_err(err)?;
                    Vec::new()
                }
                Some(n) => vec![self.networks.inspect(n).map_err(err)?.gateway],
                None => Vec::new(),
            }
            .into_iter()
            .chain(svc.dns.iter().cloned())
            .collect(),
            dns_names: {
                let mut names = vec![d.service.clone()];
                if !svc.hostname.is_empty() {
                    names.push(svc.hostname.clone());
                }
                names
            },
            network_opts: svc
                .networks
                .iter()
                .filter_map(|(key, n)| Some((key, n.as_ref()?)))
                .map(|(key, n)| {
                    let name = self
                        .project
                        .networks
                        .get(key)
                        .map_or(key.clone(), |net| net.name.clone());
                    let ipv4_address = match n.ipv4_address.as_str() {
                        "" => None,
                        a => Some(a.parse().map_err(|_| {
                            format!("service {}: networks.{key}.ipv4_address: {a:?} is not an IPv4 address", d.service)
                        })?),
                    };
                    let mac_address = match n.mac_address.as_str() {
                        "" => None,
                        m => Some(checked_mac(&d.service, &format!("networks.{key}.mac_address"), m)?),
                    };
                    let ipv6_address = match n.ipv6_address.as_str() {
                        "" => None,
                        a => Some(a.parse().map_err(|_| {
                            format!("service {}: networks.{key}.ipv6_address: {a:?} is not an IPv6 address", d.service)
                        })?),
                    };
                    let opts = berth_engine::runtime::run::NetworkOpts {
                        ipv4_address,
                        ipv6_address,
                        aliases: n.aliases.clone(),
                        mac_address,
                    };
                    Ok((name, opts))
                })
                .collect::<Result<_, String>>()?,
            health: svc.healthcheck.as_ref().and_then(|h| {
                let d = |v: Option<berth_spec::units::Duration>| {
                    v.map_or(Duration::ZERO, |d| d.to_std())
                };
                HealthConfig::new(
                    &h.test,
                    d(h.interval),
                    d(h.timeout),
                    h.retries.unwrap_or(0),
                    d(h.start_period),
                    d(h.start_interval),
                )
            }),
            network_mode,
            extra_hosts: svc
                .extra_hosts
                .iter()
                .filter_map(|h| h.split_once('=').or_else(|| h.split_once(':')))
                .map(|(n, a)| (n.to_string(), a.to_string()))
                .collect(),
            volumes_from: svc
                .volumes_from
                .iter()
                .map(|v| {
                    if let Some(rest) = v.strip_prefix("container:") {
                        return Ok(rest.to_string());
                    }
                    let (service, mode) = match v.split_once(':') {
                        Some((s, m)) => (s, Some(m)),
                        None => (v.as_str(), None),
                    };
                    let c = desired.first_of(service).ok_or_else(|| {
                        format!(
                            "service {}: volumes_from {service}: no such service",
                            d.service
                        )
                    })?;
                    Ok(match mode {
                        Some(m) => format!("{}:{m}", c.name),
                        None => c.name.clone(),
                    })
                })
                .collect::<Result<_, String>>()?,
            no_healthcheck: svc
                .healthcheck
                .as_ref()
                .is_some_and(|h| h.disable || h.test.first().is_some_and(|t| t == "NONE")),
            ports: svc
                .ports
                .iter()
                .map(|p| {
                    let host_port = match p.published.split_once('-') {
                        _ if p.published.is_empty() => None,
                        // A range for one container port: its first free
                        // port, as Docker picks.
                        Some((first, last)) => Some(self.free_port_in(
                            &d.service,
                            &p.host_ip,
                            &p.protocol,
                            first,
                            last,
                        )?),
                        None => Some(p.published.parse::<u16>().map_err(|_| {
                            format!(
                                "service {}: published port {:?} is not a port",
                                d.service, p.published
                            )
                        })?),
                    };
                    Ok(run::PortBinding {
                        host_ip: p.host_ip.clone(),
                        host_port,
                        container_port: u16::try_from(p.target)
                            .map_err(|_| "port out of range".to_string())?,
                        protocol: p.protocol.clone(),
                    })
                })
                .collect::<Result<_, String>>()?,
        };
        // The service's own mac_address is its first network's, as with
        // Docker Compose.
        if !svc.mac_address.is_empty()
            && let Some(first) = req.networks.first()
        {
            let mac = checked_mac(&d.service, "mac_address", &svc.mac_address)?;
            let opts = req.network_opts.entry(first.clone()).or_default();
            opts.mac_address.get_or_insert(mac);
        }
        Ok(req)
    }

    /// The first port from `first` to `last` that nothing holds.
    fn free_port_in(
        &self,
        service: &str,
        host_ip: &str,
        protocol: &str,
        first: &str,
        last: &str,
    ) -> Result<u16, String> {
        let bad = || {
            format!(
                "service {service}: published port range {first}-{last} is not a range of ports"
            )
        };
        let (a, b): (u16, u16) = (
            first.parse().map_err(|_| bad())?,
            last.parse().map_err(|_| bad())?,
        );
        (a..=b)
            .find(|port| {
                let req = berth_netplane::PortRequest {
                    host_ip: host_ip.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                    host_port: Some(*port),
                    container_port: 0,
                    protocol: protocol.to_string(),
                };
                self.networks.check_ports(&[req], &[]).is_ok()
            })
            .ok_or_else(|| format!("service {service}: no free port in {first}-{last}"))
    }
}

/// A checked `mac_address`.
fn checked_mac(service: &str, field: &str, mac: &str) -> Result<String, String> {
    berth_netplane::attach::parse_mac(mac)
        .map(|_| mac.to_string())
        .map_err(|e| format!("service {service}: {field}: {e}"))
}

impl Runtime for HostRuntime<'_> {
    fn pull_image(&self, image: &str) -> Result<(), String> {
        if let Some((name, _)) = self.project.services.iter().find(|(_, svc)| {
            svc.image.is_empty()
                && berth_engine::image::Reference::parse(&self.project.image_name(svc))
                    .is_ok_and(|r| r.to_string() == image)
        }) {
            return Err(format!(
                "service {name} has no image, only `build`, and berth does not build images yet: build it elsewhere and `berth image load` it as {image}"
            ));
        }
        let Some(board) = self.board else {
            return crate::image_cmd::pull(self.global, &self.images, image, false)
                .map(|_| ())
                .map_err(|e| format!("{e:#}"));
        };
        // On the board, the image's line shows all its layers' bytes.
        let id = format!("image {image}");
        let layers = std::sync::Mutex::new(BTreeMap::<String, (u64, u64)>::new());
        let step = |s: &berth_engine::image::registry::Step<'_>| {
            let Some(bytes) = s.bytes else { return };
            let mut layers = layers.lock().unwrap_or_else(|e| e.into_inner());
            layers.insert(s.id.to_string(), bytes);
            let (done, total) = layers
                .values()
                .fold((0, 0), |(d, t), (ld, lt)| (d + ld, t + lt));
            board.working(
                &id,
                &format!("Pulling {}", crate::progress::bar(done, total)),
            );
        };
        let r = berth_engine::image::Reference::parse(image).map_err(err)?;
        berth_engine::image::registry::pull(&self.images, &r, &step)
            .map(|_| ())
            .map_err(|e| format!("pulling {r}: {e}"))
    }

    fn create_network(&self, key: &str, desired: &DesiredState) -> Result<(), String> {
        let d = &desired.networks[key];
        let net = &self.project.networks[key];
        let mut l = net.labels.clone();
        l.insert(labels::PROJECT.into(), self.project.name.clone());
        l.insert(labels::NETWORK.into(), key.to_string());
        l.insert(labels::CONFIG_HASH.into(), d.hash.clone());
        // One pool per family: an IPv6 subnet is the one with colons.
        let pool = net.ipam.config.iter().find(|p| !p.subnet.contains(':'));
        let pool6 = net.ipam.config.iter().find(|p| p.subnet.contains(':'));
        let rec = self
            .networks
            .ensure(&NetworkRequest {
                name: d.name.clone(),
                subnet: pool.map(|p| p.subnet.clone()).filter(|s| !s.is_empty()),
                gateway: pool.map(|p| p.gateway.clone()).filter(|g| !g.is_empty()),
                ip_range: pool.map(|p| p.ip_range.clone()).filter(|r| !r.is_empty()),
                aux_addresses: pool
                    .iter()
                    .flat_map(|p| &p.aux_addresses)
                    .map(|(host, a)| {
                        a.parse().map_err(|_| {
                            format!(
                                "network {key}: aux_addresses.{host}: {a:?} is not an IPv4 address"
                            )
                        })
                    })
                    .collect::<Result<_, String>>()?,
                ipv6: net.enable_ipv6.unwrap_or(false),
                subnet6: pool6.map(|p| p.subnet.clone()),
                gateway6: pool6.map(|p| p.gateway.clone()).filter(|g| !g.is_empty()),
                internal: net.internal,
                labels: l,
                bridge: net
                    .driver_opts
                    .get("com.docker.network.bridge.name")
                    .cloned(),
                mtu: net
                    .driver_opts
                    .get("com.docker.network.driver.mtu")
                    .and_then(|m| m.parse().ok()),
            })
            .map_err(err)?;
        crate::container_cmd::ensure_dns(self.global, std::slice::from_ref(&rec.name))
            .map_err(|e| format!("{e:#}"))
    }

    fn remove_network(&self, name: &str) -> Result<(), String> {
        self.networks.remove(name).map_err(err)
    }

    fn create_volume(&self, key: &str, desired: &DesiredState) -> Result<(), String> {
        let d = &desired.volumes[key];
        let v = &self.project.volumes[key];
        let mut l = v.labels.clone();
        l.insert(labels::PROJECT.into(), self.project.name.clone());
        l.insert(labels::VOLUME.into(), key.to_string());
        l.insert(labels::CONFIG_HASH.into(), d.hash.clone());
        self.volumes
            .create(&d.name, &v.driver, v.driver_opts.clone(), l)
            .map(|_| ())
            .map_err(err)
    }

    fn remove_volume(&self, name: &str) -> Result<(), String> {
        self.volumes.remove(name, &|_| false).map_err(err)
    }

    fn create_container(&self, name: &str, desired: &DesiredState) -> Result<(), String> {
        let mut req = self.request(name, desired)?;
        if self.anonymous == Anonymous::Keep {
            req.inherit_anonymous = succession::inheritance(&self.global.root, name);
        }
        run::prepare(&self.global.root, &self.images, &req).map_err(err)?;
        succession::settle(&self.global.root, name);
        Ok(())
    }

    fn start_container(&self, name: &str) -> Result<(), String> {
        let (dir, rec) = find(&self.global.root, name).map_err(err)?;
        if freeze::is_paused(&rec) {
            return freeze::resume(&dir, &rec).map_err(err);
        }
        crate::container_cmd::start_supervisor(self.global, &rec.id)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    }

    fn wait_for(&self, service: &str, condition: &str) -> Result<(), String> {
        loop {
            let containers: Vec<_> = list_records(&self.global.root)
                .into_iter()
                .filter(|(_, r)| {
                    r.labels.get(labels::PROJECT) == Some(&self.project.name)
                        && r.labels.get(labels::SERVICE).map(String::as_str) == Some(service)
                        && r.labels.get(labels::ONEOFF).map(String::as_str) != Some("True")
                })
                .collect();
            if containers.is_empty() {
                return Err(format!("service {service} has no container"));
            }
            let mut met = true;
            for (dir, r) in &containers {
                let status = shim::live_status(r);
                let running = status == "running";
                match condition {
                    "service_healthy" => {
                        if r.health.is_none() {
                            return Err(format!(
                                "container {} has no healthcheck configured",
                                r.name
                            ));
                        }
                        if !running {
                            return Err(format!("container {} {status}", r.name));
                        }
                        met &= healthy(dir, r)?;
                    }
                    "service_completed_successfully" => {
                        // The supervisor records the exit code just after the
                        // exit: until then the record still says running.
                        if r.status != "exited" && shim::supervisor_alive(r) {
                            met = false;
                        } else if r.exit_code != Some(0) {
                            return Err(format!(
                                "service {service} didn't complete successfully: exit {}",
                                r.exit_code.unwrap_or(255)
                            ));
                        }
                    }
                    other => return Err(format!("unknown depends_on condition {other}")),
                }
            }
            if met {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_container(&self, name: &str, service: &str) -> Result<(), String> {
        self.stop_one(name, service)
    }

    fn remove_container(&self, name: &str) -> Result<(), String> {
        let (dir, rec) = find(&self.global.root, name).map_err(err)?;
        let root = &self.global.root;
        if self.recreating.contains(name) && self.anonymous == Anonymous::Keep {
            succession::bequeath(root, name, &run::anonymous_by_target(&rec)).map_err(err)?;
        }
        let drop_volumes = self.anonymous == Anonymous::Remove && !self.recreating.contains(name);
        run::remove(root, &dir, &rec, drop_volumes).map_err(err)
    }
}

/// `blkio_config`'s per-device limits.
fn throttles(b: Option<&berth_spec::model::BlkioConfig>) -> Vec<Throttle> {
    let Some(b) = b else { return Vec::new() };
    [
        (ThrottleKind::ReadBps, &b.device_read_bps),
        (ThrottleKind::WriteBps, &b.device_write_bps),
        (ThrottleKind::ReadIops, &b.device_read_iops),
        (ThrottleKind::WriteIops, &b.device_write_iops),
    ]
    .into_iter()
    .flat_map(|(kind, devices)| {
        devices.iter().map(move |d| Throttle {
            kind,
            device: d.path.clone().into(),
            rate: u64::try_from(d.rate.0).unwrap_or(0),
        })
    })
    .collect()
}

/// What a node is doing, while it does it.
fn working(n: &PlanNode) -> &'static str {
    match n.op {
        Op::PullImage => "Pulling",
        Op::CreateNetwork | Op::CreateVolume | Op::CreateContainer => "Creating",
        Op::StartContainer => "Starting",
        Op::StopContainer => "Stopping",
        Op::RemoveNetwork | Op::RemoveVolume | Op::RemoveContainer => "Removing",
    }
}

fn verb(n: &PlanNode) -> &'static str {
    match n.op {
        Op::PullImage => "Pulled",
        Op::CreateNetwork | Op::CreateVolume | Op::CreateContainer => "Created",
        Op::StartContainer => "Started",
        Op::StopContainer => "Stopped",
        Op::RemoveNetwork | Op::RemoveVolume | Op::RemoveContainer => "Removed",
    }
}

/// A host port the plan would publish but that is taken is an error that
/// names the port and the service, before anything changes.
fn check_ports(global: &Global, project: &Project, plan: &Plan) -> anyhow::Result<()> {
    let nets = Networks::open(&global.root)?;
    let removed: Vec<String> = plan
        .nodes
        .iter()
        .filter(|n| n.op == Op::RemoveContainer)
        .filter_map(|n| match &n.resource {
            berth_planner::Resource::Container { name, .. } => {
                find(&global.root, name).ok().map(|(_, r)| r.id)
            }
            _ => None,
        })
        .collect();
    let owners: Vec<&str> = removed.iter().map(String::as_str).collect();
    for n in plan.nodes.iter().filter(|n| n.op == Op::CreateContainer) {
        let berth_planner::Resource::Container { service, .. } = &n.resource else {
            continue;
        };
        let Some(svc) = project.services.get(service) else {
            continue;
        };
        for p in &svc.ports {
            let Ok(port) = p.published.parse::<u16>() else {
                continue;
            };
            let req = berth_netplane::PortRequest {
                host_ip: p.host_ip.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                host_port: Some(port),
                container_port: u16::try_from(p.target).unwrap_or(0),
                protocol: p.protocol.clone(),
            };
            nets.check_ports(&[req], &owners)
                .with_context(|| format!("service {service} cannot publish port {port}"))?;
        }
    }
    Ok(())
}

/// How many plan nodes run at once, unless `COMPOSE_PARALLEL_LIMIT` says
/// otherwise (as it does for Docker Compose). Most of a node's time is spent waiting
/// (for a supervisor to report, a grace period, a healthcheck), not
/// computing, so this is above the core count; it stays low enough that
/// the nodes' short CPU bursts do not crowd each other out.
const PARALLELISM: usize = 8;

fn execute(
    global: &Global,
    project: &Project,
    desired: &DesiredState,
    plan: &Plan,
    anonymous: Anonymous,
) -> anyhow::Result<()> {
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    check_ports(global, project, plan)?;
    let names_of = |op: Op| -> BTreeSet<String> {
        plan.nodes
            .iter()
            .filter(|n| n.op == op)
            .filter_map(|n| match &n.resource {
                berth_planner::Resource::Container { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    };
    let board = (crate::progress::live(global) && !plan.nodes.is_empty())
        .then(|| crate::progress::Board::new("Running"));
    let recreating = names_of(Op::RemoveContainer)
        .intersection(&names_of(Op::CreateContainer))
        .cloned()
        .collect();
    let rt = HostRuntime::open(global, project, anonymous, recreating, board.as_ref())?;
    // Not locked across the run: workers print too (pull progress).
    let err = std::io::stderr();
    let mut warnings = Vec::new();
    let parallelism = std::env::var("COMPOSE_PARALLEL_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PARALLELISM);
    let mut report = |e: berth_reconciler::Event<'_>| {
        use berth_reconciler::Event;
        if let Some(b) = &board {
            match e {
                Event::Started(n) => b.working(&n.resource.to_string(), working(n)),
                Event::Done(n) => b.done(&n.resource.to_string(), verb(n)),
                Event::Failed(n, _) => b.failed(&n.resource.to_string(), "Error"),
            }
            return;
        }
        let Event::Done(n) = e else { return };
        match global.progress.as_str() {
            "quiet" => {}
            "json" => {
                let line = serde_json::json!({
                    "id": n.resource.to_string(),
                    "status": verb(n),
                    "text": n.cause,
                });
                let _ = writeln!(err.lock(), "{line}");
            }
            _ => {
                let _ = writeln!(err.lock(), " ✔ {} {}", n.resource, verb(n));
            }
        }
    };
    let mut warn = |w: &str| warnings.push(w.to_string());
    let mut run =
        || berth_reconciler::apply(plan, desired, &rt, parallelism, &mut report, &mut warn);
    match &board {
        Some(b) => b.show(run)?,
        None => run()?,
    }
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// `berth up`.
pub fn up(global: &Global, a: &UpArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    for s in a.attach.iter().chain(&a.no_attach) {
        if !project.services.contains_key(s) {
            anyhow::bail!("--attach/--no-attach: no such service: {s}");
        }
    }
    let mut scale = BTreeMap::new();
    for s in &a.scale {
        let (svc, n) = s.split_once('=').context("--scale takes SERVICE=NUM")?;
        scale.insert(
            svc.to_string(),
            n.parse::<u32>().context("--scale takes SERVICE=NUM")?,
        );
    }
    let mut desired = desired_state(&project, &scale);
    let mut untouched = BTreeSet::new();
    if !a.services.is_empty() {
        let mut selected = BTreeSet::new();
        for s in &a.services {
            if !project.services.contains_key(s) {
                anyhow::bail!("no such service: {s}");
            }
            if !a.no_deps {
                selected.extend(dependencies(&project, s));
            }
            selected.insert(s.clone());
        }
        desired
            .containers
            .retain(|_, c| selected.contains(&c.service));
        untouched = project
            .services
            .keys()
            .filter(|s| !selected.contains(*s))
            .cloned()
            .collect();
    }
    let lock = ProjectLock::acquire(&global.root, &project.name)?;
    let observed = observe(&global.root, &project.name)?;
    let opts = UpOptions {
        untouched,
        force_recreate: a.force_recreate,
        no_recreate: a.no_recreate,
        remove_orphans: a.remove_orphans,
        no_start: a.no_start,
        always_recreate_deps: a.always_recreate_deps,
        pull: match a.pull.as_deref() {
            Some("always") => PullPolicy::Always,
            Some("never") => PullPolicy::Never,
            _ => PullPolicy::Missing,
        },
    };
    let plan = plan_up(&desired, &observed, &opts)?;
    if a.dry_run {
        print!("{plan}");
        return Ok(ExitCode::SUCCESS);
    }
    let anonymous = if a.renew_anon_volumes {
        Anonymous::Renew
    } else {
        Anonymous::Keep
    };
    execute(global, &project, &desired, &plan, anonymous)?;
    // A table deleted or flushed from outside (a firewall reload) is put
    // back by the next `up`, even one with nothing else to do.
    if !plan
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::CreateNetwork | Op::RemoveNetwork))
    {
        Networks::open(&global.root)?.sync_firewall()?;
    }
    // Attaching may last for days: other commands on the project must not wait.
    drop(lock);
    if a.wait && !a.no_start {
        wait_ready(
            global,
            &project,
            &desired,
            a.wait_timeout.map(Duration::from_secs),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.detach || a.no_start {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(s) = &a.exit_code_from
        && !project.services.contains_key(s)
    {
        anyhow::bail!("--exit-code-from: no such service: {s}");
    }
    let abort = a.abort_on_container_exit || a.exit_code_from.is_some();
    let attached: Vec<String> = project
        .services
        .keys()
        .filter(|s| a.attach.is_empty() || a.attach.contains(s))
        .filter(|s| !a.no_attach.contains(s))
        .cloned()
        .collect();
    let style = FollowStyle {
        timestamps: a.timestamps,
        prefix: !a.no_log_prefix,
        colour: !a.no_color && FollowStyle::default().colour,
        ..FollowStyle::default()
    };
    attach(
        global,
        &project,
        &attached,
        style,
        abort,
        a.exit_code_from.as_deref(),
    )
}

/// The exit code `up --abort-on-container-exit` returns: that of
/// `service`'s first container, or else of the container that exited.
fn abort_code(
    global: &Global,
    project: &Project,
    service: Option<&str>,
    exited: &run::ContainerRecord,
) -> anyhow::Result<u8> {
    let code = match service {
        Some(s) => project_containers(global, project, &[s.to_string()])?
            .first()
            .and_then(|(dir, _)| run::load_record(dir).ok())
            .and_then(|r| r.exit_code)
            .unwrap_or(0),
        None => exited.exit_code.unwrap_or(0),
    };
    Ok(u8::try_from(code).unwrap_or(255))
}

/// Foreground `up`: the services' output until they all exit; Ctrl-C (or
/// SIGTERM) stops the project gracefully, a second one kills it.
/// Follows the output of the `attached` services' containers until they
/// stop (Ctrl-C stops the whole project).
fn attach(
    global: &Global,
    project: &Project,
    attached: &[String],
    style: FollowStyle,
    abort: bool,
    exit_code_from: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    if attached.is_empty() {
        anyhow::bail!("no service left to attach to: use -d to run in the background");
    }
    let recs = project_containers(global, project, attached)?;
    let mut follow = Follow::new(recs, style);
    let mut out = std::io::stdout().lock();
    std::thread::scope(|scope| {
        let mut stopper: Option<std::thread::ScopedJoinHandle<anyhow::Result<()>>> = None;
        // Ctrl-C: 130, as a shell reports an interrupted command.
        let mut code = 130;
        loop {
            follow.pump(&mut out)?;
            if abort
                && stopper.is_none()
                && let Some(r) = follow.first_exited()
            {
                eprintln!("Aborting on container exit...");
                code = abort_code(global, project, None, &r)?;
                stopper = Some(scope.spawn(|| stop_services(global, project, &[])));
            }
            for _ in signals.pending() {
                if stopper.is_none() {
                    eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
                    stopper = Some(scope.spawn(|| stop_services(global, project, &[])));
                } else {
                    for (_, r) in project_containers(global, project, &[])? {
                        if shim::is_up(&r) {
                            shim::kill(&global.root, &r.name, rustix::process::Signal::KILL)?;
                            eprintln!(" ✔ container {} Killed", r.name);
                        }
                    }
                }
            }
            if stopper.as_ref().is_some_and(|t| t.is_finished()) {
                follow.pump(&mut out)?;
                if let Some(t) = stopper.take() {
                    t.join()
                        .map_err(|_| anyhow::anyhow!("stopping the project panicked"))??;
                }
                if let (true, Some(s)) = (abort, exit_code_from) {
                    code = abort_code(global, project, Some(s), &run::ContainerRecord::default())?;
                }
                return Ok(ExitCode::from(code));
            }
            if stopper.is_none() && !follow.any_running() {
                follow.pump(&mut out)?;
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// `berth down`.
pub fn down(global: &Global, a: &DownArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let desired = desired_state(&project, &BTreeMap::new());
    let lock = ProjectLock::acquire(&global.root, &project.name)?;
    let observed = observe(&global.root, &project.name)?;
    let plan = plan_down(
        &desired,
        &observed,
        &DownOptions {
            volumes: a.volumes,
            remove_orphans: a.remove_orphans,
        },
    );
    if a.dry_run {
        print!("{plan}");
        return Ok(ExitCode::SUCCESS);
    }
    let anonymous = if a.volumes {
        Anonymous::Remove
    } else {
        Anonymous::Keep
    };
    execute(global, &project, &desired, &plan, anonymous)?;
    // What a recreation killed between removal and creation left for a
    // successor that `down` means never to create.
    let volumes = VolumeStore::open(&global.root)?;
    for name in desired.containers.keys() {
        if a.volumes {
            for v in succession::inheritance(&global.root, name).values() {
                let _ = volumes.remove(v, &|_| false);
            }
        }
        succession::settle(&global.root, name);
    }
    // The firewall table follows the records: a `down` killed after removing
    // the last network's record, before rewriting the table, left rules
    // that this one removes (a network removed now has synced it already).
    if !plan.nodes.iter().any(|n| n.op == Op::RemoveNetwork) {
        Networks::open(&global.root)?.sync_firewall()?;
    }
    berth_netplane::dns::stop_if_idle(&global.root)?;
    if let Some(which) = &a.rmi {
        remove_images(global, &project, which == "local")?;
    }
    lock.remove();
    Ok(ExitCode::SUCCESS)
}

/// `down --rmi`: the services' images (`local`: only those named after the
/// project, having no `image:`), unless another container still uses one.
fn remove_images(global: &Global, project: &Project, local_only: bool) -> anyhow::Result<()> {
    let store = ImageStore::open(&global.root)?;
    let names: BTreeSet<String> = project
        .services
        .values()
        .filter(|svc| !local_only || svc.image.is_empty())
        .map(|svc| project.image_name(svc))
        .collect();
    let in_use = crate::image_cmd::images_in_use(global);
    for name in names {
        if store.resolve(&name).is_err() {
            continue;
        }
        match store.remove(&name, false, &|id| in_use.contains(id)) {
            Ok(_) => eprintln!(" ✔ image {name} Removed"),
            Err(e) => eprintln!("warning: image {name}: {e}"),
        }
    }
    Ok(())
}

/// The host ports published, by container id.
fn published(nets: &Networks) -> BTreeMap<String, Vec<berth_netplane::PublishedPort>> {
    nets.publications().into_iter().collect()
}

/// Whether the container in `dir` is healthy yet; an unhealthy one is an
/// error, since waiting longer will not help.
fn healthy(dir: &std::path::Path, r: &run::ContainerRecord) -> Result<bool, String> {
    match berth_engine::runtime::health::load(dir).map(|h| h.status) {
        Some(h) if h == "healthy" => Ok(true),
        Some(h) if h == "unhealthy" => Err(format!("container {} is unhealthy", r.name)),
        _ => Ok(false),
    }
}

/// `running`, `created` or `exited`: a container's state as `ps --status`
/// and `ls` name it (a running record whose init is gone has exited).
fn state_name(r: &run::ContainerRecord) -> &'static str {
    match shim::live_status(r).as_str() {
        "running" => "running",
        "paused" => "paused",
        "created" => "created",
        _ => "exited",
    }
}

/// `berth ps`.
pub fn ps(global: &Global, a: &PsArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let publications = published(&Networks::open(&global.root)?);
    let mut out = std::io::stdout().lock();
    let recs = project_containers(global, &project, &a.only)?;
    let table = a.format == "table";
    if !table && a.format != "json" {
        anyhow::bail!("--format: {} is not table or json", a.format);
    }
    if table && !a.quiet && !a.services {
        writeln!(out, "{:<28}{:<32}{:<14}STATUS", "NAME", "IMAGE", "SERVICE")?;
    }
    let mut services_seen = BTreeSet::new();
    for (dir, r) in recs {
        let status = shim::shown_status(&dir, &r);
        let state = state_name(&r);
        if !a.status.is_empty() {
            if !a.status.iter().any(|s| s == state) {
                continue;
            }
        } else if !a.all && !matches!(state, "running" | "paused") {
            continue;
        }
        let svc = r.labels.get(labels::SERVICE).cloned().unwrap_or_default();
        if a.services {
            if services_seen.insert(svc.clone()) {
                writeln!(out, "{svc}")?;
            }
        } else if a.quiet {
            writeln!(out, "{}", r.id)?;
        } else if table {
            writeln!(out, "{:<28}{:<32}{:<14}{}", r.name, r.image, svc, status)?;
        } else {
            let health = berth_engine::runtime::health::load(&dir)
                .filter(|_| state == "running")
                .map(|h| h.status)
                .unwrap_or_default();
            let publishers: Vec<serde_json::Value> = publications
                .get(&r.id)
                .into_iter()
                .flatten()
                .map(|p| {
                    serde_json::json!({
                        "URL": p.host_ip.to_string(),
                        "TargetPort": p.container_port,
                        "PublishedPort": p.host_port,
                        "Protocol": p.protocol,
                    })
                })
                .collect();
            let line = serde_json::json!({
                "ID": r.id,
                "Name": r.name,
                "Image": r.image,
                "Command": r.command.join(" "),
                "Project": project.name,
                "Service": svc,
                "Created": r.created,
                "State": state,
                "Status": status,
                "Health": health,
                "ExitCode": r.exit_code.unwrap_or(0),
                "Publishers": publishers,
            });
            writeln!(out, "{line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth ls`: every project that has containers here.
pub fn ls(global: &Global, a: &LsArgs) -> anyhow::Result<ExitCode> {
    let mut projects: BTreeMap<String, (BTreeMap<&'static str, usize>, String)> = BTreeMap::new();
    let recs = list_records(&global.root);
    for (_, r) in &recs {
        let Some(name) = r.labels.get(labels::PROJECT) else {
            continue;
        };
        let state = state_name(r);
        let entry = projects.entry(name.clone()).or_default();
        *entry.0.entry(state).or_default() += 1;
        if let Some(files) = r.labels.get(CONFIG_FILES_LABEL) {
            entry.1 = files.clone();
        }
    }
    let table = a.format == "table";
    if !table && a.format != "json" {
        anyhow::bail!("--format: {} is not table or json", a.format);
    }
    let mut out = std::io::stdout().lock();
    let mut json = Vec::new();
    if table && !a.quiet {
        writeln!(out, "{:<24}{:<24}CONFIG FILES", "NAME", "STATUS")?;
    }
    for (name, (states, files)) in projects {
        if !a.all && !states.contains_key("running") {
            continue;
        }
        let status = states
            .iter()
            .map(|(s, n)| format!("{s}({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        if a.quiet {
            writeln!(out, "{name}")?;
        } else if table {
            writeln!(out, "{name:<24}{status:<24}{files}")?;
        } else {
            json.push(serde_json::json!({"Name": name, "Status": status, "ConfigFiles": files}));
        }
    }
    if !table && !a.quiet {
        writeln!(out, "{}", serde_json::Value::Array(json))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth port`: where a service's container port is published.
pub fn port(global: &Global, a: &PortArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let r = replica(global, &project, &a.service, a.index)?;
    let nets = Networks::open(&global.root)?;
    let hit = published(&nets)
        .remove(&r.id)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.container_port == a.private_port && p.protocol == a.protocol)
        .with_context(|| {
            format!(
                "no port {}/{} published for {}",
                a.private_port, a.protocol, r.name
            )
        })?;
    println!("{}:{}", hit.host_ip, hit.host_port);
    Ok(ExitCode::SUCCESS)
}

/// The project's containers of `services` (all when empty), in dependency
/// order: (directory, record).
fn project_containers(
    global: &Global,
    project: &Project,
    services: &[String],
) -> anyhow::Result<Vec<(PathBuf, run::ContainerRecord)>> {
    for s in services {
        if !project.services.contains_key(s) {
            anyhow::bail!("no such service: {s}");
        }
    }
    let order = project.services_in_dependency_order();
    let mut recs: Vec<_> = list_records(&global.root)
        .into_iter()
        .filter(|(_, r)| r.labels.get(labels::PROJECT) == Some(&project.name))
        .filter(|(_, r)| {
            let svc = r
                .labels
                .get(labels::SERVICE)
                .map(String::as_str)
                .unwrap_or("");
            services.is_empty() || services.iter().any(|s| s == svc)
        })
        .collect();
    recs.sort_by_key(|(_, r)| {
        let svc = r
            .labels
            .get(labels::SERVICE)
            .map(String::as_str)
            .unwrap_or("");
        (
            order.iter().position(|s| *s == svc).unwrap_or(usize::MAX),
            r.name.clone(),
        )
    });
    Ok(recs)
}

/// `berth start`.
pub fn start(global: &Global, a: &ServicesArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let _lock = ProjectLock::acquire(&global.root, &project.name)?;
    for (_, r) in project_containers(global, &project, &a.services)? {
        if !shim::is_up(&r) {
            crate::container_cmd::start_supervisor(global, &r.id)?;
            eprintln!(" ✔ container {} Started", r.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth stop`: dependents first, each with its service's stop signal and
/// grace period.
pub fn stop(global: &Global, a: &ServicesArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    stop_services(global, &project, &a.services)?;
    Ok(ExitCode::SUCCESS)
}

fn stop_services(global: &Global, project: &Project, services: &[String]) -> anyhow::Result<()> {
    let _lock = ProjectLock::acquire(&global.root, &project.name)?;
    let mut recs = project_containers(global, project, services)?;
    recs.reverse();
    for (_, r) in recs {
        if !shim::is_up(&r) {
            continue;
        }
        let service = r.labels.get(labels::SERVICE).map_or("", String::as_str);
        stop_container(global, project, &r.name, service)?;
        eprintln!(" ✔ container {} Stopped", r.name);
    }
    Ok(())
}

/// Stops container `name` with its service's `stop_signal` (default TERM)
/// and `stop_grace_period` (default 10 s), then SIGKILL.
fn stop_container(
    global: &Global,
    project: &Project,
    name: &str,
    service: &str,
) -> anyhow::Result<()> {
    let svc = project.services.get(service);
    let grace = svc
        .and_then(|s| s.stop_grace_period)
        .map_or(Duration::from_secs(10), |d| d.to_std());
    let signal = match svc
        .map(|s| s.stop_signal.as_str())
        .filter(|s| !s.is_empty())
    {
        Some(s) => crate::container_cmd::signal(s)?,
        None => rustix::process::Signal::TERM,
    };
    shim::stop(&global.root, name, signal, grace)?;
    Ok(())
}

/// `berth pause` (`pause`) and `berth unpause`.
pub fn pause(global: &Global, a: &ServicesArgs, pause: bool) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let _lock = ProjectLock::acquire(&global.root, &project.name)?;
    for (_, r) in project_containers(global, &project, &a.services)? {
        let paused = freeze::is_paused(&r);
        if pause && shim::live_status(&r) == "running" {
            freeze::pause(&global.root, &r.name)?;
            eprintln!(" ✔ container {} Paused", r.name);
        } else if !pause && paused {
            freeze::unpause(&global.root, &r.name)?;
            eprintln!(" ✔ container {} Unpaused", r.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth pull`: each service's image, from its registry.
pub fn pull(global: &Global, a: &crate::cli::ComposePullArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let store = ImageStore::open(&global.root)?;
    let mut images = BTreeSet::new();
    for (name, svc) in &project.services {
        if (a.services.is_empty() || a.services.contains(name)) && !svc.image.is_empty() {
            images.insert(svc.image.clone());
        }
    }
    for image in images {
        match crate::image_cmd::pull(global, &store, &image, a.quiet) {
            Ok(_) => {}
            Err(e) if a.ignore_pull_failures => eprintln!("warning: {e:#}"),
            Err(e) => return Err(e),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth kill`.
pub fn kill(global: &Global, a: &ComposeKillArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let sig = crate::container_cmd::signal(&a.signal)?;
    for (_, r) in project_containers(global, &project, &a.services)? {
        if shim::is_up(&r) {
            shim::kill(&global.root, &r.name, sig)?;
            eprintln!(" ✔ container {} Killed", r.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth logs`: every container's output, prefixed `name  | `.
pub fn logs(global: &Global, a: &ComposeLogsArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let recs = project_containers(global, &project, &a.services)?;
    let mut follow = Follow::new(
        recs,
        FollowStyle {
            tail: a.tail,
            timestamps: a.timestamps,
            prefix: !a.no_log_prefix,
            colour: !a.no_color && colour_wanted(),
            since: a.since.as_deref().map(log_bound).transpose()?,
            until: a.until.as_deref().map(log_bound).transpose()?,
        },
    );
    let mut out = std::io::stdout().lock();
    loop {
        follow.pump(&mut out)?;
        if !a.follow || !follow.any_running() {
            follow.pump(&mut out)?;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`/`--until` as a log timestamp (`…T…:…:….nnnnnnnnnZ`), which
/// compares as text with the ones the supervisor writes.
fn log_bound(s: &str) -> anyhow::Result<String> {
    let at = |secs: u64, nanos: u32| {
        let base = berth_engine::image::archive::rfc3339(secs);
        format!("{}.{nanos:09}Z", base.trim_end_matches('Z'))
    };
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(at(secs, 0));
    }
    if let Some(ago) = berth_spec::units::Duration::parse(s) {
        let t = std::time::SystemTime::now() - ago.to_std();
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return Ok(at(d.as_secs(), d.subsec_nanos()));
    }
    let bytes = s.as_bytes();
    let date_ok = bytes.len() >= 10 && bytes[4] == b'-' && bytes[7] == b'-';
    if date_ok && s.len() == 10 {
        return Ok(format!("{s}T00:00:00.000000000Z"));
    }
    if date_ok && s.len() >= 20 && s.ends_with('Z') && bytes[10] == b'T' {
        let (whole, frac) = match s[..s.len() - 1].split_once('.') {
            Some((w, f)) => (w, f),
            None => (&s[..s.len() - 1], ""),
        };
        if whole.len() == 19 && frac.len() <= 9 && frac.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(format!("{whole}.{frac:0<9}Z"));
        }
    }
    anyhow::bail!(
        "invalid time {s:?}: use 2026-11-23T10:00:00Z, a date, unix seconds or a duration such as 10m"
    )
}

/// How followed lines are written.
struct FollowStyle {
    since: Option<String>,
    until: Option<String>,
    tail: Option<usize>,
    timestamps: bool,
    prefix: bool,
    /// Each container's prefix in its own colour, as Compose does on a
    /// terminal (and never when `NO_COLOR` is set).
    colour: bool,
}

impl Default for FollowStyle {
    fn default() -> Self {
        FollowStyle {
            since: None,
            until: None,
            tail: None,
            timestamps: false,
            prefix: true,
            colour: colour_wanted(),
        }
    }
}

fn colour_wanted() -> bool {
    use std::io::IsTerminal;
    match std::env::var("BERTH_ANSI").as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// ANSI colours for prefixes, in Compose's order.
const PREFIX_COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];

/// Reads the containers' json-file logs from where it last stopped.
struct Follow {
    recs: Vec<(PathBuf, run::ContainerRecord)>,
    cursors: Vec<berth_engine::runtime::logs::LogCursor>,
    style: FollowStyle,
    width: usize,
    first: bool,
}

impl Follow {
    fn new(recs: Vec<(PathBuf, run::ContainerRecord)>, style: FollowStyle) -> Follow {
        let width = recs.iter().map(|(_, r)| r.name.len()).max().unwrap_or(0);
        Follow {
            cursors: recs.iter().map(|_| Default::default()).collect(),
            recs,
            style,
            width,
            first: true,
        }
    }

    /// Writes every complete line added since the last call.
    fn pump(&mut self, out: &mut impl Write) -> anyhow::Result<()> {
        let width = self.width;
        for (i, (dir, r)) in self.recs.iter().enumerate() {
            let lines = self.cursors[i].read_new(dir);
            let mut entries: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap_or_default())
                .filter(|v: &serde_json::Value| {
                    let t = v["time"].as_str().unwrap_or_default();
                    self.style.since.as_deref().is_none_or(|s| t >= s)
                        && self.style.until.as_deref().is_none_or(|u| t < u)
                })
                .collect();
            if self.first
                && let Some(n) = self.style.tail
            {
                let skip = entries.len().saturating_sub(n);
                entries.drain(..skip);
            }
            for v in entries {
                let mut line = String::new();
                if self.style.prefix && self.style.colour {
                    let c = PREFIX_COLOURS[i % PREFIX_COLOURS.len()];
                    line.push_str(&format!("\x1b[{c}m{:<width$}  |\x1b[0m ", r.name));
                } else if self.style.prefix {
                    line.push_str(&format!("{:<width$}  | ", r.name));
                }
                if self.style.timestamps {
                    line.push_str(v["time"].as_str().unwrap_or_default());
                    line.push(' ');
                }
                line.push_str(v["log"].as_str().unwrap_or_default());
                if !line.ends_with('\n') {
                    line.push('\n');
                }
                out.write_all(line.as_bytes())?;
            }
        }
        out.flush()?;
        self.first = false;
        Ok(())
    }

    /// A container that has exited, as its supervisor recorded.
    fn first_exited(&self) -> Option<run::ContainerRecord> {
        self.recs
            .iter()
            .filter_map(|(dir, _)| run::load_record(dir).ok())
            .find(|r| r.status == "exited")
    }

    fn any_running(&self) -> bool {
        self.recs
            .iter()
            .any(|(dir, _)| run::load_record(dir).is_ok_and(|r| shim::is_up(&r)))
    }
}

/// Container number `index` of `service`.
fn replica(
    global: &Global,
    project: &Project,
    service: &str,
    index: u32,
) -> anyhow::Result<run::ContainerRecord> {
    let want = index.to_string();
    project_containers(global, project, &[service.to_string()])?
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r.labels.get(labels::NUMBER) == Some(&want))
        .with_context(|| format!("service {service} has no container number {index}"))
}

/// `berth events`: the project's container events, as `docker compose
/// events` prints them, followed until `--until` or Ctrl-C.
pub fn events(global: &Global, a: &crate::cli::EventsArgs) -> anyhow::Result<ExitCode> {
    use berth_engine::events;
    let project = load(global)?;
    for s in &a.services {
        if !project.services.contains_key(s) {
            anyhow::bail!("no such service: {s}");
        }
    }
    let mut since = a.since.clone();
    let mut out = std::io::stdout().lock();
    loop {
        let until = a.until.clone().unwrap_or_else(events::now);
        for e in events::read(&global.root, since.as_deref(), Some(&until)) {
            if e.attributes.get(labels::PROJECT) != Some(&project.name) {
                continue;
            }
            let service = e
                .attributes
                .get(labels::SERVICE)
                .cloned()
                .unwrap_or_default();
            if !a.services.is_empty() && !a.services.contains(&service) {
                continue;
            }
            if a.json {
                let line = serde_json::json!({
                    "time": e.time,
                    "type": e.kind,
                    "action": e.action,
                    "id": e.id,
                    "service": service,
                    "attributes": e.attributes,
                });
                writeln!(out, "{line}")?;
            } else {
                let attrs: Vec<String> = e
                    .attributes
                    .iter()
                    .filter(|(k, _)| !k.starts_with("com.docker.compose."))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                writeln!(
                    out,
                    "{} {} {} {} ({})",
                    e.time.replacen('T', " ", 1).trim_end_matches('Z'),
                    e.kind,
                    e.action,
                    e.id,
                    attrs.join(", ")
                )?;
            }
        }
        out.flush()?;
        if a.until.is_some() {
            return Ok(ExitCode::SUCCESS);
        }
        since = Some(until);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `berth stats`.
pub fn stats(global: &Global, a: &crate::cli::StatsArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let recs: Vec<run::ContainerRecord> = project_containers(global, &project, &a.names)?
        .into_iter()
        .map(|(_, r)| r)
        .filter(shim::is_up)
        .collect();
    crate::container_cmd::stats(&recs, a.no_stream)?;
    Ok(ExitCode::SUCCESS)
}

/// `berth cp`: between a service's replica and the host.
pub fn cp(global: &Global, a: &crate::cli::CpArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    crate::container_cmd::copy(&global.root, a, &|service| {
        if !project.services.contains_key(service) {
            anyhow::bail!("no such service: {service}");
        }
        Ok(replica(global, &project, service, a.index)?.name)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `berth exec`: a command in a service's replica.
pub fn exec(global: &Global, a: &ComposeExecArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let r = replica(global, &project, &a.service, a.index)?;
    let code = berth_engine::runtime::exec::exec(
        &global.root,
        &r.name,
        &a.options.request(&a.command, {
            use std::io::IsTerminal;
            !a.no_tty && std::io::stdin().is_terminal()
        }),
    )?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// `berth attach`.
pub fn attach_service(
    global: &Global,
    a: &crate::cli::ComposeAttachArgs,
) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let r = replica(global, &project, &a.service, a.index)?;
    let (dir, rec) = find(&global.root, &r.id)?;
    crate::container_cmd::attach(&dir, &rec, &a.options)
}

/// The services `service` depends on, directly or not.
fn dependencies(project: &Project, service: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![service.to_string()];
    while let Some(s) = todo.pop() {
        for d in project
            .services
            .get(&s)
            .into_iter()
            .flat_map(|svc| svc.depends_on.keys())
        {
            if project.services.contains_key(d) && out.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    out
}

/// `berth run`: a one-off container of a service, after its dependencies,
/// networks and volumes are up. `down` removes one-offs with the rest.
pub fn run_oneoff(global: &Global, a: &ComposeRunArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    if !project.services.contains_key(&a.service) {
        anyhow::bail!("no such service: {}", a.service);
    }
    // Even a service scaled to zero runs as a one-off.
    let desired = desired_state(&project, &BTreeMap::from([(a.service.clone(), 1)]));
    let needed = if a.no_deps {
        BTreeSet::new()
    } else {
        dependencies(&project, &a.service)
    };
    let mut first = desired.clone();
    first.containers.retain(|_, c| needed.contains(&c.service));
    {
        let _lock = ProjectLock::acquire(&global.root, &project.name)?;
        let observed = observe(&global.root, &project.name)?;
        let mut plan = plan_up(&first, &observed, &UpOptions::default())?;
        // Other services' containers are none of a one-off's business.
        plan.warnings.clear();
        execute(global, &project, &first, &plan, Anonymous::Keep)?;
    }
    let template = desired
        .first_of(&a.service)
        .context("the service has no container configuration")?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => format!(
            "{}-{}-run-{}",
            project.name,
            a.service,
            &berth_engine::fsutil::random_id()?[..12]
        ),
    };
    let mut oneoff = template.clone();
    oneoff.name = name.clone();
    oneoff.labels.insert(labels::ONEOFF.into(), "True".into());
    let mut with_oneoff = desired.clone();
    with_oneoff.containers.insert(name.clone(), oneoff);
    let rt = HostRuntime::open(global, &project, Anonymous::Keep, BTreeSet::new(), None)?;
    let mut req = rt
        .request(&name, &with_oneoff)
        .map_err(|e| anyhow::anyhow!(e))?;
    if !a.command.is_empty() {
        req.process.cmd = Some(a.command.clone());
    }
    if let Some(e) = &a.entrypoint {
        req.process.entrypoint = Some(vec![e.clone()]);
    }
    req.process.env.extend(a.env.iter().cloned());
    // In the foreground, a terminal when there is one to join it to;
    // detached, one the supervisor keeps if the service asks for it.
    req.process.tty = !a.no_tty
        && if a.detach {
            req.process.tty
        } else {
            use std::io::IsTerminal;
            std::io::stdin().is_terminal()
        };
    if a.workdir.is_some() {
        req.process.workdir = a.workdir.clone();
    }
    if a.user.is_some() {
        req.user = a.user.clone();
    }
    if !a.service_ports {
        req.ports.clear();
    }
    req.ports
        .extend(crate::container_cmd::parse_publish(&a.publish)?);
    for v in &a.volumes {
        req.mounts.push(berth_engine::runtime::mounts::parse(v)?);
    }
    req.remove = a.rm;
    req.restart = "no".into();
    let how = if a.detach {
        crate::container_cmd::Launch::Detached
    } else {
        crate::container_cmd::Launch::Foreground
    };
    crate::container_cmd::launch(global, req, how)
}

/// `berth rm`: the project's stopped containers (running ones too with
/// `--stop`, after stopping them).
pub fn rm(global: &Global, a: &ComposeRmArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    if a.stop {
        stop_services(global, &project, &a.services)?;
    }
    let _lock = ProjectLock::acquire(&global.root, &project.name)?;
    let mut recs = project_containers(global, &project, &a.services)?;
    recs.reverse();
    let mut removed = 0;
    for (dir, r) in recs {
        if shim::is_up(&r) {
            continue;
        }
        run::remove(&global.root, &dir, &r, a.volumes)?;
        eprintln!(" ✔ container {} Removed", r.name);
        removed += 1;
    }
    if removed == 0 {
        eprintln!("No stopped containers");
    }
    Ok(ExitCode::SUCCESS)
}

/// `up --wait`: until every container of the project runs, and those with a
/// healthcheck are healthy. A container that exits or turns unhealthy, or
/// the timeout, fails the wait.
fn wait_ready(
    global: &Global,
    project: &Project,
    desired: &DesiredState,
    timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    // Services others wait to complete are meant to exit.
    let one_shot: BTreeSet<&str> = desired
        .containers
        .values()
        .flat_map(|c| &c.conditions)
        .filter(|c| c.condition == "service_completed_successfully")
        .map(|c| c.service.as_str())
        .collect();
    loop {
        let mut ready = true;
        for (dir, r) in project_containers(global, project, &[])? {
            if !desired.containers.contains_key(&r.name) {
                continue;
            }
            let status = shim::live_status(&r);
            let service = r.labels.get(labels::SERVICE).map_or("", String::as_str);
            if one_shot.contains(service) && r.status == "exited" && r.exit_code == Some(0) {
                continue;
            }
            if status != "running" {
                if r.status == "running" && shim::supervisor_alive(&r) {
                    // Just exiting: the supervisor is recording it.
                    ready = false;
                    continue;
                }
                anyhow::bail!("container {} {status}", r.name);
            }
            if r.health.is_some() {
                ready &= healthy(&dir, &r).map_err(anyhow::Error::msg)?;
            }
        }
        if ready {
            eprintln!(" ✔ project {} ready", project.name);
            return Ok(());
        }
        if deadline.is_some_and(|d| std::time::Instant::now() > d) {
            anyhow::bail!("timed out waiting for the project to be ready");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `berth top`: every process in each running container.
pub fn top(global: &Global, a: &ServicesArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let mut out = std::io::stdout().lock();
    for (_, r) in project_containers(global, &project, &a.services)? {
        if let Some(table) = r
            .pid
            .filter(|_| shim::is_up(&r))
            .and_then(crate::top::table)
        {
            writeln!(out, "{}\n{table}", r.name)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth wait`: blocks until every container of the services has exited.
pub fn wait(global: &Global, a: &ServicesArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let mut out = std::io::stdout().lock();
    for (dir, r) in project_containers(global, &project, &a.services)? {
        let code = shim::wait_exited(&dir, Duration::from_secs(u64::MAX / 4))
            .with_context(|| format!("container {} disappeared", r.name))?;
        writeln!(out, "{} {code}", r.name)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth images`: the image of each of the project's containers.
pub fn images(global: &Global, a: &ServicesArgs) -> anyhow::Result<ExitCode> {
    let project = load(global)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<28}{:<36}{:<12}IMAGE ID",
        "CONTAINER", "REPOSITORY", "TAG"
    )?;
    for (_, r) in project_containers(global, &project, &a.services)? {
        // The tag is after the last colon that comes after the last slash.
        let (repo, tag) = match r.image.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (r.image.as_str(), "latest"),
        };
        let id = r.image_id.trim_start_matches("sha256:");
        writeln!(
            out,
            "{:<28}{:<36}{:<12}{}",
            r.name,
            repo,
            tag,
            &id[..id.len().min(12)]
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::log_bound;

    #[test]
    fn log_bounds_compare_as_text_with_supervisor_timestamps() {
        assert_eq!(
            log_bound("2026-11-23T10:00:00Z").unwrap(),
            "2026-11-23T10:00:00.000000000Z"
        );
        assert_eq!(
            log_bound("2026-11-23T10:00:00.5Z").unwrap(),
            "2026-11-23T10:00:00.500000000Z"
        );
        assert_eq!(
            log_bound("2026-11-23").unwrap(),
            "2026-11-23T00:00:00.000000000Z"
        );
        assert_eq!(log_bound("0").unwrap(), "1970-01-01T00:00:00.000000000Z");
        let recent = log_bound("10m").unwrap();
        assert!(
            recent.as_str() > "2026-01-01" && recent.len() == 30,
            "{recent}"
        );
        assert!(log_bound("yesterday").is_err());
    }
}
