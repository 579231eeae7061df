//! `user` → uid and gid, resolved by parsing the image's own `/etc/passwd`
//! and `/etc/group`, opened inside the container root (never through libc's
//! NSS, never following a link out of the root), size-capped.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::{Error, Result};

/// The most of a passwd or group file that is read.
const MAX_DB: u64 = 10 << 20;

/// Reads a small regular file inside `root`, resolving links within it.
fn read_in_root(root: &Path, rel: &str) -> Option<String> {
    let dir: OwnedFd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = crate::fsutil::openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(MAX_DB)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

fn parse_id(s: &str, user: &str) -> Result<u32> {
    s.parse::<u32>()
        .ok()
        .filter(|v| *v < u32::MAX)
        .ok_or_else(|| Error::Conflict(format!("invalid user {user:?}: id {s} out of range")))
}

/// Resolves `name[:group]` or `uid[:gid]` inside `root`: (uid, gid,
/// supplementary gids). Numeric ids are taken as ids even when a user has
/// that name. The supplementary groups are, as with Docker, the primary
/// group and then those that list the user as a member.
pub fn resolve(root: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, vec![0]));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_in_root(root, "etc/passwd").unwrap_or_default();
    let group = read_in_root(root, "etc/group").unwrap_or_default();
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && if is_num(u) { f[2] == u } else { f[0] == u });
    let (uid, name, mut gid) = if is_num(u) {
        let uid = parse_id(u, user)?;
        let gid = entry
            .as_ref()
            .map(|f| parse_id(f[3], user))
            .transpose()?
            .unwrap_or(0);
        (uid, entry.as_ref().map(|f| f[0].to_string()), gid)
    } else {
        let f = entry.ok_or_else(|| {
            Error::Conflict(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        })?;
        (
            parse_id(f[2], user)?,
            Some(f[0].to_string()),
            parse_id(f[3], user)?,
        )
    };
    if let Some(g) = g {
        gid = if is_num(g) {
            parse_id(g, user)?
        } else {
            let f = group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .ok_or_else(|| {
                    Error::Conflict(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?;
            parse_id(f[2], user)?
        };
    }
    let mut extra = vec![gid];
    if let Some(name) = name {
        for f in group
            .lines()
            .take(100_000)
            .map(|l| l.split(':').collect::<Vec<_>>())
        {
            if f.len() >= 4
                && f[3].split(',').any(|m| m == name)
                && let Ok(id) = parse_id(f[2], user)
                && !extra.contains(&id)
            {
                extra.push(id);
            }
        }
    }
    Ok((uid, gid, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_from_the_image_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\n1000:x:0:0:evil:/:/bin/sh\napp:x:1001:1001::/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\napp:x:1001:\nextra:x:2000:app\n",
        )
        .unwrap();
        assert_eq!(
            resolve(dir.path(), "app").unwrap(),
            (1001, 1001, vec![1001, 2000])
        );
        assert_eq!(
            resolve(dir.path(), "1000").unwrap().0,
            1000,
            "numeric means id, not name"
        );
        assert_eq!(resolve(dir.path(), "app:root").unwrap().1, 0);
        assert_eq!(resolve(dir.path(), "5:7").unwrap(), (5, 7, vec![7]));
        assert_eq!(resolve(dir.path(), "").unwrap(), (0, 0, vec![0]));
        for bad in ["nobody", "4294967296", "-1", "4294967295"] {
            assert!(resolve(dir.path(), bad).is_err(), "{bad}");
        }
    }

    /// Catalog RT-21 (CVE-2026-30892, crun `exec -u 1` ran as uid 0): the
    /// user strings of its table resolve to exactly these ids, or fail.
    #[test]
    fn the_catalogs_user_strings_resolve_exactly_or_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\n").unwrap();
        let ids = |u: &str| resolve(dir.path(), u).ok().map(|(u, g, _)| (u, g));
        assert_eq!(ids("1"), Some((1, 0)));
        assert_eq!(ids("1:1"), Some((1, 1)));
        assert_eq!(ids("root:1000"), Some((0, 1000)));
        for bad in ["0x1", " 1", "+1", "1:", ":1", "4294967295"] {
            assert_eq!(ids(bad), None, "{bad:?}");
        }
    }
}
