//! Loading benchmark: a 200-service project with interpolation and an
//! override file, loaded and normalised by berth; when `docker compose` is
//! installed, its `config` on the same files is timed in the same run and the
//! ratio printed. Run with `cargo bench -p berth-spec`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SERVICES: usize = 200;

fn write_project(dir: &Path) {
    let mut base = String::from(
        "name: bench\nx-common: &common\n  restart: unless-stopped\n  labels:\n    tier: backend\nservices:\n",
    );
    let mut over = String::from("services:\n");
    for i in 0..SERVICES {
        base.push_str(&format!(
            "  svc{i}:\n    <<: *common\n    image: ${{REGISTRY:-docker.io}}/app{i}:${{TAG}}\n    command: [\"serve\", \"--port\", \"{port}\"]\n    environment:\n      - SERVICE=svc{i}\n      - DEBUG=${{DEBUG:-0}}\n    ports:\n      - \"{port}:{port}\"\n    volumes:\n      - data{i}:/data\n      - ./conf/svc{i}:/etc/app:ro\n    networks: [front, back]\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 30s\n    deploy:\n      resources:\n        limits:\n          memory: 256m\n",
            port = 10000 + i
        ));
        over.push_str(&format!(
            "  svc{i}:\n    environment:\n      EXTRA: \"${{TAG}}-{i}\"\n    labels:\n      override: \"yes\"\n"
        ));
    }
    base.push_str("networks:\n  front: {}\n  back: {}\nvolumes:\n");
    for i in 0..SERVICES {
        base.push_str(&format!("  data{i}: {{}}\n"));
    }
    std::fs::write(dir.join("compose.yaml"), base).unwrap();
    std::fs::write(dir.join("compose.override.yaml"), over).unwrap();
    std::fs::write(dir.join(".env"), "TAG=1.0\n").unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn docker_compose_available() -> bool {
    Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("berth-bench-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_project(&dir);
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let opts = berth_spec::Options::new(dir.clone(), env);

    let mut times = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let loaded = berth_spec::load(&opts).expect("bench project loads");
        std::hint::black_box(&loaded);
        times.push(t.elapsed());
    }
    let fastest = *times.iter().min().expect("samples");
    let berth = median(times);
    let text = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let name: std::sync::Arc<str> = "compose.yaml".into();
    let mut parse_times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        std::hint::black_box(berth_spec::yaml::parse(&name, &text).unwrap());
        parse_times.push(t.elapsed());
    }
    println!(
        "  of which parsing the base file to a tree: {:?}",
        median(parse_times)
    );
    let mut ev_times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let n = saphyr_parser::Parser::new_from_str(&text).count();
        std::hint::black_box(n);
        ev_times.push(t.elapsed());
    }
    println!(
        "  of which the YAML parser's events alone: {:?}",
        median(ev_times)
    );
    println!(
        "load+normalise {SERVICES} services with override: berth median {berth:?} (fastest {fastest:?})"
    );

    if docker_compose_available() {
        let mut times = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            let out = Command::new("docker")
                .args(["compose", "config", "--format", "json"])
                .current_dir(&dir)
                .output()
                .expect("run docker compose");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            times.push(t.elapsed());
        }
        let docker = median(times);
        println!(
            "docker compose config median {docker:?}; berth is {:.1}x faster",
            docker.as_secs_f64() / berth.as_secs_f64()
        );
    } else {
        println!("docker compose not installed: no reference measured in this run");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
