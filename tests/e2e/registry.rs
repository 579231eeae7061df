//! `berth image push`/`pull`, `berth pull` and `up` pulling what is missing,
//! against Debian's `docker-registry` serving on loopback inside a network
//! namespace of the test's own.

use crate::network::Netns;
use crate::sandbox::Dir;

/// A registry on 127.0.0.1:5000 of `ns`, stopped on drop.
struct Registry(std::process::Child);

impl Registry {
    fn start(ns: &Netns, d: &Dir) -> Registry {
        assert!(
            std::path::Path::new("/usr/bin/docker-registry").exists(),
            "scripts/test installs Debian's docker-registry"
        );
        ns.sh("ip link set lo up");
        let data = d.path().join("registry");
        d.write(
            "registry.yml",
            &format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:5000\n",
                data.display()
            ),
        );
        let cfg = d.path().join("registry.yml");
        let child = ns.spawn_cmd(&["docker-registry", "serve", &cfg.to_string_lossy()]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ns
            .sh("busybox wget -qO- http://127.0.0.1:5000/v2/ 2>&1")
            .contains("{}")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the registry never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Registry(child)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn images_pushed_to_a_registry_are_pulled_by_another_host_and_by_up() {
    let d = Dir::new("registry");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    let _registry = Registry::start(&ns, &d);

    let out = ns.berth(
        &d,
        &root,
        &[
            "image",
            "push",
            "localhost/busybox-test:latest",
            "127.0.0.1:5000/e2e/busybox:1",
        ],
    );
    let pushed = out.ok();
    assert!(
        pushed.starts_with("http://127.0.0.1:5000/v2/e2e/busybox/manifests/sha256:"),
        "{pushed}"
    );
    // A second push uploads nothing.
    let again = ns.berth(
        &d,
        &root,
        &[
            "image",
            "push",
            "localhost/busybox-test:latest",
            "127.0.0.1:5000/e2e/busybox:2",
        ],
    );
    again.ok();
    assert!(
        !again.stderr().contains("pushing") && again.stderr().contains("already exists"),
        "{}",
        again.stderr()
    );

    // Another state root is another host: the image comes from the registry.
    let other = d.path().join("other").to_string_lossy().into_owned();
    ns.berth(
        &d,
        &other,
        &["image", "pull", "127.0.0.1:5000/e2e/busybox:1"],
    )
    .ok();
    let local = ns
        .berth(&d, &root, &["image", "inspect", "localhost/busybox-test"])
        .json();
    let pulled = ns
        .berth(
            &d,
            &other,
            &["image", "inspect", "127.0.0.1:5000/e2e/busybox:1"],
        )
        .json();
    assert!(pulled[0]["Id"].is_string(), "{pulled}");
    assert_eq!(
        pulled[0]["Id"], local[0]["Id"],
        "the same image, by its configuration digest"
    );
    let page = ns
        .berth(
            &d,
            &other,
            &[
                "container",
                "run",
                "--rm",
                "127.0.0.1:5000/e2e/busybox:1",
                "cat",
                "/www/index.html",
            ],
        )
        .ok();
    assert_eq!(page, "hello from berth-busybox\n");
    // Pulling again fetches no layer.
    let again = ns.berth(
        &d,
        &other,
        &["image", "pull", "127.0.0.1:5000/e2e/busybox:1"],
    );
    assert!(
        again.stderr().contains("already exists"),
        "{}",
        again.stderr()
    );

    // `up` pulls what the project needs and the store lacks.
    d.write(
        "compose.yaml",
        r#"
name: pulled
services:
  app:
    image: 127.0.0.1:5000/e2e/busybox:2
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#,
    );
    let up = ns.berth(&d, &other, &["up", "-d"]);
    up.ok();
    assert!(
        up.stderr()
            .contains("image 127.0.0.1:5000/e2e/busybox:2 Pulled"),
        "{}",
        up.stderr()
    );
    assert_eq!(ns.berth(&d, &other, &["ps", "--services"]).ok(), "app\n");
    // config pins the tag to the digest the registry serves for it.
    let digest = pushed.trim().rsplit_once('/').unwrap().1;
    let pinned = ns
        .berth(&d, &other, &["config", "--resolve-image-digests"])
        .ok();
    assert!(
        pinned.contains(&format!("image: 127.0.0.1:5000/e2e/busybox:2@{digest}\n")),
        "{pinned}"
    );
    ns.berth(&d, &other, &["pull"]).ok();
    ns.berth(&d, &other, &["down"]).ok();

    let err = ns
        .berth(
            &d,
            &other,
            &["image", "pull", "127.0.0.1:5000/e2e/nothing:1"],
        )
        .fails();
    assert!(
        err.contains("pulling 127.0.0.1:5000/e2e/nothing:1"),
        "{err}"
    );
}
