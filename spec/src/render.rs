//! Printing a project as `docker compose config` does: JSON with Go's
//! escaping and two-space indentation, or YAML in the same field order.

use std::io;

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::{Formatter, PrettyFormatter};

use crate::model::Project;

/// Wraps serde_json's pretty printer to escape `<`, `>` and `&` the way Go's
/// `encoding/json` does, so output is byte-for-byte comparable.
struct GoFormatter<'a>(PrettyFormatter<'a>);

impl Formatter for GoFormatter<'_> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        s: &str,
    ) -> io::Result<()> {
        let mut last = 0;
        for (i, c) in s.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&s.as_bytes()[last..i])?;
            w.write_all(esc.as_bytes())?;
            last = i + c.len_utf8();
        }
        w.write_all(&s.as_bytes()[last..])
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Any serialisable value as Go-style indented JSON.
pub fn to_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, GoFormatter(PrettyFormatter::new()));
    // Writing into a Vec cannot fail and every map key in the model is a string.
    if value.serialize(&mut ser).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The project as `docker compose config --format json` prints it.
pub fn project_json(project: &Project) -> String {
    to_json(project)
}

/// The project as `docker compose config` prints it (YAML).
pub fn project_yaml(project: &Project) -> String {
    let value = serde_json::to_value(project).unwrap_or(Value::Null);
    let Value::Object(mut map) = value else {
        return String::new();
    };
    // YAML output follows the model's field order, not sorted keys, and
    // leaves out what Docker Compose's YAML encoder omits but its JSON
    // encoder keeps.
    yaml_shape(&mut map, 0);
    if let Some(Value::Object(services)) = map.get_mut("services") {
        for (name, svc) in services.iter_mut() {
            if let (Value::Object(s), Some(model)) = (svc, project.services.get(name)) {
                s.extend(model.extensions.clone());
            }
        }
    }
    let mut ordered = serde_json::Map::default();
    for key in [
        "name", "services", "networks", "volumes", "secrets", "configs",
    ] {
        if let Some(v) = map.shift_remove(key) {
            ordered.insert(key.to_string(), v);
        }
    }
    ordered.extend(map);
    let mut out = String::new();
    yaml_map(&ordered, 0, &mut out);
    out
}

/// Drops the empty structs and `null` commands Go's YAML encoder omits, and
/// uses the YAML names of the block-IO device fields.
fn yaml_shape(map: &mut serde_json::Map<String, Value>, depth: usize) {
    map.retain(|k, v| {
        let empty_struct = matches!(v, Value::Object(o) if o.is_empty())
            && matches!(k.as_str(), "ipam" | "placement" | "resources");
        let null_command = depth == 2 && v.is_null() && (k == "command" || k == "entrypoint");
        let empty_exec = k == "exec"
            && matches!(v, Value::Object(o) if o.len() == 1 && o.get("command") == Some(&Value::Null));
        !(empty_struct || null_command || empty_exec)
    });
    for (k, v) in map.iter_mut() {
        match v {
            Value::Object(o) => yaml_shape(o, depth + 1),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(o) = item {
                        if k.starts_with("device_") || k == "weight_device" {
                            let renamed: serde_json::Map<String, Value> = std::mem::take(o)
                                .into_iter()
                                .map(|(k, v)| (k.to_lowercase(), v))
                                .collect();
                            *o = renamed;
                        }
                        yaml_shape(o, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}

fn yaml_map(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    if map.is_empty() {
        out.push_str(" {}\n");
        return;
    }
    for (k, v) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&yaml_scalar_str(k));
        out.push(':');
        yaml_value(v, indent, out);
    }
}

fn yaml_value(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml_map(m, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            for item in items {
                out.push_str(&" ".repeat(indent + 2));
                out.push('-');
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let mut first = true;
                        for (k, v) in m {
                            if first {
                                out.push(' ');
                                first = false;
                            } else {
                                out.push_str(&" ".repeat(indent + 4));
                            }
                            out.push_str(&yaml_scalar_str(k));
                            out.push(':');
                            yaml_value(v, indent + 4, out);
                        }
                    }
                    other => yaml_value(other, indent + 2, out),
                }
            }
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        Value::String(s) if s.contains('\n') => {
            out.push_str(if s.ends_with('\n') { " |\n" } else { " |-\n" });
            for line in s.trim_end_matches('\n').split('\n') {
                if !line.is_empty() {
                    out.push_str(&" ".repeat(indent + 2));
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        Value::String(s) => {
            out.push(' ');
            out.push_str(&yaml_scalar_str(s));
            out.push('\n');
        }
        Value::Null => out.push_str(" null\n"),
        Value::Bool(b) => {
            out.push(' ');
            out.push_str(if *b { "true" } else { "false" });
            out.push('\n');
        }
        Value::Number(n) => {
            out.push(' ');
            out.push_str(&n.to_string());
            out.push('\n');
        }
    }
}

/// A string as a YAML scalar, styled the way Go's YAML encoder styles it:
/// plain when that reads back as the same string, double quotes when the
/// plain form would read as another type, single quotes when only the syntax
/// is in the way.
fn yaml_scalar_str(s: &str) -> String {
    let other_type = !matches!(crate::yaml::resolve_plain(s), crate::yaml::Value::Str(_))
        || is_old_bool(s)
        || is_base60_float(s);
    let printable = s.chars().all(|c| !c.is_control() || c == '\t');
    if other_type || !printable {
        return serde_json::to_string(s).unwrap_or_default();
    }
    if plain_allowed(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

/// YAML 1.1 booleans Go's encoder still quotes.
fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// YAML 1.1 sexagesimal numbers such as `10:30`.
fn is_base60_float(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (main, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut parts = main.split(':');
    let Some(first) = parts.next() else {
        return false;
    };
    let first_ok = first.starts_with(|c: char| c.is_ascii_digit())
        && first.chars().all(|c| c.is_ascii_digit() || c == '_');
    let mut rest = 0;
    let rest_ok = parts.all(|p| {
        rest += 1;
        !p.is_empty()
            && p.len() <= 2
            && p.chars().all(|c| c.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n < 60)
    });
    first_ok && rest > 0 && rest_ok && frac.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// Whether the block-context plain style can carry `s` unchanged.
fn plain_allowed(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    let second = s.chars().nth(1);
    if "-?:".contains(first) && second.is_none_or(|c| c == ' ') {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    !(s.contains(": ") || s.contains(" #") || s.contains('\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_styles_follow_go_yaml() {
        let cases = [
            ("plain", "plain"),
            ("-c", "-c"),
            ("--port", "--port"),
            ("3000", "\"3000\""),
            ("yes", "\"yes\""),
            ("", "\"\""),
            ("10:30", "\"10:30\""),
            ("8080:80", "8080:80"),
            ("a: b", "'a: b'"),
            ("-", "'-'"),
            ("#x", "'#x'"),
            (" lead", "' lead'"),
            ("*star", "'*star'"),
            ("it's: x", "'it''s: x'"),
            ("héllo ✓", "héllo ✓"),
        ];
        for (input, want) in cases {
            assert_eq!(yaml_scalar_str(input), want, "{input:?}");
        }
    }
}
