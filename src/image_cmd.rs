//! `berth image …`: the image store from the command line.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use berth_engine::image::registry::Step;
use berth_engine::image::{ImageStore, Reference, archive};

use crate::cli::{Global, ImageCommand, ListFormat};

pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[i]
    }
}

/// Pulls `reference`, showing progress on stderr unless `quiet`: a bar
/// per layer on a terminal, Docker's plain lines elsewhere.
pub fn pull(
    global: &Global,
    store: &ImageStore,
    reference: &str,
    quiet: bool,
) -> anyhow::Result<Reference> {
    let r = Reference::parse(reference)?;
    let rec = if quiet {
        pull_with(store, &r, &|_| {})?
    } else if crate::progress::live(global) {
        let board = crate::progress::Board::new(&format!("Pulling {r}"));
        board.show(|| pull_with(store, &r, &|step| show_step(&board, step)))?
    } else {
        pull_with(store, &r, &plain_step)?
    };
    if !quiet {
        eprintln!("{r}: pulled, image {}", rec.id);
    }
    Ok(r)
}

fn pull_with(
    store: &ImageStore,
    r: &Reference,
    progress: &(dyn Fn(&Step<'_>) + Sync),
) -> anyhow::Result<berth_engine::image::store::ImageRecord> {
    berth_engine::image::registry::pull(store, r, progress).with_context(|| format!("pulling {r}"))
}

/// A step as a plain line; transfers in between are not worth one.
pub fn plain_step(step: &Step<'_>) {
    if step.bytes.is_none() {
        eprintln!("{step}");
    }
}

/// A layer's step on its line of the board.
pub fn show_step(board: &crate::progress::Board, step: &Step<'_>) {
    let id = step.id;
    match (step.bytes, step.status) {
        (Some((done, total)), _) => board.working(id, &crate::progress::bar(done, total)),
        (None, "already exists" | "layer already exists") => board.done(id, "Already exists"),
        (None, "pull complete") => board.done(id, "Pull complete"),
        (None, "pushed") => board.done(id, "Pushed"),
        (None, "download complete") => board.working(id, "Extracting"),
        (None, s) if s.starts_with("pulling fs layer") => board.working(id, "Waiting"),
        (None, s) if s.starts_with("pushing") => board.working(id, "Pushing"),
        // The manifest: the heading names the image already.
        _ => {}
    }
}

/// `berth login`.
pub fn login(a: &crate::cli::LoginArgs) -> anyhow::Result<ExitCode> {
    let server = a.server.as_deref().unwrap_or("docker.io");
    // `docker login` takes URLs too.
    let domain = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/v2");
    let domain = match domain {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        d => d,
    };
    let password = match (&a.password, a.password_stdin) {
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().read_line(&mut p)?;
            p.trim_end_matches(['\r', '\n']).to_string()
        }
        _ => anyhow::bail!("give the password with exactly one of --password and --password-stdin"),
    };
    berth_engine::image::registry::check_credentials(domain, &a.username, &password)?;
    let path = berth_engine::image::registry::store_credentials(domain, &a.username, &password)?;
    eprintln!("Credentials for {domain} stored in {}", path.display());
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// The ids of the images containers (running or not) were made from: read
/// once, then asked of every image.
pub fn images_in_use(global: &Global) -> std::collections::BTreeSet<String> {
    berth_engine::runtime::run::list_records(&global.root)
        .into_iter()
        .map(|(_, r)| r.image_id)
        .collect()
}

/// Writes an archive to `output` (whole or not at all: through a
/// `.partial` file renamed at the end), or to standard output unless that
/// is a terminal.
pub fn write_archive(
    output: Option<&std::path::Path>,
    out: &mut dyn Write,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    match output {
        Some(path) => {
            let tmp = path.with_extension("partial");
            let f = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(f);
            if let Err(e) = write(&mut w).and_then(|()| Ok(w.flush()?)) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
        }
        None if std::io::stdout().is_terminal() => {
            anyhow::bail!("refusing to write an archive to a terminal: use -o FILE or redirect")
        }
        None => write(out),
    }
}

/// `image prune`: images no reference names (with `all`, every image no
/// container uses), and the layers only they held.
fn prune(
    global: &Global,
    store: &ImageStore,
    all: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let in_use = images_in_use(global);
    let mut deleted = Vec::new();
    for image in store.list()? {
        let rec = &image.record;
        if (all || rec.refs.is_empty()) && !in_use.contains(&rec.id) {
            deleted.extend(store.remove(&rec.id, true, &|_| false)?);
        }
    }
    if !deleted.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for d in deleted {
            writeln!(out, "{d}")?;
        }
    }
    Ok(())
}

/// Runs one `berth image` command.
pub fn run(global: &Global, cmd: &ImageCommand) -> anyhow::Result<ExitCode> {
    let store = ImageStore::open(&global.root)
        .with_context(|| format!("opening the image store in {}", global.root.display()))?;
    let mut out = std::io::stdout().lock();
    match cmd {
        ImageCommand::Save(args) => write_archive(args.output.as_deref(), &mut out, |w| {
            Ok(berth_engine::image::save::save(&store, &args.images, w)?)
        })?,
        ImageCommand::Pull(args) => {
            let r = pull(global, &store, &args.reference, args.quiet)?;
            writeln!(out, "{r}")?;
        }
        ImageCommand::Push(args) => {
            let target = Reference::parse(args.target.as_deref().unwrap_or(&args.name))?;
            let push = |progress: &(dyn Fn(&Step<'_>) + Sync)| {
                berth_engine::image::registry::push(&store, &args.name, &target, progress)
                    .with_context(|| format!("pushing {target}"))
            };
            let url = if args.quiet {
                push(&|_| {})?
            } else if crate::progress::live(global) {
                let board = crate::progress::Board::new(&format!("Pushing {target}"));
                board.show(|| push(&|step| show_step(&board, step)))?
            } else {
                push(&plain_step)?
            };
            writeln!(out, "{url}")?;
        }
        ImageCommand::Load(args) => {
            let images = match &args.input {
                Some(p) => {
                    let f = std::fs::File::open(p)
                        .with_context(|| format!("opening {}", p.display()))?;
                    archive::load(&store, f)
                }
                None => archive::load(&store, std::io::stdin().lock()),
            }?;
            if !args.quiet {
                for rec in images {
                    if rec.refs.is_empty() {
                        writeln!(out, "Loaded image ID: {}", rec.id)?;
                    }
                    for r in &rec.refs {
                        writeln!(out, "Loaded image: {r}")?;
                    }
                }
            }
        }
        ImageCommand::Import(args) => {
            let reference = args
                .reference
                .as_deref()
                .map(Reference::parse)
                .transpose()?;
            let rec = if args.file.as_os_str() == "-" {
                archive::import(
                    &store,
                    std::io::stdin().lock(),
                    reference.as_ref(),
                    &args.changes,
                )?
            } else {
                let f = std::fs::File::open(&args.file)
                    .with_context(|| format!("opening {}", args.file.display()))?;
                archive::import_file(&store, &f, reference.as_ref(), &args.changes)?
            };
            writeln!(out, "{}", rec.id)?;
        }
        ImageCommand::Ls(args) => {
            let images = store.list()?;
            if args.quiet {
                for i in &images {
                    writeln!(out, "{}", &i.record.id["sha256:".len()..][..12])?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = Vec::new();
            for i in &images {
                let id = i.record.id["sha256:".len()..][..12].to_string();
                let created = i.created.clone().unwrap_or_default();
                let refs: Vec<Option<Reference>> = if i.record.refs.is_empty() {
                    vec![None]
                } else {
                    i.record
                        .refs
                        .iter()
                        .map(|r| Reference::parse(r).ok())
                        .collect()
                };
                for r in refs {
                    let (repo, tag) = match &r {
                        Some(r) => (
                            r.familiar_repository(),
                            r.tag.clone().unwrap_or_else(|| "<none>".into()),
                        ),
                        None => ("<none>".to_string(), "<none>".to_string()),
                    };
                    rows.push([repo, tag, id.clone(), created.clone(), human_size(i.size)]);
                }
            }
            match args.format {
                ListFormat::Json => {
                    for r in rows {
                        let v = serde_json::json!({
                            "Repository": r[0], "Tag": r[1], "ID": r[2], "CreatedAt": r[3], "Size": r[4],
                        });
                        writeln!(out, "{v}")?;
                    }
                }
                ListFormat::Table => {
                    let head = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
                    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
                    for r in &rows {
                        for (w, c) in widths.iter_mut().zip(r) {
                            *w = (*w).max(c.len());
                        }
                    }
                    let line = |cells: Vec<&str>| {
                        cells
                            .iter()
                            .zip(&widths)
                            .map(|(c, w)| format!("{c:<w$}"))
                            .collect::<Vec<_>>()
                            .join("   ")
                            .trim_end()
                            .to_string()
                    };
                    writeln!(out, "{}", line(head.to_vec()))?;
                    for r in &rows {
                        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
                    }
                }
            }
        }
        ImageCommand::Inspect(args) => {
            let mut all = Vec::new();
            for name in &args.images {
                let rec = store.resolve(name)?;
                let config = store.config(&rec)?;
                let manifest = store.manifest(&rec)?;
                all.push(serde_json::json!({
                    "Id": rec.id,
                    "RepoTags": rec.refs,
                    "ManifestDigest": rec.manifest,
                    "Created": config.created,
                    "Architecture": config.architecture,
                    "Os": config.os,
                    "Config": config.config,
                    // Docker's shape, not the image configuration's.
                    "RootFS": {"Type": config.rootfs.kind, "Layers": config.rootfs.diff_ids},
                    "Layers": manifest.layers,
                }));
            }
            crate::inspect::print(&mut out, &all, args.format.as_deref())?;
        }
        ImageCommand::History(args) => {
            for name in &args.images {
                let rec = store.resolve(name)?;
                let config = store.config(&rec)?;
                writeln!(out, "{:<71}   CREATED BY", "LAYER")?;
                for (i, d) in config.rootfs.diff_ids.iter().enumerate().rev() {
                    let by = config
                        .history
                        .iter()
                        .filter(|h| h.get("empty_layer").and_then(|v| v.as_bool()) != Some(true))
                        .nth(i)
                        .and_then(|h| h.get("created_by"))
                        .and_then(|v| v.as_str())
                        .unwrap_or("");
                    writeln!(out, "{d:<71}   {by}")?;
                }
            }
        }
        ImageCommand::Tag(args) => {
            let target = Reference::parse(&args.target)?;
            store.tag(&args.source, &target)?;
        }
        ImageCommand::Prune(args) => prune(global, &store, args.all, &mut out)?,
        ImageCommand::Rm(args) => {
            let in_use = images_in_use(global);
            let mut failed = false;
            for name in &args.images {
                match store.remove(name, args.force, &|id| in_use.contains(id)) {
                    Ok(lines) => {
                        for l in lines {
                            writeln!(out, "{l}")?;
                        }
                    }
                    Err(e) => {
                        eprintln!("Error response: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
