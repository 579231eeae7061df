//! The examples in `examples/`, brought up and checked as a user would.

use crate::network::Netns;
use crate::sandbox::Dir;

/// An example's compose file, on the test image.
fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("compose.yaml");
    std::fs::read_to_string(path).unwrap().replace(
        "localhost/berth-busybox:latest",
        "localhost/busybox-test:latest",
    )
}

#[test]
fn quickstart_answers_by_service_name_and_keeps_its_count_across_down_and_up() {
    let d = Dir::new("quickstart");
    let ns = Netns::new();
    ns.sh("ip link set lo up");
    let root = crate::container::busybox_root(&d);
    ns.berth(
        &d,
        &root,
        &[
            "image",
            "tag",
            "localhost/busybox-test:latest",
            "localhost/berth-busybox:latest",
        ],
    )
    .ok();
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/compose.yaml");
    let file = file.to_string_lossy().into_owned();
    let up = |ns: &Netns| ns.berth(&d, &root, &["-f", &file, "up", "-d"]).ok();
    let fetch = |ns: &Netns| {
        let mut last = String::new();
        for _ in 0..50 {
            last = ns.sh("wget -qO- http://127.0.0.1:8080/cgi-bin/index.cgi");
            // Until the API is up, the web answers with an empty count.
            if last.trim_end().ends_with(|c: char| c.is_ascii_digit()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        last
    };
    up(&ns);
    assert_eq!(fetch(&ns), "hello from web; api says: 1\n");
    assert_eq!(fetch(&ns), "hello from web; api says: 2\n");
    ns.berth(&d, &root, &["-f", &file, "down"]).ok();
    up(&ns);
    assert_eq!(
        fetch(&ns),
        "hello from web; api says: 3\n",
        "the count survived down and up"
    );
    ns.berth(&d, &root, &["-f", &file, "down", "-v"]).ok();
    up(&ns);
    assert_eq!(
        fetch(&ns),
        "hello from web; api says: 1\n",
        "down -v took the count"
    );
    ns.berth(&d, &root, &["-f", &file, "down", "-v"]).ok();
    assert_eq!(ns.sh("ip -o link show type bridge"), "");
    assert_eq!(ns.sh("nft list tables"), "");
}

#[test]
fn healthy_deps_start_the_app_after_a_healthy_db_and_a_finished_migration() {
    let d = Dir::new("healthy-deps");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    let text = example("healthy-deps");
    d.write("compose.yaml", &text);
    ns.berth(&d, &root, &["up", "--wait", "--wait-timeout", "30"])
        .ok();
    let ps = ns.berth(&d, &root, &["ps", "-a"]).ok();
    let status = |name: &str| {
        ps.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[74..].trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(status("healthy-deps-db-1"), "running (healthy)", "{ps}");
    assert_eq!(status("healthy-deps-migrate-1"), "exited (0)", "{ps}");
    assert_eq!(status("healthy-deps-app-1"), "running", "{ps}");
    // Running is not yet written: the app's first line may take a moment.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = ns
            .berth(&d, &root, &["logs", "--no-log-prefix", "app"])
            .ok();
        if !logs.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(logs, "app started, schema: schema-v1\n");
    ns.berth(&d, &root, &["down", "-v"]).ok();

    // A failed migration or an unhealthy database keeps the app from starting.
    d.write(
        "compose.yaml",
        &text.replace("echo schema-v1 > /data/schema", "exit 3"),
    );
    let err = ns.berth(&d, &root, &["up", "-d"]).fails();
    assert!(
        err.contains(
            "dependency failed to start: service migrate didn't complete successfully: exit 3"
        ),
        "{err}"
    );
    let ps = ns.berth(&d, &root, &["ps", "-a"]).ok();
    assert!(
        ps.contains("healthy-deps-app-1") && ps.contains("created"),
        "{ps}"
    );
    ns.berth(&d, &root, &["down", "-v"]).ok();
    d.write(
        "compose.yaml",
        &text
            .replace("test\", \"-f\", \"/tmp/ready\"", "false\"")
            .replace("start_period: 10s", "retries: 2"),
    );
    let err = ns.berth(&d, &root, &["up", "-d"]).fails();
    assert!(
        err.contains("dependency failed to start: container healthy-deps-db-1 is unhealthy"),
        "{err}"
    );
    ns.berth(&d, &root, &["down", "-v"]).ok();
    assert_eq!(ns.berth(&d, &root, &["volume", "ls", "-q"]).ok(), "");
}

#[test]
fn joined_network_sidecar_reaches_the_app_over_their_shared_loopback() {
    let d = Dir::new("joined");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    let text = example("joined-network");
    d.write("compose.yaml", &text);
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let mut logs = String::new();
    for _ in 0..50 {
        logs = ns
            .berth(&d, &root, &["logs", "--no-log-prefix", "sidecar"])
            .ok();
        if !logs.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(logs.starts_with("hello over loopback\n"), "{logs:?}");
    // One namespace: the same interfaces and addresses on both sides.
    let addrs = |svc: &str| {
        ns.berth(&d, &root, &["exec", svc, "ip", "-o", "-4", "addr"])
            .ok()
    };
    assert_eq!(addrs("sidecar"), addrs("app"));
    // The loopback-only port is not reachable from the project's network.
    let ip = addrs("app")
        .lines()
        .find(|l| l.contains("eth0"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|a| a.split('/').next())
        .unwrap()
        .to_string();
    let out = ns
        .berth(
            &d,
            &root,
            &[
                "container",
                "run",
                "--rm",
                "--network",
                "joined-network_default",
                "localhost/busybox-test",
                "sh",
                "-c",
                &format!("wget -qO- http://{ip}:8080/index.html || echo refused"),
            ],
        )
        .ok();
    assert_eq!(out, "refused\n");
    ns.berth(&d, &root, &["down"]).ok();
    assert_eq!(ns.berth(&d, &root, &["ps", "-aq"]).ok(), "");

    // --network host shares the namespace berth runs in.
    ns.sh("ip link add berth-e2e-dm type bridge");
    let links = ns
        .berth(
            &d,
            &root,
            &[
                "container",
                "run",
                "--rm",
                "--network",
                "host",
                "localhost/busybox-test",
                "ip",
                "-o",
                "link",
            ],
        )
        .ok();
    assert!(links.contains("berth-e2e-dm"), "{links}");
}

#[test]
fn volume_container_shares_its_volumes_packed_and_read_only_where_asked() {
    let d = Dir::new("volume-container");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    let text = example("volume-container");
    d.write("compose.yaml", &text);
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let mut logs = String::new();
    for _ in 0..50 {
        logs = ns
            .berth(&d, &root, &["logs", "--no-log-prefix", "reader"])
            .ok();
        if logs.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The writer's file through the shared volume; the image's /www through
    // the data-packed one.
    assert!(
        logs.starts_with("written by the writer\nhello from berth-busybox\n"),
        "{logs:?}"
    );
    let err = ns
        .berth(&d, &root, &["exec", "reader", "touch", "/data/x"])
        .fails();
    assert!(err.contains("Read-only file system"), "{err}");
    ns.berth(&d, &root, &["exec", "writer", "touch", "/data/x"])
        .ok();
    assert_eq!(
        ns.berth(&d, &root, &["volume", "ls", "-q"])
            .ok()
            .lines()
            .count(),
        2,
        "the two anonymous volumes of vc_data, shared, not copied"
    );
    ns.berth(&d, &root, &["down", "-v"]).ok();
    assert_eq!(ns.berth(&d, &root, &["volume", "ls", "-q"]).ok(), "");
}

#[test]
fn limits_are_visible_inside_and_enforced() {
    let d = Dir::new("limits-example");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write("compose.yaml", &example("limits"));
    ns.berth(&d, &root, &["up", "-d"]).ok();
    // Seen from inside, in the container's own cgroup (v1 or v2 layout).
    let inside = |svc: &str, v1: &str, v2: &str| {
        ns.berth(
            &d,
            &root,
            &[
                "exec",
                svc,
                "sh",
                "-c",
                &format!("cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}"),
            ],
        )
        .ok()
        .trim()
        .to_string()
    };
    assert_eq!(
        inside("heavy", "memory/memory.limit_in_bytes", "memory.max"),
        "67108864"
    );
    assert_eq!(inside("light", "pids/pids.max", "pids.max"), "10");
    let shares = inside("light", "cpu/cpu.shares", "cpu.weight");
    assert!(shares == "512" || shares == "20", "{shares}");

    // Enforced: a burst of processes stops at the pids limit …
    let burst = ns.berth(
        &d,
        &root,
        &[
            "exec",
            "light",
            "sh",
            "-c",
            "for i in $(seq 1 30); do sleep 1 & done; wait",
        ],
    );
    assert!(burst.stderr().contains("can't fork"), "{}", burst.stderr());
    // … and a process over the memory limit is killed.
    let hog = ns.berth(
        &d,
        &root,
        &[
            "exec",
            "light",
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    assert!(!hog.stdout().contains("survived"), "{}", hog.stdout());

    // Both spin on CPU 0: the shares split it about 2:1.
    let cpu = |svc: &str| -> f64 {
        let t = inside(svc, "cpuacct/cpuacct.usage", "cpu.stat");
        // v1: nanoseconds; v2: `usage_usec N` first.
        t.split_whitespace()
            .find_map(|w| w.parse::<f64>().ok())
            .unwrap()
    };
    let (h0, l0) = (cpu("heavy"), cpu("light"));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (h1, l1) = (cpu("heavy"), cpu("light"));
    let ratio = (h1 - h0) / (l1 - l0);
    assert!((1.4..3.0).contains(&ratio), "heavy:light CPU = {ratio:.2}");
    ns.berth(&d, &root, &["down"]).ok();
}
