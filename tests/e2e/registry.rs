//! `berth image push`/`pull`, `berth pull` and `up` pulling what is missing,
//! against Debian's `docker-registry` serving on loopback inside a network
//! namespace of the test's own.

use crate::network::Netns;
use crate::sandbox::Dir;

/// A registry on 127.0.0.1:5000 of `ns`, stopped on drop.
struct Registry(std::process::Child);

impl Registry {
    fn start(ns: &Netns, d: &Dir) -> Registry {
        Registry::start_with(ns, d, None)
    }

    /// A registry that asks for these htpasswd (bcrypt) credentials.
    fn start_with(ns: &Netns, d: &Dir, htpasswd: Option<&str>) -> Registry {
        assert!(
            std::path::Path::new("/usr/bin/docker-registry").exists(),
            "scripts/test installs Debian's docker-registry"
        );
        ns.sh("ip link set lo up");
        let data = d.path().join("registry");
        let auth = match htpasswd {
            Some(line) => {
                d.write("htpasswd", &format!("{line}\n"));
                format!(
                    "auth:\n  htpasswd:\n    realm: berth-e2e\n    path: {}\n",
                    d.path().join("htpasswd").display()
                )
            }
            None => String::new(),
        };
        d.write(
            "registry.yml",
            &format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:5000\n{auth}",
                data.display()
            ),
        );
        let cfg = d.path().join("registry.yml");
        let child = ns.spawn_cmd(&["docker-registry", "serve", &cfg.to_string_lossy()]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Open: `{}`; with credentials: a refusal, which is an answer too.
        while !["{}", "401"].iter().any(|a| {
            ns.sh("busybox wget -qO- http://127.0.0.1:5000/v2/ 2>&1")
                .contains(a)
        }) {
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

#[test]
fn a_registry_with_credentials_is_used_after_login_only() {
    let d = Dir::new("registry-auth");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    // The bcrypt hash of "s3cret" (cost 4: the registry checks it on every
    // request).
    let _registry = Registry::start_with(
        &ns,
        &d,
        Some("berth:$2b$04$iS4RTfz5SioiUjJZ7FhAKudfY94hY3P40DbQUhN861jqax23vGJvS"),
    );
    let config = d.path().join("docker-config");
    let env = [("DOCKER_CONFIG", config.to_str().unwrap())];
    let berth = |root: &str, args: &[&str]| ns.berth_env(&d, root, args, &env);
    let push = [
        "image",
        "push",
        "localhost/busybox-test:latest",
        "127.0.0.1:5000/private/app:1",
    ];

    let err = berth(&root, &push).fails();
    assert!(
        err.contains("authentication required (berth login 127.0.0.1:5000)"),
        "{err}"
    );
    let err = berth(
        &root,
        &["login", "-u", "berth", "-p", "wrong", "127.0.0.1:5000"],
    )
    .fails();
    assert!(err.contains("incorrect username or password"), "{err}");
    assert!(!config.join("config.json").exists(), "nothing stored");

    let login = berth(
        &root,
        &["login", "-u", "berth", "-p", "s3cret", "127.0.0.1:5000"],
    )
    .ok();
    assert!(login.contains("Login Succeeded"), "{login}");
    berth(&root, &push).ok();
    // Another host with the same credentials pulls it.
    let other = d.path().join("other").to_string_lossy().into_owned();
    berth(&other, &["image", "pull", "127.0.0.1:5000/private/app:1"]).ok();
    let page = berth(
        &other,
        &[
            "container",
            "run",
            "--rm",
            "--network",
            "none",
            "127.0.0.1:5000/private/app:1",
            "cat",
            "/www/index.html",
        ],
    )
    .ok();
    assert_eq!(page, "hello from berth-busybox\n");
}

#[test]
fn an_interrupted_pull_resumes_without_fetching_finished_layers_again() {
    let d = Dir::new("registry-resume");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    let _registry = Registry::start(&ns, &d);
    let berth = |root: &str, args: &[&str]| ns.berth(&d, root, args);
    // An image of two layers: the test image's, and a container's changes.
    berth(
        &root,
        &[
            "container",
            "run",
            "--name",
            "maker",
            "--network",
            "none",
            "localhost/busybox-test",
            "sh",
            "-c",
            "echo second > /layer",
        ],
    )
    .ok();
    berth(
        &root,
        &["container", "commit", "maker", "localhost/two-layers:1"],
    )
    .ok();
    let pushed = berth(
        &root,
        &[
            "image",
            "push",
            "localhost/two-layers:1",
            "127.0.0.1:5000/e2e/two:1",
        ],
    );
    pushed.ok();
    let inspect = berth(&root, &["image", "inspect", "localhost/two-layers:1"]).json();
    let layers = inspect[0]["RootFS"]["Layers"].as_array().unwrap().len();
    assert_eq!(layers, 2, "{inspect}");

    // The registry loses the newest layer's blob (as a connection lost half
    // way would): the pull fails after fetching the other one.
    let blobs = d.path().join("registry/docker/registry/v2/blobs/sha256");
    let mut data: Vec<(std::path::PathBuf, std::time::SystemTime)> = walk(&blobs)
        .into_iter()
        .filter(|p| p.ends_with("data"))
        .map(|p| {
            let t = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, t)
        })
        .collect();
    // The blobs that are not JSON (the configuration, the manifest) are
    // the layers: the busybox one, and the small one of the commit.
    data.sort_by_key(|(p, _)| std::fs::metadata(p).unwrap().len());
    let layer_blobs: Vec<&std::path::PathBuf> = data
        .iter()
        .map(|(p, _)| p)
        .filter(|p| !std::fs::read(p).unwrap().starts_with(b"{"))
        .collect();
    assert_eq!(layer_blobs.len(), 2, "{data:?}");
    let small = layer_blobs[0].clone();
    let hidden = small.with_file_name("hidden");
    std::fs::rename(&small, &hidden).unwrap();
    let other = d.path().join("other").to_string_lossy().into_owned();
    let failed = berth(&other, &["image", "pull", "127.0.0.1:5000/e2e/two:1"]);
    assert!(!failed.0.status.success());
    assert!(
        failed.stderr().contains("download complete"),
        "{}",
        failed.stderr()
    );
    assert!(
        berth(&other, &["image", "ls", "-q"]).ok().is_empty(),
        "no image from half a pull"
    );

    // Back again: the finished layer is not fetched twice.
    std::fs::rename(&hidden, &small).unwrap();
    let resumed = berth(&other, &["image", "pull", "127.0.0.1:5000/e2e/two:1"]);
    resumed.ok();
    let log = resumed.stderr();
    assert_eq!(log.matches("already exists").count(), 1, "{log}");
    assert_eq!(log.matches("pulling fs layer").count(), 1, "{log}");
    let out = berth(
        &other,
        &[
            "container",
            "run",
            "--rm",
            "--network",
            "none",
            "127.0.0.1:5000/e2e/two:1",
            "cat",
            "/layer",
        ],
    )
    .ok();
    assert_eq!(out, "second\n");
}

#[test]
fn a_hostile_layer_is_refused_while_it_downloads_and_leaves_nothing() {
    let d = Dir::new("registry-hostile");
    let ns = Netns::new();
    let _registry = Registry::start(&ns, &d);
    let root = d.path().join("root").to_string_lossy().into_owned();
    let berth = |root: &str, args: &[&str]| ns.berth(&d, root, args);
    let tarball = |entries: &[(&[u8], &[u8])]| {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    };
    std::fs::write(d.path().join("small.tar"), tarball(&[(b"ok", b"fine")])).unwrap();
    let small = d.path().join("small.tar").to_string_lossy().into_owned();
    berth(&root, &["image", "import", &small, "localhost/small:1"]).ok();
    berth(
        &root,
        &[
            "image",
            "push",
            "localhost/small:1",
            "127.0.0.1:5000/e2e/small:1",
        ],
    )
    .ok();
    // The registry now serves a layer that writes outside its root, and
    // much after that: the pull stops at the entry.
    let blobs = d.path().join("registry/docker/registry/v2/blobs/sha256");
    let layer = walk(&blobs)
        .into_iter()
        .filter(|p| p.ends_with("data"))
        .find(|p| !std::fs::read(p).unwrap().starts_with(b"{"))
        .expect("the layer's blob");
    let padding = vec![0u8; 8 << 20];
    std::fs::write(
        &layer,
        tarball(&[(b"../../escape", b"pwned"), (b"big", &padding)]),
    )
    .unwrap();
    let other = d.path().join("other");
    let other_s = other.to_string_lossy().into_owned();
    let err = berth(&other_s, &["image", "pull", "127.0.0.1:5000/e2e/small:1"]).fails();
    assert!(
        err.contains("layer entry") && err.contains("escape"),
        "{err}"
    );
    assert!(!d.path().join("escape").exists() && !other.join("escape").exists());
    assert!(berth(&other_s, &["image", "ls", "-q"]).ok().is_empty());
    for sub in ["images/tmp", "images/layers", "images/blobs/sha256"] {
        let left: Vec<_> = std::fs::read_dir(other.join(sub))
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "{sub}: {left:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
