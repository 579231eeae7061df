//! `berth network …`: bridge networks from the command line.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use berth_netplane::{NetworkRequest, Networks};

use crate::cli::{Global, NetworkCommand};

/// Runs one `berth network` command.
pub fn run(global: &Global, cmd: &NetworkCommand) -> anyhow::Result<ExitCode> {
    let nets = Networks::open(&global.root)
        .with_context(|| format!("opening the network records in {}", global.root.display()))?;
    let mut out = std::io::stdout().lock();
    match cmd {
        NetworkCommand::Create(a) => {
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
            let rec = nets.create(&NetworkRequest {
                name: a.name.clone(),
                subnet: a.subnet.clone(),
                gateway: a.gateway.clone(),
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
    }
    Ok(ExitCode::SUCCESS)
}
