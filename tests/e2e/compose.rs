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
                "-v",
                "e2e_data:/data",
                "localhost/busybox-test",
                "sh",
                "-c",
                "cat /data/boots | wc -l",
            ],
        )
        .ok();
    assert_eq!(boots.trim(), "2", "the volume kept the first run's data");
    ns.berth(&d, &root, &["down", "-v"]).ok();
    assert_eq!(ns.berth(&d, &root, &["volume", "ls", "-q"]).ok(), "");
    assert_eq!(ns.berth(&d, &root, &["network", "ls", "-q"]).ok(), "");
    assert_eq!(ns.sh("ip -o link show type veth"), "");
    assert_eq!(ns.sh("nft list tables"), "");
}
