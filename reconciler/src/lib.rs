//! berth-reconciler: executes a [`Plan`] through a [`Runtime`], the one
//! trait behind which the engine and the network plane sit.
//!
//! Nodes run along the DAG: a node starts as soon as every node it depends
//! on is done, up to a bound on how many run at once, so independent
//! containers are created, started and stopped side by side. A failed node
//! stops new work; nodes already running finish, and the error names the
//! first node that failed. Everything done stays, and because planning is
//! level-triggered the next `up` or `down` plans exactly what is left.
#![deny(missing_docs)]

use std::fmt;
use std::sync::mpsc;

use berth_planner::{DesiredState, Op, Plan, PlanNode, Resource};

/// The operations a plan needs. Each is idempotent where it can be
/// (creating what exists or removing what is gone succeeds), and an error is
/// a message naming what failed. Calls come from several threads at once,
/// for different resources.
pub trait Runtime: Sync {
    /// Makes an image available.
    fn pull_image(&self, image: &str) -> Result<(), String>;
    /// Creates the network with key `key` of the project.
    fn create_network(&self, key: &str, desired: &DesiredState) -> Result<(), String>;
    /// Removes a network by name.
    fn remove_network(&self, name: &str) -> Result<(), String>;
    /// Creates the volume with key `key` of the project.
    fn create_volume(&self, key: &str, desired: &DesiredState) -> Result<(), String>;
    /// Removes a volume by name.
    fn remove_volume(&self, name: &str) -> Result<(), String>;
    /// Creates the desired container `name` (not started).
    fn create_container(&self, name: &str, desired: &DesiredState) -> Result<(), String>;
    /// Starts a container.
    fn start_container(&self, name: &str) -> Result<(), String>;
    /// Waits until every container of `service` meets `condition`
    /// (`service_healthy`, `service_completed_successfully`); an error says
    /// why it never will.
    fn wait_for(&self, service: &str, condition: &str) -> Result<(), String>;
    /// Stops a container (its service's stop signal and grace period).
    fn stop_container(&self, name: &str, service: &str) -> Result<(), String>;
    /// Removes a stopped container.
    fn remove_container(&self, name: &str) -> Result<(), String>;
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
/// marked `required: false` that fails goes to `warnings` and is skipped.
fn wait_for_dependencies(
    name: &str,
    desired: &DesiredState,
    rt: &dyn Runtime,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let Some(c) = desired.containers.get(name) else {
        return Ok(());
    };
    for cond in &c.conditions {
        match rt.wait_for(&cond.service, &cond.condition) {
            Ok(()) => {}
            Err(e) if !cond.required => warnings.push(format!(
                "optional dependency {} of {name} failed: {e}",
                cond.service
            )),
            Err(e) => return Err(format!("dependency failed to start: {e}")),
        }
    }
    Ok(())
}

/// Runs one node; warnings that do not fail it are returned alongside.
fn run_node(
    node: &PlanNode,
    desired: &DesiredState,
    rt: &dyn Runtime,
) -> (Result<(), String>, Vec<String>) {
    let mut warnings = Vec::new();
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
            wait_for_dependencies(name, desired, rt, &mut warnings)
                .and_then(|()| rt.start_container(name))
        }
        (Resource::Container { name, service, .. }, Op::StopContainer) => {
            rt.stop_container(name, service)
        }
        (Resource::Container { name, .. }, Op::RemoveContainer) => rt.remove_container(name),
        (r, op) => Err(format!("{op} does not apply to {r}")),
    };
    (result, warnings)
}

/// What [`apply`] reports as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A node's work began.
    Started(&'a PlanNode),
    /// A node's work is done.
    Done(&'a PlanNode),
    /// A node's work failed with this message (the plan stops).
    Failed(&'a PlanNode, &'a str),
}

/// Executes `plan` with at most `parallelism` nodes at once (1 runs the
/// nodes in plan order); `progress` hears of every node as it starts and
/// as it ends,
/// `warn` about what failed without failing the run. Both are called on the
/// calling thread.
pub fn apply(
    plan: &Plan,
    desired: &DesiredState,
    rt: &dyn Runtime,
    parallelism: usize,
    progress: &mut dyn FnMut(Event<'_>),
    warn: &mut dyn FnMut(&str),
) -> Result<(), ReconcileError> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Waiting,
        Running,
        Done,
    }
    let parallelism = parallelism.max(1);
    let mut state = vec![State::Waiting; plan.nodes.len()];
    let mut first_error: Option<ReconcileError> = None;
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let mut running = 0;
        loop {
            if first_error.is_none() {
                for node in &plan.nodes {
                    if running >= parallelism {
                        break;
                    }
                    if state[node.id] != State::Waiting
                        || !node.deps.iter().all(|d| state[*d] == State::Done)
                    {
                        continue;
                    }
                    state[node.id] = State::Running;
                    running += 1;
                    progress(Event::Started(node));
                    let tx = tx.clone();
                    scope.spawn(move || {
                        let (result, warnings) =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                run_node(node, desired, rt)
                            }))
                            .unwrap_or_else(|_| (Err("panicked".to_string()), Vec::new()));
                        // The receiver outlives every worker.
                        let _ = tx.send((node.id, result, warnings));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok((id, result, warnings)) = rx.recv() else {
                break;
            };
            running -= 1;
            for w in &warnings {
                warn(w);
            }
            let node = &plan.nodes[id];
            match result {
                Ok(()) => {
                    state[id] = State::Done;
                    progress(Event::Done(node));
                }
                Err(message) => {
                    progress(Event::Failed(node, &message));
                    first_error.get_or_insert(ReconcileError {
                        node: Box::new(node.clone()),
                        message,
                    });
                }
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_planner::plan::Plan;

    /// A runtime that records what it was asked to do and fails on demand.
    #[derive(Default)]
    struct Recorder {
        calls: std::sync::Mutex<Vec<String>>,
        fail_on: Option<String>,
    }

    impl Recorder {
        fn call(&self, what: String) -> Result<(), String> {
            if self.fail_on.as_deref() == Some(what.as_str()) {
                return Err("boom".into());
            }
            self.calls.lock().unwrap().push(what);
            Ok(())
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Runtime for Recorder {
        fn pull_image(&self, image: &str) -> Result<(), String> {
            self.call(format!("pull {image}"))
        }
        fn create_network(&self, key: &str, _: &DesiredState) -> Result<(), String> {
            self.call(format!("net+ {key}"))
        }
        fn remove_network(&self, name: &str) -> Result<(), String> {
            self.call(format!("net- {name}"))
        }
        fn create_volume(&self, key: &str, _: &DesiredState) -> Result<(), String> {
            self.call(format!("vol+ {key}"))
        }
        fn remove_volume(&self, name: &str) -> Result<(), String> {
            self.call(format!("vol- {name}"))
        }
        fn create_container(&self, name: &str, _: &DesiredState) -> Result<(), String> {
            self.call(format!("create {name}"))
        }
        fn start_container(&self, name: &str) -> Result<(), String> {
            self.call(format!("start {name}"))
        }
        fn wait_for(&self, service: &str, condition: &str) -> Result<(), String> {
            self.call(format!("wait {service} {condition}"))
        }
        fn stop_container(&self, name: &str, _: &str) -> Result<(), String> {
            self.call(format!("stop {name}"))
        }
        fn remove_container(&self, name: &str) -> Result<(), String> {
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
        let rt = Recorder::default();
        let mut done = Vec::new();
        apply(
            &plan(),
            &DesiredState::default(),
            &rt,
            1,
            &mut |e| {
                if let Event::Done(n) = e {
                    done.push(n.id)
                }
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            rt.calls(),
            ["net+ default", "create demo-web-1", "start demo-web-1"]
        );
        assert_eq!(done, [0, 1, 2]);

        let rt = Recorder {
            fail_on: Some("create demo-web-1".into()),
            ..Recorder::default()
        };
        let err = apply(
            &plan(),
            &DesiredState::default(),
            &rt,
            1,
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CreateContainer container demo-web-1: boom"
        );
        assert_eq!(rt.calls(), ["net+ default"]);
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
        let rt = Recorder {
            fail_on: Some("wait cache service_healthy".into()),
            ..Recorder::default()
        };
        let mut warnings = Vec::new();
        apply(&plan(), &desired, &rt, 1, &mut |_| {}, &mut |w| {
            warnings.push(w.to_string())
        })
        .unwrap();
        assert_eq!(
            rt.calls()[2..],
            ["wait db service_healthy", "start demo-web-1"]
        );
        assert_eq!(
            warnings,
            ["optional dependency cache of demo-web-1 failed: boom"]
        );

        let rt = Recorder {
            fail_on: Some("wait db service_healthy".into()),
            ..Recorder::default()
        };
        let err = apply(&plan(), &desired, &rt, 1, &mut |_| {}, &mut |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "StartContainer container demo-web-1: dependency failed to start: boom"
        );
    }

    /// Stops that meet at a barrier: only a runtime that runs independent
    /// nodes at once gets past it.
    struct Barrier {
        inner: Recorder,
        barrier: std::sync::Barrier,
    }

    impl Runtime for Barrier {
        fn pull_image(&self, i: &str) -> Result<(), String> {
            self.inner.pull_image(i)
        }
        fn create_network(&self, k: &str, d: &DesiredState) -> Result<(), String> {
            self.inner.create_network(k, d)
        }
        fn remove_network(&self, n: &str) -> Result<(), String> {
            self.inner.remove_network(n)
        }
        fn create_volume(&self, k: &str, d: &DesiredState) -> Result<(), String> {
            self.inner.create_volume(k, d)
        }
        fn remove_volume(&self, n: &str) -> Result<(), String> {
            self.inner.remove_volume(n)
        }
        fn create_container(&self, n: &str, d: &DesiredState) -> Result<(), String> {
            self.inner.create_container(n, d)
        }
        fn start_container(&self, n: &str) -> Result<(), String> {
            self.inner.start_container(n)
        }
        fn wait_for(&self, s: &str, c: &str) -> Result<(), String> {
            self.inner.wait_for(s, c)
        }
        fn stop_container(&self, n: &str, s: &str) -> Result<(), String> {
            if n != "db" {
                self.barrier.wait();
            }
            self.inner.stop_container(n, s)
        }
        fn remove_container(&self, n: &str) -> Result<(), String> {
            self.inner.remove_container(n)
        }
    }

    #[test]
    fn independent_nodes_run_at_once_and_dependents_wait() {
        let mut p = Plan::default();
        let c = |n: &str| Resource::Container {
            name: n.into(),
            service: n.into(),
            number: 1,
        };
        let web = p.add(c("web"), Op::StopContainer, "down", vec![]);
        let db = p.add(c("db"), Op::StopContainer, "down", vec![web]);
        let cache = p.add(c("cache"), Op::StopContainer, "down", vec![]);
        let rm = p.add(c("db"), Op::RemoveContainer, "down", vec![db]);
        let rt = Barrier {
            inner: Recorder::default(),
            barrier: std::sync::Barrier::new(2),
        };
        let mut done = Vec::new();
        apply(
            &p,
            &DesiredState::default(),
            &rt,
            4,
            &mut |e| {
                if let Event::Done(n) = e {
                    done.push(n.id)
                }
            },
            &mut |_| {},
        )
        .unwrap();
        let calls = rt.inner.calls();
        assert_eq!(calls[2..], ["stop db", "rm db"]);
        assert_eq!(done.len(), 4);
        assert!(done.iter().position(|d| *d == web) < done.iter().position(|d| *d == db));
        assert!(done.contains(&cache));
        assert_eq!(done.last(), Some(&rm));
    }

    #[test]
    fn a_failure_stops_new_work_but_lets_running_nodes_finish() {
        let mut p = Plan::default();
        let c = |n: &str| Resource::Container {
            name: n.into(),
            service: n.into(),
            number: 1,
        };
        let a = p.add(c("a"), Op::CreateContainer, "missing", vec![]);
        p.add(c("b"), Op::CreateContainer, "missing", vec![]);
        p.add(c("a"), Op::StartContainer, "created", vec![a]);
        let rt = Recorder {
            fail_on: Some("create a".into()),
            ..Recorder::default()
        };
        let err = apply(
            &p,
            &DesiredState::default(),
            &rt,
            4,
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "CreateContainer container a: boom");
        assert_eq!(rt.calls(), ["create b"]);
    }
}
