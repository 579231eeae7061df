//! A plan: the actions that bring what exists to what is desired, as a DAG.
//! Each node names a resource, an operation, why, and the nodes it waits for.

use std::fmt;

/// The object an action works on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// An image, by reference.
    Image(String),
    /// A network, by name (`key` is its key in the compose file).
    Network {
        /// The key in the compose file.
        key: String,
        /// The name it has on the host.
        name: String,
    },
    /// A volume, by name.
    Volume {
        /// The key in the compose file.
        key: String,
        /// The name it has on the host.
        name: String,
    },
    /// A container, by name, with its service and replica number.
    Container {
        /// The container's name.
        name: String,
        /// Its service.
        service: String,
        /// Its replica number.
        number: u32,
    },
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Image(r) => write!(f, "image {r}"),
            Resource::Network { name, .. } => write!(f, "network {name}"),
            Resource::Volume { name, .. } => write!(f, "volume {name}"),
            Resource::Container { name, .. } => write!(f, "container {name}"),
        }
    }
}

/// What to do to a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// Fetch an image from its registry.
    PullImage,
    /// Create a network.
    CreateNetwork,
    /// Remove a network.
    RemoveNetwork,
    /// Create a volume.
    CreateVolume,
    /// Remove a volume.
    RemoveVolume,
    /// Create a container (not started).
    CreateContainer,
    /// Start a container.
    StartContainer,
    /// Stop a container (stop signal, grace period, then kill).
    StopContainer,
    /// Remove a container.
    RemoveContainer,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One action of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanNode {
    /// Its index in [`Plan::nodes`].
    pub id: usize,
    /// What it acts on.
    pub resource: Resource,
    /// What it does.
    pub op: Op,
    /// Why, in the user's words.
    pub cause: String,
    /// Nodes that must finish first (always lower ids).
    pub deps: Vec<usize>,
}

/// A DAG of actions. Nodes only depend on earlier nodes, so the node order
/// is a valid sequential order, and independent nodes can run in parallel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The actions.
    pub nodes: Vec<PlanNode>,
    /// Things the user should know that need no action (orphans kept …).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Adds an action and returns its id.
    pub fn add(
        &mut self,
        resource: Resource,
        op: Op,
        cause: impl Into<String>,
        deps: Vec<usize>,
    ) -> usize {
        let id = self.nodes.len();
        let mut deps = deps;
        deps.sort_unstable();
        deps.dedup();
        debug_assert!(deps.iter().all(|d| *d < id));
        self.nodes.push(PlanNode {
            id,
            resource,
            op,
            cause: cause.into(),
            deps,
        });
        id
    }

    /// True when nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The id of the last action on `resource` with `op`, if any.
    pub fn find(&self, resource: &Resource, op: Op) -> Option<usize> {
        self.nodes
            .iter()
            .rev()
            .find(|n| n.op == op && &n.resource == resource)
            .map(|n| n.id)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.nodes {
            let deps: Vec<String> = n.deps.iter().map(usize::to_string).collect();
            writeln!(
                f,
                "[{}] -> #{} {}, {}, {}",
                deps.join(","),
                n.id,
                n.resource,
                n.op,
                n.cause
            )?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
