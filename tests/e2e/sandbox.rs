//! A temporary project directory and a way to run `berth` in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
pub struct Dir {
    path: PathBuf,
}

impl Dir {
    pub fn new(name: &str) -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "berth-e2e-{}-{}-{}",
            name,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create sandbox");
        Dir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&self, rel: &str, text: &str) -> &Dir {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(p, text).expect("write fixture");
        self
    }

    /// Runs `berth args…` in a subfolder and returns its standard output.
    pub fn berth_in(&self, sub: &str, args: &[&str]) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        let out = cmd
            .args(args)
            .current_dir(self.path.join(sub))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("run berth");
        Run(out).ok()
    }

    /// Runs `berth args…` in this directory with a minimal environment.
    pub fn berth(&self, args: &[&str]) -> Run {
        self.berth_with(args, &[], None)
    }

    pub fn berth_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(args)
            .current_dir(&self.path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", "/root")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run berth");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
        }
        Run(child.wait_with_output().expect("wait for berth"))
    }
}

impl Drop for Dir {
    /// Cleans up even after a failed test: containers started under the
    /// sandbox's state root are killed, their roots unmounted and their
    /// cgroups removed before the directory goes.
    fn drop(&mut self) {
        let containers = self.path.join("state/containers");
        if let Ok(entries) = std::fs::read_dir(&containers) {
            for e in entries.flatten() {
                let Ok(text) = std::fs::read_to_string(e.path().join("container.json")) else {
                    continue;
                };
                let rec: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                for key in ["shim_pid", "pid"] {
                    if let Some(pid) = rec[key]
                        .as_i64()
                        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
                    {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                }
                let merged = e.path().join("merged");
                let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
                if let Some(id) = rec["id"].as_str() {
                    // A killed process leaves its cgroup a moment later:
                    // tried for up to two seconds.
                    for _ in 0..40 {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        let mut left = false;
                        for c in std::fs::read_dir("/sys/fs/cgroup")
                            .into_iter()
                            .flatten()
                            .flatten()
                        {
                            let dir = c.path().join("berth").join(id);
                            left |= dir.exists() && std::fs::remove_dir(&dir).is_err();
                        }
                        if !left {
                            break;
                        }
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The outcome of one `berth` run.
pub struct Run(pub Output);

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> String {
        assert!(
            self.0.status.success(),
            "berth failed: {}\n{}",
            self.0.status,
            self.stderr()
        );
        self.stdout()
    }
    /// Asserts failure and returns stderr.
    pub fn fails(&self) -> String {
        assert!(
            !self.0.status.success(),
            "berth succeeded:\n{}",
            self.stdout()
        );
        self.stderr()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok()).expect("valid JSON")
    }
}
