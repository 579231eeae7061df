//! The same rules as berth's nftables table, for hosts with `iptables` only
//! (legacy or nf_tables backend): chains of berth's own in the `raw`,
//! `filter` and `nat` tables, jumped to from the built-in chains, all
//! rewritten by one `iptables-restore --noflush` per change (declaring a
//! chain in a restore empties it, so the new rules replace the old ones in
//! one step). One `iptables-save` first tells which jumps exist.

use crate::error::{Error, Result};
use crate::firewall::{NetRules, run_tool};
use crate::ports::PublishedPort;

/// berth's chains, the table each is in, and the built-in chains that jump
/// to it.
const CHAINS: [(&str, &str, &[&str]); 4] = [
    ("raw", "BERTH-GUARD", &["PREROUTING"]),
    ("filter", "BERTH-ISOLATE", &["FORWARD"]),
    ("nat", "BERTH-DNAT", &["PREROUTING", "OUTPUT"]),
    ("nat", "BERTH-SNAT", &["POSTROUTING"]),
];

/// The rules of each of berth's chains, by chain name.
fn rules(nets: &[NetRules], ports: &[PublishedPort]) -> Vec<(&'static str, Vec<String>)> {
    let mut guard = Vec::new();
    if !ports.is_empty() {
        // route_localnet must expose nothing: 127/8 only ever comes from lo.
        guard.push("! -i lo -d 127.0.0.0/8 -j DROP".to_string());
    }
    // One interface match per rule: the exempt ones return first.
    guard.push("-i lo -j RETURN".into());
    guard.push("-i vb+ -j RETURN".into());
    for n in nets {
        guard.push(format!("-d {} ! -i {} -j DROP", n.subnet, n.bridge));
    }
    let mut isolate = Vec::new();
    for a in nets {
        for b in nets.iter().filter(|b| b.bridge != a.bridge) {
            isolate.push(format!("-i {} -o {} -j DROP", a.bridge, b.bridge));
        }
    }
    for n in nets.iter().filter(|n| n.internal) {
        isolate.push(format!("-i {b} ! -o {b} -j DROP", b = n.bridge));
        isolate.push(format!("-o {b} ! -i {b} -j DROP", b = n.bridge));
    }
    let dnat = ports
        .iter()
        .map(|p| {
            let dst = if p.host_ip.is_unspecified() {
                "-m addrtype --dst-type LOCAL".to_string()
            } else {
                format!("-d {}", p.host_ip)
            };
            format!(
                "{dst} -p {proto} -m {proto} --dport {hp} -j DNAT --to-destination {cip}:{cp}",
                proto = p.protocol,
                hp = p.host_port,
                cip = p.container_ip,
                cp = p.container_port
            )
        })
        .collect();
    let mut snat = Vec::new();
    for n in nets.iter().filter(|n| !n.internal) {
        snat.push(format!("-s {} ! -o {} -j MASQUERADE", n.subnet, n.bridge));
    }
    if !ports.is_empty() {
        for n in nets {
            snat.push(format!("-o {} -s 127.0.0.0/8 -j MASQUERADE", n.bridge));
            snat.push(format!(
                "-o {b} -s {sn} -d {sn} -m conntrack --ctstate DNAT -j MASQUERADE",
                b = n.bridge,
                sn = n.subnet
            ));
        }
    }
    vec![
        ("BERTH-GUARD", guard),
        ("BERTH-ISOLATE", isolate),
        ("BERTH-DNAT", dnat),
        ("BERTH-SNAT", snat),
    ]
}

/// The `iptables-restore --noflush` script that makes the host's rules
/// berth's for `nets` and `ports`; `jumps` are the `(table, built-in
/// chain, berth chain)` jumps that exist already.
pub fn script(
    nets: &[NetRules],
    ports: &[PublishedPort],
    jumps: &[(String, String, String)],
) -> String {
    let rules = rules(nets, ports);
    let has = |table: &str, from: &str, to: &str| {
        jumps
            .iter()
            .any(|(t, f, c)| t == table && f == from && c == to)
    };
    let mut s = String::new();
    for table in ["raw", "filter", "nat"] {
        s.push_str(&format!("*{table}\n"));
        let chains = CHAINS.iter().filter(|(t, _, _)| *t == table);
        for (_, chain, _) in chains.clone() {
            s.push_str(&format!(":{chain} - [0:0]\n"));
        }
        for (_, chain, from) in chains {
            if nets.is_empty() {
                // Nothing left: the jumps go, then the emptied chains.
                for f in from.iter().filter(|f| has(table, f, chain)) {
                    s.push_str(&format!("-D {f} -j {chain}\n"));
                }
                s.push_str(&format!("-X {chain}\n"));
                continue;
            }
            for f in from.iter().filter(|f| !has(table, f, chain)) {
                s.push_str(&format!("-I {f} -j {chain}\n"));
            }
            let (_, lines) = rules
                .iter()
                .find(|(c, _)| c == chain)
                .expect("a chain of berth");
            for l in lines {
                s.push_str(&format!("-A {chain} {l}\n"));
            }
        }
        s.push_str("COMMIT\n");
    }
    s
}

/// The jumps to berth's chains in `iptables-save` output.
fn parse_jumps(saved: &str) -> Vec<(String, String, String)> {
    let mut table = String::new();
    let mut out = Vec::new();
    for line in saved.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let mut words = rule.split_whitespace();
            let (Some(from), Some("-j"), Some(to), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                continue;
            };
            if to.starts_with("BERTH-") && CHAINS.iter().any(|(_, c, _)| *c == to) {
                out.push((table.clone(), from.to_string(), to.to_string()));
            }
        }
    }
    out
}

/// Applies the rules for `nets` and `ports`.
pub fn apply(nets: &[NetRules], ports: &[PublishedPort]) -> Result<()> {
    if nets.iter().any(|n| n.subnet6.is_some()) {
        return Err(Error::Firewall(
            "networks with IPv6 need nftables (`nft`): the iptables backend is IPv4 only".into(),
        ));
    }
    let saved = run_tool("iptables-save", &[], None)?;
    let script = script(nets, ports, &parse_jumps(&saved));
    run_tool("iptables-restore", &["-w", "--noflush"], Some(&script)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets() -> Vec<NetRules> {
        crate::firewall::tests::two_networks()
    }

    #[test]
    fn golden_script() {
        let ports = [PublishedPort {
            host_ip: std::net::Ipv4Addr::UNSPECIFIED,
            host_port: 8080,
            container_ip: "10.1.0.2".parse().unwrap(),
            container_port: 80,
            protocol: "tcp".into(),
        }];
        let jumps = vec![("raw".into(), "PREROUTING".into(), "BERTH-GUARD".into())];
        let want = "*raw
:BERTH-GUARD - [0:0]
-A BERTH-GUARD ! -i lo -d 127.0.0.0/8 -j DROP
-A BERTH-GUARD -i lo -j RETURN
-A BERTH-GUARD -i vb+ -j RETURN
-A BERTH-GUARD -d 10.1.0.0/24 ! -i br-a -j DROP
-A BERTH-GUARD -d 10.2.0.0/24 ! -i br-b -j DROP
COMMIT
*filter
:BERTH-ISOLATE - [0:0]
-I FORWARD -j BERTH-ISOLATE
-A BERTH-ISOLATE -i br-a -o br-b -j DROP
-A BERTH-ISOLATE -i br-b -o br-a -j DROP
-A BERTH-ISOLATE -i br-b ! -o br-b -j DROP
-A BERTH-ISOLATE -o br-b ! -i br-b -j DROP
COMMIT
*nat
:BERTH-DNAT - [0:0]
:BERTH-SNAT - [0:0]
-I PREROUTING -j BERTH-DNAT
-I OUTPUT -j BERTH-DNAT
-A BERTH-DNAT -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.0.2:80
-I POSTROUTING -j BERTH-SNAT
-A BERTH-SNAT -s 10.1.0.0/24 ! -o br-a -j MASQUERADE
-A BERTH-SNAT -o br-a -s 127.0.0.0/8 -j MASQUERADE
-A BERTH-SNAT -o br-a -s 10.1.0.0/24 -d 10.1.0.0/24 -m conntrack --ctstate DNAT -j MASQUERADE
-A BERTH-SNAT -o br-b -s 127.0.0.0/8 -j MASQUERADE
-A BERTH-SNAT -o br-b -s 10.2.0.0/24 -d 10.2.0.0/24 -m conntrack --ctstate DNAT -j MASQUERADE
COMMIT
";
        assert_eq!(script(&nets(), &ports, &jumps), want);
    }

    #[test]
    fn the_last_network_takes_the_jumps_and_chains_with_it() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j BERTH-DNAT\n-A PREROUTING -j DOCKER\nCOMMIT\n*filter\n-A FORWARD -j BERTH-ISOLATE\nCOMMIT\n";
        let jumps = parse_jumps(saved);
        assert_eq!(jumps.len(), 2, "{jumps:?}");
        let s = script(&[], &[], &jumps);
        assert!(
            s.contains("-D PREROUTING -j BERTH-DNAT\n-X BERTH-DNAT\n"),
            "{s}"
        );
        assert!(
            s.contains("-D FORWARD -j BERTH-ISOLATE\n-X BERTH-ISOLATE\n"),
            "{s}"
        );
        assert!(!s.contains("-D OUTPUT"), "only jumps that exist: {s}");
    }
}
