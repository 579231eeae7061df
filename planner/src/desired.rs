//! What should exist: every network, volume and container of a project, with
//! its name, labels and configuration hash.

use std::collections::BTreeMap;

use berth_spec::Project;

use crate::hash;
use crate::labels;

/// A network the project needs.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredNetwork {
    /// The key in the compose file.
    pub key: String,
    /// The name it is created with.
    pub name: String,
    /// `external: true`: must exist, is never created or removed.
    pub external: bool,
    /// Its configuration hash.
    pub hash: String,
}

/// A volume the project needs.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredVolume {
    /// The key in the compose file.
    pub key: String,
    /// The name it is created with.
    pub name: String,
    /// `external: true`: must exist, is never created or removed.
    pub external: bool,
    /// Its configuration hash.
    pub hash: String,
}

/// A container the project needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredContainer {
    /// `<project>-<service>-<n>` (or the service's `container_name`).
    pub name: String,
    /// Its service.
    pub service: String,
    /// Its replica number, from 1.
    pub number: u32,
    /// The image it runs.
    pub image: String,
    /// The configuration hash of its service.
    pub hash: String,
    /// The configuration the hash is taken over, recorded for later diffs.
    pub config: serde_json::Value,
    /// The labels it is created with.
    pub labels: BTreeMap<String, String>,
    /// Services that must be started first.
    pub depends_on: Vec<String>,
    /// What each dependency must reach before this container starts, beyond
    /// being started (`service_healthy`, `service_completed_successfully`).
    pub conditions: Vec<Condition>,
    /// Networks (by key) it joins.
    pub networks: Vec<String>,
    /// Named volumes (by key) it mounts.
    pub volumes: Vec<String>,
    /// The service's `pull_policy` (`always`, `never`, `missing`, …).
    pub pull_policy: String,
    /// Dependencies whose recreation recreates this container too
    /// (`depends_on: restart: true`, and the services whose network
    /// namespace it joins, which are gone with them).
    pub restart_with: Vec<String>,
}

/// A `depends_on` condition to wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The service depended on.
    pub service: String,
    /// `service_healthy` or `service_completed_successfully`.
    pub condition: String,
    /// When false, a dependency that fails only warns.
    pub required: bool,
}

/// Everything a project needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredState {
    /// The project name.
    pub project: String,
    /// Networks by key.
    pub networks: BTreeMap<String, DesiredNetwork>,
    /// Volumes by key.
    pub volumes: BTreeMap<String, DesiredVolume>,
    /// Containers by name.
    pub containers: BTreeMap<String, DesiredContainer>,
}

impl DesiredState {
    /// The service's first replica, the one Docker Compose picks for
    /// `network_mode: service:`, `volumes_from` and one-off templates.
    pub fn first_of(&self, service: &str) -> Option<&DesiredContainer> {
        self.containers
            .values()
            .filter(|c| c.service == service)
            .min_by_key(|c| c.number)
    }

    /// The desired state of `project`; `scale` overrides replica counts
    /// (`--scale svc=n`).
    pub fn from_project(project: &Project, scale: &BTreeMap<String, u32>) -> DesiredState {
        let mut state = DesiredState {
            project: project.name.clone(),
            ..DesiredState::default()
        };
        for (key, net) in &project.networks {
            state.networks.insert(
                key.clone(),
                DesiredNetwork {
                    key: key.clone(),
                    name: net.name.clone(),
                    external: net.external,
                    hash: hash::network_hash(net),
                },
            );
        }
        for (key, vol) in &project.volumes {
            state.volumes.insert(
                key.clone(),
                DesiredVolume {
                    key: key.clone(),
                    name: vol.name.clone(),
                    external: vol.external,
                    hash: hash::volume_hash(vol),
                },
            );
        }
        for (name, svc) in &project.services {
            let replicas = scale
                .get(name)
                .copied()
                .unwrap_or_else(|| u32::try_from(svc.replicas().max(0)).unwrap_or(0));
            let config = hash::service_config(svc);
            let hash = hash::service_hash(svc);
            for number in 1..=replicas {
                let cname = if svc.container_name.is_empty() {
                    labels::container_name(&project.name, name, number)
                } else {
                    svc.container_name.clone()
                };
                let mut l = svc.labels.clone();
                l.insert(labels::PROJECT.into(), project.name.clone());
                l.insert(labels::SERVICE.into(), name.clone());
                l.insert(labels::NUMBER.into(), number.to_string());
                l.insert(labels::CONFIG_HASH.into(), hash.clone());
                l.insert(labels::ONEOFF.into(), "False".into());
                state.containers.insert(
                    cname.clone(),
                    DesiredContainer {
                        name: cname,
                        service: name.clone(),
                        number,
                        image: project.image_name(svc),
                        hash: hash.clone(),
                        config: config.clone(),
                        labels: l,
                        depends_on: svc
                            .depends_on
                            .keys()
                            .filter(|d| project.services.contains_key(*d))
                            .cloned()
                            .collect(),
                        conditions: svc
                            .depends_on
                            .iter()
                            .filter(|(d, dep)| {
                                project.services.contains_key(*d)
                                    && !matches!(dep.condition.as_str(), "" | "service_started")
                            })
                            .map(|(d, dep)| Condition {
                                service: d.clone(),
                                condition: dep.condition.clone(),
                                required: dep.required,
                            })
                            .collect(),
                        networks: svc.networks.keys().cloned().collect(),
                        volumes: svc
                            .volumes
                            .iter()
                            .filter(|v| {
                                v.kind == "volume" && project.volumes.contains_key(&v.source)
                            })
                            .map(|v| v.source.clone())
                            .collect(),
                        pull_policy: svc.pull_policy.clone(),
                        restart_with: svc
                            .depends_on
                            .iter()
                            .filter(|(d, dep)| dep.restart && project.services.contains_key(*d))
                            .map(|(d, _)| d.clone())
                            .collect(),
                    },
                );
            }
        }
        state
    }
}
