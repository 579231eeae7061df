//! The network plane's error type.

use std::path::PathBuf;

/// What can go wrong in the network plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink request failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// Applying firewall rules failed.
    #[error("firewall: {0}")]
    Firewall(String),
    /// A file under the state root.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A request that cannot be satisfied (names, subnets, conflicts).
    #[error("{0}")]
    Invalid(String),
}

/// The network plane's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
