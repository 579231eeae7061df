//! `berth container …`: containers from the command line.

use std::process::ExitCode;

use anyhow::Context;
use berth_engine::image::ImageStore;
use berth_engine::runtime::spec::ProcessRequest;
use berth_engine::runtime::{RunRequest, run_foreground};

use crate::cli::{ContainerCommand, Global};

/// Runs one `berth container` command.
pub fn run(global: &Global, cmd: &ContainerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ContainerCommand::Run(a) => {
            let images = ImageStore::open(&global.root)
                .with_context(|| format!("opening the image store in {}", global.root.display()))?;
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
            let req = RunRequest {
                image: a.image.clone(),
                name: a.name.clone(),
                process: ProcessRequest {
                    cmd: (!a.command.is_empty()).then(|| a.command.clone()),
                    entrypoint: a.entrypoint.as_ref().map(|e| vec![e.clone()]),
                    env,
                    workdir: a.workdir.clone(),
                    cap_add: a.cap_add.clone(),
                    cap_drop: a.cap_drop.clone(),
                    ..ProcessRequest::default()
                },
                user: a.user.clone(),
                hostname: a.hostname.clone(),
                read_only: a.read_only,
                remove: a.rm,
                mounts: a
                    .volumes
                    .iter()
                    .map(|v| berth_engine::runtime::mounts::parse(v))
                    .collect::<Result<_, _>>()?,
            };
            let code = run_foreground(&global.root, &images, &req)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
        }
    }
}
