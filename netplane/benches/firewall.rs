//! How long one change of berth's firewall rules takes with each backend:
//! the whole rule set for 10 networks with 3 published ports each, applied
//! 30 times with `nft -f` and with `iptables-save` + `iptables-restore`,
//! in a network namespace of the benchmark's own (needs root). Prints the
//! medians and their ratio.

use std::time::{Duration, Instant};

use berth_netplane::firewall::{self, NetRules};
use berth_netplane::iptables;
use berth_netplane::ports::PublishedPort;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // SAFETY: nothing else runs yet in this single-threaded process, and a
    // new network namespace changes no memory the program relies on.
    let fresh = unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) };
    if let Err(e) = fresh {
        eprintln!("firewall bench: needs root to make a network namespace ({e}); skipped");
        return;
    }
    let nets: Vec<NetRules> = (0..10)
        .map(|i| NetRules {
            bridge: format!("br-bench{i}"),
            subnet: format!("10.200.{i}.0/24"),
            internal: i == 9,
            subnet6: None,
        })
        .collect();
    let ports: Vec<PublishedPort> = (0..30u16)
        .map(|i| PublishedPort {
            host_ip: std::net::Ipv4Addr::UNSPECIFIED,
            host_port: 20000 + i,
            container_ip: format!("10.200.{}.2", i / 3).parse().unwrap(),
            container_port: 80,
            protocol: "tcp".into(),
        })
        .collect();
    let rounds = 30;
    let time = |apply: &dyn Fn() -> berth_netplane::error::Result<()>| {
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                apply().expect("applying the rules");
                t.elapsed()
            })
            .collect::<Vec<_>>()
    };
    let nft = median(time(&|| {
        firewall::apply(&firewall::ruleset_with_ports(&nets, &ports))
    }));
    firewall::apply(&firewall::ruleset(&[])).expect("removing the nft table");
    let ipt = median(time(&|| iptables::apply(&nets, &ports)));
    iptables::apply(&[], &[]).expect("removing the iptables chains");
    println!("firewall change, 10 networks and 30 ports, median of {rounds}:");
    println!("  nftables (nft -f)                      {nft:?}");
    println!("  iptables (iptables-save + -restore)    {ipt:?}");
    println!(
        "  iptables / nftables                    {:.2}x",
        ipt.as_secs_f64() / nft.as_secs_f64()
    );
}
