//! The canonical Compose model: every attribute of the Compose Specification
//! as a typed field, short syntaxes already expanded.
//!
//! Serialising these types gives exactly what `docker compose config --format
//! json` prints: fields in Docker Compose's order, empty ones left out, maps
//! sorted by key, sizes as byte strings, durations in Go's notation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::units::{Duration, FileMode, UnitBytes};

/// `KEY → VALUE` where a value may be absent (`environment`, `build.args`).
pub type MappingWithEquals = BTreeMap<String, Option<String>>;
/// `KEY → VALUE` (`labels`, `sysctls`, `driver_opts` …).
pub type Mapping = BTreeMap<String, String>;

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_f32(v: &f32) -> bool {
    *v == 0.0
}
/// Go prints a float32 with the fewest digits that read back as the same
/// float32; going through f64 would print `0.0010000000474974513`.
fn f32_decimal<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    let shortest: f64 = v.to_string().parse().unwrap_or(f64::from(*v));
    s.serialize_f64(shortest)
}

fn is_zero_bytes(v: &UnitBytes) -> bool {
    v.0 == 0
}

/// A whole Compose project after loading and normalisation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Project {
    /// The project name (`-p`, `COMPOSE_PROJECT_NAME`, `name:` or the folder).
    pub name: String,
    /// The folder relative paths are resolved against.
    pub working_dir: PathBuf,
    /// Enabled services.
    pub services: BTreeMap<String, Service>,
    /// Services left out by profiles (kept so that naming one enables it).
    pub disabled_services: BTreeMap<String, Service>,
    /// Networks.
    pub networks: BTreeMap<String, Network>,
    /// Volumes.
    pub volumes: BTreeMap<String, Volume>,
    /// Secrets.
    pub secrets: BTreeMap<String, FileObject>,
    /// Configs.
    pub configs: BTreeMap<String, FileObject>,
    /// AI models served to services (`models:`).
    pub models: BTreeMap<String, Model>,
    /// Top-level `x-*` extension fields, kept as written.
    pub extensions: BTreeMap<String, serde_json::Value>,
    /// The compose files the project was loaded from.
    pub compose_files: Vec<PathBuf>,
    /// The variables used for interpolation (process env + `.env` files).
    pub environment: BTreeMap<String, String>,
}

impl Serialize for Project {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Docker Compose marshals the project through a map, so its keys come
        // out sorted, extensions included.
        let mut entries: Vec<(&str, serde_json::Value)> = Vec::new();
        let to = |v: &dyn erased::Ser| v.to_value();
        entries.push(("name", serde_json::Value::String(self.name.clone())));
        if !self.services.is_empty() {
            entries.push(("services", to(&self.services)));
        }
        if !self.networks.is_empty() {
            entries.push(("networks", to(&self.networks)));
        }
        if !self.volumes.is_empty() {
            entries.push(("volumes", to(&self.volumes)));
        }
        if !self.secrets.is_empty() {
            entries.push(("secrets", to(&self.secrets)));
        }
        if !self.configs.is_empty() {
            entries.push(("configs", to(&self.configs)));
        }
        if !self.models.is_empty() {
            entries.push(("models", to(&self.models)));
        }
        for (k, v) in &self.extensions {
            entries.push((k, v.clone()));
        }
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (k, v) in entries {
            map.serialize_entry(k, &v)?;
        }
        map.end()
    }
}

mod erased {
    pub trait Ser {
        fn to_value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_value(&self) -> serde_json::Value {
            // Serialising plain data into a JSON value cannot fail: every map
            // key in the model is a string.
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// One service. Fields are named after the Compose Specification's
/// attributes and documented there.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct Service {
    /// The service's key.
    #[serde(skip)]
    pub name: String,
    /// `x-*` fields: printed in YAML output only, as Docker Compose does.
    #[serde(skip)]
    pub extensions: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Mapping,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub develop: Option<Develop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<BlkioConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroup_parent: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroup: String,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_count: i64,
    #[serde(skip_serializing_if = "is_zero_f32", serialize_with = "f32_decimal")]
    pub cpu_percent: f32,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_period: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_quota: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_rt_period: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_rt_runtime: i64,
    #[serde(skip_serializing_if = "is_zero_f32", serialize_with = "f32_decimal")]
    pub cpus: f32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cpuset: String,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_shares: i64,
    /// `None` when not set; always printed (as `null` then).
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileReference>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<CredentialSpec>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dockerfile: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    /// `None` when not set; always printed (as `null` then).
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: MappingWithEquals,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extends: Option<Extends>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    /// `host=ip` entries, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<DeviceRequest>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ipc: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Mapping,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub label_file: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub log_driver: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub log_opt: Mapping,
    #[serde(skip_serializing_if = "is_zero_bytes")]
    pub mem_limit: UnitBytes,
    #[serde(skip_serializing_if = "is_zero_bytes")]
    pub mem_reservation: UnitBytes,
    #[serde(skip_serializing_if = "is_zero_bytes")]
    pub memswap_limit: UnitBytes,
    #[serde(skip_serializing_if = "is_zero_bytes")]
    pub mem_swappiness: UnitBytes,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, Option<ServiceModel>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub net: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network_mode: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    #[serde(skip_serializing_if = "is_false")]
    pub oom_kill_disable: bool,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub oom_score_adj: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pid: String,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub pids_limit: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub platform: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pull_policy: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pull_refresh_after: String,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub restart: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileReference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(skip_serializing_if = "is_zero_bytes")]
    pub shm_size: UnitBytes,
    #[serde(skip_serializing_if = "is_false")]
    pub stdin_open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: Mapping,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: Mapping,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub tty: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(skip_serializing_if = "is_false")]
    pub use_api_socket: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub userns_mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uts: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub volume_driver: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ServiceVolume>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<Hook>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<Hook>,
}

impl Service {
    /// How many replicas: `scale`, else `deploy.replicas`, else 1.
    pub fn replicas(&self) -> i64 {
        self.scale
            .or_else(|| self.deploy.as_ref().and_then(|d| d.replicas))
            .unwrap_or(1)
    }
}

macro_rules! plain_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize)]
        #[allow(missing_docs)]
        pub struct $name { $($(#[$fm])* pub $field: $ty),* }
    };
}

plain_struct!(
    /// `build:`
    Build {
        #[serde(skip_serializing_if = "String::is_empty")] context: String,
        #[serde(skip_serializing_if = "String::is_empty")] dockerfile: String,
        #[serde(skip_serializing_if = "String::is_empty")] dockerfile_inline: String,
        #[serde(skip_serializing_if = "Vec::is_empty")] entitlements: Vec<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] args: MappingWithEquals,
        #[serde(skip_serializing_if = "String::is_empty")] provenance: String,
        #[serde(skip_serializing_if = "String::is_empty")] sbom: String,
        #[serde(skip_serializing_if = "Vec::is_empty")] ssh: Vec<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] labels: Mapping,
        #[serde(skip_serializing_if = "Vec::is_empty")] cache_from: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")] cache_to: Vec<String>,
        #[serde(skip_serializing_if = "is_false")] no_cache: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")] no_cache_filter: Vec<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] additional_contexts: Mapping,
        #[serde(skip_serializing_if = "is_false")] pull: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")] extra_hosts: Vec<String>,
        #[serde(skip_serializing_if = "String::is_empty")] isolation: String,
        #[serde(skip_serializing_if = "String::is_empty")] network: String,
        #[serde(skip_serializing_if = "String::is_empty")] target: String,
        #[serde(skip_serializing_if = "Vec::is_empty")] secrets: Vec<FileReference>,
        #[serde(skip_serializing_if = "is_zero_bytes")] shm_size: UnitBytes,
        #[serde(skip_serializing_if = "Vec::is_empty")] tags: Vec<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] ulimits: BTreeMap<String, Ulimit>,
        #[serde(skip_serializing_if = "Vec::is_empty")] platforms: Vec<String>,
        #[serde(skip_serializing_if = "is_false")] privileged: bool,
    }
);

plain_struct!(
    /// `develop:`
    Develop {
        #[serde(skip_serializing_if = "Vec::is_empty")] watch: Vec<WatchTrigger>,
    }
);

plain_struct!(
    /// One `develop.watch` rule.
    WatchTrigger {
        path: String,
        action: String,
        #[serde(skip_serializing_if = "String::is_empty")] target: String,
        /// Always printed, as Docker Compose does (`{"command": null}` when unset).
        exec: Hook,
        #[serde(skip_serializing_if = "Vec::is_empty")] ignore: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")] include: Vec<String>,
        #[serde(skip_serializing_if = "is_false")] initial_sync: bool,
    }
);

plain_struct!(
    /// `post_start` / `pre_stop` hooks and `develop.watch[].exec`.
    Hook {
        command: Option<Vec<String>>,
        #[serde(skip_serializing_if = "String::is_empty")] user: String,
        #[serde(skip_serializing_if = "is_false")] privileged: bool,
        #[serde(skip_serializing_if = "String::is_empty")] working_dir: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] environment: MappingWithEquals,
    }
);

plain_struct!(
    /// `blkio_config:`
    BlkioConfig {
        #[serde(skip_serializing_if = "is_zero_u64")] weight: u64,
        #[serde(skip_serializing_if = "Vec::is_empty")] weight_device: Vec<WeightDevice>,
        #[serde(skip_serializing_if = "Vec::is_empty")] device_read_bps: Vec<ThrottleDevice>,
        #[serde(skip_serializing_if = "Vec::is_empty")] device_read_iops: Vec<ThrottleDevice>,
        #[serde(skip_serializing_if = "Vec::is_empty")] device_write_bps: Vec<ThrottleDevice>,
        #[serde(skip_serializing_if = "Vec::is_empty")] device_write_iops: Vec<ThrottleDevice>,
    }
);

plain_struct!(
    /// `blkio_config.weight_device[]`
    WeightDevice {
        #[serde(rename = "Path")] path: String,
        #[serde(rename = "Weight")] weight: u64,
    }
);

plain_struct!(
    /// `blkio_config.device_*_bps|iops[]`
    ThrottleDevice {
        #[serde(rename = "Path")] path: String,
        #[serde(rename = "Rate")] rate: UnitBytes,
    }
);

plain_struct!(
    /// `devices[]`
    DeviceMapping {
        #[serde(skip_serializing_if = "String::is_empty")] source: String,
        #[serde(skip_serializing_if = "String::is_empty")] target: String,
        #[serde(skip_serializing_if = "String::is_empty")] permissions: String,
    }
);

plain_struct!(
    /// `gpus[]` and `deploy.resources.reservations.devices[]`
    DeviceRequest {
        #[serde(skip_serializing_if = "Vec::is_empty")] capabilities: Vec<String>,
        #[serde(skip_serializing_if = "String::is_empty")] driver: String,
        #[serde(skip_serializing_if = "is_zero_i64")] count: i64,
        #[serde(skip_serializing_if = "Vec::is_empty")] device_ids: Vec<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] options: Mapping,
    }
);

plain_struct!(
    /// `logging:`
    Logging {
        #[serde(skip_serializing_if = "String::is_empty")] driver: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] options: Mapping,
    }
);

plain_struct!(
    /// `deploy:`
    Deploy {
        #[serde(skip_serializing_if = "String::is_empty")] mode: String,
        #[serde(skip_serializing_if = "Option::is_none")] replicas: Option<i64>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] labels: Mapping,
        #[serde(skip_serializing_if = "Option::is_none")] update_config: Option<UpdateConfig>,
        #[serde(skip_serializing_if = "Option::is_none")] rollback_config: Option<UpdateConfig>,
        resources: Resources,
        #[serde(skip_serializing_if = "Option::is_none")] restart_policy: Option<RestartPolicy>,
        placement: Placement,
        #[serde(skip_serializing_if = "String::is_empty")] endpoint_mode: String,
    }
);

plain_struct!(
    /// `deploy.update_config` / `deploy.rollback_config`
    UpdateConfig {
        #[serde(skip_serializing_if = "Option::is_none")] parallelism: Option<u64>,
        #[serde(skip_serializing_if = "Duration::is_zero")] delay: Duration,
        #[serde(skip_serializing_if = "String::is_empty")] failure_action: String,
        #[serde(skip_serializing_if = "Duration::is_zero")] monitor: Duration,
        #[serde(skip_serializing_if = "is_zero_f32", serialize_with = "f32_decimal")] max_failure_ratio: f32,
        #[serde(skip_serializing_if = "String::is_empty")] order: String,
    }
);

plain_struct!(
    /// `deploy.resources`
    Resources {
        #[serde(skip_serializing_if = "Option::is_none")] limits: Option<Resource>,
        #[serde(skip_serializing_if = "Option::is_none")] reservations: Option<Resource>,
    }
);

plain_struct!(
    /// `deploy.resources.limits` / `.reservations`
    Resource {
        #[serde(skip_serializing_if = "is_zero_f32", serialize_with = "f32_decimal")] cpus: f32,
        #[serde(skip_serializing_if = "is_zero_bytes")] memory: UnitBytes,
        #[serde(skip_serializing_if = "is_zero_i64")] pids: i64,
        #[serde(skip_serializing_if = "Vec::is_empty")] devices: Vec<DeviceRequest>,
        #[serde(skip_serializing_if = "Vec::is_empty")] generic_resources: Vec<GenericResource>,
    }
);

plain_struct!(
    /// `generic_resources[]`
    GenericResource {
        #[serde(skip_serializing_if = "Option::is_none")] discrete_resource_spec: Option<DiscreteResource>,
    }
);

plain_struct!(
    /// `generic_resources[].discrete_resource_spec`
    DiscreteResource {
        kind: String,
        value: i64,
    }
);

plain_struct!(
    /// `deploy.restart_policy`
    RestartPolicy {
        #[serde(skip_serializing_if = "String::is_empty")] condition: String,
        #[serde(skip_serializing_if = "Option::is_none")] delay: Option<Duration>,
        #[serde(skip_serializing_if = "Option::is_none")] max_attempts: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")] window: Option<Duration>,
    }
);

plain_struct!(
    /// `deploy.placement`
    Placement {
        #[serde(skip_serializing_if = "Vec::is_empty")] constraints: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")] preferences: Vec<PlacementPreference>,
        #[serde(skip_serializing_if = "is_zero_u64")] max_replicas_per_node: u64,
    }
);

plain_struct!(
    /// `deploy.placement.preferences[]`
    PlacementPreference {
        #[serde(skip_serializing_if = "String::is_empty")] spread: String,
    }
);

plain_struct!(
    /// `services.*.networks.<name>`
    ServiceNetwork {
        #[serde(skip_serializing_if = "Vec::is_empty")] aliases: Vec<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] driver_opts: Mapping,
        #[serde(skip_serializing_if = "is_zero_i64")] gw_priority: i64,
        #[serde(skip_serializing_if = "String::is_empty")] interface_name: String,
        #[serde(skip_serializing_if = "String::is_empty")] ipv4_address: String,
        #[serde(skip_serializing_if = "String::is_empty")] ipv6_address: String,
        #[serde(skip_serializing_if = "Vec::is_empty")] link_local_ips: Vec<String>,
        #[serde(skip_serializing_if = "String::is_empty")] mac_address: String,
        #[serde(skip_serializing_if = "is_zero_i64")] priority: i64,
    }
);

plain_struct!(
    /// `services.*.models.<name>`
    ServiceModel {
        #[serde(skip_serializing_if = "String::is_empty")] endpoint_var: String,
        #[serde(skip_serializing_if = "String::is_empty")] model_var: String,
    }
);

plain_struct!(
    /// `ports[]`, long form.
    Port {
        #[serde(skip_serializing_if = "String::is_empty")] name: String,
        #[serde(skip_serializing_if = "String::is_empty")] mode: String,
        #[serde(skip_serializing_if = "String::is_empty")] host_ip: String,
        #[serde(skip_serializing_if = "is_zero_u32")] target: u32,
        #[serde(skip_serializing_if = "String::is_empty")] published: String,
        #[serde(skip_serializing_if = "String::is_empty")] protocol: String,
        #[serde(skip_serializing_if = "String::is_empty")] app_protocol: String,
    }
);

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

plain_struct!(
    /// `volumes[]`, long form.
    ServiceVolume {
        #[serde(rename = "type", skip_serializing_if = "String::is_empty")] kind: String,
        #[serde(skip_serializing_if = "String::is_empty")] source: String,
        #[serde(skip_serializing_if = "String::is_empty")] target: String,
        #[serde(skip_serializing_if = "is_false")] read_only: bool,
        #[serde(skip_serializing_if = "String::is_empty")] consistency: String,
        #[serde(skip_serializing_if = "Option::is_none")] bind: Option<VolumeBind>,
        #[serde(skip_serializing_if = "Option::is_none")] volume: Option<VolumeVolume>,
        #[serde(skip_serializing_if = "Option::is_none")] tmpfs: Option<VolumeTmpfs>,
        #[serde(skip_serializing_if = "Option::is_none")] image: Option<VolumeImage>,
    }
);

plain_struct!(
    /// `volumes[].bind`
    VolumeBind {
        #[serde(skip_serializing_if = "String::is_empty")] selinux: String,
        #[serde(skip_serializing_if = "String::is_empty")] propagation: String,
        /// Printed only when true, as Docker Compose does.
        #[serde(skip_serializing_if = "is_false")] create_host_path: bool,
        #[serde(skip_serializing_if = "String::is_empty")] recursive: String,
    }
);

plain_struct!(
    /// `volumes[].volume`
    VolumeVolume {
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] labels: Mapping,
        #[serde(skip_serializing_if = "is_false")] nocopy: bool,
        #[serde(skip_serializing_if = "String::is_empty")] subpath: String,
    }
);

plain_struct!(
    /// `volumes[].tmpfs`
    VolumeTmpfs {
        #[serde(skip_serializing_if = "is_zero_bytes")] size: UnitBytes,
        #[serde(skip_serializing_if = "is_zero_u32")] mode: u32,
    }
);

plain_struct!(
    /// `volumes[].image`
    VolumeImage {
        #[serde(skip_serializing_if = "String::is_empty")] subpath: String,
    }
);

plain_struct!(
    /// `configs[]` / `secrets[]` of a service.
    FileReference {
        #[serde(skip_serializing_if = "String::is_empty")] source: String,
        #[serde(skip_serializing_if = "String::is_empty")] target: String,
        #[serde(skip_serializing_if = "String::is_empty")] uid: String,
        #[serde(skip_serializing_if = "String::is_empty")] gid: String,
        #[serde(skip_serializing_if = "Option::is_none")] mode: Option<FileMode>,
    }
);

plain_struct!(
    /// `credential_spec:`
    CredentialSpec {
        #[serde(skip_serializing_if = "String::is_empty")] config: String,
        #[serde(skip_serializing_if = "String::is_empty")] file: String,
        #[serde(skip_serializing_if = "String::is_empty")] registry: String,
    }
);

plain_struct!(
    /// `depends_on.<service>`
    Dependency {
        #[serde(skip_serializing_if = "String::is_empty")] condition: String,
        #[serde(skip_serializing_if = "is_false")] restart: bool,
        required: bool,
    }
);

plain_struct!(
    /// `provider:`
    Provider {
        #[serde(rename = "type", skip_serializing_if = "String::is_empty")] kind: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] options: BTreeMap<String, Vec<String>>,
    }
);

plain_struct!(
    /// `env_file[]`, long form.
    EnvFile {
        path: String,
        required: bool,
        #[serde(skip_serializing_if = "String::is_empty")] format: String,
    }
);

plain_struct!(
    /// `extends:`
    Extends {
        #[serde(skip_serializing_if = "String::is_empty")] file: String,
        #[serde(skip_serializing_if = "String::is_empty")] service: String,
    }
);

plain_struct!(
    /// `healthcheck:`
    Healthcheck {
        #[serde(skip_serializing_if = "Vec::is_empty")] test: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")] timeout: Option<Duration>,
        #[serde(skip_serializing_if = "Option::is_none")] interval: Option<Duration>,
        #[serde(skip_serializing_if = "Option::is_none")] retries: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")] start_period: Option<Duration>,
        #[serde(skip_serializing_if = "Option::is_none")] start_interval: Option<Duration>,
        #[serde(skip_serializing_if = "is_false")] disable: bool,
    }
);

/// `ulimits.<name>`: one number, or soft and hard limits.
#[derive(Clone, Debug, PartialEq)]
pub enum Ulimit {
    /// `nofile: 1024`
    Single(i64),
    /// `nofile: {soft: 1024, hard: 2048}`
    SoftHard {
        /// The soft limit.
        soft: i64,
        /// The hard limit.
        hard: i64,
    },
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Ulimit::Single(n) => serializer.serialize_i64(*n),
            Ulimit::SoftHard { soft, hard } => {
                let mut map = serializer.serialize_map(None)?;
                if *soft != 0 {
                    map.serialize_entry("soft", soft)?;
                }
                if *hard != 0 {
                    map.serialize_entry("hard", hard)?;
                }
                map.end()
            }
        }
    }
}

plain_struct!(
    /// A top-level network.
    Network {
        #[serde(skip_serializing_if = "String::is_empty")] name: String,
        #[serde(skip_serializing_if = "String::is_empty")] driver: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] driver_opts: Mapping,
        ipam: Ipam,
        #[serde(skip_serializing_if = "is_false")] external: bool,
        #[serde(skip_serializing_if = "is_false")] internal: bool,
        #[serde(skip_serializing_if = "is_false")] attachable: bool,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] labels: Mapping,
        #[serde(skip_serializing_if = "Option::is_none")] enable_ipv4: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")] enable_ipv6: Option<bool>,
    }
);

plain_struct!(
    /// `networks.*.ipam`
    Ipam {
        #[serde(skip_serializing_if = "String::is_empty")] driver: String,
        #[serde(skip_serializing_if = "Vec::is_empty")] config: Vec<IpamPool>,
    }
);

plain_struct!(
    /// `networks.*.ipam.config[]`
    IpamPool {
        #[serde(skip_serializing_if = "String::is_empty")] subnet: String,
        #[serde(skip_serializing_if = "String::is_empty")] gateway: String,
        #[serde(skip_serializing_if = "String::is_empty")] ip_range: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] aux_addresses: Mapping,
    }
);

plain_struct!(
    /// A top-level volume.
    Volume {
        #[serde(skip_serializing_if = "String::is_empty")] name: String,
        #[serde(skip_serializing_if = "String::is_empty")] driver: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] driver_opts: Mapping,
        #[serde(skip_serializing_if = "is_false")] external: bool,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] labels: Mapping,
    }
);

plain_struct!(
    /// A top-level secret or config.
    FileObject {
        #[serde(skip_serializing_if = "String::is_empty")] name: String,
        #[serde(skip_serializing_if = "String::is_empty")] file: String,
        #[serde(skip_serializing_if = "String::is_empty")] environment: String,
        #[serde(skip_serializing_if = "String::is_empty")] content: String,
        #[serde(skip_serializing_if = "is_false")] external: bool,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] labels: Mapping,
        #[serde(skip_serializing_if = "String::is_empty")] driver: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")] driver_opts: Mapping,
        #[serde(skip_serializing_if = "String::is_empty")] template_driver: String,
    }
);

plain_struct!(
    /// A top-level model.
    Model {
        #[serde(skip_serializing_if = "String::is_empty")] name: String,
        #[serde(skip_serializing_if = "String::is_empty")] model: String,
        #[serde(skip_serializing_if = "is_zero_i64")] context_size: i64,
        #[serde(skip_serializing_if = "Vec::is_empty")] runtime_flags: Vec<String>,
    }
);
