//! `berth network …`: bridges, addresses and firewall rules, checked in the
//! kernel. Every test runs in a network namespace of its own, so nothing
//! touches the host's network and tests run in parallel.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sandbox::{Dir, Run};

/// A web server on port 8080 of the test image, serving `/www`.
const HTTPD: [&str; 7] = [
    "localhost/busybox-test",
    "httpd",
    "-f",
    "-p",
    "8080",
    "-h",
    "/www",
];

/// A network namespace, deleted on drop.
pub struct Netns(String);

impl Netns {
    pub fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "berth-e2e-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(
            ok.success(),
            "creating network namespace {name} (needs root)"
        );
        Netns(name)
    }

    /// Runs berth in the namespace. `nsenter --net` changes the network
    /// namespace only: `ip netns exec` would also give the command a mount
    /// namespace with a fresh /sys, where no cgroup filesystem is mounted.
    pub fn berth(&self, d: &Dir, root: &str, args: &[&str]) -> Run {
        self.berth_env(d, root, args, &[])
    }

    /// As [`Netns::berth`], with these environment variables set.
    pub fn berth_env(&self, d: &Dir, root: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = self
            .command(d, root, args)
            .envs(env.iter().copied())
            .output()
            .expect("run berth in the namespace");
        Run(out)
    }

    /// The command that runs berth in the namespace, in `d`, on state
    /// root `root`; nsenter with only --net execs berth itself, so signals
    /// reach berth.
    pub fn command(&self, d: &Dir, root: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.0))
            .args([env!("CARGO_BIN_EXE_berth"), "--root", root])
            .args(args)
            .current_dir(d.path());
        cmd
    }

    /// Starts berth in the namespace without waiting; output is piped.
    pub fn spawn(&self, d: &Dir, root: &str, args: &[&str]) -> std::process::Child {
        self.command(d, root, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start berth in the namespace")
    }

    /// The namespace's name (under /run/netns).
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Starts any command in the namespace without waiting.
    pub fn spawn_cmd(&self, args: &[&str]) -> std::process::Child {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.0))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a command in the namespace")
    }

    pub fn sh(&self, cmd: &str) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.0))
            .args(["sh", "-c", cmd])
            .output()
            .expect("run a command in the namespace");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn networks_get_a_bridge_an_address_and_firewall_rules_and_leave_nothing() {
    let d = Dir::new("net");
    let ns = Netns::new();
    let root = d.path().join("state").to_string_lossy().into_owned();
    ns.berth(&d, &root, &["network", "create", "front"]).ok();
    ns.berth(
        &d,
        &root,
        &[
            "network",
            "create",
            "--subnet",
            "10.77.0.0/24",
            "--internal",
            "-o",
            "com.docker.network.bridge.name=br-back",
            "back",
        ],
    )
    .ok();
    let front = ns.berth(&d, &root, &["network", "inspect", "front"]).json();
    let bridge = front[0]["Bridge"].as_str().unwrap().to_string();
    assert_eq!(front[0]["Subnet"], "172.17.0.0/16");

    let addrs = ns.sh("ip -o -4 addr show");
    assert!(
        addrs.contains(&format!("{bridge}    inet 172.17.0.1/16")),
        "{addrs}"
    );
    assert!(addrs.contains("br-back    inet 10.77.0.1/24"), "{addrs}");
    let rules = ns.sh("nft list table ip berth");
    assert!(
        rules.contains("ip saddr 172.17.0.0/16") && rules.contains("masquerade"),
        "{rules}"
    );
    assert!(
        !rules.contains("ip saddr 10.77.0.0/24"),
        "internal networks get no NAT: {rules}"
    );
    assert!(
        rules.contains(&format!("iifname \"{bridge}\" oifname \"br-back\" drop")),
        "{rules}"
    );
    assert_eq!(ns.sh("cat /proc/sys/net/ipv4/ip_forward"), "1\n");

    // Overlaps and duplicates are refused before anything changes.
    let err = ns
        .berth(
            &d,
            &root,
            &["network", "create", "--subnet", "10.77.0.128/25", "clash"],
        )
        .fails();
    assert!(err.contains("overlaps 10.77.0.0/24"), "{err}");
    let err = ns.berth(&d, &root, &["network", "create", "front"]).fails();
    assert!(err.contains("already exists"), "{err}");

    // Another tool flushes berth's table: the next berth command repairs it.
    ns.sh("nft flush ruleset");
    ns.berth(&d, &root, &["network", "create", "third"]).ok();
    let rules = ns.sh("nft list table ip berth");
    assert!(rules.contains("ip saddr 172.17.0.0/16"), "{rules}");

    for n in ["front", "back", "third"] {
        ns.berth(&d, &root, &["network", "rm", n]).ok();
    }
    assert_eq!(ns.sh("ip -o link show type bridge"), "", "no bridge left");
    assert_eq!(ns.sh("nft list tables"), "", "no firewall table left");
    assert_eq!(ns.berth(&d, &root, &["network", "ls", "-q"]).ok(), "");
}

#[test]
fn containers_on_a_network_reach_each_other_and_no_one_else() {
    let d = Dir::new("netrun");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    ns.berth(
        &d,
        &root,
        &["network", "create", "--subnet", "10.60.0.0/24", "front"],
    )
    .ok();
    ns.berth(
        &d,
        &root,
        &["network", "create", "--subnet", "10.61.0.0/24", "back"],
    )
    .ok();
    ns.berth(
        &d,
        &root,
        &[
            "container",
            "run",
            "-d",
            "--name",
            "a",
            "--network",
            "front",
            "localhost/busybox-test",
            "sleep",
            "100",
        ],
    )
    .ok();
    let a = ns.berth(&d, &root, &["network", "inspect", "front"]).json();
    let ids = ns.berth(&d, &root, &["container", "inspect", "a"]).json();
    let a_ip = a[0]["Leases"][ids[0]["Id"].as_str().unwrap()]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a_ip, "10.60.0.2");
    let script = format!(
        "ip -4 -o addr show eth0 | grep -o 'inet [0-9./]*'; ip route | grep default; ping -c1 -W2 {a_ip} >/dev/null && echo reached"
    );
    let out = ns
        .berth(
            &d,
            &root,
            &[
                "container",
                "run",
                "--rm",
                "--network",
                "front",
                "localhost/busybox-test",
                "sh",
                "-c",
                &script,
            ],
        )
        .ok();
    assert_eq!(
        out,
        "inet 10.60.0.3/24\ndefault via 10.60.0.1 dev eth0 \nreached\n"
    );
    let script = format!("ping -c1 -W1 {a_ip} >/dev/null && echo leaked || echo isolated");
    let out = ns
        .berth(
            &d,
            &root,
            &[
                "container",
                "run",
                "--rm",
                "--network",
                "back",
                "localhost/busybox-test",
                "sh",
                "-c",
                &script,
            ],
        )
        .ok();
    assert_eq!(out, "isolated\n");
    let err = ns
        .berth(
            &d,
            &root,
            &[
                "container",
                "run",
                "--rm",
                "--network",
                "nowhere",
                "localhost/busybox-test",
                "true",
            ],
        )
        .fails();
    assert!(err.contains("network nowhere not found"), "{err}");
    ns.berth(&d, &root, &["container", "rm", "-f", "a"]).ok();
    let leases = ns.berth(&d, &root, &["network", "inspect", "front"]).json();
    assert_eq!(leases[0]["Leases"], serde_json::json!({}));
    assert_eq!(ns.sh("ip -o link show type veth"), "", "no veth left");
    ns.berth(&d, &root, &["network", "rm", "front", "back"])
        .ok();
}

#[test]
fn containers_still_talk_where_docker_drops_forwarded_traffic() {
    let d = Dir::new("docker-user");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    // What dockerd leaves in the filter table: FORWARD drops by default and
    // jumps to DOCKER-USER first (bridged traffic passes there too).
    ns.sh("iptables -N DOCKER-USER && iptables -A DOCKER-USER -j RETURN && iptables -A FORWARD -j DOCKER-USER && iptables -P FORWARD DROP");
    d.write(
        "compose.yaml",
        r#"
name: coexist
services:
  web:
    image: localhost/busybox-test:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    init: true
  client:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let page = ns
        .berth(
            &d,
            &root,
            &[
                "exec",
                "client",
                "wget",
                "-qO-",
                "http://web:8080/index.html",
            ],
        )
        .ok();
    assert_eq!(page, "hello from berth-busybox\n");
    let rules = ns.sh("iptables -S");
    assert!(rules.contains("-A DOCKER-USER -j BERTH-FORWARD"), "{rules}");
    // It is berth's chain that lets them through: emptied, Docker's policy
    // drops their traffic.
    ns.sh("iptables -F BERTH-FORWARD");
    let blocked = ns
        .berth(
            &d,
            &root,
            &[
                "exec",
                "client",
                "sh",
                "-c",
                "timeout 2 wget -qO- http://web:8080/index.html || echo unreachable",
            ],
        )
        .ok();
    assert_eq!(blocked, "unreachable\n");
    ns.berth(&d, &root, &["down"]).ok();
    let rules = ns.sh("iptables -S");
    assert!(!rules.contains("BERTH"), "left after down: {rules}");
    assert!(
        rules.contains("-A DOCKER-USER -j RETURN"),
        "Docker's own rules stay: {rules}"
    );
}

#[test]
fn static_addresses_and_aliases_apply_per_network() {
    let d = Dir::new("static-ip");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: fixed
services:
  api:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    networks:
      back:
        ipv4_address: 10.97.1.50
        aliases: [backend]
      front:
        mac_address: 02:42:ac:11:00:99
  client:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    mac_address: 02:42:0a:61:01:77
    networks: [back]
  outsider:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    networks: [front]
networks:
  back:
    ipam:
      config:
        - subnet: 10.97.1.0/24
          ip_range: 10.97.1.128/25
          aux_addresses:
            router: 10.97.1.129
  front: {}
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let lookup = |svc: &str, name: &str| {
        ns.berth(&d, &root, &["exec", svc, "nslookup", name])
            .stdout()
    };
    let found = lookup("client", "backend");
    assert!(found.contains("10.97.1.50"), "{found}");
    let addrs = ns
        .berth(&d, &root, &["exec", "api", "ip", "-o", "-4", "addr"])
        .ok();
    assert!(addrs.contains("10.97.1.50/24"), "{addrs}");
    // Its hostname names its address on its first network, as with Docker
    // (`/etc/hosts`' last line).
    let own = ns.berth(&d, &root, &["exec", "api", "hostname", "-i"]).ok();
    assert_eq!(own, "10.97.1.50\n");
    // Automatic addresses come from the ip range, past the reserved one.
    let addrs = ns
        .berth(&d, &root, &["exec", "client", "ip", "-o", "-4", "addr"])
        .ok();
    assert!(addrs.contains("10.97.1.130/24"), "{addrs}");
    // MAC addresses: per network, and the service's own on its network.
    let links = ns
        .berth(&d, &root, &["exec", "api", "ip", "-o", "link"])
        .ok();
    assert!(links.contains("link/ether 02:42:ac:11:00:99"), "{links}");
    let links = ns
        .berth(&d, &root, &["exec", "client", "ip", "-o", "link"])
        .ok();
    assert!(links.contains("link/ether 02:42:0a:61:01:77"), "{links}");
    // docker inspect's shape and --format templates.
    let shown = ns
        .berth(
            &d,
            &root,
            &[
                "container",
                "inspect",
                "-f",
                "{{.Name}} {{.State.Status}} {{.NetworkSettings.Networks.fixed_back.IPAddress}} {{json .NetworkSettings.Networks.fixed_front.MacAddress}}",
                "fixed-api-1",
            ],
        )
        .ok();
    assert_eq!(
        shown,
        "/fixed-api-1 running 10.97.1.50 \"02:42:ac:11:00:99\"\n"
    );
    // The alias is a name on `back` only.
    let missing = lookup("outsider", "backend");
    assert!(!missing.contains("10.97.1.50"), "{missing}");
    // A taken address is an error that names it.
    d.write(
        "other.yaml",
        r#"
name: fixed
services:
  twin:
    image: localhost/busybox-test:latest
    command: ["sleep", "30"]
    networks:
      back:
        ipv4_address: 10.97.1.50
networks:
  back:
    ipam:
      config:
        - subnet: 10.97.1.0/24
"#,
    );
    let err = ns
        .berth(
            &d,
            &root,
            &["-f", "compose.yaml", "-f", "other.yaml", "up", "-d"],
        )
        .fails();
    assert!(err.contains("10.97.1.50 is already in use"), "{err}");
    d.write(
        "bad-mac.yaml",
        "services:\n  client:\n    mac_address: 01:00:5e:00:00:01\n",
    );
    let err = ns
        .berth(
            &d,
            &root,
            &["-f", "compose.yaml", "-f", "bad-mac.yaml", "up", "-d"],
        )
        .fails();
    assert!(
        err.contains("service client: mac_address: \"01:00:5e:00:00:01\" is a multicast"),
        "{err}"
    );
    ns.berth(
        &d,
        &root,
        &["-f", "compose.yaml", "-f", "other.yaml", "down"],
    )
    .ok();
}

#[test]
fn a_running_container_connects_to_and_disconnects_from_a_network() {
    let d = Dir::new("connect");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    let run = |args: &[&str]| ns.berth(&d, &root, args);
    run(&["network", "create", "--subnet", "10.98.1.0/24", "side"]).ok();
    run(&[
        "container",
        "run",
        "-d",
        "--name",
        "app",
        "--init",
        "localhost/busybox-test",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
    ])
    .ok();
    run(&[
        "network",
        "connect",
        "--alias",
        "web",
        "--ip",
        "10.98.1.40",
        "side",
        "app",
    ])
    .ok();
    let addrs = run(&["container", "exec", "app", "ip", "-o", "-4", "addr"]).ok();
    assert!(addrs.contains("10.98.1.40/24"), "{addrs}");
    let fetch = || {
        run(&[
            "container",
            "run",
            "--rm",
            "--network",
            "side",
            "localhost/busybox-test",
            "sh",
            "-c",
            "wget -qO- http://web:8080/index.html || echo unreachable",
        ])
        .ok()
    };
    assert_eq!(fetch(), "hello from berth-busybox\n");
    let err = run(&["network", "connect", "side", "app"]).fails();
    assert!(err.contains("already connected"), "{err}");
    // Renamed, it answers to its new name at once.
    run(&["container", "rename", "app", "renamed"]).ok();
    let by_name = run(&[
        "container",
        "run",
        "--rm",
        "--network",
        "side",
        "localhost/busybox-test",
        "wget",
        "-qO-",
        "http://renamed:8080/index.html",
    ])
    .ok();
    assert_eq!(by_name, "hello from berth-busybox\n");
    run(&["container", "rename", "renamed", "app"]).ok();

    run(&["network", "disconnect", "side", "app"]).ok();
    let addrs = run(&["container", "exec", "app", "ip", "-o", "-4", "addr"]).ok();
    assert!(!addrs.contains("10.98.1.40"), "{addrs}");
    assert_eq!(fetch(), "unreachable\n");
    let leases = run(&["network", "inspect", "side"]).ok();
    assert!(
        !leases.contains("10.98.1.40"),
        "the address went back: {leases}"
    );
    run(&["container", "rm", "-f", "app"]).ok();
    run(&["network", "rm", "side"]).ok();
}

#[test]
fn ipv4_networks_carry_no_ipv6_and_dns_answers_only_its_own_containers() {
    let d = Dir::new("net-hardening");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    d.write(
        "compose.yaml",
        r#"
name: hardened
services:
  app:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
  locked:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    networks: [sealed]
networks:
  sealed:
    internal: true
"#,
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    // NET-14: no IPv6 inside, not even link-local.
    let v6 = ns
        .berth(&d, &root, &["exec", "app", "ip", "-6", "addr"])
        .ok();
    assert_eq!(v6, "", "{v6}");
    let off = ns
        .berth(
            &d,
            &root,
            &[
                "exec",
                "app",
                "cat",
                "/proc/sys/net/ipv6/conf/eth0/disable_ipv6",
            ],
        )
        .ok();
    assert_eq!(off, "1\n");
    // NET-13: the host takes no router advertisements through the bridge.
    let net = ns
        .berth(&d, &root, &["network", "inspect", "hardened_default"])
        .json();
    let bridge = net[0]["Bridge"]
        .as_str()
        .or(net[0]["bridge"].as_str())
        .unwrap()
        .to_string();
    let gateway = net[0]["Gateway"]
        .as_str()
        .or(net[0]["gateway"].as_str())
        .unwrap()
        .to_string();
    assert_eq!(
        ns.sh(&format!("cat /proc/sys/net/ipv6/conf/{bridge}/accept_ra")),
        "0\n"
    );
    // NET-19: berth's listeners are on gateway addresses only.
    let listening = ns.sh("ss -Hlnup");
    for line in listening.lines() {
        let local = line.split_whitespace().nth(3).unwrap_or_default();
        assert!(
            !local.starts_with("0.0.0.0") && !local.starts_with('*') && !local.starts_with("[::]"),
            "a wildcard listener: {line}"
        );
    }
    assert!(listening.contains(&format!("{gateway}:53")), "{listening}");
    // NET-07: an internal network's names never leave it.
    let out = ns
        .berth(&d, &root, &["exec", "locked", "nslookup", "exfil.example"])
        .stdout();
    assert!(out.contains("NXDOMAIN"), "answered locally: {out}");
    // NET-08: the host itself (its gateway address) gets no answer.
    let host = ns.sh(&format!("timeout 3 busybox nslookup app {gateway} 2>&1"));
    assert!(
        !host.contains("Address: 1"),
        "the DNS server answered the host: {host}"
    );
    ns.berth(&d, &root, &["down"]).ok();
}

#[test]
fn a_neighbour_reaches_published_ports_only() {
    // NET-01, NET-02: `lan` is a neighbour that routes to the host (the
    // test's namespace) for the project's subnet.
    let d = Dir::new("neighbour");
    let host = Netns::new();
    let lan = Netns::new();
    let root = crate::container::busybox_root(&d);
    host.sh(&format!(
        "ip link add berth-lanh type veth peer name berth-lanp netns {lan} && ip addr add 192.168.77.1/24 dev berth-lanh && ip link set berth-lanh up && ip link set lo up",
        lan = lan.name()
    ));
    lan.sh("ip addr add 192.168.77.2/24 dev berth-lanp && ip link set berth-lanp up && ip link set lo up");
    d.write(
        "compose.yaml",
        r#"
name: exposed
services:
  web:
    image: localhost/busybox-test:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    init: true
    ports:
      - "127.0.0.1:18080:8080"
      - "18081:8080"
networks:
  default:
    ipam:
      config:
        - subnet: 10.99.3.0/24
"#,
    );
    host.berth(&d, &root, &["up", "-d"]).ok();
    lan.sh("ip route add 10.99.3.0/24 via 192.168.77.1");
    let fetch = |ns: &Netns, url: &str| {
        ns.sh(&format!(
            "timeout 2 busybox wget -qO- {url} 2>/dev/null || echo unreachable"
        ))
    };
    let page = "hello from berth-busybox\n";
    // The host itself reaches both publications.
    assert_eq!(fetch(&host, "http://127.0.0.1:18080/index.html"), page);
    // The neighbour: the port published on all addresses, through the
    // host's address …
    assert_eq!(fetch(&lan, "http://192.168.77.1:18081/index.html"), page);
    // … but not the loopback publication, nor the container directly, nor
    // the gateway's DNS.
    assert_eq!(
        fetch(&lan, "http://192.168.77.1:18080/index.html"),
        "unreachable\n"
    );
    assert_eq!(
        fetch(&lan, "http://10.99.3.2:8080/index.html"),
        "unreachable\n"
    );
    let dns = lan.sh("timeout 2 busybox nslookup web 10.99.3.1 2>&1");
    assert!(!dns.contains("10.99.3.2"), "{dns}");
    // It is berth's guard that stops them: without it, the container
    // answers the neighbour directly.
    host.sh("nft flush chain ip berth guard");
    assert_eq!(fetch(&lan, "http://10.99.3.2:8080/index.html"), page);
    host.berth(&d, &root, &["down"]).ok();
}

#[test]
fn firewall_rules_come_back_after_an_outside_flush_and_racing_projects_leave_none() {
    let d = Dir::new("fw-drift");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    ns.sh("ip link set lo up");
    let project = |name: &str, port: u16| {
        format!(
            r#"
name: {name}
services:
  web:
    image: localhost/busybox-test:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    init: true
    ports:
      - "{port}:8080"
"#
        )
    };
    d.write("stable/compose.yaml", &project("stable", 18500));
    let stable = ["-f", "stable/compose.yaml"];
    let with = |base: &[&'static str], more: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(more).copied().collect()
    };
    ns.berth(&d, &root, &with(&stable, &["up", "-d"])).ok();
    let fetch = || {
        ns.sh("timeout 2 busybox wget -qO- http://127.0.0.1:18500/index.html 2>/dev/null || echo unreachable")
    };
    let page = "hello from berth-busybox\n";
    assert_eq!(fetch(), page);
    // (a) A firewall reload wipes berth's table: the next `up`, with
    // nothing else to do, puts it back.
    ns.sh("nft delete table ip berth");
    assert_eq!(fetch(), "unreachable\n");
    ns.berth(&d, &root, &with(&stable, &["up", "-d"])).ok();
    assert_eq!(fetch(), page);

    // (b) 50 up/down runs of ten projects at once, while the table is
    // flushed and re-applied in a loop: nothing of them is left.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                ns.sh("nft flush table ip berth");
                ns.berth(&d, &root, &with(&stable, &["up", "-d"])).ok();
            }
        });
        let workers: Vec<_> = (0..10u16)
            .map(|i| {
                let file = format!("p{i}/compose.yaml");
                d.write(&file, &project(&format!("racer{i}"), 18600 + i));
                let d = &d;
                let ns = &ns;
                let root = &root;
                s.spawn(move || {
                    for _ in 0..5 {
                        ns.berth(d, root, &["-f", &file, "up", "-d"]).ok();
                        ns.berth(d, root, &["-f", &file, "down"]).ok();
                    }
                })
            })
            .collect();
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        stop.store(true, Ordering::Relaxed);
        for r in results {
            if let Err(panic) = r {
                std::panic::resume_unwind(panic);
            }
        }
    });
    ns.berth(&d, &root, &with(&stable, &["up", "-d"])).ok();
    let table = ns.sh("nft list table ip berth");
    assert!(!table.contains("186"), "a racer's port is left: {table}");
    let bridges = ns.sh("ip -o link show type bridge");
    assert_eq!(bridges.lines().count(), 1, "{bridges}");
    let bridge = bridges.split(':').nth(1).unwrap().trim();
    for line in table.lines().filter(|l| l.contains("\"br-")) {
        assert!(
            line.contains(bridge),
            "a rule of a gone network: {line}\n{table}"
        );
    }
    assert_eq!(fetch(), page);
    ns.berth(&d, &root, &with(&stable, &["down"])).ok();
    assert_eq!(
        ns.sh("nft list tables"),
        "",
        "the table goes with the last network"
    );
}

#[test]
fn the_iptables_backend_isolates_publishes_and_leaves_nothing() {
    let d = Dir::new("iptables");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    ns.sh("ip link set lo up");
    d.write(
        "compose.yaml",
        r#"
name: ipt
services:
  web:
    image: localhost/busybox-test:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    init: true
    networks: [front]
    ports:
      - "18700:8080"
  other:
    image: localhost/busybox-test:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    networks: [back]
networks:
  front:
    ipam:
      config:
        - subnet: 10.95.1.0/24
  back:
    ipam:
      config:
        - subnet: 10.95.2.0/24
"#,
    );
    let env = [("BERTH_FIREWALL", "iptables")];
    let berth = |args: &[&str]| ns.berth_env(&d, &root, args, &env);
    berth(&["up", "-d"]).ok();
    let saved = ns.sh("iptables-save");
    for chain in ["BERTH-GUARD", "BERTH-ISOLATE", "BERTH-DNAT", "BERTH-SNAT"] {
        assert!(saved.contains(&format!("-j {chain}")), "{chain}: {saved}");
    }
    assert_eq!(ns.sh("nft list tables | grep -c 'ip berth'").trim(), "0");
    let page = "hello from berth-busybox\n";
    let host = ns.sh("timeout 2 busybox wget -qO- http://127.0.0.1:18700/index.html 2>/dev/null || echo unreachable");
    assert_eq!(host, page);
    // The other network cannot reach the web container.
    let direct = berth(&[
        "exec",
        "other",
        "sh",
        "-c",
        "timeout 2 wget -qO- http://10.95.1.2:8080/index.html 2>/dev/null || echo isolated",
    ])
    .ok();
    assert_eq!(direct, "isolated\n");
    // Applying again changes nothing: one jump per chain.
    berth(&["up", "-d"]).ok();
    let saved = ns.sh("iptables-save");
    assert_eq!(
        saved.matches("-A FORWARD -j BERTH-ISOLATE").count(),
        1,
        "{saved}"
    );
    berth(&["down"]).ok();
    let saved = ns.sh("iptables-save");
    assert!(!saved.contains("BERTH"), "{saved}");
}

#[test]
fn ipv6_networks_give_addresses_names_and_isolation() {
    let d = Dir::new("ipv6");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    let idle = r#"["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]"#;
    d.write(
        "compose.yaml",
        &format!(
            r#"
name: six
services:
  a:
    image: localhost/busybox-test:latest
    command: {idle}
    networks: [dual]
  b:
    image: localhost/busybox-test:latest
    command: {idle}
    networks:
      dual:
        ipv6_address: fd00:db8:97::50
  c:
    image: localhost/busybox-test:latest
    command: {idle}
    networks: [other]
networks:
  dual:
    enable_ipv6: true
    ipam:
      config:
        - subnet: 10.97.6.0/24
        - subnet: fd00:db8:97::/64
  other:
    enable_ipv6: true
"#
        ),
    );
    ns.berth(&d, &root, &["up", "-d"]).ok();
    let exec = |svc: &str, cmd: &str| ns.berth(&d, &root, &["exec", svc, "sh", "-c", cmd]);
    let addrs = exec("b", "ip -6 -o addr show dev eth0").ok();
    assert!(addrs.contains("fd00:db8:97::50/64"), "{addrs}");
    // Names resolve to both families; the IPv6 path works, gateway included.
    let aaaa = exec("a", "nslookup -type=AAAA b").ok();
    assert!(aaaa.contains("fd00:db8:97::50"), "{aaaa}");
    exec("a", "ping -6 -c1 -W2 fd00:db8:97::50").ok();
    exec("a", "ping -6 -c1 -W2 fd00:db8:97::1").ok();
    let route = exec("a", "ip -6 route show default").ok();
    assert!(route.contains("via fd00:db8:97::1"), "{route}");
    // A network with IPv6 and no subnet gets a unique local one.
    let other = exec("c", "ip -6 -o addr show dev eth0 scope global").ok();
    assert!(other.contains(" fd"), "{other}");
    // Isolation holds over IPv6 too (NET-05, NET-14).
    let crossed = exec(
        "c",
        "ping -6 -c1 -W1 fd00:db8:97::50 >/dev/null 2>&1 && echo leaked || echo isolated",
    )
    .ok();
    assert_eq!(crossed, "isolated\n");
    let table = ns.sh("nft list table ip6 berth");
    assert!(table.contains("fd00:db8:97::/64"), "{table}");
    ns.berth(&d, &root, &["down"]).ok();
    assert_eq!(ns.sh("nft list tables"), "");
    assert!(
        !ns.sh("ip -6 -o addr").contains("fd00:db8:97"),
        "the bridge's address goes"
    );
}

#[test]
fn a_published_range_takes_its_first_free_port() {
    let d = Dir::new("port-range");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    ns.sh("ip link set lo up");
    // Something else holds the range's first port.
    let mut holder = ns.spawn_cmd(&["busybox", "nc", "-l", "-p", "18180"]);
    d.write(
        "compose.yaml",
        r#"
name: ranged
services:
  web:
    image: localhost/busybox-test:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    init: true
    ports:
      - "18180-18182:8080"
"#,
    );
    let mut up = ns.berth(&d, &root, &["up", "-d"]);
    for _ in 0..20 {
        // nc may not listen yet: then the first port is free, and taken.
        if ns.berth(&d, &root, &["port", "web", "8080"]).ok() == "0.0.0.0:18181\n" {
            break;
        }
        ns.berth(&d, &root, &["down"]).ok();
        std::thread::sleep(std::time::Duration::from_millis(100));
        up = ns.berth(&d, &root, &["up", "-d"]);
    }
    up.ok();
    assert_eq!(
        ns.berth(&d, &root, &["port", "web", "8080"]).ok(),
        "0.0.0.0:18181\n"
    );
    let page = ns.sh("timeout 2 busybox wget -qO- http://127.0.0.1:18181/index.html 2>/dev/null || echo unreachable");
    assert_eq!(page, "hello from berth-busybox\n");
    ns.berth(&d, &root, &["down"]).ok();
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn a_neighbour_cannot_route_to_containers_over_ipv6() {
    // NET-02 over IPv6 (NET-14): `lan` routes the project's IPv6 subnet
    // through the host (the test's namespace).
    let d = Dir::new("neighbour6");
    let host = Netns::new();
    let lan = Netns::new();
    let root = crate::container::busybox_root(&d);
    host.sh(&format!(
        "ip link add berth-lan6h type veth peer name berth-lan6p netns {lan} && ip -6 addr add fd00:77::1/64 dev berth-lan6h nodad && ip link set berth-lan6h up && ip link set lo up",
        lan = lan.name()
    ));
    lan.sh("ip -6 addr add fd00:77::2/64 dev berth-lan6p nodad && ip link set berth-lan6p up && ip link set lo up && ip -6 route add fd00:db8:99::/64 via fd00:77::1");
    d.write(
        "compose.yaml",
        r#"
name: six-guarded
services:
  web:
    image: localhost/busybox-test:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    init: true
networks:
  default:
    enable_ipv6: true
    ipam:
      config:
        - subnet: 10.99.6.0/24
        - subnet: fd00:db8:99::/64
"#,
    );
    host.berth(&d, &root, &["up", "-d"]).ok();
    let probe =
        "busybox ping -6 -c1 -W1 fd00:db8:99::2 >/dev/null 2>&1 && echo reached || echo dropped";
    assert_eq!(lan.sh(probe), "dropped\n");
    let fetch = "timeout 2 busybox wget -qO- 'http://[fd00:db8:99::2]:8080/index.html' 2>/dev/null || echo unreachable";
    assert_eq!(lan.sh(fetch), "unreachable\n");
    // It is berth's guard that stops them.
    host.sh("nft flush chain ip6 berth guard");
    assert_eq!(lan.sh(probe), "reached\n");
    host.berth(&d, &root, &["down"]).ok();
}

#[test]
fn container_run_publishes_a_port_that_container_port_names() {
    let d = Dir::new("container-port");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    ns.sh("ip link set lo up");
    let run = |args: &[&str]| ns.berth(&d, &root, args);
    run(&["network", "create", "--subnet", "10.98.7.0/24", "pubnet"]).ok();
    run(&[
        "container",
        "run",
        "-d",
        "--name",
        "pub",
        "--network",
        "pubnet",
        "-h",
        "webhost",
        "-p",
        "127.0.0.1:18390:8080",
        "--init",
        "localhost/busybox-test",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
    ])
    .ok();
    assert_eq!(
        run(&["container", "port", "pub"]).ok(),
        "8080/tcp -> 127.0.0.1:18390\n"
    );
    assert_eq!(
        run(&["container", "port", "pub", "8080/tcp"]).ok(),
        "127.0.0.1:18390\n"
    );
    let err = run(&["container", "port", "pub", "9999"]).fails();
    assert!(err.contains("no public port '9999/tcp'"), "{err}");
    assert_eq!(
        run(&["container", "exec", "pub", "hostname"]).ok(),
        "webhost\n"
    );
    let page = ns.sh("timeout 2 busybox wget -qO- http://127.0.0.1:18390/index.html 2>&1");
    assert_eq!(page, "hello from berth-busybox\n");
    run(&["container", "rm", "-f", "pub"]).ok();
}

/// Two state roots in one network namespace share its firewall: neither
/// overwrites the other's rules, a host port one publishes is taken for the
/// other, and their networks are isolated from each other as from their
/// own.
#[test]
fn two_state_roots_in_one_namespace_keep_each_others_rules() {
    let d = Dir::new("two-roots");
    let ns = Netns::new();
    ns.sh("ip link set lo up");
    let a = crate::container::busybox_root(&d);
    let b = d.path().join("state-b").to_string_lossy().into_owned();
    crate::container::import_image(
        &d,
        &b,
        crate::container::busybox_tar(&[]),
        "localhost/busybox-test:latest",
    );
    let serve = |root: &str, name: &str, net: &str, publish: &str| {
        let mut args = vec!["container", "run", "-d", "--init", "--name", name];
        args.extend(["--network", net]);
        if !publish.is_empty() {
            args.extend(["-p", publish]);
        }
        args.extend(HTTPD);
        ns.berth(&d, root, &args)
    };
    let bridge = |root: &str, net: &str| {
        ns.berth(&d, root, &["network", "inspect", net]).json()[0]["Bridge"]
            .as_str()
            .unwrap()
            .to_string()
    };
    ns.berth(
        &d,
        &a,
        &["network", "create", "--subnet", "10.97.1.0/24", "na"],
    )
    .ok();
    ns.berth(
        &d,
        &b,
        &["network", "create", "--subnet", "10.97.2.0/24", "nb"],
    )
    .ok();
    let (bra, brb) = (bridge(&a, "na"), bridge(&b, "nb"));
    serve(&a, "web-a", "na", "127.0.0.1:18391:8080").ok();
    serve(&b, "web-b", "nb", "").ok();
    let table = ns.sh("nft list table ip berth");
    for want in [
        format!("iifname \"{bra}\" oifname \"{brb}\" drop"),
        format!("iifname \"{brb}\" oifname \"{bra}\" drop"),
        "dport 18391 dnat to 10.97.1.2:8080".to_string(),
    ] {
        assert!(table.contains(&want), "{want} missing:\n{table}");
    }
    let err = serve(&b, "thief", "nb", "127.0.0.1:18391:8080").fails();
    assert!(err.contains("already allocated"), "{err}");
    let page = ns.sh("timeout 2 busybox wget -qO- http://127.0.0.1:18391/index.html 2>&1");
    assert_eq!(page, "hello from berth-busybox\n");
    // The same address inside the root's own network answers, the other
    // root's does not.
    let fetch = |url: &str| {
        let script = format!("timeout 2 wget -qO- {url} 2>/dev/null || echo unreachable");
        ns.berth(&d, &b, &["container", "exec", "web-b", "sh", "-c", &script])
            .ok()
    };
    assert_eq!(
        fetch("http://10.97.2.2:8080/index.html"),
        "hello from berth-busybox\n"
    );
    assert_eq!(fetch("http://10.97.1.2:8080/index.html"), "unreachable\n");
    ns.berth(&d, &a, &["container", "rm", "-f", "web-a"]).ok();
    ns.berth(&d, &a, &["network", "rm", "na"]).ok();
    let table = ns.sh("nft list table ip berth");
    assert!(!table.contains(&bra) && !table.contains("18391"), "{table}");
    assert!(
        table.contains(&format!(
            "ip saddr 10.97.2.0/24 oifname != \"{brb}\" masquerade"
        )),
        "{table}"
    );
    ns.berth(&d, &b, &["container", "rm", "-f", "web-b"]).ok();
    ns.berth(&d, &b, &["network", "rm", "nb"]).ok();
    assert_eq!(ns.sh("nft list tables"), "", "no firewall table left");
}

/// `container run` without `--network` joins the default bridge, as
/// `docker run` does: made when first needed, a published port answers
/// through it, its containers reach each other and the outside by address,
/// and, as Docker's, it has no embedded DNS (the host's name servers).
#[test]
fn container_run_without_a_network_joins_the_default_bridge() {
    let d = Dir::new("default-bridge");
    let ns = Netns::new();
    let root = crate::container::busybox_root(&d);
    ns.sh("ip link set lo up");
    let run = |args: &[&str]| ns.berth(&d, &root, args);
    let mut args = vec!["container", "run", "-d", "--init", "--name", "web"];
    args.extend(["-p", "127.0.0.1:18393:8080"]);
    args.extend(HTTPD);
    run(&args).ok();
    let page = ns.sh("timeout 2 busybox wget -qO- http://127.0.0.1:18393/index.html 2>&1");
    assert_eq!(page, "hello from berth-busybox\n");
    let net = run(&["network", "inspect", "bridge"]).json();
    let (subnet, gateway, bridge) = (
        net[0]["Subnet"].as_str().unwrap().to_string(),
        net[0]["Gateway"].as_str().unwrap().to_string(),
        net[0]["Bridge"].as_str().unwrap().to_string(),
    );
    assert_eq!(subnet, "172.17.0.0/16", "Docker's first pool, free here");
    let ip = run(&[
        "container",
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Gateway}} {{.HostConfig.NetworkMode}}",
        "web",
    ])
    .ok();
    assert_eq!(ip, format!("172.17.0.2 {gateway} bridge\n"));
    // Another container (`--network default` names the same network)
    // reaches it by address; the name servers are the host's.
    let out = run(&[
        "container",
        "run",
        "--rm",
        "--network",
        "default",
        "localhost/busybox-test",
        "sh",
        "-c",
        "timeout 2 wget -qO- http://172.17.0.2:8080/index.html; cat /etc/resolv.conf; ip -4 route",
    ])
    .ok();
    assert!(out.starts_with("hello from berth-busybox\n"), "{out}");
    assert!(!out.contains(&format!("nameserver {gateway}")), "{out}");
    assert!(
        out.contains(&format!("default via {gateway} dev eth0")),
        "{out}"
    );
    let gw_hex = format!(
        "{:08X}:0035",
        u32::from_ne_bytes(gateway.parse::<std::net::Ipv4Addr>().unwrap().octets())
    );
    assert!(
        !ns.sh("cat /proc/net/udp").contains(&gw_hex),
        "no DNS server on the default bridge"
    );
    // As `docker run`: addresses and aliases are a user network's.
    let err = run(&[
        "container",
        "run",
        "--rm",
        "--ip",
        "172.17.0.9",
        "localhost/busybox-test",
        "true",
    ])
    .fails();
    assert!(
        err.contains("user specified IP address is supported on user defined networks only"),
        "{err}"
    );
    let err = run(&[
        "container",
        "run",
        "--rm",
        "--network-alias",
        "x",
        "localhost/busybox-test",
        "true",
    ])
    .fails();
    assert!(
        err.contains("network-scoped alias is supported only"),
        "{err}"
    );
    // A bridge removed by hand comes back for the next start.
    run(&["container", "stop", "-t", "1", "web"]).ok();
    ns.sh(&format!("ip link del {bridge}"));
    run(&["container", "start", "web"]).ok();
    // (httpd listens a moment after its start.)
    let page = (0..20)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            ns.sh("timeout 2 busybox wget -qO- http://127.0.0.1:18393/index.html 2>&1")
        })
        .find(|p| p == "hello from berth-busybox\n");
    assert!(
        page.is_some(),
        "the published port answers after the restart"
    );
    run(&["container", "rm", "-f", "web"]).ok();
    // Compose's `network_mode: bridge` is the same network; `down` leaves
    // it, as Docker Compose leaves Docker's.
    d.write(
        "compose.yaml",
        "services:\n  app:\n    image: localhost/busybox-test\n    network_mode: bridge\n    init: true\n    command: sleep 30\n",
    );
    run(&["up", "-d"]).ok();
    let route = run(&["exec", "-T", "app", "ip", "-4", "route"]).ok();
    assert!(
        route.contains(&format!("default via {gateway} dev eth0")),
        "{route}"
    );
    run(&["down"]).ok();
    assert_eq!(run(&["network", "ls", "-q"]).ok(), "bridge\n");
    let err = run(&["network", "create", "bridge"]).fails();
    assert!(err.contains("predefined bridge network"), "{err}");
    run(&["network", "rm", "bridge"]).ok();
    assert_eq!(ns.sh("ip -br link | grep -c br-").trim(), "0");
    assert_eq!(ns.sh("nft list tables"), "", "no firewall table left");
}
