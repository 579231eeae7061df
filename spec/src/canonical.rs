//! Rewrites the short syntaxes of a service into their long form on the raw
//! tree, before files are merged.
//!
//! Merging needs one shape per attribute: `environment: [A=1]` in one file and
//! `environment: {A: 2}` in an override must meet as two mappings, a port
//! `8080:80` must be compared with a long-form port field by field. Docker
//! Compose does the same ("canonical" form) before it merges.

use crate::error::{Error, Result};
use crate::model::ServiceVolume;
use crate::short;
use crate::yaml::{Key, Map, Mark, Node, Tag, Value};

fn key(name: &str, mark: &Mark) -> Key {
    Key {
        name: name.to_string(),
        mark: *mark,
    }
}

fn s(v: &str, mark: &Mark) -> Node {
    Node::str(v, *mark)
}

/// Brings every short syntax of the services in `root` to its long form.
pub fn canonicalize(root: &mut Node) -> Result<()> {
    let Some(services) = root.get_mut("services").and_then(Node::as_map_mut) else {
        return Ok(());
    };
    for (name, svc) in services.iter_mut() {
        service(svc, &format!("services.{}", name.name))?;
    }
    Ok(())
}

/// Brings the short syntaxes of one service to their long form.
pub fn service(svc: &mut Node, path: &str) -> Result<()> {
    let Some(map) = svc.as_map_mut() else {
        return Ok(());
    };
    for attr in ["environment", "labels", "annotations", "sysctls"] {
        if let Some(n) = map.get_mut(attr) {
            list_to_map(n, attr == "environment");
        }
    }
    for attr in ["dns", "dns_search", "tmpfs", "env_file", "label_file"] {
        if let Some(n) = map.get_mut(attr) {
            string_to_list(n);
        }
    }
    if let Some(b) = map.get_mut("build") {
        if let Value::Str(ctx) = &b.value {
            let mut m = Map::default();
            m.insert(key("context", &b.mark), s(ctx, &b.mark));
            b.value = Value::Map(Box::new(m));
        }
        if let Some(bm) = b.as_map_mut() {
            if let Some(n) = bm.get_mut("args") {
                list_to_map(n, true);
            }
            for attr in ["labels", "additional_contexts"] {
                if let Some(n) = bm.get_mut(attr) {
                    list_to_map(n, false);
                }
            }
        }
    }
    if let Some(d) = map.get_mut("deploy").and_then(|d| d.get_mut("labels")) {
        list_to_map(d, false);
    }
    if let Some(e) = map.get_mut("extends")
        && let Value::Str(name) = &e.value
    {
        let mut m = Map::default();
        m.insert(key("service", &e.mark), s(name, &e.mark));
        e.value = Value::Map(Box::new(m));
    }
    if let Some(d) = map.get_mut("depends_on")
        && let Value::Seq(items) = &d.value
    {
        let mut m = Map::default();
        for item in items {
            let Some(name) = item.scalar_text() else {
                continue;
            };
            let mut dep = Map::default();
            dep.insert(
                key("condition", &item.mark),
                s("service_started", &item.mark),
            );
            dep.insert(
                key("required", &item.mark),
                Node::new(Value::Bool(true), item.mark),
            );
            m.insert(
                key(&name, &item.mark),
                Node::new(Value::Map(Box::new(dep)), item.mark),
            );
        }
        d.value = Value::Map(Box::new(m));
    }
    if let Some(n) = map.get_mut("networks")
        && let Value::Seq(items) = &n.value
    {
        let mut m = Map::default();
        for item in items {
            if let Some(name) = item.scalar_text() {
                m.insert(key(&name, &item.mark), Node::new(Value::Null, item.mark));
            }
        }
        n.value = Value::Map(Box::new(m));
    }
    if let Some(n) = map.get_mut("ports")
        && let Value::Seq(items) = &mut n.value
    {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.drain(..).enumerate() {
            match &item.value {
                Value::Str(_) | Value::Int(_) => {
                    let spec = item.scalar_text().unwrap_or_default();
                    let ports = short::parse_ports(&spec)
                        .map_err(|e| Error::invalid(&item.mark, format!("{path}.ports[{i}]"), e))?;
                    for p in ports {
                        let mut m = Map::default();
                        let mk = &item.mark;
                        m.insert(key("mode", mk), s(&p.mode, mk));
                        if !p.host_ip.is_empty() {
                            m.insert(key("host_ip", mk), s(&p.host_ip, mk));
                        }
                        m.insert(
                            key("target", mk),
                            Node::new(Value::Int(i64::from(p.target)), *mk),
                        );
                        if !p.published.is_empty() {
                            m.insert(key("published", mk), s(&p.published, mk));
                        }
                        m.insert(key("protocol", mk), s(&p.protocol, mk));
                        out.push(Node::new(Value::Map(Box::new(m)), *mk));
                    }
                }
                _ => out.push(item),
            }
        }
        *items = out;
    }
    if let Some(n) = map.get_mut("volumes")
        && let Value::Seq(items) = &mut n.value
    {
        for (i, item) in items.iter_mut().enumerate() {
            if let Value::Str(spec) = &item.value {
                let v = short::parse_volume(spec)
                    .map_err(|e| Error::invalid(&item.mark, format!("{path}.volumes[{i}]"), e))?;
                *item = volume_node(&v, &item.mark);
            }
        }
    }
    for attr in ["secrets", "configs"] {
        if let Some(n) = map.get_mut(attr)
            && let Value::Seq(items) = &mut n.value
        {
            for item in items.iter_mut() {
                if let Value::Str(src) = &item.value {
                    let mut m = Map::default();
                    m.insert(key("source", &item.mark), s(src, &item.mark));
                    item.value = Value::Map(Box::new(m));
                }
            }
        }
    }
    Ok(())
}

/// The long form of a parsed short volume.
fn volume_node(v: &ServiceVolume, mark: &Mark) -> Node {
    let mut m = Map::default();
    m.insert(key("type", mark), s(&v.kind, mark));
    if !v.source.is_empty() {
        m.insert(key("source", mark), s(&v.source, mark));
    }
    m.insert(key("target", mark), s(&v.target, mark));
    if v.read_only {
        m.insert(key("read_only", mark), Node::new(Value::Bool(true), *mark));
    }
    if !v.consistency.is_empty() {
        m.insert(key("consistency", mark), s(&v.consistency, mark));
    }
    if let Some(b) = &v.bind {
        let mut bm = Map::default();
        bm.insert(
            key("create_host_path", mark),
            Node::new(Value::Bool(b.create_host_path), *mark),
        );
        if !b.selinux.is_empty() {
            bm.insert(key("selinux", mark), s(&b.selinux, mark));
        }
        if !b.propagation.is_empty() {
            bm.insert(key("propagation", mark), s(&b.propagation, mark));
        }
        m.insert(
            key("bind", mark),
            Node::new(Value::Map(Box::new(bm)), *mark),
        );
    }
    if let Some(vv) = &v.volume {
        let mut vm = Map::default();
        if vv.nocopy {
            vm.insert(key("nocopy", mark), Node::new(Value::Bool(true), *mark));
        }
        m.insert(
            key("volume", mark),
            Node::new(Value::Map(Box::new(vm)), *mark),
        );
    }
    Node::new(Value::Map(Box::new(m)), *mark)
}

/// `[A=1, B]` → `{A: "1", B: null}` (or `B: ""` when `keep_null` is false).
fn list_to_map(n: &mut Node, keep_null: bool) {
    let Value::Seq(items) = &n.value else { return };
    let mut m = Map::default();
    for item in items {
        let Some(text) = item.scalar_text() else {
            continue;
        };
        let (k, v) = match text.split_once('=') {
            Some((k, v)) => (k.to_string(), Value::Str(v.to_string())),
            None if keep_null => (text, Value::Null),
            None => (text, Value::Str(String::new())),
        };
        m.insert(key(&k, &item.mark), Node::new(v, item.mark));
    }
    let tag = n.tag;
    *n = Node::new(Value::Map(Box::new(m)), n.mark);
    n.tag = tag;
}

fn string_to_list(n: &mut Node) {
    if matches!(n.value, Value::Str(_) | Value::Map(_)) {
        let item = Node {
            value: std::mem::replace(&mut n.value, Value::Null),
            mark: n.mark,
            tag: Tag::None,
        };
        n.value = Value::Seq(vec![item]);
    }
}
