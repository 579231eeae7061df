//! berth-planner: from a Compose [`Project`](berth_spec::Project) and a
//! snapshot of what exists ([`ObservedState`]), a [`Plan`]: a DAG of actions,
//! each with the reason it is needed.
//!
//! Pure functions, no I/O (`clippy.toml` forbids it): the reconciler reads the
//! snapshot from the engine and netplane and executes the plan through them.
#![deny(missing_docs)]

pub mod desired;
pub mod diff;
pub mod hash;
pub mod labels;
pub mod observed;
pub mod plan;
mod reason;

pub use desired::{Condition, DesiredContainer, DesiredNetwork, DesiredState, DesiredVolume};
pub use diff::{DownOptions, PullPolicy, UpOptions, plan_down, plan_up};
pub use observed::{
    ContainerState, ObservedContainer, ObservedNetwork, ObservedState, ObservedVolume,
};
pub use plan::{Op, Plan, PlanNode, Resource};
