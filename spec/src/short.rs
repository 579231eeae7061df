//! The short syntaxes that pack several fields into one string: ports
//! (`127.0.0.1:8080-8081:80-81/udp`), volumes (`./data:/data:ro`), shell
//! command lines and `host:ip` pairs.

use crate::model::{Port, ServiceVolume, VolumeBind, VolumeVolume};

/// Expands a short port spec into one entry per container port, sorted as
/// Docker Compose sorts them.
pub fn parse_ports(spec: &str) -> Result<Vec<Port>, String> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) if !p.is_empty() => (r, p.to_ascii_lowercase()),
        Some(_) => return Err(format!("invalid port {spec:?}: empty protocol")),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto {proto:?} in port {spec:?}"));
    }
    let (host_ip, host, container) =
        split_port_parts(rest).ok_or_else(|| format!("invalid port {spec:?}: too many colons"))?;
    if container.is_empty() {
        return Err(format!("no port specified: {spec:?}"));
    }
    let (c_start, c_end) = parse_range(container)?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(parse_range(host)?)
    };
    if let Some(ip) = &host_ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(format!("invalid IP address {ip:?} in port {spec:?}"));
    }
    let count = c_end - c_start;
    if let Some((h_start, h_end)) = host_range
        && count > 0
        && h_end - h_start != count
    {
        return Err(format!(
            "invalid ranges specified for container and host ports: {spec:?}"
        ));
    }
    let mut ports = Vec::new();
    for i in 0..=count {
        let target = c_start + i;
        let published = match host_range {
            None => String::new(),
            Some((h_start, h_end)) if count == 0 && h_end != h_start => {
                format!("{h_start}-{h_end}")
            }
            Some((h_start, _)) => (h_start + i).to_string(),
        };
        ports.push(Port {
            mode: "ingress".into(),
            host_ip: host_ip.clone().unwrap_or_default(),
            target,
            published,
            protocol: proto.clone(),
            ..Port::default()
        });
    }
    // Docker's port parser returns a map which Compose sorts by "port/proto"
    // text, so 10000 sorts before 9999; keep that order for equal output.
    ports.sort_by_key(|a| format!("{}/{}", a.target, a.protocol));
    Ok(ports)
}

/// `[ip:][host:]container`, with `[v6]` brackets allowed around the IP.
fn split_port_parts(s: &str) -> Option<(Option<String>, &str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let after = after.strip_prefix(':')?;
        let (host, container) = after.split_once(':')?;
        return Some((Some(ip.to_string()), host, container));
    }
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [c] => Some((None, "", c)),
        [h, c] => Some((None, h, c)),
        [ip, h, c] => Some((
            if ip.is_empty() {
                None
            } else {
                Some(ip.to_string())
            },
            h,
            c,
        )),
        _ => {
            // An unbracketed IPv6 address: the last two fields are the ports.
            let c = parts[parts.len() - 1];
            let h = parts[parts.len() - 2];
            let ip = parts[..parts.len() - 2].join(":");
            ip.parse::<std::net::Ipv6Addr>().ok()?;
            Some((Some(ip), h, c))
        }
    }
}

fn parse_range(s: &str) -> Result<(u32, u32), String> {
    let port = |p: &str| -> Result<u32, String> {
        p.parse::<u32>()
            .ok()
            .filter(|n| *n <= 65535)
            .ok_or_else(|| format!("invalid port {p:?}"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(format!("invalid port range {s:?}"));
            }
            Ok((a, b))
        }
        None => {
            let p = port(s)?;
            Ok((p, p))
        }
    }
}

/// True when a volume source names a host path rather than a volume.
pub fn is_host_path(source: &str) -> bool {
    source.starts_with(['.', '/', '~'])
        || source.starts_with('\\')
        || (source.len() >= 2
            && source.as_bytes()[0].is_ascii_alphabetic()
            && source.as_bytes()[1] == b':')
}

/// Splits a short volume spec into its source (if any) and the rest, so that
/// a relative source can be rewritten in place.
pub fn split_volume_source(spec: &str) -> Option<(&str, &str)> {
    let parts = volume_parts(spec);
    if parts.len() >= 2 {
        let src = parts[0];
        Some((src, &spec[src.len()..]))
    } else {
        None
    }
}

fn volume_parts(spec: &str) -> Vec<&str> {
    // A Windows drive letter (`C:\...`) is not a separator.
    let mut parts = Vec::new();
    let mut start = 0;
    let bytes = spec.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b != b':' {
            continue;
        }
        let is_drive = i == start + 1
            && bytes[start].is_ascii_alphabetic()
            && matches!(bytes.get(i + 1), Some(b'\\') | Some(b'/'));
        if is_drive {
            continue;
        }
        parts.push(&spec[start..i]);
        start = i + 1;
    }
    parts.push(&spec[start..]);
    parts
}

/// Parses `[source:]target[:options]`.
pub fn parse_volume(spec: &str) -> Result<ServiceVolume, String> {
    if spec.is_empty() {
        return Err("invalid empty volume spec".to_string());
    }
    let parts = volume_parts(spec);
    let (source, target, options) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => return Err(format!("invalid spec: {spec}: too many colons")),
    };
    if target.is_empty() {
        return Err(format!(
            "invalid spec: {spec}: empty section between colons"
        ));
    }
    let mut vol = ServiceVolume {
        source: source.to_string(),
        target: target.to_string(),
        ..ServiceVolume::default()
    };
    if source.is_empty() || !is_host_path(source) {
        vol.kind = "volume".into();
        vol.volume = Some(VolumeVolume::default());
    } else {
        vol.kind = "bind".into();
        vol.bind = Some(VolumeBind {
            create_host_path: true,
            ..VolumeBind::default()
        });
    }
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => vol.read_only = true,
            "rw" => vol.read_only = false,
            "nocopy" => {
                if let Some(v) = vol.volume.as_mut() {
                    v.nocopy = true;
                }
            }
            "z" | "Z" => {
                if let Some(b) = vol.bind.as_mut() {
                    b.selinux = opt.to_string();
                }
            }
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                if let Some(b) = vol.bind.as_mut() {
                    b.propagation = opt.to_string();
                }
            }
            "cached" | "delegated" | "consistent" => vol.consistency = opt.to_string(),
            _ => return Err(format!("invalid spec: {spec}: unknown option {opt:?}")),
        }
    }
    Ok(vol)
}

/// Splits a command line into words like a POSIX shell would, without
/// expanding anything.
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(n) => cur.push(n),
                    None => cur.push('\\'),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some('\n') => {}
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(n) => cur.push(n),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_forms() {
        let p = parse_ports("127.0.0.1:5000-5001:5000-5001").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].target, p[1].published.as_str()), (5001, "5001"));
        assert_eq!(p[0].host_ip, "127.0.0.1");
        let p = parse_ports("3000").unwrap();
        assert_eq!((p[0].target, p[0].published.as_str()), (3000, ""));
        let p = parse_ports("9090-9091:80").unwrap();
        assert_eq!(p[0].published, "9090-9091");
        let p = parse_ports("[::1]:80:80/udp").unwrap();
        assert_eq!(
            (p[0].host_ip.as_str(), p[0].protocol.as_str()),
            ("::1", "udp")
        );
        assert!(
            parse_ports("80-70")
                .unwrap_err()
                .contains("invalid port range")
        );
        assert!(parse_ports("1-3:1-2").is_err());
        assert!(parse_ports("70000").is_err());
    }

    #[test]
    fn volume_forms() {
        let v = parse_volume("/var/lib/anonymous").unwrap();
        assert_eq!((v.kind.as_str(), v.source.as_str()), ("volume", ""));
        let v = parse_volume("data:/data:ro,nocopy").unwrap();
        assert!(v.read_only && v.volume.unwrap().nocopy);
        let v = parse_volume("./x:/y:z").unwrap();
        assert_eq!(v.kind, "bind");
        assert_eq!(v.bind.unwrap().selinux, "z");
        assert_eq!(split_volume_source("./a:/b:ro"), Some(("./a", ":/b:ro")));
        assert!(parse_volume("a:b:c:d").is_err());
    }

    #[test]
    fn words() {
        assert_eq!(
            shell_words(r#"bundle exec "thin x" -p 'a b' c\ d"#).unwrap(),
            ["bundle", "exec", "thin x", "-p", "a b", "c d"]
        );
        assert!(shell_words("'oops").is_err());
        assert!(shell_words("").unwrap().is_empty());
    }
}
