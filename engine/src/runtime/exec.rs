//! `exec`: a new process in a running container, joining all its
//! namespaces and its cgroup through `libcontainer`'s tenant builder, with
//! the caller's standard streams. The user is resolved in the container's
//! own root.

use std::collections::HashMap;
use std::path::Path;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use super::run::{find, wait_blocking};
use super::user;
use crate::error::{Error, Result};

/// What to run in the container.
#[derive(Clone, Debug, Default)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// Extra `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// Working directory (default: the container's).
    pub workdir: Option<String>,
    /// User (name or uid, `:group`), resolved in the container.
    pub user: Option<String>,
}

/// Runs `req` in container `name` and returns its exit code.
pub fn exec(root: &Path, name: &str, req: &ExecRequest) -> Result<i32> {
    let (dir, record) = find(root, name)?;
    if record.status != "running" || record.pid.is_none() {
        return Err(Error::Conflict(format!("container {name} is not running")));
    }
    if req.args.is_empty() {
        return Err(Error::Conflict("exec needs a command".into()));
    }
    let lc =
        |e: libcontainer::error::LibcontainerError| Error::Conflict(format!("exec in {name}: {e}"));
    let env: HashMap<String, String> = req
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    let mut builder = ContainerBuilder::new(record.id.clone(), SyscallType::Linux)
        .with_root_path(dir.join("state"))
        .map_err(lc)?
        .as_tenant()
        .with_container_args(req.args.clone())
        .with_env(env)
        .with_cwd(req.workdir.clone())
        .with_detach(false);
    if let Some(u) = &req.user {
        let (uid, gid, extra) = user::resolve(&dir.join("fs/merged"), u)?;
        builder = builder
            .with_user(Some(uid))
            .with_group(Some(gid))
            .with_additional_gids(extra);
    }
    let pid = builder.build().map_err(lc)?;
    wait_blocking(pid.as_raw())
}
