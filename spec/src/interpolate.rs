//! Variable substitution: `$VAR`, `${VAR}`, the `:-` `-` `:?` `?` `:+` `+`
//! forms with nested defaults, and `$$` for a literal dollar.
//!
//! Substitution runs on every string value of a file's tree before files are
//! merged, as Docker Compose does, so an error names the file and line where
//! the template is written.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::yaml::{Node, Value};

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `$` not followed by a name, `{` or `$`, or an unclosed `${`.
    Invalid(String),
    /// `${VAR:?msg}` or `${VAR?msg}` with the variable missing.
    Required {
        /// The variable.
        var: String,
        /// The message the template gives.
        msg: String,
    },
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Invalid(t) => write!(f, "invalid interpolation format {t:?}"),
            TemplateError::Required { var, msg } if msg.is_empty() => {
                write!(f, "required variable {var} is missing a value")
            }
            TemplateError::Required { var, msg } => {
                write!(f, "required variable {var} is missing a value: {msg}")
            }
        }
    }
}

/// Expands one template. `lookup` gives a variable's value; names of
/// variables that were used but not set are added to `unset`.
pub fn substitute(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
) -> Result<String, TemplateError> {
    if !template.contains('$') {
        return Ok(template.to_string());
    }
    let mut out = String::with_capacity(template.len());
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c != b'$' {
            let next = template[i..].find('$').map_or(bytes.len(), |p| i + p);
            out.push_str(&template[i..next]);
            i = next;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let close = matching_brace(template, i + 2)
                    .ok_or_else(|| TemplateError::Invalid(template.to_string()))?;
                let inner = &template[i + 2..close];
                out.push_str(&braced(inner, template, lookup, unset)?);
                i = close + 1;
            }
            Some(&b) if is_name_start(b) => {
                let end = name_end(bytes, i + 1);
                let name = &template[i + 1..end];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        unset.insert(name.to_string());
                    }
                }
                i = end;
            }
            _ => return Err(TemplateError::Invalid(template.to_string())),
        }
    }
    Ok(out)
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn name_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    while end < bytes.len() && (bytes[end] == b'_' || bytes[end].is_ascii_alphanumeric()) {
        end += 1;
    }
    end
}

/// Index of the `}` closing a `${` whose content starts at `start`.
fn matching_brace(s: &str, start: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 1;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'$' if bytes.get(i + 1) == Some(&b'$') => {
                i += 2;
                continue;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    inner: &str,
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
) -> Result<String, TemplateError> {
    let bytes = inner.as_bytes();
    if bytes.is_empty() || !is_name_start(bytes[0]) {
        return Err(TemplateError::Invalid(template.to_string()));
    }
    let end = name_end(bytes, 1);
    let name = &inner[..end];
    let rest = &inner[end..];
    let value = lookup(name);
    let (op, arg) = if rest.is_empty() {
        ("", "")
    } else if let Some(op) = [":-", ":?", ":+"].iter().find(|op| rest.starts_with(**op)) {
        (*op, &rest[2..])
    } else if let Some(op) = ["-", "?", "+"].iter().find(|op| rest.starts_with(**op)) {
        (*op, &rest[1..])
    } else {
        return Err(TemplateError::Invalid(template.to_string()));
    };
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    match op {
        "" => match value {
            Some(v) => Ok(v),
            None => {
                unset.insert(name.to_string());
                Ok(String::new())
            }
        },
        ":-" if set_nonempty => Ok(value.unwrap_or_default()),
        "-" if value.is_some() => Ok(value.unwrap_or_default()),
        ":-" | "-" => substitute(arg, lookup, unset),
        ":?" if set_nonempty => Ok(value.unwrap_or_default()),
        "?" if value.is_some() => Ok(value.unwrap_or_default()),
        ":?" | "?" => Err(TemplateError::Required {
            var: name.to_string(),
            msg: substitute(arg, lookup, unset)?,
        }),
        ":+" if set_nonempty => substitute(arg, lookup, unset),
        "+" if value.is_some() => substitute(arg, lookup, unset),
        _ => Ok(String::new()),
    }
}

/// One step of a path into the tree, borrowed so that walking costs nothing
/// until an error needs the path spelled out.
#[derive(Clone, Copy)]
pub enum Seg<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index.
    Index(usize),
}

/// Substitutes variables in every string value of `node`, in place.
pub fn interpolate_tree<'a>(
    node: &'a mut Node,
    path: &mut Vec<Seg<'a>>,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
) -> Result<()> {
    match &mut node.value {
        Value::Str(s) if s.contains('$') => {
            *s = substitute(s, lookup, unset)
                .map_err(|e| Error::invalid(&node.mark, join_path(path), e.to_string()))?;
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                interpolate_tree(item, path, lookup, unset)?;
                path.pop();
            }
        }
        Value::Map(map) => {
            for (k, v) in map.iter_mut() {
                path.push(Seg::Key(&k.name));
                interpolate_tree(v, path, lookup, unset)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// Spells a path out: `services.web.ports[1]`.
pub fn join_path(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(t: &str) -> Result<String, TemplateError> {
        let env: HashMap<&str, &str> = [("FOO", "foo"), ("EMPTY", "")].into_iter().collect();
        let lookup = |k: &str| env.get(k).map(|v| v.to_string());
        substitute(t, &lookup, &mut BTreeSet::new())
    }

    #[test]
    fn forms() {
        let cases = [
            ("$FOO", "foo"),
            ("${FOO}", "foo"),
            ("a${FOO}b", "afoob"),
            ("$$FOO", "$FOO"),
            ("${MISSING}", ""),
            ("${MISSING:-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${MISSING-def}", "def"),
            ("${FOO:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${MISSING:-${FOO}}", "foo"),
            ("${MISSING:-${NOPE:-deep}}", "deep"),
            ("${MISSING:-a}}", "a}"),
            ("${FOO:?err}", "foo"),
        ];
        for (t, want) in cases {
            assert_eq!(run(t).as_deref(), Ok(want), "{t}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            run("${MISSING:?is required}"),
            Err(TemplateError::Required {
                var: "MISSING".into(),
                msg: "is required".into()
            })
        );
        assert!(run("${EMPTY?x}").is_ok());
        assert!(matches!(run("${"), Err(TemplateError::Invalid(_))));
        assert!(matches!(run("$1"), Err(TemplateError::Invalid(_))));
        assert!(matches!(run("${FOO"), Err(TemplateError::Invalid(_))));
    }
}
