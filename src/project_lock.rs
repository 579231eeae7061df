//! One lock per project: two `berth` commands on the same project are
//! serialised, never interleaved. The lock file goes with `down`, so a
//! project that is down leaves nothing behind; a waiter that wakes up
//! holding a lock on a removed file takes the lock again on the new one.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rustix::fs::{FlockOperation, flock};

/// An exclusive lock on one project, held until dropped.
pub struct ProjectLock {
    path: PathBuf,
    _file: File,
}

impl ProjectLock {
    /// Waits for and takes `project`'s lock under `root`.
    pub fn acquire(root: &Path, project: &str) -> anyhow::Result<ProjectLock> {
        let dir = root.join("locks");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{project}.lock"));
        loop {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
                eprintln!("waiting for another berth command on project {project}");
                flock(&file, FlockOperation::LockExclusive)
                    .with_context(|| format!("cannot lock {}", path.display()))?;
            }
            let held = file.metadata()?;
            let same = std::fs::metadata(&path)
                .is_ok_and(|m| m.ino() == held.ino() && m.dev() == held.dev());
            if same {
                return Ok(ProjectLock { path, _file: file });
            }
        }
    }

    /// Removes the lock file while still holding the lock (after `down`).
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
