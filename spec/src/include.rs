//! `include:`: other Compose projects pulled into this one, each loaded in
//! its own project directory and environment, then added resource by
//! resource. A resource defined both here and in an included project is an
//! error unless the two are identical.

use std::path::{Path, PathBuf};

use crate::convert::{self, Fields};
use crate::dotenv;
use crate::error::{Error, Result};
use crate::extends;
use crate::load::{Context, parse_file, prepare};
use crate::merge::merge;
use crate::paths;
use crate::yaml::{Node, Value};

struct Include {
    paths: Vec<PathBuf>,
    project_directory: Option<PathBuf>,
    env_files: Vec<PathBuf>,
}

fn parse_entry(n: &Node, path: &str, base: &Path, ctx: &Context) -> Result<Include> {
    let abs = |p: &str| PathBuf::from(paths::absolute(base, p, ctx.home.as_deref()));
    if let Value::Str(s) = &n.value {
        return Ok(Include {
            paths: vec![abs(s)],
            project_directory: None,
            env_files: Vec::new(),
        });
    }
    let field_path = convert::P::Root(path);
    let f = Fields::new(n, &field_path)?;
    let inc = Include {
        paths: f.string_or_list("path")?.iter().map(|p| abs(p)).collect(),
        project_directory: Some(f.string("project_directory")?)
            .filter(|d| !d.is_empty())
            .map(|d| abs(&d)),
        env_files: f
            .string_or_list("env_file")?
            .iter()
            .map(|p| abs(p))
            .collect(),
    };
    f.finish()?;
    if inc.paths.is_empty() {
        return Err(Error::invalid(&n.mark, path, "path is required"));
    }
    Ok(inc)
}

/// Loads every project listed under `include:` in `root` and adds its
/// resources to `root`. Relative paths are relative to `base`.
pub(crate) fn apply(root: &mut Node, base: &Path, ctx: &mut Context) -> Result<()> {
    let Some(list) = root.as_map_mut().and_then(|m| m.shift_remove("include")) else {
        return Ok(());
    };
    let items = match list.value {
        Value::Seq(items) => items,
        Value::Null => Vec::new(),
        _ => return Err(Error::invalid(&list.mark, "include", "must be a list")),
    };
    for (i, item) in items.iter().enumerate() {
        let path = format!("include[{i}]");
        let inc = parse_entry(item, &path, base, ctx)?;
        let included = load_included(&inc, ctx)?;
        add_resources(root, included, &path, item)?;
    }
    Ok(())
}

fn load_included(inc: &Include, ctx: &mut Context) -> Result<Node> {
    for p in &inc.paths {
        if ctx.include_stack.contains(p) {
            let chain: Vec<String> = ctx
                .include_stack
                .iter()
                .chain(std::iter::once(p))
                .map(|p| p.display().to_string())
                .collect();
            return Err(Error::Project(format!(
                "include cycle detected: {}",
                chain.join(" include ")
            )));
        }
    }
    let first = &inc.paths[0];
    let project_dir = inc
        .project_directory
        .clone()
        .unwrap_or_else(|| first.parent().map(Path::to_path_buf).unwrap_or_default());
    let env_files = if inc.env_files.is_empty() {
        let default = project_dir.join(".env");
        if default.is_file() {
            vec![default]
        } else {
            Vec::new()
        }
    } else {
        inc.env_files.clone()
    };
    let mut environment = ctx.environment.clone();
    for f in env_files {
        let parent = ctx.environment.clone();
        let values = dotenv::read(&f, &|k| parent.get(k).cloned())?;
        environment.extend(values);
    }
    let mut sub = Context {
        environment,
        project_dir: project_dir.clone(),
        home: ctx.home.clone(),
        interpolate: ctx.interpolate,
        unset: std::mem::take(&mut ctx.unset),
        warnings: Vec::new(),
        include_stack: ctx.include_stack.clone(),
        cwd: ctx.cwd.clone(),
    };
    let mut merged: Option<Node> = None;
    for p in &inc.paths {
        let mut root = parse_file(p, None, &ctx.cwd)?;
        prepare(&mut root, &mut sub, &project_dir)?;
        sub.include_stack.push(p.clone());
        apply(&mut root, &project_dir, &mut sub)?;
        sub.include_stack.pop();
        match merged.as_mut() {
            None => merged = Some(root),
            Some(m) => merge(m, root, &[]),
        }
    }
    let mut root = merged.unwrap_or_else(|| Node::map(crate::yaml::Mark::synthetic()));
    extends::apply(&mut root, &mut sub, None)?;
    ctx.unset = sub.unset;
    ctx.warnings.append(&mut sub.warnings);
    Ok(root)
}

fn add_resources(root: &mut Node, included: Node, path: &str, at: &Node) -> Result<()> {
    let Value::Map(inc_map) = included.value else {
        return Ok(());
    };
    let root_map = root.as_map_mut().expect("compose files are mappings");
    for (section, value) in *inc_map {
        if !matches!(
            section.name.as_str(),
            "services" | "networks" | "volumes" | "secrets" | "configs" | "models"
        ) {
            continue;
        }
        let Value::Map(entries) = value.value else {
            continue;
        };
        let target = root_map
            .entry(section.clone())
            .or_insert_with(|| Node::map(section.mark));
        if target.is_null() {
            *target = Node::map(section.mark);
        }
        let Some(target) = target.as_map_mut() else {
            continue;
        };
        for (k, v) in *entries {
            match target.get(k.name.as_str()) {
                Some(existing) if convert::to_json(existing) != convert::to_json(&v) => {
                    return Err(Error::invalid(
                        &at.mark,
                        path,
                        format!(
                            "{}.{} conflicts with imported resource",
                            section.name, k.name
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    target.insert(k, v);
                }
            }
        }
    }
    Ok(())
}
