//! Bridges over netlink (rtnetlink), not by running `ip`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoVeth, LinkAttribute,
};
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

use crate::error::{Error, Result};

fn nl(e: impl std::fmt::Display) -> Error {
    Error::Netlink(e.to_string())
}

/// Runs netlink work on a single-threaded runtime of its own (this crate is
/// used from synchronous code, never from inside another runtime).
pub fn with_netlink<T>(f: impl AsyncFnOnce(Handle) -> Result<T>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Error::Netlink(format!("starting a runtime: {e}")))?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(nl)?;
        let task = tokio::spawn(conn);
        let r = f(handle).await;
        task.abort();
        r
    })
}

/// The index of a link, if it exists.
pub async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(nl(e)),
    }
}

/// The bridge (or other controller) a link is enslaved to, if any.
pub async fn controller_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::Controller(i) => Some(*i),
            _ => None,
        })),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(nl(e)),
    }
}

/// Whether link `name` exists, is up and holds `ip`: what a bridge must be
/// for its network to work (a create killed half-way can leave less).
pub async fn is_up_with(h: &Handle, name: &str, ip: Ipv4Addr) -> Result<bool> {
    use rtnetlink::packet_route::address::AddressAttribute;
    use rtnetlink::packet_route::link::LinkFlags;
    let mut links = h.link().get().match_name(name.to_string()).execute();
    let link = match links.try_next().await {
        Ok(Some(msg)) => msg,
        Ok(None) => return Ok(false),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => return Ok(false),
        Err(e) => return Err(nl(e)),
    };
    if !link.header.flags.contains(LinkFlags::Up) {
        return Ok(false);
    }
    let mut addrs = h
        .address()
        .get()
        .set_link_index_filter(link.header.index)
        .execute();
    while let Some(a) = addrs.try_next().await.map_err(nl)? {
        if a.attributes
            .iter()
            .any(|attr| matches!(attr, AddressAttribute::Address(IpAddr::V4(v)) if *v == ip))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates (or finds) a bridge, gives it `gateway/prefix`, brings it up.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    mtu: Option<u32>,
) -> Result<u32> {
    let index = match index_of(h, name).await? {
        Some(i) => i,
        None => {
            let mut msg = LinkBridge::new(name);
            if let Some(m) = mtu {
                msg = msg.mtu(m);
            }
            h.link()
                .add(msg.build())
                .execute()
                .await
                .map_err(|e| Error::Netlink(format!("creating bridge {name}: {e}")))?;
            index_of(h, name)
                .await?
                .ok_or_else(|| Error::Netlink(format!("bridge {name} vanished after creation")))?
        }
    };
    match h
        .address()
        .add(index, IpAddr::V4(gateway), prefix)
        .execute()
        .await
    {
        Ok(()) => {}
        // EEXIST: the address is already there (a repeated `create`).
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -17 => {}
        Err(e) => {
            return Err(Error::Netlink(format!(
                "adding {gateway}/{prefix} to {name}: {e}"
            )));
        }
    }
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| Error::Netlink(format!("bringing {name} up: {e}")))?;
    Ok(index)
}

/// Adds an IPv6 address to interface `index` without duplicate address
/// detection, so it is usable at once (the DNS server binds the gateway's,
/// containers route through it); an address already there counts as done.
pub async fn add_address6(h: &Handle, index: u32, ip: Ipv6Addr, prefix: u8) -> Result<()> {
    use rtnetlink::packet_route::address::AddressHeaderFlags;
    let mut req = h.address().add(index, IpAddr::V6(ip), prefix);
    req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -17 => Ok(()),
        Err(e) => Err(Error::Netlink(format!("adding {ip}/{prefix}: {e}"))),
    }
}

/// Deletes a link; a missing link counts as done.
pub async fn delete_link(h: &Handle, name: &str) -> Result<()> {
    if let Some(i) = index_of(h, name).await? {
        match h.link().del(i).execute().await {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => {}
            Err(e) => return Err(Error::Netlink(format!("deleting {name}: {e}"))),
        }
    }
    Ok(())
}

/// Creates a veth pair: `host` joins `bridge` and comes up without IPv6
/// addresses; its peer is made as `peer` right in the network namespace
/// open at `netns` (with `mac`, if given), so it takes that namespace's
/// IPv6 defaults and never passes through the host's.
pub async fn veth_into(
    h: &Handle,
    host: &str,
    peer: &str,
    bridge: &str,
    netns: std::os::fd::RawFd,
    mac: Option<[u8; 6]>,
) -> Result<()> {
    let bridge_index = index_of(h, bridge).await?.ok_or_else(|| {
        Error::Netlink(format!(
            "bridge {bridge} does not exist (run the network's create again)"
        ))
    })?;
    let mut inside = rtnetlink::LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.to_string())
        .setns_by_fd(netns);
    if let Some(mac) = mac {
        inside = inside.address(mac.to_vec());
    }
    let msg = rtnetlink::LinkVeth::new(host, peer)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(inside.build())))
        .controller(bridge_index);
    h.link()
        .add(msg.build())
        .execute()
        .await
        .map_err(|e| Error::Netlink(format!("creating veth {host}: {e}")))?;
    // A bridge port needs no IPv6 of its own: no link-local address, set
    // through netlink because the disable_ipv6 sysctl spins on the rtnl
    // lock while other containers' links are made.
    let no_addresses =
        LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
            In6AddrGenMode::None,
        )])]);
    h.link()
        .set(
            LinkUnspec::new_with_name(host)
                .append_extra_attribute(no_addresses)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| Error::Netlink(format!("attaching {host} to {bridge}: {e}")))?;
    Ok(())
}

/// Gives `lo` (index `lo`) its `::1` or takes it away: a container on
/// IPv4-only networks has no IPv6 address at all. Addresses rather than the
/// disable_ipv6 sysctl, which spins on the rtnl lock while other
/// containers' links are made.
async fn loopback_ipv6(h: &Handle, lo: u32, on: bool) -> Result<()> {
    if on {
        return match h
            .address()
            .add(lo, IpAddr::V6(Ipv6Addr::LOCALHOST), 128)
            .execute()
            .await
        {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -17 => Ok(()),
            r => r.map_err(|e| Error::Netlink(format!("adding ::1 to lo: {e}"))),
        };
    }
    let mut addresses = h.address().get().set_link_index_filter(lo).execute();
    let mut v6 = Vec::new();
    while let Some(msg) = addresses.try_next().await.map_err(nl)? {
        if msg.header.family == AddressFamily::Inet6 {
            v6.push(msg);
        }
    }
    for msg in v6 {
        h.address()
            .del(msg)
            .execute()
            .await
            .map_err(|e| Error::Netlink(format!("removing lo's IPv6 address: {e}")))?;
    }
    Ok(())
}

/// A container interface's IPv6 side: its address, the prefix, and the
/// gateway to route through when it is the default route's interface.
#[derive(Clone, Copy, Debug)]
pub struct Inside6 {
    /// The container's address.
    pub ip: Ipv6Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The default route's gateway, if this interface carries it.
    pub gateway: Option<Ipv6Addr>,
}

/// Inside a container's namespace: renames `peer` to `ifname`, gives it its
/// addresses, brings it and `lo` up, and routes by default via `gateway`
/// (and the IPv6 gateway).
#[allow(clippy::too_many_arguments)] // one interface's whole configuration
pub async fn configure_inside(
    h: &Handle,
    ifname: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
    ipv6: Option<Inside6>,
    loopback6: bool,
) -> Result<()> {
    let index = index_of(h, ifname)
        .await?
        .ok_or_else(|| Error::Netlink(format!("{ifname} is not in the container's namespace")))?;
    h.address()
        .add(index, IpAddr::V4(ip), prefix)
        .execute()
        .await
        .map_err(|e| Error::Netlink(format!("adding {ip}/{prefix} to {ifname}: {e}")))?;
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| Error::Netlink(format!("bringing {ifname} up: {e}")))?;
    if let Some(lo) = index_of(h, "lo").await? {
        h.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(|e| Error::Netlink(format!("bringing lo up: {e}")))?;
        loopback_ipv6(h, lo, loopback6).await?;
    }
    if let Some(gw) = gateway {
        let route = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .build();
        h.route()
            .add(route)
            .execute()
            .await
            .map_err(|e| Error::Netlink(format!("adding the default route via {gw}: {e}")))?;
    }
    if let Some(v6) = ipv6 {
        add_address6(h, index, v6.ip, v6.prefix).await?;
        if let Some(gw) = v6.gateway {
            let route = rtnetlink::RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gw)
                .build();
            h.route().add(route).execute().await.map_err(|e| {
                Error::Netlink(format!("adding the IPv6 default route via {gw}: {e}"))
            })?;
        }
    }
    Ok(())
}
