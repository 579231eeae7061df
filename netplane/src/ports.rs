//! Published ports: kernel NAT (no userland copy in the path) from a host
//! address and port to a container's address and port, for traffic from
//! other hosts, from the host itself (127.0.0.1 included) and from
//! containers through the host's addresses (hairpin). Publications are
//! recorded under `<root>/networks/ports/<container>.json` and rendered into
//! berth's nftables table with everything else.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::Networks;

/// One published port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// Host address to listen on (`0.0.0.0` for all).
    pub host_ip: Ipv4Addr,
    /// Host port.
    pub host_port: u16,
    /// The container's address.
    pub container_ip: Ipv4Addr,
    /// The container's port.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A request to publish: the host port may be left for berth to choose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    /// Host address (`0.0.0.0` for all).
    pub host_ip: Ipv4Addr,
    /// Host port, or `None` for a free one.
    pub host_port: Option<u16>,
    /// The container's port.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// Whether a host port is free, checked by binding it.
fn port_is_free(ip: Ipv4Addr, port: u16, protocol: &str) -> bool {
    let addr = SocketAddr::new(IpAddr::V4(ip), port);
    match protocol {
        "udp" => UdpSocket::bind(addr).is_ok(),
        _ => TcpListener::bind(addr).is_ok(),
    }
}

fn free_port(ip: Ipv4Addr, protocol: &str) -> Option<u16> {
    let addr = SocketAddr::new(IpAddr::V4(ip), 0);
    let port = match protocol {
        "udp" => UdpSocket::bind(addr).ok()?.local_addr().ok()?.port(),
        _ => TcpListener::bind(addr).ok()?.local_addr().ok()?.port(),
    };
    Some(port)
}

impl Networks {
    fn ports_dir(&self) -> PathBuf {
        self.dir().join("ports")
    }

    /// Every publication, by container.
    pub fn publications(&self) -> Vec<(String, Vec<PublishedPort>)> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.ports_dir()) {
            for e in entries.flatten() {
                let name = e
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".json")
                    .to_string();
                if let Ok(bytes) = std::fs::read(e.path())
                    && let Ok(p) = serde_json::from_slice::<Vec<PublishedPort>>(&bytes)
                {
                    out.push((name, p));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Checks that every requested host port is free (bound by no socket,
    /// published by no other container of this root or of another root in
    /// this network namespace), naming the first one that is not. Nothing
    /// changes.
    pub fn check_ports(&self, requests: &[PortRequest], owners: &[&str]) -> Result<()> {
        let host = crate::peers::lock()?;
        self.check_ports_locked(&host, requests, owners)
    }

    fn check_ports_locked(
        &self,
        host: &crate::peers::NamespaceLock,
        requests: &[PortRequest],
        owners: &[&str],
    ) -> Result<()> {
        let mut taken: Vec<PublishedPort> = self
            .publications()
            .into_iter()
            .filter(|(c, _)| !owners.contains(&c.as_str()))
            .flat_map(|(_, p)| p)
            .collect();
        taken.extend(self.peer_ports(host));
        for r in requests {
            let Some(port) = r.host_port else { continue };
            let clash = taken.iter().any(|t| {
                t.host_port == port
                    && t.protocol == r.protocol
                    && (t.host_ip == r.host_ip
                        || t.host_ip.is_unspecified()
                        || r.host_ip.is_unspecified())
            });
            if clash || !port_is_free(r.host_ip, port, &r.protocol) {
                return Err(Error::Invalid(format!(
                    "port {}:{port}/{} is already allocated on the host",
                    r.host_ip, r.protocol
                )));
            }
        }
        Ok(())
    }

    /// Publishes `requests` to `container_ip` for `owner` (a container id)
    /// and applies the rules.
    pub fn publish(
        &self,
        owner: &str,
        container_ip: Ipv4Addr,
        requests: &[PortRequest],
    ) -> Result<Vec<PublishedPort>> {
        let _lock = self.lock()?;
        // Held from the check to the rules: another root publishing the
        // same port at once finds this one's.
        let host = crate::peers::lock()?;
        self.check_ports_locked(&host, requests, &[owner])?;
        let mut out = Vec::new();
        for r in requests {
            let host_port = match r.host_port {
                Some(p) => p,
                None => free_port(r.host_ip, &r.protocol)
                    .ok_or_else(|| Error::Invalid("no free host port left".into()))?,
            };
            out.push(PublishedPort {
                host_ip: r.host_ip,
                host_port,
                container_ip,
                container_port: r.container_port,
                protocol: r.protocol.clone(),
            });
        }
        std::fs::create_dir_all(self.ports_dir()).map_err(|e| Error::Io {
            path: self.ports_dir(),
            cause: e,
        })?;
        let path = self.ports_dir().join(format!("{owner}.json"));
        let bytes = serde_json::to_vec_pretty(&out).map_err(|e| Error::Invalid(e.to_string()))?;
        std::fs::write(&path, bytes).map_err(|e| Error::Io { path, cause: e })?;
        self.sync_locked(&host, None)?;
        Ok(out)
    }

    /// Withdraws what `owner` published.
    pub fn unpublish(&self, owner: &str) -> Result<()> {
        let _lock = self.lock()?;
        let path = self.ports_dir().join(format!("{owner}.json"));
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| Error::Io { path, cause: e })?;
            // The last publication takes the directory with it (under the
            // lock that publishing takes too): nothing of it is left.
            let _ = std::fs::remove_dir(self.ports_dir());
            self.sync_firewall()?;
        }
        Ok(())
    }
}
