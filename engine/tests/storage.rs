//! Volumes and overlay root filesystems, as root against the real kernel.

use std::collections::BTreeMap;
use std::io::Write;

use berth_engine::image::unpack::{Limits, unpack_layer};
use berth_engine::rootfs::ContainerFs;
use berth_engine::volume::VolumeStore;

fn requires_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests mount filesystems: run them as root"
    );
}

fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn volumes_are_created_listed_exported_imported_and_removed() {
    requires_root();
    let root = tempfile::tempdir().unwrap();
    let store = VolumeStore::open(root.path()).unwrap();
    let mut labels = BTreeMap::new();
    labels.insert("com.docker.compose.project".to_string(), "demo".to_string());
    let v = store
        .create("demo_data", "local", BTreeMap::new(), labels.clone())
        .unwrap();
    assert_eq!(v.driver, "local");
    // Same settings: a no-op; other settings: refused.
    store
        .create("demo_data", "", BTreeMap::new(), labels.clone())
        .unwrap();
    assert!(
        store
            .create("demo_data", "local", BTreeMap::new(), BTreeMap::new())
            .is_err()
    );
    assert!(
        store
            .create("../x", "local", BTreeMap::new(), BTreeMap::new())
            .is_err()
    );

    std::fs::write(store.data_path("demo_data").join("file"), b"kept").unwrap();
    let mut archive = Vec::new();
    store.export("demo_data", &mut archive).unwrap();

    store
        .create("copy", "local", BTreeMap::new(), BTreeMap::new())
        .unwrap();
    store.import("copy", &archive[..]).unwrap();
    assert_eq!(
        std::fs::read(store.data_path("copy").join("file")).unwrap(),
        b"kept"
    );

    let names: Vec<String> = store.list().unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["copy", "demo_data"]);
    let err = store
        .remove("demo_data", &|n| n == "demo_data")
        .unwrap_err()
        .to_string();
    assert!(err.contains("in use"), "{err}");
    let mut anon = BTreeMap::new();
    anon.insert("com.docker.volume.anonymous".to_string(), String::new());
    store
        .create("0123456789abcdef", "local", BTreeMap::new(), anon)
        .unwrap();
    assert_eq!(
        store.prune(false, &|_| false).unwrap(),
        ["0123456789abcdef"]
    );
    assert_eq!(store.prune(true, &|n| n == "demo_data").unwrap(), ["copy"]);
    store.remove("demo_data", &|_| false).unwrap();
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn overlay_roots_stack_layers_and_write_to_the_container_layer() {
    requires_root();
    let dir = tempfile::tempdir().unwrap();
    let mut layers = Vec::new();
    let contents: Vec<Vec<u8>> = vec![
        layer(&[
            ("etc/base", b"from layer 1"),
            ("etc/gone", b"deleted above"),
        ]),
        layer(&[("etc/.wh.gone", b""), ("etc/top", b"from layer 2")]),
    ];
    for (i, tar) in contents.iter().enumerate() {
        let l = dir.path().join(format!("layer{i}"));
        std::fs::create_dir(&l).unwrap();
        unpack_layer(&tar[..], &l, &Limits::default()).unwrap();
        layers.push(l);
    }
    // More layers than one mount option string could name.
    for i in 2..120 {
        let l = dir
            .path()
            .join(format!("{}-{i}", "long-layer-name".repeat(3)));
        std::fs::create_dir(&l).unwrap();
        let mut f = std::fs::File::create(l.join(format!("f{i}"))).unwrap();
        writeln!(f, "{i}").unwrap();
        layers.push(l);
    }
    let fs = ContainerFs::create(&dir.path().join("c1")).unwrap();
    fs.mount(&layers, None, false).unwrap();
    let result = std::panic::catch_unwind(|| {
        assert_eq!(
            std::fs::read(fs.merged.join("etc/base")).unwrap(),
            b"from layer 1"
        );
        assert_eq!(
            std::fs::read(fs.merged.join("etc/top")).unwrap(),
            b"from layer 2"
        );
        assert!(!fs.merged.join("etc/gone").exists());
        assert!(fs.merged.join("f119").exists());
        std::fs::write(fs.merged.join("etc/new"), b"container write").unwrap();
        assert_eq!(
            std::fs::read(fs.upper.join("etc/new")).unwrap(),
            b"container write"
        );
        assert!(!layers[0].join("etc/new").exists());
    });
    fs.unmount().unwrap();
    fs.unmount().unwrap();
    result.unwrap();
    assert!(!fs.merged.join("etc").exists(), "unmounted");
}

#[test]
fn a_removed_containers_directory_comes_back_bare_for_the_next() {
    requires_root();
    use berth_engine::runtime::spares;
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let trash = root.path().join(".removing-c1");
    for d in [
        "upper/etc/deep",
        "work/work/incompat/volatile",
        "merged",
        "lower/0",
    ] {
        std::fs::create_dir_all(trash.join(d)).unwrap();
    }
    for f in [
        "container.json",
        "hostname",
        "upper/etc/passwd",
        "upper/etc/deep/x",
        "upper/top",
    ] {
        std::fs::write(trash.join(f), b"left").unwrap();
    }
    std::fs::set_permissions(trash.join("upper"), std::fs::Permissions::from_mode(0o700)).unwrap();
    rustix::fs::setxattr(
        trash.join("upper").as_path(),
        "user.left",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    assert!(spares::keep(root.path(), &trash, "c1"));
    assert!(!trash.exists());
    let spare = root.path().join("spares/c1");
    let mut names: Vec<_> = std::fs::read_dir(&spare)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["hostname", "merged", "upper", "work"]);
    for d in ["upper", "work", "merged"] {
        assert_eq!(std::fs::read_dir(spare.join(d)).unwrap().count(), 0, "{d}");
    }
    let upper = std::fs::metadata(spare.join("upper")).unwrap();
    assert_eq!(upper.permissions().mode() & 0o7777, 0o755);
    let mut attrs = [0u8; 256];
    let n = rustix::fs::listxattr(spare.join("upper").as_path(), &mut attrs).unwrap();
    assert!(!attrs[..n].windows(9).any(|w| w == b"user.left"));
    // The next container takes it, once.
    let staging = root.path().join(".creating-c2");
    let held = spares::take(root.path(), &staging).expect("a spare");
    assert!(staging.join("upper").is_dir());
    // Taken locked: what collects killed creators' directories leaves it.
    let again = std::fs::File::open(&staging).unwrap();
    assert!(
        rustix::fs::flock(&again, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
    );
    drop(held);
    assert!(spares::take(root.path(), &root.path().join(".creating-c3")).is_none());
}
