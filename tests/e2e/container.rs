//! `berth container run`: real containers from a busybox image, as root.

use crate::sandbox::Dir;

/// A state root in the sandbox holding `localhost/busybox-test:latest`,
/// built from Debian's busybox-static (which `scripts/test` installs).
pub fn busybox_root(d: &Dir) -> String {
    let root = d.path().join("state").to_string_lossy().into_owned();
    import_image(d, &root, busybox_tar(&[]), "localhost/busybox-test:latest");
    root
}

/// Imports the tarball `b` into the state root `root` as `tag`.
pub fn import_image(d: &Dir, root: &str, b: tar::Builder<Vec<u8>>, tag: &str) {
    let tar_path = d.path().join("image.tar");
    std::fs::write(&tar_path, b.into_inner().unwrap()).unwrap();
    d.berth_with(
        &[
            "image",
            "import",
            "-c",
            "CMD [\"sh\"]",
            "-c",
            "ENV PATH=/bin",
            &tar_path.to_string_lossy(),
            tag,
        ],
        &[("BERTH_ROOT", root)],
        None,
    )
    .ok();
}

/// The busybox image's files, but for the top-level entries and applets
/// in `skip`, which a test adds as it likes.
pub fn busybox_tar(skip: &[&str]) -> tar::Builder<Vec<u8>> {
    assert!(
        std::path::Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing: scripts/test installs Debian's busybox-static"
    );
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "www"] {
        if skip.contains(&dir) {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        h.set_size(0);
        b.append_data(&mut h, dir, &[][..]).unwrap();
    }
    b.append_path_with_name("/bin/busybox", "bin/busybox")
        .unwrap();
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    let applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox" && !skip.contains(a))
        .map(String::from)
        .collect();
    for applet in &applets {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let passwd =
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    let group = b"root:x:0:\nnogroup:x:65534:\n";
    let index = b"hello from berth-busybox\n";
    for (name, data) in [
        ("etc/passwd", &passwd[..]),
        ("etc/group", &group[..]),
        ("www/index.html", &index[..]),
    ] {
        if skip.iter().any(|top| name.starts_with(&format!("{top}/"))) {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    }
    b
}

/// Adds a symlink `path -> target` to `b`.
pub fn add_symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, path, target).unwrap();
}

/// `container run --rm FLAGS localhost/busybox-test sh -c SCRIPT` with the
/// state root `root`.
pub fn run_script(d: &Dir, root: &str, flags: &[&str], script: &str) -> crate::sandbox::Run {
    let mut args = vec!["container", "run", "--rm"];
    args.extend_from_slice(flags);
    args.extend(["localhost/busybox-test", "sh", "-c", script]);
    d.berth_with(&args, &[("BERTH_ROOT", root)], None)
}

fn mounts_under(path: &str) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(path))
        .count()
}

#[test]
fn run_prints_output_returns_the_exit_code_and_leaves_nothing_behind() {
    let d = Dir::new("run");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let run = d.berth_with(
        &[
            "container",
            "run",
            "--rm",
            "--hostname",
            "box",
            "localhost/busybox-test",
            "sh",
            "-c",
            "echo hello; hostname; cat /etc/hostname; ip -4 addr show lo | grep -o 127.0.0.1/8; exit 7",
        ],
        &env,
        None,
    );
    // The loopback is up, as in Docker's containers.
    assert_eq!(
        run.stdout(),
        "hello\nbox\nbox\n127.0.0.1/8\n",
        "{}",
        run.stderr()
    );
    assert_eq!(run.0.status.code(), Some(7));
    let containers = std::path::Path::new(&root).join("containers");
    assert_eq!(
        std::fs::read_dir(&containers).unwrap().count(),
        0,
        "--rm removed the container"
    );
    assert_eq!(mounts_under(&root), 0, "nothing left mounted");
}

#[test]
fn users_capabilities_and_read_only_roots_apply() {
    let d = Dir::new("isolation");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let out = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "-u",
                "nobody",
                "-w",
                "/tmp",
                "-e",
                "GREETING=hi",
                "localhost/busybox-test",
                "sh",
                "-c",
                "id -u; pwd; echo $GREETING; grep CapEff /proc/self/status",
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(out, "65534\n/tmp\nhi\nCapEff:\t0000000000000000\n");
    // Docker's default capability set for root.
    let out = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "localhost/busybox-test",
                "grep",
                "CapBnd",
                "/proc/self/status",
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(out, "CapBnd:\t00000000a80425fb\n");
    let out = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "--cap-drop",
                "ALL",
                "localhost/busybox-test",
                "grep",
                "CapBnd",
                "/proc/self/status",
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(out, "CapBnd:\t0000000000000000\n");
    let run = d.berth_with(
        &[
            "container",
            "run",
            "--rm",
            "--read-only",
            "localhost/busybox-test",
            "sh",
            "-c",
            "touch /x; echo >> /etc/hosts",
        ],
        &env,
        None,
    );
    assert_eq!(run.0.status.code(), Some(1));
    // The root and, as with Docker, the name files.
    assert_eq!(
        run.stderr().matches("Read-only file system").count(),
        2,
        "{}",
        run.stderr()
    );
    // Privileged: every capability, and nothing of /proc or /sys masked
    // or read-only (Docker's rule).
    let out = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "--privileged",
                "localhost/busybox-test",
                "sh",
                "-c",
                "grep -c ' /proc/\\| /sys/firmware ' /proc/self/mountinfo",
            ],
            &env,
            None,
        )
        .stdout();
    assert_eq!(out, "0\n");
    // The container's PID namespace: it is PID 1 there.
    let out = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "localhost/busybox-test",
                "sh",
                "-c",
                "echo $$",
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(out, "1\n");
}

#[test]
fn run_errors_name_what_is_missing() {
    let d = Dir::new("runerr");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let err = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "--pull",
                "never",
                "nosuch:image",
            ],
            &env,
            None,
        )
        .fails();
    assert!(err.contains("no such image: nosuch:image"), "{err}");
    // Pulled when missing: an unreachable registry is named in the error.
    let err = d
        .berth_with(
            &["container", "run", "--rm", "127.0.0.1:9/nosuch:image"],
            &env,
            None,
        )
        .fails();
    assert!(
        err.contains("pulling 127.0.0.1:9/nosuch:image") && err.contains("Connection refused"),
        "{err}"
    );
    let err = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "localhost/busybox-test",
                "nosuchcmd",
            ],
            &env,
            None,
        )
        .fails();
    assert!(err.contains("nosuchcmd"), "{err}");
    let err = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "-u",
                "ghost",
                "localhost/busybox-test",
                "true",
            ],
            &env,
            None,
        )
        .fails();
    assert!(err.contains("unable to find user ghost"), "{err}");
    let containers = std::path::Path::new(&root).join("containers");
    assert_eq!(std::fs::read_dir(&containers).unwrap().count(), 0);
    assert_eq!(mounts_under(&root), 0);
}

#[test]
fn volumes_are_filled_from_the_image_persist_and_bind_mounts_work() {
    let d = Dir::new("volumes");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    // A new named volume over /etc starts with the image's /etc.
    let out = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "-v",
                "conf:/etc",
                "localhost/busybox-test",
                "sh",
                "-c",
                "cat /etc/group; echo mine > /etc/mine",
            ],
            &env,
            None,
        )
        .ok();
    assert!(out.contains("nogroup:x:65534:"), "{out}");
    // The data survives the container; read-only mounts refuse writes.
    let run = d.berth_with(
        &[
            "container",
            "run",
            "--rm",
            "-v",
            "conf:/etc:ro",
            "localhost/busybox-test",
            "sh",
            "-c",
            "cat /etc/mine; touch /etc/x",
        ],
        &env,
        None,
    );
    assert_eq!(run.stdout(), "mine\n");
    assert_eq!(run.0.status.code(), Some(1));
    // Host directories.
    let host = d.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "from the host\n").unwrap();
    let spec = format!("{}:/mnt", host.display());
    let out = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "-v",
                &spec,
                "localhost/busybox-test",
                "sh",
                "-c",
                "cat /mnt/f; echo back > /mnt/g",
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(out, "from the host\n");
    assert_eq!(std::fs::read_to_string(host.join("g")).unwrap(), "back\n");
    // Anonymous volumes go with --rm; named ones stay.
    d.berth_with(
        &[
            "container",
            "run",
            "--rm",
            "-v",
            "/data",
            "localhost/busybox-test",
            "true",
        ],
        &env,
        None,
    )
    .ok();
    let vols = d.berth_with(&["volume", "ls", "-q"], &env, None).ok();
    assert_eq!(vols, "conf\n");
    let err = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "-v",
                "rel/path:/x",
                "localhost/busybox-test",
                "true",
            ],
            &env,
            None,
        )
        .fails();
    assert!(err.contains("invalid volume specification"), "{err}");
}

#[test]
fn detached_containers_are_supervised_logged_stopped_and_removed() {
    let d = Dir::new("detached");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let id = d
        .berth_with(
            &["container", "run", "-d", "--name", "ticker", "localhost/busybox-test", "sh", "-c", "trap 'echo bye; exit 3' TERM; echo hello; echo oops >&2; while true; do sleep 0.1; done"],
            &env,
            None,
        )
        .ok();
    assert_eq!(id.trim().len(), 64, "{id}");
    // The CLI has exited; the supervisor keeps the container running.
    let ls = d.berth_with(&["container", "ls"], &env, None).ok();
    assert!(ls.contains("ticker") && ls.contains("running"), "{ls}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let logs = d.berth_with(&["container", "logs", "ticker"], &env, None);
    assert_eq!(logs.stdout(), "hello\n");
    assert_eq!(logs.stderr(), "oops\n");
    let err = d
        .berth_with(&["container", "rm", "ticker"], &env, None)
        .fails();
    assert!(err.contains("it is running"), "{err}");
    let err = d
        .berth_with(
            &[
                "container",
                "run",
                "-d",
                "--name",
                "ticker",
                "localhost/busybox-test",
                "true",
            ],
            &env,
            None,
        )
        .fails();
    assert!(err.contains("already in use"), "{err}");

    // stop: the stop signal reaches the container's init, which exits 3.
    d.berth_with(&["container", "stop", "ticker"], &env, None)
        .ok();
    let ls = d.berth_with(&["container", "ls", "-a"], &env, None).ok();
    assert!(ls.contains("exited (3)"), "{ls}");
    // --format as scripts use it with `docker ps`.
    let ls = d
        .berth_with(
            &[
                "container",
                "ls",
                "-a",
                "--format",
                "{{.Names}}\\t{{.State}}",
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(ls, "ticker\texited\n");
    let ls = d
        .berth_with(&["container", "ls", "-a", "--format", "json"], &env, None)
        .json();
    assert_eq!(ls["Names"], "ticker", "{ls}");
    assert_eq!(ls["ID"], &id.trim()[..12], "{ls}");
    let logs = d
        .berth_with(&["container", "logs", "ticker"], &env, None)
        .ok();
    assert_eq!(logs, "hello\nbye\n");
    let wait = d
        .berth_with(&["container", "wait", "ticker"], &env, None)
        .ok();
    assert_eq!(wait, "3\n");
    d.berth_with(&["container", "rm", "ticker"], &env, None)
        .ok();
    assert_eq!(
        d.berth_with(&["container", "ls", "-aq"], &env, None).ok(),
        ""
    );
    assert_eq!(mounts_under(&root), 0);

    // rm -f kills a running container; -d with --rm cleans up on exit.
    d.berth_with(
        &[
            "container",
            "run",
            "-d",
            "--name",
            "sleeper",
            "localhost/busybox-test",
            "sleep",
            "1000",
        ],
        &env,
        None,
    )
    .ok();
    d.berth_with(&["container", "rm", "-f", "sleeper"], &env, None)
        .ok();
    d.berth_with(
        &[
            "container",
            "run",
            "-d",
            "--rm",
            "--name",
            "brief",
            "localhost/busybox-test",
            "true",
        ],
        &env,
        None,
    )
    .ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if d.berth_with(&["container", "ls", "-aq"], &env, None)
            .ok()
            .is_empty()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        d.berth_with(&["container", "ls", "-aq"], &env, None).ok(),
        ""
    );
    assert_eq!(mounts_under(&root), 0);
}

/// What a process sees of itself matches Docker's containers (compared
/// with `docker run` of the same image on this host): its groups, the
/// `HOSTNAME` variable, how `/proc` and the root are mounted.
#[test]
fn a_container_looks_from_inside_as_dockers_do() {
    let d = Dir::new("dockerlike");
    let root = busybox_root(&d);
    let probe = r#"id; echo "$HOSTNAME"
        awk '$5 == "/proc" { print $6 }' /proc/self/mountinfo
        grep ' / / ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1,2"#;
    let run = |user: &str| run_script(&d, &root, &["--hostname", "box", "-u", user], probe);
    let root_user = run("0");
    assert_eq!(
        root_user.stdout(),
        "uid=0(root) gid=0(root) groups=0(root)\nbox\n\
         rw,nosuid,nodev,noexec,relatime\noverlay overlay\n",
        "{}",
        root_user.stderr()
    );
    // Another user's primary group is among its groups too.
    let other = run("1000:1000");
    assert!(
        other
            .stdout()
            .starts_with("uid=1000 gid=1000 groups=1000\n"),
        "{}",
        other.stdout()
    );
}

/// Images whose paths the runtime writes through are symlinks out of the
/// root (RT-06 `/proc` and `/sys`, RT-07 `/dev/null`, RT-10 `/dev`, RT-11
/// the name files): nothing outside the root is touched, masked files stay
/// masked, and what cannot be made safe fails with an error.
#[test]
fn image_symlinks_never_redirect_the_runtime_out_of_the_root() {
    let d = Dir::new("hostile");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let sentinel = d.path().join("sentinel");
    std::fs::create_dir_all(&sentinel).unwrap();
    std::fs::write(sentinel.join("ptmx"), "keep").unwrap();
    std::fs::write(sentinel.join("hosts"), "keep").unwrap();
    let s = sentinel.to_string_lossy().into_owned();
    let snapshot = || {
        let mut names: Vec<(String, String)> = std::fs::read_dir(&sentinel)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                (e.file_name().to_string_lossy().into_owned(), text)
            })
            .collect();
        names.sort();
        names
    };
    let before = snapshot();
    let run = |tag: &str, script: &str| {
        d.berth_with(
            &["container", "run", "--rm", tag, "sh", "-c", script],
            &env,
            None,
        )
    };
    // RT-10: /dev out of the root, absolute and relative, or to a
    // directory of the image that names a host one too: refused, named.
    for (i, target) in [
        s.clone(),
        format!("../../../../../../../..{s}"),
        "/tmp".into(),
    ]
    .iter()
    .enumerate()
    {
        let mut b = busybox_tar(&["dev"]);
        add_symlink(&mut b, "dev", target);
        let tag = format!("localhost/dev-out-{i}:latest");
        import_image(&d, &root, b, &tag);
        let r = run(&tag, "true");
        assert!(
            !r.0.status.success() && r.stderr().contains("/dev is a symbolic link"),
            "{}{}",
            r.stdout(),
            r.stderr()
        );
    }
    // RT-11: the name files out of the root.
    let mut b = busybox_tar(&[]);
    add_symlink(&mut b, "etc/hosts", &format!("{s}/hosts"));
    add_symlink(
        &mut b,
        "etc/resolv.conf",
        &format!("../../../../../../..{s}/resolv.conf"),
    );
    add_symlink(&mut b, "etc/hostname", &format!("{s}/hostname"));
    import_image(&d, &root, b, "localhost/names-out:latest");
    let r = run(
        "localhost/names-out:latest",
        "grep -c localhost /etc/hosts; echo x >> /etc/hosts; echo x >> /etc/resolv.conf",
    );
    assert_eq!(r.stdout(), "2\n", "{}", r.stderr());
    // RT-07: /dev/null in the image a symlink to a procfs file; masked
    // files stay the null device and procfs stays read-only.
    let mut b = busybox_tar(&["dev"]);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "dev", &[][..]).unwrap();
    add_symlink(&mut b, "dev/null", "/proc/sys/kernel/core_pattern");
    import_image(&d, &root, b, "localhost/null-link:latest");
    let r = run(
        "localhost/null-link:latest",
        "stat -c '%t:%T' /proc/keys /proc/timer_list; \
         echo x 2>/dev/null > /proc/sys/kernel/core_pattern || echo refused",
    );
    assert_eq!(r.stdout(), "1:3\n1:3\nrefused\n", "{}", r.stderr());
    // RT-06: /proc or /sys a symlink: refused, with the path named.
    for top in ["proc", "sys"] {
        let mut b = busybox_tar(&[top]);
        add_symlink(&mut b, top, &format!("{s}/{top}"));
        let tag = format!("localhost/{top}-link:latest");
        import_image(&d, &root, b, &tag);
        let r = run(&tag, "true");
        assert!(
            !r.0.status.success() && r.stderr().contains(top),
            "{}{}",
            r.stdout(),
            r.stderr()
        );
    }
    assert_eq!(snapshot(), before, "the sentinel directory changed");
}

/// RT-13 (no inheritable or ambient capabilities, for root or another
/// user, run or exec) and RT-24 (device nodes a container makes cannot be
/// opened: the device cgroup allows only the standard ones).
#[test]
fn no_inherited_capabilities_and_no_device_beyond_the_standard_ones() {
    let d = Dir::new("capsdev");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let caps = "grep -E '^Cap(Inh|Amb)' /proc/self/status";
    let none = "CapInh:\t0000000000000000\nCapAmb:\t0000000000000000\n";
    for user in ["0", "1000"] {
        let out = run_script(&d, &root, &["-u", user], caps).ok();
        assert_eq!(out, none, "user {user}");
    }
    d.berth_with(
        &[
            "container",
            "run",
            "-d",
            "--name",
            "caps",
            "localhost/busybox-test",
            "sleep",
            "60",
        ],
        &env,
        None,
    )
    .ok();
    let out = d
        .berth_with(
            &["container", "exec", "-u", "1000", "caps", "sh", "-c", caps],
            &env,
            None,
        )
        .ok();
    assert_eq!(out, none, "exec");
    // RT-14: privileged as another user holds nothing effective but may
    // gain all; `--cap-drop ALL` with one added holds exactly that one.
    let status = |flags: &[&str]| {
        run_script(
            &d,
            &root,
            flags,
            "grep -E '^Cap(Eff|Bnd)' /proc/self/status",
        )
        .ok()
    };
    let root_privileged = status(&["--privileged"]);
    let user_privileged = status(&["--privileged", "-u", "1000"]);
    assert_eq!(
        user_privileged,
        root_privileged.replace(
            root_privileged.lines().next().unwrap(),
            "CapEff:\t0000000000000000"
        )
    );
    assert_eq!(
        status(&["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"]),
        "CapEff:\t0000000000001000\nCapBnd:\t0000000000001000\n"
    );
    // A disk and /dev/mem made with CAP_MKNOD: made, not opened.
    let out = d
        .berth_with(
            &[
                "container",
                "exec",
                "caps",
                "sh",
                "-c",
                "for n in 'sda b 8 0' 'mem c 1 1'; do set -- $n; mknod /tmp/$1 $2 $3 $4 && \
                 { head -c1 /tmp/$1 >/dev/null 2>&1 && echo \"$1 opened\" || echo \"$1 denied\"; }; done",
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(out, "sda denied\nmem denied\n");
    d.berth_with(&["container", "rm", "-f", "caps"], &env, None)
        .ok();
}

/// RT-22 (mount propagation): a mount a container makes, allowed to by
/// SYS_ADMIN, never shows on the host, and nothing stays mounted after.
#[test]
fn a_containers_own_mounts_stay_in_the_container() {
    let d = Dir::new("propagation");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    d.berth_with(
        &[
            "container",
            "run",
            "-d",
            "--name",
            "mounter",
            "--cap-add",
            "SYS_ADMIN",
            "localhost/busybox-test",
            "sh",
            "-c",
            "mkdir -p /m && mount -t tmpfs berth-rt22 /m && touch /m/made && sleep 60",
        ],
        &env,
        None,
    )
    .ok();
    let exec = |cmd: &str| {
        d.berth_with(
            &["container", "exec", "mounter", "sh", "-c", cmd],
            &env,
            None,
        )
        .stdout()
    };
    let mut seen = String::new();
    for _ in 0..50 {
        seen = exec("ls /m 2>/dev/null");
        if seen == "made\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(seen, "made\n", "the container's mount");
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host.contains("berth-rt22"),
        "the container's mount reached the host"
    );
    d.berth_with(&["container", "rm", "-f", "mounter"], &env, None)
        .ok();
    // Other tests mount in parallel: only this root's mounts are counted.
    assert_eq!(mounts_under(&root), 0);
}

/// RT-28 (CVE-2020-15257, containerd-shim's abstract socket): a
/// supervisor's sockets (a terminal's, attach's) are paths in directories
/// only root may enter, never abstract names a host-network container
/// could reach.
#[test]
fn a_supervisors_sockets_are_paths_in_private_directories() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new("ctlsock");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    d.berth_with(
        &[
            "container",
            "run",
            "-d",
            "-t",
            "-i",
            "--name",
            "ctl",
            "localhost/busybox-test",
            "sh",
        ],
        &env,
        None,
    )
    .ok();
    // This root's supervisor.
    let shim = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("__shim") && c.contains(root.as_str())
            })
        })
        .expect("the container's supervisor");
    // Sockets are listed per network namespace: the supervisor's.
    let names: std::collections::HashMap<String, String> =
        std::fs::read_to_string(format!("/proc/{shim}/net/unix"))
            .unwrap()
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((f.get(6)?.to_string(), f.get(7)?.to_string()))
            })
            .collect();
    let mut named = 0;
    for fd in std::fs::read_dir(format!("/proc/{shim}/fd")).unwrap() {
        let fd = fd.unwrap().path();
        let Ok(link) = std::fs::read_link(&fd) else {
            continue;
        };
        let link = link.to_string_lossy().into_owned();
        let Some(inode) = link
            .strip_prefix("socket:[")
            .and_then(|l| l.strip_suffix(']'))
        else {
            continue;
        };
        let Some(name) = names.get(inode) else {
            continue;
        };
        named += 1;
        assert!(!name.starts_with('@'), "abstract socket {name}");
        // Bound through a descriptor of the container's directory (closed
        // since): the socket is found there.
        let dir = if let Some(rest) = name.strip_prefix("/proc/self/fd/") {
            let file = rest.rsplit('/').next().unwrap().to_string();
            std::fs::read_dir(std::path::Path::new(&root).join("containers"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|c| c.join(&file).exists())
                .unwrap_or_else(|| panic!("{name} is in no container's directory"))
        } else {
            std::path::Path::new(name).parent().unwrap().to_path_buf()
        };
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{name} in {} (mode {mode:o})",
            dir.display()
        );
    }
    assert!(named > 0, "the supervisor of a terminal holds a socket");
    d.berth_with(&["container", "rm", "-f", "ctl"], &env, None)
        .ok();
}

/// RT-12: Docker's masked paths (with the 2023-2025 additions) are absent,
/// the null device or empty read-only directories, its read-only paths
/// are read-only mounts.
#[test]
fn dockers_masked_and_read_only_paths_hold() {
    let d = Dir::new("masked");
    let root = busybox_root(&d);
    let probe = r#"
        for p in /proc/asound /proc/acpi /proc/interrupts /proc/kcore /proc/keys \
                 /proc/latency_stats /proc/timer_list /proc/timer_stats \
                 /proc/sched_debug /proc/scsi /sys/firmware \
                 /sys/devices/virtual/powercap \
                 $(ls -d /sys/devices/system/cpu/cpu*/thermal_throttle 2>/dev/null); do
            if [ -c $p ]; then
                [ "$(stat -c %t:%T $p)" = 1:3 ] || echo "$p is a device but not null"
            elif [ -d $p ]; then
                [ -z "$(ls -A $p)" ] || echo "$p shows its entries"
                touch $p/x 2>/dev/null && echo "$p is writable"
            elif [ -e $p ]; then
                echo "$p is not masked"
            fi
        done
        for p in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
            [ -e $p ] || continue
            o=$(awk -v p=$p '$5 == p { split($6, o, ","); print o[1] }' /proc/self/mountinfo)
            [ "$o" = ro ] || echo "$p is not read-only"
        done
        echo 1 2>/dev/null > /proc/sysrq-trigger && echo "sysrq-trigger written"
        echo checked"#;
    let run = run_script(&d, &root, &[], probe);
    assert_eq!(run.stdout(), "checked\n", "{}", run.stderr());
}

/// RT-03 (CVE-2024-21626, "Leaky Vessels"): no descriptor of the host
/// reaches a container, its init or an exec'd process, even from a berth
/// started holding many; a working directory through one is refused.
#[test]
fn no_host_descriptor_reaches_a_container() {
    let d = Dir::new("fdleak");
    let root = busybox_root(&d);
    // A caller that leaks the host's root on descriptors 3 to 30.
    let leaky = |args: &[&str]| {
        let out = crate::sandbox::in_test_netns(&mut std::process::Command::new("bash"))
            .arg("-c")
            .arg(r#"for i in $(seq 3 30); do eval "exec $i</"; done; exec "$@""#)
            .arg("bash")
            .arg(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .env("BERTH_ROOT", &root)
            .current_dir(d.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run berth");
        crate::sandbox::Run(out)
    };
    // Those of a child the shell starts with nothing extra open (a pipe's
    // or a redirection's descriptors of the shell's own could show).
    let own_fds = "sleep 1 & ls /proc/$!/fd | tr '\\n' ' '";
    let run = leaky(&[
        "container",
        "run",
        "--rm",
        "localhost/busybox-test",
        "sh",
        "-c",
        own_fds,
    ]);
    assert_eq!(run.stdout(), "0 1 2 ", "{}", run.stderr());
    leaky(&[
        "container",
        "run",
        "-d",
        "--name",
        "fds",
        "localhost/busybox-test",
        "sleep",
        "60",
    ])
    .ok();
    let exec = leaky(&["container", "exec", "fds", "sh", "-c", own_fds]);
    assert_eq!(exec.stdout(), "0 1 2 ", "{}", exec.stderr());
    let init = leaky(&["container", "exec", "fds", "ls", "/proc/1/fd"]).ok();
    assert_eq!(init, "0\n1\n2\n");
    for n in ["3", "5", "30"] {
        let cwd = format!("/proc/self/fd/{n}");
        let run = leaky(&[
            "container",
            "run",
            "--rm",
            "-w",
            &cwd,
            "localhost/busybox-test",
            "ls",
        ])
        .fails();
        let exec = leaky(&["container", "exec", "-w", &cwd, "fds", "ls"]).fails();
        for err in [run, exec] {
            assert!(
                err.contains(&cwd) && err.contains("outside the container"),
                "{err}"
            );
        }
    }
    leaky(&["container", "rm", "-f", "fds"]).ok();
}

/// RT-17 (CVE-2022-0492, `release_agent`) and RT-18 (CVE-2023-25809,
/// writable cgroupfs): a default container's cgroups are private and
/// read-only.
#[test]
fn a_container_cannot_write_any_cgroup_or_leave_its_own() {
    let d = Dir::new("cgroupro");
    let root = busybox_root(&d);
    let probe = r#"
        for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs \
                 /sys/fs/cgroup/*/tasks /sys/fs/cgroup/*/notify_on_release \
                 $(find /sys/fs/cgroup -name release_agent); do
            [ -e $f ] || continue
            echo 1 2>/dev/null > $f && echo "wrote $f"
        done
        mkdir /sys/fs/cgroup/escape 2>/dev/null && echo "made a cgroup"
        grep -v ':/$' /proc/self/cgroup
        unshare -UrmC true 2>/dev/null && echo "unshared a user namespace"
        echo checked"#;
    let run = run_script(&d, &root, &[], probe);
    assert_eq!(run.stdout(), "checked\n", "{}", run.stderr());
}

#[test]
fn resource_limits_are_enforced_by_cgroups() {
    let d = Dir::new("limits");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let spawn = "i=0; while [ $i -lt 30 ]; do sleep 5 & i=$((i+1)); done; echo all started";
    let with_pids_limit = |limit: &str, script: &str| {
        d.berth_with(
            &[
                "container",
                "run",
                "--rm",
                "--pids-limit",
                limit,
                "localhost/busybox-test",
                "sh",
                "-c",
                script,
            ],
            &env,
            None,
        )
    };
    // A fork bomb stops at the pids limit …
    let run = with_pids_limit("10", spawn);
    assert_ne!(run.0.status.code(), Some(0));
    assert!(run.stderr().contains("can't fork"), "{}", run.stderr());
    // The container cannot raise it: its cgroups are read-only, as in
    // Docker's (the hierarchy's own file is found through the v1 or v2
    // layout).
    let raise = with_pids_limit(
        "10",
        "for f in /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max; do \
         [ -e $f ] && { echo max > $f; cat $f; }; done",
    );
    assert_eq!(raise.stdout(), "10\n", "{}", raise.stderr());
    assert!(
        raise.stderr().contains("Read-only file system"),
        "{}",
        raise.stderr()
    );
    // … and not below it.
    let out = with_pids_limit("64", spawn).ok();
    assert_eq!(out, "all started\n");
    // A process over its memory limit is killed.
    let run = d.berth_with(
        &[
            "container",
            "run",
            "--rm",
            "-m",
            "32m",
            "--memory-swap",
            "32m",
            "localhost/busybox-test",
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
        ],
        &env,
        None,
    );
    assert_eq!(run.0.status.code(), Some(137), "{}", run.stdout());
    assert!(!run.stdout().contains("survived"));
    // … and recorded as killed for lack of memory.
    d.berth_with(
        &[
            "container",
            "run",
            "-d",
            "--name",
            "hungry",
            "-m",
            "32m",
            "--memory-swap",
            "32m",
            "localhost/busybox-test",
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a)",
        ],
        &env,
        None,
    )
    .ok();
    let code = d
        .berth_with(&["container", "wait", "hungry"], &env, None)
        .ok();
    assert_eq!(code, "137\n");
    let rec = d
        .berth_with(&["container", "inspect", "hungry"], &env, None)
        .json();
    assert_eq!(rec[0]["State"]["OOMKilled"], true, "{rec}");
    d.berth_with(&["container", "rm", "hungry"], &env, None)
        .ok();
}

#[test]
fn restart_policies_restart_until_stopped_and_start_runs_again() {
    let d = Dir::new("restart");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let wait_for = |pred: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline && !pred() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(pred(), "condition not reached in time");
    };
    d.berth_with(
        &[
            "container",
            "run",
            "-d",
            "--name",
            "flaky",
            "--restart",
            "on-failure:2",
            "localhost/busybox-test",
            "sh",
            "-c",
            "echo run; exit 1",
        ],
        &env,
        None,
    )
    .ok();
    wait_for(&|| {
        d.berth_with(&["container", "logs", "flaky"], &env, None)
            .stdout()
            == "run\nrun\nrun\n"
            && d.berth_with(&["container", "ls", "-a"], &env, None)
                .stdout()
                .contains("exited (1)")
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        d.berth_with(&["container", "logs", "flaky"], &env, None)
            .stdout(),
        "run\nrun\nrun\n",
        "no fourth run"
    );

    // `always` restarts a clean exit, but never after an explicit stop.
    d.berth_with(
        &[
            "container",
            "run",
            "-d",
            "--name",
            "loop",
            "--restart",
            "always",
            "localhost/busybox-test",
            "sh",
            "-c",
            "echo up; sleep 0.2",
        ],
        &env,
        None,
    )
    .ok();
    wait_for(&|| {
        d.berth_with(&["container", "logs", "loop"], &env, None)
            .stdout()
            .matches("up")
            .count()
            >= 2
    });
    d.berth_with(&["container", "stop", "-t", "1", "loop"], &env, None)
        .ok();
    let after_stop = d
        .berth_with(&["container", "logs", "loop"], &env, None)
        .stdout();
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        d.berth_with(&["container", "logs", "loop"], &env, None)
            .stdout(),
        after_stop
    );
    assert!(
        !d.berth_with(&["container", "ls"], &env, None)
            .ok()
            .contains("loop")
    );

    // `start` runs a stopped container again, under a new supervisor.
    d.berth_with(&["container", "start", "loop"], &env, None)
        .ok();
    wait_for(&|| {
        d.berth_with(&["container", "logs", "loop"], &env, None)
            .stdout()
            .len()
            > after_stop.len()
    });
    d.berth_with(&["container", "rm", "-f", "loop", "flaky"], &env, None)
        .ok();
    let err = d
        .berth_with(
            &[
                "container",
                "run",
                "--restart",
                "sometimes",
                "localhost/busybox-test",
                "true",
            ],
            &env,
            None,
        )
        .fails();
    assert!(err.contains("restart"), "{err}");
    assert_eq!(mounts_under(&root), 0);
}

#[test]
fn a_killed_supervisor_leaves_nothing_that_rm_cannot_clean() {
    let d = Dir::new("shimkill");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    d.berth_with(
        &[
            "container",
            "run",
            "-d",
            "--name",
            "orphan",
            "localhost/busybox-test",
            "sleep",
            "1000",
        ],
        &env,
        None,
    )
    .ok();
    let rec = d
        .berth_with(&["container", "inspect", "orphan"], &env, None)
        .json();
    let shim = rec[0]["Berth"]["shim_pid"].as_i64().unwrap() as i32;
    let id = rec[0]["Id"].as_str().unwrap().to_string();
    let pid = rec[0]["State"]["Pid"].as_i64().unwrap() as i32;
    // kill -9 the supervisor: the container keeps running, orphaned.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(shim).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        d.berth_with(&["container", "ls"], &env, None)
            .ok()
            .contains("orphan")
    );
    d.berth_with(&["container", "rm", "-f", "orphan"], &env, None)
        .ok();
    // The init is gone (or a zombie waiting for the host's init to reap it).
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .map(|(_, r)| r.chars().next().unwrap_or('?'))
                .unwrap_or('?')
        })
        .unwrap_or('X');
    assert!(
        state == 'X' || state == 'Z',
        "the container's init still runs (state {state})"
    );
    let leaked: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .filter(|c| c.path().join("berth").join(&id).exists())
        .collect();
    assert!(leaked.is_empty(), "cgroups left: {leaked:?}");
    assert_eq!(mounts_under(&root), 0);
}

#[test]
fn exec_joins_a_running_container_as_the_asked_user_and_passes_its_exit_code() {
    let d = Dir::new("exec");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let run = |args: &[&str]| d.berth_with(args, &env, None);
    run(&[
        "container",
        "run",
        "-d",
        "--name",
        "host",
        "localhost/busybox-test",
        "sh",
        "-c",
        "echo secret >/tmp/s; sleep 1000",
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Same mount namespace: the file written by the container's init.
    assert_eq!(
        run(&["container", "exec", "host", "cat", "/tmp/s"]).ok(),
        "secret\n"
    );
    // Same pid namespace: the container's init is pid 1.
    let ps = run(&["container", "exec", "host", "cat", "/proc/1/cmdline"]).ok();
    assert!(ps.starts_with("sleep"), "{ps:?}");
    let out = run(&[
        "container",
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "X=1",
        "host",
        "sh",
        "-c",
        "id -u; pwd; echo $X",
    ])
    .ok();
    assert_eq!(out, "65534\n/tmp\n1\n");
    let code = run(&["container", "exec", "host", "sh", "-c", "exit 7"]);
    assert_eq!(code.0.status.code(), Some(7));
    let err = run(&["container", "exec", "host", "no-such-binary"]).fails();
    assert!(err.contains("no-such-binary"), "{err}");
    run(&["container", "stop", "-t", "1", "host"]).ok();
    let err = run(&["container", "exec", "host", "true"]).fails();
    assert!(err.contains("not running"), "{err}");
    run(&["container", "rm", "host"]).ok();
}

/// `tests/fixtures/NAME.c` built statically (for containers without a C
/// library) into the sandbox, as a read-only bind of it at `/NAME`.
pub fn static_binary(d: &Dir, name: &str) -> String {
    let out = d.path().join(name);
    let status = std::process::Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(format!(
            "{}/tests/fixtures/{name}.c",
            env!("CARGO_MANIFEST_DIR")
        ))
        .status()
        .expect("cc: scripts/test installs gcc and libc6-dev");
    assert!(status.success());
    format!("{}:/{name}:ro", out.display())
}

#[test]
fn the_default_seccomp_profile_binds_init_and_exec_alike() {
    let d = Dir::new("seccomp");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let probe = static_binary(&d, "syscall_probe");
    // Docker's profile with moby's later hardening: io_uring, AF_ALG and
    // AF_VSOCK refused too; clone3 says ENOSYS so libc falls back to clone.
    let refused = "io_uring_setup EPERM\nsocket_inet ok\nsocket_alg EPERM\nsocket_vsock EPERM\n\
                   unshare_user EPERM\nkeyctl EPERM\nadd_key EPERM\nbpf EPERM\n\
                   perf_event_open EPERM\nuserfaultfd EPERM\nopen_by_handle_at EPERM\n\
                   mount EPERM\nkexec_load EPERM\ninit_module EPERM\nclone3 ENOSYS\n";
    for user in ["0", "1000:1000"] {
        let out = d
            .berth_with(
                &[
                    "container",
                    "run",
                    "--rm",
                    "-u",
                    user,
                    "-v",
                    &probe,
                    "localhost/busybox-test",
                    "/syscall_probe",
                ],
                &env,
                None,
            )
            .ok();
        assert_eq!(out, refused, "as {user}");
    }
    // Compiled once, then loaded ready-made by every container and exec.
    let compiled = std::fs::read_dir(std::path::Path::new(&root).join("seccomp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(compiled, 1, "one compiled filter kept under the root");

    let status = "grep -E '^(Seccomp|NoNewPrivs|CapBnd):' /proc/self/status";
    for (opt, seccomp, nnp) in [
        (None, "2", "0"),
        (Some("no-new-privileges"), "2", "1"),
        (Some("seccomp=unconfined"), "0", "0"),
    ] {
        let name = format!("sc-{seccomp}-{nnp}");
        let mut args = vec!["container", "run", "-d", "--name", &name, "-v", &probe];
        if let Some(o) = opt {
            args.extend(["--security-opt", o]);
        }
        args.extend([
            "localhost/busybox-test",
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ]);
        d.berth_with(&args, &env, None).ok();
        let init = d
            .berth_with(
                &[
                    "container",
                    "exec",
                    &name,
                    "sh",
                    "-c",
                    "grep -E '^(Seccomp|NoNewPrivs|CapBnd):' /proc/1/status",
                ],
                &env,
                None,
            )
            .ok();
        let exec = d
            .berth_with(
                &["container", "exec", &name, "sh", "-c", status],
                &env,
                None,
            )
            .ok();
        assert!(
            init.contains(&format!("Seccomp:\t{seccomp}\n"))
                && init.contains(&format!("NoNewPrivs:\t{nnp}\n")),
            "{opt:?}: {init}"
        );
        assert_eq!(
            exec, init,
            "{opt:?}: an exec'd process is bound as the init is"
        );
        if seccomp == "2" {
            let out = d
                .berth_with(&["container", "exec", &name, "/syscall_probe"], &env, None)
                .ok();
            assert_eq!(out, refused, "{opt:?}: exec");
        } else {
            let out = d
                .berth_with(&["container", "exec", &name, "/syscall_probe"], &env, None)
                .ok();
            assert!(out.contains("unshare_user ok"), "unconfined: {out}");
        }
        d.berth_with(&["container", "rm", "-f", &name], &env, None)
            .ok();
    }

    let err = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "--security-opt",
                "seccomp=/nonexistent.json",
                "localhost/busybox-test",
                "true",
            ],
            &env,
            None,
        )
        .fails();
    assert!(err.contains("/nonexistent.json"), "{err}");
    let err = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "--security-opt",
                "privileged-ish",
                "localhost/busybox-test",
                "true",
            ],
            &env,
            None,
        )
        .fails();
    assert!(err.contains("security_opt \"privileged-ish\""), "{err}");
}

/// Whether the executable of process `pid` lies on a read-only mount.
fn exe_read_only(pid: &str) -> bool {
    rustix::fs::statvfs(format!("/proc/{pid}/exe").as_str())
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

#[test]
fn berth_runs_sealed_so_no_container_can_overwrite_it() {
    // RT-01, CVE-2019-5736.
    let d = Dir::new("sealed");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let exe = std::fs::metadata(env!("CARGO_BIN_EXE_berth")).unwrap();
    // Every process the container can see, berth's own clones included
    // while an exec joins it, gets its executable opened for writing.
    d.berth_with(
        &[
            "container",
            "run",
            "-d",
            "--name",
            "hostile",
            "localhost/busybox-test",
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do for e in /proc/[0-9]*/exe; do (echo pwned > $e) 2>/dev/null; done; done",
        ],
        &env,
        None,
    )
    .ok();
    for _ in 0..30 {
        d.berth_with(&["container", "exec", "hostile", "true"], &env, None)
            .ok();
    }
    let mut exec = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["container", "exec", "hostile", "sleep", "1"])
        .env("BERTH_ROOT", &root)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(
        exe_read_only(&exec.id().to_string()),
        "an exec runs from a read-only mount of berth"
    );
    assert!(exec.wait().unwrap().success());
    let rec = d
        .berth_with(&["container", "inspect", "hostile"], &env, None)
        .json();
    let shim = rec[0]["Berth"]["shim_pid"]
        .as_i64()
        .expect("a supervisor")
        .to_string();
    assert!(
        exe_read_only(&shim),
        "the supervisor runs from a read-only mount"
    );
    d.berth_with(&["container", "rm", "-f", "hostile"], &env, None)
        .ok();
    let after = std::fs::metadata(env!("CARGO_BIN_EXE_berth")).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (exe.len(), exe.modified().unwrap()),
        "the berth binary was written to"
    );
}

#[test]
fn diff_lists_a_containers_changes_and_export_writes_its_filesystem() {
    let d = Dir::new("diff-export");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    d.berth_with(
        &[
            "container", "run", "-d", "--name", "changer", "localhost/busybox-test", "sh", "-c",
            "echo new > /tmp/added; echo changed > /www/index.html; rm /etc/group; trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ],
        &env,
        None,
    )
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let diff = d
        .berth_with(&["container", "diff", "changer"], &env, None)
        .ok();
    for want in [
        "C /tmp",
        "A /tmp/added",
        "C /www/index.html",
        "D /etc/group",
    ] {
        assert!(diff.lines().any(|l| l == want), "{want} in {diff}");
    }
    // As in Docker, the name files the runtime binds are no change.
    for name in ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"] {
        assert!(!diff.lines().any(|l| l.ends_with(name)), "{name} in {diff}");
    }
    d.berth_with(&["container", "stop", "changer"], &env, None)
        .ok();
    // Stopped, its root is mounted for the export only.
    let tarball = d.path().join("changer.tar");
    d.berth_with(
        &[
            "container",
            "export",
            "-o",
            &tarball.to_string_lossy(),
            "changer",
        ],
        &env,
        None,
    )
    .ok();
    let mut names = Vec::new();
    let mut page = String::new();
    for e in tar::Archive::new(std::fs::File::open(&tarball).unwrap())
        .entries()
        .unwrap()
    {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with("www/index.html") {
            std::io::Read::read_to_string(&mut e, &mut page).unwrap();
        }
        names.push(name);
    }
    assert_eq!(page, "changed\n");
    assert!(names.iter().any(|n| n.ends_with("tmp/added")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.ends_with("etc/group")),
        "deleted stays deleted"
    );
    assert!(names.iter().any(|n| n.ends_with("bin/busybox")));
    assert_eq!(mounts_under(&root), 0, "the export's mount is gone");

    // Committed, the changes are an image of their own.
    d.berth_with(
        &[
            "container",
            "commit",
            "-c",
            "CMD [\"cat\", \"/tmp/added\"]",
            "changer",
            "localhost/changed:1",
        ],
        &env,
        None,
    )
    .ok();
    d.berth_with(&["container", "rm", "changer"], &env, None)
        .ok();
    let out = d
        .berth_with(
            &["container", "run", "--rm", "localhost/changed:1"],
            &env,
            None,
        )
        .ok();
    assert_eq!(out, "new\n", "the new CMD and the added file");
    let check = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "localhost/changed:1",
                "sh",
                "-c",
                "cat /www/index.html; test -e /etc/group || echo no group",
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(check, "changed\nno group\n");
}

/// A loop device over a file in the test's directory, detached when dropped.
struct LoopDevice(String);

impl LoopDevice {
    fn new(d: &Dir) -> LoopDevice {
        let file = d.path().join("disk.img");
        std::fs::File::create(&file)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let out = std::process::Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup: {out:?}");
        LoopDevice(String::from_utf8(out.stdout).unwrap().trim().to_string())
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

#[test]
fn block_io_is_throttled_per_device() {
    let d = Dir::new("blkio");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let disk = LoopDevice::new(&d);
    let read = format!("dd if={} of=/dev/null bs=64k count=48 iflag=direct", disk.0);
    let run = |limit: &str| {
        let started = std::time::Instant::now();
        let rate = format!("{}:{limit}", disk.0);
        d.berth_with(
            &[
                "container",
                "run",
                "--rm",
                "--device",
                &disk.0,
                "--device-read-bps",
                &rate,
                "localhost/busybox-test",
                "sh",
                "-c",
                &read,
            ],
            &env,
            None,
        )
        .ok();
        started.elapsed()
    };
    // 3 MB at 1 MB/s takes seconds; at 1 GB/s, no time.
    let slow = run("1mb");
    let fast = run("1gb");
    assert!(slow > std::time::Duration::from_millis(1500), "{slow:?}");
    assert!(slow > fast * 2, "{slow:?} against {fast:?}");
    // A path that is no block device is named.
    let err = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "--device-write-iops",
                "/etc/hostname:10",
                "localhost/busybox-test",
                "true",
            ],
            &env,
            None,
        )
        .fails();
    assert!(
        err.contains("device-write-iops /etc/hostname: not a block device"),
        "{err}"
    );
}

#[test]
fn runc_runs_the_bundle_berth_generates_as_berth_does() {
    let d = Dir::new("runc-bundle");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let probe = "hostname; id; grep -E '^(Seccomp|NoNewPrivs|CapEff|CapBnd):' /proc/self/status; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max";
    let id = d
        .berth_with(
            &[
                "container",
                "create",
                "--name",
                "bundled",
                "--hostname",
                "probe",
                "--network",
                "none",
                "--pids-limit",
                "42",
                "--security-opt",
                "no-new-privileges",
                "localhost/busybox-test",
                "sh",
                "-c",
                probe,
            ],
            &env,
            None,
        )
        .ok();
    let bundle = std::path::Path::new(&root)
        .join("containers")
        .join(id.trim());
    // runc takes the OCI runtime spec as berth wrote it, unchanged.
    let state = d.path().join("runc-state");
    let runc = std::process::Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(format!("berth-e2e-{}", &id.trim()[..12]))
        .output()
        .unwrap();
    let under_runc = String::from_utf8_lossy(&runc.stdout).into_owned();
    assert!(runc.status.success(), "{runc:?}");
    assert!(under_runc.starts_with("probe\nuid=0(root)"), "{under_runc}");
    assert!(under_runc.contains("Seccomp:\t2\n"), "{under_runc}");
    assert!(under_runc.contains("NoNewPrivs:\t1\n"), "{under_runc}");
    assert!(under_runc.ends_with("42\n"), "{under_runc}");
    // berth runs the same container to the same view of itself; `start
    // -a` shows what it writes from its start.
    let attached = d
        .berth_with(&["container", "start", "-a", "bundled"], &env, None)
        .ok();
    assert_eq!(attached, under_runc);
    let under_berth = d
        .berth_with(&["container", "logs", "bundled"], &env, None)
        .ok();
    assert_eq!(under_berth, under_runc);
    d.berth_with(&["container", "rm", "bundled"], &env, None)
        .ok();
}

#[test]
fn userns_private_maps_container_root_to_an_unprivileged_host_uid() {
    use std::os::unix::fs::MetadataExt;
    let d = Dir::new("userns");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    let compose = |mode: &str| {
        format!(
            r#"
name: un
services:
  app:
    image: localhost/busybox-test:latest
    network_mode: none
    userns_mode: {mode}
    volumes: ["data:/data"]
    command: ["sh", "-c", "echo kept > /data/f; echo up > /upfile; trap 'exit 0' TERM; while true; do sleep 0.1; done"]
volumes:
  data: {{}}
"#
        )
    };
    d.write("compose.yaml", &compose("keep-id"));
    let err = d.berth_with(&["up", "-d"], &env, None).fails();
    assert!(
        err.contains("userns_mode") && err.contains("keep-id"),
        "{err}"
    );
    d.write("compose.yaml", &compose("private"));
    d.berth_with(&["up", "-d"], &env, None).ok();
    let exec = |cmd: &str| {
        d.berth_with(&["exec", "app", "sh", "-c", cmd], &env, None)
            .ok()
    };
    for _ in 0..50 {
        if exec("cat /data/f 2>/dev/null") == "kept\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Root inside, an unprivileged range outside; exec joins the same.
    let map = exec("id -u; cat /proc/self/uid_map; cat /proc/1/uid_map");
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields.len(), 7, "{map}");
    let base: u32 = fields[2].parse().unwrap();
    assert_eq!(
        (fields[0], fields[1], fields[3]),
        ("0", "0", "65536"),
        "{map}"
    );
    assert_eq!(
        &fields[1..4],
        &fields[4..7],
        "exec and init share the namespace"
    );
    assert!(base >= 100_000, "{map}");
    // Its runtime made its network namespace; the loopback is up there too.
    assert_eq!(
        exec("ip -4 addr show lo | grep -o 127.0.0.1/8"),
        "127.0.0.1/8\n"
    );
    let pid = d
        .berth_with(
            &["container", "inspect", "-f", "{{.State.Pid}}", "un-app-1"],
            &env,
            None,
        )
        .ok();
    let mode = d
        .berth_with(
            &[
                "container",
                "inspect",
                "-f",
                "{{.HostConfig.UsernsMode}}",
                "un-app-1",
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(mode, "private\n");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    assert!(
        status.contains(&format!("\nUid:\t{base}\t{base}\t{base}\t{base}\n")),
        "{status}"
    );
    // The container sees its files as root's; on the host the image's and
    // its layer's keep their owners, its volume is the range's root's.
    assert_eq!(
        exec("ls -n /data/f /upfile /bin/busybox | awk '{print $3 $4}'"),
        "00\n00\n00\n"
    );
    let volume = std::path::Path::new(&root).join("volumes/un_data/_data/f");
    assert_eq!(std::fs::metadata(&volume).unwrap().uid(), base);
    let id = d
        .berth_with(
            &["container", "inspect", "-f", "{{.Id}}", "un-app-1"],
            &env,
            None,
        )
        .ok();
    let upper = std::path::Path::new(&root)
        .join("containers")
        .join(id.trim())
        .join("upper/upfile");
    assert_eq!(std::fs::metadata(&upper).unwrap().uid(), 0);
    let cp_in = d.path().join("cp-in");
    std::fs::write(&cp_in, "copied\n").unwrap();
    d.berth_with(&["cp", cp_in.to_str().unwrap(), "app:/cp-in"], &env, None)
        .ok();
    assert_eq!(
        exec("ls -n /cp-in | awk '{print $3 $4}'; cat /cp-in"),
        "00\ncopied\n"
    );
    let tar = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["container", "export", "un-app-1"])
        .env("BERTH_ROOT", &root)
        .output()
        .unwrap();
    let mut archive = tar::Archive::new(&tar.stdout[..]);
    let owner = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().as_os_str() == "upfile")
        .map(|e| (e.header().uid().unwrap(), e.header().gid().unwrap()));
    assert_eq!(owner, Some((0, 0)), "export shows the container's owners");

    // RT-20: the range's root can write nothing of the state root but
    // the volume it owns.
    let writable = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={base}"),
            &format!("--regid={base}"),
            "--clear-groups",
            "find",
            &root,
            "-writable",
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&writable.stdout).into_owned();
    // Nor owns anything of its container's directory, those it cannot list
    // included (its root as mounted shows the container's view, in range).
    let container_dir = std::path::Path::new(&root)
        .join("containers")
        .join(id.trim());
    let owned = std::process::Command::new("find")
        .arg(&container_dir)
        .args(["-path", "*/merged", "-prune", "-o", "-uid"])
        .arg(base.to_string())
        .arg("-print")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&owned.stdout),
        "",
        "owned by the remapped root"
    );
    let volume_dir = format!("{root}/volumes/un_data/_data");
    assert!(
        listed.lines().all(|l| l.starts_with(&volume_dir)),
        "writable by the remapped root: {listed}"
    );
    d.berth_with(&["down", "-v"], &env, None).ok();
}

#[test]
fn a_foreground_run_on_a_terminal_detaches_and_returns_its_exit_code() {
    let d = Dir::new("run-it");
    let root = busybox_root(&d);
    let env = [("BERTH_ROOT", root.as_str())];
    // `script` gives the run a terminal of its own.
    let run = |name: &str, typed: &[&[u8]]| {
        let line = format!(
            "{} container run -it --rm --name {name} localhost/busybox-test sh",
            env!("CARGO_BIN_EXE_berth")
        );
        let mut child = crate::sandbox::in_test_netns(&mut std::process::Command::new("script"))
            .args(["-qec", &line, "/dev/null"])
            .env("BERTH_ROOT", &root)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        for t in typed {
            use std::io::Write;
            std::thread::sleep(std::time::Duration::from_millis(800));
            stdin.write_all(t).unwrap();
            stdin.flush().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(800));
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code(),
        )
    };
    // What the shell wrote before the attachment (its banner) is there too.
    let (text, code) = run("fg", &[b"echo hi-$((40+2))\n", b"exit 3\n"]);
    assert!(text.contains("BusyBox") && text.contains("hi-42"), "{text}");
    assert_eq!(code, Some(3), "{text}");
    let all = d.berth_with(&["container", "ls", "-aq"], &env, None).ok();
    assert_eq!(all, "", "--rm removed it");

    let (text, code) = run("fg2", &[b"echo before\n", b"\x10\x11"]);
    assert!(text.contains("detached from fg2"), "{text}");
    assert_eq!(code, Some(0));
    let running = d
        .berth_with(
            &["container", "inspect", "-f", "{{.State.Status}}", "fg2"],
            &env,
            None,
        )
        .ok();
    assert_eq!(running, "running\n", "it runs on after the detach");
    d.berth_with(&["container", "rm", "-f", "fg2"], &env, None)
        .ok();
}
