//! The embedded DNS server: `berth __dns`, one single-threaded process that
//! runs while some network with DNS exists (all but the default bridge).
//! It listens on each such network's gateway
//! address only (never on host-wide addresses), answers containers of that
//! network with the names of the containers on *that* network (service
//! names with every replica, container names, aliases), and forwards every
//! other name to the host's resolvers. Queries from outside a network's
//! subnet are refused. Records are re-read as soon as the network records
//! change, so names follow containers as they come and go.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use rustix::event::{PollFd, PollFlags, poll};

use crate::ipam::Subnet;
use crate::store::{NetworkRecord, Networks};

/// The names of one network: lower-case name → addresses (IPv4 and, on
/// a network with IPv6, IPv6).
pub type Zone = BTreeMap<String, Vec<IpAddr>>;

/// The zone of a network, from its leases and their names.
pub fn zone(net: &NetworkRecord) -> Zone {
    let mut z: Zone = BTreeMap::new();
    let leases = net
        .leases
        .iter()
        .map(|(c, ip)| (c, IpAddr::V4(*ip)))
        .chain(net.leases6.iter().map(|(c, ip)| (c, IpAddr::V6(*ip))));
    for (container, ip) in leases {
        for name in net.names.get(container).into_iter().flatten() {
            let e = z.entry(name.to_ascii_lowercase()).or_default();
            if !e.contains(&ip) {
                e.push(ip);
            }
        }
    }
    for ips in z.values_mut() {
        ips.sort();
    }
    z
}

/// The answer to `query` from `zone`, or `None` when the name is not ours
/// (to be forwarded).
pub fn answer(query: &Message, zone: &Zone) -> Option<Message> {
    let q = query.queries.first()?;
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ips = zone.get(&name)?;
    let mut resp = Message::response(query.metadata.id, OpCode::Query);
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    resp.add_query(q.clone());
    let t = q.query_type();
    for ip in ips {
        let rdata = match ip {
            IpAddr::V4(v4) if matches!(t, RecordType::A | RecordType::ANY) => RData::A(A(*v4)),
            IpAddr::V6(v6) if matches!(t, RecordType::AAAA | RecordType::ANY) => {
                RData::AAAA(AAAA(*v6))
            }
            _ => continue,
        };
        resp.add_answer(Record::from_rdata(q.name().clone(), 0, rdata));
    }
    // Other types of our names: no data, but the name exists.
    Some(resp)
}

/// Host resolvers from resolv.conf text, loopback ones left out (they mean
/// nothing here, and would loop back to us).
pub fn upstreams(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_loopback())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn forward(query: &[u8], id: u16, upstreams: &[SocketAddr]) -> Vec<u8> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0"
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let Ok(sock) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
        if sock.send_to(query, up).is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        if let Ok((n, from)) = sock.recv_from(&mut buf)
            && from == *up
        {
            return buf[..n].to_vec();
        }
    }
    Message::error_msg(id, OpCode::Query, ResponseCode::ServFail)
        .to_vec()
        .unwrap_or_default()
}

/// One listening socket and the network it serves.
struct Listener {
    sock: UdpSocket,
    /// Who may ask: the network's containers, on this family's subnet.
    subnet: Subnet,
    subnet6: Option<crate::ipam::Subnet6>,
    /// The address it listens on (never an asker: that is the host).
    gateway: IpAddr,
    network: String,
    /// The network's id: a network removed and made again under the same
    /// name (`down`, then `up`) may have another gateway.
    network_id: String,
    /// `internal: true`: names outside the network are never forwarded
    /// (CVE-2024-29018: forwarding leaked data out of internal networks).
    internal: bool,
}

/// What one UDP answer of ours may weigh: more (a name with many replicas,
/// an ANY query) is sent truncated, so the client asks again over TCP and
/// no answer amplifies a query (NET-08).
const UDP_ANSWER_MAX: usize = 512;

/// `m` encoded to fit [`UDP_ANSWER_MAX`]: whole, or with as many answers
/// as fit and the truncation bit set (resolvers that do not retry over TCP
/// still get addresses to use).
fn fit_udp(mut m: Message) -> Vec<u8> {
    let mut wire = m.to_vec().unwrap_or_default();
    while wire.len() > UDP_ANSWER_MAX && !m.answers.is_empty() {
        m.answers.pop();
        m.metadata.truncation = true;
        wire = m.to_vec().unwrap_or_default();
    }
    wire
}

/// Queries per second each container may ask, and how many at once: a
/// resolver loop in one container does not starve the others.
const QUERIES_PER_SECOND: f64 = 2000.0;
const QUERY_BURST: f64 = 4000.0;

/// A token bucket per asking address.
#[derive(Default)]
struct RateLimiter {
    buckets: BTreeMap<IpAddr, (f64, std::time::Instant)>,
}

impl RateLimiter {
    /// Whether `src` may be answered now; takes a token if so.
    fn allow(&mut self, src: IpAddr, now: std::time::Instant) -> bool {
        if self.buckets.len() > 4096 {
            // Addresses quiet for a while start afresh.
            self.buckets
                .retain(|_, (_, last)| now.duration_since(*last).as_secs() < 10);
        }
        let (tokens, last) = self.buckets.entry(src).or_insert((QUERY_BURST, now));
        let refill = now.duration_since(*last).as_secs_f64() * QUERIES_PER_SECOND;
        *tokens = (*tokens + refill).min(QUERY_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The answer for a name the network does not know, on an internal network.
pub fn not_found(query: &Message) -> Message {
    let mut resp = Message::error_msg(query.metadata.id, OpCode::Query, ResponseCode::NXDomain);
    if let Some(q) = query.queries.first() {
        resp.add_query(q.clone());
    }
    resp
}

/// Tells when the network records change: through inotify (every record
/// is written by a rename into the directory), so that checking before each
/// answer costs one `read` that finds nothing; by comparing the directory's
/// listing where inotify is not available.
struct Watcher {
    inotify: Option<OwnedFd>,
    dir: PathBuf,
    seen: Option<Vec<(u64, i64, i64, u64)>>,
}

impl Watcher {
    fn new(dir: &Path) -> Watcher {
        use rustix::fs::inotify;
        let inotify = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .ok()
            .filter(|fd| {
                inotify::add_watch(
                    fd,
                    dir,
                    inotify::WatchFlags::CREATE
                        | inotify::WatchFlags::DELETE
                        | inotify::WatchFlags::MOVED_TO
                        | inotify::WatchFlags::MOVED_FROM
                        | inotify::WatchFlags::CLOSE_WRITE,
                )
                .is_ok()
            });
        Watcher {
            inotify,
            dir: dir.to_path_buf(),
            seen: None,
        }
    }

    /// Whether the records changed since the last call (true the first time).
    fn changed(&mut self) -> bool {
        match &self.inotify {
            Some(fd) => {
                let mut any = self.seen.is_none();
                self.seen = Some(Vec::new());
                let mut buf = [0u8; 4096];
                while rustix::io::read(fd, &mut buf).is_ok_and(|n| n > 0) {
                    any = true;
                }
                any
            }
            None => {
                let now = stamp(&self.dir);
                let changed = now != self.seen || self.seen.is_none();
                self.seen = now;
                changed
            }
        }
    }
}

/// What the records look like now. Modification times alone are too
/// coarse (one kernel tick): two writes in one tick would look like one. Every
/// record is replaced by a rename, so its inode changes with each write.
fn stamp(dir: &Path) -> Option<Vec<(u64, i64, i64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<(u64, i64, i64, u64)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| (m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
        .collect();
    out.sort_unstable();
    Some(out)
}

/// Whether some process in this network namespace serves DNS (UDP port 53)
/// on `gateway`: `/proc/net/udp` lists bound sockets per namespace.
pub fn listening_on(gateway: Ipv4Addr) -> bool {
    let want = format!("{:08X}:0035", u32::from_ne_bytes(gateway.octets()));
    std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

/// Takes the lock that serialises starting and leaving servers: whoever
/// holds it sees `dns.pid` name the one server that stays.
pub fn lock(root: &Path) -> crate::Result<std::fs::File> {
    let path = root.join("networks").join("dns.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| crate::Error::Io {
            path: path.clone(),
            cause: e,
        })?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| crate::Error::Netlink(format!("locking {}: {e}", path.display())))?;
    Ok(f)
}

/// The live server `dns.pid` names, if it runs in this network namespace.
pub fn live_server(root: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(root.join("networks").join("dns.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if !String::from_utf8_lossy(&cmd).contains("__dns") {
        return None;
    }
    let mine = std::fs::read_link("/proc/self/ns/net").ok()?;
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    (mine == theirs).then_some(pid)
}

/// Stops this namespace's server once no network is left, and waits for
/// it to be gone: `down` leaves no process behind, not even for the tick
/// the server would take to notice.
pub fn stop_if_idle(root: &Path) -> crate::Result<()> {
    let nets = Networks::open(root)?;
    let _lock = lock(root)?;
    if nets.list()?.iter().any(NetworkRecord::serves_dns) {
        return Ok(());
    }
    if let Some(pid) = live_server(root) {
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
            // A zombie until its parent (init) reaps it: gone enough.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if state.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let _ = std::fs::remove_file(root.join("networks").join("dns.pid"));
    Ok(())
}

/// The networks the server answers on.
fn served(nets: &Networks) -> crate::Result<Vec<NetworkRecord>> {
    Ok(nets
        .list()?
        .into_iter()
        .filter(NetworkRecord::serves_dns)
        .collect())
}

/// Serves until no network is left. Runs in the network namespace of the
/// bridges it serves. A server that finds another one running leaves at
/// once: there is one per state root and namespace, whoever started it.
pub fn serve(root: &Path) -> crate::Result<()> {
    let nets = Networks::open(root)?;
    let dir = root.join("networks");
    let me = std::process::id();
    {
        let _lock = lock(root)?;
        if live_server(root).is_some_and(|pid| pid != me) {
            return Ok(());
        }
        let pid_file = dir.join("dns.pid");
        std::fs::write(&pid_file, me.to_string()).map_err(|e| crate::Error::Io {
            path: pid_file.clone(),
            cause: e,
        })?;
    }
    let upstream = upstreams(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let mut listeners: Vec<Listener> = Vec::new();
    let mut zones: BTreeMap<String, Zone> = BTreeMap::new();
    let mut watcher = Watcher::new(&dir);
    let mut unbound = false;
    let mut reload = true;
    let mut limiter = RateLimiter::default();
    loop {
        // A gateway whose address was not there yet (a network being
        // created, or completed by a later `up`) is tried again each tick.
        if watcher.changed() || reload || listeners.is_empty() || unbound {
            reload = false;
            unbound = false;
            let records = served(&nets)?;
            if records.is_empty() {
                // Leave only under the lock `berth` takes to decide whether a
                // server runs: one that found this process alive must not
                // see it go away afterwards.
                let held = lock(root)?;
                if served(&nets)?.is_empty() {
                    if live_server(root) == Some(me) {
                        let _ = std::fs::remove_file(dir.join("dns.pid"));
                    }
                    // Held until this process is gone (the kernel closes
                    // the file at exit): a `down` that waits for the lock
                    // finds no server left, not even one still exiting.
                    std::mem::forget(held);
                    return Ok(());
                }
                drop(held);
                reload = true;
                continue;
            }
            zones = records.iter().map(|r| (r.name.clone(), zone(r))).collect();
            listeners.retain(|l| records.iter().any(|r| r.id == l.network_id));
            for r in &records {
                let (Ok(gw4), Ok(subnet)) =
                    (r.gateway.parse::<Ipv4Addr>(), r.subnet.parse::<Subnet>())
                else {
                    continue;
                };
                let v6 = r.ipv6();
                let gateways =
                    std::iter::once(IpAddr::V4(gw4)).chain(v6.map(|(_, g)| IpAddr::V6(g)));
                for gw in gateways {
                    if listeners
                        .iter()
                        .any(|l| l.network_id == r.id && l.gateway == gw)
                    {
                        continue;
                    }
                    match UdpSocket::bind(SocketAddr::new(gw, 53)) {
                        Ok(sock) => listeners.push(Listener {
                            sock,
                            subnet,
                            subnet6: v6.map(|(s, _)| s),
                            gateway: gw,
                            network: r.name.clone(),
                            network_id: r.id.clone(),
                            internal: r.internal,
                        }),
                        Err(_) => unbound = true,
                    }
                }
            }
        }
        let mut fds: Vec<PollFd<'_>> = listeners
            .iter()
            .map(|l| PollFd::new(&l.sock, PollFlags::IN))
            .collect();
        // A change wakes the server at once, not at the next tick.
        if let Some(fd) = &watcher.inotify {
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        let tick = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        match poll(&mut fds, Some(&tick)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) if e == rustix::io::Errno::INTR => continue,
            Err(e) => return Err(crate::Error::Netlink(format!("poll: {e}"))),
        }
        let ready: Vec<usize> = fds
            .iter()
            .enumerate()
            .filter(|(i, f)| *i < listeners.len() && !f.revents().is_empty())
            .map(|(i, _)| i)
            .collect();
        drop(fds);
        for i in ready {
            let l = &listeners[i];
            let mut buf = [0u8; 4096];
            let Ok((n, from)) = l.sock.recv_from(&mut buf) else {
                continue;
            };
            // Only containers of this network get answers: not the host
            // (whose address there is the gateway), not other networks.
            let src = from.ip();
            let ours = match src {
                IpAddr::V4(v4) => l.subnet.contains(v4),
                IpAddr::V6(v6) => l.subnet6.is_some_and(|s| s.contains(v6)),
            };
            if !ours || src == l.gateway || !limiter.allow(src, std::time::Instant::now()) {
                continue;
            }
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if query.metadata.message_type != MessageType::Query {
                continue;
            }
            // Names registered since the last look must resolve at once: a
            // container just started may ask for its peer straight away.
            if watcher.changed() {
                reload = true;
                zones = nets
                    .list()?
                    .iter()
                    .map(|r| (r.name.clone(), zone(r)))
                    .collect();
            }
            let empty = Zone::new();
            let zone = zones.get(&l.network).unwrap_or(&empty);
            let reply = match answer(&query, zone) {
                Some(m) => fit_udp(m),
                None if l.internal => not_found(&query).to_vec().unwrap_or_default(),
                None => forward(&buf[..n], query.metadata.id, &upstream),
            };
            let _ = l.sock.send_to(&reply, from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::query();
        m.metadata.id = 7;
        m.add_query(Query::query(Name::from_str(name).unwrap(), t));
        m
    }

    #[test]
    fn big_answers_are_truncated_and_each_source_is_rate_limited() {
        let mut z = Zone::new();
        z.insert(
            "many".into(),
            (1..=60)
                .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
                .collect(),
        );
        let q = query("many.", RecordType::ANY);
        let wire = fit_udp(answer(&q, &z).unwrap());
        assert!(wire.len() <= UDP_ANSWER_MAX, "{}", wire.len());
        let m = Message::from_vec(&wire).unwrap();
        assert!(m.metadata.truncation && !m.answers.is_empty() && m.answers.len() < 60);
        let small = Message::from_vec(&fit_udp(
            answer(&query("many.", RecordType::AAAA), &z).unwrap(),
        ))
        .unwrap();
        assert!(!small.metadata.truncation);

        let mut limiter = RateLimiter::default();
        let t0 = std::time::Instant::now();
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "10.0.0.3".parse().unwrap();
        let allowed = (0..10_000).filter(|_| limiter.allow(a, t0)).count();
        assert_eq!(allowed, QUERY_BURST as usize, "a burst, then nothing");
        assert!(limiter.allow(b, t0), "another container is not starved");
        assert!(
            limiter.allow(a, t0 + std::time::Duration::from_millis(50)),
            "tokens come back"
        );
    }

    #[test]
    fn answers_names_of_the_network_and_leaves_the_rest() {
        let mut z = Zone::new();
        z.insert(
            "api".into(),
            vec![
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
            ],
        );
        z.insert(
            "db".into(),
            vec![
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4)),
                IpAddr::V6("fd00::4".parse().unwrap()),
            ],
        );
        let r = answer(&query("API.", RecordType::A), &z).unwrap();
        assert_eq!(r.metadata.id, 7);
        assert_eq!(r.answers.len(), 2, "every replica");
        let r = answer(&query("api.", RecordType::AAAA), &z).unwrap();
        assert!(r.answers.is_empty(), "an IPv4-only name: no data");
        let r = answer(&query("db.", RecordType::AAAA), &z).unwrap();
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].record_type(), RecordType::AAAA);
        assert!(answer(&query("example.com.", RecordType::A), &z).is_none());
        assert_eq!(
            upstreams("nameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch x\n"),
            vec!["10.0.0.1:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
