//! Image references, normalised as Docker normalises them: `busybox` is
//! `docker.io/library/busybox:latest`.

use std::fmt;

use super::digest::Digest;
use crate::error::{Error, Result};

/// The registry of references without one.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// A normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// The registry host (and port).
    pub domain: String,
    /// The repository path below the registry.
    pub path: String,
    /// The tag, if any (`latest` when neither tag nor digest is given).
    pub tag: Option<String>,
    /// The digest, if pinned.
    pub digest: Option<Digest>,
}

fn bad(reference: &str, why: &str) -> Error {
    Error::Reference {
        reference: reference.to_string(),
        why: why.to_string(),
    }
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        match ch {
            b'.' => {
                i += 1;
            }
            b'_' => {
                i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 };
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
                continue;
            }
            _ => return false,
        }
        if !b
            .get(i)
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || d.starts_with('[') => (h, Some(p)),
        _ => (d, None),
    };
    let host_ok = if host.starts_with('[') && host.ends_with(']') {
        host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
    } else {
        !host.is_empty()
            && host
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

impl Reference {
    /// Parses and normalises a reference.
    pub fn parse(s: &str) -> Result<Reference> {
        if s.is_empty() || s.len() > 512 {
            return Err(bad(s, "empty or too long"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        let (name, tag) = match name.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
            _ => (name, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(bad(s, "invalid tag"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if !valid_domain(&domain) {
            return Err(bad(s, "invalid registry host"));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if !path.split('/').all(valid_component) {
            return Err(bad(
                s,
                "repository name must be lowercase alphanumerics separated by '.', '_', '__' or '-'",
            ));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short form `docker images` shows: Docker Hub's domain and
    /// `library/` left out.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.repository()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("user/app", "docker.io/user/app:latest"),
            (
                "localhost/berth-busybox:latest",
                "localhost/berth-busybox:latest",
            ),
            ("127.0.0.1:5000/ns/img:v1", "127.0.0.1:5000/ns/img:v1"),
            (
                "registry.example.com/a/b/c",
                "registry.example.com/a/b/c:latest",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                Reference::parse(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
        let d = format!("busybox@sha256:{}", "b".repeat(64));
        assert_eq!(Reference::parse(&d).unwrap().tag, None);
        assert_eq!(
            Reference::parse("busybox").unwrap().familiar_repository(),
            "busybox"
        );
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "",
            "UPPER",
            "a/../b",
            "img:",
            "img:-bad",
            "a//b",
            "img@sha256:xyz",
            "-lead",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
