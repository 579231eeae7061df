//! `berth config`: load, validate and print the normalised project.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use berth_spec::render;

use crate::cli::{ConfigArgs, Format, Global};

/// Builds loader options from the global flags and the process environment.
pub fn load_options(global: &Global, services: &[String]) -> anyhow::Result<berth_spec::Options> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let env = std::env::vars().collect();
    let mut opts = berth_spec::Options::new(cwd, env);
    opts.files = global.files.clone();
    opts.project_name = global.project_name.clone();
    opts.project_directory = global.project_directory.clone();
    opts.env_files = global.env_files.clone();
    opts.profiles = global.profiles.clone();
    opts.services = services.to_vec();
    if opts.files.iter().any(|f| f.as_os_str() == "-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the compose file from standard input")?;
        opts.stdin = Some(text);
    }
    Ok(opts)
}

/// Runs `berth config`.
pub fn run(global: &Global, args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let mut opts = load_options(global, &args.services)?;
    opts.interpolate = !args.no_interpolate;
    opts.consistency = !args.no_consistency;
    let loaded = berth_spec::load(&opts)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let mut project = loaded.project;
    if args.list_profiles {
        let mut all: Vec<&String> = project
            .services
            .values()
            .chain(project.disabled_services.values())
            .flat_map(|s| &s.profiles)
            .collect();
        all.sort();
        all.dedup();
        return print_lines(all.into_iter().map(String::as_str));
    }
    if !args.services.is_empty() {
        project = project.with_selected_services(&args.services)?;
    }
    let mut project = project.without_unused_resources();
    if args.resolve_image_digests {
        pin_images(&mut project)?;
    }
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    if args.list_services {
        return print_lines(project.services_in_dependency_order().into_iter());
    }
    if args.volumes {
        return print_lines(project.volumes.keys().map(String::as_str));
    }
    if args.networks {
        return print_lines(project.networks.keys().map(String::as_str));
    }
    if args.images {
        let images: Vec<String> = project
            .services
            .values()
            .map(|s| project.image_name(s))
            .collect();
        return print_lines(images.iter().map(String::as_str));
    }
    let mut text = match args.format {
        Format::Json => render::project_json(&project) + "\n",
        Format::Yaml => render::project_yaml(&project),
    };
    if !args.no_interpolate {
        // Interpolation consumed one level of `$$`; print them escaped again
        // so the output loads back to the same model, as Docker Compose does.
        text = text.replace('$', "$$");
    }
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Every service's image with the digest its registry serves for it.
fn pin_images(project: &mut berth_spec::Project) -> anyhow::Result<()> {
    use berth_engine::image::Reference;
    for (name, svc) in &mut project.services {
        if svc.image.is_empty() {
            continue;
        }
        let reference = Reference::parse(&svc.image)
            .with_context(|| format!("service {name}: image {:?}", svc.image))?;
        let pinned = berth_engine::image::registry::pin(&reference)
            .with_context(|| format!("service {name}: resolving the digest of {reference}"))?;
        svc.image = pinned.to_string();
    }
    Ok(())
}

fn print_lines<'a>(lines: impl Iterator<Item = &'a str>) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(ExitCode::SUCCESS)
}
