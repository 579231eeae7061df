//! A container's own network namespace, made by berth for the runtime's
//! init to join: on a thread beside the preparation of the container's
//! root, since it is the slowest namespace to make (0.35 ms here, as much
//! as all the others together), and with its loopback up, as Docker's are
//! (a process listening on 127.0.0.1 must work without any network).
//!
//! A namespace lives as long as a handle on it: the thread that made it
//! ends, the returned descriptor keeps it until the init has joined.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};

/// A new network namespace with its loopback up, made on a thread of its
/// own (unsharing moves only the calling thread).
pub fn create() -> Result<OwnedFd> {
    std::thread::scope(|s| s.spawn(create_here).join())
        .unwrap_or_else(|_| Err(fail("making", std::io::Error::other("the thread panicked"))))
}

/// The path the runtime's processes open `ns` at: they are clones of this
/// process, with its descriptors.
pub fn path_of(ns: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", ns.as_raw_fd()))
}

/// Brings up the loopback of the network namespace of process `pid` (one
/// its runtime made, as in a user namespace of its own), from a thread
/// that joins it.
pub fn loopback_up_of(pid: i32) -> Result<()> {
    let path = format!("/proc/{pid}/ns/net");
    let ns = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| fail("opening", e.into()))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| fail("joining", e.into()))?;
            loopback_up()
        })
        .join()
    })
    .unwrap_or_else(|_| {
        Err(fail(
            "joining",
            std::io::Error::other("the thread panicked"),
        ))
    })
}

/// [`create`] on the calling thread, which it leaves in the new
/// namespace: for a thread that ends after.
pub fn create_here() -> Result<OwnedFd> {
    // SAFETY: unsharing the network namespace touches only this thread's
    // view of the network; no memory is shared or freed by it.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .map_err(|e| fail("making", e.into()))?;
    loopback_up()?;
    rustix::fs::open(
        "/proc/thread-self/ns/net",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail("opening", e.into()))
}

/// Sets `lo` of this thread's network namespace up; the kernel gives it
/// 127.0.0.1 (and ::1) then.
fn loopback_up() -> Result<()> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .map_err(|e| fail("configuring the loopback of", e.into()))?;
    // SAFETY: an all-zero ifreq is valid; the name fits its array.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write only `req`,
    // which lives across both calls.
    let ok = unsafe {
        libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) == 0
        }
    };
    if ok {
        Ok(())
    } else {
        Err(fail(
            "configuring the loopback of",
            std::io::Error::last_os_error(),
        ))
    }
}

fn fail(what: &str, e: std::io::Error) -> Error {
    Error::Conflict(format!("{what} the container's network namespace: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_new_namespace_is_not_the_callers_and_has_its_loopback_up() {
        if !rustix::process::geteuid().is_root() {
            panic!("this test needs root (it makes a network namespace)");
        }
        let ns = create().unwrap();
        let own = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
        let made = rustix::fs::fstat(&ns).unwrap();
        assert_ne!(
            (own.ino(), own.dev()),
            (made.st_ino, made.st_dev),
            "the caller stayed in its namespace"
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap();
                // 127.0.0.1 exists only on a loopback that is up.
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.send_to(b"x", sock.local_addr().unwrap()).unwrap();
                let mut buf = [0u8; 1];
                sock.recv(&mut buf).unwrap();
            })
            .join()
            .unwrap()
        });
    }
}
