//! Images: digests, references, the store, safe layer unpacking, and the
//! archive formats `load` and `import` read.

pub mod archive;
pub mod config;
pub mod digest;
pub mod init;
pub mod reference;
pub mod registry;
pub mod save;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use reference::Reference;
pub use store::{ImageRecord, ImageStore, ImageSummary};
