//! The anonymous volumes of a container that is being recreated, kept for
//! the container that replaces it (Compose's behaviour: data in a `VOLUME`
//! outlives a configuration change). Written before the old container goes
//! and read when its successor is created, so that a command killed in
//! between loses nothing: the next one still finds them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

fn path(root: &Path, name: &str) -> PathBuf {
    root.join("succession").join(format!("{name}.json"))
}

/// Records that the container to be created as `name` inherits `volumes`
/// (container path → volume name).
pub fn bequeath(root: &Path, name: &str, volumes: &BTreeMap<String, String>) -> Result<()> {
    let p = path(root, name);
    if volumes.is_empty() {
        return Ok(());
    }
    let dir = p.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let bytes = serde_json::to_vec(volumes).expect("a map of strings serialises");
    crate::fsutil::write_atomic(&p, &bytes)
}

/// What the container to be created as `name` inherits.
pub fn inheritance(root: &Path, name: &str) -> BTreeMap<String, String> {
    std::fs::read(path(root, name))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Forgets `name`'s inheritance: its successor exists, or none will.
pub fn settle(root: &Path, name: &str) {
    let _ = std::fs::remove_file(path(root, name));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inheritance_is_kept_until_settled() {
        let root = tempfile::tempdir().unwrap();
        let volumes = BTreeMap::from([("/data".to_string(), "abc".to_string())]);
        bequeath(root.path(), "p-web-1", &volumes).unwrap();
        assert_eq!(inheritance(root.path(), "p-web-1"), volumes);
        assert!(inheritance(root.path(), "p-web-2").is_empty());
        settle(root.path(), "p-web-1");
        assert!(inheritance(root.path(), "p-web-1").is_empty());
    }
}
