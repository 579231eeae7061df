//! The one error type of the Compose model: every variant names the object at
//! fault, and most name the file, line, column and field path too.

use std::io;
use std::path::PathBuf;

use crate::yaml::Mark;

/// Anything that can go wrong while loading a Compose project.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not valid YAML.
    #[error("{mark}: {msg}")]
    Syntax {
        /// Where the parser stopped.
        mark: Mark,
        /// What it found.
        msg: String,
    },
    /// A value is not what the Compose Specification allows there.
    #[error("{}", located(mark, path, msg))]
    Invalid {
        /// Where the value is written.
        mark: Mark,
        /// The field's path, like `services.web.ports[1]`.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A file could not be read.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (not a `source`: the message already says it).
        cause: io::Error,
    },
    /// A whole-project problem: no compose file, a dependency cycle …
    #[error("{0}")]
    Project(String),
}

fn located(mark: &Mark, path: &str, msg: &str) -> String {
    let mut out = String::new();
    if !mark.is_synthetic() {
        out.push_str(&mark.to_string());
        out.push_str(": ");
    }
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(msg);
    out
}

impl Error {
    /// A field error at `mark`.
    pub fn invalid(mark: &Mark, path: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Invalid {
            mark: *mark,
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// Reading `path` failed.
    pub fn io(path: impl Into<PathBuf>, cause: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads a whole file, naming it in the error.
pub fn read_to_string(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}
