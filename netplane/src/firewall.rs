//! berth's firewall rules, in a table of its own (`ip berth`), computed
//! from the networks (pure) and applied as one atomic `nft` batch that
//! replaces the whole table, so a flushed or edited table is repaired by the
//! next berth command.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// What the rules need to know of one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRules {
    /// The bridge interface.
    pub bridge: String,
    /// Its subnet (`10.1.0.0/24`).
    pub subnet: String,
    /// `internal: true`: no traffic to or from outside the network.
    pub internal: bool,
    /// Its IPv6 subnet, on a network with IPv6.
    pub subnet6: Option<String>,
}

/// The whole `ip berth` table for these networks, as an `nft` script that
/// replaces any previous version atomically.
pub fn ruleset(nets: &[NetRules]) -> String {
    ruleset_with_ports(nets, &[])
}

/// [`ruleset`] plus DNAT for published ports, and the `ip6 berth` table
/// of the networks with IPv6.
pub fn ruleset_with_ports(nets: &[NetRules], ports: &[crate::ports::PublishedPort]) -> String {
    let mut s = ruleset4(nets, ports);
    s.push_str(&ruleset6(nets));
    s
}

/// The `ip6 berth` table: the same isolation, guard and egress NAT for the
/// networks' IPv6 subnets (published ports are IPv4's).
fn ruleset6(nets: &[NetRules]) -> String {
    let mut s = String::from("add table ip6 berth\ndelete table ip6 berth\n");
    if !nets.iter().any(|n| n.subnet6.is_some()) {
        return s;
    }
    s.push_str("table ip6 berth {\n");
    s.push_str(&forward_chain(nets));
    s.push_str("\tchain guard {\n\t\ttype filter hook prerouting priority raw; policy accept;\n");
    for n in nets {
        if let Some(sn) = &n.subnet6 {
            s.push_str(&format!(
                "\t\tip6 daddr {sn} iifname != \"{b}\" iifname != \"lo\" iifname != \"vb*\" drop comment \"no direct routing\"\n",
                b = n.bridge
            ));
        }
    }
    s.push_str("\t}\n");
    s.push_str(
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    for n in nets.iter().filter(|n| !n.internal) {
        if let Some(sn) = &n.subnet6 {
            s.push_str(&format!(
                "\t\tip6 saddr {sn} oifname != \"{}\" masquerade comment \"egress NAT\"\n",
                n.bridge
            ));
        }
    }
    s.push_str("\t}\n}\n");
    s
}

/// The forward chain: no traffic between two networks, none in or out of
/// an internal one. By interface, so the same for both families.
fn forward_chain(nets: &[NetRules]) -> String {
    let mut s = String::from(
        "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
    );
    for a in nets {
        for b in nets {
            if a.bridge != b.bridge {
                s.push_str(&format!(
                    "\t\tiifname \"{}\" oifname \"{}\" drop comment \"isolate networks\"\n",
                    a.bridge, b.bridge
                ));
            }
        }
    }
    for n in nets.iter().filter(|n| n.internal) {
        s.push_str(&format!(
            "\t\tiifname \"{b}\" oifname != \"{b}\" drop comment \"internal network\"\n\t\toifname \"{b}\" iifname != \"{b}\" drop comment \"internal network\"\n",
            b = n.bridge
        ));
    }
    s.push_str("\t}\n");
    s
}

/// The `ip berth` table.
fn ruleset4(nets: &[NetRules], ports: &[crate::ports::PublishedPort]) -> String {
    let mut s = String::from("add table ip berth\ndelete table ip berth\n");
    if nets.is_empty() {
        return s;
    }
    s.push_str("table ip berth {\n");
    s.push_str(&forward_chain(nets));
    // Before any address translation: what is addressed to a network's
    // subnet (its containers, its gateway) comes from its bridge, or not at
    // all. Neighbours that route to the host reach containers through
    // published ports only (their destination is then the host's address).
    // `vb*` are the bridge ports, seen here for bridged traffic when
    // br_netfilter is loaded.
    s.push_str("\tchain guard {\n\t\ttype filter hook prerouting priority raw; policy accept;\n");
    for n in nets {
        s.push_str(&format!(
            "\t\tip daddr {sn} iifname != \"{b}\" iifname != \"lo\" iifname != \"vb*\" drop comment \"no direct routing\"\n",
            sn = n.subnet,
            b = n.bridge
        ));
    }
    if !ports.is_empty() {
        // route_localnet must expose nothing: 127/8 only ever comes from lo.
        s.push_str("\t\tiifname != \"lo\" ip daddr 127.0.0.0/8 drop comment \"no route_localnet from outside\"\n");
    }
    s.push_str("\t}\n");
    if !ports.is_empty() {
        let mut dnat = String::new();
        for p in ports {
            let dst = if p.host_ip.is_unspecified() {
                "fib daddr type local".to_string()
            } else {
                format!("ip daddr {}", p.host_ip)
            };
            dnat.push_str(&format!(
                "\t\t{dst} {proto} dport {hp} dnat to {cip}:{cp} comment \"published port\"\n",
                proto = p.protocol,
                hp = p.host_port,
                cip = p.container_ip,
                cp = p.container_port
            ));
        }
        s.push_str(
            "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n",
        );
        s.push_str(&dnat);
        s.push_str("\t}\n");
        s.push_str("\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n");
        s.push_str(&dnat);
        s.push_str("\t}\n");
    }
    s.push_str(
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    for n in nets.iter().filter(|n| !n.internal) {
        s.push_str(&format!(
            "\t\tip saddr {} oifname != \"{}\" masquerade comment \"egress NAT\"\n",
            n.subnet, n.bridge
        ));
    }
    if !ports.is_empty() {
        for n in nets {
            s.push_str(&format!(
                "\t\toifname \"{b}\" ip saddr 127.0.0.0/8 masquerade comment \"published ports from the host\"\n\t\toifname \"{b}\" ip saddr {sn} ip daddr {sn} ct status dnat masquerade comment \"hairpin\"\n",
                b = n.bridge,
                sn = n.subnet
            ));
        }
    }
    s.push_str("\t}\n}\n");
    s
}

/// Which program carries berth's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A table of berth's own, one `nft -f` per change (the default).
    Nftables,
    /// Chains of berth's own through `iptables-restore`, for hosts
    /// without `nft`.
    Iptables,
}

/// `BERTH_FIREWALL=nftables|iptables` if set, else nftables where the
/// `nft` program is installed, else iptables.
pub fn backend() -> Backend {
    match std::env::var("BERTH_FIREWALL").as_deref() {
        Ok("iptables") => Backend::Iptables,
        Ok("nftables") => Backend::Nftables,
        _ => {
            let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin".into());
            if std::env::split_paths(&path).any(|d| d.join("nft").exists()) {
                Backend::Nftables
            } else {
                Backend::Iptables
            }
        }
    }
}

/// Makes the host's rules berth's for these networks and published ports,
/// through [`backend`].
pub fn apply_rules(nets: &[NetRules], ports: &[crate::ports::PublishedPort]) -> Result<()> {
    match backend() {
        Backend::Nftables => apply(&ruleset_with_ports(nets, ports)),
        Backend::Iptables => crate::iptables::apply(nets, ports),
    }
}

/// Applies a ruleset with one `nft -f -` (an atomic transaction).
pub fn apply(script: &str) -> Result<()> {
    run_tool("nft", &["-f", "-"], Some(script)).map(|_| ())
}

/// Runs a firewall program with `input` on its standard input; its
/// standard output, or an error with what it said on its standard error.
pub(crate) fn run_tool(program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Firewall(format!("running {program} (is it installed?): {e}")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| Error::Firewall(format!("writing to {program}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Firewall(format!("waiting for {program}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Firewall(format!(
            "{program} refused berth's rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The chain of berth's own that Docker's `DOCKER-USER` jumps to.
const DOCKER_USER_CHAIN: &str = "BERTH-FORWARD";

fn iptables(args: &[&str]) -> Option<std::process::Output> {
    Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
}

/// Coexistence with Docker: where Docker runs, its `FORWARD` chain drops
/// what it does not know (policy DROP once it enabled forwarding itself,
/// and bridged traffic passes there too through `br_netfilter`), and it
/// runs the `DOCKER-USER` chain first, for rules like these. berth accepts
/// its bridges' traffic there, through a chain of its own that follows the
/// networks and goes with the last one; its own `ip berth` table still
/// isolates the networks. Without iptables or without that chain there is
/// no Docker to coexist with, and nothing is done.
pub fn sync_docker_user(bridges: &[String]) -> Result<()> {
    let Some(listed) = iptables(&["-S", "DOCKER-USER"]) else {
        return Ok(());
    };
    if !listed.status.success() {
        return Ok(());
    }
    let jumps = iptables(&["-C", "DOCKER-USER", "-j", DOCKER_USER_CHAIN])
        .is_some_and(|o| o.status.success());
    if bridges.is_empty() {
        if jumps {
            iptables(&["-D", "DOCKER-USER", "-j", DOCKER_USER_CHAIN]);
        }
        iptables(&["-F", DOCKER_USER_CHAIN]);
        iptables(&["-X", DOCKER_USER_CHAIN]);
        return Ok(());
    }
    // Declaring the chain in a --noflush restore empties it: the new rules
    // replace the old ones in one step.
    let mut batch = format!("*filter\n:{DOCKER_USER_CHAIN} - [0:0]\n");
    for b in bridges {
        batch.push_str(&format!(
            "-A {DOCKER_USER_CHAIN} -i {b} -j ACCEPT\n-A {DOCKER_USER_CHAIN} -o {b} -j ACCEPT\n"
        ));
    }
    batch.push_str("COMMIT\n");
    run_tool("iptables-restore", &["-w", "--noflush"], Some(&batch))?;
    if !jumps {
        let added = iptables(&["-I", "DOCKER-USER", "-j", DOCKER_USER_CHAIN]);
        if !added.is_some_and(|o| o.status.success()) {
            return Err(Error::Firewall(
                "iptables could not add berth's jump to DOCKER-USER".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Two networks, the second internal: the rule sets' test fixture.
    pub(crate) fn two_networks() -> Vec<NetRules> {
        vec![
            NetRules {
                bridge: "br-a".into(),
                subnet: "10.1.0.0/24".into(),
                internal: false,
                subnet6: None,
            },
            NetRules {
                bridge: "br-b".into(),
                subnet: "10.2.0.0/24".into(),
                internal: true,
                subnet6: None,
            },
        ]
    }

    #[test]
    fn golden_ruleset() {
        let nets = two_networks();
        let want = "add table ip berth
delete table ip berth
table ip berth {
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname \"br-a\" oifname \"br-b\" drop comment \"isolate networks\"
\t\tiifname \"br-b\" oifname \"br-a\" drop comment \"isolate networks\"
\t\tiifname \"br-b\" oifname != \"br-b\" drop comment \"internal network\"
\t\toifname \"br-b\" iifname != \"br-b\" drop comment \"internal network\"
\t}
\tchain guard {
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tip daddr 10.1.0.0/24 iifname != \"br-a\" iifname != \"lo\" iifname != \"vb*\" drop comment \"no direct routing\"
\t\tip daddr 10.2.0.0/24 iifname != \"br-b\" iifname != \"lo\" iifname != \"vb*\" drop comment \"no direct routing\"
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr 10.1.0.0/24 oifname != \"br-a\" masquerade comment \"egress NAT\"
\t}
}
";
        let none6 = "add table ip6 berth\ndelete table ip6 berth\n";
        assert_eq!(ruleset(&nets), format!("{want}{none6}"));
        assert_eq!(
            ruleset(&[]),
            format!("add table ip berth\ndelete table ip berth\n{none6}")
        );
        let mut with6 = nets.clone();
        with6[0].subnet6 = Some("fd00:1::/64".into());
        let six = ruleset(&with6);
        assert!(six.contains("table ip6 berth {"), "{six}");
        assert!(
            six.contains("ip6 saddr fd00:1::/64 oifname != \"br-a\" masquerade"),
            "{six}"
        );
        assert!(
            six.contains("ip6 daddr fd00:1::/64 iifname != \"br-a\""),
            "{six}"
        );
    }
}
