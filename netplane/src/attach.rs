//! Attaching a container to a network: an address from the network's
//! subnet (a lease kept in the network's record), a veth pair with one end
//! on the bridge and the other in the container's namespace as `ethN`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ipam::{self, Subnet};
use crate::link;
use crate::store::Networks;

/// One container's attachment to one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The network's name.
    pub network: String,
    /// The interface inside the container (`eth0` …).
    pub ifname: String,
    /// The container's address.
    pub ip: Ipv4Addr,
    /// Its IPv6 address, on a network with IPv6.
    pub ip6: Option<Ipv6Addr>,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The gateway.
    pub gateway: Ipv4Addr,
    /// The host end of the veth pair.
    pub host_veth: String,
}

/// How a container joins one network.
pub struct Join<'a> {
    /// The interface inside the container (`eth0` …).
    pub ifname: &'a str,
    /// Route the container's traffic out through this network's gateway.
    pub default_route: bool,
    /// The names it answers to on this network.
    pub names: &'a [String],
    /// A fixed address, else the next free one.
    pub ip: Option<Ipv4Addr>,
    /// A fixed MAC address (see [`parse_mac`]), else the kernel's random one.
    pub mac: Option<[u8; 6]>,
    /// A fixed IPv6 address, on a network with IPv6, else the next free one.
    pub ip6: Option<Ipv6Addr>,
}

/// A MAC address as `02:42:ac:11:00:02` (or with `-`); a multicast
/// address would make the interface unreachable, so it is refused.
pub fn parse_mac(s: &str) -> std::result::Result<[u8; 6], String> {
    let bad = || format!("{s:?} is not a MAC address (xx:xx:xx:xx:xx:xx)");
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!("{s:?} is a multicast MAC address"));
    }
    Ok(mac)
}

/// The address a container gets on `network`: `wanted` if it is a host
/// address of the subnet and not `taken`, else the next free one.
fn pick<A: Copy + PartialEq + std::fmt::Display>(
    network: &str,
    subnet: &dyn std::fmt::Display,
    wanted: Option<A>,
    taken: &[A],
    is_host: impl Fn(A) -> bool,
    next_free: impl FnOnce() -> Option<A>,
) -> Result<A> {
    match wanted {
        Some(ip) if !is_host(ip) => Err(Error::Invalid(format!(
            "address {ip} is not a host address of {subnet}"
        ))),
        Some(ip) if taken.contains(&ip) => Err(Error::Invalid(format!(
            "address {ip} is already in use on network {network}"
        ))),
        Some(ip) => Ok(ip),
        None => next_free()
            .ok_or_else(|| Error::Invalid(format!("no free address left on network {network}"))),
    }
}

impl Networks {
    /// Leases an address for `container` on `network` (`ip` if given and
    /// free). A container keeps its lease until [`Networks::release`].
    pub fn lease(
        &self,
        network: &str,
        container: &str,
        ip: Option<Ipv4Addr>,
        names: &[String],
    ) -> Result<Ipv4Addr> {
        let _lock = self.lock()?;
        let mut rec = self.inspect(network)?;
        rec.names.insert(container.to_string(), names.to_vec());
        if let Some(existing) = rec.leases.get(container).copied() {
            self.save(&rec)?;
            return Ok(existing);
        }
        let subnet: Subnet = rec.subnet.parse().map_err(Error::Invalid)?;
        let gateway: Ipv4Addr = rec
            .gateway
            .parse()
            .map_err(|_| Error::Invalid("bad gateway".into()))?;
        let mut taken: Vec<Ipv4Addr> = rec.leases.values().copied().collect();
        taken.push(gateway);
        taken.extend(rec.aux_addresses.iter().copied());
        // Automatic addresses come from the ip range, fixed ones from
        // anywhere in the subnet (as Docker's).
        let pool = match &rec.ip_range {
            Some(r) => r.parse::<Subnet>().map_err(Error::Invalid)?,
            None => subnet,
        };
        let ip = pick(
            network,
            &subnet,
            ip,
            &taken,
            |ip| subnet.contains(ip) && ip != subnet.addr && ip != subnet.broadcast(),
            || {
                ipam::allocate_ip(&pool, &taken)
                    .filter(|ip| *ip != subnet.addr && *ip != subnet.broadcast())
            },
        )?;
        rec.leases.insert(container.to_string(), ip);
        self.save(&rec)?;
        Ok(ip)
    }

    /// Leases an IPv6 address for `container` on `network` (`ip` if given
    /// and free), on a network with IPv6; `None` on one without.
    pub fn lease6(
        &self,
        network: &str,
        container: &str,
        ip: Option<Ipv6Addr>,
    ) -> Result<Option<Ipv6Addr>> {
        let _lock = self.lock()?;
        let mut rec = self.inspect(network)?;
        let Some((subnet, gateway)) = rec.ipv6() else {
            return match ip {
                Some(ip) => Err(Error::Invalid(format!(
                    "address {ip}: network {network} has no IPv6 (enable_ipv6)"
                ))),
                None => Ok(None),
            };
        };
        if let Some(existing) = rec.leases6.get(container).copied() {
            return Ok(Some(existing));
        }
        let mut taken: Vec<Ipv6Addr> = rec.leases6.values().copied().collect();
        taken.push(gateway);
        let ip = pick(
            network,
            &subnet,
            ip,
            &taken,
            |ip| subnet.contains(ip) && ip != subnet.addr,
            || ipam::allocate_ip6(&subnet, &taken),
        )?;
        rec.leases6.insert(container.to_string(), ip);
        self.save(&rec)?;
        Ok(Some(ip))
    }

    /// Gives a container's address back and removes the host end of its
    /// veth (gone already when its namespace died).
    pub fn disconnect(&self, network: &str, container: &str, ifname: &str) -> Result<()> {
        let tag = &container[..container.len().min(7)];
        let host_veth = format!("vb{tag}{}", &ifname[ifname.len().saturating_sub(1)..]);
        link::with_netlink(async |h| link::delete_link(&h, &host_veth).await)?;
        self.release(network, container)
    }

    /// Takes a running container off `network`, whichever interface it has
    /// there: the host end of its veth is the one on the network's bridge.
    pub fn detach(&self, network: &str, container: &str) -> Result<()> {
        let rec = self.inspect(network)?;
        let tag = &container[..container.len().min(7)];
        let bridge = rec.bridge.clone();
        link::with_netlink(async |h| {
            let Some(bridge_index) = link::index_of(&h, &bridge).await? else {
                return Ok(());
            };
            for n in 0..10 {
                let host_veth = format!("vb{tag}{n}");
                if link::controller_of(&h, &host_veth).await? == Some(bridge_index) {
                    link::delete_link(&h, &host_veth).await?;
                }
            }
            Ok(())
        })?;
        self.release(network, container)
    }

    /// Gives a container's address back.
    pub fn release(&self, network: &str, container: &str) -> Result<()> {
        let _lock = self.lock()?;
        let Ok(mut rec) = self.inspect(network) else {
            return Ok(());
        };
        let had_lease =
            rec.leases.remove(container).is_some() | rec.leases6.remove(container).is_some();
        let had_names = rec.names.remove(container).is_some();
        if had_lease || had_names {
            self.save(&rec)?;
        }
        Ok(())
    }

    /// Connects the network namespace of process `pid` to `network` as
    /// `join` says, with `container`'s leased address.
    pub fn connect(
        &self,
        network: &str,
        container: &str,
        pid: i32,
        join: &Join<'_>,
    ) -> Result<Attachment> {
        let (ifname, default_route) = (join.ifname, join.default_route);
        let rec = self.inspect(network)?;
        let ip = self.lease(network, container, join.ip, join.names)?;
        let ip6 = self.lease6(network, container, join.ip6)?;
        let v6 = rec.ipv6();
        let subnet: Subnet = rec.subnet.parse().map_err(Error::Invalid)?;
        let gateway: Ipv4Addr = rec
            .gateway
            .parse()
            .map_err(|_| Error::Invalid("bad gateway".into()))?;
        let tag = &container[..container.len().min(7)];
        let host_veth = format!("vb{tag}{}", &ifname[ifname.len().saturating_sub(1)..]);
        let ns_path = format!("/proc/{pid}/ns/net");
        let ns = std::fs::File::open(&ns_path).map_err(|e| Error::Io {
            path: ns_path.clone().into(),
            cause: e,
        })?;
        let bridge = rec.bridge.clone();
        if v6.is_none() {
            // The namespace's defaults first: the container's end of the
            // veth is made there, with IPv6 and router advertisements off. Defaults
            // are written without the rtnl lock, which a per-interface
            // write spins on while other containers' links are made.
            in_namespace(&ns, || {
                let _ = std::fs::write("/proc/sys/net/ipv6/conf/default/accept_ra", "0");
                let _ = std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
                Ok(())
            })?;
        }
        let mac = join.mac;
        link::with_netlink(async |h| {
            link::delete_link(&h, &host_veth).await?;
            link::veth_into(&h, &host_veth, ifname, &bridge, ns.as_raw_fd(), mac).await
        })?;
        // Configuring the far end needs a netlink socket inside the
        // container's namespace.
        let ifname2 = ifname.to_string();
        let gw = default_route.then_some(gateway);
        let inside6 = ip6.zip(v6).map(|(ip, (subnet6, gateway6))| link::Inside6 {
            ip,
            prefix: subnet6.prefix,
            gateway: default_route.then_some(gateway6),
        });
        let inside = in_namespace(&ns, move || {
            // IPv4-only networks: no link-local or autoconfigured IPv6 that
            // would reach around the IPv4 rules (CVE-2024-32473); on an IPv6
            // network, IPv6 without router advertisements. Never through
            // `all`, which would reach the container's other interfaces.
            // /proc/sys/net is this thread's namespace's.
            let _ = std::fs::write("/proc/sys/net/ipv6/conf/all/accept_ra", "0");
            let loopback6 = match inside6 {
                Some(_) => {
                    enable_ipv6(&[&ifname2]);
                    if !ipv6_on("lo") {
                        enable_ipv6(&["lo"]);
                    }
                    true
                }
                None => {
                    // The interface came with the defaults set above;
                    // checked, in case it did not.
                    if ipv6_on(&ifname2) {
                        disable_ipv6(&[&ifname2]);
                    }
                    any_ipv6_interface()
                }
            };
            link::with_netlink(async |h| {
                link::configure_inside(&h, &ifname2, ip, subnet.prefix, gw, inside6, loopback6)
                    .await
            })?;
            Ok(())
        });
        if let Err(e) = inside {
            let _ = link::with_netlink(async |h| link::delete_link(&h, &host_veth).await);
            return Err(e);
        }
        Ok(Attachment {
            network: network.to_string(),
            ifname: ifname.to_string(),
            ip,
            ip6,
            prefix: subnet.prefix,
            gateway,
            host_veth,
        })
    }
}

/// Runs `f` on a short-lived thread in the network namespace `ns` (namespaces
/// are per thread): gone before anything else runs.
fn in_namespace<T: Send>(ns: &std::fs::File, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(
                ns.as_fd_ref(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| {
                Error::Netlink(format!("entering the container's network namespace: {e}"))
            })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Netlink("the namespace thread panicked".into())))
    })
}

/// Whether an interface of the current thread's network namespace other
/// than `lo` has IPv6 on (a container on an IPv6 network too).
fn any_ipv6_interface() -> bool {
    std::fs::read_dir("/proc/sys/net/ipv6/conf")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !matches!(e.file_name().to_str(), Some("all" | "default" | "lo")))
        .any(|e| {
            std::fs::read_to_string(e.path().join("disable_ipv6")).is_ok_and(|v| v.trim() == "0")
        })
}

/// Whether IPv6 is on for interface `name` of the current thread's network
/// namespace.
fn ipv6_on(name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"))
        .is_ok_and(|v| v.trim() == "0")
}

/// Turns IPv6 on, router advertisements still off, on these interfaces of
/// the current thread's network namespace (networks with `enable_ipv6`).
pub(crate) fn enable_ipv6(interfaces: &[&str]) {
    for i in interfaces {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{i}/accept_ra"), "0");
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{i}/disable_ipv6"), "0");
    }
}

/// Turns IPv6 off, router advertisements included, on these interfaces
/// (`all`, `default` or names) of the current thread's network namespace.
/// Hosts without IPv6 have nothing to turn off.
pub(crate) fn disable_ipv6(interfaces: &[&str]) {
    for i in interfaces {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{i}/accept_ra"), "0");
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{i}/disable_ipv6"), "1");
    }
}

trait AsFdRef {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl AsFdRef for std::fs::File {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}
