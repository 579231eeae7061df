//! Configuration hashes: a changed hash means the object must be recreated.
//!
//! Fields that do not change what a container is (replica count,
//! dependencies, profiles, build instructions, pull policy, lifecycle hooks,
//! watch rules) are left out, as Docker Compose leaves them out, so that
//! scaling or reordering does not recreate anything.

use berth_spec::model::{Network, Service, Volume};
use berth_spec::render::to_json;
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The part of a service's configuration that defines its containers.
pub fn service_config(svc: &Service) -> serde_json::Value {
    let mut s = svc.clone();
    s.build = None;
    s.pull_policy.clear();
    s.pull_refresh_after.clear();
    s.scale = None;
    if let Some(d) = s.deploy.as_mut() {
        d.replicas = None;
    }
    s.depends_on.clear();
    s.profiles.clear();
    s.develop = None;
    s.post_start.clear();
    s.pre_stop.clear();
    serde_json::to_value(&s).unwrap_or(serde_json::Value::Null)
}

/// The hash of [`service_config`].
pub fn service_hash(svc: &Service) -> String {
    sha256_hex(to_json(&service_config(svc)).as_bytes())
}

/// The hash of a network's configuration.
pub fn network_hash(net: &Network) -> String {
    sha256_hex(to_json(net).as_bytes())
}

/// The hash of a volume's configuration.
pub fn volume_hash(vol: &Volume) -> String {
    sha256_hex(to_json(vol).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_and_dependencies_do_not_change_the_hash() {
        let mut a = Service {
            image: "nginx".into(),
            ..Service::default()
        };
        let h = service_hash(&a);
        a.scale = Some(3);
        a.depends_on.insert("db".into(), Default::default());
        assert_eq!(service_hash(&a), h);
        a.environment.insert("FOO".into(), Some("1".into()));
        assert_ne!(service_hash(&a), h);
    }
}
