//! `berth image …`: import, list, inspect, tag, remove, load, against a
//! private state root.

use crate::sandbox::Dir;

fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("bin/hello", b"#!/bin/sh\necho hello\n", 0o755);
    add("etc/motd", b"welcome\n", 0o644);
    b.into_inner().unwrap()
}

#[test]
fn import_ls_inspect_tag_rm() {
    let d = Dir::new("image");
    let root = d.path().join("state");
    let root_s = root.to_string_lossy().to_string();
    let env = [("BERTH_ROOT", root_s.as_str())];
    let tar = rootfs_tar();
    let tar_path = write_tarball(&tar, &d);
    let id = d
        .berth_with(
            &[
                "image",
                "import",
                "-c",
                "CMD [\"/bin/hello\"]",
                &tar_path,
                "localhost/hello:1",
            ],
            &env,
            None,
        )
        .ok();
    assert!(id.starts_with("sha256:"), "{id}");

    let ls = d.berth_with(&["image", "ls"], &env, None).ok();
    let lines: Vec<&str> = ls.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY"), "{ls}");
    assert!(
        lines[1].starts_with("localhost/hello") && lines[1].contains(" 1 "),
        "{ls}"
    );

    let inspect = d
        .berth_with(&["image", "inspect", "localhost/hello:1"], &env, None)
        .json();
    assert_eq!(inspect[0]["Config"]["Cmd"][0], "/bin/hello");
    assert_eq!(inspect[0]["Id"], id.trim());
    let formatted = d
        .berth_with(
            &[
                "image",
                "inspect",
                "-f",
                "{{.Id}} {{json .Config.Cmd}}",
                "localhost/hello:1",
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(formatted, format!("{} [\"/bin/hello\"]\n", id.trim()));

    d.berth_with(
        &[
            "image",
            "tag",
            "localhost/hello:1",
            "localhost/hello:latest",
        ],
        &env,
        None,
    )
    .ok();
    let ls = d
        .berth_with(&["image", "ls", "--format", "json"], &env, None)
        .ok();
    assert_eq!(ls.lines().count(), 2, "{ls}");

    let out = d
        .berth_with(&["image", "rm", "localhost/hello:latest"], &env, None)
        .ok();
    assert_eq!(out, "Untagged: localhost/hello:latest\n");
    let out = d
        .berth_with(&["image", "rm", "localhost/hello:1"], &env, None)
        .ok();
    assert!(out.contains("Deleted: sha256:"), "{out}");
    let err = d
        .berth_with(&["image", "inspect", "localhost/hello:1"], &env, None)
        .fails();
    assert!(err.contains("no such image: localhost/hello:1"), "{err}");
    let err = d
        .berth_with(&["image", "tag", "x", "Bad:Ref"], &env, None)
        .fails();
    assert!(err.contains("invalid reference format"), "{err}");
}

/// Writes bytes to a file in the sandbox and returns its path (the CLI reads
/// the tarball from a file, like `docker import FILE`).
fn write_tarball(bytes: &[u8], d: &Dir) -> String {
    let p = d.path().join("rootfs.tar");
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn save_writes_an_archive_that_load_reads_back_on_another_host() {
    let d = Dir::new("save");
    let root = crate::container::busybox_root(&d);
    let archive = d.path().join("saved.tar");
    d.berth_with(
        &[
            "image",
            "save",
            "-o",
            &archive.to_string_lossy(),
            "localhost/busybox-test:latest",
        ],
        &[("BERTH_ROOT", &root)],
        None,
    )
    .ok();
    let names: Vec<String> = tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["oci-layout", "index.json", "manifest.json"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let other = d.path().join("other").to_string_lossy().into_owned();
    let loaded = d
        .berth_with(
            &["image", "load", "-i", &archive.to_string_lossy()],
            &[("BERTH_ROOT", &other)],
            None,
        )
        .ok();
    assert_eq!(loaded, "Loaded image: localhost/busybox-test:latest\n");
    let id = |r: &str| {
        d.berth_with(
            &["image", "inspect", "localhost/busybox-test"],
            &[("BERTH_ROOT", r)],
            None,
        )
        .json()[0]["Id"]
            .clone()
    };
    assert!(id(&root).is_string());
    assert_eq!(id(&root), id(&other));
    let page = d
        .berth_with(
            &[
                "container",
                "run",
                "--rm",
                "localhost/busybox-test",
                "cat",
                "/www/index.html",
            ],
            &[("BERTH_ROOT", &other)],
            None,
        )
        .ok();
    assert_eq!(page, "hello from berth-busybox\n");
}
