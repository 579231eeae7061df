//! The event log `berth events` reads: one JSON object per line in
//! `<root>/events.jsonl`, appended by whichever process acts (the CLI, a
//! supervisor), kept to about a megabyte by rotating to `events.jsonl.1`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime::run::ContainerRecord;

/// Rotate past this size.
const MAX_LOG: u64 = 1 << 20;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// `container`, `network`, `volume`, `image`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `create`, `start`, `die`, `destroy`, `pause`, `kill` …
    pub action: String,
    /// The object's id.
    pub id: String,
    /// Its name, image, labels and the action's details (`exitCode` …).
    pub attributes: BTreeMap<String, String>,
}

fn path(root: &Path) -> PathBuf {
    root.join("events.jsonl")
}

/// Now, as event times are written (sortable as text).
pub fn now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let base = crate::image::archive::rfc3339(now.as_secs());
    format!("{}.{:09}Z", base.trim_end_matches('Z'), now.subsec_nanos())
}

/// Appends an event. Losing one is better than failing what it reports,
/// so errors are ignored.
pub fn record(
    root: &Path,
    kind: &str,
    action: &str,
    id: &str,
    attributes: BTreeMap<String, String>,
) {
    let event = Event {
        time: now(),
        kind: kind.into(),
        action: action.into(),
        id: id.into(),
        attributes,
    };
    let Ok(mut line) = serde_json::to_vec(&event) else {
        return;
    };
    line.push(b'\n');
    let p = path(root);
    if std::fs::metadata(&p).is_ok_and(|m| m.len() > MAX_LOG) {
        let _ = std::fs::rename(&p, root.join("events.jsonl.1"));
    }
    // One write on an O_APPEND file: concurrent writers never interleave
    // inside a line.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
    {
        let _ = f.write_all(&line);
    }
}

/// A container event, with the attributes Docker gives (name, image, labels).
pub fn container(root: &Path, action: &str, record: &ContainerRecord, extra: &[(&str, String)]) {
    let mut attributes: BTreeMap<String, String> = record.labels.clone();
    attributes.insert("name".into(), record.name.clone());
    attributes.insert("image".into(), record.image.clone());
    for (k, v) in extra {
        attributes.insert((*k).to_string(), v.clone());
    }
    self::record(root, "container", action, &record.id, attributes);
}

/// Events at or after `since` (and before `until`), oldest first.
pub fn read(root: &Path, since: Option<&str>, until: Option<&str>) -> Vec<Event> {
    let mut out = Vec::new();
    for p in [root.join("events.jsonl.1"), path(root)] {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        out.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Event>(l).ok())
                .filter(|e| since.is_none_or(|s| e.time.as_str() >= s))
                .filter(|e| until.is_none_or(|u| e.time.as_str() < u)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_appended_and_read_back_in_a_window() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), "network", "create", "n1", BTreeMap::new());
        let mid = now();
        record(dir.path(), "network", "destroy", "n1", BTreeMap::new());
        let all = read(dir.path(), None, None);
        assert_eq!(all.len(), 2);
        let later = read(dir.path(), Some(&mid), None);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].action, "destroy");
        assert!(read(dir.path(), None, Some(&mid))[0].action == "create");
    }
}
