//! `exec`: a new process in a running container, joining all its
//! namespaces and its cgroup through `libcontainer`'s tenant builder, with
//! the caller's standard streams. The user is resolved in the container's
//! own root.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use super::run::{ContainerRecord, find, wait_blocking};
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
    /// Run on a terminal joined to the caller's (`-it`).
    pub tty: bool,
}

/// Runs `req` in container `name` and returns its exit code.
pub fn exec(root: &Path, name: &str, req: &ExecRequest) -> Result<i32> {
    let (dir, record) = find(root, name)?;
    if req.tty {
        let console = super::tty::ConsoleSocket::new()?;
        let pid = start(&dir, &record, req, None, Some(&console.path()))?;
        let master = console.receive()?;
        return super::tty::relay(master, pid);
    }
    let pid = spawn(&dir, &record, req, None)?;
    wait_blocking(pid)
}

/// Starts `req` in the container of `record` (in `dir`) and returns the pid
/// of the new process, a child of the caller. With `output`, its stdout and
/// stderr go there; otherwise it inherits the caller's.
pub fn spawn(
    dir: &Path,
    record: &ContainerRecord,
    req: &ExecRequest,
    output: Option<OwnedFd>,
) -> Result<i32> {
    start(dir, record, req, output, None)
}

/// [`spawn`], on a terminal whose master goes to `console` when given.
fn start(
    dir: &Path,
    record: &ContainerRecord,
    req: &ExecRequest,
    output: Option<OwnedFd>,
    console: Option<&Path>,
) -> Result<i32> {
    let name = &record.name;
    if record.status != "running" || record.pid.is_none() {
        return Err(Error::Conflict(format!("container {name} is not running")));
    }
    if super::freeze::is_paused(record) {
        return Err(Error::Conflict(format!(
            "container {name} is paused, unpause the container before exec"
        )));
    }
    if req.args.is_empty() {
        return Err(Error::Conflict("exec needs a command".into()));
    }
    let lc =
        |e: libcontainer::error::LibcontainerError| Error::Conflict(format!("exec in {name}: {e}"));
    let mut env: HashMap<String, String> = req
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    // On a terminal, as Docker's `exec -t`.
    if console.is_some() {
        env.entry("TERM".into()).or_insert_with(|| "xterm".into());
    }
    if let Some(root) = dir.parent().and_then(Path::parent) {
        super::seccomp::cache::use_root(root);
    }
    let mut builder = ContainerBuilder::new(record.id.clone(), SyscallType::Linux)
        .with_root_path(super::run::state_root(dir, &record.id))
        .map_err(lc)?
        .with_console_socket(console);
    if let Some(out) = output {
        let err = out
            .try_clone()
            .map_err(|e| Error::Conflict(format!("exec in {name}: {e}")))?;
        builder = builder.with_stdout(out).with_stderr(err);
    }
    // The exec'd process gets exactly the init's no_new_privs (the tenant
    // builder would otherwise set it).
    let no_new_privs =
        oci_spec::runtime::Spec::load(super::run::bundle_dir(dir).join("config.json"))
            .ok()
            .and_then(|s| s.process().as_ref().and_then(|p| p.no_new_privileges()))
            == Some(true);
    let mut builder = builder
        .as_tenant()
        .with_no_new_privs(no_new_privs)
        .with_container_args(req.args.clone())
        .with_env(env)
        .with_cwd(
            req.workdir
                .clone()
                .map(super::spec::check_workdir)
                .transpose()?,
        )
        .with_terminal(console.is_some())
        .with_detach(console.is_some());
    if let Some(u) = &req.user {
        let (uid, gid, extra) = user::resolve(&crate::rootfs::ContainerFs::of(dir).merged, u)?;
        builder = builder
            .with_user(Some(uid))
            .with_group(Some(gid))
            .with_additional_gids(extra);
    }
    let pid = builder.build().map_err(lc)?;
    Ok(pid.as_raw())
}
