//! Loading a project: which files, which environment, which name, and the
//! phases that turn them into a [`Project`] (see `spec/PIPELINE.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::canonical;
use crate::convert;
use crate::dotenv;
use crate::error::{Error, Result, read_to_string};
use crate::extends;
use crate::include;
use crate::interpolate::{interpolate_tree, substitute};
use crate::merge::{merge, strip_tags};
use crate::model::Project;
use crate::normalize;
use crate::paths;
use crate::validate;
use crate::yaml::{self, Node, Value};

/// The names Compose looks for, in order of preference.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
const OVERRIDE_FILES: &[&str] = &[
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// How to load a project: the equivalent of Compose's global flags.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `-f` files, in order; `-` reads standard input (see `stdin`).
    pub files: Vec<PathBuf>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--env-file`, repeatable; replaces `<project dir>/.env`.
    pub env_files: Vec<PathBuf>,
    /// `--profile`, repeatable (added to `COMPOSE_PROFILES`).
    pub profiles: Vec<String>,
    /// Services named on the command line: their profiles are enabled.
    pub services: Vec<String>,
    /// The process environment.
    pub environment: BTreeMap<String, String>,
    /// The current directory, where discovery starts.
    pub working_dir: PathBuf,
    /// The text read from standard input when a file is `-`.
    pub stdin: Option<String>,
    /// `--no-interpolate` sets this to false.
    pub interpolate: bool,
    /// `--no-consistency` sets this to false.
    pub consistency: bool,
}

impl Options {
    /// Options for the given current directory and environment, with
    /// interpolation and consistency checks on.
    pub fn new(working_dir: PathBuf, environment: BTreeMap<String, String>) -> Options {
        Options {
            working_dir,
            environment,
            interpolate: true,
            consistency: true,
            ..Options::default()
        }
    }
}

/// A loaded project and what the user should be warned about.
#[derive(Debug)]
pub struct Loaded {
    /// The project.
    pub project: Project,
    /// Warnings such as unset variables or the obsolete `version`.
    pub warnings: Vec<String>,
}

/// What every phase needs to know about the project being loaded.
pub(crate) struct Context {
    pub environment: BTreeMap<String, String>,
    pub project_dir: PathBuf,
    pub home: Option<PathBuf>,
    pub interpolate: bool,
    pub unset: BTreeSet<String>,
    pub warnings: Vec<String>,
    /// Files being included, to detect cycles.
    pub include_stack: Vec<PathBuf>,
    /// Where berth runs: file names in errors are shown relative to it.
    pub cwd: PathBuf,
}

impl Context {
    pub fn lookup(&self, key: &str) -> Option<String> {
        self.environment.get(key).cloned()
    }
}

/// Finds the compose files: `-f`, else `COMPOSE_FILE`, else the first
/// default name in the working directory or a parent, plus its override.
pub fn discover(opts: &Options, env: &BTreeMap<String, String>) -> Result<Vec<PathBuf>> {
    if !opts.files.is_empty() {
        return Ok(opts
            .files
            .iter()
            .map(|f| {
                if f.as_os_str() == "-" || f.is_absolute() {
                    f.clone()
                } else {
                    opts.working_dir.join(f)
                }
            })
            .collect());
    }
    if let Some(list) = env.get("COMPOSE_FILE").filter(|v| !v.is_empty()) {
        let sep = env
            .get("COMPOSE_PATH_SEPARATOR")
            .map(String::as_str)
            .unwrap_or(":");
        let base = opts.project_directory.as_ref().unwrap_or(&opts.working_dir);
        return Ok(list
            .split(sep)
            .filter(|f| !f.is_empty())
            .map(|f| base.join(f))
            .collect());
    }
    let start = opts.project_directory.as_ref().unwrap_or(&opts.working_dir);
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        if let Some(found) = DEFAULT_FILES
            .iter()
            .map(|n| d.join(n))
            .find(|p| p.is_file())
        {
            let mut files = vec![found];
            if let Some(o) = OVERRIDE_FILES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
            {
                files.push(o);
            }
            return Ok(files);
        }
        dir = d.parent();
    }
    Err(Error::Project(format!(
        "no configuration file provided: not found (looked for {} in {} and its parents)",
        DEFAULT_FILES.join(", "),
        start.display()
    )))
}

/// Lower-cases and drops what Compose does not allow in a project name.
pub fn normalize_project_name(name: &str) -> String {
    let lower: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lower.trim_start_matches(['_', '-']).to_string()
}

fn check_project_name(name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Project(format!(
            "invalid project name {name:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
        )))
    }
}

/// Reads one file (or stdin) into its YAML documents, merged. Errors show
/// the file relative to `cwd` when it lies below it.
pub(crate) fn parse_file(path: &Path, stdin: Option<&str>, cwd: &Path) -> Result<Node> {
    let (name, text): (Arc<str>, String) = if path.as_os_str() == "-" {
        ("-".into(), stdin.unwrap_or_default().to_string())
    } else {
        let shown = path.strip_prefix(cwd).unwrap_or(path);
        (shown.display().to_string().into(), read_to_string(path)?)
    };
    let docs = yaml::parse(&name, &text)?;
    let mut iter = docs.into_iter();
    let Some(mut root) = iter.next() else {
        return Err(Error::Project(format!("{name}: empty compose file")));
    };
    for doc in iter {
        merge(&mut root, doc, &[]);
    }
    match &root.value {
        Value::Map(_) => Ok(root),
        Value::Null => Err(Error::Project(format!("{name}: empty compose file"))),
        _ => Err(Error::invalid(
            &root.mark,
            "",
            "top-level object must be a mapping",
        )),
    }
}

/// Interpolates, canonicalises and resolves the paths of one file's tree.
pub(crate) fn prepare(root: &mut Node, ctx: &mut Context, base_dir: &Path) -> Result<()> {
    if ctx.interpolate {
        let env = &ctx.environment;
        let lookup = |k: &str| env.get(k).cloned();
        interpolate_tree(root, &mut Vec::new(), &lookup, &mut ctx.unset)?;
    }
    canonical::canonicalize(root)?;
    paths::resolve_all(root, base_dir, ctx.home.as_deref());
    Ok(())
}

/// Loads a project.
pub fn load(opts: &Options) -> Result<Loaded> {
    let mut warnings = Vec::new();
    let pre_env = opts.environment.clone();
    let files = discover(opts, &pre_env)?;
    let first = &files[0];
    let project_dir = match &opts.project_directory {
        Some(d) => absolute_dir(&opts.working_dir, d),
        None if first.as_os_str() == "-" => opts.working_dir.clone(),
        None => first
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.working_dir.clone()),
    };
    let project_dir = PathBuf::from(paths::clean(&project_dir));

    let environment = project_environment(opts, &project_dir)?;
    let mut ctx = Context {
        home: environment
            .get("HOME")
            .or_else(|| opts.environment.get("HOME"))
            .map(PathBuf::from),
        environment,
        project_dir: project_dir.clone(),
        interpolate: opts.interpolate,
        unset: BTreeSet::new(),
        warnings: Vec::new(),
        include_stack: Vec::new(),
        cwd: opts.working_dir.clone(),
    };

    let mut roots = Vec::with_capacity(files.len());
    for f in &files {
        roots.push(parse_file(f, opts.stdin.as_deref(), &opts.working_dir)?);
    }

    let name = project_name(opts, &ctx, &roots, &project_dir)?;
    ctx.environment
        .insert("COMPOSE_PROJECT_NAME".to_string(), name.clone());

    let mut merged: Option<Node> = None;
    for (mut root, file) in roots.into_iter().zip(&files) {
        if root.get("version").is_some() {
            warnings.push(format!(
                "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
                file.display()
            ));
        }
        prepare(&mut root, &mut ctx, &project_dir)?;
        ctx.include_stack = vec![file.clone()];
        include::apply(&mut root, &project_dir, &mut ctx)?;
        match merged.as_mut() {
            None => merged = Some(root),
            Some(m) => merge(m, root, &[]),
        }
    }
    let mut root = merged.unwrap_or_else(|| Node::map(yaml::Mark::synthetic()));
    extends::apply(&mut root, &mut ctx, opts.stdin.as_deref())?;
    strip_tags(&mut root);

    let mut project = to_project(&root, &name)?;
    project.working_dir = project_dir;
    project.compose_files = files;
    project.environment = ctx.environment.clone();
    normalize::normalize(&mut project, &ctx)?;

    let mut profiles: Vec<String> = opts.profiles.clone();
    if let Some(p) = ctx.environment.get("COMPOSE_PROFILES") {
        profiles.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }
    normalize::apply_profiles(&mut project, &profiles, &opts.services)?;
    validate::cycles(&project)?;
    if opts.consistency {
        validate::consistency(&project, &root)?;
    }

    for var in &ctx.unset {
        warnings.push(format!(
            "The {var:?} variable is not set. Defaulting to a blank string."
        ));
    }
    warnings.append(&mut ctx.warnings);
    Ok(Loaded { project, warnings })
}

fn absolute_dir(cwd: &Path, d: &Path) -> PathBuf {
    if d.is_absolute() {
        d.to_path_buf()
    } else {
        cwd.join(d)
    }
}

/// Process environment over `.env` (or `--env-file`s).
fn project_environment(opts: &Options, project_dir: &Path) -> Result<BTreeMap<String, String>> {
    let os = &opts.environment;
    let lookup = |k: &str| os.get(k).cloned();
    let env_files: Vec<PathBuf> = if opts.env_files.is_empty() {
        let default = project_dir.join(".env");
        if default.is_file() {
            vec![default]
        } else {
            Vec::new()
        }
    } else {
        opts.env_files
            .iter()
            .map(|f| absolute_dir(&opts.working_dir, f))
            .collect()
    };
    let mut env = BTreeMap::new();
    for f in env_files {
        if f.is_dir() {
            return Err(Error::Project(format!(
                "{} is a directory, not an env file",
                f.display()
            )));
        }
        let values = dotenv::read(&f, &|k| lookup(k).or_else(|| env.get(k).cloned()))?;
        env.extend(values);
    }
    env.extend(os.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(env)
}

fn project_name(
    opts: &Options,
    ctx: &Context,
    roots: &[Node],
    project_dir: &Path,
) -> Result<String> {
    if let Some(n) = &opts.project_name {
        check_project_name(n)?;
        return Ok(n.clone());
    }
    if let Some(n) = ctx
        .environment
        .get("COMPOSE_PROJECT_NAME")
        .filter(|n| !n.is_empty())
    {
        let n = normalize_project_name(n);
        check_project_name(&n)?;
        return Ok(n);
    }
    let mut from_files = None;
    for root in roots {
        if let Some(node) = root.get("name") {
            let raw = convert::text(node, &convert::P::Root("name"))?;
            let value = if ctx.interpolate {
                let lookup = |k: &str| ctx.lookup(k);
                substitute(&raw, &lookup, &mut BTreeSet::new())
                    .map_err(|e| Error::invalid(&node.mark, "name", e.to_string()))?
            } else {
                raw
            };
            from_files = Some((value, node.mark));
        }
    }
    if let Some((n, mark)) = from_files.filter(|(n, _)| !n.is_empty()) {
        let normalized = normalize_project_name(&n);
        if normalized != n || normalized.is_empty() {
            return Err(Error::invalid(
                &mark,
                "name",
                format!(
                    "invalid project name {n:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
                ),
            ));
        }
        return Ok(n);
    }
    let base = project_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = normalize_project_name(&base);
    if n.is_empty() {
        return Err(Error::Project(format!(
            "project name must not be empty: the folder name {base:?} has no usable characters, use -p"
        )));
    }
    Ok(n)
}

const TOP_LEVEL: &[&str] = &[
    "version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models",
];

/// The merged tree → the typed project.
fn to_project(root: &Node, name: &str) -> Result<Project> {
    let map = root.as_map().expect("checked by parse_file");
    for key in map.keys() {
        if !TOP_LEVEL.contains(&key.name.as_str()) && !key.name.starts_with("x-") {
            return Err(Error::invalid(
                &key.mark,
                "",
                format!("additional property {:?} is not allowed", key.name),
            ));
        }
    }
    let mut project = Project {
        name: name.to_string(),
        extensions: convert::extensions(root),
        ..Project::default()
    };
    /// A top-level section; its keys as the schema allows them
    /// (`^[a-zA-Z0-9._-]+$`), since they become names of containers,
    /// volumes and networks, and so paths and interface names.
    fn section<'a>(root: &'a Node, key: &str) -> Result<Option<&'a yaml::Map>> {
        let map = match root.get(key) {
            None => return Ok(None),
            Some(n) => match &n.value {
                Value::Map(m) => m,
                Value::Null => return Ok(None),
                _ => return Err(Error::invalid(&n.mark, key, "must be a mapping")),
            },
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if let Some(k) = map.keys().find(|k| !k.name.chars().all(allowed)) {
            return Err(Error::invalid(
                &k.mark,
                key,
                format!("additional property {:?} is not allowed", k.name),
            ));
        }
        Ok(Some(map))
    }
    if let Some(services) = section(root, "services")? {
        for (k, v) in services {
            if !matches!(v.value, Value::Map(_)) {
                let path = format!("services.{}", k.name);
                return Err(Error::invalid(&v.mark, path, "must be a mapping"));
            }
            let svc = convert::service(&k.name, v, &convert::P::RootKey("services", &k.name))?;
            project.services.insert(k.name.clone(), svc);
        }
    }
    if let Some(networks) = section(root, "networks")? {
        for (k, v) in networks {
            let net = convert::network(v, &convert::P::RootKey("networks", &k.name))?;
            project.networks.insert(k.name.clone(), net);
        }
    }
    if let Some(volumes) = section(root, "volumes")? {
        for (k, v) in volumes {
            let vol = convert::volume(v, &convert::P::RootKey("volumes", &k.name))?;
            project.volumes.insert(k.name.clone(), vol);
        }
    }
    if let Some(models) = section(root, "models")? {
        for (k, v) in models {
            let m = convert::model(v, &convert::P::RootKey("models", &k.name))?;
            project.models.insert(k.name.clone(), m);
        }
    }
    for (key, target) in [
        ("secrets", &mut project.secrets),
        ("configs", &mut project.configs),
    ] {
        if let Some(objects) = section(root, key)? {
            for (k, v) in objects {
                let obj = convert::file_object(v, &convert::P::RootKey(key, &k.name))?;
                target.insert(k.name.clone(), obj);
            }
        }
    }
    Ok(project)
}
