//! Image store tests, as root against the real filesystem: loading
//! docker-save and OCI archives, import, tags and removal, and the suite of
//! hostile layers from `security_catalog.md` (IMG-01…07, 09, 12, 14, 15, 29).
//! Every hostile case asserts that a sentinel outside the layer is unchanged.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_engine::image::archive;
use berth_engine::image::unpack::{Limits, unpack_layer};
use berth_engine::image::{Digest, ImageStore, Reference};

fn requires_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests create device nodes and set owners: run them as root"
    );
}

/// One raw tar entry; names are written as given, unchecked.
enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
    Xattr(&'a str, &'a str, &'a [u8]),
}

fn header(name: &[u8], kind: tar::EntryType, size: u64, link: &[u8], mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let raw = h.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name);
        raw.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

fn tarball(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(n, data) => {
                let h = header(
                    n.as_bytes(),
                    tar::EntryType::Regular,
                    data.len() as u64,
                    b"",
                    0o644,
                );
                b.append(&h, *data).unwrap();
            }
            E::Dir(n) => {
                let h = header(n.as_bytes(), tar::EntryType::Directory, 0, b"", 0o755);
                b.append(&h, &[][..]).unwrap();
            }
            E::Symlink(n, t) => {
                let h = header(
                    n.as_bytes(),
                    tar::EntryType::Symlink,
                    0,
                    t.as_bytes(),
                    0o777,
                );
                b.append(&h, &[][..]).unwrap();
            }
            E::Hardlink(n, t) => {
                let h = header(n.as_bytes(), tar::EntryType::Link, 0, t.as_bytes(), 0o644);
                b.append(&h, &[][..]).unwrap();
            }
            E::Char(n, maj, min) => {
                let mut h = header(n.as_bytes(), tar::EntryType::Char, 0, b"", 0o666);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Fifo(n) => {
                let h = header(n.as_bytes(), tar::EntryType::Fifo, 0, b"", 0o644);
                b.append(&h, &[][..]).unwrap();
            }
            E::Xattr(n, key, value) => {
                b.append_pax_extensions([(format!("SCHILY.xattr.{key}").as_str(), *value)])
                    .unwrap();
                let h = header(n.as_bytes(), tar::EntryType::Regular, 1, b"", 0o644);
                b.append(&h, &b"x"[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A sandbox: `root/layer` to unpack into, `root/sentinel/` beside it.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        requires_root();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("layer")).unwrap();
        std::fs::create_dir(dir.path().join("sentinel")).unwrap();
        std::fs::write(dir.path().join("sentinel/victim"), b"original").unwrap();
        Sandbox { dir }
    }
    fn layer(&self) -> PathBuf {
        self.dir.path().join("layer")
    }
    fn sentinel(&self) -> PathBuf {
        self.dir.path().join("sentinel")
    }
    fn unpack(&self, entries: &[E<'_>]) -> berth_engine::Result<()> {
        unpack_layer(&tarball(entries)[..], &self.layer(), &Limits::default()).map(|_| ())
    }
    /// Nothing outside the layer changed.
    fn assert_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(self.sentinel())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["victim"], "sentinel dir changed");
        let md = std::fs::metadata(self.sentinel().join("victim")).unwrap();
        assert_eq!(
            std::fs::read(self.sentinel().join("victim")).unwrap(),
            b"original"
        );
        assert_eq!(md.nlink(), 1, "sentinel gained a hard link");
        assert_eq!(md.permissions().mode() & 0o7777, 0o644);
        let top: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut top = top;
        top.sort();
        assert_eq!(
            top,
            ["layer", "sentinel"],
            "something was created beside the layer"
        );
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn img01_names_with_dotdot_or_absolute_paths_are_refused() {
    for name in ["../x", "../../x", "a/../../x", "./../x", "/abs/x", ""] {
        let sb = Sandbox::new();
        let err = sb.unpack(&[E::File(name, b"pwn")]).unwrap_err().to_string();
        assert!(err.contains("layer entry"), "{name}: {err}");
        sb.assert_untouched();
    }
}

#[test]
fn img02_writes_through_escaping_symlinks_are_refused() {
    let sb = Sandbox::new();
    let abs = s(&sb.sentinel());
    let cases: Vec<Vec<E<'_>>> = vec![
        vec![E::Symlink("l", &abs), E::File("l/pwn", b"x")],
        vec![E::Symlink("l", "../../.."), E::File("l/x/y/z", b"x")],
        vec![E::Symlink("l", "../sentinel"), E::File("l/victim", b"x")],
        vec![
            E::Symlink("a", "x/escape"),
            E::Dir("x"),
            E::Symlink("x/escape", "../.."),
            E::File("a/absolute/file", b"x"),
        ],
    ];
    for (i, case) in cases.iter().enumerate() {
        let sb = Sandbox::new();
        let err = sb.unpack(case).expect_err(&format!("case {i} unpacked"));
        assert!(err.to_string().contains("layer entry"), "case {i}: {err}");
        sb.assert_untouched();
    }
}

#[test]
fn img04_hard_links_stay_inside_the_layer() {
    for target in ["../sentinel/victim", "../../x"] {
        let sb = Sandbox::new();
        assert!(
            sb.unpack(&[E::Hardlink("h", target), E::File("h", b"pwn")])
                .is_err()
        );
        sb.assert_untouched();
    }
    let sb = Sandbox::new();
    let abs = s(&sb.sentinel().join("victim"));
    // An absolute target names a path inside the layer, which does not exist.
    assert!(sb.unpack(&[E::Hardlink("h", &abs)]).is_err());
    sb.assert_untouched();
    let sb = Sandbox::new();
    let dir = s(&sb.sentinel());
    assert!(
        sb.unpack(&[E::Symlink("sym", &dir), E::Hardlink("h", "sym/victim")])
            .is_err()
    );
    sb.assert_untouched();
    // Kaniko-style absolute targets inside the layer work.
    let sb = Sandbox::new();
    sb.unpack(&[
        E::Dir("usr"),
        E::File("usr/x", b"data"),
        E::Hardlink("y", "/usr/x"),
    ])
    .unwrap();
    assert_eq!(std::fs::read(sb.layer().join("y")).unwrap(), b"data");
    assert_eq!(std::fs::metadata(sb.layer().join("y")).unwrap().nlink(), 2);
}

#[test]
fn img05_type_changes_of_one_name_never_escape() {
    let sb = Sandbox::new();
    let abs = s(&sb.sentinel());
    let r = sb.unpack(&[E::Dir("d"), E::Symlink("d", &abs), E::File("d/f", b"x")]);
    assert!(r.is_err());
    sb.assert_untouched();
    let sb = Sandbox::new();
    sb.unpack(&[E::Symlink("d", "/x"), E::Dir("d"), E::File("d/f", b"x")])
        .unwrap();
    assert!(sb.layer().join("d/f").is_file());
    sb.assert_untouched();
}

#[test]
fn symlinked_parents_inside_the_layer_are_followed() {
    let sb = Sandbox::new();
    sb.unpack(&[
        E::Dir("a"),
        E::Dir("a/real"),
        E::Symlink("a/alias", "real"),
        E::Symlink("top", "a/alias"),
        E::File("a/alias/f", b"x"),
        E::File("top/g/h", b"y"),
        E::File("a/real/i", b"z"),
    ])
    .unwrap();
    assert_eq!(std::fs::read(sb.layer().join("a/real/f")).unwrap(), b"x");
    assert_eq!(std::fs::read(sb.layer().join("a/real/g/h")).unwrap(), b"y");
    assert_eq!(std::fs::read(sb.layer().join("a/real/i")).unwrap(), b"z");
    sb.assert_untouched();
}

#[test]
fn img06_metadata_is_never_applied_through_a_symlink() {
    let sb = Sandbox::new();
    let victim = s(&sb.sentinel().join("victim"));
    let _ = sb.unpack(&[E::Symlink("s", &victim), E::Dir("s/")]);
    sb.assert_untouched();
}

#[test]
fn img07_whiteouts_become_overlay_markers_inside_the_layer_only() {
    let sb = Sandbox::new();
    sb.unpack(&[
        E::Dir("a"),
        E::File("a/.wh.gone", b""),
        E::File("a/.wh..wh..opq", b""),
    ])
    .unwrap();
    let md = std::fs::symlink_metadata(sb.layer().join("a/gone")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(md.file_type().is_char_device() && md.rdev() == 0);
    let opaque = rustix::fs::getxattr(
        sb.layer().join("a"),
        "trusted.overlay.opaque",
        &mut [0u8; 4],
    )
    .unwrap();
    assert_eq!(opaque, 1);
    for bad in [".wh.", ".wh..", ".wh..."] {
        let sb = Sandbox::new();
        assert!(sb.unpack(&[E::File(bad, b"")]).is_err(), "{bad}");
        sb.assert_untouched();
    }
    let sb = Sandbox::new();
    let dir = s(&sb.sentinel());
    assert!(
        sb.unpack(&[E::Symlink("lnk", &dir), E::File("lnk/.wh.victim", b"")])
            .is_err()
    );
    sb.assert_untouched();
}

#[test]
fn img09_trusted_xattrs_are_stripped_and_devices_fifos_created() {
    let sb = Sandbox::new();
    sb.unpack(&[
        E::Xattr("f", "trusted.overlay.redirect", b"/../x"),
        E::Xattr("g", "user.note", b"kept"),
        E::Char("null", 1, 3),
        E::Fifo("fifo"),
    ])
    .unwrap();
    let mut buf = [0u8; 16];
    assert!(
        rustix::fs::getxattr(sb.layer().join("f"), "trusted.overlay.redirect", &mut buf).is_err()
    );
    let n = rustix::fs::getxattr(sb.layer().join("g"), "user.note", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"kept");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(sb.layer().join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn img12_expansion_and_entry_caps_name_the_limit() {
    let sb = Sandbox::new();
    let data = vec![0u8; 1 << 20];
    let tar = tarball(&[E::File("big", &data)]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let limits = Limits {
        max_bytes: 64 << 10,
        ..Limits::default()
    };
    let err = unpack_layer(&gz[..], &sb.layer(), &limits)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 65536 bytes"), "{err}");
    let limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    let sb = Sandbox::new();
    let tar = tarball(&[E::File("a", b""), E::File("b", b""), E::File("c", b"")]);
    let err = unpack_layer(&tar[..], &sb.layer(), &limits)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 2 entries"), "{err}");
    let sb = Sandbox::new();
    let deep = "d/".repeat(300) + "f";
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, &deep, &[][..]).unwrap();
    let err = unpack_layer(
        &b.into_inner().unwrap()[..],
        &sb.layer(),
        &Limits::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("deeper than"), "{err}");
}

fn docker_save(
    refs: &[&str],
    layers: &[Vec<u8>],
    config_extra: serde_json::Value,
) -> (Vec<u8>, Vec<Digest>) {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::of(l)).collect();
    let mut config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    });
    if let (Some(c), Some(extra)) = (config.as_object_mut(), config_extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let layer_names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": refs, "Layers": layer_names}]);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    add(&config_name, &config);
    for (n, l) in layer_names.iter().zip(layers) {
        add(n, l);
    }
    (b.into_inner().unwrap(), diff_ids)
}

#[test]
fn docker_save_archives_load_and_layers_are_shared() {
    requires_root();
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let base = tarball(&[E::Dir("bin"), E::File("bin/hello", b"hi")]);
    let top = tarball(&[E::File("etc-version", b"1")]);
    let (archive_a, diffs) = docker_save(&["app:1"], &[base.clone(), top], serde_json::json!({}));
    let loaded = archive::load(&store, &archive_a[..]).unwrap();
    assert_eq!(loaded[0].refs, ["docker.io/library/app:1"]);
    let rec = store.resolve("app:1").unwrap();
    let layers = store.layers(&rec).unwrap();
    assert_eq!(
        layers[0],
        root.path().join("images/layers").join(diffs[0].hex())
    );
    assert_eq!(std::fs::read(layers[0].join("bin/hello")).unwrap(), b"hi");

    // A second image on the same base reuses the unpacked layer.
    let (archive_b, _) = docker_save(
        &["other:2"],
        &[base],
        serde_json::json!({"created": "2026-01-01T00:00:00Z"}),
    );
    archive::load(&store, &archive_b[..]).unwrap();
    let count = std::fs::read_dir(root.path().join("images/layers"))
        .unwrap()
        .count();
    assert_eq!(count, 2);

    // Tag, untag, remove: shared layers stay while an image needs them.
    store
        .tag("app:1", &Reference::parse("app:latest").unwrap())
        .unwrap();
    let out = store.remove("app:latest", false, &|_| false).unwrap();
    assert_eq!(out, ["Untagged: docker.io/library/app:latest"]);
    let err = store
        .remove("app:1", false, &|_| true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("used by a container"), "{err}");
    store.remove("app:1", false, &|_| false).unwrap();
    assert!(store.resolve("app:1").is_err());
    let count = std::fs::read_dir(root.path().join("images/layers"))
        .unwrap()
        .count();
    assert_eq!(count, 1, "the base layer is still used by other:2");
    store.remove("other:2", false, &|_| false).unwrap();
    assert_eq!(
        std::fs::read_dir(root.path().join("images/layers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(root.path().join("images/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn img14_layers_that_do_not_match_their_diff_id_are_not_committed() {
    requires_root();
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let (mut archive_bytes, _) = docker_save(
        &["bad:1"],
        &[tarball(&[E::File("a", b"1")])],
        serde_json::json!({}),
    );
    // Flip a byte inside the layer's file content.
    let pos = archive_bytes.windows(1).rposition(|w| w == b"1").unwrap();
    archive_bytes[pos] = b'2';
    let err = archive::load(&store, &archive_bytes[..])
        .unwrap_err()
        .to_string();
    assert!(err.contains("digest mismatch"), "{err}");
    assert_eq!(
        std::fs::read_dir(root.path().join("images/layers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(root.path().join("images/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn img29_archive_member_paths_stay_inside_the_archive() {
    requires_root();
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let manifest = serde_json::json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["../../etc/passwd"]}]);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let m = serde_json::to_vec(&manifest).unwrap();
    h.set_size(m.len() as u64);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "manifest.json", &m[..]).unwrap();
    let cfg = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
    let mut h = tar::Header::new_gnu();
    h.set_size(cfg.len() as u64);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "c.json", &cfg[..]).unwrap();
    let err = archive::load(&store, &b.into_inner().unwrap()[..])
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid path"), "{err}");
    let err = archive::load(&store, &b"not a tar at all"[..])
        .unwrap_err()
        .to_string();
    assert!(!err.is_empty());
}

#[test]
fn oci_layouts_load_with_their_reference() {
    requires_root();
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let layer = tarball(&[E::File("hello", b"oci")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let gz = gz.finish().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": Digest::of(&gz).to_string(), "size": gz.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of(&manifest).to_string(), "size": manifest.len(),
            "annotations": {"io.containerd.image.name": "registry.local:5000/team/app:v2"}}],
    }))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: String, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json".into(), &index);
    for blob in [&config, &manifest, &gz] {
        add(format!("blobs/sha256/{}", Digest::of(blob).hex()), blob);
    }
    let loaded = archive::load(&store, &b.into_inner().unwrap()[..]).unwrap();
    assert_eq!(loaded[0].refs, ["registry.local:5000/team/app:v2"]);
    let rec = store.resolve("registry.local:5000/team/app:v2").unwrap();
    assert_eq!(
        std::fs::read(store.layers(&rec).unwrap()[0].join("hello")).unwrap(),
        b"oci"
    );
}

#[test]
fn import_makes_a_one_layer_image_with_changes() {
    requires_root();
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let layer = tarball(&[E::Dir("./"), E::Dir("bin"), E::File("bin/tool", b"#!")]);
    let rec = archive::import(
        &store,
        &layer[..],
        Some(&Reference::parse("localhost/tool:1").unwrap()),
        &["CMD [\"tool\"]".to_string(), "ENV A=1".to_string()],
    )
    .unwrap();
    let cfg = store.config(&rec).unwrap();
    assert_eq!(cfg.config.cmd.unwrap(), ["tool"]);
    assert_eq!(cfg.config.env.unwrap(), ["A=1"]);
    let layer_dir = &store.layers(&rec).unwrap()[0];
    assert_eq!(
        std::fs::metadata(layer_dir).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(store.resolve(&rec.id[7..19]).unwrap().id, rec.id);
}
