//! The merged YAML tree → the typed [`model`](crate::model), checking every
//! key and type on the way.
//!
//! Each mapping is read through [`Fields`], which remembers the keys it was
//! asked for, so that any other key (except `x-*` extensions) is reported as
//! unknown at the line where it is written. Short syntaxes are expanded here.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::model::*;
use crate::short;
use crate::units::{Duration, FileMode, UnitBytes};
use crate::yaml::{Map, Mark, Node, Value};

/// A field path such as `services.web.ports[1]`, built without allocating
/// and spelled out only when an error needs it.
#[derive(Clone, Copy, Debug)]
pub enum P<'a> {
    /// A path already spelled out (possibly empty).
    Root(&'a str),
    /// A key below a spelled-out path.
    RootKey(&'a str, &'a str),
    /// A key below a path.
    Key(&'a P<'a>, &'a str),
    /// An index below a path.
    Index(&'a P<'a>, usize),
}

impl fmt::Display for P<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            P::Root(s) => f.write_str(s),
            P::RootKey("", k) => f.write_str(k),
            P::RootKey(s, k) => write!(f, "{s}.{k}"),
            P::Key(p, k) => {
                let parent = p.to_string();
                if parent.is_empty() {
                    f.write_str(k)
                } else {
                    write!(f, "{parent}.{k}")
                }
            }
            P::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// A mapping being read field by field.
pub struct Fields<'a, 'p> {
    map: &'a Map,
    mark: &'a Mark,
    path: &'p P<'p>,
    /// Keys asked for; a short list beats a hash set at these sizes.
    seen: RefCell<Vec<&'static str>>,
}

fn err(node: &Node, path: &P<'_>, msg: impl Into<String>) -> Error {
    Error::invalid(&node.mark, path.to_string(), msg)
}

impl<'a, 'p> Fields<'a, 'p> {
    /// Starts reading `node`, which must be a mapping (null reads as empty).
    pub fn new(node: &'a Node, path: &'p P<'p>) -> Result<Fields<'a, 'p>> {
        static EMPTY: std::sync::OnceLock<Map> = std::sync::OnceLock::new();
        let map = match &node.value {
            Value::Map(m) => m,
            Value::Null => EMPTY.get_or_init(Map::default),
            _ => return Err(err(node, path, "must be a mapping")),
        };
        Ok(Fields {
            map,
            mark: &node.mark,
            path,
            seen: RefCell::new(Vec::with_capacity(16)),
        })
    }

    /// The value of `key`, unless absent or null.
    pub fn get(&self, key: &'static str) -> Option<&'a Node> {
        self.seen.borrow_mut().push(key);
        self.map.get(key).filter(|n| !n.is_null())
    }

    /// The value of `key` even when null.
    pub fn get_raw(&self, key: &'static str) -> Option<&'a Node> {
        self.seen.borrow_mut().push(key);
        self.map.get(key)
    }

    /// The path of `key` below this mapping.
    pub fn path<'k>(&'k self, key: &'k str) -> P<'k> {
        P::Key(self.path, key)
    }

    /// Reports the first key nobody asked for.
    pub fn finish(self) -> Result<()> {
        for key in self.map.keys() {
            if !self.seen.borrow().contains(&key.name.as_str()) && !key.name.starts_with("x-") {
                return Err(Error::invalid(
                    &key.mark,
                    self.path.to_string(),
                    format!("additional property {:?} is not allowed", key.name),
                ));
            }
        }
        let _ = self.mark;
        Ok(())
    }

    /// A string field ("" when absent).
    pub fn string(&self, key: &'static str) -> Result<String> {
        let p = self.path(key);
        self.get(key).map_or(Ok(String::new()), |n| string(n, &p))
    }

    /// A field that may be a string or a number, as text.
    pub fn text(&self, key: &'static str) -> Result<String> {
        let p = self.path(key);
        self.get(key).map_or(Ok(String::new()), |n| text(n, &p))
    }

    /// A boolean field (false when absent).
    pub fn bool(&self, key: &'static str) -> Result<bool> {
        Ok(self.opt_bool(key)?.unwrap_or(false))
    }

    /// An optional boolean field.
    pub fn opt_bool(&self, key: &'static str) -> Result<Option<bool>> {
        let p = self.path(key);
        self.get(key).map(|n| boolean(n, &p)).transpose()
    }

    /// An integer field (0 when absent).
    pub fn int(&self, key: &'static str) -> Result<i64> {
        Ok(self.opt_int(key)?.unwrap_or(0))
    }

    /// An optional integer field.
    pub fn opt_int(&self, key: &'static str) -> Result<Option<i64>> {
        let p = self.path(key);
        self.get(key).map(|n| integer(n, &p)).transpose()
    }

    /// An optional non-negative integer field.
    pub fn opt_uint(&self, key: &'static str) -> Result<Option<u64>> {
        let p = self.path(key);
        self.get(key)
            .map(|n| {
                let v = integer(n, &p)?;
                u64::try_from(v).map_err(|_| err(n, &p, "must be a non-negative integer"))
            })
            .transpose()
    }

    /// A float field (0 when absent).
    pub fn float(&self, key: &'static str) -> Result<f32> {
        let p = self.path(key);
        self.get(key).map_or(Ok(0.0), |n| float(n, &p))
    }

    /// An optional duration field.
    pub fn duration(&self, key: &'static str) -> Result<Option<Duration>> {
        let p = self.path(key);
        self.get(key)
            .map(|n| {
                let t = text(n, &p)?;
                Duration::parse(&t).ok_or_else(|| err(n, &p, format!("invalid duration {t:?}")))
            })
            .transpose()
    }

    /// A byte size field (0 when absent).
    pub fn bytes(&self, key: &'static str) -> Result<UnitBytes> {
        let p = self.path(key);
        self.get(key).map_or(Ok(UnitBytes(0)), |n| bytes(n, &p))
    }

    /// A list of strings ([] when absent).
    pub fn list(&self, key: &'static str) -> Result<Vec<String>> {
        let p = self.path(key);
        self.get(key).map_or(Ok(Vec::new()), |n| string_list(n, &p))
    }

    /// A string or a list of strings.
    pub fn string_or_list(&self, key: &'static str) -> Result<Vec<String>> {
        let p = self.path(key);
        self.get(key)
            .map_or(Ok(Vec::new()), |n| string_or_list(n, &p))
    }

    /// A `KEY=VALUE` list or mapping with string values.
    pub fn mapping(&self, key: &'static str) -> Result<Mapping> {
        let p = self.path(key);
        self.get(key)
            .map_or(Ok(Mapping::new()), |n| mapping(n, &p, "="))
    }

    /// A `KEY=VALUE` list or mapping whose values may be absent.
    pub fn mapping_with_equals(&self, key: &'static str) -> Result<MappingWithEquals> {
        let p = self.path(key);
        self.get(key)
            .map_or(Ok(MappingWithEquals::new()), |n| mapping_with_equals(n, &p))
    }

    /// A sub-mapping converted by `f`.
    pub fn object<T>(
        &self,
        key: &'static str,
        f: impl FnOnce(&'a Node, &P<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let p = self.path(key);
        self.get(key).map(|n| f(n, &p)).transpose()
    }

    /// A list whose items are converted by `f`.
    pub fn items<T>(
        &self,
        key: &'static str,
        mut f: impl FnMut(&'a Node, &P<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let p = self.path(key);
        let Some(n) = self.get(key) else {
            return Ok(Vec::new());
        };
        let Value::Seq(items) = &n.value else {
            return Err(err(n, &p, "must be a list"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| f(item, &P::Index(&p, i)))
            .collect()
    }
}

/// A plain string.
pub fn string(n: &Node, path: &P<'_>) -> Result<String> {
    match &n.value {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(err(n, path, format!("must be a string, not {}", n.kind()))),
    }
}

/// A string, number or boolean, as text.
pub fn text(n: &Node, path: &P<'_>) -> Result<String> {
    match &n.value {
        Value::Seq(_) | Value::Map(_) => Err(err(
            n,
            path,
            format!("must be a string or number, not {}", n.kind()),
        )),
        _ => Ok(n.scalar_text().unwrap_or_default()),
    }
}

/// A boolean, also from the strings interpolation leaves behind.
pub fn boolean(n: &Node, path: &P<'_>) -> Result<bool> {
    match &n.value {
        Value::Bool(b) => Ok(*b),
        Value::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" => Ok(true),
            "false" | "no" | "n" | "off" => Ok(false),
            _ => Err(err(n, path, format!("invalid boolean {s:?}"))),
        },
        _ => Err(err(n, path, format!("must be a boolean, not {}", n.kind()))),
    }
}

/// An integer, also from a string of digits.
pub fn integer(n: &Node, path: &P<'_>) -> Result<i64> {
    match &n.value {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        Value::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| err(n, path, format!("invalid integer {s:?}"))),
        _ => Err(err(
            n,
            path,
            format!("must be an integer, not {}", n.kind()),
        )),
    }
}

/// A number, also from a string.
pub fn float(n: &Node, path: &P<'_>) -> Result<f32> {
    match &n.value {
        Value::Int(i) => Ok(*i as f32),
        Value::Float(f) => Ok(*f as f32),
        Value::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| err(n, path, format!("invalid number {s:?}"))),
        _ => Err(err(n, path, format!("must be a number, not {}", n.kind()))),
    }
}

/// A byte size: a number of bytes or a string like `200m`.
pub fn bytes(n: &Node, path: &P<'_>) -> Result<UnitBytes> {
    match &n.value {
        Value::Int(i) => Ok(UnitBytes(*i)),
        Value::Str(s) => {
            UnitBytes::parse(s).ok_or_else(|| err(n, path, format!("invalid size {s:?}")))
        }
        _ => Err(err(n, path, format!("must be a size, not {}", n.kind()))),
    }
}

/// A list of strings (numbers accepted as text).
pub fn string_list(n: &Node, path: &P<'_>) -> Result<Vec<String>> {
    match &n.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| text(item, &P::Index(path, i)))
            .collect(),
        _ => Err(err(n, path, format!("must be a list, not {}", n.kind()))),
    }
}

/// A single string or a list of strings.
pub fn string_or_list(n: &Node, path: &P<'_>) -> Result<Vec<String>> {
    match &n.value {
        Value::Str(s) => Ok(vec![s.clone()]),
        _ => string_list(n, path),
    }
}

/// A list of `KEY<sep>VALUE` strings or a mapping, values as text.
pub fn mapping(n: &Node, path: &P<'_>, sep: &str) -> Result<Mapping> {
    let mut out = Mapping::new();
    match &n.value {
        Value::Map(m) => {
            for (k, v) in m.iter() {
                let p = P::Key(path, &k.name);
                out.insert(k.name.clone(), text(v, &p)?);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let s = text(item, &P::Index(path, i))?;
                let (k, v) = s.split_once(sep).unwrap_or((&s, ""));
                out.insert(k.to_string(), v.to_string());
            }
        }
        _ => {
            return Err(err(
                n,
                path,
                format!("must be a mapping or a list, not {}", n.kind()),
            ));
        }
    }
    Ok(out)
}

/// Like [`mapping`], but `KEY` alone or `KEY: null` stays unset.
pub fn mapping_with_equals(n: &Node, path: &P<'_>) -> Result<MappingWithEquals> {
    let mut out = MappingWithEquals::new();
    match &n.value {
        Value::Map(m) => {
            for (k, v) in m.iter() {
                let p = P::Key(path, &k.name);
                let value = if v.is_null() {
                    None
                } else {
                    Some(text(v, &p)?)
                };
                out.insert(k.name.clone(), value);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let s = text(item, &P::Index(path, i))?;
                match s.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(s, None),
                };
            }
        }
        _ => {
            return Err(err(
                n,
                path,
                format!("must be a mapping or a list, not {}", n.kind()),
            ));
        }
    }
    Ok(out)
}

/// `command` / `entrypoint`: a shell line or a list.
pub fn shell_command(n: &Node, path: &P<'_>) -> Result<Option<Vec<String>>> {
    match &n.value {
        Value::Null => Ok(None),
        Value::Str(s) => short::shell_words(s).map(Some).map_err(|e| err(n, path, e)),
        _ => string_list(n, path).map(Some),
    }
}

/// Converts any YAML value to JSON, for extension fields.
pub fn to_json(n: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &n.value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) => J::String(s.clone()),
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => {
            // Go prints maps with sorted keys.
            let mut entries: Vec<(String, J)> = m
                .iter()
                .map(|(k, v)| (k.name.clone(), to_json(v)))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            J::Object(entries.into_iter().collect())
        }
    }
}

/// Top-level extension fields.
pub fn extensions(n: &Node) -> BTreeMap<String, serde_json::Value> {
    n.as_map()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.name.starts_with("x-"))
                .map(|(k, v)| (k.name.clone(), to_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// One service.
pub fn service(name: &str, n: &Node, path: &P<'_>) -> Result<Service> {
    let f = Fields::new(n, path)?;
    let s = Service {
        name: name.to_string(),
        extensions: extensions(n),
        profiles: f.list("profiles")?,
        annotations: f.mapping("annotations")?,
        attach: f.opt_bool("attach")?,
        build: f.object("build", build)?,
        develop: f.object("develop", develop)?,
        blkio_config: f.object("blkio_config", blkio)?,
        cap_add: f.list("cap_add")?,
        cap_drop: f.list("cap_drop")?,
        cgroup_parent: f.string("cgroup_parent")?,
        cgroup: f.string("cgroup")?,
        cpu_count: f.int("cpu_count")?,
        cpu_percent: f.float("cpu_percent")?,
        cpu_period: f.int("cpu_period")?,
        cpu_quota: f.int("cpu_quota")?,
        cpu_rt_period: duration_or_int(&f, "cpu_rt_period")?,
        cpu_rt_runtime: duration_or_int(&f, "cpu_rt_runtime")?,
        cpus: f.float("cpus")?,
        cpuset: f.string("cpuset")?,
        cpu_shares: f.int("cpu_shares")?,
        command: f.object("command", shell_command)?.flatten(),
        configs: f.items("configs", file_reference)?,
        container_name: container_name(&f)?,
        credential_spec: f.object("credential_spec", credential_spec)?,
        depends_on: f.object("depends_on", depends_on)?.unwrap_or_default(),
        deploy: f.object("deploy", deploy)?,
        device_cgroup_rules: f.list("device_cgroup_rules")?,
        devices: f.items("devices", device_mapping)?,
        dns: f.string_or_list("dns")?,
        dns_opt: f.list("dns_opt")?,
        dns_search: f.string_or_list("dns_search")?,
        dockerfile: f.string("dockerfile")?,
        domainname: f.string("domainname")?,
        entrypoint: f.object("entrypoint", shell_command)?.flatten(),
        provider: f.object("provider", provider)?,
        environment: f.mapping_with_equals("environment")?,
        env_file: f.object("env_file", env_files)?.unwrap_or_default(),
        expose: f.list("expose")?,
        extends: f.object("extends", extends)?,
        external_links: f.list("external_links")?,
        extra_hosts: f.object("extra_hosts", extra_hosts)?.unwrap_or_default(),
        group_add: f.list("group_add")?,
        gpus: f.object("gpus", gpus)?.unwrap_or_default(),
        hostname: f.string("hostname")?,
        healthcheck: f.object("healthcheck", healthcheck)?,
        image: f.string("image")?,
        init: f.opt_bool("init")?,
        ipc: f.string("ipc")?,
        isolation: f.string("isolation")?,
        labels: f.mapping("labels")?,
        label_file: f.string_or_list("label_file")?,
        links: f.list("links")?,
        logging: f.object("logging", logging)?,
        log_driver: f.string("log_driver")?,
        log_opt: f.mapping("log_opt")?,
        mem_limit: f.bytes("mem_limit")?,
        mem_reservation: f.bytes("mem_reservation")?,
        memswap_limit: memswap(&f)?,
        mem_swappiness: f.bytes("mem_swappiness")?,
        mac_address: f.string("mac_address")?,
        models: f.object("models", service_models)?.unwrap_or_default(),
        net: f.string("net")?,
        network_mode: f.string("network_mode")?,
        networks: f.object("networks", service_networks)?.unwrap_or_default(),
        oom_kill_disable: f.bool("oom_kill_disable")?,
        oom_score_adj: f.int("oom_score_adj")?,
        pid: f.string("pid")?,
        pids_limit: f.int("pids_limit")?,
        platform: f.string("platform")?,
        ports: f.items("ports", ports)?.into_iter().flatten().collect(),
        privileged: f.bool("privileged")?,
        pull_policy: f.string("pull_policy")?,
        pull_refresh_after: f.string("pull_refresh_after")?,
        read_only: f.bool("read_only")?,
        restart: f.string("restart")?,
        runtime: f.string("runtime")?,
        scale: f.opt_int("scale")?,
        secrets: f
            .items("secrets", file_reference)?
            .into_iter()
            .map(|mut s| {
                if s.target.is_empty() {
                    s.target = format!("/run/secrets/{}", s.source);
                }
                s
            })
            .collect(),
        security_opt: f.list("security_opt")?,
        shm_size: f.bytes("shm_size")?,
        stdin_open: f.bool("stdin_open")?,
        stop_grace_period: f.duration("stop_grace_period")?,
        stop_signal: f.string("stop_signal")?,
        storage_opt: f.mapping("storage_opt")?,
        sysctls: f.mapping("sysctls")?,
        tmpfs: f.string_or_list("tmpfs")?,
        tty: f.bool("tty")?,
        ulimits: f.object("ulimits", ulimits)?.unwrap_or_default(),
        use_api_socket: f.bool("use_api_socket")?,
        user: f.string("user")?,
        userns_mode: f.string("userns_mode")?,
        uts: f.string("uts")?,
        volume_driver: f.string("volume_driver")?,
        volumes: f.items("volumes", service_volume)?,
        volumes_from: f.list("volumes_from")?,
        working_dir: f.string("working_dir")?,
        post_start: f.items("post_start", hook)?,
        pre_stop: f.items("pre_stop", hook)?,
    };
    f.finish()?;
    Ok(s)
}

/// `container_name`, as Docker allows it: it becomes a path and a
/// hostname.
fn container_name(f: &Fields<'_, '_>) -> Result<String> {
    let name = f.string("container_name")?;
    let b = name.as_bytes();
    let ok = b.is_empty()
        || (b.len() >= 2
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')));
    match f.get("container_name") {
        Some(n) if !ok => Err(err(
            n,
            &f.path("container_name"),
            format!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        )),
        _ => Ok(name),
    }
}

fn duration_or_int(f: &Fields<'_, '_>, key: &'static str) -> Result<i64> {
    let p = f.path(key);
    match f.get(key) {
        None => Ok(0),
        Some(
            n @ Node {
                value: Value::Str(s),
                ..
            },
        ) => Duration::parse(s)
            .map(|d| d.0 / 1000)
            .ok_or_else(|| err(n, &p, format!("invalid duration {s:?}"))),
        Some(n) => integer(n, &p),
    }
}

fn memswap(f: &Fields<'_, '_>) -> Result<UnitBytes> {
    let p = f.path("memswap_limit");
    match f.get("memswap_limit") {
        Some(n) if matches!(n.value, Value::Int(-1)) => Ok(UnitBytes(-1)),
        Some(n) => bytes(n, &p),
        None => Ok(UnitBytes(0)),
    }
}

fn build(n: &Node, path: &P<'_>) -> Result<Build> {
    if let Value::Str(s) = &n.value {
        return Ok(Build {
            context: s.clone(),
            ..Build::default()
        });
    }
    let f = Fields::new(n, path)?;
    let b = Build {
        context: f.string("context")?,
        dockerfile: f.string("dockerfile")?,
        dockerfile_inline: f.string("dockerfile_inline")?,
        entitlements: f.list("entitlements")?,
        args: f.mapping_with_equals("args")?,
        provenance: f.text("provenance")?,
        sbom: f.text("sbom")?,
        ssh: f.object("ssh", ssh)?.unwrap_or_default(),
        labels: f.mapping("labels")?,
        cache_from: f.list("cache_from")?,
        cache_to: f.list("cache_to")?,
        no_cache: f.bool("no_cache")?,
        no_cache_filter: f.string_or_list("no_cache_filter")?,
        additional_contexts: f.mapping("additional_contexts")?,
        pull: f.bool("pull")?,
        extra_hosts: f.object("extra_hosts", extra_hosts)?.unwrap_or_default(),
        isolation: f.string("isolation")?,
        network: f.string("network")?,
        target: f.string("target")?,
        secrets: f.items("secrets", file_reference)?,
        shm_size: f.bytes("shm_size")?,
        tags: f.list("tags")?,
        ulimits: f.object("ulimits", ulimits)?.unwrap_or_default(),
        platforms: f.list("platforms")?,
        privileged: f.bool("privileged")?,
    };
    f.finish()?;
    Ok(b)
}

fn ssh(n: &Node, path: &P<'_>) -> Result<Vec<String>> {
    match &n.value {
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| {
                let value = text(v, &P::Key(path, &k.name))?;
                Ok(if value.is_empty() {
                    k.name.clone()
                } else {
                    format!("{}={value}", k.name)
                })
            })
            .collect(),
        _ => string_or_list(n, path),
    }
}

fn develop(n: &Node, path: &P<'_>) -> Result<Develop> {
    let f = Fields::new(n, path)?;
    let d = Develop {
        watch: f.items("watch", |n: &Node, p: &P<'_>| {
            let f = Fields::new(n, p)?;
            let t = WatchTrigger {
                path: f.string("path")?,
                action: f.string("action")?,
                target: f.string("target")?,
                exec: f.object("exec", hook)?.unwrap_or_default(),
                ignore: f.string_or_list("ignore")?,
                include: f.string_or_list("include")?,
                initial_sync: f.bool("initial_sync")?,
            };
            if t.path.is_empty() {
                return Err(err(n, p, "path is required"));
            }
            if !matches!(
                t.action.as_str(),
                "sync" | "rebuild" | "restart" | "sync+restart" | "sync+exec"
            ) {
                return Err(err(n, p, format!("invalid watch action {:?}", t.action)));
            }
            f.finish()?;
            Ok(t)
        })?,
    };
    f.finish()?;
    Ok(d)
}

fn hook(n: &Node, path: &P<'_>) -> Result<Hook> {
    let f = Fields::new(n, path)?;
    let h = Hook {
        command: f.object("command", shell_command)?.flatten(),
        user: f.string("user")?,
        privileged: f.bool("privileged")?,
        working_dir: f.string("working_dir")?,
        environment: f.mapping_with_equals("environment")?,
    };
    f.finish()?;
    Ok(h)
}

fn blkio(n: &Node, path: &P<'_>) -> Result<BlkioConfig> {
    let f = Fields::new(n, path)?;
    let throttle = |n: &Node, p: &P<'_>| -> Result<ThrottleDevice> {
        let f = Fields::new(n, p)?;
        let t = ThrottleDevice {
            path: f.string("path")?,
            rate: f.bytes("rate")?,
        };
        f.finish()?;
        Ok(t)
    };
    let b = BlkioConfig {
        weight: f.opt_uint("weight")?.unwrap_or(0),
        weight_device: f.items("weight_device", |n: &Node, p: &P<'_>| {
            let f = Fields::new(n, p)?;
            let w = WeightDevice {
                path: f.string("path")?,
                weight: f.opt_uint("weight")?.unwrap_or(0),
            };
            f.finish()?;
            Ok(w)
        })?,
        device_read_bps: f.items("device_read_bps", throttle)?,
        device_read_iops: f.items("device_read_iops", throttle)?,
        device_write_bps: f.items("device_write_bps", throttle)?,
        device_write_iops: f.items("device_write_iops", throttle)?,
    };
    f.finish()?;
    Ok(b)
}

fn file_reference(n: &Node, path: &P<'_>) -> Result<FileReference> {
    if let Value::Str(s) = &n.value {
        return Ok(FileReference {
            source: s.clone(),
            ..FileReference::default()
        });
    }
    let f = Fields::new(n, path)?;
    let mode_path = f.path("mode");
    let r = FileReference {
        source: f.string("source")?,
        target: f.string("target")?,
        uid: f.text("uid")?,
        gid: f.text("gid")?,
        mode: f
            .get("mode")
            .map(|m| match &m.value {
                Value::Int(i) => u32::try_from(*i)
                    .map(FileMode)
                    .map_err(|_| err(m, &mode_path, "invalid file mode")),
                Value::Str(s) => u32::from_str_radix(s, 8)
                    .map(FileMode)
                    .map_err(|_| err(m, &mode_path, format!("invalid file mode {s:?}"))),
                _ => Err(err(m, &mode_path, "must be a file mode")),
            })
            .transpose()?,
    };
    f.finish()?;
    Ok(r)
}

fn credential_spec(n: &Node, path: &P<'_>) -> Result<CredentialSpec> {
    let f = Fields::new(n, path)?;
    let c = CredentialSpec {
        config: f.string("config")?,
        file: f.string("file")?,
        registry: f.string("registry")?,
    };
    f.finish()?;
    Ok(c)
}

fn depends_on(n: &Node, path: &P<'_>) -> Result<BTreeMap<String, Dependency>> {
    let mut out = BTreeMap::new();
    match &n.value {
        Value::Seq(_) => {
            for name in string_list(n, path)? {
                out.insert(
                    name,
                    Dependency {
                        condition: "service_started".into(),
                        restart: false,
                        required: true,
                    },
                );
            }
        }
        Value::Map(m) => {
            for (k, v) in m.iter() {
                let p = P::Key(path, &k.name);
                let f = Fields::new(v, &p)?;
                let condition = f.string("condition")?;
                let cond_node = f.get("condition");
                let d = Dependency {
                    condition: if condition.is_empty() {
                        "service_started".into()
                    } else {
                        condition
                    },
                    restart: f.bool("restart")?,
                    required: f.opt_bool("required")?.unwrap_or(true),
                };
                if !matches!(
                    d.condition.as_str(),
                    "service_started" | "service_healthy" | "service_completed_successfully"
                ) {
                    let at = cond_node.unwrap_or(v);
                    return Err(err(
                        at,
                        &P::Key(&p, "condition"),
                        format!("invalid condition {:?}", d.condition),
                    ));
                }
                f.finish()?;
                out.insert(k.name.clone(), d);
            }
        }
        _ => return Err(err(n, path, "must be a list or a mapping")),
    }
    Ok(out)
}

fn deploy(n: &Node, path: &P<'_>) -> Result<Deploy> {
    let f = Fields::new(n, path)?;
    let d = Deploy {
        mode: f.string("mode")?,
        replicas: f.opt_int("replicas")?,
        labels: f.mapping("labels")?,
        update_config: f.object("update_config", update_config)?,
        rollback_config: f.object("rollback_config", update_config)?,
        resources: f.object("resources", resources)?.unwrap_or_default(),
        restart_policy: f.object("restart_policy", |n: &Node, p: &P<'_>| {
            let f = Fields::new(n, p)?;
            let r = RestartPolicy {
                condition: f.string("condition")?,
                delay: f.duration("delay")?,
                max_attempts: f.opt_uint("max_attempts")?,
                window: f.duration("window")?,
            };
            f.finish()?;
            Ok(r)
        })?,
        placement: f
            .object("placement", |n: &Node, p: &P<'_>| {
                let f = Fields::new(n, p)?;
                let pl = Placement {
                    constraints: f.list("constraints")?,
                    preferences: f.items("preferences", |n: &Node, p: &P<'_>| {
                        let f = Fields::new(n, p)?;
                        let pref = PlacementPreference {
                            spread: f.string("spread")?,
                        };
                        f.finish()?;
                        Ok(pref)
                    })?,
                    max_replicas_per_node: f.opt_uint("max_replicas_per_node")?.unwrap_or(0),
                };
                f.finish()?;
                Ok(pl)
            })?
            .unwrap_or_default(),
        endpoint_mode: f.string("endpoint_mode")?,
    };
    f.finish()?;
    Ok(d)
}

fn update_config(n: &Node, path: &P<'_>) -> Result<UpdateConfig> {
    let f = Fields::new(n, path)?;
    let u = UpdateConfig {
        parallelism: f.opt_uint("parallelism")?,
        delay: f.duration("delay")?.unwrap_or_default(),
        failure_action: f.string("failure_action")?,
        monitor: f.duration("monitor")?.unwrap_or_default(),
        max_failure_ratio: f.float("max_failure_ratio")?,
        order: f.string("order")?,
    };
    f.finish()?;
    Ok(u)
}

fn resources(n: &Node, path: &P<'_>) -> Result<Resources> {
    let f = Fields::new(n, path)?;
    let r = Resources {
        limits: f.object("limits", resource)?,
        reservations: f.object("reservations", resource)?,
    };
    f.finish()?;
    Ok(r)
}

fn resource(n: &Node, path: &P<'_>) -> Result<Resource> {
    let f = Fields::new(n, path)?;
    let r = Resource {
        cpus: f.float("cpus")?,
        memory: f.bytes("memory")?,
        pids: f.int("pids")?,
        devices: f.items("devices", device_request)?,
        generic_resources: f.items("generic_resources", |n: &Node, p: &P<'_>| {
            let f = Fields::new(n, p)?;
            let g = GenericResource {
                discrete_resource_spec: f.object(
                    "discrete_resource_spec",
                    |n: &Node, p: &P<'_>| {
                        let f = Fields::new(n, p)?;
                        let d = DiscreteResource {
                            kind: f.string("kind")?,
                            value: f.int("value")?,
                        };
                        f.finish()?;
                        Ok(d)
                    },
                )?,
            };
            f.finish()?;
            Ok(g)
        })?,
    };
    f.finish()?;
    Ok(r)
}

fn device_request(n: &Node, path: &P<'_>) -> Result<DeviceRequest> {
    let f = Fields::new(n, path)?;
    let count_path = f.path("count");
    let d = DeviceRequest {
        capabilities: f.list("capabilities")?,
        driver: f.string("driver")?,
        count: match f.get("count") {
            None => 0,
            Some(c) => match &c.value {
                Value::Str(s) if s.eq_ignore_ascii_case("all") => -1,
                _ => integer(c, &count_path)?,
            },
        },
        device_ids: f.list("device_ids")?,
        options: f.mapping("options")?,
    };
    f.finish()?;
    Ok(d)
}

fn gpus(n: &Node, path: &P<'_>) -> Result<Vec<DeviceRequest>> {
    match &n.value {
        Value::Str(s) if s == "all" => Ok(vec![DeviceRequest {
            count: -1,
            ..DeviceRequest::default()
        }]),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| device_request(item, &P::Index(path, i)))
            .collect(),
        _ => Err(err(n, path, "must be \"all\" or a list")),
    }
}

fn device_mapping(n: &Node, path: &P<'_>) -> Result<DeviceMapping> {
    if let Value::Str(s) = &n.value {
        let parts: Vec<&str> = s.split(':').collect();
        return match parts.as_slice() {
            [a] => Ok(DeviceMapping {
                source: a.to_string(),
                target: a.to_string(),
                permissions: "rwm".into(),
            }),
            [a, b] => Ok(DeviceMapping {
                source: a.to_string(),
                target: b.to_string(),
                permissions: "rwm".into(),
            }),
            [a, b, c] => Ok(DeviceMapping {
                source: a.to_string(),
                target: b.to_string(),
                permissions: c.to_string(),
            }),
            _ => Err(err(n, path, format!("invalid device mapping {s:?}"))),
        };
    }
    let f = Fields::new(n, path)?;
    let d = DeviceMapping {
        source: f.string("source")?,
        target: f.string("target")?,
        permissions: f.string("permissions")?,
    };
    f.finish()?;
    Ok(d)
}

fn provider(n: &Node, path: &P<'_>) -> Result<Provider> {
    let f = Fields::new(n, path)?;
    let kind = f.string("type")?;
    let opts_path = f.path("options");
    let options = match f.get("options") {
        None => BTreeMap::new(),
        Some(o) => {
            let Value::Map(m) = &o.value else {
                return Err(err(o, &opts_path, "must be a mapping"));
            };
            let mut out = BTreeMap::new();
            for (k, v) in m.iter() {
                let p = P::Key(&opts_path, &k.name);
                let values = match &v.value {
                    Value::Seq(_) => string_list(v, &p)?,
                    _ => vec![text(v, &p)?],
                };
                out.insert(k.name.clone(), values);
            }
            out
        }
    };
    f.finish()?;
    Ok(Provider { kind, options })
}

fn env_files(n: &Node, path: &P<'_>) -> Result<Vec<EnvFile>> {
    let one = |n: &Node, p: &P<'_>| -> Result<EnvFile> {
        if let Value::Str(s) = &n.value {
            return Ok(EnvFile {
                path: s.clone(),
                required: true,
                format: String::new(),
            });
        }
        let f = Fields::new(n, p)?;
        let e = EnvFile {
            path: f.string("path")?,
            required: f.opt_bool("required")?.unwrap_or(true),
            format: f.string("format")?,
        };
        f.finish()?;
        Ok(e)
    };
    match &n.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| one(item, &P::Index(path, i)))
            .collect(),
        _ => Ok(vec![one(n, path)?]),
    }
}

fn extends(n: &Node, path: &P<'_>) -> Result<Extends> {
    if let Value::Str(s) = &n.value {
        return Ok(Extends {
            file: String::new(),
            service: s.clone(),
        });
    }
    let f = Fields::new(n, path)?;
    let e = Extends {
        file: f.string("file")?,
        service: f.string("service")?,
    };
    f.finish()?;
    if e.service.is_empty() {
        return Err(err(n, path, "service is required"));
    }
    Ok(e)
}

fn extra_hosts(n: &Node, path: &P<'_>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut push = |host: &str, ip: &str, at: &Node, p: &P<'_>| -> Result<()> {
        if host.is_empty() || host.contains([':', '=']) {
            return Err(err(at, p, format!("bad host name {host:?}")));
        }
        for ip in ip.split(',') {
            let ip = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .unwrap_or(ip);
            out.push(format!("{host}={ip}"));
        }
        Ok(())
    };
    match &n.value {
        Value::Map(m) => {
            for (k, v) in m.iter() {
                let p = P::Key(path, &k.name);
                match &v.value {
                    Value::Seq(_) => {
                        for ip in string_list(v, &p)? {
                            push(&k.name, &ip, v, &p)?;
                        }
                    }
                    _ => push(&k.name, &text(v, &p)?, v, &p)?,
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = P::Index(path, i);
                let s = text(item, &p)?;
                let (host, ip) =
                    s.split_once('=')
                        .or_else(|| s.split_once(':'))
                        .ok_or_else(|| {
                            err(
                                item,
                                &p,
                                format!("invalid additional host, missing IP: {s}"),
                            )
                        })?;
                push(host, ip, item, &p)?;
            }
        }
        _ => return Err(err(n, path, "must be a list or a mapping")),
    }
    out.sort();
    Ok(out)
}

fn healthcheck(n: &Node, path: &P<'_>) -> Result<Healthcheck> {
    let f = Fields::new(n, path)?;
    let test_path = f.path("test");
    let h = Healthcheck {
        test: match f.get("test") {
            None => Vec::new(),
            Some(t) => match &t.value {
                Value::Str(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                _ => string_list(t, &test_path)?,
            },
        },
        timeout: f.duration("timeout")?,
        interval: f.duration("interval")?,
        retries: f.opt_uint("retries")?,
        start_period: f.duration("start_period")?,
        start_interval: f.duration("start_interval")?,
        disable: f.bool("disable")?,
    };
    if let Some(first) = h.test.first()
        && !matches!(first.as_str(), "CMD" | "CMD-SHELL" | "NONE")
    {
        return Err(err(
            n,
            &test_path,
            format!("test must start with CMD, CMD-SHELL or NONE, not {first:?}"),
        ));
    }
    f.finish()?;
    Ok(h)
}

fn logging(n: &Node, path: &P<'_>) -> Result<Logging> {
    let f = Fields::new(n, path)?;
    let l = Logging {
        driver: f.string("driver")?,
        options: f.mapping("options")?,
    };
    f.finish()?;
    Ok(l)
}

fn service_models(n: &Node, path: &P<'_>) -> Result<BTreeMap<String, Option<ServiceModel>>> {
    let mut out = BTreeMap::new();
    match &n.value {
        Value::Seq(_) => {
            for name in string_list(n, path)? {
                out.insert(name, None);
            }
        }
        Value::Map(m) => {
            for (k, v) in m.iter() {
                let p = P::Key(path, &k.name);
                let model = if v.is_null() {
                    None
                } else {
                    let f = Fields::new(v, &p)?;
                    let sm = ServiceModel {
                        endpoint_var: f.string("endpoint_var")?,
                        model_var: f.string("model_var")?,
                    };
                    f.finish()?;
                    Some(sm)
                };
                out.insert(k.name.clone(), model);
            }
        }
        _ => return Err(err(n, path, "must be a list or a mapping")),
    }
    Ok(out)
}

fn service_networks(n: &Node, path: &P<'_>) -> Result<BTreeMap<String, Option<ServiceNetwork>>> {
    let mut out = BTreeMap::new();
    match &n.value {
        Value::Seq(_) => {
            for name in string_list(n, path)? {
                out.insert(name, None);
            }
        }
        Value::Map(m) => {
            for (k, v) in m.iter() {
                let p = P::Key(path, &k.name);
                let net = if v.is_null() {
                    None
                } else {
                    let f = Fields::new(v, &p)?;
                    let sn = ServiceNetwork {
                        aliases: f.list("aliases")?,
                        driver_opts: f.mapping("driver_opts")?,
                        gw_priority: f.int("gw_priority")?,
                        interface_name: f.string("interface_name")?,
                        ipv4_address: f.string("ipv4_address")?,
                        ipv6_address: f.string("ipv6_address")?,
                        link_local_ips: f.list("link_local_ips")?,
                        mac_address: f.string("mac_address")?,
                        priority: f.int("priority")?,
                    };
                    f.finish()?;
                    Some(sn)
                };
                out.insert(k.name.clone(), net);
            }
        }
        _ => return Err(err(n, path, "must be a list or a mapping")),
    }
    Ok(out)
}

fn ports(n: &Node, path: &P<'_>) -> Result<Vec<Port>> {
    match &n.value {
        Value::Int(_) | Value::Str(_) => {
            let spec = text(n, path)?;
            short::parse_ports(&spec).map_err(|e| err(n, path, e))
        }
        Value::Map(_) => {
            let f = Fields::new(n, path)?;
            let target_path = f.path("target");
            let target = match f.get("target") {
                Some(t) => {
                    let v = integer(t, &target_path)?;
                    u32::try_from(v)
                        .ok()
                        .filter(|v| *v <= 65535)
                        .ok_or_else(|| err(t, &target_path, format!("invalid port {v}")))?
                }
                None => return Err(err(n, path, "target is required")),
            };
            let mut p = Port {
                name: f.string("name")?,
                mode: f.string("mode")?,
                host_ip: f.string("host_ip")?,
                target,
                published: f.text("published")?,
                protocol: f.string("protocol")?,
                app_protocol: f.string("app_protocol")?,
            };
            if p.protocol.is_empty() {
                p.protocol = "tcp".into();
            }
            if p.mode.is_empty() {
                p.mode = "ingress".into();
            }
            f.finish()?;
            Ok(vec![p])
        }
        _ => Err(err(n, path, "must be a port spec or a mapping")),
    }
}

fn ulimits(n: &Node, path: &P<'_>) -> Result<BTreeMap<String, Ulimit>> {
    let mut out = BTreeMap::new();
    let Value::Map(m) = &n.value else {
        return Err(err(n, path, "must be a mapping"));
    };
    for (k, v) in m.iter() {
        let p = P::Key(path, &k.name);
        let u = match &v.value {
            Value::Map(_) => {
                let f = Fields::new(v, &p)?;
                let u = Ulimit::SoftHard {
                    soft: f.int("soft")?,
                    hard: f.int("hard")?,
                };
                f.finish()?;
                if let Ulimit::SoftHard { soft, hard } = u
                    && soft > hard
                {
                    return Err(err(
                        v,
                        &p,
                        format!("soft limit {soft} exceeds hard limit {hard}"),
                    ));
                }
                u
            }
            _ => Ulimit::Single(integer(v, &p)?),
        };
        out.insert(k.name.clone(), u);
    }
    Ok(out)
}

/// One `volumes[]` entry of a service, short or long syntax.
pub fn service_volume(n: &Node, path: &P<'_>) -> Result<ServiceVolume> {
    if let Value::Str(s) = &n.value {
        return short::parse_volume(s).map_err(|e| err(n, path, e));
    }
    let f = Fields::new(n, path)?;
    let v = ServiceVolume {
        kind: f.string("type")?,
        source: f.string("source")?,
        target: f.string("target")?,
        read_only: f.bool("read_only")?,
        consistency: f.string("consistency")?,
        bind: f.object("bind", |n: &Node, p: &P<'_>| {
            let f = Fields::new(n, p)?;
            let b = VolumeBind {
                selinux: f.string("selinux")?,
                propagation: f.string("propagation")?,
                // Only the short syntax implies creating the host path.
                create_host_path: f.bool("create_host_path")?,
                recursive: f.string("recursive")?,
            };
            f.finish()?;
            Ok(b)
        })?,
        volume: f.object("volume", |n: &Node, p: &P<'_>| {
            let f = Fields::new(n, p)?;
            let v = VolumeVolume {
                labels: f.mapping("labels")?,
                nocopy: f.bool("nocopy")?,
                subpath: f.string("subpath")?,
            };
            f.finish()?;
            Ok(v)
        })?,
        tmpfs: f.object("tmpfs", |n: &Node, p: &P<'_>| {
            let f = Fields::new(n, p)?;
            let mode_path = f.path("mode");
            let t = VolumeTmpfs {
                size: f.bytes("size")?,
                mode: match f.get("mode") {
                    None => 0,
                    Some(m) => u32::try_from(integer(m, &mode_path)?)
                        .map_err(|_| err(m, &mode_path, "invalid mode"))?,
                },
            };
            f.finish()?;
            Ok(t)
        })?,
        image: f.object("image", |n: &Node, p: &P<'_>| {
            let f = Fields::new(n, p)?;
            let i = VolumeImage {
                subpath: f.string("subpath")?,
            };
            f.finish()?;
            Ok(i)
        })?,
    };
    if !matches!(
        v.kind.as_str(),
        "bind" | "volume" | "tmpfs" | "npipe" | "cluster" | "image"
    ) {
        return Err(err(
            n,
            &P::Key(path, "type"),
            format!("invalid volume type {:?}", v.kind),
        ));
    }
    if v.target.is_empty() && v.kind != "npipe" {
        return Err(err(n, path, "target is required"));
    }
    f.finish()?;
    Ok(v)
}

/// `external: true` or the legacy `external: {name: x}`.
fn external(f: &Fields<'_, '_>) -> Result<(bool, String)> {
    let p = f.path("external");
    match f.get("external") {
        None => Ok((false, String::new())),
        Some(
            n @ Node {
                value: Value::Map(_),
                ..
            },
        ) => {
            let ef = Fields::new(n, &p)?;
            let name = ef.string("name")?;
            ef.finish()?;
            Ok((true, name))
        }
        Some(n) => Ok((boolean(n, &p)?, String::new())),
    }
}

fn legacy_name(n: &Node, path: &P<'_>, name: String, external_name: String) -> Result<String> {
    if external_name.is_empty() {
        return Ok(name);
    }
    if !name.is_empty() && name != external_name {
        return Err(err(
            n,
            path,
            "can't use both 'name' and the deprecated 'external.name'",
        ));
    }
    Ok(external_name)
}

/// A top-level network.
pub fn network(n: &Node, path: &P<'_>) -> Result<Network> {
    let f = Fields::new(n, path)?;
    let name = f.string("name")?;
    let (external, external_name) = external(&f)?;
    let net = Network {
        name: legacy_name(n, path, name, external_name)?,
        driver: f.string("driver")?,
        driver_opts: f.mapping("driver_opts")?,
        ipam: f
            .object("ipam", |n: &Node, p: &P<'_>| {
                let f = Fields::new(n, p)?;
                let ipam = Ipam {
                    driver: f.string("driver")?,
                    config: f.items("config", |n: &Node, p: &P<'_>| {
                        let f = Fields::new(n, p)?;
                        let pool = IpamPool {
                            subnet: f.string("subnet")?,
                            gateway: f.string("gateway")?,
                            ip_range: f.string("ip_range")?,
                            aux_addresses: f.mapping("aux_addresses")?,
                        };
                        f.finish()?;
                        Ok(pool)
                    })?,
                };
                let _ = f.mapping("options")?;
                f.finish()?;
                Ok(ipam)
            })?
            .unwrap_or_default(),
        external,
        internal: f.bool("internal")?,
        attachable: f.bool("attachable")?,
        labels: f.mapping("labels")?,
        enable_ipv4: f.opt_bool("enable_ipv4")?,
        enable_ipv6: f.opt_bool("enable_ipv6")?,
    };
    f.finish()?;
    Ok(net)
}

/// A top-level volume.
pub fn volume(n: &Node, path: &P<'_>) -> Result<Volume> {
    let f = Fields::new(n, path)?;
    let name = f.string("name")?;
    let (external, external_name) = external(&f)?;
    let v = Volume {
        name: legacy_name(n, path, name, external_name)?,
        driver: f.string("driver")?,
        driver_opts: f.mapping("driver_opts")?,
        external,
        labels: f.mapping("labels")?,
    };
    f.finish()?;
    Ok(v)
}

/// A top-level secret or config.
pub fn file_object(n: &Node, path: &P<'_>) -> Result<FileObject> {
    let f = Fields::new(n, path)?;
    let name = f.string("name")?;
    let (external, external_name) = external(&f)?;
    let o = FileObject {
        name: legacy_name(n, path, name, external_name)?,
        file: f.string("file")?,
        environment: f.string("environment")?,
        content: f.string("content")?,
        external,
        labels: f.mapping("labels")?,
        driver: f.string("driver")?,
        driver_opts: f.mapping("driver_opts")?,
        template_driver: f.string("template_driver")?,
    };
    f.finish()?;
    Ok(o)
}

/// A top-level model.
pub fn model(n: &Node, path: &P<'_>) -> Result<Model> {
    let f = Fields::new(n, path)?;
    let m = Model {
        name: f.string("name")?,
        model: f.string("model")?,
        context_size: f.int("context_size")?,
        runtime_flags: f.list("runtime_flags")?,
    };
    f.finish()?;
    Ok(m)
}
