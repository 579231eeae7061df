//! berth-engine: the embedded container engine.
//!
//! So far: the image store ([`image::ImageStore`]): content-addressed blobs,
//! layers unpacked once each and safely, references, `load` of docker-save
//! and OCI archives, `import` of root filesystem tarballs; overlay root
//! filesystems ([`rootfs::ContainerFs`]); named volumes
//! ([`volume::VolumeStore`]). The runtime follows (see the engine issues).
#![deny(missing_docs)]

pub mod archive;
pub mod error;
pub mod events;
pub mod fsutil;
pub mod image;
pub mod rootfs;
pub mod runtime;
pub mod volume;

pub use error::{Error, Result};
