//! `berth volume …`: named volumes from the command line.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use berth_engine::volume::VolumeStore;

use crate::cli::{Global, VolumeCommand};

/// Runs one `berth volume` command.
pub fn run(global: &Global, cmd: &VolumeCommand) -> anyhow::Result<ExitCode> {
    let store = VolumeStore::open(&global.root)
        .with_context(|| format!("opening the volume store in {}", global.root.display()))?;
    let used = std::cell::OnceCell::new();
    let in_use = |name: &str| {
        used.get_or_init(|| berth_engine::runtime::run::volumes_in_use(&global.root))
            .contains(name)
    };
    let mut out = std::io::stdout().lock();
    match cmd {
        VolumeCommand::Create(a) => {
            let v = store.create(
                &a.name,
                &a.driver,
                crate::args::key_values(&a.opts, "option")?,
                crate::args::key_values(&a.labels, "label")?,
            )?;
            writeln!(out, "{}", v.name)?;
        }
        VolumeCommand::Ls(a) => {
            let vols = store.list()?;
            if !a.quiet {
                writeln!(out, "DRIVER    VOLUME NAME")?;
            }
            for v in vols {
                if a.quiet {
                    writeln!(out, "{}", v.name)?;
                } else {
                    writeln!(out, "{:<10}{}", v.driver, v.name)?;
                }
            }
        }
        VolumeCommand::Inspect(a) => {
            let vols = a
                .names
                .iter()
                .map(|n| store.inspect(n))
                .collect::<Result<Vec<_>, _>>()?;
            writeln!(out, "{}", serde_json::to_string_pretty(&vols)?)?;
        }
        VolumeCommand::Rm(a) => {
            for n in &a.names {
                store.remove(n, &in_use)?;
                writeln!(out, "{n}")?;
            }
        }
        VolumeCommand::Prune(a) => {
            let removed = store.prune(a.all, &in_use)?;
            if !removed.is_empty() {
                writeln!(out, "Deleted Volumes:")?;
                for n in removed {
                    writeln!(out, "{n}")?;
                }
            }
        }
        VolumeCommand::Export(a) => match &a.output {
            Some(p) => {
                let f = std::fs::File::create(p)
                    .with_context(|| format!("creating {}", p.display()))?;
                store.export(&a.name, f)?;
            }
            None => store.export(&a.name, &mut out)?,
        },
        VolumeCommand::Import(a) => match a.file.as_deref().filter(|p| p.as_os_str() != "-") {
            Some(p) => {
                let f =
                    std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
                store.import(&a.name, f)?;
            }
            None => store.import(&a.name, std::io::stdin().lock())?,
        },
    }
    Ok(ExitCode::SUCCESS)
}
