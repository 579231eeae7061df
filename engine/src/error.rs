//! The engine's error type: each variant names the object at fault.

use std::io;
use std::path::PathBuf;

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// Reading an input stream (archive, layer) failed.
    #[error("reading input: {0}")]
    Read(io::Error),
    /// A layer is malformed or hostile.
    #[error("{0}")]
    Layer(String),
    /// An archive given to `load` or `import` is malformed.
    #[error("{0}")]
    Archive(String),
    /// A digest string is not a valid sha256 digest.
    #[error("invalid digest {0:?}")]
    Digest(String),
    /// Content does not match the digest it was announced with.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified.
        what: String,
        /// The announced digest.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// An image reference is malformed.
    #[error("invalid reference format {reference:?}: {why}")]
    Reference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        why: String,
    },
    /// A registry refused or failed a request.
    #[error("{registry}: {msg}")]
    Registry {
        /// The registry (host and port).
        registry: String,
        /// What went wrong.
        msg: String,
    },

    /// No image matches.
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// The store's own records are unreadable.
    #[error("image store {}: {msg}", path.display())]
    Store {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An image is in use or ambiguous and cannot be removed.
    #[error("{0}")]
    Conflict(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, cause: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
