//! `extends:`: a service built on another one, from the same file or another
//! file, chained and checked for cycles. The parent comes first and the
//! service's own attributes are merged over it with the usual merge rules.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::load::{Context, parse_file, prepare};
use crate::merge::merge;
use crate::yaml::{Map, Node};

#[derive(Clone, PartialEq, Eq, Hash)]
enum Scope {
    Main,
    File(PathBuf),
}

struct Resolver<'a> {
    main: &'a Map,
    files: HashMap<PathBuf, Node>,
    ctx: &'a mut Context,
    stack: Vec<(Scope, String)>,
}

/// Replaces every service that uses `extends` in `root` by its merged form.
pub(crate) fn apply(root: &mut Node, ctx: &mut Context, _stdin: Option<&str>) -> Result<()> {
    let Some(services) = root.get("services").and_then(Node::as_map) else {
        return Ok(());
    };
    let names: Vec<String> = services
        .iter()
        .filter(|(_, v)| v.get("extends").is_some())
        .map(|(k, _)| k.name.clone())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let snapshot = services.clone();
    let mut resolver = Resolver {
        main: &snapshot,
        files: HashMap::new(),
        ctx,
        stack: Vec::new(),
    };
    let mut resolved = Vec::new();
    for name in names {
        resolved.push((name.clone(), resolver.service(&Scope::Main, &name, None)?));
    }
    let services = root
        .get_mut("services")
        .and_then(Node::as_map_mut)
        .expect("checked above");
    for (name, svc) in resolved {
        if let Some(slot) = services.get_mut(name.as_str()) {
            *slot = svc;
        }
    }
    Ok(())
}

impl Resolver<'_> {
    fn services(&mut self, scope: &Scope) -> Result<Option<&Map>> {
        match scope {
            Scope::Main => Ok(Some(self.main)),
            Scope::File(p) => {
                if !self.files.contains_key(p) {
                    let mut root = parse_file(p, None, &self.ctx.cwd)?;
                    let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
                    prepare(&mut root, self.ctx, &dir)?;
                    self.files.insert(p.clone(), root);
                }
                Ok(self.files[p].get("services").and_then(Node::as_map))
            }
        }
    }

    fn service(&mut self, scope: &Scope, name: &str, from: Option<&Node>) -> Result<Node> {
        let found = self.services(scope)?.and_then(|m| m.get(name)).cloned();
        let Some(svc) = found else {
            let where_ = match scope {
                Scope::Main => String::new(),
                Scope::File(p) => format!(" in {}", p.display()),
            };
            let msg = format!("cannot extend service {name:?}{where_}: service not found");
            return Err(match from {
                Some(n) => Error::invalid(&n.mark, "", msg),
                None => Error::Project(msg),
            });
        };
        let Some(ext) = svc.get("extends").cloned() else {
            return Ok(svc);
        };
        let key = (scope.clone(), name.to_string());
        if self.stack.contains(&key) {
            let chain: Vec<&str> = self.stack.iter().map(|(_, n)| n.as_str()).collect();
            return Err(Error::invalid(
                &ext.mark,
                format!("services.{name}.extends"),
                format!(
                    "circular reference with extends: {} -> {name}",
                    chain.join(" -> ")
                ),
            ));
        }
        let target = ext
            .get("service")
            .and_then(Node::as_str)
            .ok_or_else(|| {
                Error::invalid(
                    &ext.mark,
                    format!("services.{name}.extends"),
                    "service is required",
                )
            })?
            .to_string();
        let next_scope = match ext.get("file").and_then(Node::as_str) {
            Some(f) => Scope::File(PathBuf::from(f)),
            None => scope.clone(),
        };
        self.stack.push(key);
        let base = self.service(&next_scope, &target, Some(&ext));
        self.stack.pop();
        let mut merged = base?;
        if let Some(m) = merged.as_map_mut() {
            m.shift_remove("extends");
        }
        let mut over = svc;
        if let Some(m) = over.as_map_mut() {
            m.shift_remove("extends");
        }
        merge(&mut merged, over, &["services", name]);
        Ok(merged)
    }
}
