//! `berth up`, `ps` and `down` on a real project: networks, volumes and
//! containers created, changed and removed, checked in the kernel. Runs in
//! a network namespace of its own.

use crate::network::Netns;
use crate::sandbox::Dir;

const PROJECT: &str = r#"
name: e2e
services:
  web:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; mkdir -p /www; echo $$GREETING > /www/index.html; httpd -f -p 8080 -h /www & wait"]
    environment:
      GREETING: hello
    networks: [app]
    depends_on: [store]
  store:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; date >> /data/boots; while true; do sleep 0.2; done"]
    volumes: ["data:/data"]
    networks: [app]
networks:
  app:
    ipam:
      config:
        - subnet: 10.91.0.0/24
volumes:
  data: {}
"#;

#[test]
fn up_is_level_triggered_recreates_what_changed_and_down_leaves_nothing() {
    let d = Dir::new("compose");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write("compose.yaml", PROJECT);

    let plan = ns.berth(&d, &root, &["up", "--dry-run"]).ok();
    assert!(plan.contains("network e2e_app, CreateNetwork"), "{plan}");
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let ps = ns.berth(&d, &root, &["ps"]).ok();
    assert!(
        ps.contains("e2e-web-1") && ps.contains("e2e-store-1"),
        "{ps}"
    );
    assert_eq!(
        ns.berth(&d, &root, &["up", "--dry-run"]).ok(),
        "",
        "nothing left to do"
    );

    // The web answers another container on the project's network.
    let web_ip = "10.91.0.3"; // store starts first (web depends on it) and gets .2
    let fetch = format!("wget -qO- http://{web_ip}:8080/index.html");
    let out = ns
        .berth(
            &d,
            &root,
            &[
                "container",
                "run",
                "--rm",
                "--network",
                "e2e_app",
                "localhost/busybox-test",
                "sh",
                "-c",
                &fetch,
            ],
        )
        .ok();
    assert_eq!(out, "hello\n");
    let top = ns.berth(&d, &root, &["top", "web"]).ok();
    assert!(
        top.starts_with("e2e-web-1\n") && top.contains("httpd -f -p 8080 -h /www"),
        "{top}"
    );
    // exec runs in the service's container: its environment, its network.
    let out = ns
        .berth(
            &d,
            &root,
            &["exec", "web", "sh", "-c", "echo $GREETING; hostname"],
        )
        .ok();
    assert!(out.starts_with("hello\n"), "{out}");
    let err = ns
        .berth(&d, &root, &["exec", "--index", "2", "web", "true"])
        .fails();
    assert!(err.contains("no container number 2"), "{err}");

    // A changed service is recreated with its reason; the other is left alone.
    d.write(
        "compose.yaml",
        &PROJECT.replace("GREETING: hello", "GREETING: changed"),
    );
    let plan = ns.berth(&d, &root, &["up", "--dry-run"]).ok();
    assert!(
        plan.contains(
            "container e2e-web-1, RemoveContainer, recreate: environment.GREETING changed"
        ),
        "{plan}"
    );
    assert!(!plan.contains("e2e-store-1"), "{plan}");
    ns.berth(&d, &root, &["up", "-d"]).ok();

    // Project-wide logs, stop and start.
    let logs = ns.berth(&d, &root, &["logs", "web"]).ok();
    assert!(
        logs.lines().all(|l| l.starts_with("e2e-web-1  | ")),
        "{logs}"
    );
    ns.berth(&d, &root, &["stop"]).ok();
    assert_eq!(
        ns.berth(&d, &root, &["ps"]).ok().lines().count(),
        1,
        "nothing running"
    );
    ns.berth(&d, &root, &["start", "store"]).ok();
    let ps = ns.berth(&d, &root, &["ps"]).ok();
    assert!(
        ps.contains("e2e-store-1") && !ps.contains("e2e-web-1"),
        "{ps}"
    );
    let err = ns.berth(&d, &root, &["start", "nosuch"]).fails();
    assert!(err.contains("no such service: nosuch"), "{err}");

    // down keeps the named volume; its data survives the next up; down -v removes it.
    ns.berth(&d, &root, &["down"]).ok();
    assert_eq!(
        ns.berth(&d, &root, &["ps", "-a"]).ok().lines().count(),
        1,
        "only the header"
    );
    assert_eq!(ns.sh("ip -o link show type bridge"), "");
    assert_eq!(
        ns.berth(&d, &root, &["volume", "ls", "-q"]).ok(),
        "e2e_data\n"
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let boots = ns
        .berth(
            &d,
            &root,
            &[
                "container",
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                "e2e_data:/data",
                "localhost/busybox-test",
                "sh",
                "-c",
                "cat /data/boots | wc -l",
            ],
        )
        .ok();
    // Booted by the first up, by `start store`, and by this up.
    assert_eq!(boots.trim(), "3", "the volume kept the earlier runs' data");
    ns.berth(&d, &root, &["down", "-v"]).ok();
    assert_eq!(ns.berth(&d, &root, &["volume", "ls", "-q"]).ok(), "");
    assert_eq!(ns.berth(&d, &root, &["network", "ls", "-q"]).ok(), "");
    assert_eq!(ns.sh("ip -o link show type veth"), "");
    assert_eq!(ns.sh("nft list tables"), "");
}

#[test]
fn published_ports_answer_on_the_host_and_taken_ports_fail_before_anything_changes() {
    let d = Dir::new("ports");
    let ns = Netns::new();
    ns.sh("ip link set lo up");
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: pub
services:
  web:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; mkdir -p /www; echo published > /www/index.html; httpd -f -p 80 -h /www & wait"]
    ports: ["8080:80", "127.0.0.1:8081:80"]
networks:
  default:
    ipam:
      config:
        - subnet: 10.92.0.0/24
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    assert_eq!(
        ns.berth(&d, &root, &["port", "web", "80"]).ok(),
        "0.0.0.0:8080\n"
    );
    let ps: serde_json::Value =
        serde_json::from_str(&ns.berth(&d, &root, &["ps", "--format", "json"]).ok()).unwrap();
    assert_eq!(ps["Name"], "pub-web-1");
    assert_eq!(ps["State"], "running");
    let ports: Vec<u64> = ps["Publishers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["PublishedPort"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [8080, 8081]);
    let ls = ns.berth(&d, &root, &["ls"]).ok();
    assert!(
        ls.lines().any(|l| l.starts_with("pub ")
            && l.contains("running(1)")
            && l.contains("compose.yaml")),
        "{ls}"
    );
    let via_lo = ns.sh("wget -qO- http://127.0.0.1:8080/index.html");
    assert_eq!(via_lo, "published\n");
    let via_lo_only = ns.sh("wget -qO- http://127.0.0.1:8081/index.html");
    assert_eq!(via_lo_only, "published\n");
    let via_gateway = ns.sh("wget -qO- http://10.92.0.1:8080/index.html");
    assert_eq!(via_gateway, "published\n");
    // Hairpin: a container reaches the web through the host's address.
    let out = ns
        .berth(
            &d,
            &root,
            &[
                "container",
                "run",
                "--rm",
                "--network",
                "pub_default",
                "localhost/busybox-test",
                "wget",
                "-qO-",
                "http://10.92.0.1:8080/index.html",
            ],
        )
        .ok();
    assert_eq!(out, "published\n");

    // A second project wanting the same port fails naming port and service,
    // and creates nothing.
    let other = Dir::new("ports2");
    other.write(
        "compose.yaml",
        "name: clash\nservices:\n  taker:\n    image: localhost/busybox-test:latest\n    command: [sleep, '100']\n    ports: ['8080:80']\n",
    );
    let err = ns.berth(&other, &root, &["up", "-d"]).fails();
    assert!(
        err.contains("service taker cannot publish port 8080") && err.contains("already allocated"),
        "{err}"
    );
    assert_eq!(
        ns.berth(&other, &root, &["ps", "-a"]).ok().lines().count(),
        1,
        "no container created"
    );
    assert_eq!(
        ns.berth(&d, &root, &["network", "ls", "-q"]).ok(),
        "pub_default\n",
        "no network created"
    );

    ns.berth(&d, &root, &["down"]).ok();
    let rules = ns.sh("nft list ruleset");
    assert!(!rules.contains("dnat"), "{rules}");
    assert_ne!(
        ns.sh("wget -qO- http://127.0.0.1:8080/ >/dev/null 2>&1; echo $?")
            .trim(),
        "0",
        "the port is closed after down"
    );
}

const FOREGROUND: &str = r#"
name: fg
services:
  stubborn:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.2; done"]
  brief:
    image: localhost/busybox-test:latest
    command: ["echo", "done"]
"#;

#[test]
fn foreground_up_attaches_and_ctrl_c_stops_the_project() {
    let d = Dir::new("foreground");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write("compose.yaml", FOREGROUND);
    let child = ns.spawn(&d, &root, &["up"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ns.berth(&d, &root, &["ps"]).ok().contains("running") {
        assert!(std::time::Instant::now() < deadline, "up never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    for line in [
        "fg-stubborn-1  | up",
        "fg-brief-1     | done",
        "fg-stubborn-1  | bye",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in {stdout}");
    }
    let ps = ns.berth(&d, &root, &["ps", "-a"]).ok();
    assert!(ps.contains("exited (0)") && !ps.contains("running"), "{ps}");
    assert_eq!(
        ns.berth(&d, &root, &["wait", "brief"]).ok(),
        "fg-brief-1 0\n"
    );
    let recent = ns
        .berth(
            &d,
            &root,
            &["logs", "--since", "1h", "--no-log-prefix", "brief"],
        )
        .ok();
    assert_eq!(recent, "done\n");
    let old = ns
        .berth(&d, &root, &["logs", "--until", "2020-01-01", "brief"])
        .ok();
    assert_eq!(old, "");
    let images = ns.berth(&d, &root, &["images", "brief"]).ok();
    assert!(
        images
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("fg-brief-1")
                && l.contains("localhost/busybox-test")
                && l.contains("latest")),
        "{images}"
    );
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn concurrent_commands_on_one_project_are_serialised() {
    let d = Dir::new("lock");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write("compose.yaml", PROJECT);
    // Unserialised, both would create the same network and containers.
    let first = ns.spawn(&d, &root, &["up", "-d"]);
    let second = ns.spawn(&d, &root, &["up", "-d"]);
    for c in [first, second] {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ps = ns.berth(&d, &root, &["ps", "-q"]).ok();
    assert_eq!(ps.lines().count(), 2, "{ps}");
    assert_eq!(
        ns.berth(&d, &root, &["network", "ls", "-q"]).ok(),
        "e2e_app\n"
    );
    ns.berth(&d, &root, &["down", "-v"]).ok();
    assert!(
        !std::path::Path::new(&root).join("locks/e2e.lock").exists(),
        "down leaves no lock file behind"
    );
}

/// Kills `berth` (SIGKILL) `delay_ms` after it starts `args`.
fn killed_after(ns: &Netns, d: &Dir, root: &str, args: &[&str], delay_ms: u64) {
    let mut child = ns.spawn(d, root, args);
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn up_and_down_killed_at_any_point_converge_when_run_again() {
    let d = Dir::new("killed");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        &PROJECT.replace("10.91.0.0/24", "10.93.0.0/24"),
    );
    for delay in [2, 10, 25, 50, 80, 120, 180, 260, 400] {
        killed_after(&ns, &d, &root, &["up", "-d"], delay);
        ns.berth(&d, &root, &["up", "-d"]).ok();
        let ps = ns.berth(&d, &root, &["ps"]).ok();
        assert_eq!(
            ps.lines().filter(|l| l.contains("running")).count(),
            2,
            "after up killed at {delay} ms: {ps}"
        );
        assert_eq!(
            ns.berth(&d, &root, &["ps", "-aq"]).ok().lines().count(),
            2,
            "no duplicates after up killed at {delay} ms"
        );
        let fetched = ns
            .berth(
                &d,
                &root,
                &[
                    "container",
                    "run",
                    "--rm",
                    "--network",
                    "e2e_app",
                    "localhost/busybox-test",
                    "wget",
                    "-qO-",
                    "http://web:8080/index.html",
                ],
            )
            .ok();
        assert_eq!(fetched, "hello\n", "after up killed at {delay} ms");

        killed_after(&ns, &d, &root, &["down", "-v"], delay);
        ns.berth(&d, &root, &["down", "-v"]).ok();
        let left = [
            ns.berth(&d, &root, &["ps", "-aq"]).ok(),
            ns.berth(&d, &root, &["network", "ls", "-q"]).ok(),
            ns.berth(&d, &root, &["volume", "ls", "-q"]).ok(),
            ns.sh("ip -o link show type veth; ip -o link show type bridge; nft list tables"),
        ];
        assert!(
            left.iter().all(String::is_empty),
            "after down killed at {delay} ms, left: {left:?}"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&root),
            "mounts left after down killed at {delay} ms"
        );
        let containers = std::fs::read_dir(format!("{root}/containers"))
            .map(|r| r.count())
            .unwrap_or(0);
        assert_eq!(
            containers, 0,
            "container dirs left after down killed at {delay} ms: {}",
            ns.sh(&format!("ls -laR {root}/containers | head -50; cat {root}/containers/*/container.json | head -c 600"))
        );
    }
}

#[test]
fn run_starts_dependencies_and_a_one_off_that_down_removes() {
    let d = Dir::new("oneoff");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        &PROJECT.replace("10.91.0.0/24", "10.95.0.0/24"),
    );
    // The one-off finds its dependency by name, gets the service's
    // environment, and its exit code is berth's.
    let out = ns.berth(
        &d,
        &root,
        &[
            "run",
            "--rm",
            "-e",
            "EXTRA=x",
            "web",
            "sh",
            "-c",
            "echo $GREETING $EXTRA; ping -c1 -W2 store >/dev/null && echo reached; exit 5",
        ],
    );
    assert_eq!(out.stdout(), "hello x\nreached\n");
    assert_eq!(out.0.status.code(), Some(5));
    let ps = ns.berth(&d, &root, &["ps", "-a"]).ok();
    assert!(
        ps.contains("e2e-store-1") && !ps.contains("e2e-web-1"),
        "only the dependency: {ps}"
    );
    assert_eq!(ps.lines().count(), 2, "--rm removed the one-off: {ps}");
    let id = ns
        .berth(
            &d,
            &root,
            &[
                "run",
                "-d",
                "--name",
                "debug",
                "--no-deps",
                "web",
                "sh",
                "-c",
                "trap 'exit 0' TERM; sleep 100 & wait",
            ],
        )
        .ok();
    assert_eq!(id.trim().len(), 64);
    assert_eq!(
        ns.berth(&d, &root, &["up", "--dry-run"])
            .ok()
            .matches("debug")
            .count(),
        0
    );
    ns.berth(&d, &root, &["down", "-v"]).ok();
    assert_eq!(ns.berth(&d, &root, &["container", "ls", "-aq"]).ok(), "");
}

#[test]
fn tmpfs_mounts_and_extra_hosts_reach_the_container() {
    let d = Dir::new("tmpfs");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: tm
services:
  app:
    image: localhost/busybox-test:latest
    network_mode: none
    tmpfs: ["/run/app:size=1m"]
    volumes:
      - type: tmpfs
        target: /cache
        tmpfs: {size: 2m, mode: 0o700}
    extra_hosts: ["db.internal:10.9.8.7"]
    command: ["sh", "-c", "grep -E ' /(run/app|cache) ' /proc/mounts | cut -d' ' -f2,4; stat -c %a /cache; grep db.internal /etc/hosts"]
"#,
    );
    let out = ns.berth(&d, &root, &["run", "--rm", "app"]).ok();
    assert_eq!(
        out,
        "/cache rw,nosuid,nodev,noexec,relatime,size=2048k,mode=700\n/run/app rw,nosuid,nodev,noexec,relatime,size=1024k\n700\n10.9.8.7\tdb.internal\n"
    );
}

#[test]
fn create_makes_containers_without_starting_and_rm_removes_stopped_ones() {
    let d = Dir::new("create-rm");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        &PROJECT.replace("10.91.0.0/24", "10.96.0.0/24"),
    );
    ns.berth(&d, &root, &["create"]).ok();
    let ps = ns
        .berth(
            &d,
            &root,
            &["ps", "-a", "--status", "created", "--services"],
        )
        .ok();
    assert_eq!(ps, "store\nweb\n");
    ns.berth(&d, &root, &["start", "store"]).ok();
    ns.berth(&d, &root, &["rm"]).ok();
    assert_eq!(
        ns.berth(&d, &root, &["ps", "-a", "--services"]).ok(),
        "store\n",
        "the running container stays"
    );
    ns.berth(&d, &root, &["rm", "-s", "-f"]).ok();
    assert_eq!(ns.berth(&d, &root, &["ps", "-aq"]).ok(), "");
    ns.berth(&d, &root, &["down", "-v"]).ok();
}

#[test]
fn up_wait_fails_when_a_service_exits() {
    let d = Dir::new("wait");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    // `slow` turns healthy only after a second: `brief` has exited by then,
    // whichever order their starts ran in.
    d.write(
        "compose.yaml",
        r#"
name: fg
services:
  slow:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
  brief:
    image: localhost/busybox-test:latest
    command: ["echo", "done"]
"#,
    );
    let err = ns
        .berth(&d, &root, &["up", "--wait", "--wait-timeout", "20"])
        .fails();
    assert!(err.contains("container fg-brief-1 exited (0)"), "{err}");
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn up_exit_code_from_stops_the_project_when_the_tests_finish() {
    let d = Dir::new("exit-code-from");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: ci
services:
  server:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
  tests:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "sleep 0.5; echo 2 failures; exit 3"]
"#,
    );
    let out = ns.berth(&d, &root, &["up", "--exit-code-from", "tests"]);
    assert_eq!(out.0.status.code(), Some(3), "{}", out.stderr());
    assert!(
        out.stdout().contains("ci-tests-1   | 2 failures"),
        "{}",
        out.stdout()
    );
    assert!(
        out.stderr().contains("Aborting on container exit"),
        "{}",
        out.stderr()
    );
    let ps = ns.berth(&d, &root, &["ps"]).ok();
    assert_eq!(ps.lines().count(), 1, "nothing left running: {ps}");
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn pause_freezes_a_service_until_unpause_and_down_still_removes_it() {
    let d = Dir::new("pause");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: frozen
services:
  ticker:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done"]
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let ticks = || {
        ns.berth(&d, &root, &["logs", "ticker"])
            .ok()
            .lines()
            .count()
    };
    ns.berth(&d, &root, &["pause"]).ok();
    let ps = ns
        .berth(&d, &root, &["ps", "--status", "paused", "--services"])
        .ok();
    assert_eq!(ps, "ticker\n");
    let before = ticks();
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(ticks(), before, "a paused container does nothing");
    let err = ns.berth(&d, &root, &["exec", "ticker", "true"]).fails();
    assert!(err.contains("is paused"), "{err}");

    ns.berth(&d, &root, &["unpause"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(ticks() > before, "it runs again once thawed");
    ns.berth(&d, &root, &["exec", "ticker", "true"]).ok();

    // Paused is up: `up` thaws it rather than recreating, `down` stops it.
    ns.berth(&d, &root, &["pause", "ticker"]).ok();
    let plan = ns.berth(&d, &root, &["up", "--dry-run"]).ok();
    assert!(plan.contains("StartContainer, paused"), "{plan}");
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let ps = ns
        .berth(&d, &root, &["ps", "--status", "running", "--services"])
        .ok();
    assert_eq!(ps, "ticker\n");
    ns.berth(&d, &root, &["pause"]).ok();
    ns.berth(&d, &root, &["down"]).ok();
    assert_eq!(ns.berth(&d, &root, &["ps", "-aq"]).ok(), "");
}

/// File secrets and configs are mounted read-only where Docker Compose
/// puts them (`/run/secrets/<name>`, `/<name>`, or their target); the
/// kinds berth cannot mount yet are refused, not left out.
#[test]
fn file_secrets_and_configs_are_mounted_read_only() {
    let d = Dir::new("secrets");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write("db_password.txt", "s3cret\n");
    d.write("app.conf", "level=debug\n");
    d.write(
        "compose.yaml",
        r#"
name: sec
services:
  app:
    image: localhost/busybox-test:latest
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    secrets:
      - db_password
      - source: db_password
        target: again
    configs:
      - app.conf
      - source: app.conf
        target: /etc/app/app.conf
secrets:
  db_password:
    file: ./db_password.txt
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
                "cat /run/secrets/db_password /run/secrets/again /app.conf /etc/app/app.conf; \
                 echo x 2>/dev/null >> /run/secrets/db_password || echo read-only",
            ],
        )
        .ok();
    assert_eq!(out, "s3cret\ns3cret\nlevel=debug\nlevel=debug\nread-only\n");
    ns.berth(&d, &root, &["down"]).ok();
    assert_eq!(
        std::fs::read_to_string(d.path().join("db_password.txt")).unwrap(),
        "s3cret\n"
    );
    // A secret from the environment is refused, not left out.
    d.write(
        "compose.yaml",
        r#"
name: sec
services:
  app:
    image: localhost/busybox-test:latest
    network_mode: none
    secrets: [token]
secrets:
  token:
    environment: HOME
"#,
    );
    let err = ns.berth(&d, &root, &["up", "-d"]).fails();
    assert!(
        err.contains("token") && err.contains("not supported yet"),
        "{err}"
    );
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn ulimits_sysctls_shm_size_and_oom_score_adj_reach_the_container() {
    let d = Dir::new("limits-misc");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: tuned
services:
  app:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 512
    sysctls:
      net.ipv4.tcp_keepalive_time: "600"
    shm_size: 128m
    oom_score_adj: 500
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
                "ulimit -Sn; ulimit -Hn; ulimit -u; cat /proc/sys/net/ipv4/tcp_keepalive_time /proc/1/oom_score_adj; grep ' /dev/shm ' /proc/mounts",
            ],
        )
        .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..5], ["1024", "2048", "512", "600", "500"], "{out}");
    assert!(lines[5].contains("size=131072k"), "{out}");
    ns.berth(&d, &root, &["down"]).ok();

    // A sysctl that is not namespaced would change the host: refused.
    d.write(
        "compose.yaml",
        r#"
name: tuned
services:
  app:
    image: localhost/busybox-test:latest
    sysctls:
      vm.swappiness: "1"
"#,
    );
    let err = ns.berth(&d, &root, &["up", "-d"]).fails();
    assert!(
        err.contains("sysctl vm.swappiness: not namespaced"),
        "{err}"
    );
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn up_attaches_only_to_the_services_asked_for_with_timestamps() {
    let d = Dir::new("attach-some");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write("compose.yaml", FOREGROUND);
    let out = ns.berth(
        &d,
        &root,
        &["up", "--attach", "brief", "--timestamps", "--no-color"],
    );
    let stdout = out.ok();
    let line = stdout
        .lines()
        .find(|l| l.ends_with(" done"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.starts_with("fg-brief-1  | 20"), "a timestamp: {line}");
    assert!(!stdout.contains("fg-stubborn-1"), "not attached: {stdout}");
    let err = ns
        .berth(&d, &root, &["up", "--no-attach", "nosuch"])
        .fails();
    assert!(err.contains("no such service: nosuch"), "{err}");
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn init_runs_as_pid_1_forwards_the_stop_signal_and_reaps() {
    let d = Dir::new("init");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    // `sleep` as PID 1 would ignore SIGTERM and wait out the grace period;
    // under the init it gets the signal and dies at once.
    d.write(
        "compose.yaml",
        r#"
name: inited
services:
  app:
    image: localhost/busybox-test:latest
    init: true
    command: ["sleep", "300"]
    stop_grace_period: 20s
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let ps = ns
        .berth(&d, &root, &["exec", "app", "cat", "/proc/1/comm"])
        .ok();
    assert_eq!(ps, "docker-init\n");
    let started = std::time::Instant::now();
    ns.berth(&d, &root, &["stop"]).ok();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the init forwarded SIGTERM: {:?}",
        started.elapsed()
    );
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn cp_copies_both_ways_and_never_leaves_the_container_root() {
    let d = Dir::new("cp");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: copying
services:
  app:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "ln -s /etc /tmp/link; mkdir -p /tmp/up; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    volumes: ["data:/data"]
volumes:
  data: {}
"#,
    );
    d.write("hello.txt", "hello through cp\n");
    ns.berth(&d, &root, &["up", "-d"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(300));

    // Into a volume mounted in the container.
    ns.berth(&d, &root, &["cp", "hello.txt", "app:/data/"]).ok();
    let got = ns
        .berth(&d, &root, &["exec", "app", "cat", "/data/hello.txt"])
        .ok();
    assert_eq!(got, "hello through cp\n");
    // Out of it, a file and a directory tree.
    ns.berth(&d, &root, &["cp", "app:/etc/passwd", "passwd"])
        .ok();
    let passwd = std::fs::read_to_string(d.path().join("passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0"), "{passwd}");
    ns.berth(&d, &root, &["cp", "app:/www", "site"]).ok();
    let page = std::fs::read_to_string(d.path().join("site/index.html")).unwrap();
    assert_eq!(page, "hello from berth-busybox\n");

    // An absolute symlink the container made resolves inside its root.
    let marker = format!("berth-cp-{}", std::process::id());
    ns.berth(
        &d,
        &root,
        &["cp", "hello.txt", &format!("app:/tmp/link/{marker}")],
    )
    .ok();
    assert!(
        !std::path::Path::new("/etc").join(&marker).exists(),
        "cp wrote through a container symlink onto the host"
    );
    let inside = ns
        .berth(
            &d,
            &root,
            &["exec", "app", "cat", &format!("/etc/{marker}")],
        )
        .ok();
    assert_eq!(inside, "hello through cp\n");
    // `..` cannot climb out either.
    ns.berth(
        &d,
        &root,
        &["cp", "app:/tmp/up/../../../../../etc/hostname", "hostname"],
    )
    .ok();
    let theirs = ns
        .berth(&d, &root, &["exec", "app", "cat", "/etc/hostname"])
        .ok();
    assert_eq!(
        std::fs::read_to_string(d.path().join("hostname")).unwrap(),
        theirs
    );
    let err = ns
        .berth(&d, &root, &["cp", "app:/nonexistent", "x"])
        .fails();
    assert!(err.contains("copying-app-1:/nonexistent"), "{err}");
    ns.berth(&d, &root, &["down", "-v"]).ok();
}

#[test]
fn stats_shows_each_containers_use_against_its_limits() {
    let d = Dir::new("stats");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: measured
services:
  app:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    mem_limit: 64m
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let out = ns.berth(&d, &root, &["stats", "--no-stream"]).ok();
    let row = out
        .lines()
        .find(|l| l.contains("measured-app-1"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("/ 64.00MiB"), "the limit: {row}");
    let pids: u32 = row.split_whitespace().last().unwrap().parse().unwrap();
    assert!(pids >= 1, "{row}");
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn exec_gets_a_terminal_when_run_from_one() {
    let d = Dir::new("exec-tty");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: terminal
services:
  app:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    // `script` gives berth a terminal, as a user's shell would.
    let berth = format!(
        "nsenter --net=/run/netns/{} {} --root {root} exec app sh -c 'tty; echo typed: $(head -n1); exit 3'",
        ns.name(),
        env!("CARGO_BIN_EXE_berth")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &berth, "/dev/null"])
        .current_dir(d.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"hello\n")?;
            c.wait_with_output()
        })
        .expect("script (bsdutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("typed: hello"), "{text}");
    assert_eq!(out.status.code(), Some(3), "{text}");
    // A one-off container too.
    let run = format!(
        "nsenter --net=/run/netns/{} {} --root {root} run --rm app sh -c 'tty; exit 5'",
        ns.name(),
        env!("CARGO_BIN_EXE_berth")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &run, "/dev/null"])
        .current_dir(d.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (bsdutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");
    // Without a terminal (or with -T), none.
    let plain = ns.berth(&d, &root, &["exec", "-T", "app", "tty"]);
    assert_eq!(plain.0.status.code(), Some(1));
    assert_eq!(plain.stdout(), "not a tty\n");
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn logs_rotate_by_size_and_keep_max_file_files() {
    let d = Dir::new("log-rotation");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: rotating
services:
  chatty:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "i=0; while [ $$i -lt 300 ]; do i=$$((i+1)); echo line $$i; done; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    logging:
      driver: json-file
      options:
        max-size: 2k
        max-file: "3"
  silent:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "echo nobody keeps this; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    logging:
      driver: none
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let mut logs = String::new();
    for _ in 0..50 {
        logs = ns
            .berth(&d, &root, &["logs", "--no-log-prefix", "chatty"])
            .ok();
        if logs.ends_with("line 300\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // What is kept is the end, whole and in order, in at most three files.
    let numbers: Vec<u32> = logs
        .lines()
        .map(|l| l.trim_start_matches("line ").parse().unwrap())
        .collect();
    assert_eq!(numbers.last(), Some(&300), "{logs}");
    assert!(numbers.len() < 300, "older lines were rotated away");
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous: {numbers:?}"
    );
    let id = ns.berth(&d, &root, &["ps", "-q", "chatty"]).ok();
    let dir = std::path::Path::new(&root)
        .join("containers")
        .join(id.trim());
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("container-json.log"))
        .collect();
    assert!(files.len() <= 3, "{files:?}");
    for f in &files {
        let size = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(size < 2048 + 200, "{f}: {size} bytes");
    }
    assert_eq!(ns.berth(&d, &root, &["logs", "silent"]).ok(), "");
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn images_in_use_stay_and_down_rmi_and_prune_remove_the_rest() {
    let d = Dir::new("rmi");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    let run = |args: &[&str]| ns.berth(&d, &root, args);
    run(&[
        "image",
        "tag",
        "localhost/busybox-test:latest",
        "localhost/rmi-test:1",
    ])
    .ok();
    d.write(
        "compose.yaml",
        r#"
name: rmi
services:
  app:
    image: localhost/rmi-test:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#,
    );
    run(&["up", "-d"]).ok();
    let id = run(&["image", "inspect", "localhost/rmi-test:1"]).json()[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let err = run(&["image", "rm", "-f", "localhost/busybox-test:latest"]);
    err.ok();
    let err = run(&["image", "rm", &id]).fails();
    assert!(err.contains("used by a container"), "{err}");
    run(&["down", "--rmi", "all"]).ok();
    let images = run(&["image", "ls", "-q"]).ok();
    assert!(
        images.is_empty(),
        "the project's image went with it: {images}"
    );

    assert_eq!(run(&["image", "prune", "-a"]).ok(), "");
}

#[test]
fn events_tell_what_happened_to_the_projects_containers() {
    let d = Dir::new("events");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: eventful
services:
  app:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#,
    );
    let t0 = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // A second back, as text comparable with the events' times.
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{}", now - 1), "+%Y-%m-%dT%H:%M:%S"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    ns.berth(&d, &root, &["up", "-d"]).ok();
    ns.berth(&d, &root, &["pause"]).ok();
    ns.berth(&d, &root, &["unpause"]).ok();
    ns.berth(&d, &root, &["down"]).ok();
    let out = ns
        .berth(
            &d,
            &root,
            &[
                "events",
                "--json",
                "--since",
                &t0,
                "--until",
                "2999-01-01T00:00:00Z",
            ],
        )
        .ok();
    let actions: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["service"], "app", "{l}");
            v["action"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "create", "start", "pause", "unpause", "die", "stop", "destroy"
        ],
        "{out}"
    );
    let text = ns
        .berth(
            &d,
            &root,
            &["events", "--since", &t0, "--until", "2999-01-01T00:00:00Z"],
        )
        .ok();
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.contains(" container create ") && l.contains("name=eventful-app-1")),
        "{text}"
    );
}

#[test]
fn twenty_up_down_cycles_leave_the_host_as_they_found_it() {
    let d = Dir::new("census");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        &PROJECT.replace("10.91.0.0/24", "10.90.7.0/24").replace(
            "    networks: [app]\n    depends_on: [store]",
            "    networks: [app]\n    depends_on: [store]\n    ports: [\"18090:8080\"]",
        ),
    );
    let census = || {
        let processes = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains(&root))
            .count();
        (
            ns.sh("ip -o link show; ip -o addr show; ip route show; nft list tables"),
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .filter(|l| l.contains(&root))
                .count(),
            processes,
        )
    };
    let before = census();
    let mut ids = Vec::new();
    for cycle in 0..20 {
        ns.berth(&d, &root, &["up", "-d"]).ok();
        ids.extend(
            ns.berth(&d, &root, &["ps", "-q"])
                .ok()
                .lines()
                .map(String::from),
        );
        ns.berth(&d, &root, &["down", "-v"]).ok();
        assert_eq!(census(), before, "after cycle {cycle}");
    }
    assert_eq!(ids.len(), 40);
    for c in ["memory", "pids", "cpu", "freezer", "unified"] {
        for id in &ids {
            let cg = format!("/sys/fs/cgroup/{c}/berth/{id}");
            assert!(!std::path::Path::new(&cg).exists(), "{cg} left");
        }
    }
    for what in ["network", "volume"] {
        assert_eq!(
            ns.berth(&d, &root, &[what, "ls", "-q"]).ok(),
            "",
            "{what}s left"
        );
    }
    assert_eq!(
        std::fs::read_dir(format!("{root}/containers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn privileged_services_and_devices_get_what_they_ask_for() {
    let d = Dir::new("privileged");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: priv
services:
  admin:
    image: localhost/busybox-test:latest
    privileged: true
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
  plain:
    image: localhost/busybox-test:latest
    devices: ["/dev/null:/dev/mynull"]
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let out = ns
        .berth(
            &d,
            &root,
            &[
                "exec",
                "admin",
                "sh",
                "-c",
                "grep Seccomp: /proc/1/status; mount -t tmpfs x /tmp && echo mounted",
            ],
        )
        .ok();
    assert_eq!(out, "Seccomp:\t0\nmounted\n");
    let refused = ns
        .berth(
            &d,
            &root,
            &[
                "exec",
                "plain",
                "sh",
                "-c",
                "mount -t tmpfs x /tmp || echo refused",
            ],
        )
        .stdout();
    assert!(refused.contains("refused"), "{refused}");
    let dev = ns
        .berth(
            &d,
            &root,
            &[
                "exec",
                "plain",
                "sh",
                "-c",
                "echo x > /dev/mynull && stat -c '%t,%T' /dev/mynull",
            ],
        )
        .ok();
    assert_eq!(dev, "1,3\n", "the host's /dev/null as /dev/mynull");
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn progress_can_be_quiet_or_json() {
    let d = Dir::new("progress");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: progress
services:
  app:
    image: localhost/busybox-test:latest
    command: ["sleep", "30"]
    init: true
"#,
    );
    let quiet = ns.berth(&d, &root, &["--progress", "quiet", "up", "-d"]);
    quiet.ok();
    assert_eq!(quiet.stderr(), "");
    let json = ns.berth(
        &d,
        &root,
        &["down", "--progress", "json", "--ansi", "never"],
    );
    json.ok();
    let events: Vec<serde_json::Value> = json
        .stderr()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["id"] == "container progress-app-1" && e["status"] == "Removed"),
        "{events:?}"
    );
}

#[test]
fn recreated_containers_keep_their_anonymous_volumes_unless_renewed() {
    let d = Dir::new("anon-volumes");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    let project = |greeting: &str| {
        format!(
            r#"
name: anon
services:
  app:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    environment:
      GREETING: {greeting}
    volumes:
      - /data
"#
        )
    };
    d.write("compose.yaml", &project("hello"));
    ns.berth(&d, &root, &["up", "-d"]).ok();
    ns.berth(
        &d,
        &root,
        &["exec", "app", "sh", "-c", "echo kept > /data/f"],
    )
    .ok();
    let read = || {
        ns.berth(&d, &root, &["exec", "app", "cat", "/data/f"])
            .0
            .stdout
            .clone()
    };

    // A changed configuration recreates the container; its data stays.
    d.write("compose.yaml", &project("bonjour"));
    let up = ns.berth(&d, &root, &["up", "-d"]).ok();
    assert_eq!(read(), b"kept\n", "{up}");
    let volumes = ns.berth(&d, &root, &["volume", "ls", "-q"]).ok();
    assert_eq!(volumes.lines().count(), 1, "{volumes}");

    // -V gives the successor a new volume; the old one is left for prune.
    ns.berth(&d, &root, &["up", "-d", "--force-recreate", "-V"])
        .ok();
    assert!(read().is_empty());
    let volumes = ns.berth(&d, &root, &["volume", "ls", "-q"]).ok();
    assert_eq!(volumes.lines().count(), 2, "{volumes}");

    // down leaves anonymous volumes as Docker Compose does; down -v does not.
    ns.berth(&d, &root, &["up", "-d"]).ok();
    ns.berth(&d, &root, &["down"]).ok();
    let volumes = ns.berth(&d, &root, &["volume", "ls", "-q"]).ok();
    assert_eq!(volumes.lines().count(), 2, "{volumes}");
    ns.berth(&d, &root, &["up", "-d"]).ok();
    ns.berth(&d, &root, &["down", "-v"]).ok();
    let volumes = ns.berth(&d, &root, &["volume", "ls", "-q"]).ok();
    assert_eq!(
        volumes.lines().count(),
        2,
        "the first two were no one's: {volumes}"
    );
    ns.berth(&d, &root, &["volume", "prune", "-f"]).ok();
    assert_eq!(ns.berth(&d, &root, &["volume", "ls", "-q"]).ok(), "");
}

#[test]
fn tty_services_keep_their_terminal_for_attach_and_detach() {
    let d = Dir::new("attach");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: attaching
services:
  shell:
    image: localhost/busybox-test:latest
    command: ["sh"]
    tty: true
    stdin_open: true
  plain:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 4' TERM; while true; do echo tick; sleep 0.2; done"]
  reader:
    image: localhost/busybox-test:latest
    stdin_open: true
    command: ["sh", "-c", "read a; echo got-$$a; read b; echo got-$$b >&2; exit 5"]
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    // Input is typed at the container's terminal; ctrl-p ctrl-q detaches
    // and leaves it running.
    let attach = |service: &str, typed: &[&[u8]]| {
        let mut child = ns
            .command(&d, &root, &["attach", service])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        for t in typed {
            use std::io::Write;
            stdin.write_all(t).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(800));
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let out = attach("shell", &[b"echo sum-$((40+2)); tty\n", b"\x10\x11"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sum-42\r\n/dev/pts/0"), "{text}");
    assert_eq!(out.status.code(), Some(0));
    let ps = ns
        .berth(&d, &root, &["ps", "--status", "running", "--services"])
        .ok();
    assert!(ps.contains("shell"), "still running after detaching: {ps}");
    // What it wrote went to its log too.
    let logs = ns.berth(&d, &root, &["logs", "shell"]).ok();
    assert!(logs.contains("sum-42"), "{logs}");
    // Exiting the shell ends the attachment with its exit code.
    let out = attach("shell", &[b"exit 7\n"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");

    // Without a terminal, attach follows the output until the exit.
    let mut follow = ns
        .command(&d, &root, &["attach", "--no-stdin", "plain"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    ns.berth(&d, &root, &["stop", "plain"]).ok();
    let out = follow.wait().unwrap();
    let mut text = String::new();
    use std::io::Read;
    follow
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.starts_with("tick\n"), "{text}");
    assert_eq!(out.code(), Some(4));

    // stdin_open without a terminal: input by the supervisor's pipe,
    // output (stdout and stderr apart) by the log, the exit code at the end.
    let out = attach("reader", &[b"one\n", b"two\n"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got-one\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "got-two\n");
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    ns.berth(&d, &root, &["down"]).ok();
}
