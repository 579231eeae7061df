//! `berth network …`: bridge networks from the command line.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use berth_netplane::{NetworkRequest, Networks};

use berth_engine::runtime::{run, shim};

use crate::cli::{Global, NetworkCommand, NetworkConnectArgs};

/// Runs one `berth network` command.
pub fn run(global: &Global, cmd: &NetworkCommand) -> anyhow::Result<ExitCode> {
    let nets = Networks::open(&global.root)
        .with_context(|| format!("opening the network records in {}", global.root.display()))?;
    let mut out = std::io::stdout().lock();
    match cmd {
        NetworkCommand::Create(a) => {
            // Docker's predefined networks: `bridge` is made when a
            // container first needs it.
            if matches!(a.name.as_str(), "bridge" | "host" | "none") {
                bail!(
                    "operation is not permitted on predefined {} network",
                    a.name
                );
            }
            if a.driver != "bridge" {
                bail!(
                    "network driver {:?} is not supported (only bridge)",
                    a.driver
                );
            }
            let opts = crate::args::key_values(&a.opts, "option")?;
            let mtu = opts
                .get("com.docker.network.driver.mtu")
                .map(|m| {
                    m.parse::<u32>()
                        .with_context(|| format!("invalid MTU {m:?}"))
                })
                .transpose()?;
            // As `docker network create`: a --subnet and --gateway per
            // family, IPv6 ones with --ipv6.
            let family =
                |v: &[String], six: bool| v.iter().find(|s| s.contains(':') == six).cloned();
            if !a.ipv6 && family(&a.subnet, true).is_some() {
                bail!("an IPv6 --subnet needs --ipv6");
            }
            let rec = nets.create(&NetworkRequest {
                name: a.name.clone(),
                subnet: family(&a.subnet, false),
                gateway: family(&a.gateway, false),
                ip_range: a.ip_range.clone(),
                aux_addresses: a
                    .aux_addresses
                    .iter()
                    .map(|x| {
                        let ip = x.split_once('=').map_or(x.as_str(), |(_, ip)| ip);
                        ip.parse()
                            .with_context(|| format!("--aux-address {x:?}: not HOST=IPv4"))
                    })
                    .collect::<anyhow::Result<_>>()?,
                ipv6: a.ipv6,
                subnet6: family(&a.subnet, true),
                gateway6: family(&a.gateway, true),
                internal: a.internal,
                labels: crate::args::key_values(&a.labels, "label")?,
                bridge: opts.get("com.docker.network.bridge.name").cloned(),
                mtu,
            })?;
            crate::container_cmd::ensure_dns(global, std::slice::from_ref(&rec.name))?;
            writeln!(out, "{}", rec.id)?;
        }
        NetworkCommand::Ls(a) => {
            let all = nets.list()?;
            if !a.quiet {
                writeln!(
                    out,
                    "{:<14}{:<24}{:<10}{:<20}BRIDGE",
                    "NETWORK ID", "NAME", "DRIVER", "SUBNET"
                )?;
            }
            for r in all {
                if a.quiet {
                    writeln!(out, "{}", r.name)?;
                } else {
                    writeln!(
                        out,
                        "{:<14}{:<24}{:<10}{:<20}{}",
                        &r.id[..12],
                        r.name,
                        r.driver,
                        r.subnet,
                        r.bridge
                    )?;
                }
            }
        }
        NetworkCommand::Inspect(a) => {
            let recs = a
                .names
                .iter()
                .map(|n| nets.inspect(n))
                .collect::<Result<Vec<_>, _>>()?;
            writeln!(out, "{}", serde_json::to_string_pretty(&recs)?)?;
        }
        NetworkCommand::Rm(a) => {
            for n in &a.names {
                nets.remove(n)?;
                writeln!(out, "{n}")?;
            }
        }
        NetworkCommand::Connect(a) => connect(global, &nets, a)?,
        NetworkCommand::Disconnect(a) => {
            let (dir, mut rec) = run::find(&global.root, &a.container)?;
            let Some(pos) = rec.networks.iter().position(|n| n == &a.network) else {
                bail!(
                    "container {} is not connected to network {}",
                    rec.name,
                    a.network
                );
            };
            if shim::is_up(&rec) {
                nets.detach(&a.network, &rec.id)?;
            } else {
                nets.release(&a.network, &rec.id)?;
            }
            rec.networks.remove(pos);
            rec.network_opts.remove(&a.network);
            run::save_record(&dir, &rec)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The first `ethN` the container's namespace does not have yet.
fn free_ifname(pid: i32) -> String {
    let taken = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !taken.contains(&format!("{n}:")))
        .unwrap_or_else(|| "eth9".into())
}

/// `network connect`: a running container joins at once (a new interface,
/// its names in the network's DNS); a stopped one on its next start.
fn connect(global: &Global, nets: &Networks, a: &NetworkConnectArgs) -> anyhow::Result<()> {
    let net = nets.inspect(&a.network)?;
    let (dir, mut rec) = run::find(&global.root, &a.container)?;
    if rec.networks.contains(&net.name) {
        bail!(
            "container {} is already connected to network {}",
            rec.name,
            net.name
        );
    }
    if !rec.network_mode.is_empty() && rec.network_mode != "bridge" {
        bail!(
            "container {} shares another network namespace ({}): it cannot join networks",
            rec.name,
            rec.network_mode
        );
    }
    let opts = run::NetworkOpts {
        ipv4_address: a.ip,
        ipv6_address: a.ip6,
        aliases: a.aliases.clone(),
        mac_address: None,
    };
    if let Some(pid) = rec.pid.filter(|_| shim::is_up(&rec)) {
        let mut names = vec![rec.name.clone()];
        names.extend(rec.dns_names.iter().cloned());
        names.push(rec.id[..12].to_string());
        names.extend(opts.aliases.iter().cloned());
        nets.connect(
            &net.name,
            &rec.id,
            pid,
            &berth_netplane::attach::Join {
                ifname: &free_ifname(pid),
                default_route: rec.networks.is_empty(),
                names: &names,
                ip: opts.ipv4_address,
                ip6: opts.ipv6_address,
                mac: None,
            },
        )?;
        crate::container_cmd::ensure_dns(global, std::slice::from_ref(&net.name))?;
    }
    rec.networks.push(net.name.clone());
    rec.network_opts.insert(net.name, opts);
    run::save_record(&dir, &rec)?;
    Ok(())
}
