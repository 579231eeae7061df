//! What exists: the snapshot the engine and netplane report, reduced to what
//! the planner compares. Objects are recognised by their labels.

use std::collections::{BTreeMap, BTreeSet};

use crate::labels;

/// A container's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running (or restarting under its policy).
    Running,
    /// Paused.
    Paused,
    /// Stopped or exited.
    Exited,
}

/// A container that exists.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedContainer {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its state.
    pub state: ContainerState,
    /// The service configuration it was created from, when recorded; used
    /// to say what changed.
    pub config: Option<serde_json::Value>,
}

impl ObservedContainer {
    /// The service label.
    pub fn service(&self) -> Option<&str> {
        self.labels.get(labels::SERVICE).map(String::as_str)
    }

    /// The replica number label.
    pub fn number(&self) -> Option<u32> {
        self.labels.get(labels::NUMBER).and_then(|n| n.parse().ok())
    }

    /// The configuration hash label.
    pub fn hash(&self) -> Option<&str> {
        self.labels.get(labels::CONFIG_HASH).map(String::as_str)
    }

    /// True for `run` containers.
    pub fn is_oneoff(&self) -> bool {
        self.labels
            .get(labels::ONEOFF)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// A network that exists.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedNetwork {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its record exists but its bridge does not (a create killed half-way,
    /// a reboot): creating it again completes it.
    pub incomplete: bool,
}

/// A volume that exists.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedVolume {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// Everything that exists and belongs to one project, plus the images present.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedState {
    /// The project's containers.
    pub containers: Vec<ObservedContainer>,
    /// Networks by name (the project's, and any others a service may join).
    pub networks: BTreeMap<String, ObservedNetwork>,
    /// Volumes by name.
    pub volumes: BTreeMap<String, ObservedVolume>,
    /// Image references present locally.
    pub images: BTreeSet<String>,
}
