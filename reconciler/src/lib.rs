//! berth-reconciler: executes a `Plan` through the engine and netplane traits.
//!
//! Empty until the planner/reconciler issue lands: the crate exists so the
//! workspace has the shape `DESIGN.md` draws.
#![deny(missing_docs)]
