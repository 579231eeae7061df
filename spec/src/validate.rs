//! Whole-project checks: dependency cycles and references to services,
//! networks, volumes, secrets and configs that do not exist.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::model::Project;
use crate::yaml::{Mark, Node};

/// Fails on a `depends_on` cycle, naming it.
pub fn cycles(project: &Project) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Visiting,
        Done,
    }
    fn visit(
        name: &str,
        project: &Project,
        state: &mut BTreeMap<String, State>,
        stack: &mut Vec<String>,
    ) -> Result<()> {
        match state.get(name) {
            Some(State::Done) => return Ok(()),
            Some(State::Visiting) => {
                let start = stack.iter().position(|s| s == name).unwrap_or(0);
                let mut chain: Vec<&str> = stack[start..].iter().map(String::as_str).collect();
                chain.push(name);
                return Err(Error::Project(format!(
                    "dependency cycle detected: {}",
                    chain.join(" -> ")
                )));
            }
            None => {}
        }
        state.insert(name.to_string(), State::Visiting);
        stack.push(name.to_string());
        if let Some(svc) = project.services.get(name) {
            for dep in svc.depends_on.keys() {
                visit(dep, project, state, stack)?;
            }
        }
        stack.pop();
        state.insert(name.to_string(), State::Done);
        Ok(())
    }
    let mut state = BTreeMap::new();
    for name in project.services.keys() {
        visit(name, project, &mut state, &mut Vec::new())?;
    }
    Ok(())
}

/// Where `services.<svc>.<field>` is written, for error messages.
fn mark_of(root: &Node, service: &str, field: &str) -> Mark {
    let svc = root
        .get("services")
        .and_then(|s| s.as_map())
        .and_then(|m| m.get_key_value(service).map(|(k, v)| (k.mark, v)));
    match svc {
        Some((key_mark, node)) => node
            .as_map()
            .and_then(|m| m.get_key_value(field))
            .map(|(k, _)| k.mark)
            .unwrap_or(key_mark),
        None => Mark::synthetic(),
    }
}

/// Fails when a service refers to something the project does not define.
pub fn consistency(project: &Project, root: &Node) -> Result<()> {
    for (name, svc) in &project.services {
        let fail = |field: &str, msg: String| {
            Err(Error::invalid(
                &mark_of(root, name, field),
                format!("services.{name}.{field}"),
                msg,
            ))
        };
        if !svc.network_mode.is_empty() && root_has(root, name, "networks") {
            return fail(
                "network_mode",
                format!(
                    "service {name:?} declares mutually exclusive `network_mode` and `networks`"
                ),
            );
        }
        for net in svc.networks.keys() {
            if !project.networks.contains_key(net) {
                return fail(
                    "networks",
                    format!("service {name:?} refers to undefined network {net}"),
                );
            }
        }
        for v in &svc.volumes {
            if v.kind == "volume"
                && !v.source.is_empty()
                && !project.volumes.contains_key(&v.source)
            {
                return fail(
                    "volumes",
                    format!("service {name:?} refers to undefined volume {}", v.source),
                );
            }
        }
        for s in &svc.secrets {
            if !project.secrets.contains_key(&s.source) {
                return fail(
                    "secrets",
                    format!("service {name:?} refers to undefined secret {}", s.source),
                );
            }
        }
        for c in &svc.configs {
            if !project.configs.contains_key(&c.source) {
                return fail(
                    "configs",
                    format!("service {name:?} refers to undefined config {}", c.source),
                );
            }
        }
        for m in svc.models.keys() {
            if !project.models.contains_key(m) {
                return fail(
                    "models",
                    format!("service {name:?} refers to undefined model {m}"),
                );
            }
        }
        for (dep, d) in &svc.depends_on {
            let known =
                project.services.contains_key(dep) || project.disabled_services.contains_key(dep);
            if d.required && !known {
                return fail(
                    "depends_on",
                    format!("service {name:?} depends on undefined service {dep:?}"),
                );
            }
        }
        if let Some(target) = svc.network_mode.strip_prefix("service:")
            && !project.services.contains_key(target)
        {
            return fail(
                "network_mode",
                format!("service {name:?} uses the network stack of undefined service {target:?}"),
            );
        }
        for vf in &svc.volumes_from {
            let target = vf.split(':').next().unwrap_or(vf);
            if !vf.starts_with("container:") && !project.services.contains_key(target) {
                return fail(
                    "volumes_from",
                    format!("service {name:?} mounts volumes from undefined service {target:?}"),
                );
            }
        }
    }
    Ok(())
}

fn root_has(root: &Node, service: &str, field: &str) -> bool {
    root.get("services")
        .and_then(|s| s.get(service))
        .and_then(|s| s.get(field))
        .is_some_and(|n| !n.is_null())
}
