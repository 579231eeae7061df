//! Normalisation: the defaults and implicit relations Docker Compose adds to
//! a loaded model (the `default` network, resource names, implicit
//! `depends_on`, `env_file` and `label_file` folded into `environment` and
//! `labels`), and profile selection.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::dotenv;
use crate::error::{Error, Result};
use crate::load::Context;
use crate::model::{Dependency, Network, Project, Service};

/// Adds defaults and implicit relations, in place.
pub(crate) fn normalize(project: &mut Project, ctx: &Context) -> Result<()> {
    let env = &project.environment;
    let lookup = |k: &str| env.get(k).cloned();
    for (name, svc) in project.services.iter_mut() {
        if let Some(b) = svc.build.as_mut() {
            if b.context.is_empty() {
                b.context = ctx.project_dir.display().to_string();
            }
            if b.dockerfile.is_empty() && b.dockerfile_inline.is_empty() {
                b.dockerfile = "Dockerfile".into();
            }
            // An argument with no value takes the environment's, or is dropped.
            let args = std::mem::take(&mut b.args);
            b.args = args
                .into_iter()
                .filter_map(|(k, v)| v.or_else(|| lookup(&k)).map(|v| (k, Some(v))))
                .collect();
        }
        fold_env_files(name, svc, &lookup)?;
        fold_label_files(name, svc, &lookup)?;
        if svc.networks.is_empty() && svc.network_mode.is_empty() {
            svc.networks.insert("default".into(), None);
        }
        if svc.pull_policy == "if_not_present" {
            svc.pull_policy = "missing".into();
        }
        implicit_dependencies(svc);
        check_resource_duplicates(name, svc)?;
        if let (Some(scale), Some(replicas)) =
            (svc.scale, svc.deploy.as_ref().and_then(|d| d.replicas))
            && scale != replicas
        {
            return Err(Error::Project(format!(
                "services.{name}: can't set distinct values on 'scale' ({scale}) and 'deploy.replicas' ({replicas})"
            )));
        }
    }
    let uses_default = project
        .services
        .values()
        .any(|s| s.networks.contains_key("default"));
    if uses_default && !project.networks.contains_key("default") {
        project
            .networks
            .insert("default".into(), Network::default());
    }
    let pname = project.name.clone();
    let named = |key: &str, external: bool| {
        if external {
            key.to_string()
        } else {
            format!("{pname}_{key}")
        }
    };
    for (k, n) in project.networks.iter_mut() {
        if n.name.is_empty() {
            n.name = named(k, n.external);
        }
    }
    for (k, v) in project.volumes.iter_mut() {
        if v.name.is_empty() {
            v.name = named(k, v.external);
        }
    }
    for objects in [&mut project.secrets, &mut project.configs] {
        for (k, o) in objects.iter_mut() {
            if o.name.is_empty() {
                o.name = named(k, o.external);
            }
        }
    }
    Ok(())
}

/// The legacy resource attributes and `deploy.resources` must agree.
fn check_resource_duplicates(name: &str, svc: &Service) -> Result<()> {
    let Some(res) = svc.deploy.as_ref().map(|d| &d.resources) else {
        return Ok(());
    };
    let conflict = |a: &str, b: &str| {
        Err(Error::Project(format!(
            "services.{name}: can't set distinct values on '{a}' and '{b}'"
        )))
    };
    if let Some(l) = &res.limits {
        if svc.cpus != 0.0 && l.cpus != 0.0 && svc.cpus != l.cpus {
            return conflict("cpus", "deploy.resources.limits.cpus");
        }
        if svc.mem_limit.0 != 0 && l.memory.0 != 0 && svc.mem_limit != l.memory {
            return conflict("mem_limit", "deploy.resources.limits.memory");
        }
        if svc.pids_limit != 0 && l.pids != 0 && svc.pids_limit != l.pids {
            return conflict("pids_limit", "deploy.resources.limits.pids");
        }
    }
    if let Some(r) = &res.reservations
        && svc.mem_reservation.0 != 0
        && r.memory.0 != 0
        && svc.mem_reservation != r.memory
    {
        return conflict("mem_reservation", "deploy.resources.reservations.memory");
    }
    Ok(())
}

fn read_env_file(
    service: &str,
    path: &str,
    required: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<dotenv::EnvMap>> {
    let p = Path::new(path);
    if !p.exists() {
        if required {
            return Err(Error::Project(format!(
                "services.{service}: env file {path} not found: stat {path}: no such file or directory"
            )));
        }
        return Ok(None);
    }
    dotenv::read(p, lookup).map(Some)
}

fn fold_env_files(
    name: &str,
    svc: &mut Service,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    let mut environment: BTreeMap<String, Option<String>> = BTreeMap::new();
    for ef in std::mem::take(&mut svc.env_file) {
        if !ef.format.is_empty() && ef.format != "raw" {
            return Err(Error::Project(format!(
                "services.{name}.env_file: unsupported env_file format {:?}",
                ef.format
            )));
        }
        let values = if ef.format == "raw" {
            raw_env_file(name, &ef.path, ef.required)?
        } else {
            let known = environment.clone();
            let both = |k: &str| known.get(k).cloned().flatten().or_else(|| lookup(k));
            read_env_file(name, &ef.path, ef.required, &both)?
        };
        for (k, v) in values.into_iter().flatten() {
            environment.insert(k, Some(v));
        }
    }
    for (k, v) in std::mem::take(&mut svc.environment) {
        let v = v.or_else(|| lookup(&k));
        environment.insert(k, v);
    }
    svc.environment = environment;
    Ok(())
}

/// `format: raw`: every line is `KEY=VALUE` taken literally.
fn raw_env_file(service: &str, path: &str, required: bool) -> Result<Option<dotenv::EnvMap>> {
    let p = Path::new(path);
    if !p.exists() {
        return read_env_file(service, path, required, &|_| None);
    }
    let text = crate::error::read_to_string(p)?;
    let mut out = dotenv::EnvMap::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        out.insert(k.trim().to_string(), v.to_string());
    }
    Ok(Some(out))
}

fn fold_label_files(
    name: &str,
    svc: &mut Service,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    if svc.label_file.is_empty() {
        return Ok(());
    }
    let mut labels = BTreeMap::new();
    for f in std::mem::take(&mut svc.label_file) {
        if let Some(values) = read_env_file(name, &f, true, lookup)? {
            labels.extend(values);
        }
    }
    labels.extend(std::mem::take(&mut svc.labels));
    svc.labels = labels;
    Ok(())
}

fn implicit_dependencies(svc: &mut Service) {
    let mut add = |name: &str, restart: bool| {
        svc.depends_on
            .entry(name.to_string())
            .or_insert(Dependency {
                condition: "service_started".into(),
                restart,
                required: true,
            });
    };
    for link in svc.links.clone() {
        add(link.split(':').next().unwrap_or(&link), true);
    }
    for ns in [
        svc.network_mode.clone(),
        svc.ipc.clone(),
        svc.pid.clone(),
        svc.uts.clone(),
        svc.cgroup.clone(),
    ] {
        if let Some(target) = ns.strip_prefix("service:") {
            add(target, true);
        }
    }
    for vf in svc.volumes_from.clone() {
        if !vf.starts_with("container:") {
            add(vf.split(':').next().unwrap_or(&vf), false);
        }
    }
}

/// Disables the services whose profiles are not active. A service named on
/// the command line enables its own profiles.
pub(crate) fn apply_profiles(
    project: &mut Project,
    profiles: &[String],
    named: &[String],
) -> Result<()> {
    let mut active: BTreeSet<String> = profiles.iter().cloned().collect();
    for n in named {
        if let Some(s) = project.services.get(n) {
            active.extend(s.profiles.iter().cloned());
        }
    }
    let all = active.contains("*");
    let names: Vec<String> = project.services.keys().cloned().collect();
    for name in names {
        let svc = &project.services[&name];
        let enabled =
            svc.profiles.is_empty() || all || svc.profiles.iter().any(|p| active.contains(p));
        if !enabled && let Some(svc) = project.services.remove(&name) {
            project.disabled_services.insert(name, svc);
        }
    }
    for (name, svc) in &project.services {
        for (dep, d) in &svc.depends_on {
            if d.required
                && let Some(disabled) = project.disabled_services.get(dep)
            {
                return Err(Error::Project(format!(
                    "service {name:?} depends on service {dep:?} which is disabled: enable one of its profiles ({})",
                    disabled.profiles.join(", ")
                )));
            }
        }
    }
    Ok(())
}

impl Project {
    /// The project without the networks, volumes, secrets and configs that
    /// no enabled service uses (what `config` prints).
    pub fn without_unused_resources(mut self) -> Project {
        let mut networks = BTreeSet::new();
        let mut volumes = BTreeSet::new();
        let mut secrets = BTreeSet::new();
        let mut configs = BTreeSet::new();
        let mut models = BTreeSet::new();
        for svc in self.services.values() {
            models.extend(svc.models.keys().cloned());
            networks.extend(svc.networks.keys().cloned());
            for v in &svc.volumes {
                if v.kind == "volume" && !v.source.is_empty() {
                    volumes.insert(v.source.clone());
                }
            }
            secrets.extend(svc.secrets.iter().map(|s| s.source.clone()));
            configs.extend(svc.configs.iter().map(|c| c.source.clone()));
            if let Some(b) = &svc.build {
                secrets.extend(b.secrets.iter().map(|s| s.source.clone()));
            }
        }
        self.networks.retain(|k, _| networks.contains(k));
        self.volumes.retain(|k, _| volumes.contains(k));
        self.secrets.retain(|k, _| secrets.contains(k));
        self.configs.retain(|k, _| configs.contains(k));
        self.models.retain(|k, _| models.contains(k));
        self
    }
}

impl Project {
    /// Only `names` and the services they depend on (transitively).
    pub fn with_selected_services(mut self, names: &[String]) -> Result<Project> {
        let mut keep = BTreeSet::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(n) = todo.pop() {
            if !keep.insert(n.clone()) {
                continue;
            }
            let svc = self
                .services
                .get(&n)
                .ok_or_else(|| Error::Project(format!("no such service: {n}")))?;
            todo.extend(
                svc.depends_on
                    .keys()
                    .filter(|d| self.services.contains_key(*d))
                    .cloned(),
            );
        }
        self.services.retain(|k, _| keep.contains(k));
        Ok(self)
    }

    /// Service names with every service after the services it depends on,
    /// ties broken by name (the order `config --services` prints).
    pub fn services_in_dependency_order(&self) -> Vec<&str> {
        fn visit<'a>(
            p: &'a Project,
            name: &'a str,
            seen: &mut BTreeSet<&'a str>,
            out: &mut Vec<&'a str>,
        ) {
            if !seen.insert(name) {
                return;
            }
            if let Some(svc) = p.services.get(name) {
                for dep in svc.depends_on.keys() {
                    if p.services.contains_key(dep) {
                        visit(p, dep, seen, out);
                    }
                }
                out.push(name);
            }
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for name in self.services.keys() {
            visit(self, name, &mut seen, &mut out);
        }
        out
    }

    /// The image a service runs: its `image`, else `<project>-<service>`
    /// for a service that is built.
    pub fn image_name(&self, svc: &Service) -> String {
        if svc.image.is_empty() {
            format!("{}-{}", self.name, svc.name)
        } else {
            svc.image.clone()
        }
    }
}
