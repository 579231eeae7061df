//! `.env` files the way Docker Compose reads them: `KEY=VALUE` or `KEY: VALUE`,
//! `export`, single quotes (literal), double quotes (escapes and
//! substitution), multi-line quoted values, comments, a bare `KEY` inherited
//! from the environment, a UTF-8 byte-order mark.

use std::collections::BTreeSet;
use std::path::Path;

use indexmap::IndexMap;

use crate::error::{Error, Result, read_to_string};
use crate::interpolate::substitute;
use crate::yaml::Mark;

/// Ordered `KEY → VALUE` pairs; a later definition replaces an earlier one.
pub type EnvMap = IndexMap<String, String>;

/// Reads and parses a dotenv file. Variables in values are looked up in
/// `lookup` first, then among the file's earlier definitions.
pub fn read(path: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<EnvMap> {
    let text = read_to_string(path)?;
    parse(&text, lookup).map_err(|(line, msg)| {
        Error::invalid(&Mark::new(&path.display().to_string(), line, 1), "", msg)
    })
}

/// Parses dotenv text; an error gives the 1-based line and a message.
pub fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<EnvMap, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let line_of = |pos: usize| text[..pos].matches('\n').count() + 1;
    let end_of_line = |pos: usize| text[pos..].find('\n').map_or(text.len(), |p| pos + p);
    let mut env = EnvMap::new();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if trimmed.is_empty() {
            break;
        }
        let line_end = end_of_line(pos);
        if trimmed.starts_with('#') {
            pos = line_end;
            continue;
        }
        let line_no = line_of(pos);
        let err = |msg: String| (line_no, msg);
        let mut body = pos;
        if let Some(after) = text[pos..line_end].strip_prefix("export ") {
            body = line_end - after.trim_start().len();
        }
        let line = &text[body..line_end];
        let Some(sep) = line.find(['=', ':']) else {
            // A bare name: inherit the value from the environment, if any.
            let key = line.trim();
            check_key(key).map_err(err)?;
            if let Some(v) = lookup(key) {
                env.insert(key.to_string(), v);
            }
            pos = line_end;
            continue;
        };
        let key = line[..sep].trim();
        check_key(key).map_err(err)?;
        let after = &line[sep + 1..];
        let vpos = body + sep + 1 + (after.len() - after.trim_start_matches([' ', '\t']).len());
        let value = match text[vpos..].chars().next() {
            Some(q @ ('\'' | '"')) => {
                let (raw, len) = quoted(&text[vpos + 1..], q)
                    .ok_or_else(|| err(format!("unterminated quoted value for {key}")))?;
                pos = end_of_line(vpos + 1 + len);
                if q == '"' {
                    expand(&unescape_double(&raw), &env, lookup).map_err(err)?
                } else {
                    raw
                }
            }
            _ => {
                let mut v = &text[vpos..line_end];
                if let Some(p) = v.find(" #") {
                    v = &v[..p];
                }
                pos = line_end;
                expand(v.trim(), &env, lookup).map_err(err)?
            }
        };
        env.insert(key.to_string(), value);
    }
    Ok(env)
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("missing variable name".to_string());
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')))
    {
        return Err(format!(
            "unexpected character {c:?} in variable name {key:?}"
        ));
    }
    Ok(())
}

/// The text up to the closing quote (with `\q` escaping the quote) and how
/// many bytes were consumed including the closing quote.
fn quoted(s: &str, q: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            if let Some((_, n)) = chars.next() {
                if n == q {
                    out.push(n);
                } else {
                    out.push('\\');
                    out.push(n);
                }
            }
        } else if c == q {
            return Some((out, i + c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    None
}

fn unescape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            // Keep `\$` for the substitution step, which reads `$$` as a dollar.
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn expand(
    value: &str,
    env: &EnvMap,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let both = |k: &str| lookup(k).or_else(|| env.get(k).cloned());
    substitute(value, &both, &mut BTreeSet::new()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn plain_and_quoted() {
        let env = parse(
            "OPTION_A=1\nOPTION_C= 3\nOPTION_E = 5\n456 = ABC\nOPTION_F = \nOPTION_H = my string # Inline comment\n\
             Q='Let\\'s go!'\nD=\"a\\nb\"\nS='\\n'\nM = 'first line\nsecond line'\nZ = \"last\"\nexport X=2\nF:BAR\n",
            &none,
        )
        .unwrap();
        assert_eq!(env["OPTION_A"], "1");
        assert_eq!(env["OPTION_C"], "3");
        assert_eq!(env["OPTION_E"], "5");
        assert_eq!(env["456"], "ABC");
        assert_eq!(env["OPTION_F"], "");
        assert_eq!(env["OPTION_H"], "my string");
        assert_eq!(env["Q"], "Let's go!");
        assert_eq!(env["D"], "a\nb");
        assert_eq!(env["S"], "\\n");
        assert_eq!(env["M"], "first line\nsecond line");
        assert_eq!(env["Z"], "last");
        assert_eq!(env["X"], "2");
        assert_eq!(env["F"], "BAR");
    }

    #[test]
    fn substitution_and_inheritance() {
        let lookup = |k: &str| (k == "FROM_OS").then(|| "os".to_string());
        let env = parse(
            "A=1\nB=${A}\nC=$B\nD=${A}_${B}\nE=${NOPE}\nFROM_OS\nNOT_FOUND\nG=${G:-1}\n",
            &lookup,
        )
        .unwrap();
        assert_eq!(env["B"], "1");
        assert_eq!(env["C"], "1");
        assert_eq!(env["D"], "1_1");
        assert_eq!(env["E"], "");
        assert_eq!(env["FROM_OS"], "os");
        assert!(!env.contains_key("NOT_FOUND"));
        assert_eq!(env["G"], "1");
    }

    #[test]
    fn bad_key_names_the_line() {
        let err = parse("# c\nfoo=\"\n  a\n\"\nINVALID LINE\nzot=qix", &none).unwrap_err();
        assert_eq!(err.0, 5);
    }
}
