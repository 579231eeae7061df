//! berth-reconciler: executes a [`Plan`] through a [`Runtime`], the one
//! trait behind which the engine and the network plane sit.
//!
//! Nodes run in plan order, which is a valid order of the DAG (every node
//! comes after the nodes it depends on). A failed node stops the run with an
//! error naming the node; everything done before it stays, and because
//! planning is level-triggered the next `up` or `down` plans exactly what is
//! left.
#![deny(missing_docs)]

use std::fmt;

use berth_planner::{DesiredState, Op, Plan, PlanNode, Resource};

/// The operations a plan needs. Each is idempotent where it can be
/// (creating what exists or removing what is gone succeeds), and an error is
/// a message naming what failed.
pub trait Runtime {
    /// Makes an image available.
    fn pull_image(&mut self, image: &str) -> Result<(), String>;
    /// Creates the network with key `key` of the project.
    fn create_network(&mut self, key: &str, desired: &DesiredState) -> Result<(), String>;
    /// Removes a network by name.
    fn remove_network(&mut self, name: &str) -> Result<(), String>;
    /// Creates the volume with key `key` of the project.
    fn create_volume(&mut self, key: &str, desired: &DesiredState) -> Result<(), String>;
    /// Removes a volume by name.
    fn remove_volume(&mut self, name: &str) -> Result<(), String>;
    /// Creates the desired container `name` (not started).
    fn create_container(&mut self, name: &str, desired: &DesiredState) -> Result<(), String>;
    /// Starts a container.
    fn start_container(&mut self, name: &str) -> Result<(), String>;
    /// Waits until every container of `service` meets `condition`
    /// (`service_healthy`, `service_completed_successfully`); an error says
    /// why it never will.
    fn wait_for(&mut self, service: &str, condition: &str) -> Result<(), String>;
    /// Stops a container (its service's stop signal and grace period).
    fn stop_container(&mut self, name: &str, service: &str) -> Result<(), String>;
    /// Removes a stopped container.
    fn remove_container(&mut self, name: &str) -> Result<(), String>;
    /// Stops independent containers, `(name, service)` each; a runtime that
    /// can should do it at once, since each stop may wait a grace period.
    fn stop_containers(&mut self, batch: &[(&str, &str)]) -> Vec<Result<(), String>> {
        batch
            .iter()
            .map(|(name, service)| self.stop_container(name, service))
            .collect()
    }
}

/// A node that failed.
#[derive(Debug)]
pub struct ReconcileError {
    /// The node.
    pub node: Box<PlanNode>,
    /// Why.
    pub message: String,
}

impl fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.node.op, self.node.resource, self.message
        )
    }
}

impl std::error::Error for ReconcileError {}

/// Waits for the `depends_on` conditions of container `name`. A dependency
/// marked `required: false` that fails is reported to `warn` and skipped.
fn wait_for_dependencies(
    name: &str,
    desired: &DesiredState,
    rt: &mut dyn Runtime,
    warn: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let Some(c) = desired.containers.get(name) else {
        return Ok(());
    };
    for cond in &c.conditions {
        match rt.wait_for(&cond.service, &cond.condition) {
            Ok(()) => {}
            Err(e) if !cond.required => warn(&format!(
                "optional dependency {} of {name} failed: {e}",
                cond.service
            )),
            Err(e) => return Err(format!("dependency failed to start: {e}")),
        }
    }
    Ok(())
}

/// Executes `plan`; `progress` hears about every node once it is done,
/// `warn` about what failed without failing the run.
pub fn apply(
    plan: &Plan,
    desired: &DesiredState,
    rt: &mut dyn Runtime,
    progress: &mut dyn FnMut(&PlanNode),
    warn: &mut dyn FnMut(&str),
) -> Result<(), ReconcileError> {
    let mut done = vec![false; plan.nodes.len()];
    for node in &plan.nodes {
        if done[node.id] {
            continue;
        }
        if node.op == Op::StopContainer {
            // Every stop whose dependencies are done, at once: a project's
            // grace periods overlap instead of adding up.
            let batch: Vec<&PlanNode> = plan
                .nodes
                .iter()
                .filter(|n| {
                    n.op == Op::StopContainer && !done[n.id] && n.deps.iter().all(|d| done[*d])
                })
                .collect();
            let names: Vec<(&str, &str)> = batch
                .iter()
                .filter_map(|n| match &n.resource {
                    Resource::Container { name, service, .. } => {
                        Some((name.as_str(), service.as_str()))
                    }
                    _ => None,
                })
                .collect();
            if names.len() == batch.len() && batch.len() > 1 {
                let results = rt.stop_containers(&names);
                let mut first_error = None;
                for (n, r) in batch.iter().zip(results) {
                    match r {
                        Ok(()) => {
                            done[n.id] = true;
                            progress(n);
                        }
                        Err(message) => {
                            first_error.get_or_insert(ReconcileError {
                                node: Box::new((*n).clone()),
                                message,
                            });
                        }
                    }
                }
                if let Some(e) = first_error {
                    return Err(e);
                }
                continue;
            }
        }
        let result = match (&node.resource, node.op) {
            (Resource::Image(r), Op::PullImage) => rt.pull_image(r),
            (Resource::Network { key, .. }, Op::CreateNetwork) => rt.create_network(key, desired),
            (Resource::Network { name, .. }, Op::RemoveNetwork) => rt.remove_network(name),
            (Resource::Volume { key, .. }, Op::CreateVolume) => rt.create_volume(key, desired),
            (Resource::Volume { name, .. }, Op::RemoveVolume) => rt.remove_volume(name),
            (Resource::Container { name, .. }, Op::CreateContainer) => {
                rt.create_container(name, desired)
            }
            (Resource::Container { name, .. }, Op::StartContainer) => {
                wait_for_dependencies(name, desired, rt, warn)
                    .and_then(|()| rt.start_container(name))
            }
            (Resource::Container { name, service, .. }, Op::StopContainer) => {
                rt.stop_container(name, service)
            }
            (Resource::Container { name, .. }, Op::RemoveContainer) => rt.remove_container(name),
            (r, op) => Err(format!("{op} does not apply to {r}")),
        };
        result.map_err(|message| ReconcileError {
            node: Box::new(node.clone()),
            message,
        })?;
        done[node.id] = true;
        progress(node);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_planner::plan::Plan;

    /// A runtime that records what it was asked to do and fails on demand.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail_on: Option<String>,
    }

    impl Recorder {
        fn call(&mut self, what: String) -> Result<(), String> {
            if self.fail_on.as_deref() == Some(what.as_str()) {
                return Err("boom".into());
            }
            self.calls.push(what);
            Ok(())
        }
    }

    impl Runtime for Recorder {
        fn pull_image(&mut self, image: &str) -> Result<(), String> {
            self.call(format!("pull {image}"))
        }
        fn create_network(&mut self, key: &str, _: &DesiredState) -> Result<(), String> {
            self.call(format!("net+ {key}"))
        }
        fn remove_network(&mut self, name: &str) -> Result<(), String> {
            self.call(format!("net- {name}"))
        }
        fn create_volume(&mut self, key: &str, _: &DesiredState) -> Result<(), String> {
            self.call(format!("vol+ {key}"))
        }
        fn remove_volume(&mut self, name: &str) -> Result<(), String> {
            self.call(format!("vol- {name}"))
        }
        fn create_container(&mut self, name: &str, _: &DesiredState) -> Result<(), String> {
            self.call(format!("create {name}"))
        }
        fn start_container(&mut self, name: &str) -> Result<(), String> {
            self.call(format!("start {name}"))
        }
        fn wait_for(&mut self, service: &str, condition: &str) -> Result<(), String> {
            self.call(format!("wait {service} {condition}"))
        }
        fn stop_container(&mut self, name: &str, _: &str) -> Result<(), String> {
            self.call(format!("stop {name}"))
        }
        fn remove_container(&mut self, name: &str) -> Result<(), String> {
            self.call(format!("rm {name}"))
        }
    }

    fn plan() -> Plan {
        let mut p = Plan::default();
        let net = p.add(
            Resource::Network {
                key: "default".into(),
                name: "demo_default".into(),
            },
            Op::CreateNetwork,
            "missing",
            vec![],
        );
        let c = Resource::Container {
            name: "demo-web-1".into(),
            service: "web".into(),
            number: 1,
        };
        let created = p.add(c.clone(), Op::CreateContainer, "missing", vec![net]);
        p.add(c, Op::StartContainer, "created", vec![created]);
        p
    }

    #[test]
    fn nodes_run_in_order_and_a_failure_names_its_node() {
        let mut rt = Recorder::default();
        let mut done = Vec::new();
        apply(
            &plan(),
            &DesiredState::default(),
            &mut rt,
            &mut |n| done.push(n.id),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            rt.calls,
            ["net+ default", "create demo-web-1", "start demo-web-1"]
        );
        assert_eq!(done, [0, 1, 2]);

        let mut rt = Recorder {
            fail_on: Some("create demo-web-1".into()),
            ..Recorder::default()
        };
        let err = apply(
            &plan(),
            &DesiredState::default(),
            &mut rt,
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CreateContainer container demo-web-1: boom"
        );
        assert_eq!(rt.calls, ["net+ default"]);
    }

    #[test]
    fn a_start_waits_for_its_conditions_and_optional_ones_only_warn() {
        use berth_planner::{Condition, DesiredContainer};
        let mut desired = DesiredState::default();
        desired.containers.insert(
            "demo-web-1".into(),
            DesiredContainer {
                conditions: vec![
                    Condition {
                        service: "db".into(),
                        condition: "service_healthy".into(),
                        required: true,
                    },
                    Condition {
                        service: "cache".into(),
                        condition: "service_healthy".into(),
                        required: false,
                    },
                ],
                ..DesiredContainer::default()
            },
        );
        let mut rt = Recorder {
            fail_on: Some("wait cache service_healthy".into()),
            ..Recorder::default()
        };
        let mut warnings = Vec::new();
        apply(&plan(), &desired, &mut rt, &mut |_| {}, &mut |w| {
            warnings.push(w.to_string())
        })
        .unwrap();
        assert_eq!(
            rt.calls[2..],
            ["wait db service_healthy", "start demo-web-1"]
        );
        assert_eq!(
            warnings,
            ["optional dependency cache of demo-web-1 failed: boom"]
        );

        let mut rt = Recorder {
            fail_on: Some("wait db service_healthy".into()),
            ..Recorder::default()
        };
        let err = apply(&plan(), &desired, &mut rt, &mut |_| {}, &mut |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "StartContainer container demo-web-1: dependency failed to start: boom"
        );
    }

    #[test]
    fn independent_stops_run_as_one_batch_and_dependents_still_go_first() {
        let mut p = Plan::default();
        let c = |n: &str| Resource::Container {
            name: n.into(),
            service: n.into(),
            number: 1,
        };
        let web = p.add(c("web"), Op::StopContainer, "down", vec![]);
        let db = p.add(c("db"), Op::StopContainer, "down", vec![web]);
        let cache = p.add(c("cache"), Op::StopContainer, "down", vec![]);
        p.add(c("db"), Op::RemoveContainer, "down", vec![db]);
        let mut rt = Recorder::default();
        let mut done = Vec::new();
        apply(
            &p,
            &DesiredState::default(),
            &mut rt,
            &mut |n| done.push(n.id),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(rt.calls, ["stop web", "stop cache", "stop db", "rm db"]);
        assert_eq!(done, [web, cache, db, 3]);
    }
}
