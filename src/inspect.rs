//! `container inspect` in Docker's shape (`Id`, `State`, `Config`,
//! `NetworkSettings` …), so that scripts written for `docker inspect` and
//! its `--format '{{.State.Status}}'` work; berth's own record follows
//! under `Berth`.

use std::path::Path;

use berth_engine::runtime::mounts::MountRequest;
use berth_engine::runtime::run::ContainerRecord;
use berth_engine::runtime::{health, shim};
use serde_json::{Value, json};

/// Docker's time for "never".
const NEVER: &str = "0001-01-01T00:00:00Z";

/// The container in `dir` as `docker inspect` shows one.
pub fn container(root: &Path, dir: &Path, r: &ContainerRecord) -> Value {
    let status = shim::live_status(r);
    let running = status == "running" || status == "paused";
    let mut state = json!({
        "Status": status,
        "Running": running,
        "Paused": status == "paused",
        "Restarting": false,
        "OOMKilled": r.oom_killed,
        "Dead": false,
        "Pid": if running { r.pid.unwrap_or(0) } else { 0 },
        "ExitCode": r.exit_code.unwrap_or(0),
        "Error": "",
        "StartedAt": r.started.clone().unwrap_or_else(|| NEVER.into()),
        "FinishedAt": r.finished.clone().unwrap_or_else(|| NEVER.into()),
    });
    if let Some(h) = health::load(dir) {
        state["Health"] = json!({
            "Status": h.status,
            "FailingStreak": h.failing_streak,
            "Log": serde_json::to_value(&h.log).unwrap_or_default(),
        });
    }
    let nets = berth_netplane::Networks::open(root).ok();
    let networks: serde_json::Map<String, Value> = r
        .networks
        .iter()
        .map(|n| {
            let rec = nets.as_ref().and_then(|s| s.inspect(n).ok());
            let opts = r.network_opts.get(n).cloned().unwrap_or_default();
            let ip = rec.as_ref().and_then(|x| x.leases.get(&r.id)).map(ToString::to_string);
            let ip6 = rec.as_ref().and_then(|x| x.leases6.get(&r.id)).map(ToString::to_string);
            let prefix = rec
                .as_ref()
                .and_then(|x| x.subnet.split_once('/'))
                .and_then(|(_, p)| p.parse::<u8>().ok());
            (
                n.clone(),
                json!({
                    "Aliases": opts.aliases,
                    "NetworkID": rec.as_ref().map(|x| x.id.clone()).unwrap_or_default(),
                    "IPAddress": ip.unwrap_or_default(),
                    "IPPrefixLen": prefix.unwrap_or(0),
                    "Gateway": rec.as_ref().map(|x| x.gateway.clone()).unwrap_or_default(),
                    "GlobalIPv6Address": ip6.unwrap_or_default(),
                    "IPv6Gateway": rec.as_ref().and_then(|x| x.gateway6.clone()).unwrap_or_default(),
                    "MacAddress": opts.mac_address.unwrap_or_default(),
                    "DNSNames": r.dns_names,
                }),
            )
        })
        .collect();
    let default_bridge = |key: &str| {
        networks
            .get(berth_netplane::store::DEFAULT_BRIDGE)
            .and_then(|n| n.get(key))
            .cloned()
            .unwrap_or_else(|| json!(""))
    };
    let mut ports = serde_json::Map::new();
    for p in &r.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        let binding = json!({
            "HostIp": if p.host_ip.is_empty() { "0.0.0.0" } else { p.host_ip.as_str() },
            "HostPort": p.host_port.map(|h| h.to_string()).unwrap_or_default(),
        });
        match ports.get_mut(&key) {
            Some(Value::Array(a)) => a.push(binding),
            _ => {
                ports.insert(key, json!([binding]));
            }
        }
    }
    let volumes = berth_engine::volume::VolumeStore::open(root).ok();
    let mounts: Vec<Value> = r
        .mounts
        .iter()
        .map(|m| match m {
            MountRequest::Bind {
                source,
                target,
                read_only,
            } => json!({"Type": "bind", "Source": source, "Destination": target, "RW": !read_only}),
            MountRequest::Volume {
                name,
                target,
                read_only,
                subpath,
                ..
            } => json!({
                "Type": "volume",
                "Name": name,
                "Source": name.as_ref().zip(volumes.as_ref()).map(|(n, v)| {
                    v.data_path(n).join(subpath.as_deref().unwrap_or_default())
                }),
                "Destination": target,
                "Driver": "local",
                "RW": !read_only,
            }),
            MountRequest::Tmpfs { target, .. } => {
                json!({"Type": "tmpfs", "Destination": target, "RW": true})
            }
        })
        .collect();
    let config = r.config.clone().unwrap_or(Value::Null);
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.command.first().cloned().unwrap_or_default(),
        "Args": r.command.iter().skip(1).collect::<Vec<_>>(),
        "State": state,
        "Image": r.image_id,
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        "LogPath": berth_engine::runtime::logs::log_path(dir),
        "HostConfig": {
            "NetworkMode": if r.network_mode.is_empty() { "bridge" } else { r.network_mode.as_str() },
            "RestartPolicy": {"Name": r.restart},
            "AutoRemove": r.auto_remove,
            // Docker's empty string is the host's namespace.
            "UsernsMode": if r.userns.is_some() { "private" } else { "" },
            "LogConfig": {"Type": if r.log.driver.is_empty() { "json-file" } else { r.log.driver.as_str() }},
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": std::fs::read_to_string(dir.join("hostname")).map(|h| h.trim().to_string()).unwrap_or_default(),
            "Tty": r.tty,
            "Cmd": r.command,
            "Image": r.image,
            "Labels": r.labels,
            "Env": config.pointer("/Env").cloned().unwrap_or(Value::Null),
            "WorkingDir": config.pointer("/WorkingDir").cloned().unwrap_or(Value::Null),
        },
        "NetworkSettings": {
            // Docker fills these (deprecated) fields from the default
            // bridge only, and scripts still read them.
            "IPAddress": default_bridge("IPAddress"),
            "Gateway": default_bridge("Gateway"),
            "MacAddress": default_bridge("MacAddress"),
            "Networks": networks,
            "Ports": ports,
        },
        "Berth": serde_json::to_value(r).unwrap_or_default(),
    })
}

/// `--format`: Go template placeholders as scripts use them with `docker
/// inspect`: `{{.State.Status}}`, `{{json .Config.Labels}}`, text around
/// them kept. A field that is not there prints `<no value>`, as Go's does.
/// Prints inspected objects as `docker inspect` does: a JSON array, or
/// each through `template` on a line of its own.
pub fn print(
    out: &mut dyn std::io::Write,
    all: &[Value],
    template: Option<&str>,
) -> anyhow::Result<()> {
    match template {
        Some(t) => {
            for v in all {
                let line = format(t, v).map_err(anyhow::Error::msg)?;
                writeln!(out, "{line}")?;
            }
        }
        None => writeln!(out, "{}", serde_json::to_string_pretty(all)?)?,
    }
    Ok(())
}

pub fn format(template: &str, v: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("template {template:?}: an unclosed {{{{"))?;
        let action = rest[start + 2..start + end].trim();
        let (as_json, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        if !path.starts_with('.') {
            return Err(format!(
                "template {template:?}: only fields (.A.B) and `json .A` are understood, not {action:?}"
            ));
        }
        let field = path
            .split('.')
            .filter(|k| !k.is_empty())
            .try_fold(v, |v, k| v.get(k));
        match (field, as_json) {
            (Some(f), true) => out.push_str(&f.to_string()),
            (Some(Value::String(s)), false) => out.push_str(s),
            (Some(f), false) => out.push_str(&f.to_string()),
            (None, _) => out.push_str("<no value>"),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_read_fields_as_docker_inspect_does() {
        let v =
            json!({"State": {"Status": "running", "Pid": 42}, "Config": {"Labels": {"a": "b"}}});
        assert_eq!(
            format("{{.State.Status}} pid={{ .State.Pid }}", &v).unwrap(),
            "running pid=42"
        );
        assert_eq!(
            format("{{json .Config.Labels}}", &v).unwrap(),
            r#"{"a":"b"}"#
        );
        assert_eq!(format("{{.Nope}}", &v).unwrap(), "<no value>");
        assert!(format("{{range .X}}", &v).is_err());
    }
}
