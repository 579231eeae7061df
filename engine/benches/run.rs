//! Container start benchmark: create + start + wait + delete of `/bin/true`
//! from a busybox image, by berth (in-process, as `container run --rm` does)
//! and, in the same run (rounds alternating), by Debian's `runc run` and
//! `crun run` on an equivalent bundle where they are installed and by
//! `docker run --rm` where a dockerd runs. Prints medians and the ratios. Needs root and
//! /bin/busybox. Run with `cargo bench -p berth-engine --bench run`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_engine::image::{self, ImageStore, archive};
use berth_engine::runtime::run::NoNetwork;
use berth_engine::runtime::{RunRequest, run_foreground};

const ROUNDS: usize = 30;

fn busybox_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, dir, &[][..]).expect("tar");
    }
    b.append_path_with_name("/bin/busybox", "bin/busybox")
        .expect("busybox-static is installed");
    for applet in ["true", "sh"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .expect("tar");
    }
    b.into_inner().expect("tar")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bundle_for(tool: &str, dir: &Path, rootfs: &Path) -> bool {
    let ok = Command::new(tool)
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return false;
    }
    let path = dir.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("spec")).expect("json");
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["root"]["path"] = serde_json::json!(rootfs);
    spec["root"]["readonly"] = serde_json::json!(false);
    std::fs::write(&path, serde_json::to_vec(&spec).expect("json")).expect("write spec");
    true
}

fn main() {
    if !rustix::process::geteuid().is_root() || !Path::new("/bin/busybox").exists() {
        println!("container start benchmark skipped: needs root and /bin/busybox");
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(root.path()).expect("store");
    let image = image::Reference::parse("localhost/bench-busybox:latest").expect("ref");
    let rec = archive::import(&store, &busybox_tar()[..], Some(&image), &[]).expect("import");
    let req = RunRequest {
        image: "localhost/bench-busybox:latest".into(),
        remove: true,
        process: berth_engine::runtime::spec::ProcessRequest {
            cmd: Some(vec!["/bin/true".into()]),
            ..Default::default()
        },
        ..RunRequest::default()
    };
    // The references get the image's layer as a plain directory: no
    // overlay to mount, and `spec`'s default bundle has no seccomp filter,
    // both of which only favour them.
    let rootfs = store.layers(&rec).expect("layers")[0].clone();
    let mut references: Vec<Reference> = ["runc", "crun"]
        .into_iter()
        .filter_map(|tool| {
            let r = Reference::runtime(tool, root.path(), &rootfs);
            if r.is_none() {
                println!("{tool} not usable here: no reference measured for it");
            }
            r
        })
        .collect();
    match Reference::docker(&busybox_tar()) {
        Some(r) => references.push(r),
        None => {
            println!("docker not usable here (no dockerd running): no reference measured for it")
        }
    }
    // Rounds alternate between the tools, so that the drift of this VM's
    // speed (a fifth within an hour) and what one tool's deletions leave
    // the filesystem to do fall on all of them alike.
    let mut berth = Vec::new();
    let mut others = vec![Vec::new(); references.len()];
    for i in 0..ROUNDS {
        let t = Instant::now();
        let code = run_foreground(root.path(), &store, &req, &mut NoNetwork).expect("run");
        assert_eq!(code, 0);
        berth.push(t.elapsed());
        for (r, times) in references.iter().zip(&mut others) {
            times.push(r.run(i));
        }
    }
    let berth = median(berth);
    println!("container run --rm /bin/true: berth median {berth:?} over {ROUNDS} runs");
    for (r, times) in references.iter().zip(others) {
        let t = median(times);
        println!(
            "{} run /bin/true: median {t:?}; berth is {:.1}x faster",
            r.tool,
            t.as_secs_f64() / berth.as_secs_f64()
        );
    }
    if references.iter().any(|r| r.tool == "docker") {
        let _ = Command::new("docker").args(["rmi", DOCKER_IMAGE]).output();
    }
}

/// The image the Docker reference runs, imported from the same tarball.
const DOCKER_IMAGE: &str = "berth-bench-busybox:latest";

/// A reference tool's run of `/bin/true`: `runc`/`crun run` of a bundle of
/// the image's layer, or `docker run --rm` of the image imported into
/// Docker (no network, as berth's run here: a namespace with a loopback).
/// crun refuses a hybrid cgroup layout (v1 controllers and a v2 mount, as
/// on this host), so it runs in a mount namespace of its own where the v2
/// mount is gone.
struct Reference {
    tool: &'static str,
    args: Vec<std::ffi::OsString>,
    /// runc and crun take the container's id last, unique per run.
    named: bool,
    hybrid: bool,
}

impl Reference {
    fn runtime(tool: &'static str, root: &Path, rootfs: &Path) -> Option<Reference> {
        let works = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let bundle = root.join(format!("{tool}-bundle"));
        std::fs::create_dir_all(&bundle).expect("bundle dir");
        if !works || !bundle_for(tool, &bundle, rootfs) {
            return None;
        }
        let r = Reference {
            tool,
            args: vec![
                "--root".into(),
                root.join(format!("{tool}-state")).into(),
                "run".into(),
                "--bundle".into(),
                bundle.into(),
            ],
            named: true,
            hybrid: tool == "crun" && Path::new("/sys/fs/cgroup/unified").exists(),
        };
        // One run to see that it works at all.
        r.try_run(ROUNDS).map(|_| r)
    }

    fn docker(tar: &[u8]) -> Option<Reference> {
        use std::io::Write;
        let running = Command::new("docker")
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success());
        if !running {
            return None;
        }
        let mut import = Command::new("docker")
            .args(["import", "-", DOCKER_IMAGE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        import.stdin.take()?.write_all(tar).ok()?;
        if !import.wait().is_ok_and(|s| s.success()) {
            return None;
        }
        let r = Reference {
            tool: "docker",
            args: [
                "run",
                "--rm",
                "--network",
                "none",
                DOCKER_IMAGE,
                "/bin/true",
            ]
            .map(Into::into)
            .into(),
            named: false,
            hybrid: false,
        };
        r.try_run(ROUNDS).map(|_| r)
    }

    fn run(&self, i: usize) -> Duration {
        self.try_run(i)
            .unwrap_or_else(|| panic!("{} run failed", self.tool))
    }

    fn try_run(&self, i: usize) -> Option<Duration> {
        let mut cmd = Command::new(self.tool);
        cmd.args(&self.args);
        if self.named {
            cmd.arg(format!("bench-{}-{i}", std::process::id()));
        }
        if self.hybrid {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe syscalls between fork and exec.
            unsafe {
                cmd.pre_exec(hide_cgroup2);
            }
        }
        let t = Instant::now();
        let ok = cmd.status().is_ok_and(|s| s.success());
        ok.then(|| t.elapsed())
    }
}

fn hide_cgroup2() -> std::io::Result<()> {
    use rustix::mount::{MountPropagationFlags, UnmountFlags, mount_change, unmount};
    use rustix::thread::{UnshareFlags, unshare_unsafe};
    // SAFETY: the forked child has one thread.
    unsafe { unshare_unsafe(UnshareFlags::NEWNS) }?;
    mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )?;
    unmount("/sys/fs/cgroup/unified", UnmountFlags::DETACH)?;
    Ok(())
}
