//! Terminals for `exec -it`: the runtime hands the pseudo-terminal's master
//! over a console socket, and the caller's terminal is put in raw mode and
//! joined to it until the process exits.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::{Error, Result};

fn err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Conflict(format!("terminal: {what}: {e}"))
}

/// A listening console socket in a private directory of its own (a short
/// path: socket paths are limited to 108 bytes), removed on drop.
pub struct ConsoleSocket {
    dir: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Creates one.
    pub fn new() -> Result<ConsoleSocket> {
        let dir =
            std::env::temp_dir().join(format!("berth-tty-{}", &crate::fsutil::random_id()?[..12]));
        crate::fsutil::private_dir(&dir)?;
        let listener = UnixListener::bind(dir.join("s")).map_err(err("console socket"))?;
        Ok(ConsoleSocket { dir, listener })
    }

    /// Its path, for the runtime to connect to.
    pub fn path(&self) -> PathBuf {
        self.dir.join("s")
    }

    /// The pseudo-terminal master the runtime sent.
    pub fn receive(&self) -> Result<OwnedFd> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let (conn, _) = self.listener.accept().map_err(err("console socket"))?;
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; 4096];
        rustix::net::recvmsg(
            &conn,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(|e| Error::Conflict(format!("terminal: receiving the master: {e}")))?;
        for msg in ancillary.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = msg
                && let Some(fd) = fds.next()
            {
                return Ok(fd);
            }
        }
        Err(Error::Conflict(
            "terminal: the runtime sent no pseudo-terminal".into(),
        ))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Puts the caller's terminal in raw mode, and back as it was on drop.
pub(crate) struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    pub(crate) fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

/// Joins the caller's terminal to `master` until process `pid` (a child
/// of the caller) exits; returns its exit code.
pub fn relay(master: OwnedFd, pid: i32) -> Result<i32> {
    if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdout()) {
        let _ = rustix::termios::tcsetwinsize(&master, size);
    }
    let raw = RawMode::enter();
    let child = Pid::from_raw(pid).ok_or_else(|| Error::Conflict("invalid pid".into()))?;
    let pidfd = pidfd_open(child, PidfdFlags::empty())
        .map_err(|e| Error::Conflict(format!("pidfd_open: {e}")))?;
    let mut master = std::fs::File::from(master);
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![
            PollFd::new(&pidfd, PollFlags::IN),
            PollFd::new(&master, PollFlags::IN),
        ];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::Conflict(format!("poll: {e}"))),
        }
        let exited = !fds[0].revents().is_empty();
        let output = !fds[1].revents().is_empty();
        let input = stdin_open && !fds[2].revents().is_empty();
        drop(fds);
        if output {
            match master.read(&mut buf) {
                // The last process holding the terminal closed it.
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    stdout.write_all(&buf[..n]).map_err(err("output"))?;
                    stdout.flush().map_err(err("output"))?;
                }
            }
        }
        if input {
            // Straight from the descriptor: a buffered reader could keep
            // bytes that poll no longer reports.
            match rustix::io::read(&stdin, &mut buf).map_err(std::io::Error::from) {
                // End of input: the terminal's end-of-file character.
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    let _ = master.write_all(b"\x04");
                }
                Ok(n) => master.write_all(&buf[..n]).map_err(err("input"))?,
            }
        }
        if exited && !output {
            break;
        }
    }
    drop(raw);
    super::run::wait_blocking(pid)
}
