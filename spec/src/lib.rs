//! berth-spec: the Compose model.
//!
//! Loads the files users already have (`compose.yaml`, overrides, `.env`,
//! `include`, `extends`), interpolates variables, merges, validates with
//! `file:line:column` errors and normalises into a typed [`Project`] that
//! prints exactly as `docker compose config` prints it. Reads files only.
//! `PIPELINE.md` beside this crate lists the phases, one module each.
#![deny(missing_docs)]

mod canonical;
pub mod convert;
pub mod dotenv;
pub mod error;
mod extends;
mod include;
pub mod interpolate;
pub mod load;
mod merge;
pub mod model;
mod normalize;
pub mod paths;
pub mod render;
pub mod short;
pub mod units;
mod validate;
pub mod yaml;

pub use error::{Error, Result};
pub use load::{Loaded, Options, load};
pub use model::Project;
