//! The container runtime: OCI runtime specs built from an image and a run
//! request, executed by youki's `libcontainer` in this (single-threaded)
//! process, on an overlay root filesystem.
//!
//! So far containers run in the foreground (`container run`); the
//! per-container supervisor, detached containers, logs and the rest of the
//! lifecycle follow.

pub mod attach;
pub mod changes;
pub mod copy;
pub mod devices;
pub mod exec;
pub mod freeze;
pub mod health;
pub mod logs;
pub mod mounts;
pub mod netns;
pub mod run;
pub mod seal;
pub mod seccomp;
pub mod shim;
pub mod spares;
pub mod spec;
pub mod stats;
pub mod succession;
pub mod tty;
pub mod user;
pub mod userns;

pub use run::{RunRequest, run_foreground};
