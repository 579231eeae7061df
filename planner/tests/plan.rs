//! Planner tests: golden plans for the common cases, and the properties that
//! make `up` level-triggered (planning against the result of a plan yields
//! nothing; plans are deterministic).

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_planner::labels;
use berth_planner::{
    ContainerState, DesiredState, DownOptions, ObservedContainer, ObservedNetwork, ObservedState,
    ObservedVolume, Op, Plan, Resource, UpOptions, plan_down, plan_up,
};

fn project(yaml: &str) -> berth_spec::Project {
    let env: BTreeMap<String, String> = BTreeMap::new();
    let mut opts = berth_spec::Options::new(PathBuf::from("/nonexistent/demo"), env);
    opts.files = vec![PathBuf::from("-")];
    opts.stdin = Some(yaml.to_string());
    opts.project_name = Some("demo".into());
    berth_spec::load(&opts).expect("test project loads").project
}

fn desired(yaml: &str) -> DesiredState {
    DesiredState::from_project(&project(yaml), &BTreeMap::new())
}

/// The state a plan leaves behind: a model of what the engine and netplane
/// would hold after executing it.
fn apply(desired: &DesiredState, observed: &ObservedState, plan: &Plan) -> ObservedState {
    let mut s = observed.clone();
    for n in &plan.nodes {
        match (&n.resource, n.op) {
            (Resource::Image(r), Op::PullImage) => {
                s.images.insert(r.clone());
            }
            (Resource::Network { key, name }, Op::CreateNetwork) => {
                let mut l = BTreeMap::new();
                l.insert(
                    labels::CONFIG_HASH.to_string(),
                    desired.networks[key].hash.clone(),
                );
                s.networks.insert(
                    name.clone(),
                    ObservedNetwork {
                        name: name.clone(),
                        labels: l,
                        incomplete: false,
                    },
                );
            }
            (Resource::Network { name, .. }, Op::RemoveNetwork) => {
                s.networks.remove(name);
            }
            (Resource::Volume { key, name }, Op::CreateVolume) => {
                let mut l = BTreeMap::new();
                l.insert(
                    labels::CONFIG_HASH.to_string(),
                    desired.volumes[key].hash.clone(),
                );
                s.volumes.insert(
                    name.clone(),
                    ObservedVolume {
                        name: name.clone(),
                        labels: l,
                    },
                );
            }
            (Resource::Volume { name, .. }, Op::RemoveVolume) => {
                s.volumes.remove(name);
            }
            (Resource::Container { name, .. }, Op::CreateContainer) => {
                let d = &desired.containers[name];
                s.containers.push(ObservedContainer {
                    name: name.clone(),
                    labels: d.labels.clone(),
                    state: ContainerState::Created,
                    config: Some(d.config.clone()),
                });
            }
            (Resource::Container { name, .. }, op) => {
                let i = s
                    .containers
                    .iter()
                    .position(|c| &c.name == name)
                    .expect("container exists");
                match op {
                    Op::StartContainer => s.containers[i].state = ContainerState::Running,
                    Op::StopContainer => s.containers[i].state = ContainerState::Exited,
                    Op::RemoveContainer => {
                        s.containers.remove(i);
                    }
                    other => panic!("unexpected {other} on a container"),
                }
            }
            (r, op) => panic!("unexpected {op} on {r}"),
        }
    }
    s
}

const QUICKSTART: &str = "
services:
  web:
    image: web:1
    ports: ['8080:80']
    networks: [front, back]
    depends_on: [api]
  api:
    image: api:1
    networks: [back]
    volumes: ['data:/data']
    depends_on:
      db: {condition: service_healthy}
  db:
    image: db:1
    networks: [back]
networks:
  front: {}
  back: {}
volumes:
  data: {}
";

#[test]
fn golden_first_up() {
    let d = desired(QUICKSTART);
    let plan = plan_up(&d, &ObservedState::default(), &UpOptions::default()).unwrap();
    let want = "\
[] -> #0 image api:1, PullImage, image is missing
[] -> #1 image db:1, PullImage, image is missing
[] -> #2 image web:1, PullImage, image is missing
[] -> #3 network demo_back, CreateNetwork, declared but missing
[] -> #4 network demo_front, CreateNetwork, declared but missing
[] -> #5 volume demo_data, CreateVolume, declared but missing
[1,3] -> #6 container demo-db-1, CreateContainer, missing
[6] -> #7 container demo-db-1, StartContainer, created
[0,3,5,6] -> #8 container demo-api-1, CreateContainer, missing
[7,8] -> #9 container demo-api-1, StartContainer, created
[2,3,4,8] -> #10 container demo-web-1, CreateContainer, missing
[9,10] -> #11 container demo-web-1, StartContainer, created
";
    assert_eq!(plan.to_string(), want);
}

#[test]
fn planning_the_result_of_a_plan_yields_nothing() {
    let d = desired(QUICKSTART);
    let empty = ObservedState::default();
    let plan = plan_up(&d, &empty, &UpOptions::default()).unwrap();
    let after = apply(&d, &empty, &plan);
    let again = plan_up(&d, &after, &UpOptions::default()).unwrap();
    assert!(again.is_empty(), "{again}");
    // And deterministically so.
    assert_eq!(plan, plan_up(&d, &empty, &UpOptions::default()).unwrap());
}

#[test]
fn a_changed_service_is_recreated_with_its_reason_and_others_are_left_alone() {
    let d1 = desired(QUICKSTART);
    let after = apply(
        &d1,
        &ObservedState::default(),
        &plan_up(&d1, &ObservedState::default(), &UpOptions::default()).unwrap(),
    );
    let changed = QUICKSTART.replace(
        "    image: api:1\n",
        "    image: api:1\n    environment: {FOO: bar}\n",
    );
    let d2 = desired(&changed);
    let plan = plan_up(&d2, &after, &UpOptions::default()).unwrap();
    let want = "\
[] -> #0 container demo-api-1, StopContainer, recreate: environment changed
[0] -> #1 container demo-api-1, RemoveContainer, recreate: environment changed
[1] -> #2 container demo-api-1, CreateContainer, environment changed
[2] -> #3 container demo-api-1, StartContainer, created
";
    assert_eq!(plan.to_string(), want);
    let after2 = apply(&d2, &after, &plan);
    assert!(
        plan_up(&d2, &after2, &UpOptions::default())
            .unwrap()
            .is_empty()
    );

    let forced = plan_up(
        &d2,
        &after2,
        &UpOptions {
            force_recreate: true,
            ..UpOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        forced
            .nodes
            .iter()
            .filter(|n| n.op == Op::CreateContainer)
            .count(),
        3
    );
    let kept = plan_up(
        &d1,
        &after2,
        &UpOptions {
            no_recreate: true,
            ..UpOptions::default()
        },
    )
    .unwrap();
    assert!(kept.is_empty(), "{kept}");
}

#[test]
fn scaling_adds_and_removes_replicas() {
    let yaml = "services:\n  w:\n    image: w\n    scale: 3\n";
    let d3 = desired(yaml);
    let s3 = apply(
        &d3,
        &ObservedState::default(),
        &plan_up(&d3, &ObservedState::default(), &UpOptions::default()).unwrap(),
    );
    assert_eq!(s3.containers.len(), 3);
    let d1 = desired(&yaml.replace("scale: 3", "scale: 1"));
    let plan = plan_up(&d1, &s3, &UpOptions::default()).unwrap();
    let want = "\
[] -> #0 container demo-w-2, StopContainer, scaled down to 1
[0] -> #1 container demo-w-2, RemoveContainer, scaled down to 1
[] -> #2 container demo-w-3, StopContainer, scaled down to 1
[2] -> #3 container demo-w-3, RemoveContainer, scaled down to 1
";
    assert_eq!(plan.to_string(), want);
}

#[test]
fn orphans_are_reported_and_removed_on_request() {
    let d = desired(QUICKSTART);
    let mut s = apply(
        &d,
        &ObservedState::default(),
        &plan_up(&d, &ObservedState::default(), &UpOptions::default()).unwrap(),
    );
    let mut l = BTreeMap::new();
    l.insert(labels::PROJECT.to_string(), "demo".to_string());
    l.insert(labels::SERVICE.to_string(), "old".to_string());
    l.insert(labels::NUMBER.to_string(), "1".to_string());
    s.containers.push(ObservedContainer {
        name: "demo-old-1".into(),
        labels: l,
        state: ContainerState::Running,
        config: None,
    });
    let plan = plan_up(&d, &s, &UpOptions::default()).unwrap();
    assert!(plan.is_empty());
    assert!(plan.warnings[0].contains("demo-old-1"), "{plan}");
    let plan = plan_up(
        &d,
        &s,
        &UpOptions {
            remove_orphans: true,
            ..UpOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        plan.to_string(),
        "[] -> #0 container demo-old-1, StopContainer, orphan: service old is no longer in the project\n\
         [0] -> #1 container demo-old-1, RemoveContainer, orphan: service old is no longer in the project\n"
    );
}

#[test]
fn services_up_did_not_name_are_neither_orphans_nor_touched() {
    let d = desired(QUICKSTART);
    let s = apply(
        &d,
        &ObservedState::default(),
        &plan_up(&d, &ObservedState::default(), &UpOptions::default()).unwrap(),
    );
    // `up` of nothing but the first service, the others running.
    let first = d.containers.values().next().unwrap().service.clone();
    let mut only = d.clone();
    only.containers.retain(|_, c| c.service == first);
    let untouched = d
        .containers
        .values()
        .map(|c| c.service.clone())
        .filter(|s| *s != first)
        .collect();
    let opts = UpOptions {
        remove_orphans: true,
        untouched,
        ..UpOptions::default()
    };
    let plan = plan_up(&only, &s, &opts).unwrap();
    assert!(plan.is_empty() && plan.warnings.is_empty(), "{plan}");
}

#[test]
fn stopped_containers_are_started_after_their_dependencies() {
    let d = desired(QUICKSTART);
    let mut s = apply(
        &d,
        &ObservedState::default(),
        &plan_up(&d, &ObservedState::default(), &UpOptions::default()).unwrap(),
    );
    for c in &mut s.containers {
        c.state = ContainerState::Exited;
    }
    let plan = plan_up(&d, &s, &UpOptions::default()).unwrap();
    let want = "\
[] -> #0 container demo-db-1, StartContainer, not running
[0] -> #1 container demo-api-1, StartContainer, not running
[1] -> #2 container demo-web-1, StartContainer, not running
";
    assert_eq!(plan.to_string(), want);
    assert!(
        plan_up(
            &d,
            &s,
            &UpOptions {
                no_start: true,
                ..UpOptions::default()
            }
        )
        .unwrap()
        .is_empty()
    );
}

#[test]
fn external_resources_must_exist() {
    let d = desired(
        "services:\n  a:\n    image: a\n    networks: [shared]\nnetworks:\n  shared:\n    external: true\n",
    );
    let err = plan_up(&d, &ObservedState::default(), &UpOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "network shared declared as external, but could not be found"
    );
}

#[test]
fn down_removes_dependents_first_then_networks_then_volumes() {
    let d = desired(QUICKSTART);
    let s = apply(
        &d,
        &ObservedState::default(),
        &plan_up(&d, &ObservedState::default(), &UpOptions::default()).unwrap(),
    );
    let plan = plan_down(
        &d,
        &s,
        &DownOptions {
            volumes: true,
            remove_orphans: false,
        },
    );
    let want = "\
[] -> #0 container demo-web-1, StopContainer, project down
[0] -> #1 container demo-web-1, RemoveContainer, project down
[0] -> #2 container demo-api-1, StopContainer, project down
[2] -> #3 container demo-api-1, RemoveContainer, project down
[2] -> #4 container demo-db-1, StopContainer, project down
[4] -> #5 container demo-db-1, RemoveContainer, project down
[1,3,5] -> #6 network demo_back, RemoveNetwork, project down
[1,3,5] -> #7 network demo_front, RemoveNetwork, project down
[1,3,5] -> #8 volume demo_data, RemoveVolume, down -v
";
    assert_eq!(plan.to_string(), want);
    let after = apply(&d, &s, &plan);
    assert!(after.containers.is_empty() && after.networks.is_empty() && after.volumes.is_empty());
    let again = plan_down(&d, &after, &DownOptions::default());
    assert!(again.is_empty(), "{again}");
}

#[test]
fn a_network_left_without_its_bridge_is_created_again_and_nothing_else_changes() {
    let d = desired(QUICKSTART);
    let empty = ObservedState::default();
    let mut after = apply(
        &d,
        &empty,
        &plan_up(&d, &empty, &UpOptions::default()).unwrap(),
    );
    after.networks.get_mut("demo_back").unwrap().incomplete = true;
    let plan = plan_up(&d, &after, &UpOptions::default()).unwrap();
    assert_eq!(
        plan.to_string(),
        "[] -> #0 network demo_back, CreateNetwork, its bridge is missing\n"
    );
}

#[test]
fn a_container_in_a_recreated_services_namespace_is_recreated_with_it() {
    let yaml = "
services:
  app:
    image: app:1
  sidecar:
    image: side:1
    network_mode: service:app
  watcher:
    image: side:1
    depends_on: [app]
";
    let d1 = desired(yaml);
    let empty = ObservedState::default();
    let after = apply(
        &d1,
        &empty,
        &plan_up(&d1, &empty, &UpOptions::default()).unwrap(),
    );
    let d2 = desired(&yaml.replace("image: app:1", "image: app:2"));
    let plan = plan_up(&d2, &after, &UpOptions::default()).unwrap();
    let text = plan.to_string();
    assert!(
        text.contains("container demo-sidecar-1, CreateContainer, app was recreated"),
        "{text}"
    );
    assert!(
        !text.contains("demo-watcher-1"),
        "a plain dependency stays unless --always-recreate-deps: {text}"
    );
    let all = plan_up(
        &d2,
        &after,
        &UpOptions {
            always_recreate_deps: true,
            ..UpOptions::default()
        },
    )
    .unwrap();
    assert!(
        all.to_string()
            .contains("container demo-watcher-1, CreateContainer, a dependency was recreated"),
        "{all}"
    );
}
