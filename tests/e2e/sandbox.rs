//! A temporary project directory and a way to run `berth` in it.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The network namespace where this test binary runs every `berth` that
/// has none of its own ([`crate::network::Netns`]): the default bridge
/// that `container run` makes, its veths and firewall rules go there,
/// never into the host's. It lives while this descriptor is open (as long
/// as the binary), with its loopback up.
pub fn test_netns() -> BorrowedFd<'static> {
    static NS: OnceLock<std::fs::File> = OnceLock::new();
    NS.get_or_init(|| {
        // A thread of its own: namespaces are per thread.
        std::thread::spawn(|| {
            // SAFETY: only the network namespace is unshared, on a thread
            // that shares no descriptors it could lose.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .expect("unsharing a network namespace for the tests (needs root)");
            let up = Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .expect("ip link set lo up");
            assert!(up.success(), "bringing the test namespace's loopback up");
            std::fs::File::open("/proc/thread-self/ns/net").expect("the test namespace")
        })
        .join()
        .expect("making the test namespace")
    })
    .as_fd()
}

/// Moves the calling thread into [`test_netns`].
fn enter_test_netns() -> std::io::Result<()> {
    rustix::thread::move_into_link_name_space(
        test_netns(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(Into::into)
}

/// Makes `cmd` run in [`test_netns`].
pub fn in_test_netns(cmd: &mut Command) -> &mut Command {
    // Made here, so the child only reads the descriptor.
    test_netns();
    // SAFETY: the child only calls setns(2), async-signal-safe, on a
    // descriptor open for the whole life of this process.
    unsafe { cmd.pre_exec(enter_test_netns) }
}

/// Runs `f` on a thread in [`test_netns`] (commands it starts run there).
pub fn in_test_netns_do<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_test_netns().expect("joining the test namespace");
            f()
        })
        .join()
        .expect("a thread in the test namespace")
    })
}

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
        let out = in_test_netns(&mut cmd)
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
        in_test_netns(&mut cmd)
            .args(args)
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
    /// cgroups removed, and the networks its state roots left in the test
    /// namespace removed, before the directory goes.
    fn drop(&mut self) {
        self.kill_containers();
        self.remove_networks();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl Dir {
    /// Removes, through `berth network rm`, the networks of every state
    /// root in the sandbox whose bridges are in the test namespace (a
    /// test's own namespace takes its bridges with it).
    fn remove_networks(&self) {
        let roots: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("networks").is_dir())
            .collect();
        if roots.is_empty() {
            return;
        }
        in_test_netns_do(|| {
            let here = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
            for root in &roots {
                for e in std::fs::read_dir(root.join("networks"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let rec: serde_json::Value = std::fs::read(e.path())
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok())
                        .unwrap_or_default();
                    let (Some(name), Some(bridge)) = (rec["Name"].as_str(), rec["Bridge"].as_str())
                    else {
                        continue;
                    };
                    if here.contains(&format!("{bridge}:")) {
                        let _ = Command::new(env!("CARGO_BIN_EXE_berth"))
                            .arg("--root")
                            .arg(root)
                            .args(["network", "rm", name])
                            .output();
                    }
                }
            }
        });
    }

    fn kill_containers(&self) {
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
