//! berth-engine: the embedded container engine.
//!
//! So far: the image store ([`image::ImageStore`]): content-addressed blobs,
//! layers unpacked once each and safely, references, `load` of docker-save
//! and OCI archives, `import` of root filesystem tarballs. Root filesystems,
//! volumes and the runtime follow (see the engine issues).
#![deny(missing_docs)]

pub mod error;
pub mod fsutil;
pub mod image;

pub use error::{Error, Result};
