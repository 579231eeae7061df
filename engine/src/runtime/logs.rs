//! A container's log: Docker's json-file format (one JSON object per line),
//! rotated by size as Docker's `max-size` / `max-file` options say
//! (`container-json.log`, then `.1` the newest rotated, up to `.N-1`), and
//! read back across rotations by a cursor that follows the file it was
//! reading even after it was renamed.

use std::fs::File;
use std::io::{BufRead, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The log file of the container whose directory is `dir`.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("container-json.log")
}

fn rotated(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("container-json.log.{n}"))
}

/// `logging:` as the supervisor applies it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// `none` keeps nothing; anything else is written as json-file.
    #[serde(default)]
    pub driver: String,
    /// Rotate once the file reaches this many bytes.
    #[serde(default)]
    pub max_size: Option<u64>,
    /// How many files to keep, the current one included (Docker's default: 1).
    #[serde(default)]
    pub max_file: Option<u32>,
}

impl LogConfig {
    /// From Docker's driver options (`max-size: 10m`, `max-file: "3"`).
    pub fn from_options(
        driver: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<LogConfig, String> {
        let mut c = LogConfig {
            driver: driver.to_string(),
            ..LogConfig::default()
        };
        for (k, v) in options {
            match k.as_str() {
                "max-size" => c.max_size = Some(parse_size(v)?),
                "max-file" => {
                    let n: u32 = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| format!("logging max-file {v:?}: a number from 1"))?;
                    c.max_file = Some(n);
                }
                // Options of other drivers, and json-file ones with no
                // effect here (labels, tag, compress …).
                _ => {}
            }
        }
        Ok(c)
    }
}

/// Where `logging` sets no size: three files of 10 MiB at most, so that a
/// chatty container never fills the disk (Docker's json-file keeps
/// everything unless told; `max-size: -1` asks berth for that too).
const DEFAULT_MAX_SIZE: u64 = 10 << 20;
const DEFAULT_MAX_FILE: u32 = 3;

impl LogConfig {
    /// The limits the writer applies: berth's defaults where none were set.
    fn with_defaults(mut self) -> LogConfig {
        match self.max_size {
            None => {
                self.max_size = Some(DEFAULT_MAX_SIZE);
                self.max_file.get_or_insert(DEFAULT_MAX_FILE);
            }
            Some(u64::MAX) => self.max_size = None,
            Some(_) => {}
        }
        self
    }
}

/// `10m`, `1g`, `500k`, `1024` (Docker's units for max-size: powers of
/// 1024); `-1` for no limit.
fn parse_size(v: &str) -> Result<u64, String> {
    let v = v.trim().to_ascii_lowercase();
    if v == "-1" {
        return Ok(u64::MAX);
    }
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("logging max-size {v:?}: not a size"))?;
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return Err(format!("logging max-size {v:?}: unknown unit")),
    };
    n.checked_mul(mult)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("logging max-size {v:?}: out of range"))
}

/// The supervisor's side: appends lines, rotating by size.
pub struct LogWriter {
    dir: PathBuf,
    file: Option<File>,
    size: u64,
    config: LogConfig,
}

impl LogWriter {
    /// Opens (appending to) the log of the container in `dir`.
    pub fn open(dir: &Path, config: LogConfig) -> std::io::Result<LogWriter> {
        let config = config.with_defaults();
        let file = if config.driver == "none" {
            None
        } else {
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log_path(dir))?,
            )
        };
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        Ok(LogWriter {
            dir: dir.to_path_buf(),
            file,
            size,
            config,
        })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.config.max_file.unwrap_or(1);
        if keep <= 1 {
            if let Some(f) = &self.file {
                f.set_len(0)?;
            }
        } else {
            for n in (1..keep - 1).rev() {
                let _ = std::fs::rename(rotated(&self.dir, n), rotated(&self.dir, n + 1));
            }
            std::fs::rename(log_path(&self.dir), rotated(&self.dir, 1))?;
            self.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log_path(&self.dir))?,
            );
        }
        self.size = 0;
        Ok(())
    }

    /// Flushes the file to disk.
    pub fn sync(&self) {
        if let Some(f) = &self.file {
            let _ = f.sync_all();
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(f) = self.file.as_mut() else {
            return Ok(buf.len());
        };
        let n = f.write(buf)?;
        self.size += n as u64;
        if self.config.max_size.is_some_and(|max| self.size >= max) && buf.ends_with(b"\n") {
            self.rotate()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The readers' side: where reading stopped, in which file.
#[derive(Default)]
pub struct LogCursor {
    inode: Option<u64>,
    offset: u64,
}

/// The open files of a log, oldest first and the current one last, with the
/// current one's inode: taken again until every name still names the file
/// opened under it, so that a rotation while a reader starts neither repeats
/// nor skips a file.
fn snapshot(dir: &Path) -> (Vec<File>, Option<u64>) {
    let ino = |p: &Path| std::fs::metadata(p).ok().map(|m| m.ino());
    loop {
        let mut opened: Vec<(PathBuf, File, Option<u64>)> = Vec::new();
        for path in std::iter::once(log_path(dir)).chain((1..1000).map(|n| rotated(dir, n))) {
            let Ok(f) = File::open(&path) else { break };
            let i = f.metadata().ok().map(|m| m.ino());
            opened.push((path, f, i));
        }
        let next = rotated(dir, opened.len() as u32);
        if opened.iter().all(|(p, _, i)| ino(p) == *i) && !next.exists() {
            let inode = opened.first().and_then(|(_, _, i)| *i);
            let files = opened.into_iter().rev().map(|(_, f, _)| f).collect();
            return (files, inode);
        }
    }
}

/// Complete lines of `path` from `offset`; returns the new offset.
fn lines_from(path: &Path, offset: u64, out: &mut Vec<String>) -> u64 {
    match File::open(path) {
        Ok(f) => lines_of(f, offset, out),
        Err(_) => offset,
    }
}

/// Complete lines of the open file `f` from `offset`; returns the new offset.
fn lines_of(f: File, offset: u64, out: &mut Vec<String>) -> u64 {
    let mut f = std::io::BufReader::new(f);
    if f.seek(std::io::SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let mut offset = offset;
    let mut buf = String::new();
    while f.read_line(&mut buf).unwrap_or(0) > 0 {
        if !buf.ends_with('\n') {
            break;
        }
        offset += buf.len() as u64;
        out.push(std::mem::take(&mut buf));
    }
    offset
}

impl LogCursor {
    /// Whether everything written so far has been read.
    pub fn at_end(&self, dir: &Path) -> bool {
        match std::fs::metadata(log_path(dir)) {
            Ok(m) => self.inode == Some(m.ino()) && self.offset == m.len(),
            Err(_) => true,
        }
    }

    /// Every complete line written since the last call, oldest first: the
    /// first call reads the rotated files too.
    pub fn read_new(&mut self, dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let current = log_path(dir);
        let inode = std::fs::metadata(&current).ok().map(|m| m.ino());
        match self.inode {
            None => {
                let (files, inode) = snapshot(dir);
                let mut files = files.into_iter().peekable();
                while let Some(f) = files.next() {
                    let end = lines_of(f, 0, &mut out);
                    if files.peek().is_none() {
                        self.offset = end;
                    }
                }
                self.inode = inode;
                return out;
            }
            Some(ino) if Some(ino) == inode => {
                self.offset = lines_from(&current, self.offset, &mut out);
            }
            Some(ino) => {
                // Rotated since: finish the file we were in, under its new
                // name, then everything after it.
                let mut renamed = None;
                for n in 1..1000 {
                    let p = rotated(dir, n);
                    match std::fs::metadata(&p) {
                        Ok(m) if m.ino() == ino => {
                            renamed = Some(n);
                            break;
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                if let Some(n) = renamed {
                    lines_from(&rotated(dir, n), self.offset, &mut out);
                    for m in (1..n).rev() {
                        lines_from(&rotated(dir, m), 0, &mut out);
                    }
                }
                self.offset = lines_from(&current, 0, &mut out);
            }
        }
        self.inode = inode;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_max_file_files_and_the_cursor_reads_across_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            driver: "json-file".into(),
            max_size: Some(20),
            max_file: Some(3),
        };
        let mut w = LogWriter::open(dir.path(), config).unwrap();
        let mut cursor = LogCursor::default();
        let mut seen = Vec::new();
        for i in 0..10 {
            writeln!(w, "line number {i:02}").unwrap();
            if i % 3 == 0 {
                seen.extend(cursor.read_new(dir.path()));
            }
        }
        seen.extend(cursor.read_new(dir.path()));
        let want: Vec<String> = (0..10).map(|i| format!("line number {i:02}\n")).collect();
        assert_eq!(seen, want, "a follower misses nothing");
        assert!(rotated(dir.path(), 2).exists() && !rotated(dir.path(), 3).exists());
        // A new reader sees only what the kept files hold, in order.
        let fresh = LogCursor::default().read_new(dir.path());
        assert_eq!(fresh, want[6..], "the files kept, two lines each, in order");
    }

    #[test]
    fn a_reader_starting_during_rotations_sees_each_line_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            driver: "json-file".into(),
            max_size: Some(64),
            max_file: Some(4),
        };
        let mut w = LogWriter::open(dir.path(), config).unwrap();
        std::thread::scope(|s| {
            let writer = s.spawn(move || {
                for i in 0..20_000u32 {
                    writeln!(w, "{i}").unwrap();
                }
            });
            while !writer.is_finished() {
                let lines = LogCursor::default().read_new(dir.path());
                let n: Vec<u32> = lines.iter().map(|l| l.trim().parse().unwrap()).collect();
                assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "{n:?}");
            }
        });
    }

    #[test]
    fn without_limits_a_log_keeps_three_files_of_ten_mebibytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        let line = vec![b'x'; 1 << 20];
        for _ in 0..45 {
            w.write_all(&line).unwrap();
            w.write_all(b"\n").unwrap();
        }
        let total: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= 3 * ((10 << 20) + (1 << 20) + 1), "{total}");
        assert!(rotated(dir.path(), 2).exists() && !rotated(dir.path(), 3).exists());
        let unlimited = LogConfig::from_options(
            "json-file",
            &[("max-size".to_string(), "-1".to_string())].into(),
        )
        .unwrap()
        .with_defaults();
        assert_eq!(unlimited.max_size, None);
    }

    #[test]
    fn sizes_and_counts_parse_as_docker_does() {
        let o = |k: &str, v: &str| [(k.to_string(), v.to_string())].into();
        assert_eq!(
            LogConfig::from_options("json-file", &o("max-size", "10m"))
                .unwrap()
                .max_size,
            Some(10 << 20)
        );
        assert!(LogConfig::from_options("json-file", &o("max-size", "ten")).is_err());
        assert!(LogConfig::from_options("json-file", &o("max-file", "0")).is_err());
    }
}
