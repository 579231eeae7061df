//! Desired state against observed state → the plan for `up` and `down`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::desired::{DesiredContainer, DesiredState};
use crate::labels;
use crate::observed::{ContainerState, ObservedContainer, ObservedState};
use crate::plan::{Op, Plan, Resource};
use crate::reason::first_difference;

/// `--pull`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every image, even when present.
    Always,
    /// Pull only the images that are missing (the default).
    #[default]
    Missing,
    /// Never pull; a missing image fails the container's creation.
    Never,
}

/// The flags of `berth up` that steer planning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpOptions {
    /// `--force-recreate`: recreate containers even when unchanged.
    pub force_recreate: bool,
    /// `--no-recreate`: keep existing containers even when changed.
    pub no_recreate: bool,
    /// `--always-recreate-deps`: recreate the dependents of a recreated service.
    pub always_recreate_deps: bool,
    /// `--remove-orphans`: remove containers of services no longer in the file.
    pub remove_orphans: bool,
    /// `--no-start`: create, but do not start.
    pub no_start: bool,
    /// `--pull`.
    pub pull: PullPolicy,
    /// Services of the project `up SERVICE…` did not name: their
    /// containers are left as they are, not taken for orphans.
    pub untouched: BTreeSet<String>,
}

/// The flags of `berth down` that steer planning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownOptions {
    /// `-v`: remove the project's named volumes too.
    pub volumes: bool,
    /// `--remove-orphans`: remove containers of services no longer in the file.
    pub remove_orphans: bool,
}

/// Why no plan can be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// An `external: true` network or volume does not exist.
    ExternalMissing {
        /// `network` or `volume`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// `depends_on` forms a cycle (the loader refuses these; kept for safety).
    Cycle(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::ExternalMissing { kind, name } => write!(
                f,
                "{kind} {name} declared as external, but could not be found"
            ),
            PlanError::Cycle(s) => write!(f, "dependency cycle detected at service {s}"),
        }
    }
}

impl std::error::Error for PlanError {}

/// Services in an order where every service comes after its dependencies;
/// ties are broken by name, so plans are deterministic.
fn service_order(desired: &DesiredState) -> Result<Vec<String>, PlanError> {
    let mut deps: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in desired.containers.values() {
        let e = deps.entry(c.service.as_str()).or_default();
        e.extend(c.depends_on.iter().map(String::as_str));
    }
    let mut out = Vec::new();
    let mut state: BTreeMap<&str, bool> = BTreeMap::new();
    fn visit<'a>(
        s: &'a str,
        deps: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        state: &mut BTreeMap<&'a str, bool>,
        out: &mut Vec<String>,
    ) -> Result<(), PlanError> {
        match state.get(s) {
            Some(true) => return Ok(()),
            Some(false) => return Err(PlanError::Cycle(s.to_string())),
            None => {}
        }
        state.insert(s, false);
        if let Some(ds) = deps.get(s) {
            for d in ds {
                if deps.contains_key(d) {
                    visit(d, deps, state, out)?;
                }
            }
        }
        state.insert(s, true);
        out.push(s.to_string());
        Ok(())
    }
    let services: Vec<&str> = deps.keys().copied().collect();
    for s in services {
        visit(s, &deps, &mut state, &mut out)?;
    }
    Ok(out)
}

fn container_resource(name: &str, service: &str, number: u32) -> Resource {
    Resource::Container {
        name: name.to_string(),
        service: service.to_string(),
        number,
    }
}

fn observed_resource(c: &ObservedContainer) -> Resource {
    container_resource(
        &c.name,
        c.service().unwrap_or_default(),
        c.number().unwrap_or(0),
    )
}

/// The plan that makes `observed` match `desired`.
pub fn plan_up(
    desired: &DesiredState,
    observed: &ObservedState,
    opts: &UpOptions,
) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();

    // Images, in name order. `--pull always|never` wins over a service's
    // `pull_policy`; the default follows it.
    let mut images: BTreeMap<&str, Option<usize>> = BTreeMap::new();
    let mut policies: BTreeMap<&str, PullPolicy> = BTreeMap::new();
    for c in desired.containers.values() {
        images.entry(c.image.as_str()).or_insert(None);
        let policy = match (opts.pull, c.pull_policy.as_str()) {
            (PullPolicy::Missing, "always") => PullPolicy::Always,
            (PullPolicy::Missing, "never") => PullPolicy::Never,
            (p, _) => p,
        };
        let entry = policies.entry(c.image.as_str()).or_insert(policy);
        if policy == PullPolicy::Always {
            *entry = PullPolicy::Always;
        }
    }
    for (image, slot) in images.iter_mut() {
        let cause = match policies[image] {
            PullPolicy::Always => Some("pull policy is always"),
            PullPolicy::Missing if !observed.images.contains(*image) => Some("image is missing"),
            _ => None,
        };
        if let Some(cause) = cause {
            *slot = Some(plan.add(
                Resource::Image(image.to_string()),
                Op::PullImage,
                cause,
                vec![],
            ));
        }
    }

    // Networks: create missing ones; a changed one is recreated, and so is
    // every container that joins it.
    let mut network_nodes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut recreated_networks: BTreeSet<&str> = BTreeSet::new();
    for (key, net) in &desired.networks {
        let seen = observed.networks.get(&net.name);
        if net.external {
            if seen.is_none() {
                return Err(PlanError::ExternalMissing {
                    kind: "network",
                    name: net.name.clone(),
                });
            }
            continue;
        }
        match seen {
            None => {
                let res = Resource::Network {
                    key: key.clone(),
                    name: net.name.clone(),
                };
                network_nodes.insert(
                    key,
                    plan.add(res, Op::CreateNetwork, "declared but missing", vec![]),
                );
            }
            Some(n) if n.labels.get(labels::CONFIG_HASH) != Some(&net.hash) => {
                recreated_networks.insert(key);
            }
            Some(n) if n.incomplete => {
                let res = Resource::Network {
                    key: key.clone(),
                    name: net.name.clone(),
                };
                network_nodes.insert(
                    key,
                    plan.add(res, Op::CreateNetwork, "its bridge is missing", vec![]),
                );
            }
            Some(_) => {}
        }
    }

    // Volumes: create missing ones; a changed volume keeps its data and is
    // only reported.
    let mut volume_nodes: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, vol) in &desired.volumes {
        let seen = observed.volumes.get(&vol.name);
        if vol.external {
            if seen.is_none() {
                return Err(PlanError::ExternalMissing {
                    kind: "volume",
                    name: vol.name.clone(),
                });
            }
            continue;
        }
        match seen {
            None => {
                let res = Resource::Volume {
                    key: key.clone(),
                    name: vol.name.clone(),
                };
                volume_nodes.insert(
                    key,
                    plan.add(res, Op::CreateVolume, "declared but missing", vec![]),
                );
            }
            Some(v)
                if v.labels
                    .get(labels::CONFIG_HASH)
                    .is_some_and(|h| h != &vol.hash) =>
            {
                plan.warnings.push(format!(
                    "volume {} exists but doesn't match the configuration in the compose file; it is kept with its data (remove it to recreate)",
                    vol.name
                ));
            }
            Some(_) => {}
        }
    }

    let by_name: BTreeMap<&str, &ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| !c.is_oneoff())
        .map(|c| (c.name.as_str(), c))
        .collect();

    // Containers of networks being recreated must go before their network.
    let mut recreated: BTreeSet<String> = BTreeSet::new();
    if !recreated_networks.is_empty() {
        let mut removals = Vec::new();
        for c in desired.containers.values() {
            if c.networks
                .iter()
                .any(|n| recreated_networks.contains(n.as_str()))
                && let Some(o) = by_name.get(c.name.as_str())
            {
                let res = observed_resource(o);
                let mut deps = Vec::new();
                if o.state != ContainerState::Exited && o.state != ContainerState::Created {
                    deps.push(plan.add(
                        res.clone(),
                        Op::StopContainer,
                        "its network changed",
                        vec![],
                    ));
                }
                removals.push(plan.add(res, Op::RemoveContainer, "its network changed", deps));
                recreated.insert(c.name.clone());
            }
        }
        for key in &recreated_networks {
            let net = &desired.networks[*key];
            let res = Resource::Network {
                key: key.to_string(),
                name: net.name.clone(),
            };
            let rm = plan.add(
                res.clone(),
                Op::RemoveNetwork,
                "configuration changed",
                removals.clone(),
            );
            network_nodes.insert(
                key,
                plan.add(res, Op::CreateNetwork, "configuration changed", vec![rm]),
            );
        }
    }

    // Containers, service by service in dependency order.
    let order = service_order(desired)?;
    let mut started: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    // A container that joins another's namespace or mounts its volumes
    // needs that container to exist when it is created.
    let mut creates: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut recreated_services: BTreeSet<&str> = BTreeSet::new();
    for service in &order {
        let containers: Vec<&DesiredContainer> = desired
            .containers
            .values()
            .filter(|c| &c.service == service)
            .collect();
        let Some(first) = containers.first() else {
            continue;
        };
        let dep_starts: Vec<usize> = first
            .depends_on
            .iter()
            .flat_map(|d| started.get(d.as_str()).cloned().unwrap_or_default())
            .collect();
        let dep_recreated = first
            .depends_on
            .iter()
            .any(|d| recreated_services.contains(d.as_str()));
        let restarted_with = first
            .restart_with
            .iter()
            .find(|d| recreated_services.contains(d.as_str()));
        let dep_creates: Vec<usize> = first
            .depends_on
            .iter()
            .flat_map(|d| creates.get(d.as_str()).cloned().unwrap_or_default())
            .collect();
        let mut starts = Vec::new();
        let mut created_here = Vec::new();
        for c in containers {
            let res = container_resource(&c.name, &c.service, c.number);
            let mut create_deps: Vec<usize> = c
                .networks
                .iter()
                .filter_map(|n| network_nodes.get(n.as_str()).copied())
                .chain(
                    c.volumes
                        .iter()
                        .filter_map(|v| volume_nodes.get(v.as_str()).copied()),
                )
                .chain(images.get(c.image.as_str()).copied().flatten())
                .chain(dep_creates.iter().copied())
                .collect();
            let existing = by_name.get(c.name.as_str());
            let create_cause = match existing {
                _ if recreated.contains(&c.name) => Some("its network changed".to_string()),
                None => Some("missing".to_string()),
                Some(o) => {
                    let changed = o.hash() != Some(c.hash.as_str());
                    let reason = if opts.no_recreate {
                        None
                    } else if opts.force_recreate {
                        Some("--force-recreate".to_string())
                    } else if changed {
                        let what = o
                            .config
                            .as_ref()
                            .and_then(|old| first_difference(old, &c.config))
                            .map(|p| format!("{p} changed"))
                            .unwrap_or_else(|| "configuration changed".to_string());
                        Some(what)
                    } else if let Some(d) = restarted_with {
                        Some(format!("{d} was recreated"))
                    } else if dep_recreated && opts.always_recreate_deps {
                        Some("a dependency was recreated".to_string())
                    } else {
                        None
                    };
                    if let Some(why) = &reason {
                        let mut deps = Vec::new();
                        if matches!(o.state, ContainerState::Running | ContainerState::Paused) {
                            deps.push(plan.add(
                                res.clone(),
                                Op::StopContainer,
                                format!("recreate: {why}"),
                                vec![],
                            ));
                        }
                        create_deps.push(plan.add(
                            res.clone(),
                            Op::RemoveContainer,
                            format!("recreate: {why}"),
                            deps,
                        ));
                    }
                    reason
                }
            };
            match create_cause {
                Some(cause) => {
                    recreated_services.insert(service.as_str());
                    let created = plan.add(res.clone(), Op::CreateContainer, cause, create_deps);
                    created_here.push(created);
                    if !opts.no_start {
                        let mut deps = dep_starts.clone();
                        deps.push(created);
                        starts.push(plan.add(res, Op::StartContainer, "created", deps));
                    }
                }
                None => {
                    let o = existing.expect("no cause means the container exists");
                    if !opts.no_start && o.state != ContainerState::Running {
                        let cause = match o.state {
                            ContainerState::Paused => "paused",
                            ContainerState::Created => "created but not started",
                            _ => "not running",
                        };
                        starts.push(plan.add(res, Op::StartContainer, cause, dep_starts.clone()));
                    }
                }
            }
        }
        started.insert(service.as_str(), starts);
        creates.insert(service.as_str(), created_here);
    }

    // Replicas beyond the desired count, and orphans.
    let desired_services: BTreeSet<&str> = desired
        .containers
        .values()
        .map(|c| c.service.as_str())
        .collect();
    let mut orphans = Vec::new();
    for o in observed.containers.iter().filter(|c| !c.is_oneoff()) {
        if desired.containers.contains_key(&o.name) {
            continue;
        }
        let service = o.service().unwrap_or_default();
        if opts.untouched.contains(service) {
            continue;
        }
        let cause = if desired_services.contains(service) {
            let n = desired
                .containers
                .values()
                .filter(|c| c.service == service)
                .count();
            format!("scaled down to {n}")
        } else if opts.remove_orphans {
            format!("orphan: service {service} is no longer in the project")
        } else {
            orphans.push(o.name.clone());
            continue;
        };
        let res = observed_resource(o);
        let mut deps = Vec::new();
        if matches!(o.state, ContainerState::Running | ContainerState::Paused) {
            deps.push(plan.add(res.clone(), Op::StopContainer, cause.clone(), vec![]));
        }
        plan.add(res, Op::RemoveContainer, cause, deps);
    }
    if !orphans.is_empty() {
        plan.warnings.push(format!(
            "found orphan containers ({}) for this project; if you removed or renamed this service in your compose file, run this command with --remove-orphans to clean it up",
            orphans.join(", ")
        ));
    }
    Ok(plan)
}

/// The plan that removes a project: its containers (dependents first), then
/// its networks, then with `-v` its named volumes. `desired` is the project
/// as the compose file describes it now; objects are found by their labels.
pub fn plan_down(desired: &DesiredState, observed: &ObservedState, opts: &DownOptions) -> Plan {
    let mut plan = Plan::default();
    let services: BTreeSet<&str> = desired
        .containers
        .values()
        .map(|c| c.service.as_str())
        .collect();
    // Reverse dependency order: a service stops only after its dependents.
    let order = service_order(desired).unwrap_or_default();
    let mut stop_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut removals = Vec::new();
    let mut orphans = Vec::new();
    let dependents = |s: &str| -> Vec<&str> {
        desired
            .containers
            .values()
            .filter(|c| c.depends_on.iter().any(|d| d == s))
            .map(|c| c.service.as_str())
            .collect()
    };
    let mut remove =
        |plan: &mut Plan, o: &ObservedContainer, cause: &str, after: Vec<usize>| -> usize {
            let res = observed_resource(o);
            let mut deps = after;
            if matches!(o.state, ContainerState::Running | ContainerState::Paused) {
                let stop = plan.add(res.clone(), Op::StopContainer, cause, deps.clone());
                deps = vec![stop];
            }
            let rm = plan.add(res, Op::RemoveContainer, cause, deps.clone());
            removals.push(rm);
            deps.first().copied().unwrap_or(rm)
        };
    for service in order.iter().rev() {
        let after: Vec<usize> = dependents(service)
            .iter()
            .flat_map(|d| stop_of.get(d).cloned().unwrap_or_default())
            .collect();
        let mut mine = Vec::new();
        for o in observed
            .containers
            .iter()
            .filter(|c| c.service() == Some(service.as_str()))
        {
            mine.push(remove(&mut plan, o, "project down", after.clone()));
        }
        stop_of.insert(service.as_str(), mine);
    }
    for o in &observed.containers {
        let service = o.service().unwrap_or_default();
        if services.contains(service) {
            continue;
        }
        if opts.remove_orphans || o.is_oneoff() {
            let cause = if o.is_oneoff() {
                "one-off container"
            } else {
                "orphan"
            };
            remove(&mut plan, o, cause, vec![]);
        } else {
            orphans.push(o.name.clone());
        }
    }
    if !orphans.is_empty() {
        plan.warnings.push(format!(
            "found orphan containers ({}) for this project; run this command with --remove-orphans to remove them",
            orphans.join(", ")
        ));
    }
    for (key, net) in &desired.networks {
        if !net.external && observed.networks.contains_key(&net.name) {
            let res = Resource::Network {
                key: key.clone(),
                name: net.name.clone(),
            };
            plan.add(res, Op::RemoveNetwork, "project down", removals.clone());
        }
    }
    if opts.volumes {
        for (key, vol) in &desired.volumes {
            if !vol.external && observed.volumes.contains_key(&vol.name) {
                let res = Resource::Volume {
                    key: key.clone(),
                    name: vol.name.clone(),
                };
                plan.add(res, Op::RemoveVolume, "down -v", removals.clone());
            }
        }
    }
    plan
}
