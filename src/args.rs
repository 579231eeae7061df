//! Small argument parsers shared by several commands.

use std::collections::BTreeMap;

use anyhow::bail;

/// `key=value` flags (`--label`, `--opt`) into a map.
pub fn key_values(items: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kv in items {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("invalid {what} {kv:?}: expected key=value");
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}
