//! Relative paths → absolute ones, on the raw tree.
//!
//! Relative paths in a compose file are relative to the project directory,
//! except in a service inherited through `extends: {file: …}` and in included
//! projects, where they are relative to that file's own folder. Resolving on
//! the raw tree, before merging, lets each value keep its own base.

use std::path::{Component, Path, PathBuf};

use crate::yaml::{Node, Value};

/// Joins `rel` onto `base` and cleans the result lexically, like Go's
/// `filepath.Join`; `~` is the home directory; absolute paths are kept.
pub fn absolute(base: &Path, rel: &str, home: Option<&Path>) -> String {
    if let Some(rest) = rel.strip_prefix('~')
        && (rest.is_empty() || rest.starts_with('/'))
        && let Some(home) = home
    {
        return clean(&home.join(rest.trim_start_matches('/')));
    }
    if is_absolute(rel) {
        return rel.to_string();
    }
    clean(&base.join(rel))
}

fn is_absolute(p: &str) -> bool {
    p.starts_with('/')
        || p.starts_with('\\')
        || (p.len() >= 3
            && p.as_bytes()[0].is_ascii_alphabetic()
            && p.as_bytes()[1] == b':'
            && matches!(p.as_bytes()[2], b'\\' | b'/'))
}

/// Removes `.` and resolves `..` lexically.
pub fn clean(p: &Path) -> String {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    let s = out.to_string_lossy().into_owned();
    if s.is_empty() { ".".to_string() } else { s }
}

/// True for build contexts that name a remote source (git URLs and the like).
pub fn is_remote_context(ctx: &str) -> bool {
    ctx.contains("://") || ctx.starts_with("git@") || ctx.starts_with("github.com/")
}

fn rewrite(n: &mut Node, f: &dyn Fn(&str) -> String) {
    if let Value::Str(s) = &mut n.value {
        *s = f(s);
    }
}

/// Resolves every path-valued attribute of one canonical service.
pub fn resolve_service(svc: &mut Node, base: &Path, home: Option<&Path>) {
    let abs = |p: &str| absolute(base, p, home);
    let Some(map) = svc.as_map_mut() else { return };
    if let Some(build) = map.get_mut("build").and_then(Node::as_map_mut) {
        if !build.contains_key("context") {
            let mark = crate::yaml::Mark::synthetic();
            build.insert(
                crate::yaml::Key {
                    name: "context".into(),
                    mark,
                },
                Node::str(".", mark),
            );
        }
        if let Some(ctx) = build.get_mut("context") {
            rewrite(ctx, &|c| {
                if is_remote_context(c) {
                    c.to_string()
                } else {
                    abs(c)
                }
            });
        }
        if let Some(extra) = build
            .get_mut("additional_contexts")
            .and_then(Node::as_map_mut)
        {
            for v in extra.values_mut() {
                rewrite(v, &|c| {
                    if is_remote_context(c) || c.starts_with("service:") {
                        c.to_string()
                    } else {
                        abs(c)
                    }
                });
            }
        }
    }
    for attr in ["env_file", "label_file"] {
        if let Some(Value::Seq(items)) = map.get_mut(attr).map(|n| &mut n.value) {
            for item in items {
                match &mut item.value {
                    Value::Str(_) => rewrite(item, &abs),
                    Value::Map(_) => {
                        if let Some(p) = item.get_mut("path") {
                            rewrite(p, &abs);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(Value::Seq(items)) = map.get_mut("volumes").map(|n| &mut n.value) {
        for item in items {
            let is_bind = item.get("type").and_then(Node::as_str) == Some("bind");
            if is_bind && let Some(src) = item.get_mut("source") {
                rewrite(src, &abs);
            }
        }
    }
    if let Some(file) = map.get_mut("extends").and_then(|e| e.get_mut("file")) {
        rewrite(file, &abs);
    }
    if let Some(Value::Seq(items)) = map
        .get_mut("develop")
        .and_then(|d| d.get_mut("watch"))
        .map(|w| &mut w.value)
    {
        for item in items {
            if let Some(p) = item.get_mut("path") {
                rewrite(p, &abs);
            }
        }
    }
}

/// Resolves paths of the top-level resources (configs and secrets files).
///
/// A local volume's `driver_opts.device` is left as written, as Docker
/// Compose leaves it.
pub fn resolve_resources(root: &mut Node, base: &Path, home: Option<&Path>) {
    let abs = |p: &str| absolute(base, p, home);
    for section in ["configs", "secrets"] {
        if let Some(m) = root.get_mut(section).and_then(Node::as_map_mut) {
            for obj in m.values_mut() {
                if let Some(file) = obj.get_mut("file") {
                    rewrite(file, &abs);
                }
            }
        }
    }
}

/// Resolves the paths of every service and resource in a file's tree.
pub fn resolve_all(root: &mut Node, base: &Path, home: Option<&Path>) {
    if let Some(services) = root.get_mut("services").and_then(Node::as_map_mut) {
        for svc in services.values_mut() {
            resolve_service(svc, base, home);
        }
    }
    resolve_resources(root, base, home);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_like_go() {
        let base = Path::new("/p/dir");
        let home = Some(Path::new("/root"));
        assert_eq!(absolute(base, ".", home), "/p/dir");
        assert_eq!(absolute(base, "./", home), "/p/dir");
        assert_eq!(absolute(base, "../x/./y", home), "/p/x/y");
        assert_eq!(absolute(base, "~/configs", home), "/root/configs");
        assert_eq!(absolute(base, "/abs", home), "/abs");
        assert_eq!(absolute(base, "C:\\docker", home), "C:\\docker");
    }
}
