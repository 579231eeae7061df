//! berth-engine: image store, overlay root filesystems, the container runtime,
//! supervisors, logs and volumes.
//!
//! Empty until the engine issues land: the crate exists so the workspace has
//! the shape `DESIGN.md` draws.
#![deny(missing_docs)]
