//! berth: run Compose projects with an embedded container engine.
//!
//! The binary parses the command line, loads the project through
//! `berth-spec` and prints results; it owns no logic of its own.

mod args;
mod cli;
mod compose_cmd;
mod config_cmd;
mod container_cmd;
mod image_cmd;
mod inspect;
mod network_cmd;
mod progress;
mod project_lock;
mod top;
mod volume_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // A reader that went away (`berth ps | head -1`) wants no more
        // output and no complaint about it.
        Err(err) if closed_output(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

fn closed_output(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Whether the command runs container code from this process (the runtime
/// clones itself into the container) or starts supervisors that do, so
/// must run from a sealed executable.
fn enters_containers(cmd: &cli::Command) -> bool {
    use cli::{Command, ContainerCommand};
    matches!(
        cmd,
        Command::Shim(_)
            | Command::Exec(_)
            | Command::Run(_)
            // These start supervisors: spawned from a sealed executable,
            // a supervisor is sealed from its start, one exec instead of
            // two for each container.
            | Command::Up(_)
            | Command::Start(_)
            | Command::Restart(_)
            | Command::Container(
                ContainerCommand::Run(_)
                    | ContainerCommand::Exec(_)
                    | ContainerCommand::Start(_)
                    | ContainerCommand::Restart(_)
            )
    )
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    if cli.global.ansi != "auto" {
        // SAFETY: no other thread runs yet; the supervisors and servers
        // this process starts inherit the choice.
        unsafe { std::env::set_var("BERTH_ANSI", &cli.global.ansi) };
    }
    if enters_containers(&cli.command) {
        berth_engine::runtime::seal::ensure_sealed()?;
    }
    match &cli.command {
        cli::Command::Config(args) => config_cmd::run(&cli.global, args),
        cli::Command::Up(args) => compose_cmd::up(&cli.global, args),
        cli::Command::Down(args) => compose_cmd::down(&cli.global, args),
        cli::Command::Ps(args) => compose_cmd::ps(&cli.global, args),
        cli::Command::Logs(args) => compose_cmd::logs(&cli.global, args),
        cli::Command::Start(args) => compose_cmd::start(&cli.global, args),
        cli::Command::Stop(args) => compose_cmd::stop(&cli.global, args),
        cli::Command::Restart(args) => {
            compose_cmd::stop(&cli.global, args)?;
            compose_cmd::start(&cli.global, args)
        }
        cli::Command::Kill(args) => compose_cmd::kill(&cli.global, args),
        cli::Command::Pause(args) => compose_cmd::pause(&cli.global, args, true),
        cli::Command::Unpause(args) => compose_cmd::pause(&cli.global, args, false),
        cli::Command::Exec(args) => compose_cmd::exec(&cli.global, args),
        cli::Command::Attach(args) => compose_cmd::attach_service(&cli.global, args),
        cli::Command::Ls(args) => compose_cmd::ls(&cli.global, args),
        cli::Command::Run(args) => compose_cmd::run_oneoff(&cli.global, args),
        cli::Command::Create(args) => compose_cmd::up(
            &cli.global,
            &cli::UpArgs {
                detach: true,
                dry_run: false,
                force_recreate: args.force_recreate,
                no_recreate: args.no_recreate,
                remove_orphans: args.remove_orphans,
                no_start: true,
                scale: args.scale.clone(),
                wait: false,
                wait_timeout: None,
                abort_on_container_exit: false,
                exit_code_from: None,
                pull: None,
                attach: Vec::new(),
                always_recreate_deps: false,
                no_attach: Vec::new(),
                timestamps: false,
                no_log_prefix: false,
                no_color: false,
                renew_anon_volumes: false,
                no_deps: false,
                services: args.services.clone(),
            },
        ),
        cli::Command::Rm(args) => compose_cmd::rm(&cli.global, args),
        cli::Command::Top(args) => compose_cmd::top(&cli.global, args),
        cli::Command::Wait(args) => compose_cmd::wait(&cli.global, args),
        cli::Command::Images(args) => compose_cmd::images(&cli.global, args),
        cli::Command::Port(args) => compose_cmd::port(&cli.global, args),
        cli::Command::Completion(args) => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut cli::Cli::command(), "berth", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        cli::Command::Image(cmd) => image_cmd::run(&cli.global, cmd),
        cli::Command::Login(args) => image_cmd::login(args),
        cli::Command::Cp(args) => compose_cmd::cp(&cli.global, args),
        cli::Command::Stats(args) => compose_cmd::stats(&cli.global, args),
        cli::Command::Events(args) => compose_cmd::events(&cli.global, args),
        cli::Command::Pull(args) => compose_cmd::pull(&cli.global, args),
        cli::Command::Volume(cmd) => volume_cmd::run(&cli.global, cmd),
        cli::Command::Container(cmd) => container_cmd::run(&cli.global, cmd),
        cli::Command::Shim(args) => container_cmd::shim(&cli.global, args),
        cli::Command::Dns(_) => {
            berth_netplane::dns::serve(&cli.global.root)?;
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Network(cmd) => network_cmd::run(&cli.global, cmd),
        cli::Command::Version(args) => {
            if args.short {
                println!("{}", env!("CARGO_PKG_VERSION"));
            } else {
                println!("berth version v{}", env!("CARGO_PKG_VERSION"));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
