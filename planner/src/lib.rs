//! berth-planner: turns a Compose `Project` and a snapshot of what exists into
//! a `Plan`, a DAG of actions with a reason each. Pure functions, no I/O.
//!
//! Empty until the planner issue lands: the crate exists so the workspace has
//! the shape `DESIGN.md` draws and the dependency rules are enforced from day one.
#![deny(missing_docs)]
