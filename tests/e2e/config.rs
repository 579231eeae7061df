//! `berth config`: what a user sees when a project loads, and when it does not.

use crate::sandbox::Dir;

#[test]
fn discovers_compose_yaml_and_its_override_from_a_subfolder() {
    let d = Dir::new("discover");
    d.write(
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    ports: ['8080:80']\n",
    )
    .write(
        "compose.override.yaml",
        "services:\n  web:\n    environment: [DEBUG=1]\n",
    )
    .write("sub/dir/.keep", "");
    let out = Dir::berth_in(&d, "sub/dir", &["config", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dirname = d
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    let expected_name: String = dirname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(v["name"], expected_name.as_str());
    assert_eq!(v["services"]["web"]["environment"]["DEBUG"], "1");
    assert_eq!(v["services"]["web"]["ports"][0]["published"], "8080");
}

#[test]
fn errors_name_file_line_column_and_field() {
    let d = Dir::new("errors");
    d.write(
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    ports:\n      - 8080:80\n      - 80-70\n",
    );
    let err = d.berth(&["config"]).fails();
    assert!(
        err.contains("compose.yaml:6:9: services.web.ports[1]: invalid port range \"80-70\""),
        "{err}"
    );

    d.write(
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    imagee: typo\n",
    );
    let err = d.berth(&["config"]).fails();
    assert!(
        err.contains(
            "compose.yaml:4:5: services.web: additional property \"imagee\" is not allowed"
        ),
        "{err}"
    );

    d.write(
        "compose.yaml",
        "services:\n  web:\n    image: ${IMAGE:?set IMAGE}\n",
    );
    let err = d.berth(&["config"]).fails();
    assert!(err.contains("compose.yaml:3:12: services.web.image: required variable IMAGE is missing a value: set IMAGE"), "{err}");

    d.write("compose.yaml", "services:\n  web:\n    image: [nginx\n");
    let err = d.berth(&["config"]).fails();
    assert!(err.contains("compose.yaml:"), "{err}");

    d.write(
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    networks: [front]\n",
    );
    let err = d.berth(&["config"]).fails();
    assert!(err.contains("compose.yaml:4:5: services.web.networks: service \"web\" refers to undefined network front"), "{err}");

    d.write("compose.yaml", "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n");
    let err = d.berth(&["config"]).fails();
    assert!(
        err.contains("dependency cycle detected: a -> b -> a"),
        "{err}"
    );
}

#[test]
fn env_file_flag_stdin_and_profiles() {
    let d = Dir::new("envfile");
    d.write("custom.env", "TAG=1.2\nexport NAME='my app'\n");
    let yaml = "services:\n  web:\n    image: nginx:${TAG}\n    labels:\n      app: $NAME\n  debug:\n    image: busybox\n    profiles: [dev]\n";
    let run = d.berth_with(
        &[
            "-f",
            "-",
            "--env-file",
            "custom.env",
            "config",
            "--format",
            "json",
        ],
        &[],
        Some(yaml),
    );
    let v = run.json();
    assert_eq!(v["services"]["web"]["image"], "nginx:1.2");
    assert_eq!(v["services"]["web"]["labels"]["app"], "my app");
    assert!(v["services"].get("debug").is_none());

    let run = d.berth_with(
        &[
            "-f",
            "-",
            "--env-file",
            "custom.env",
            "--profile",
            "dev",
            "config",
            "--services",
        ],
        &[],
        Some(yaml),
    );
    assert_eq!(run.ok(), "debug\nweb\n");
    let run = d.berth_with(
        &[
            "-f",
            "-",
            "--env-file",
            "custom.env",
            "config",
            "--profiles",
        ],
        &[("COMPOSE_PROFILES", "dev")],
        Some(yaml),
    );
    assert_eq!(run.ok(), "dev\n");
}

#[test]
fn yaml_output_reads_back_the_same() {
    let d = Dir::new("yaml");
    d.write(
        "compose.yaml",
        "name: demo\nservices:\n  web:\n    image: nginx\n    command: echo 'hello world'\n    environment:\n      EMPTY: ''\n      YES: 'yes'\n    healthcheck:\n      test: curl -f http://localhost/ || exit 1\n      interval: 90s\nx-note: {a: 1}\n",
    );
    let yaml = d.berth(&["config"]).ok();
    assert!(yaml.starts_with("name: demo\nservices:\n"), "{yaml}");
    d.write("again.yaml", &yaml);
    let a = d.berth(&["config", "--format", "json"]).json();
    let b = d
        .berth(&["-f", "again.yaml", "config", "--format", "json"])
        .json();
    assert_eq!(a, b);
    assert_eq!(a["services"]["web"]["healthcheck"]["interval"], "1m30s");
}

#[test]
fn no_interpolate_keeps_variables() {
    let d = Dir::new("nointerp");
    d.write(
        "compose.yaml",
        "services:\n  web:\n    image: nginx:${TAG:-latest}\n",
    );
    let v = d
        .berth(&["config", "--no-interpolate", "--format", "json"])
        .json();
    assert_eq!(v["services"]["web"]["image"], "nginx:${TAG:-latest}");
    assert_eq!(d.berth(&["config", "--images"]).ok(), "nginx:latest\n");
    assert_eq!(d.berth(&["config", "-q"]).ok(), "");
}

#[test]
fn override_files_merge_by_the_spec_rules() {
    let d = Dir::new("override");
    d.write(
        "base.yaml",
        "services:\n  app:\n    image: app:1\n    command: [serve]\n    ports: ['8080:80']\n    environment: [A=1, B=2]\n    volumes: ['data:/data']\nvolumes:\n  data: {}\n  other: {}\n",
    )
    .write(
        "prod.yaml",
        "services:\n  app:\n    image: app:2\n    command: [serve, --prod]\n    ports: !override ['443:443']\n    environment:\n      B: !reset null\n      C: '3'\n    volumes: ['other:/data']\n",
    );
    let v = d
        .berth(&[
            "-f",
            "base.yaml",
            "-f",
            "prod.yaml",
            "config",
            "--format",
            "json",
        ])
        .json();
    let app = &v["services"]["app"];
    assert_eq!(app["image"], "app:2");
    assert_eq!(app["command"], serde_json::json!(["serve", "--prod"]));
    assert_eq!(app["ports"].as_array().unwrap().len(), 1);
    assert_eq!(app["ports"][0]["target"], 443);
    assert_eq!(app["environment"], serde_json::json!({"A": "1", "C": "3"}));
    assert_eq!(app["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(app["volumes"][0]["source"], "other");
    assert!(v["volumes"].get("data").is_none(), "unused volume left out");

    let run = d.berth_with(
        &["config", "--services"],
        &[("COMPOSE_FILE", "base.yaml:prod.yaml")],
        None,
    );
    assert_eq!(run.ok(), "app\n");
}

#[test]
fn extends_and_include_resolve_paths_from_their_own_folder() {
    let d = Dir::new("extends");
    d.write(
        "common/base.yaml",
        "services:\n  base:\n    image: base\n    env_file: ./base.env\n    volumes: ['./conf:/conf']\n",
    )
    .write("common/base.env", "FROM_BASE=yes\n")
    .write(
        "lib/compose.yaml",
        "services:\n  lib:\n    build: .\n",
    )
    .write(
        "compose.yaml",
        "include: [lib/compose.yaml]\nservices:\n  web:\n    extends: {file: common/base.yaml, service: base}\n    environment: [OWN=1]\n",
    );
    let v = d.berth(&["config", "--format", "json"]).json();
    let root = d.path().canonicalize().unwrap();
    let web = &v["services"]["web"];
    assert_eq!(web["environment"]["FROM_BASE"], "yes");
    assert_eq!(web["environment"]["OWN"], "1");
    assert_eq!(
        web["volumes"][0]["source"],
        root.join("common/conf").to_string_lossy().as_ref()
    );
    assert_eq!(
        v["services"]["lib"]["build"]["context"],
        root.join("lib").to_string_lossy().as_ref()
    );

    d.write(
        "compose.yaml",
        "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
    );
    let err = d.berth(&["config"]).fails();
    assert!(err.contains("circular reference with extends"), "{err}");
}

#[test]
fn model_conflicts_are_refused() {
    let d = Dir::new("conflicts");
    d.write(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    scale: 2\n    deploy: {replicas: 3}\n",
    );
    let err = d.berth(&["config"]).fails();
    assert!(
        err.contains("'scale' (2) and 'deploy.replicas' (3)"),
        "{err}"
    );

    d.write(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    network_mode: host\n    networks: [n]\nnetworks:\n  n: {}\n",
    );
    let err = d.berth(&["config"]).fails();
    assert!(
        err.contains("mutually exclusive `network_mode` and `networks`"),
        "{err}"
    );
    assert!(d.berth(&["config", "--no-consistency"]).0.status.success());

    d.write(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    volumes: ['missing:/data']\n",
    );
    let err = d.berth(&["config"]).fails();
    assert!(err.contains("refers to undefined volume missing"), "{err}");

    d.write(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    privileged: maybe\n",
    );
    let err = d.berth(&["config"]).fails();
    assert!(
        err.contains("compose.yaml:4:17: services.a.privileged: invalid boolean \"maybe\""),
        "{err}"
    );

    d.write(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    mem_limit: 12zb\n    stop_grace_period: 1m30s\n",
    );
    let err = d.berth(&["config"]).fails();
    assert!(
        err.contains("services.a.mem_limit: invalid size \"12zb\""),
        "{err}"
    );
}

/// Catalog FS-15: names become paths, interface names and firewall
/// identifiers, so a name with `/`, `..` or characters beyond Compose's
/// schema is refused where it is written; a long one is fine.
#[test]
fn names_that_could_be_paths_are_refused_at_their_line() {
    let d = Dir::new("names");
    for (yaml, expected) in [
        (
            "services:\n  app:\n    image: x\n    container_name: x/../../y\n",
            "compose.yaml:4:21: services.app.container_name: invalid container name \"x/../../y\"",
        ),
        (
            "services:\n  app:\n    image: x\nvolumes:\n  ../../etc: {}\n",
            "compose.yaml:5:3: volumes: additional property \"../../etc\" is not allowed",
        ),
        (
            "services:\n  app:\n    image: x\nnetworks:\n  netwörk: {}\n",
            "compose.yaml:5:3: networks: additional property \"netwörk\" is not allowed",
        ),
        (
            "services:\n  a/b:\n    image: x\n",
            "compose.yaml:2:3: services: additional property \"a/b\" is not allowed",
        ),
    ] {
        d.write("compose.yaml", yaml);
        let err = d.berth(&["config"]).fails();
        assert!(err.contains(expected), "{err}");
    }
    d.write("compose.yaml", "services:\n  app:\n    image: x\n");
    for project in ["a/b", "..", "../../etc"] {
        let err = d.berth(&["-p", project, "config"]).fails();
        assert!(err.contains("invalid project name"), "{err}");
    }
    let long = "n".repeat(200);
    d.write(
        "compose.yaml",
        &format!(
            "services:\n  app:\n    image: x\n    networks: [{long}]\nnetworks:\n  {long}: {{}}\n"
        ),
    );
    d.berth(&["config", "-q"]).ok();
}
