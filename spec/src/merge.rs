//! Merging an override file (or a service's `extends` parent) into a base,
//! following the Compose Specification's merge rules: mappings merge key by
//! key, sequences append, `command`/`entrypoint`/`healthcheck.test` are
//! replaced, ports/volumes/secrets/configs are unique by their key, and the
//! `!reset` / `!override` tags remove or replace what was inherited.
//!
//! Both sides must already be in canonical form (see [`crate::canonical`]).

use crate::yaml::{Node, Tag, Value};

/// Merges `over` into `base` at `path` (dot-separated, `*` for any key).
pub fn merge(base: &mut Node, over: Node, path: &[&str]) {
    match over.tag {
        Tag::Override => {
            *base = over;
            base.tag = Tag::None;
            return;
        }
        Tag::Reset => {
            // A reset value replaces the base; the caller removes the entry.
            *base = over;
            return;
        }
        Tag::None => {}
    }
    if is_replaced(path) {
        *base = over;
        return;
    }
    match (&mut base.value, over.value) {
        (Value::Map(bm), Value::Map(om)) => {
            if path_is(path, &["services", "*", "logging"])
                && differ(bm.get("driver"), om.get("driver"))
            {
                *bm = om;
                return;
            }
            for (k, v) in *om {
                if v.tag == Tag::Reset {
                    bm.shift_remove(k.name.as_str());
                    continue;
                }
                let mut child: Vec<&str> = path.to_vec();
                child.push(&k.name);
                match bm.get_mut(k.name.as_str()) {
                    Some(existing) if !existing.is_null() && !v.is_null() => {
                        merge(existing, v, &child);
                    }
                    Some(_) if v.is_null() && is_null_keeps(&child) => {}
                    _ => {
                        bm.insert(k, v);
                    }
                }
            }
        }
        (Value::Seq(bs), Value::Seq(os)) => match unique_key(path) {
            Some(keyer) => {
                for item in os {
                    let k = keyer(&item);
                    match bs.iter_mut().find(|b| k.is_some() && keyer(b) == k) {
                        Some(existing) => merge(existing, item, &[]),
                        None => bs.push(item),
                    }
                }
            }
            None => {
                for item in os {
                    let dup = is_set_like(path)
                        && bs.iter().any(|b| {
                            b.scalar_text().is_some() && b.scalar_text() == item.scalar_text()
                        });
                    if !dup {
                        bs.push(item);
                    }
                }
            }
        },
        (_, value) => {
            base.value = value;
            base.mark = over.mark;
        }
    }
}

fn differ(a: Option<&Node>, b: Option<&Node>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.scalar_text() != b.scalar_text(),
        _ => false,
    }
}

fn path_is(path: &[&str], pattern: &[&str]) -> bool {
    path.len() == pattern.len() && path.iter().zip(pattern).all(|(p, q)| *q == "*" || p == q)
}

/// Attributes an override replaces instead of merging.
fn is_replaced(path: &[&str]) -> bool {
    const REPLACED: &[&[&str]] = &[
        &["services", "*", "command"],
        &["services", "*", "entrypoint"],
        &["services", "*", "healthcheck", "test"],
        &["services", "*", "ulimits", "*"],
        &["services", "*", "build", "ssh"],
    ];
    REPLACED.iter().any(|p| path_is(path, p))
}

/// `services.x.networks.y: null` in an override keeps the base's settings.
fn is_null_keeps(path: &[&str]) -> bool {
    path_is(path, &["services", "*", "networks", "*"])
}

/// Lists where an entry equal to an existing one is not added twice.
fn is_set_like(path: &[&str]) -> bool {
    const SETS: &[&[&str]] = &[
        &["services", "*", "cap_add"],
        &["services", "*", "cap_drop"],
        &["services", "*", "dns"],
        &["services", "*", "dns_opt"],
        &["services", "*", "dns_search"],
        &["services", "*", "expose"],
        &["services", "*", "links"],
        &["services", "*", "profiles"],
        &["services", "*", "tmpfs"],
        &["services", "*", "external_links"],
        &["services", "*", "security_opt"],
        &["services", "*", "extra_hosts"],
        &["services", "*", "label_file"],
        &["services", "*", "build", "tags"],
        &["services", "*", "build", "cache_from"],
        &["services", "*", "build", "platforms"],
        &["services", "*", "networks", "*", "aliases"],
    ];
    SETS.iter().any(|p| path_is(path, p))
}

type Keyer = fn(&Node) -> Option<String>;

/// Lists whose entries are unique by a key; an override entry with the same
/// key is merged into the existing one instead of being appended.
fn unique_key(path: &[&str]) -> Option<Keyer> {
    if path_is(path, &["services", "*", "ports"]) {
        return Some(|n| {
            let f = |k: &str| n.get(k).and_then(Node::scalar_text).unwrap_or_default();
            Some(format!(
                "{}:{}:{}/{}",
                f("host_ip"),
                f("published"),
                f("target"),
                f("protocol")
            ))
        });
    }
    if path_is(path, &["services", "*", "volumes"]) {
        return Some(|n| n.get("target").and_then(Node::scalar_text));
    }
    if path_is(path, &["services", "*", "secrets"]) || path_is(path, &["services", "*", "configs"])
    {
        return Some(|n| {
            let target = n.get("target").and_then(Node::scalar_text);
            target.or_else(|| n.get("source").and_then(Node::scalar_text))
        });
    }
    if path_is(path, &["services", "*", "env_file"]) {
        return Some(|n| match &n.value {
            Value::Map(_) => n.get("path").and_then(Node::scalar_text),
            _ => n.scalar_text(),
        });
    }
    if path_is(path, &["services", "*", "devices"]) {
        return Some(|n| match &n.value {
            Value::Map(_) => n.get("target").and_then(Node::scalar_text),
            _ => n.scalar_text(),
        });
    }
    None
}

/// Removes what is still tagged `!reset` and forgets `!override` tags, once
/// all merging is done.
pub fn strip_tags(node: &mut Node) {
    node.tag = Tag::None;
    match &mut node.value {
        Value::Map(m) => {
            m.retain(|_, v| v.tag != Tag::Reset);
            for v in m.values_mut() {
                strip_tags(v);
            }
        }
        Value::Seq(items) => {
            items.retain(|v| v.tag != Tag::Reset);
            for v in items {
                strip_tags(v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::canonicalize;
    use crate::yaml::parse;
    use std::sync::Arc;

    fn load(text: &str) -> Node {
        let mut n = parse(&Arc::from("t.yaml"), text).unwrap().remove(0);
        canonicalize(&mut n).unwrap();
        n
    }

    fn assert_merge(base: &str, over: &str, want: &str) {
        let mut b = load(base);
        merge(&mut b, load(over), &[]);
        strip_tags(&mut b);
        let w = load(want);
        assert_eq!(
            crate::convert::to_json(&b),
            crate::convert::to_json(&w),
            "\nbase: {base}\nover: {over}"
        );
    }

    #[test]
    fn merge_rules() {
        assert_merge(
            "services: {a: {image: x, environment: [A=1, B=2]}}",
            "services: {a: {environment: {B: 3, C: 4}}}",
            "services: {a: {image: x, environment: {A: '1', B: 3, C: 4}}}",
        );
        assert_merge(
            "services: {a: {command: [echo, foo], dns: [1.1.1.1]}}",
            "services: {a: {command: [echo, bar], dns: 8.8.8.8}}",
            "services: {a: {command: [echo, bar], dns: [1.1.1.1, 8.8.8.8]}}",
        );
        assert_merge(
            "services: {a: {volumes: ['foo:/work']}}",
            "services: {a: {volumes: ['bar:/work']}}",
            "services: {a: {volumes: [{type: volume, source: bar, target: /work, volume: {}}]}}",
        );
        assert_merge(
            "services: {a: {image: x, ports: ['8080:80'], environment: {FOO: BAR}}}",
            "services: {a: {ports: !reset [], environment: {FOO: !reset null}}}",
            "services: {a: {image: x, environment: {}}}",
        );
        assert_merge(
            "services: {a: {ports: ['8080:80']}}",
            "services: {a: {ports: !override ['8443:443']}}",
            "services: {a: {ports: ['8443:443']}}",
        );
        assert_merge(
            "services: {a: {ports: ['8080:80']}}",
            "services: {a: {ports: ['8080:80', '9090:90']}}",
            "services: {a: {ports: ['8080:80', '9090:90']}}",
        );
        assert_merge(
            "services: {a: {logging: {driver: syslog, options: {a: b}}}}",
            "services: {a: {logging: {driver: json-file, options: {c: d}}}}",
            "services: {a: {logging: {driver: json-file, options: {c: d}}}}",
        );
    }
}
