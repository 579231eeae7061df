//! The labels every object berth creates carries, and the names it gives
//! them. Docker Compose's label keys and naming are kept so that scripts and
//! habits carry over.

/// The project an object belongs to.
pub const PROJECT: &str = "com.docker.compose.project";
/// The service a container belongs to.
pub const SERVICE: &str = "com.docker.compose.service";
/// The replica number of a container, from 1.
pub const NUMBER: &str = "com.docker.compose.container-number";
/// The hash of the configuration an object was created from.
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
/// The network's or volume's key in the compose file.
pub const NETWORK: &str = "com.docker.compose.network";
/// The volume's key in the compose file.
pub const VOLUME: &str = "com.docker.compose.volume";
/// `True` for containers made by `run` (never part of the desired state).
pub const ONEOFF: &str = "com.docker.compose.oneoff";

/// `<project>-<service>-<n>`, unless the service sets `container_name`.
pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}
