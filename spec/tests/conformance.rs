//! The conformance suite: every fixture of `shared/ref/compose-go-fixtures`
//! loads to exactly what `docker compose config --format json` (v2.40.3)
//! printed for it, and every fixture Docker Compose rejects is rejected here
//! with a clear error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_spec::{Options, load, render};

fn fixtures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/ref/compose-go-fixtures");
    p.canonicalize()
        .unwrap_or_else(|e| panic!("the reference fixtures are missing at {}: {e}", p.display()))
}

/// The environment the reference outputs were produced with (`env -i PATH HOME`).
fn reference_env() -> BTreeMap<String, String> {
    [("PATH", "/usr/bin:/bin"), ("HOME", "/root")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_fixture(rel: &str, consistency: bool) -> berth_spec::Result<serde_json::Value> {
    let file = fixtures().join(rel);
    let dir = file.parent().unwrap().to_path_buf();
    let mut opts = Options::new(dir, reference_env());
    opts.files = vec![file];
    opts.consistency = consistency;
    let project = load(&opts)?.project.without_unused_resources();
    Ok(serde_json::from_str(&render::project_json(&project)).unwrap())
}

fn expected_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            expected_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

#[test]
fn every_fixture_matches_docker_compose_config() {
    let root = fixtures();
    let mut expected = Vec::new();
    expected_files(&root.join("_expected"), &mut expected);
    expected.sort();
    assert!(
        expected.len() >= 31,
        "found only {} expected outputs",
        expected.len()
    );
    let mut failures = Vec::new();
    for exp in &expected {
        let rel = exp
            .strip_prefix(root.join("_expected"))
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".json")
            .to_string();
        let (rel, consistency) = match rel.strip_suffix(".no-consistency") {
            Some(r) => (r.to_string(), false),
            None => (rel, true),
        };
        let text = std::fs::read_to_string(exp)
            .unwrap()
            .replace("<FIXTURES>", &root.display().to_string());
        let want: serde_json::Value = serde_json::from_str(&text).unwrap();
        match load_fixture(&rel, consistency) {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!(
                "{rel}: output differs\nwant: {want:#}\ngot:  {got:#}"
            )),
            Err(e) => failures.push(format!("{rel}: failed to load: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn fixtures_docker_compose_rejects_are_rejected() {
    let cases = [
        (
            "loader/full-example.yml",
            "mutually exclusive `network_mode` and `networks`",
        ),
        (
            "loader/testdata/compose-depends-on-cycle.yaml",
            "dependency cycle detected: service1 -> service2 -> service3 -> service1",
        ),
        (
            "loader/testdata/compose-depends-on-profile-no-cycle.yaml",
            "dependency cycle detected: service1 -> service2 -> service3 -> service1",
        ),
        (
            "loader/testdata/compose-depends-on-self.yaml",
            "dependency cycle detected: service1 -> service1",
        ),
        (
            "loader/testdata/compose-include-cycle.yaml",
            "include cycle detected",
        ),
        ("loader/testdata/empty.yaml", "empty compose file"),
        (
            "loader/testdata/extends/base.yaml",
            "base.yaml:25:6: services.nil: must be a mapping",
        ),
        (
            "loader/testdata/include/dir/compose.yaml",
            "extra.env not found",
        ),
        (
            "loader/testdata/remote/cycle/compose-cycle.yaml",
            "remote:cycle/compose.yaml",
        ),
        (
            "loader/testdata/remote/cycle/compose.yaml",
            "remote:cycle/compose-cycle.yaml",
        ),
        (
            "loader/testdata/remote/nested/compose.yaml",
            "remote:nested/compose-nested.yaml",
        ),
        ("schema/using-variables.yaml", "services.foo"),
    ];
    for (rel, want) in cases {
        match load_fixture(rel, true) {
            Ok(_) => panic!("{rel} loaded, but Docker Compose rejects it"),
            Err(e) => assert!(e.to_string().contains(want), "{rel}: {e}"),
        }
    }
}

#[test]
fn dotenv_fixtures_parse_as_compose_reads_them() {
    let dir = fixtures().join("dotenv/fixtures");
    let none = |_: &str| None;
    let plain = berth_spec::dotenv::read(&dir.join("plain.env"), &none).unwrap();
    assert_eq!(plain["OPTION_C"], "3");
    assert_eq!(plain["OPTION_H"], "my string");
    let bom = berth_spec::dotenv::read(&dir.join("utf8-bom.env"), &none).unwrap();
    assert_eq!(bom["OPTION_A"], "1");
    let quoted = berth_spec::dotenv::read(&dir.join("quoted.env"), &none).unwrap();
    assert_eq!(
        quoted["OPTION_J"],
        "first line\nsecond line\nthird line\nand so on"
    );
    assert_eq!(quoted["OPTION_K"], "Let's go!");
    assert_eq!(quoted["OPTION_I"], "echo 'asd'");
    let special = berth_spec::dotenv::read(&dir.join("special.env"), &none).unwrap();
    assert_eq!(special["VAR-WITH-DASHES"], "dashes");
    let custom = berth_spec::dotenv::read(&dir.join("custom.format"), &none).unwrap();
    assert_eq!(custom["ZOT"], "QIX");
    let equals = berth_spec::dotenv::read(&dir.join("equals.env"), &none).unwrap();
    assert_eq!(
        equals["OPTION_A"],
        "postgres://localhost:5432/database?sslmode=disable"
    );
    let subst = berth_spec::dotenv::read(&dir.join("substitutions.env"), &none).unwrap();
    assert_eq!(subst["OPTION_D"], "1_1");
    let os = |k: &str| (k == "VAR_TO_BE_LOADED_FROM_OS_ENV").then(|| "from os".to_string());
    let inherited = berth_spec::dotenv::read(&dir.join("inherited-multi-var.env"), &os).unwrap();
    assert_eq!(inherited["VAR_TO_BE_LOADED_FROM_OS_ENV"], "from os");
    let err = berth_spec::dotenv::read(&dir.join("invalid1.env"), &none).unwrap_err();
    assert!(err.to_string().contains("invalid1.env:7:1"), "{err}");
}
