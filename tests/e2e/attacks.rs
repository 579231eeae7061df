//! The security catalog's attacks from inside a container (its RT and FS
//! entries that need an attacker there: `tests/fixtures/racer.c`, the
//! catalog's H3), each judged by sentinels outside every container root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::container::{
    add_symlink, busybox_root, busybox_tar, import_image, run_script, static_binary,
};
use crate::network::Netns;
use crate::sandbox::{Dir, Run};

/// A directory outside every container root holding a file with a random
/// token: what an escape would write to, read, chmod or delete (the
/// catalog's H2).
struct Sentinel {
    dir: PathBuf,
    token: String,
    before: Vec<(String, u32, u32, Vec<u8>)>,
}

impl Sentinel {
    fn new(d: &Dir) -> Sentinel {
        let dir = d.path().join("sentinel");
        std::fs::create_dir(&dir).unwrap();
        let token = format!("sentinel-token-{}-{:?}", std::process::id(), dir);
        std::fs::write(dir.join("f"), &token).unwrap();
        std::fs::set_permissions(dir.join("f"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let before = Self::snapshot(&dir);
        Sentinel { dir, token, before }
    }

    fn snapshot(dir: &Path) -> Vec<(String, u32, u32, Vec<u8>)> {
        let meta = std::fs::symlink_metadata(dir).unwrap();
        let mut all = vec![(".".to_string(), meta.mode(), meta.uid(), Vec::new())];
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let data = std::fs::read(e.path()).unwrap_or_default();
            let name = e.file_name().to_string_lossy().into_owned();
            all.push((name, meta.mode(), meta.uid(), data));
        }
        all.sort();
        all
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// Content, modes and owners as made, and no entry added or removed.
    fn assert_intact(&self) {
        assert!(self.dir.is_dir(), "the sentinel directory is gone");
        assert_eq!(Self::snapshot(&self.dir), self.before, "a sentinel changed");
    }
}

/// How many times a race is run: a count every CI run affords, or with
/// `BERTH_SOAK=1` set, the catalog's count for its soak tier (X).
fn rounds(ci: usize, soak: usize) -> usize {
    if std::env::var_os("BERTH_SOAK").is_some() {
        soak
    } else {
        ci
    }
}

/// A sandbox `name` with the busybox image in its state root, a sentinel
/// outside it and the racer built (its bind, for `-v`).
fn scene(name: &str) -> (Dir, String, Sentinel, String) {
    let d = Dir::new(name);
    let root = busybox_root(&d);
    let sentinel = Sentinel::new(&d);
    let racer = static_binary(&d, "racer");
    (d, root, sentinel, racer)
}

/// `berth` with the state root `root`.
fn berth<'a>(d: &'a Dir, root: &'a str) -> impl Fn(&[&str]) -> Run + 'a {
    move |args| d.berth_with(args, &[("BERTH_ROOT", root)], None)
}

/// Waits until the container `name`'s log shows `line`.
fn wait_for_log(run: &dyn Fn(&[&str]) -> Run, name: &str, line: &str) {
    for _ in 0..100 {
        if run(&["container", "logs", name]).stdout().contains(line) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{name} never logged {line:?}");
}

/// Starts container `name` running `script` (which ends in a `racer`
/// that prints "racing") with the racer at `/racer` and `volume`
/// mounted, and waits until the race is on.
fn start_racing(
    run: &dyn Fn(&[&str]) -> Run,
    racer: &str,
    name: &str,
    volume: Option<&str>,
    script: &str,
) {
    let mut args = vec!["container", "run", "-d", "--name", name, "-v", racer];
    if let Some(v) = volume {
        args.extend(["-v", v]);
    }
    args.extend(["localhost/busybox-test", "sh", "-c", script]);
    run(&args).ok();
    wait_for_log(run, name, "racing");
}

fn host_root_entries() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// RT-31: with CAP_SYS_CHROOT, a chroot into a subdirectory and `..` from
/// outside it climbs out of a runtime that only chroots; under
/// `pivot_root` it reaches the container's own root and no further.
#[test]
fn a_double_chroot_escape_stays_in_the_container_root() {
    let d = Dir::new("chroot-escape");
    let root = busybox_root(&d);
    let racer = static_binary(&d, "racer");
    let host_only = d.path().join("host-only");
    std::fs::write(&host_only, "host").unwrap();
    let out = berth(&d, &root)(&[
        "container",
        "run",
        "--rm",
        "-v",
        &racer,
        "localhost/busybox-test",
        "/racer",
        "chroot",
        host_only.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(out, "confined\nroot has www: yes\n");
}

/// RT-02: while processes join the container through `exec`, its root
/// tries to ptrace each one it sees; it may trace them once they run the
/// image's program, never while they are still berth (non-dumpable, full
/// capabilities), and none holds a descriptor beyond 0-2.
#[test]
fn processes_joining_a_container_cannot_be_traced_before_they_exec() {
    let d = Dir::new("ptrace-exec");
    let root = busybox_root(&d);
    let racer = static_binary(&d, "racer");
    let run = berth(&d, &root);
    run(&[
        "container",
        "run",
        "-d",
        "--name",
        "traced",
        "-v",
        &racer,
        "localhost/busybox-test",
        "sh",
        "-c",
        // Not as pid 1, whose end would kill the last exec mid-way.
        "/racer ptrace 60; sleep 0.5",
    ])
    .ok();
    for _ in 0..rounds(60, 500) {
        run(&["container", "exec", "traced", "true"]).ok();
        run(&["container", "exec", "traced", "sleep", "0.02"]).ok();
    }
    run(&["container", "exec", "traced", "mkdir", "/tmp/stop"]).ok();
    run(&["container", "wait", "traced"]).ok();
    let log = run(&["container", "logs", "traced"]).ok();
    run(&["container", "rm", "traced"]).ok();
    assert!(!log.contains("FINDING"), "{log}");
    let attached: u64 = log
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(attached > 0, "the attacker never traced anything: {log}");
}

/// RT-04, RT-05: one container exchanges a directory of a shared volume
/// with a symlink to a host directory in a loop, while others mount that
/// volume with a second volume and a file bound below the raced
/// directory: every mount target and every directory or file made for
/// one resolves inside the new container's root.
#[test]
fn mount_targets_stay_in_the_root_while_a_container_swaps_them() {
    let (d, root, sentinel, racer) = scene("mount-race");
    let run = berth(&d, &root);
    let script = format!(
        "mkdir -p /v/dir && ln -sfn {} /v/link && exec /racer swap /v/dir /v/link",
        sentinel.path()
    );
    start_racing(&run, &racer, "swapper", Some("shared:/v"), &script);
    let host_before = host_root_entries();
    d.write("bound", "bound file\n");
    let bound = format!("{}:/data/dir/file", d.path().join("bound").display());
    let mut mounted = 0;
    for _ in 0..rounds(40, 1000) {
        let r = run(&[
            "container",
            "run",
            "--rm",
            "-v",
            "shared:/data",
            "-v",
            "other:/data/dir",
            "-v",
            &bound,
            "localhost/busybox-test",
            "cat",
            "/data/dir/file",
        ]);
        // Where the race made the path a symlink, the mount landed on
        // whatever it names inside the container, or the run failed.
        if r.stdout() == "bound file\n" {
            mounted += 1;
        }
    }
    run(&["container", "rm", "-f", "swapper"]).ok();
    assert!(mounted > 0, "no run mounted at all");
    sentinel.assert_intact();
    assert_eq!(host_root_entries(), host_before, "an entry appeared in /");
    assert_eq!(
        std::fs::read_to_string(d.path().join("bound")).unwrap(),
        "bound file\n"
    );
}

/// RT-08: the image seeds `/dev/console`, `/dev/ptmx` and `/dev/pts/*` as
/// symlinks to `/proc/sysrq-trigger`; a container on a terminal gets a
/// fresh `/dev`, its console is the terminal berth allocated, and
/// `/proc/sysrq-trigger` stays read-only.
#[test]
fn a_terminal_console_is_the_allocated_pty_whatever_the_image_put_in_dev() {
    let d = Dir::new("console");
    let root = d.path().join("state").to_string_lossy().into_owned();
    let mut b = busybox_tar(&["dev"]);
    for dir in ["dev", "dev/pts"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, dir, &[][..]).unwrap();
    }
    for link in [
        "dev/console",
        "dev/ptmx",
        "dev/pts/0",
        "dev/pts/1",
        "dev/pts/ptmx",
    ] {
        add_symlink(&mut b, link, "/proc/sysrq-trigger");
    }
    import_image(&d, &root, b, "localhost/busybox-test:latest");
    let line = format!(
        "{} container run -t --rm localhost/busybox-test sh -c '{}'",
        env!("CARGO_BIN_EXE_berth"),
        "stat -c \"%F %t:%T %i\" /dev/console; stat -L -c \"%F %t:%T %i\" /proc/self/fd/0; \
         test -w /proc/sysrq-trigger && echo writable || echo read-only"
    );
    // `script` gives the run a terminal of its own.
    let out = crate::sandbox::in_test_netns(&mut std::process::Command::new("script"))
        .args(["-qec", &line, "/dev/null"])
        .env("BERTH_ROOT", &root)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    // (`script` echoes the end of its empty input as `^@`.)
    let text = String::from_utf8_lossy(&out.stdout)
        .replace(['\r', '\0'], "")
        .replace("^@", "");
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("character special file 88:"), "{text}");
    assert_eq!(
        lines[0], lines[1],
        "the console is not the terminal: {text}"
    );
    assert_eq!(lines[2], "read-only", "{text}");
}

/// RT-11: the image's `/etc` and `/run` are symlinks to a host directory;
/// secrets, configs, the name files and the init binary are still
/// mounted inside the container's root, with berth's content.
#[test]
fn injected_files_land_inside_the_root_when_the_image_links_their_directories_out() {
    let d = Dir::new("injected");
    let ns = Netns::new();
    let sentinel = Sentinel::new(&d);
    let root = d.path().join("state").to_string_lossy().into_owned();
    let mut b = busybox_tar(&["etc"]);
    add_symlink(&mut b, "etc", sentinel.path());
    add_symlink(&mut b, "run", &format!("../../../../..{}", sentinel.path()));
    import_image(&d, &root, b, "localhost/busybox-test:latest");
    d.write("password.txt", "s3cret\n");
    d.write("app.conf", "level=debug\n");
    d.write(
        "compose.yaml",
        r#"
name: inject
services:
  app:
    image: localhost/busybox-test:latest
    init: true
    network_mode: none
    hostname: injected
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    secrets: [password]
    configs:
      - source: app.conf
        target: /etc/app.conf
secrets:
  password:
    file: ./password.txt
configs:
  app.conf:
    file: ./app.conf
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let out = ns
        .berth(
            &d,
            &root,
            &[
                "exec",
                "app",
                "sh",
                "-c",
                "cat /run/secrets/password /etc/app.conf /etc/hostname",
            ],
        )
        .ok();
    ns.berth(&d, &root, &["down"]).ok();
    assert_eq!(out, "s3cret\nlevel=debug\ninjected\n");
    sentinel.assert_intact();
}

/// FS-01..FS-04: `cp` out of and into a container whose root exchanges a
/// directory with a symlink to a host directory in a loop, and holds
/// symlinks to host files: nothing is read from or written to the host
/// through them; a symlink is copied as a link; no glob is expanded.
#[test]
fn cp_never_reaches_the_host_through_a_containers_symlinks_even_mid_swap() {
    let (d, root, sentinel, racer) = scene("cp-race");
    let run = berth(&d, &root);
    let s = sentinel.path();
    let script = format!(
        "mkdir -p /w/d && echo inside > /w/d/f && ln -s {s} /w/l && ln -s {s}/f /a \
         && ln -s {s} /dst && echo star > '/x*' && echo a > /xa \
         && exec /racer swap /w/d /w/l"
    );
    start_racing(&run, &racer, "cpvictim", None, &script);
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    d.write("payload", "payload\n");
    let payload = d.path().join("payload");
    let payload = payload.to_str().unwrap();
    let mut copied = 0;
    for i in 0..rounds(200, 2000) {
        let file = out.join(format!("f{i}"));
        if run(&["container", "cp", "cpvictim:/w/d/f", file.to_str().unwrap()])
            .stderr()
            .is_empty()
        {
            copied += 1;
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "inside\n");
        }
        if i % 10 == 0 {
            let tree = out.join(format!("d{i}"));
            run(&["container", "cp", "cpvictim:/w/d", tree.to_str().unwrap()]);
        }
        run(&["container", "cp", payload, &format!("cpvictim:/w/d/in{i}")]);
    }
    assert!(copied > 0, "no copy got through at all");
    // FS-03: a destination that is a symlink to a host directory.
    std::fs::create_dir(d.path().join("tree")).unwrap();
    d.write("tree/secret", "tree\n");
    std::fs::set_permissions(
        d.path().join("tree"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let tree = d.path().join("tree");
    run(&["container", "cp", tree.to_str().unwrap(), "cpvictim:/dst"]);
    run(&["container", "cp", tree.to_str().unwrap(), "cpvictim:/dst/"]);
    // FS-04: a symlink to a host file comes out as the link; `*` is a name.
    let link = out.join("a");
    run(&["container", "cp", "cpvictim:/a", link.to_str().unwrap()]).ok();
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        sentinel.dir.join("f"),
        "the link itself is copied"
    );
    let star = out.join("star");
    run(&["container", "cp", "cpvictim:/x*", star.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(&star).unwrap(), "star\n");
    run(&["container", "rm", "-f", "cpvictim"]).ok();

    sentinel.assert_intact();
    let grep = std::process::Command::new("grep")
        .args(["-rl", &sentinel.token])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&grep.stdout)
    );
}

/// FS-05, FS-06: the image's `tar`, `ps`, `xz`, `gzip`, `nsenter`, `id`
/// and an NSS module (`libnss_files.so.2`, named by its
/// `nsswitch.conf`) each leave a mark if run or loaded; `cp` both ways,
/// `exec -u` by name, `top`, `logs` and a run as a named user use none.
#[test]
fn no_command_runs_a_helper_or_loads_a_library_from_the_image() {
    let d = Dir::new("helpers");
    let root = d.path().join("state").to_string_lossy().into_owned();
    let marks = d.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let helpers = ["tar", "ps", "xz", "unxz", "gzip", "zcat", "nsenter", "id"];
    let mut b = busybox_tar(&helpers);
    let add = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    };
    for (dir, mode) in [("usr", 0o755), ("usr/bin", 0o755), ("lib", 0o755)] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        b.append_data(&mut h, dir, &[][..]).unwrap();
    }
    for helper in helpers.iter().chain(&["unpigz", "zstd"]) {
        let body = format!(
            "#!/bin/sh\ntouch {}/{helper} /tmp/ran-{helper}\n",
            marks.display()
        );
        add(&mut b, &format!("bin/{helper}"), 0o755, body.as_bytes());
        add(&mut b, &format!("usr/bin/{helper}"), 0o755, body.as_bytes());
    }
    let nss = d.path().join("nss.c");
    std::fs::write(
        &nss,
        format!(
            "#include <fcntl.h>\n__attribute__((constructor)) static void mark(void) {{ \
             open(\"{}/nss\", O_CREAT | O_WRONLY, 0644); open(\"/tmp/ran-nss\", O_CREAT | O_WRONLY, 0644); }}\n",
            marks.display()
        ),
    )
    .unwrap();
    let so = d.path().join("libnss_files.so.2");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&nss)
        .status()
        .unwrap();
    assert!(built.success());
    let so = std::fs::read(&so).unwrap();
    add(&mut b, "lib/libnss_files.so.2", 0o755, &so);
    add(
        &mut b,
        "etc/nsswitch.conf",
        0o644,
        b"passwd: files\ngroup: files\n",
    );
    // busybox_tar's passwd has no `app`; a second entry replaces it.
    add(
        &mut b,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\n",
    );
    import_image(&d, &root, b, "localhost/busybox-test:latest");
    let run = berth(&d, &root);
    run(&[
        "container",
        "run",
        "-d",
        "--name",
        "helped",
        "localhost/busybox-test",
        "sh",
        "-c",
        "echo started; trap 'exit 0' TERM; while true; do sleep 0.2; done",
    ])
    .ok();
    wait_for_log(&run, "helped", "started");
    d.write("file", "file\n");
    let file = d.path().join("file");
    let copied = d.path().join("copied");
    run(&["container", "cp", file.to_str().unwrap(), "helped:/tmp/"]).ok();
    run(&["container", "cp", "helped:/etc", copied.to_str().unwrap()]).ok();
    let who = run(&[
        "container",
        "exec",
        "-u",
        "app",
        "helped",
        "sh",
        "-c",
        "echo $(cat /proc/self/status | grep ^Uid)",
    ])
    .ok();
    assert!(who.starts_with("Uid: 1000"), "{who}");
    run(&["container", "top", "helped"]).ok();
    run(&["container", "logs", "helped"]).ok();
    run(&[
        "container",
        "run",
        "--rm",
        "-u",
        "app",
        "localhost/busybox-test",
        "true",
    ])
    .ok();
    let ran = run(&["container", "exec", "helped", "ls", "/tmp"]).ok();
    run(&["container", "rm", "-f", "helped"]).ok();
    assert_eq!(ran, "file\n", "a helper ran in the container");
    let marked: Vec<_> = std::fs::read_dir(&marks).unwrap().collect();
    assert!(marked.is_empty(), "a helper ran on the host: {marked:?}");
}

/// FS-09, FS-11, FS-12: containers plant symlinks to host files in a
/// volume and in place of a bind mount's stub directory, and race in a
/// shared volume; a later container on the used volume, `rm`, and
/// `volume rm` follow none of them. Bind sources stay as they were.
#[test]
fn removal_and_reuse_follow_no_symlink_a_container_planted() {
    let (d, root, sentinel, racer) = scene("planted");
    let run = berth(&d, &root);
    let s = sentinel.path();
    d.write("bindfile", "bind file\n");
    d.write("binddir/kept", "kept\n");
    let bindfile = format!("{}:/b/file", d.path().join("bindfile").display());
    let binddir = format!("{}:/c/dir", d.path().join("binddir").display());
    let plant = format!(
        "ln -s {s}/f /v/cfg && ln -s {s} /v/dir && mkdir /v/sub && ln -s {s} /v/sub/deep \
         && mv /b /b.old && ln -s {s} /b && mv /c /c.old && ln -s {s} /c && echo planted"
    );
    let out = run(&[
        "container",
        "run",
        "--name",
        "planter",
        "-v",
        "planted:/v",
        "-v",
        &bindfile,
        "-v",
        &binddir,
        "localhost/busybox-test",
        "sh",
        "-c",
        &plant,
    ])
    .ok();
    assert_eq!(out, "planted\n");
    // A volume in use already is not filled from the image again.
    let www = run_script(&d, &root, &["-v", "planted:/www"], "ls /www").ok();
    assert_eq!(www, "cfg\ndir\nsub\n");
    run(&["container", "rm", "planter"]).ok();
    run(&["volume", "rm", "planted"]).ok();

    // Racing in a shared volume while a container on it is removed.
    let race = format!(
        "mkdir -p /v/d/e && echo x > /v/d/e/x && ln -s {s} /v/l && exec /racer swap /v/d /v/l"
    );
    start_racing(&run, &racer, "swapper", Some("raced:/v"), &race);
    run(&[
        "container",
        "run",
        "-d",
        "--name",
        "user",
        "-v",
        "raced:/w",
        "localhost/busybox-test",
        "sleep",
        "60",
    ])
    .ok();
    run(&["container", "rm", "-f", "user"]).ok();
    let err = run(&["volume", "rm", "raced"]).fails();
    assert!(err.contains("in use"), "{err}");
    run(&["container", "rm", "-f", "swapper"]).ok();
    run(&["volume", "rm", "raced"]).ok();

    sentinel.assert_intact();
    assert_eq!(
        std::fs::read_to_string(d.path().join("bindfile")).unwrap(),
        "bind file\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("binddir/kept")).unwrap(),
        "kept\n"
    );
}

/// RT-22: 50 runs with a volume, a bind mount and a tmpfs leave no mount
/// on the host.
#[test]
fn fifty_runs_with_mounts_leave_no_mount_on_the_host() {
    let d = Dir::new("mount-cycles");
    let root = busybox_root(&d);
    let run = berth(&d, &root);
    std::fs::create_dir(d.path().join("bound")).unwrap();
    let bound = format!("{}:/bound", d.path().join("bound").display());
    let sandbox = d.path().to_str().unwrap();
    let ours = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(sandbox))
            .count()
    };
    // Foreground runs and supervised ones, removed while they run.
    for i in 0..50 {
        let name = format!("cycle{i}");
        let (mode, command) = if i % 2 == 0 {
            ("--rm", "true")
        } else {
            ("-d", "sleep 5")
        };
        run(&[
            "container",
            "run",
            mode,
            "--name",
            &name,
            "-v",
            "vol:/vol",
            "-v",
            &bound,
            "--tmpfs",
            "/scratch",
            "localhost/busybox-test",
            "sh",
            "-c",
            command,
        ])
        .ok();
        if mode == "-d" {
            run(&["container", "rm", "-f", &name]).ok();
        }
    }
    assert_eq!(ours(), 0, "a mount under the sandbox is left");
}

/// FS-14: a service mounts a subpath of a volume in which another
/// exchanges that subpath with a symlink to a host directory in a loop:
/// each run mounts the volume's own directory or fails, never the host's;
/// a subpath climbing out of the volume is refused.
#[test]
fn a_volume_subpath_stays_in_the_volume_while_a_container_swaps_it() {
    let (d, root, sentinel, racer) = scene("subpath");
    let ns = Netns::new();
    let s = sentinel.path();
    let compose = |subpath: &str| {
        format!(
            r#"
name: subpath
services:
  swapper:
    image: localhost/busybox-test:latest
    network_mode: none
    volumes: ["data:/v", "{racer}"]
    command: ["sh", "-c", "mkdir -p /v/a/b && echo inside > /v/a/b/f && ln -sfn {s} /v/a/l && exec /racer swap /v/a/b /v/a/l"]
  user:
    image: localhost/busybox-test:latest
    network_mode: none
    command: ["cat", "/sub/f"]
    volumes:
      - type: volume
        source: data
        target: /sub
        volume:
          subpath: {subpath}
volumes:
  data: {{}}
"#
        )
    };
    d.write("compose.yaml", &compose("a/b"));
    ns.berth(&d, &root, &["up", "-d", "swapper"]).ok();
    wait_for_log(
        &|args: &[&str]| ns.berth(&d, &root, args),
        "subpath-swapper-1",
        "racing",
    );
    let mut mounted = 0;
    for _ in 0..rounds(30, 1000) {
        let r = ns.berth(&d, &root, &["run", "--rm", "user"]);
        assert!(!r.stdout().contains(&sentinel.token), "{}", r.stdout());
        if r.stdout() == "inside\n" {
            mounted += 1;
        }
    }
    assert!(mounted > 0, "no run mounted the subpath at all");
    d.write("compose.yaml", &compose("../../etc"));
    let err = ns.berth(&d, &root, &["run", "--rm", "user"]).fails();
    assert!(
        err.contains("subpath \"../../etc\" must be a relative path that stays inside the volume"),
        "{err}"
    );
    ns.berth(&d, &root, &["down", "-v"]).ok();
    sentinel.assert_intact();
}

/// FS-08: a container exchanges a directory with a symlink to a host
/// directory in a loop, in a volume and in its own root, while the host
/// exports both: no archive holds the host's files.
#[test]
fn exports_never_follow_a_link_swapped_in_mid_walk() {
    let (d, root, sentinel, racer) = scene("export-race");
    let run = berth(&d, &root);
    let s = sentinel.path();
    let script = format!(
        "for t in /v /w; do mkdir -p $t/d && echo inside > $t/d/f && ln -s {s} $t/l; done; \
         /racer swap /w/d /w/l & exec /racer swap /v/d /v/l"
    );
    start_racing(&run, &racer, "exported", Some("exported:/v"), &script);
    let out = d.path().join("out.tar");
    let out = out.to_str().unwrap();
    let mut with_file = 0;
    for i in 0..rounds(120, 1000) {
        let r = if i % 4 == 0 {
            run(&["container", "export", "-o", out, "exported"])
        } else {
            run(&["volume", "export", "-o", out, "exported"])
        };
        r.ok();
        let archive = std::fs::read(out).unwrap();
        let text = String::from_utf8_lossy(&archive);
        assert!(
            !text.contains(&sentinel.token),
            "an archive holds the host's file"
        );
        if text.contains("inside\n") {
            with_file += 1;
        }
    }
    run(&["container", "rm", "-f", "exported"]).ok();
    assert!(with_file > 0, "no archive held the container's file");
    sentinel.assert_intact();
}

/// RT-13: a binary of the image carries file capabilities
/// `cap_net_admin,cap_sys_module+ei`; run or exec'd as a user other than
/// root, with or without `--cap-add`, it gains none (no inheritable or
/// ambient set to combine them with); as root it gains none beyond the
/// bounding set.
#[test]
fn file_capabilities_in_the_image_lift_no_process() {
    let d = Dir::new("file-caps");
    let root = d.path().join("state").to_string_lossy().into_owned();
    let mut b = busybox_tar(&[]);
    for dir in ["opt", "opt/fcap"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, dir, &[][..]).unwrap();
    }
    // vfs_cap_data revision 2, effective flag, inheritable NET_ADMIN (12)
    // and SYS_MODULE (16), nothing permitted.
    let mut caps = Vec::new();
    for word in [0x0200_0001u32, 0, (1 << 12) | (1 << 16), 0, 0] {
        caps.extend_from_slice(&word.to_le_bytes());
    }
    b.append_pax_extensions([("SCHILY.xattr.security.capability", &caps[..])])
        .unwrap();
    // busybox picks the applet by its name: this one is `grep`.
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(busybox.len() as u64);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "opt/fcap/grep", &busybox[..])
        .unwrap();
    import_image(&d, &root, b, "localhost/busybox-test:latest");
    // The layer kept the capabilities (else this tests nothing).
    let found = std::process::Command::new("find")
        .args([&root, "-path", "*opt/fcap/grep"])
        .output()
        .unwrap();
    let layer_file = String::from_utf8_lossy(&found.stdout)
        .lines()
        .next()
        .map(String::from);
    let layer_file = layer_file.expect("the layer holds opt/fcap/grep");
    let mut kept = [0u8; 64];
    let n = rustix::fs::getxattr(layer_file.as_str(), "security.capability", &mut kept).unwrap();
    assert_eq!(&kept[..n], &caps[..]);
    let run = berth(&d, &root);
    let caps_of = |out: &str| -> Vec<(String, u64)> {
        out.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.to_string(), u64::from_str_radix(v.trim(), 16).ok()?))
            })
            .collect()
    };
    let probe = ["/opt/fcap/grep", "^Cap", "/proc/self/status"];
    let sys_module = 1u64 << 16;
    let net_admin = 1u64 << 12;
    for flags in [
        &["-u", "1000"][..],
        &["-u", "1000", "--cap-add", "NET_ADMIN"],
    ] {
        let mut args = vec!["container", "run", "--rm"];
        args.extend_from_slice(flags);
        args.push("localhost/busybox-test");
        args.extend_from_slice(&probe);
        let out = run(&args).ok();
        for (k, v) in caps_of(&out) {
            if k != "CapBnd" {
                assert_eq!(v, 0, "{k} with {flags:?}: {out}");
            }
        }
    }
    run(&[
        "container",
        "run",
        "-d",
        "--name",
        "fcap",
        "localhost/busybox-test",
        "sleep",
        "60",
    ])
    .ok();
    let out = run(&[
        "container",
        "exec",
        "-u",
        "1000",
        "fcap",
        probe[0],
        probe[1],
        probe[2],
    ])
    .ok();
    for (k, v) in caps_of(&out) {
        if k != "CapBnd" {
            assert_eq!(v, 0, "{k} in exec: {out}");
        }
    }
    let out = run(&["container", "exec", "fcap", probe[0], probe[1], probe[2]]).ok();
    run(&["container", "rm", "-f", "fcap"]).ok();
    let as_root: std::collections::BTreeMap<_, _> = caps_of(&out).into_iter().collect();
    assert_eq!(as_root["CapEff"] & sys_module, 0, "{out}");
    assert_eq!(as_root["CapInh"], 0, "{out}");
    assert_eq!(as_root["CapAmb"], 0, "{out}");
    assert_ne!(as_root["CapEff"] & net_admin, net_admin, "{out}");
}

/// RT-07 (b): a container's `/dev` is a volume another container shares,
/// which exchanges the `null` node there with a symlink to
/// `/proc/sys/kernel/core_pattern` in a loop while the first starts again
/// and again: each start masks with the null device or fails; none masks
/// with a procfs file.
#[test]
fn masks_stay_the_null_device_while_a_container_swaps_a_shared_dev() {
    let d = Dir::new("dev-race");
    let root = busybox_root(&d);
    let racer = static_binary(&d, "racer");
    let run = berth(&d, &root);
    start_racing(
        &run,
        &racer,
        "devswapper",
        Some("devvol:/d"),
        "mknod /d/null c 1 3; ln -s /proc/sys/kernel/core_pattern /d/evil; \
         exec /racer swap /d/null /d/evil",
    );
    let mut started = 0;
    for _ in 0..rounds(40, 500) {
        let r = run(&[
            "container",
            "run",
            "--rm",
            "-v",
            "devvol:/dev",
            "localhost/busybox-test",
            "sh",
            "-c",
            "stat -c '%t:%T' /proc/keys /proc/timer_list",
        ]);
        if r.0.status.success() {
            started += 1;
            assert_eq!(r.stdout(), "1:3\n1:3\n");
        }
    }
    run(&["container", "rm", "-f", "devswapper"]).ok();
    assert!(started > 0, "no start got through at all");
}

/// A removed container's directory is reused by the next container (see
/// `engine/src/runtime/spares.rs`): nothing the first wrote, and none of
/// what it did to its root, reaches the next.
#[test]
fn nothing_a_removed_container_left_reaches_the_next() {
    let d = Dir::new("spares");
    let root = busybox_root(&d);
    run_script(
        &d,
        &root,
        &[],
        "echo left > /left && mkdir -p /a/b && echo deep > /a/b/c && chmod 700 / && chown 65534 /",
    )
    .ok();
    let out = run_script(&d, &root, &[], "ls /left /a 2>&1; stat -c '%a %u' /").ok();
    assert!(
        out.contains("/left: No such file") && out.contains("/a: No such file"),
        "{out}"
    );
    assert!(out.ends_with("755 0\n"), "{out}");
}
