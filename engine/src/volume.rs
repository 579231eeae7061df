//! Named volumes with the `local` driver: a directory under the state root,
//! or, with `driver_opts` `type`/`device`/`o`, a tmpfs or bind mount made
//! when the volume is used, as Docker's local driver does.
//!
//! ```text
//! volumes/<name>/_data       the content
//! volumes/<name>/meta.json   driver, options, labels, creation time
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{private_dir, write_atomic};
use crate::image::archive::rfc3339;
use crate::image::store::remove_dir;
use crate::image::unpack::{Limits, unpack_layer};

/// A volume's recorded configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// Its name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Always `local` for now.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// Driver options (`type`, `device`, `o`).
    #[serde(rename = "Options", default)]
    pub options: BTreeMap<String, String>,
    /// Labels.
    #[serde(rename = "Labels", default)]
    pub labels: BTreeMap<String, String>,
    /// Creation time.
    #[serde(rename = "CreatedAt", default)]
    pub created_at: String,
    /// Where the content lives on the host.
    #[serde(rename = "Mountpoint", default)]
    pub mountpoint: String,
}

/// The volume store.
pub struct VolumeStore {
    dir: PathBuf,
}

/// Docker's rule for volume names.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl VolumeStore {
    /// Opens (creating) the store below the state root.
    pub fn open(root: &Path) -> Result<VolumeStore> {
        let dir = root.join("volumes");
        private_dir(&dir)?;
        Ok(VolumeStore { dir })
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("meta.json")
    }

    /// Where a volume's content lives.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    fn check(name: &str) -> Result<()> {
        if valid_name(name) {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "invalid volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )))
        }
    }

    /// Creates a volume; creating an existing one with the same settings is
    /// a no-op, with other settings an error.
    pub fn create(
        &self,
        name: &str,
        driver: &str,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    ) -> Result<VolumeInfo> {
        Self::check(name)?;
        let driver = if driver.is_empty() { "local" } else { driver };
        if driver != "local" {
            return Err(Error::Conflict(format!(
                "volume driver {driver:?} is not supported (only local)"
            )));
        }
        if let Some(t) = options.get("type")
            && !matches!(t.as_str(), "tmpfs" | "none" | "bind")
            && !options.contains_key("device")
        {
            return Err(Error::Conflict(format!(
                "volume {name}: driver option type={t} needs a device"
            )));
        }
        if let Ok(existing) = self.inspect(name) {
            if existing.options == options && existing.labels == labels {
                return Ok(existing);
            }
            return Err(Error::Conflict(format!(
                "volume {name} already exists with different options or labels"
            )));
        }
        private_dir(&self.data_path(name))?;
        std::fs::set_permissions(
            self.data_path(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| Error::io(self.data_path(name), e))?;
        let info = VolumeInfo {
            name: name.to_string(),
            driver: driver.to_string(),
            options,
            labels,
            created_at: rfc3339(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            ),
            mountpoint: self.data_path(name).display().to_string(),
        };
        let bytes = serde_json::to_vec_pretty(&info).map_err(|e| Error::Conflict(e.to_string()))?;
        write_atomic(&self.meta_path(name), &bytes)?;
        Ok(info)
    }

    /// A volume's record.
    pub fn inspect(&self, name: &str) -> Result<VolumeInfo> {
        Self::check(name)?;
        let p = self.meta_path(name);
        let bytes = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Conflict(format!("no such volume: {name}"))
            } else {
                Error::io(&p, e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Store {
            path: p,
            msg: e.to_string(),
        })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<VolumeInfo>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let e = e.map_err(|e| Error::io(&self.dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(v) = self.inspect(&name) {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a volume and its content, unless `in_use` says a container
    /// uses it.
    pub fn remove(&self, name: &str, in_use: &dyn Fn(&str) -> bool) -> Result<()> {
        self.inspect(name)?;
        if in_use(name) {
            return Err(Error::Conflict(format!("remove {name}: volume is in use")));
        }
        remove_dir(&self.dir.join(name))
    }

    /// Removes unused volumes: anonymous ones, or all with `all`. Returns
    /// the names removed.
    pub fn prune(&self, all: bool, in_use: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for v in self.list()? {
            let anonymous = v.labels.contains_key("com.docker.volume.anonymous");
            if (all || anonymous) && !in_use(&v.name) {
                self.remove(&v.name, in_use)?;
                removed.push(v.name);
            }
        }
        Ok(removed)
    }

    /// Writes the volume's content as a tar archive.
    pub fn export(&self, name: &str, out: impl std::io::Write) -> Result<()> {
        self.inspect(name)?;
        let mut b = tar::Builder::new(out);
        let data = crate::archive::open_dir(&self.data_path(name))?;
        crate::archive::append_tree(
            &mut b,
            &data,
            crate::archive::Tree::Files(&|u, g| (u.into(), g.into())),
        )?;
        b.into_inner().map_err(Error::Read)?;
        Ok(())
    }

    /// Replaces the volume's content with a tar archive, unpacked with the
    /// same protections as an image layer.
    pub fn import(&self, name: &str, input: impl Read) -> Result<()> {
        self.inspect(name)?;
        let staging = self.dir.join(name).join("_import");
        let _ = remove_dir(&staging);
        private_dir(&staging)?;
        if let Err(e) = unpack_layer(input, &staging, &Limits::default()) {
            let _ = remove_dir(&staging);
            return Err(e);
        }
        let data = self.data_path(name);
        remove_dir(&data)?;
        std::fs::rename(&staging, &data).map_err(|e| Error::io(&data, e))
    }
}
