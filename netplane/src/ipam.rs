//! IP address management: subnets for new networks from Docker's default
//! pools, skipping every subnet already routed on the host or used by
//! another network, and addresses within a subnet.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 subnet (`10.1.2.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    /// The network address (host bits zero).
    pub addr: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// A subnet from an address and prefix, host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Subnet {
        let prefix = prefix.min(32);
        let mask = Self::mask_of(prefix);
        Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        }
    }

    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    /// The netmask as a number.
    pub fn mask(&self) -> u32 {
        Self::mask_of(self.prefix)
    }

    /// Whether `ip` lies in this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The first host address (Docker's default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Subnet, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid subnet {s:?}: expected a.b.c.d/prefix"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("invalid subnet {s:?}: bad address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("invalid subnet {s:?}: bad prefix"))?;
        let subnet = Subnet::new(addr, prefix);
        if subnet.addr != addr {
            return Err(format!(
                "invalid subnet {s:?}: host bits set (did you mean {subnet}?)"
            ));
        }
        Ok(subnet)
    }
}

/// Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/20 steps.
pub fn default_pools() -> Vec<Subnet> {
    let mut v: Vec<Subnet> = (17..=31)
        .map(|b| Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16))
        .collect();
    v.extend((0..16).map(|i| Subnet::new(Ipv4Addr::new(192, 168, i * 16, 0), 20)));
    v
}

/// The first pool subnet that overlaps nothing in `used`.
pub fn allocate_subnet(pools: &[Subnet], used: &[Subnet]) -> Option<Subnet> {
    pools
        .iter()
        .copied()
        .find(|p| !used.iter().any(|u| u.overlaps(p)))
}

/// The lowest free host address of `subnet` (skipping the network,
/// broadcast and `taken` addresses).
pub fn allocate_ip(subnet: &Subnet, taken: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.addr) + 1;
    let last = u32::from(subnet.broadcast()).checked_sub(1)?;
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| !taken.contains(ip))
}

/// IPv4 subnets routed on this host, from `/proc/net/route` (this network
/// namespace's view).
pub fn routed_subnets(route_table: &str) -> Vec<Subnet> {
    route_table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The file holds little-endian values.
            let dest = Ipv4Addr::from(dest.swap_bytes());
            let mask = mask.swap_bytes();
            if mask == 0 {
                return None; // the default route overlaps everything
            }
            Some(Subnet::new(dest, mask.count_ones() as u8))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_allocated_around_what_is_routed() {
        let used = vec![
            "172.17.0.0/16".parse().unwrap(),
            "172.18.5.0/24".parse().unwrap(),
        ];
        assert_eq!(
            allocate_subnet(&default_pools(), &used)
                .unwrap()
                .to_string(),
            "172.19.0.0/16"
        );
        let s: Subnet = "10.9.0.0/24".parse().unwrap();
        assert_eq!(
            allocate_ip(&s, &[s.first_host()]).unwrap().to_string(),
            "10.9.0.2"
        );
        assert!("10.9.0.1/24".parse::<Subnet>().is_err());
        assert!("10.9.0.0/33".parse::<Subnet>().is_err());
        let tiny: Subnet = "10.0.0.0/30".parse().unwrap();
        let all = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        assert_eq!(allocate_ip(&tiny, &all), None);
    }

    #[test]
    fn route_table_is_parsed() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            routed_subnets(table),
            vec!["10.0.0.0/24".parse::<Subnet>().unwrap()]
        );
    }
}

/// An IPv6 subnet (`fd00:db8:1::/64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet6 {
    /// The network address (host bits zero).
    pub addr: std::net::Ipv6Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl Subnet6 {
    fn mask(prefix: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(prefix.min(128)))
        }
    }

    /// Whether `ip` lies in this subnet.
    pub fn contains(&self, ip: std::net::Ipv6Addr) -> bool {
        u128::from(ip) & Self::mask(self.prefix) == u128::from(self.addr)
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet6) -> bool {
        let m = Self::mask(self.prefix) & Self::mask(other.prefix);
        u128::from(self.addr) & m == u128::from(other.addr) & m
    }

    /// Host number `n` of the subnet (`::1` is Docker's default gateway).
    pub fn host(&self, n: u128) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::from(u128::from(self.addr) | (n & !Self::mask(self.prefix)))
    }

    /// A random unique local /64 (RFC 4193), for `enable_ipv6` without a
    /// subnet: 40 random bits make a clash with another site unlikely.
    pub fn random_ula() -> Option<Subnet6> {
        let mut bytes = [0u8; 16];
        use std::io::Read as _;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes[1..6]))
            .ok()?;
        bytes[0] = 0xfd;
        Some(Subnet6 {
            addr: std::net::Ipv6Addr::from(bytes),
            prefix: 64,
        })
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet6 {
    type Err = String;
    fn from_str(s: &str) -> Result<Subnet6, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid subnet {s:?}: expected an IPv6 address/prefix"))?;
        let addr: std::net::Ipv6Addr = a
            .parse()
            .map_err(|_| format!("invalid subnet {s:?}: bad address"))?;
        // At most /120: room for a gateway and containers.
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| (1..=120).contains(p))
            .ok_or_else(|| format!("invalid subnet {s:?}: bad prefix (1 to 120)"))?;
        let subnet = Subnet6 {
            addr: std::net::Ipv6Addr::from(u128::from(addr) & Subnet6::mask(prefix)),
            prefix,
        };
        if subnet.addr != addr {
            return Err(format!(
                "invalid subnet {s:?}: host bits set (did you mean {subnet}?)"
            ));
        }
        Ok(subnet)
    }
}

/// The lowest free host address of `subnet` from `::2` (`::1` being the
/// gateway), skipping `taken`.
pub fn allocate_ip6(subnet: &Subnet6, taken: &[std::net::Ipv6Addr]) -> Option<std::net::Ipv6Addr> {
    let hosts = if subnet.prefix >= 112 {
        (1u128 << (128 - u32::from(subnet.prefix))) - 1
    } else {
        1 << 16
    };
    (2..hosts)
        .map(|n| subnet.host(n))
        .find(|ip| !taken.contains(ip))
}

#[cfg(test)]
mod v6_tests {
    use super::*;

    #[test]
    fn ipv6_subnets_parse_contain_and_allocate() {
        let s: Subnet6 = "fd00:db8:1::/64".parse().unwrap();
        assert_eq!(s.host(1).to_string(), "fd00:db8:1::1");
        assert!(s.contains("fd00:db8:1::abcd".parse().unwrap()));
        assert!(!s.contains("fd00:db8:2::1".parse().unwrap()));
        assert!(s.overlaps(&"fd00:db8::/32".parse().unwrap()));
        assert!(!s.overlaps(&"fd00:db8::/48".parse().unwrap()));
        assert!("fd00:db8:1::1/64".parse::<Subnet6>().is_err(), "host bits");
        let taken = [s.host(1), s.host(2)];
        assert_eq!(allocate_ip6(&s, &taken), Some(s.host(3)));
        let ula = Subnet6::random_ula().unwrap();
        assert_eq!(ula.addr.octets()[0], 0xfd);
        assert_eq!(ula.prefix, 64);
    }
}
