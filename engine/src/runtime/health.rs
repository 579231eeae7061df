//! Healthchecks, as Docker runs them: the test runs in the container every
//! `interval` (every `start_interval` during `start_period`, where failures
//! do not count), each run bounded by `timeout`; the first success makes the
//! container healthy, `retries` failures in a row unhealthy. The supervisor
//! drives a [`Checker`] from its poll loop; the state lives in
//! `health.json` beside the record, so `ps` and `up` read it without
//! touching the record the supervisor owns.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions, pidfd_open, pidfd_send_signal};
use serde::{Deserialize, Serialize};

use super::exec::{ExecRequest, spawn};
use super::run::ContainerRecord;
use crate::fsutil::write_replace;

/// A container's healthcheck, with Docker's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// The command line to run (`CMD-SHELL` already turned into `sh -c`).
    pub test: Vec<String>,
    /// Between checks, in milliseconds.
    pub interval_ms: u64,
    /// How long one check may take.
    pub timeout_ms: u64,
    /// Failures in a row that make the container unhealthy.
    pub retries: u64,
    /// Grace period after start in which failures do not count.
    pub start_period_ms: u64,
    /// Between checks during the grace period.
    pub start_interval_ms: u64,
}

impl HealthConfig {
    /// From Compose's or an image's `test` and durations (zero: Docker's
    /// default). `None` when the test is empty or `NONE`.
    pub fn new(
        test: &[String],
        interval: Duration,
        timeout: Duration,
        retries: u64,
        start_period: Duration,
        start_interval: Duration,
    ) -> Option<HealthConfig> {
        let test = match test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
            }
            _ => return None,
        };
        let ms = |d: Duration, default: u64| match d.as_millis() {
            0 => default,
            n => u64::try_from(n).unwrap_or(u64::MAX),
        };
        Some(HealthConfig {
            test,
            interval_ms: ms(interval, 30_000),
            timeout_ms: ms(timeout, 30_000),
            retries: if retries == 0 { 3 } else { retries },
            start_period_ms: ms(start_period, 0),
            start_interval_ms: ms(start_interval, 5_000),
        })
    }
}

/// One check's outcome, as `docker inspect` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthLog {
    /// Its exit code (-1: it could not run or timed out).
    pub exit_code: i32,
    /// The first 4 KiB of its output.
    pub output: String,
}

/// `starting`, `healthy` or `unhealthy`, with the latest checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// The status.
    pub status: String,
    /// Failures in a row.
    pub failing_streak: u64,
    /// The last five checks, oldest first.
    pub log: Vec<HealthLog>,
}

const STATE_FILE: &str = "health.json";
const OUTPUT_LIMIT: usize = 4096;

/// The health of the container in `dir`, if it has a healthcheck.
pub fn load(dir: &Path) -> Option<HealthState> {
    let text = std::fs::read(dir.join(STATE_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// A check in flight.
struct Running {
    pid: i32,
    pidfd: OwnedFd,
    output: OwnedFd,
    deadline: Instant,
}

/// Runs one container's checks; owned by its supervisor.
pub struct Checker {
    cfg: HealthConfig,
    dir: PathBuf,
    started: Instant,
    next: Instant,
    running: Option<Running>,
    state: HealthState,
}

impl Checker {
    /// A container just started: `starting`, first check one interval on.
    pub fn new(cfg: HealthConfig, dir: &Path) -> Checker {
        let now = Instant::now();
        let mut c = Checker {
            started: now,
            next: now,
            running: None,
            state: HealthState {
                status: "starting".into(),
                ..HealthState::default()
            },
            dir: dir.to_path_buf(),
            cfg,
        };
        c.next = now + c.period();
        c.save();
        c
    }

    fn in_start_period(&self) -> bool {
        self.started.elapsed() < Duration::from_millis(self.cfg.start_period_ms)
    }

    fn period(&self) -> Duration {
        Duration::from_millis(if self.in_start_period() {
            self.cfg.start_interval_ms
        } else {
            self.cfg.interval_ms
        })
    }

    fn save(&self) {
        if let Ok(text) = serde_json::to_vec(&self.state) {
            let _ = write_replace(&self.dir.join(STATE_FILE), &text);
        }
    }

    /// The running check's pidfd, to poll for its exit.
    pub fn pidfd(&self) -> Option<&OwnedFd> {
        self.running.as_ref().map(|r| &r.pidfd)
    }

    /// How long the supervisor may sleep before [`Checker::tick`] has work.
    pub fn timeout(&self) -> Duration {
        let due = match &self.running {
            Some(r) => r.deadline,
            None => self.next,
        };
        due.saturating_duration_since(Instant::now())
    }

    /// Finishes a check that exited or overran, and starts one that is due.
    pub fn tick(&mut self, record: &ContainerRecord) {
        let now = Instant::now();
        if let Some(r) = &self.running {
            let exited = rustix::process::waitpid(Pid::from_raw(r.pid), WaitOptions::NOHANG)
                .ok()
                .flatten()
                .map(|(_, s)| s.exit_status().unwrap_or(-1));
            let result = match exited {
                Some(code) => Some((code, read_output(&r.output))),
                None if now >= r.deadline => {
                    let _ = pidfd_send_signal(&r.pidfd, Signal::KILL);
                    let _ = rustix::process::waitpid(Pid::from_raw(r.pid), WaitOptions::empty());
                    let limit = Duration::from_millis(self.cfg.timeout_ms);
                    Some((-1, format!("Health check exceeded timeout ({limit:?})")))
                }
                None => None,
            };
            if let Some((code, output)) = result {
                self.running = None;
                self.record(code, output);
                self.next = now + self.period();
            }
        }
        if self.running.is_none() && now >= self.next {
            match self.start(record) {
                Ok(r) => self.running = Some(r),
                Err(e) => {
                    self.record(-1, e);
                    self.next = now + self.period();
                }
            }
        }
    }

    fn start(&self, record: &ContainerRecord) -> Result<Running, String> {
        let (out_r, out_w) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )
        .map_err(|e| e.to_string())?;
        let req = ExecRequest {
            args: self.cfg.test.clone(),
            ..ExecRequest::default()
        };
        let pid = spawn(&self.dir, record, &req, Some(out_w)).map_err(|e| e.to_string())?;
        let pidfd = Pid::from_raw(pid)
            .ok_or("invalid pid")
            .and_then(|p| pidfd_open(p, PidfdFlags::empty()).map_err(|_| "pidfd_open failed"))
            .map_err(str::to_string)?;
        Ok(Running {
            pid,
            pidfd,
            output: out_r,
            deadline: Instant::now() + Duration::from_millis(self.cfg.timeout_ms),
        })
    }

    fn record(&mut self, exit_code: i32, output: String) {
        let counts = !self.in_start_period();
        let s = &mut self.state;
        if exit_code == 0 {
            s.status = "healthy".into();
            s.failing_streak = 0;
        } else if counts {
            s.failing_streak += 1;
            if s.failing_streak >= self.cfg.retries {
                s.status = "unhealthy".into();
            }
        }
        s.log.push(HealthLog { exit_code, output });
        let excess = s.log.len().saturating_sub(5);
        s.log.drain(..excess);
        self.save();
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = pidfd_send_signal(&r.pidfd, Signal::KILL);
            let _ = rustix::process::waitpid(Pid::from_raw(r.pid), WaitOptions::empty());
        }
    }
}

fn read_output(fd: &OwnedFd) -> String {
    let mut buf = vec![0u8; OUTPUT_LIMIT];
    let n = rustix::io::read(fd, &mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_follows_docker_defaults_and_forms() {
        let z = Duration::ZERO;
        let c = HealthConfig::new(&["CMD-SHELL".into(), "true".into()], z, z, 0, z, z).unwrap();
        assert_eq!(c.test, ["/bin/sh", "-c", "true"]);
        assert_eq!(
            (c.interval_ms, c.timeout_ms, c.retries, c.start_interval_ms),
            (30_000, 30_000, 3, 5_000)
        );
        let c = HealthConfig::new(
            &["CMD".into(), "wget".into(), "-q".into()],
            Duration::from_secs(1),
            z,
            5,
            z,
            z,
        )
        .unwrap();
        assert_eq!((c.test.len(), c.interval_ms, c.retries), (2, 1000, 5));
        assert!(HealthConfig::new(&["NONE".into()], z, z, 0, z, z).is_none());
        assert!(HealthConfig::new(&[], z, z, 0, z, z).is_none());
    }
}
