//! YAML text → a tree of [`Node`]s that remember where they came from.
//!
//! Every later phase (interpolation, merging, `extends`, validation) works on
//! this tree, so that any error can name the file, line and column of the
//! value at fault. Scalars are resolved the way Docker Compose's YAML library
//! resolves them (YAML 1.2 core schema plus Go's leading-zero octal), anchors
//! and aliases are expanded, and merge keys (`<<: *base`) are applied here.
//! The Compose tags `!reset` and `!override` are kept on the node for the
//! merge phase.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use indexmap::IndexMap;
use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::{Error, Result};

/// A file name interned once per process, so that the mark every node
/// carries is a small `Copy` value instead of a reference-counted string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId(u32);

static FILES: std::sync::Mutex<Vec<Arc<str>>> = std::sync::Mutex::new(Vec::new());

impl FileId {
    /// The id of `name`, registering it the first time.
    pub fn intern(name: &str) -> FileId {
        let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = files.iter().position(|f| &**f == name) {
            return FileId(i as u32);
        }
        files.push(Arc::from(name));
        FileId((files.len() - 1) as u32)
    }

    /// The file's name.
    pub fn name(self) -> Arc<str> {
        let files = FILES.lock().unwrap_or_else(|e| e.into_inner());
        files
            .get(self.0 as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }
}

/// Where a node starts: file, 1-based line and 1-based column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The file (or `-` for stdin).
    pub file: FileId,
    /// 1-based line (0 for values that come from no file).
    pub line: u32,
    /// 1-based column.
    pub col: u32,
}

impl Mark {
    /// A mark for values that do not come from a file (defaults, CLI flags).
    pub fn synthetic() -> Mark {
        Mark {
            file: FileId::intern(""),
            line: 0,
            col: 0,
        }
    }

    /// A mark in `file` at 1-based `line` and `col`.
    pub fn new(file: &str, line: usize, col: usize) -> Mark {
        Mark {
            file: FileId::intern(file),
            line: line as u32,
            col: col as u32,
        }
    }

    /// True for marks that point into no file.
    pub fn is_synthetic(&self) -> bool {
        self.line == 0 && self.file.name().is_empty()
    }

    fn from_span(file: FileId, span: &Span) -> Mark {
        Mark {
            file,
            line: span.start.line() as u32,
            col: span.start.col() as u32 + 1,
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.name();
        if self.line == 0 {
            write!(f, "{file}")
        } else {
            write!(f, "{file}:{}:{}", self.line, self.col)
        }
    }
}

/// The Compose-specific YAML tags that steer merging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tag {
    /// No Compose tag.
    #[default]
    None,
    /// `!reset`: remove the value inherited from earlier files or `extends`.
    Reset,
    /// `!override`: replace the inherited value instead of merging into it.
    Override,
}

/// A mapping key: compared by name only, remembers its position.
#[derive(Clone, Debug)]
pub struct Key {
    /// The key as a string (YAML scalars of any type are stringified).
    pub name: String,
    /// Where the key is written.
    pub mark: Mark,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Key {}
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}
impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.name
    }
}

/// An ordered mapping that keeps its keys' positions. Hashed with foldhash:
/// fast, and seeded per process so hostile keys cannot force collisions.
pub type Map = IndexMap<Key, Node, foldhash::fast::RandomState>;

/// A YAML value.
#[derive(Clone, Debug)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping (boxed: it is the largest variant, and nodes move a lot).
    Map(Box<Map>),
}

/// A YAML value with its position and Compose tag.
#[derive(Clone, Debug)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it starts.
    pub mark: Mark,
    /// `!reset` / `!override`, if any.
    pub tag: Tag,
}

impl Node {
    /// A node with no tag.
    pub fn new(value: Value, mark: Mark) -> Node {
        Node {
            value,
            mark,
            tag: Tag::None,
        }
    }

    /// A string node.
    pub fn str(s: impl Into<String>, mark: Mark) -> Node {
        Node::new(Value::Str(s.into()), mark)
    }

    /// An empty mapping node.
    pub fn map(mark: Mark) -> Node {
        Node::new(Value::Map(Box::default()), mark)
    }

    /// The mapping inside, if this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The mapping inside, mutably, if this is one.
    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Look a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// Look a key up in a mapping node, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut().and_then(|m| m.get_mut(key))
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The scalar as text, the way Go's `fmt.Sprint` would print it.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some(String::new()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(format_float(*f)),
            Value::Str(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// A short name of the node's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Formats a float the way Go's `strconv.FormatFloat(f, 'g', -1, 64)` does for
/// the common cases (shortest representation, no trailing `.0`).
pub fn format_float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f.is_nan() {
        return "NaN".to_string();
    }
    let s = format!("{f}");
    if let Some(stripped) = s.strip_suffix(".0") {
        stripped.to_string()
    } else {
        s
    }
}

/// Parses YAML text into one node per document. An empty stream gives none.
pub fn parse(file: &Arc<str>, text: &str) -> Result<Vec<Node>> {
    let mut builder = Builder {
        file: FileId::intern(file),
        events: Parser::new_from_str(text).peekable(),
        anchors: HashMap::new(),
        nodes: 0,
        depth: 0,
    };
    builder.stream()
}

/// How many nodes one file may expand to. Aliases copy their anchor, so a
/// few lines of nested aliases ("billion laughs") could otherwise exhaust
/// memory.
const MAX_NODES: usize = 1_000_000;

struct Builder<'a> {
    file: FileId,
    events: std::iter::Peekable<Parser<'a, saphyr_parser::StrInput<'a>>>,
    /// Anchored nodes and how many nodes each contains.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    /// Nesting depth, bounded so that hostile input cannot overflow the stack.
    depth: usize,
}

const MAX_DEPTH: usize = 256;

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span)> {
        match self.events.next() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(Error::Syntax {
                mark: Mark {
                    file: self.file,
                    line: e.marker().line() as u32,
                    col: e.marker().col() as u32 + 1,
                },
                msg: e.info().to_string(),
            }),
            None => Err(Error::Syntax {
                mark: Mark {
                    file: self.file,
                    line: 0,
                    col: 0,
                },
                msg: "unexpected end of input".to_string(),
            }),
        }
    }

    fn stream(&mut self) -> Result<Vec<Node>> {
        let mut docs = Vec::new();
        loop {
            let (ev, _) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(docs),
                Event::DocumentStart(_) => {
                    self.anchors.clear();
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::DocumentEnd) {
                        continue;
                    }
                    docs.push(self.node(ev, span)?);
                }
                other => return Err(self.unexpected(&other)),
            }
        }
    }

    fn unexpected(&self, ev: &Event<'_>) -> Error {
        Error::Syntax {
            mark: Mark::synthetic(),
            msg: format!("unexpected YAML event {ev:?}"),
        }
    }

    fn count(&mut self, n: usize, mark: &Mark) -> Result<()> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(Error::Syntax {
                mark: *mark,
                msg: format!("document expands to more than {MAX_NODES} values (too many aliases)"),
            });
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, span: Span) -> Result<Node> {
        let mark = Mark::from_span(self.file, &span);
        if matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..)) {
            if self.depth >= MAX_DEPTH {
                return Err(Error::Syntax {
                    mark,
                    msg: format!("nesting deeper than {MAX_DEPTH} levels"),
                });
            }
            self.depth += 1;
            let node = self.collection(ev, mark);
            self.depth -= 1;
            return node;
        }
        self.scalar_or_alias(ev, mark)
    }

    fn scalar_or_alias(&mut self, ev: Event<'a>, mark: Mark) -> Result<Node> {
        self.count(1, &mark)?;
        match ev {
            Event::Alias(id) => {
                let (node, size) = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| Error::Syntax {
                        mark,
                        msg: "unknown anchor".to_string(),
                    })?;
                self.count(size, &mark)?;
                Ok(node)
            }
            Event::Scalar(text, style, anchor, tag) => {
                let (value, tag) = resolve_scalar(&text, style, tag.as_deref(), &mark)?;
                let node = Node { value, mark, tag };
                if anchor > 0 {
                    self.anchors.insert(anchor, (node.clone(), 1));
                }
                Ok(node)
            }
            other => Err(self.unexpected(&other)),
        }
    }

    fn collection(&mut self, ev: Event<'a>, mark: Mark) -> Result<Node> {
        let start = self.nodes;
        self.count(1, &mark)?;
        match ev {
            Event::SequenceStart(anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, span)?);
                }
                let node = Node {
                    value: Value::Seq(items),
                    mark,
                    tag: compose_tag(tag.as_deref()),
                };
                if anchor > 0 {
                    self.anchors
                        .insert(anchor, (node.clone(), self.nodes - start));
                }
                Ok(node)
            }
            Event::MappingStart(anchor, tag) => {
                let mut map = Map::default();
                let mut merges: Vec<Node> = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let is_merge_key =
                        matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<");
                    let key_node = self.node(ev, span)?;
                    let (ev, span) = self.next()?;
                    let value = self.node(ev, span)?;
                    if is_merge_key {
                        merges.push(value);
                        continue;
                    }
                    let Node {
                        value: key_value,
                        mark: key_mark,
                        ..
                    } = key_node;
                    let name = match key_value {
                        Value::Str(s) => s,
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(Error::Syntax {
                                mark: key_mark,
                                msg: "mapping keys must be scalars".to_string(),
                            });
                        }
                        scalar => Node::new(scalar, key_mark)
                            .scalar_text()
                            .unwrap_or_default(),
                    };
                    let key = Key {
                        name,
                        mark: key_mark,
                    };
                    if let Some((prev, _)) = map.get_key_value(key.name.as_str()) {
                        return Err(Error::Syntax {
                            mark: key.mark,
                            msg: format!(
                                "mapping key {:?} already defined at line {}",
                                key.name, prev.mark.line
                            ),
                        });
                    }
                    map.insert(key, value);
                }
                for merge in merges {
                    apply_merge_key(&mut map, merge)?;
                }
                let node = Node {
                    value: Value::Map(Box::new(map)),
                    mark,
                    tag: compose_tag(tag.as_deref()),
                };
                if anchor > 0 {
                    self.anchors
                        .insert(anchor, (node.clone(), self.nodes - start));
                }
                Ok(node)
            }
            other => Err(self.unexpected(&other)),
        }
    }
}

/// `<<: *a` or `<<: [*a, *b]`: keys already present win, earlier sources win
/// over later ones.
fn apply_merge_key(map: &mut Map, merge: Node) -> Result<()> {
    let sources = match merge.value {
        Value::Map(m) => vec![m],
        Value::Seq(items) => items
            .into_iter()
            .map(|n| match n.value {
                Value::Map(m) => Ok(m),
                _ => Err(Error::Syntax {
                    mark: n.mark,
                    msg: "merge key sequence must contain only mappings".to_string(),
                }),
            })
            .collect::<Result<Vec<_>>>()?,
        _ => {
            return Err(Error::Syntax {
                mark: merge.mark,
                msg: "merge key value must be a mapping or a sequence of mappings".to_string(),
            });
        }
    };
    for source in sources {
        for (k, v) in *source {
            if !map.contains_key(k.name.as_str()) {
                map.insert(k, v);
            }
        }
    }
    Ok(())
}

fn compose_tag(tag: Option<&saphyr_parser::Tag>) -> Tag {
    match tag {
        Some(t) if t.handle == "!" && t.suffix == "reset" => Tag::Reset,
        Some(t) if t.handle == "!" && t.suffix == "override" => Tag::Override,
        _ => Tag::None,
    }
}

fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&saphyr_parser::Tag>,
    mark: &Mark,
) -> Result<(Value, Tag)> {
    let compose = compose_tag(tag);
    if let Some(t) = tag {
        let core = t.handle == "tag:yaml.org,2002:" || t.handle == "!!";
        if core {
            let value = match t.suffix.as_str() {
                "str" => Value::Str(text.to_string()),
                "null" => Value::Null,
                "bool" | "int" | "float" => {
                    let v = resolve_plain(text);
                    let ok = matches!(
                        (&v, t.suffix.as_str()),
                        (Value::Bool(_), "bool")
                            | (Value::Int(_), "int")
                            | (Value::Float(_), "float")
                            | (Value::Int(_), "float")
                    );
                    if !ok {
                        return Err(Error::Syntax {
                            mark: *mark,
                            msg: format!("cannot decode {text:?} as !!{}", t.suffix),
                        });
                    }
                    v
                }
                _ => Value::Str(text.to_string()),
            };
            return Ok((value, Tag::None));
        }
    }
    let value = if style == ScalarStyle::Plain {
        resolve_plain(text)
    } else {
        Value::Str(text.to_string())
    };
    Ok((value, compose))
}

/// The type of an untagged plain scalar, as Docker Compose's YAML decoder sees it.
pub fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Value::Int(i);
    }
    if looks_like_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() {
        return None;
    }
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else if body.len() > 1 && body.starts_with('0') {
        // Go's strconv with base 0, as Compose's YAML decoder uses: `0440` is octal.
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let mut saw_digit = false;
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            saw_digit = true;
            chars.next();
        } else {
            break;
        }
    }
    if chars.peek() == Some(&'.') {
        chars.next();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() {
                saw_digit = true;
                chars.next();
            } else {
                break;
            }
        }
    }
    if !saw_digit {
        return false;
    }
    if matches!(chars.peek(), Some('e') | Some('E')) {
        chars.next();
        if matches!(chars.peek(), Some('-') | Some('+')) {
            chars.next();
        }
        let mut exp = false;
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() {
                exp = true;
                chars.next();
            } else {
                break;
            }
        }
        if !exp {
            return false;
        }
    }
    chars.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        parse(&Arc::from("t.yaml"), text).unwrap().remove(0)
    }

    #[test]
    fn scalars_resolve_like_compose() {
        let n = one("a: 0440\nb: '0440'\nc: 8000:80\nd: 1.5\ne: yes\nf:\ng: true\nh: 0o17\n");
        let m = n.as_map().unwrap();
        assert!(matches!(m["a"].value, Value::Int(288)));
        assert!(matches!(&m["b"].value, Value::Str(s) if s == "0440"));
        assert!(matches!(&m["c"].value, Value::Str(s) if s == "8000:80"));
        assert!(matches!(m["d"].value, Value::Float(f) if f == 1.5));
        assert!(matches!(&m["e"].value, Value::Str(s) if s == "yes"));
        assert!(matches!(m["f"].value, Value::Null));
        assert!(matches!(m["g"].value, Value::Bool(true)));
        assert!(matches!(m["h"].value, Value::Int(15)));
    }

    #[test]
    fn merge_keys_keep_explicit_values() {
        let n = one("base: &b\n  x: 1\n  y: 2\nsvc:\n  <<: *b\n  y: 3\n");
        let svc = n.get("svc").unwrap();
        assert!(matches!(svc.get("x").unwrap().value, Value::Int(1)));
        assert!(matches!(svc.get("y").unwrap().value, Value::Int(3)));
    }

    #[test]
    fn marks_and_tags() {
        let n = one("services:\n  web:\n    command: !reset\n");
        let cmd = n.get("services").unwrap().get("web").unwrap();
        let (k, v) = cmd.as_map().unwrap().get_key_value("command").unwrap();
        assert_eq!((k.mark.line, k.mark.col), (3, 5));
        assert_eq!(v.tag, Tag::Reset);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = (b'a' + i) as char;
            let next = (b'a' + i + 1) as char;
            text.push_str(&format!("{next}: &{next} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let err = parse(&Arc::from("t.yaml"), &text).unwrap_err();
        assert!(err.to_string().contains("too many aliases"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(100_000);
        let err = parse(&Arc::from("t.yaml"), &text).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("nesting deeper") || msg.contains("recursion limit"),
            "{msg}"
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse(&Arc::from("t.yaml"), "a: 1\na: 2\n").unwrap_err();
        assert!(err.to_string().contains("t.yaml:2:1"), "{err}");
    }
}
