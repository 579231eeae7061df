//! `pause` and `unpause`: every process of a container frozen through the
//! cgroup freezer (v1 `freezer.state`, v2 `cgroup.freeze`), as `docker
//! pause` does. The cgroup itself is the record of a pause, so nothing that
//! rewrites the container's record (its supervisor) can lose it.

use std::path::{Path, PathBuf};

use libcontainer::container::Container;

use super::run::{ContainerRecord, find};
use crate::{Error, Result};

/// The freezer files of container `id`'s cgroup, v1 then v2, with the
/// content that means frozen.
fn freezer_files(id: &str) -> [(PathBuf, &'static str); 2] {
    [
        (
            PathBuf::from(format!("/sys/fs/cgroup/freezer/berth/{id}/freezer.state")),
            "FROZEN",
        ),
        (
            PathBuf::from(format!("/sys/fs/cgroup/berth/{id}/cgroup.freeze")),
            "1",
        ),
    ]
}

/// Whether the container's processes are frozen.
pub fn is_paused(record: &ContainerRecord) -> bool {
    freezer_files(&record.id)
        .iter()
        .any(|(path, frozen)| std::fs::read_to_string(path).is_ok_and(|s| s.trim() == *frozen))
}

fn runtime_state(dir: &Path, record: &ContainerRecord) -> Result<Container> {
    Container::load(super::run::state_root(dir, &record.id).join(&record.id))
        .map_err(|e| Error::Conflict(format!("container {}: {e}", record.name)))
}

/// Freezes every process of the running container `name`.
pub fn pause(root: &Path, name: &str) -> Result<()> {
    let (dir, record) = find(root, name)?;
    if super::shim::live_status(&record) != "running" {
        return Err(Error::Conflict(format!("container {name} is not running")));
    }
    if is_paused(&record) {
        return Err(Error::Conflict(format!(
            "container {name} is already paused"
        )));
    }
    runtime_state(&dir, &record)?
        .pause()
        .map_err(|e| Error::Conflict(format!("pausing {name}: {e}")))?;
    crate::events::container(root, "pause", &record, &[]);
    Ok(())
}

/// Thaws the paused container `name`.
pub fn unpause(root: &Path, name: &str) -> Result<()> {
    let (dir, record) = find(root, name)?;
    if !is_paused(&record) {
        return Err(Error::Conflict(format!("container {name} is not paused")));
    }
    resume(&dir, &record)?;
    crate::events::container(root, "unpause", &record, &[]);
    Ok(())
}

/// Thaws the container of `record` (in `dir`) if it is frozen; a signal
/// sent to it takes effect only then.
pub fn resume(dir: &Path, record: &ContainerRecord) -> Result<()> {
    if !is_paused(record) {
        return Ok(());
    }
    let name = &record.name;
    let mut c = runtime_state(dir, record)?;
    if c.status() == libcontainer::container::ContainerStatus::Paused {
        return match c.resume() {
            // Thawed, it can take a pending signal and end before the
            // runtime records it running, and its supervisor then removes
            // that record: what was asked is done.
            Err(_) if !c.root.exists() => Ok(()),
            r => r.map_err(|e| Error::Conflict(format!("unpausing {name}: {e}"))),
        };
    }
    // Frozen behind the runtime's back (its state was rewritten): thaw the
    // cgroup directly.
    for (path, _) in freezer_files(&record.id) {
        if path.exists() {
            let thawed = if path.ends_with("freezer.state") {
                "THAWED"
            } else {
                "0"
            };
            std::fs::write(&path, thawed).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}
