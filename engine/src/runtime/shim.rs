//! The per-container supervisor of detached containers.
//!
//! `container run -d` prepares the container, then starts `berth __shim`, a
//! fresh, single-threaded process in its own process group that outlives
//! the CLI. The shim creates and starts the container through
//! `libcontainer` (so it is the init's parent and reaper), reports
//! `started <pid>` or `error: …` on its standard output (a pipe the CLI
//! reads), then pumps the container's stdout and stderr into a json-file log
//! (Docker's format) while waiting on a pidfd for the init to exit, and
//! records the exit code. It never spawns a thread: the single `poll` loop
//! keeps it small, and keeps `libcontainer`'s clone safe.
//!
//! Signals to a container go through a pidfd opened on the recorded init
//! pid, checked against the recorded start time, so a recycled pid is never
//! hit.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions, pidfd_open, pidfd_send_signal};

use super::run::{
    Prepared, Streams, containers_dir, execute, find, load_record, process_start, remove,
    save_record,
};
use crate::error::{Error, Result};
use crate::image::archive::rfc3339;
use crate::rootfs::ContainerFs;

/// RFC 3339 with nanoseconds, as Docker's json-file logs write it.
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let base = rfc3339(now.as_secs());
    format!("{}.{:09}Z", base.trim_end_matches('Z'), now.subsec_nanos())
}

/// Splits a stream into lines and appends them to the log file.
struct LineLog {
    stream: &'static str,
    pending: Vec<u8>,
}

impl LineLog {
    fn feed(&mut self, data: &[u8], out: &mut impl Write) -> std::io::Result<()> {
        self.pending.extend_from_slice(data);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            self.write(&line, out)?;
        }
        // Docker splits long lines at 16 KiB.
        while self.pending.len() >= 16 << 10 {
            let chunk: Vec<u8> = self.pending.drain(..16 << 10).collect();
            self.write(&chunk, out)?;
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.write(&rest, out)?;
        }
        Ok(())
    }

    fn write(&self, line: &[u8], out: &mut impl Write) -> std::io::Result<()> {
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": self.stream,
            "time": timestamp(),
        });
        writeln!(out, "{entry}")
    }
}

/// Reads whatever is available on `fd` (non-blocking); false at end of file.
fn pump(fd: &OwnedFd, log: &mut LineLog, out: &mut impl Write) -> bool {
    // Small: the supervisor's stack pages stay its own for its whole
    // life; a busy stream just takes more turns of the loop.
    let mut buf = [0u8; 8192];
    match rustix::io::read(fd, &mut buf) {
        Ok(0) => false,
        Ok(n) => {
            let _ = log.feed(&buf[..n], out);
            true
        }
        Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => true,
        Err(_) => false,
    }
}

/// `--restart`: when the supervisor starts a container again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never.
    No,
    /// Always, unless stopped by the user.
    Always,
    /// After a non-zero exit, at most this many times (unbounded when `None`).
    OnFailure(Option<u32>),
    /// Always, unless stopped by the user (which also holds across reboots).
    UnlessStopped,
}

impl RestartPolicy {
    /// Parses `no`, `always`, `on-failure[:N]`, `unless-stopped` (unknown → `no`).
    pub fn parse(s: &str) -> RestartPolicy {
        match s.split_once(':') {
            Some(("on-failure", n)) => RestartPolicy::OnFailure(n.parse().ok()),
            _ => match s {
                "always" => RestartPolicy::Always,
                "on-failure" => RestartPolicy::OnFailure(None),
                "unless-stopped" => RestartPolicy::UnlessStopped,
                _ => RestartPolicy::No,
            },
        }
    }

    /// Checks `--restart` syntax.
    pub fn validate(s: &str) -> Result<()> {
        let ok = matches!(s, "" | "no" | "always" | "on-failure" | "unless-stopped")
            || s.strip_prefix("on-failure:")
                .is_some_and(|n| n.parse::<u32>().is_ok());
        if ok {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "invalid restart policy {s:?}: use no, always, on-failure[:max-retries] or unless-stopped"
            )))
        }
    }

    /// Whether to start again after exiting with `code`. Never after an
    /// explicit stop or kill.
    pub fn restarts(self, code: i32, restarts_so_far: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure(max) => code != 0 && max.is_none_or(|m| restarts_so_far < m),
        }
    }
}

/// What a supervisor reports when another one already runs the container.
pub const ALREADY_SUPERVISED: &str = "already supervised";

/// The supervisor's body: runs container `id` of `root` to its end,
/// reporting readiness on `ready`. Returns the process exit code.
pub fn supervise(root: &Path, id: &str, ready: OwnedFd, net: &mut dyn super::run::Network) -> i32 {
    let mut ready = Some(std::fs::File::from(ready));
    let report = |ready: &mut Option<std::fs::File>, msg: &str| {
        if let Some(mut f) = ready.take() {
            let _ = writeln!(f, "{msg}");
        }
    };
    let dir = containers_dir(root).join(id);
    // One supervisor per container, for its whole life: a second one (from
    // an `up` rerun after the first was killed mid-start) would reset the
    // runtime state under the first.
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("supervisor.lock"));
    let _lock = match lock {
        Ok(f)
            if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_ok() =>
        {
            f
        }
        Ok(_) => {
            report(&mut ready, ALREADY_SUPERVISED);
            return 0;
        }
        Err(e) => {
            report(&mut ready, &format!("error: {}: {e}", dir.display()));
            return 1;
        }
    };
    let result = (|| -> Result<i32> {
        let record = load_record(&dir)?;
        let fs = ContainerFs::create(&dir)?;
        if !is_mounted(&fs.merged) {
            fs.mount(&record.layers, record.userns.as_ref(), record.auto_remove)?;
        }
        let mut p = Prepared {
            dir: dir.clone(),
            fs,
            record,
            netns: None,
        };
        p.record.shim_pid = Some(rustix::process::getpid().as_raw_nonzero().get());
        p.record.stopped_by_user = false;
        p.save()?;
        let log_path = super::logs::log_path(&dir);
        let mut log = super::logs::LogWriter::open(&dir, p.record.log.clone())
            .map_err(|e| Error::io(&log_path, e))?;
        let mut backoff = Duration::from_millis(100);
        let code = loop {
            let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| Error::Conflict(format!("pipe: {e}")))?;
            let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| Error::Conflict(format!("pipe: {e}")))?;
            let null =
                rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| Error::io("/dev/null", e.into()))?;
            for fd in [&out_r, &err_r] {
                let flags =
                    rustix::fs::fcntl_getfl(fd).map_err(|e| Error::Conflict(e.to_string()))?;
                rustix::fs::fcntl_setfl(fd, flags | OFlags::NONBLOCK)
                    .map_err(|e| Error::Conflict(e.to_string()))?;
            }
            let mut out_log = LineLog {
                stream: "stdout",
                pending: Vec::new(),
            };
            let mut err_log = LineLog {
                stream: "stderr",
                pending: Vec::new(),
            };
            // A terminal's output is all stdout, as Docker logs it.
            let tty = p.record.tty;
            let console = if tty {
                Some(super::tty::ConsoleSocket::new()?)
            } else {
                None
            };
            // `stdin_open` without a terminal: a pipe whose write end the
            // hub below serves to `attach` clients.
            let (stdin, mut stdin_w) = if p.record.stdin_open && !tty {
                let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                    .map_err(|e| Error::Conflict(format!("pipe: {e}")))?;
                (r, Some(w))
            } else {
                (null, None)
            };
            let streams = Streams {
                stdout: (!tty).then_some(out_w),
                stderr: (!tty).then_some(err_w),
                stdin: (!tty).then_some(stdin),
                console: console.as_ref().map(super::tty::ConsoleSocket::path),
            };
            let health_dir = p.dir.clone();
            // Only the first run's first attachment: a restart's output
            // goes to whoever is attached by then.
            let awaits_attach = std::mem::take(&mut p.record.awaits_attach);
            let health_cfg = p.record.health.clone();
            let mut waiter = |pid: i32| -> Result<i32> {
                // Starting the container (runtime spec, netlink, seccomp
                // filter) used memory the supervisor will not need again:
                // give it back, since a supervisor lives as long as its
                // container.
                // SAFETY: malloc_trim only releases free heap memory.
                unsafe {
                    libc::malloc_trim(0);
                }
                // The tenant process of a check needs the record that says
                // "running", as saved just before this call.
                let mut checker = health_cfg
                    .clone()
                    .map(|cfg| super::health::Checker::new(cfg, &health_dir));
                let running = load_record(&health_dir)?;
                let pid =
                    Pid::from_raw(pid).ok_or_else(|| Error::Conflict("invalid pid".into()))?;
                let pidfd = pidfd_open(pid, PidfdFlags::empty())
                    .map_err(|e| Error::Conflict(format!("pidfd_open: {e}")))?;
                let (mut out_open, mut err_open) = (!tty, !tty);
                let mut hub = match (&console, stdin_w.take()) {
                    (Some(c), _) => Some(super::attach::Hub::new(
                        &health_dir,
                        c.receive()?,
                        awaits_attach,
                    )?),
                    (None, Some(w)) => Some(super::attach::Hub::for_stdin(&health_dir, w)?),
                    (None, None) => None,
                };
                // Started once an attachment can be taken.
                report(&mut ready, &format!("started {pid}"));
                loop {
                    let mut fds = vec![PollFd::new(&pidfd, PollFlags::IN)];
                    if out_open {
                        fds.push(PollFd::new(&out_r, PollFlags::IN));
                    }
                    if err_open {
                        fds.push(PollFd::new(&err_r, PollFlags::IN));
                    }
                    if let Some(fd) = checker.as_ref().and_then(|c| c.pidfd()) {
                        fds.push(PollFd::new(fd, PollFlags::IN));
                    }
                    let hub_at = fds.len();
                    if let Some(h) = &hub {
                        fds.extend(h.poll_fds());
                    }
                    let timeout = checker.as_ref().map(|c| {
                        let t = c.timeout();
                        rustix::fs::Timespec {
                            tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
                            tv_nsec: i64::from(t.subsec_nanos()),
                        }
                    });
                    match poll(&mut fds, timeout.as_ref()) {
                        Ok(_) => {}
                        Err(e) if e == rustix::io::Errno::INTR => continue,
                        Err(e) => return Err(Error::Conflict(format!("poll: {e}"))),
                    }
                    let exited = !fds[0].revents().is_empty();
                    let hub_ready = hub
                        .as_ref()
                        .map(|_| super::attach::Hub::ready(&fds[hub_at..]));
                    drop(fds);
                    if let (Some(h), Some(ready)) = (hub.as_mut(), hub_ready.as_ref()) {
                        let mut to_log = |b: &[u8]| {
                            let _ = out_log.feed(b, &mut log);
                        };
                        h.service(ready, &mut to_log);
                    }
                    if out_open {
                        out_open = pump(&out_r, &mut out_log, &mut log);
                    }
                    if err_open {
                        err_open = pump(&err_r, &mut err_log, &mut log);
                    }
                    // A frozen container cannot answer: its checks wait
                    // for `unpause`, as Docker's do.
                    if let Some(c) = checker.as_mut()
                        && !exited
                        && !super::freeze::is_paused(&running)
                    {
                        c.tick(&running);
                    }
                    if exited {
                        drop(checker.take());
                        let status = rustix::process::waitpid(Some(pid), WaitOptions::empty())
                            .map_err(|e| Error::Conflict(format!("waitpid: {e}")))?
                            .map(|(_, s)| s);
                        // What the last processes wrote is still in the pipes.
                        while out_open && pump(&out_r, &mut out_log, &mut log) {
                            if !has_data(&out_r) {
                                break;
                            }
                        }
                        while err_open && pump(&err_r, &mut err_log, &mut log) {
                            if !has_data(&err_r) {
                                break;
                            }
                        }
                        if let Some(h) = hub.as_mut() {
                            h.finish(&mut |b: &[u8]| {
                                let _ = out_log.feed(b, &mut log);
                            });
                        }
                        drop(hub.take());
                        let _ = out_log.flush(&mut log);
                        let _ = err_log.flush(&mut log);
                        return Ok(match status {
                            Some(s) => match (s.exit_status(), s.terminating_signal()) {
                                (Some(c), _) => c,
                                (None, Some(sig)) => 128 + sig,
                                _ => 255,
                            },
                            None => 255,
                        });
                    }
                }
            };
            let started_at = std::time::Instant::now();
            let code = execute(&mut p, streams, &mut waiter, net)?;
            let policy = RestartPolicy::parse(&p.record.restart);
            if !policy.restarts(code, p.record.restart_count, p.record.stopped_by_user) {
                break code;
            }
            // Backoff doubles up to a minute, and resets once a run lasted 10 s.
            if started_at.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(100);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(60));
            // A stop that arrived during the backoff wins.
            if load_record(&p.dir).is_ok_and(|r| r.stopped_by_user) {
                break code;
            }
            p.record.restart_count += 1;
            p.save()?;
        };
        log.sync();
        p.fs.unmount()?;
        if p.record.auto_remove {
            remove(root, &p.dir, &p.record, true)?;
        }
        Ok(code)
    })();
    match result {
        Ok(_) => 0,
        Err(e) => {
            report(&mut ready, &format!("error: {e}"));
            if let Ok(mut r) = load_record(&dir)
                && r.status != "exited"
            {
                r.status = "exited".into();
                r.exit_code = Some(r.exit_code.unwrap_or(128));
                r.pid = None;
                let _ = save_record(&dir, &r);
            }
            1
        }
    }
}

fn has_data(fd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let zero = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&zero)).is_ok_and(|n| n > 0)
}

fn is_mounted(path: &Path) -> bool {
    // A mount point sits on another device than its parent directory; this
    // costs two stats where reading the mount table grows with every
    // container.
    let dev = |p: &Path| rustix::fs::stat(p).map(|s| s.st_dev).ok();
    match (dev(path), path.parent().and_then(dev)) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

/// Opens a pidfd on the container's recorded init, if that very process
/// still runs.
fn init_pidfd(record: &super::run::ContainerRecord) -> Option<OwnedFd> {
    let pid = record.pid?;
    let fd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    // The pid is the recorded process only if its start time matches.
    (process_start(pid) == record.pid_start).then_some(fd)
}

/// Whether `fd` turns readable (a pidfd: its process exited) within
/// `timeout`; a signal does not cut the wait short.
fn wait_readable(fd: &impl AsFd, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let t = rustix::fs::Timespec {
            tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match poll(&mut fds, Some(&t)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Waits until the container's record says it exited (the supervisor wrote
/// the exit code), or its supervisor is gone without saying so.
pub fn wait_exited(dir: &Path, timeout: Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + timeout;
    let mut supervisor = None;
    loop {
        match load_record(dir) {
            Ok(r) if r.status == "exited" => return Some(r.exit_code.unwrap_or(255)),
            Err(_) => return None,
            Ok(r) if supervisor.is_none() => supervisor = Some(supervisor_pidfd(&r)),
            _ => {}
        }
        let now = std::time::Instant::now();
        if now > deadline {
            return None;
        }
        let tick = Duration::from_millis(20).min(deadline - now);
        match &supervisor {
            // Its exit, seen at once, follows its last record.
            Some(Some(fd)) if wait_readable(fd, tick) => {
                return load_record(dir)
                    .ok()
                    .filter(|r| r.status == "exited")
                    .map(|r| r.exit_code.unwrap_or(255));
            }
            Some(Some(_)) => {}
            _ => std::thread::sleep(tick),
        }
    }
}

/// `stop`: the stop signal, `grace` to exit, then SIGKILL. Returns once the
/// supervisor has recorded the exit.
pub fn stop(root: &Path, name: &str, signal: Signal, grace: Duration) -> Result<()> {
    let (dir, mut record) = find(root, name)?;
    if record.status != "running" {
        return Ok(());
    }
    record.stopped_by_user = true;
    save_record(&dir, &record)?;
    if let Some(fd) = init_pidfd(&record) {
        let _ = pidfd_send_signal(&fd, signal);
        // A paused container handles the signal once thawed.
        super::freeze::resume(&dir, &record)?;
        if !wait_readable(&fd, grace) {
            let _ = pidfd_send_signal(&fd, Signal::KILL);
            wait_readable(&fd, Duration::from_secs(10));
        }
    }
    let wait = if supervisor_alive(&record) {
        Duration::from_secs(10)
    } else {
        Duration::ZERO
    };
    let stopped = wait_exited(&dir, wait);
    crate::events::container(root, "stop", &record, &[]);
    if stopped.is_none() {
        // No supervisor recorded the exit (it was killed): record it here.
        let mut r = load_record(&dir)?;
        if r.status == "running" {
            r.status = "exited".into();
            r.exit_code = Some(137);
            r.pid = None;
            save_record(&dir, &r)?;
        }
    }
    Ok(())
}

/// Whether the container's supervisor process still runs.
pub fn supervisor_alive(record: &super::run::ContainerRecord) -> bool {
    record.shim_pid.is_some_and(is_supervisor_of(record))
}

fn is_supervisor_of(record: &super::run::ContainerRecord) -> impl Fn(i32) -> bool + '_ {
    |pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            let text = String::from_utf8_lossy(&c);
            text.contains("__shim") && text.contains(&record.id)
        })
    }
}

/// A pidfd of the container's supervisor, if it runs: its exit wakes a
/// waiter at once, where polling its record would cost each `stop` and
/// `rm` a sleep.
fn supervisor_pidfd(record: &super::run::ContainerRecord) -> Option<OwnedFd> {
    let pid = record.shim_pid?;
    let fd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    // Checked after opening: the pidfd then names this supervisor.
    is_supervisor_of(record)(pid).then_some(fd)
}

/// Waits for the supervisor to finish its own clean-up after the exit it
/// recorded, killing it after `timeout`: removing the container's directory
/// under a live supervisor would race with its last writes.
pub fn wait_supervisor_gone(record: &super::run::ContainerRecord, timeout: Duration) {
    if record.shim_pid == Some(rustix::process::getpid().as_raw_nonzero().get()) {
        return;
    }
    let Some(fd) = supervisor_pidfd(record) else {
        return;
    };
    if !wait_readable(&fd, timeout) {
        let _ = pidfd_send_signal(&fd, Signal::KILL);
        wait_readable(&fd, Duration::from_secs(1));
    }
}

/// `kill`: a signal, nothing else.
pub fn kill(root: &Path, name: &str, signal: Signal) -> Result<()> {
    let (dir, mut record) = find(root, name)?;
    let fd = init_pidfd(&record)
        .ok_or_else(|| Error::Conflict(format!("container {name} is not running")))?;
    record.stopped_by_user = true;
    save_record(&dir, &record)?;
    pidfd_send_signal(&fd, signal)
        .map_err(|e| Error::Conflict(format!("signalling {name}: {e}")))?;
    crate::events::container(root, "kill", &record, &[("signal", format!("{signal:?}"))]);
    if signal == Signal::KILL {
        // SIGKILL takes a frozen process only once it is thawed.
        super::freeze::resume(&dir, &record)?;
    }
    Ok(())
}

/// [`live_status`] with the health of a running container, as `docker ps`
/// shows it: `running (healthy)`, `running (health: starting)`.
pub fn shown_status(dir: &Path, record: &super::run::ContainerRecord) -> String {
    let status = live_status(record);
    if status != "running" {
        return status;
    }
    match super::health::load(dir) {
        Some(h) if h.status == "starting" => format!("{status} (health: starting)"),
        Some(h) => format!("{status} ({})", h.status),
        None => status,
    }
}

/// Whether the container's init still runs, frozen or not: it must be
/// stopped before it is removed, and it counts as up for `ps`.
pub fn is_up(record: &super::run::ContainerRecord) -> bool {
    matches!(live_status(record).as_str(), "running" | "paused")
}

/// The container's status as `ps` shows it, checking that a "running"
/// container's init really still runs.
pub fn live_status(record: &super::run::ContainerRecord) -> String {
    match record.status.as_str() {
        "running" if init_pidfd(record).is_none() => "exited (supervisor lost)".into(),
        "running" if super::freeze::is_paused(record) => "paused".into(),
        "running" => "running".into(),
        "exited" => format!("exited ({})", record.exit_code.unwrap_or(0)),
        other => other.to_string(),
    }
}
