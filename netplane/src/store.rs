//! Networks: their records under `<root>/networks/<name>.json`, and the
//! kernel objects (bridge, addresses, firewall rules) that realise them.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::firewall::{self, NetRules};
use crate::ipam::{self, Subnet};
use crate::link;
use crate::peers::{self, NamespaceLock};

/// The network `container run` joins without `--network`: Docker's
/// predefined `bridge`, made here when a container first needs it. As on
/// Docker's, containers reach each other by address only: no embedded DNS
/// serves it, and its containers use the host's name servers.
pub const DEFAULT_BRIDGE: &str = "bridge";

/// What `network create` asks for.
#[derive(Clone, Debug, Default)]
pub struct NetworkRequest {
    /// The network's name.
    pub name: String,
    /// `--subnet` (default: allocated from the pools).
    pub subnet: Option<String>,
    /// `--gateway` (default: the subnet's first host).
    pub gateway: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// `com.docker.network.bridge.name` (default `br-<id prefix>`).
    pub bridge: Option<String>,
    /// MTU of the bridge.
    pub mtu: Option<u32>,
    /// `ip_range` / `--ip-range`: where containers' addresses are drawn
    /// from (a part of the subnet).
    pub ip_range: Option<String>,
    /// `aux_addresses` / `--aux-address`: addresses never given out.
    pub aux_addresses: Vec<Ipv4Addr>,
    /// `enable_ipv6` / `--ipv6`: an IPv6 subnet too.
    pub ipv6: bool,
    /// The IPv6 subnet (default: a random unique local /64).
    pub subnet6: Option<String>,
    /// The IPv6 gateway (default: the subnet's `::1`).
    pub gateway6: Option<String>,
}

/// A network's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// Its name.
    #[serde(rename = "Name")]
    pub name: String,
    /// 64 hex characters.
    #[serde(rename = "Id")]
    pub id: String,
    /// Always `bridge` for now.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// The bridge interface.
    #[serde(rename = "Bridge")]
    pub bridge: String,
    /// The subnet.
    #[serde(rename = "Subnet")]
    pub subnet: String,
    /// The gateway (the bridge's address).
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// No traffic beyond the network.
    #[serde(rename = "Internal")]
    pub internal: bool,
    /// Labels.
    #[serde(rename = "Labels")]
    pub labels: BTreeMap<String, String>,
    /// Addresses leased to containers, by container id.
    #[serde(rename = "Leases", default)]
    pub leases: BTreeMap<String, Ipv4Addr>,
    /// The DNS names of each leased container (name, service, aliases).
    #[serde(rename = "Names", default)]
    pub names: BTreeMap<String, Vec<String>>,
    /// The IPv6 subnet, on a network with IPv6.
    #[serde(rename = "Subnet6", default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    /// The IPv6 gateway.
    #[serde(rename = "Gateway6", default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// IPv6 addresses leased to containers, by container id.
    #[serde(
        rename = "Leases6",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub leases6: BTreeMap<String, std::net::Ipv6Addr>,
    /// Where automatic addresses come from, when not the whole subnet.
    #[serde(rename = "IPRange", default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Addresses reserved for other hosts on the network.
    #[serde(
        rename = "AuxAddresses",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub aux_addresses: Vec<Ipv4Addr>,
}

impl NetworkRecord {
    /// Whether the embedded DNS server answers on this network (every one
    /// but the [`DEFAULT_BRIDGE`]).
    pub fn serves_dns(&self) -> bool {
        self.name != DEFAULT_BRIDGE
    }

    /// The IPv6 subnet and gateway, on a network with IPv6.
    pub fn ipv6(&self) -> Option<(crate::ipam::Subnet6, std::net::Ipv6Addr)> {
        Some((
            self.subnet6.as_ref()?.parse().ok()?,
            self.gateway6.as_ref()?.parse().ok()?,
        ))
    }
}

/// The networks of one state root.
pub struct Networks {
    dir: PathBuf,
}

/// Longest name: the record is `<name>.json`, one file name.
const NAME_MAX: usize = 250;

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= NAME_MAX
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The host-wide lock on choosing a subnet (`/run/berth/subnets.lock`).
fn host_subnet_lock() -> Result<std::fs::File> {
    let dir = Path::new("/run/berth");
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            cause: e,
        })?;
    exclusive_lock(&dir.join("subnets.lock"))
}

/// An exclusive lock on the file `p` (made if missing), held until the
/// file is dropped.
fn exclusive_lock(p: &Path) -> Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map_err(|e| Error::Io {
            path: p.to_path_buf(),
            cause: e,
        })?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).map_err(|e| Error::Io {
        path: p.to_path_buf(),
        cause: e.into(),
    })?;
    Ok(f)
}

fn random_id() -> Result<String> {
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::Io {
            path: "/dev/urandom".into(),
            cause: e,
        })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl Networks {
    /// Opens (creating) the records directory below the state root.
    pub fn open(root: &Path) -> Result<Networks> {
        let dir = root.join("networks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
            path: dir.clone(),
            cause: e,
        })?;
        Ok(Networks { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Every network, by name.
    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::Io {
            path: self.dir.clone(),
            cause: e,
        })?;
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path())
                && let Ok(r) = serde_json::from_slice::<NetworkRecord>(&bytes)
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One network by name or id prefix.
    pub fn inspect(&self, name: &str) -> Result<NetworkRecord> {
        let all = self.list()?;
        all.iter()
            .find(|r| r.name == name || r.id == name)
            .or_else(|| {
                let hits: Vec<_> = all
                    .iter()
                    .filter(|r| name.len() >= 3 && r.id.starts_with(name))
                    .collect();
                (hits.len() == 1).then(|| hits[0])
            })
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("network {name} not found")))
    }

    /// The records directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Serialises changes to network records between berth processes.
    pub(crate) fn lock(&self) -> Result<std::fs::File> {
        self.lock_file(".lock")
    }

    /// An exclusive lock on the file `name` of the store, held until the
    /// file is dropped.
    fn lock_file(&self, name: &str) -> Result<std::fs::File> {
        exclusive_lock(&self.dir.join(name))
    }

    pub(crate) fn save(&self, r: &NetworkRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(r).map_err(|e| Error::Invalid(e.to_string()))?;
        let tmp = self.dir.join(format!(".{}.tmp", r.name));
        std::fs::write(&tmp, bytes).map_err(|e| Error::Io {
            path: tmp.clone(),
            cause: e,
        })?;
        std::fs::rename(&tmp, self.path(&r.name)).map_err(|e| Error::Io {
            path: self.path(&r.name),
            cause: e,
        })
    }

    /// Re-applies the firewall table of this network namespace: every
    /// network and published port of this root and of the other roots
    /// with networks here ([`crate::peers`]). Serialised by the host-wide
    /// firewall lock (taken after the store's, never before it): every
    /// change of the records is followed by a sync that reads them after
    /// the change, so the last table applied is always the current one,
    /// however commands interleave.
    pub fn sync_firewall(&self) -> Result<()> {
        self.sync_firewall_without(None)
    }

    /// [`Self::sync_firewall`], leaving out the network `gone` (one whose
    /// record is about to go).
    fn sync_firewall_without(&self, gone: Option<&str>) -> Result<()> {
        let host = peers::lock()?;
        self.sync_locked(&host, gone)
    }

    /// The networks of the other roots in this namespace whose bridges are
    /// here, and those roots' publications; roots with none are taken off
    /// the register.
    fn peer_state(
        &self,
        host: &NamespaceLock,
    ) -> (
        Vec<(PathBuf, NetworkRecord)>,
        Vec<crate::ports::PublishedPort>,
    ) {
        let here = peers::interfaces();
        let mut networks = Vec::new();
        let mut ports = Vec::new();
        for dir in host.others(&self.dir) {
            let other = Networks { dir: dir.clone() };
            let recs: Vec<NetworkRecord> = other
                .list()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| here.contains(&r.bridge))
                .collect();
            if recs.is_empty() {
                host.unregister(&dir);
                continue;
            }
            ports.extend(other.publications().into_iter().flat_map(|(_, p)| p));
            networks.extend(recs.into_iter().map(|r| (dir.clone(), r)));
        }
        (networks, ports)
    }

    /// [`Self::sync_firewall_without`] under the host lock.
    pub(crate) fn sync_locked(&self, host: &NamespaceLock, gone: Option<&str>) -> Result<()> {
        let own: Vec<NetworkRecord> = self
            .list()?
            .into_iter()
            .filter(|r| Some(r.name.as_str()) != gone)
            .collect();
        if own.is_empty() {
            host.unregister(&self.dir);
        } else {
            host.register(&self.dir)?;
        }
        let (others, mut ports) = self.peer_state(host);
        ports.extend(self.publications().into_iter().flat_map(|(_, p)| p));
        let networks: Vec<(PathBuf, NetworkRecord)> = own
            .into_iter()
            .map(|r| (self.dir.clone(), r))
            .chain(others)
            .collect();
        // Names the networks of the table last applied (see `remove`).
        host.set_applied(
            &networks
                .iter()
                .map(|(d, r)| d.join(&r.name))
                .collect::<Vec<_>>(),
        );
        let rules: Vec<NetRules> = networks
            .into_iter()
            .map(|(_, r)| NetRules {
                subnet6: r.subnet6,
                bridge: r.bridge,
                subnet: r.subnet,
                internal: r.internal,
            })
            .collect();
        if !ports.is_empty() {
            // Lets DNAT to a bridge address apply to 127.0.0.1 traffic from
            // the host; the ruleset drops 127/8 arriving from elsewhere.
            for r in &rules {
                let _ = std::fs::write(
                    format!("/proc/sys/net/ipv4/conf/{}/route_localnet", r.bridge),
                    "1",
                );
            }
        }
        firewall::apply_rules(&rules, &ports)?;
        let bridges: Vec<String> = rules.into_iter().map(|r| r.bridge).collect();
        firewall::sync_docker_user(&bridges)
    }

    /// The host ports other roots in this namespace publish.
    pub(crate) fn peer_ports(&self, host: &NamespaceLock) -> Vec<crate::ports::PublishedPort> {
        self.peer_state(host).1
    }

    /// Creates a network: record, bridge, address, firewall rules. A
    /// failure leaves nothing behind.
    pub fn create(&self, req: &NetworkRequest) -> Result<NetworkRecord> {
        if !valid_name(&req.name) {
            return Err(Error::Invalid(format!(
                "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, \
                 at most {NAME_MAX} of them",
                req.name
            )));
        }
        // Held from choosing the subnet to saving the record: networks
        // created at once (one plan, two commands) never share a subnet.
        let _lock = self.lock()?;
        if self.inspect(&req.name).is_ok() {
            return Err(Error::Invalid(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let others: Vec<Subnet> = self
            .list()?
            .iter()
            .filter_map(|r| r.subnet.parse().ok())
            .collect();
        // Other state roots on this host choose from the same pools and see
        // each other's subnets only once routed: one chooses at a time,
        // until its bridge has its address.
        let _host = match req.subnet {
            None => Some(host_subnet_lock()?),
            Some(_) => None,
        };
        let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let subnet = match &req.subnet {
            Some(s) => {
                let s: Subnet = s.parse().map_err(Error::Invalid)?;
                if let Some(o) = others.iter().find(|o| o.overlaps(&s)) {
                    return Err(Error::Invalid(format!(
                        "subnet {s} overlaps {o}, used by another network"
                    )));
                }
                s
            }
            None => {
                let mut used = others.clone();
                used.extend(ipam::routed_subnets(&routes));
                ipam::allocate_subnet(&ipam::default_pools(), &used).ok_or_else(|| {
                    Error::Invalid("no free subnet left in the default pools".into())
                })?
            }
        };
        let gateway: Ipv4Addr = match &req.gateway {
            Some(g) => g
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid gateway {g:?}")))?,
            None => subnet.first_host(),
        };
        if !subnet.contains(gateway) {
            return Err(Error::Invalid(format!(
                "gateway {gateway} is not in subnet {subnet}"
            )));
        }
        let ip_range = match &req.ip_range {
            Some(r) => {
                let r: Subnet = r.parse().map_err(Error::Invalid)?;
                if !subnet.contains(r.addr) || r.prefix < subnet.prefix {
                    return Err(Error::Invalid(format!(
                        "ip range {r} is not inside subnet {subnet}"
                    )));
                }
                Some(r)
            }
            None => None,
        };
        if let Some(a) = req
            .aux_addresses
            .iter()
            .find(|a| !subnet.contains(**a) || **a == gateway)
        {
            return Err(Error::Invalid(format!(
                "auxiliary address {a} is not a free host address of subnet {subnet}"
            )));
        }
        let ipv6 = if req.ipv6 {
            Some(self.ipv6_for(req)?)
        } else {
            None
        };
        let id = random_id()?;
        let bridge = req
            .bridge
            .clone()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if bridge.len() > 15 {
            return Err(Error::Invalid(format!(
                "bridge name {bridge:?} is longer than 15 characters"
            )));
        }
        let record = NetworkRecord {
            name: req.name.clone(),
            id,
            driver: "bridge".into(),
            bridge: bridge.clone(),
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            internal: req.internal,
            labels: req.labels.clone(),
            leases: BTreeMap::new(),
            names: BTreeMap::new(),
            subnet6: ipv6.map(|(s, _)| s.to_string()),
            gateway6: ipv6.map(|(_, g)| g.to_string()),
            leases6: BTreeMap::new(),
            ip_range: ip_range.map(|r| r.to_string()),
            aux_addresses: req.aux_addresses.clone(),
        };
        self.save(&record)?;
        if let Err(e) = self.bring_up(&record, req.mtu) {
            let _ = std::fs::remove_file(self.path(&record.name));
            let _ = link::with_netlink(async |h| link::delete_link(&h, &bridge).await);
            let _ = self.sync_firewall();
            return Err(e);
        }
        Ok(record)
    }

    /// The IPv6 subnet and gateway of a network being created: as asked,
    /// or a random unique local /64; never one another network has.
    fn ipv6_for(&self, req: &NetworkRequest) -> Result<(crate::ipam::Subnet6, std::net::Ipv6Addr)> {
        use crate::ipam::Subnet6;
        let others: Vec<Subnet6> = self
            .list()?
            .iter()
            .filter_map(|r| Some(r.ipv6()?.0))
            .collect();
        let subnet = match &req.subnet6 {
            Some(s) => {
                let s: Subnet6 = s.parse().map_err(Error::Invalid)?;
                if let Some(o) = others.iter().find(|o| o.overlaps(&s)) {
                    return Err(Error::Invalid(format!(
                        "subnet {s} overlaps {o}, used by another network"
                    )));
                }
                s
            }
            None => std::iter::repeat_with(Subnet6::random_ula)
                .take(8)
                .flatten()
                .find(|s| !others.iter().any(|o| o.overlaps(s)))
                .ok_or_else(|| Error::Invalid("no free IPv6 subnet could be drawn".into()))?,
        };
        let gateway = match &req.gateway6 {
            Some(g) => g
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid IPv6 gateway {g:?}")))?,
            None => subnet.host(1),
        };
        if !subnet.contains(gateway) {
            return Err(Error::Invalid(format!(
                "gateway {gateway} is not in subnet {subnet}"
            )));
        }
        Ok((subnet, gateway))
    }

    /// The kernel side of a network: its bridge with the gateway address,
    /// forwarding, the firewall rules. Idempotent.
    fn bring_up(&self, record: &NetworkRecord, mtu: Option<u32>) -> Result<()> {
        let subnet: Subnet = record.subnet.parse().map_err(Error::Invalid)?;
        let gateway: Ipv4Addr = record
            .gateway
            .parse()
            .map_err(|_| Error::Invalid(format!("invalid gateway {:?}", record.gateway)))?;
        let v6 = record.ipv6();
        let index = link::with_netlink(async |h| {
            link::ensure_bridge(&h, &record.bridge, gateway, subnet.prefix, mtu).await
        })?;
        // The host takes no router advertisements from containers through
        // a bridge (CVE-2020-13401); an IPv4 network has no IPv6 at all.
        // Set once the bridge exists: its settings appear with it.
        match v6 {
            Some(_) => crate::attach::enable_ipv6(&[&record.bridge]),
            None => crate::attach::disable_ipv6(&[&record.bridge]),
        }
        if let Some((subnet6, gateway6)) = v6 {
            link::with_netlink(async |h| {
                link::add_address6(&h, index, gateway6, subnet6.prefix).await
            })?;
            std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1").map_err(|e| {
                Error::Io {
                    path: "/proc/sys/net/ipv6/conf/all/forwarding".into(),
                    cause: e,
                }
            })?;
        }
        // Forwarding must be on for bridged containers to reach out.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| Error::Io {
            path: "/proc/sys/net/ipv4/ip_forward".into(),
            cause: e,
        })?;
        self.sync_firewall()
    }

    /// Whether the network's bridge exists in this network namespace, is up
    /// and holds the gateway address; a record without that is what a
    /// create killed half-way (or a reboot) leaves.
    pub fn is_complete(&self, record: &NetworkRecord) -> bool {
        let Ok(gateway) = record.gateway.parse::<Ipv4Addr>() else {
            return false;
        };
        link::with_netlink(async |h| link::is_up_with(&h, &record.bridge, gateway).await)
            .unwrap_or(false)
    }

    /// Creates the network, or completes one that exists by that name
    /// (its bridge, address and rules), as the reconciler needs: creating
    /// what exists succeeds.
    pub fn ensure(&self, req: &NetworkRequest) -> Result<NetworkRecord> {
        match self.inspect(&req.name) {
            Ok(record) => {
                self.bring_up(&record, req.mtu)?;
                Ok(record)
            }
            Err(_) => self.create(req),
        }
    }

    /// The [`DEFAULT_BRIDGE`] network, complete: made if missing, its
    /// bridge brought back if gone (a reboot, a removal by hand).
    pub fn ensure_default(&self) -> Result<NetworkRecord> {
        if let Ok(r) = self.inspect(DEFAULT_BRIDGE)
            && self.is_complete(&r)
        {
            return Ok(r);
        }
        let req = NetworkRequest {
            name: DEFAULT_BRIDGE.into(),
            labels: BTreeMap::from([(
                "com.docker.network.bridge.default_bridge".to_string(),
                "true".to_string(),
            )]),
            ..NetworkRequest::default()
        };
        // A second command making it at once loses the race to create and
        // completes the one the first made.
        self.ensure(&req).or_else(|_| self.ensure(&req))
    }

    /// Removes a network: bridge, rules, record. Missing pieces count as done.
    pub fn remove(&self, name: &str) -> Result<()> {
        let r = self.inspect(name)?;
        // The kernel takes some 30 ms to delete a bridge (it waits out RCU
        // callbacks); the firewall is rewritten without the network
        // meanwhile. A concurrent command's sync may still list it: its
        // rules then name a bridge that is gone, harmless until the next
        // sync drops them. The record goes last, so a kill before that
        // leaves a record whose missing pieces the next removal skips.
        let (rules, link) = std::thread::scope(|s| {
            let rules = s.spawn(|| self.sync_firewall_without(Some(&r.name)));
            let link = link::with_netlink(async |h| link::delete_link(&h, &r.bridge).await);
            let rules = rules
                .join()
                .unwrap_or_else(|_| Err(Error::Invalid("the firewall sync panicked".into())));
            (rules, link)
        });
        link?;
        rules?;
        std::fs::remove_file(self.path(&r.name)).map_err(|e| Error::Io {
            path: self.path(&r.name),
            cause: e,
        })?;
        // A sync of another command (or of another network's removal) that
        // still found the record applied its rules last: apply again.
        let applied = peers::lock()?.applied(&self.dir.join(&r.name));
        if applied {
            self.sync_firewall()?;
        }
        Ok(())
    }
}
