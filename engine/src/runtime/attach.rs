//! Terminals of detached containers. The supervisor keeps the master of a
//! `tty: true` container's pseudo-terminal for the container's whole life:
//! it logs what the container writes, and serves `attach` clients on a
//! socket in the container's directory (only root reaches it: the
//! directory is private). A client gets the terminal's output as it comes
//! and sends framed messages: input, and window sizes. Detaching (Docker's
//! ctrl-p ctrl-q) is the client's business: it just goes, the container
//! runs on.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::event::{PollFd, PollFlags, poll};

use crate::{Error, Result};

/// The socket's name in the container's directory.
const SOCKET: &str = "attach.sock";

/// A frame of input for the terminal.
const INPUT: u8 = 0;
/// A frame with the client's window size: rows and columns, big-endian u16.
const RESIZE: u8 = 1;

/// Output a slow client may fall behind by before it is let go: the
/// supervisor never blocks on one.
const CLIENT_BACKLOG: usize = 1 << 20;

/// `dir/name` through a descriptor of `dir`: socket paths are limited to
/// 108 bytes, container directories under a deep `--root` are longer.
fn via_fd(dir: &OwnedFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io(dir, e.into()))
}

fn nonblocking(fd: impl AsFd) -> Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| Error::Conflict(e.to_string()))?;
    rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| Error::Conflict(e.to_string()))
}

struct Client {
    stream: UnixStream,
    /// Bytes received, not yet a whole frame.
    partial: Vec<u8>,
    /// Output not yet taken by the client.
    backlog: Vec<u8>,
}

/// The supervisor's side: the terminal's master and its clients.
pub struct Hub {
    master: std::fs::File,
    listener: UnixListener,
    socket: PathBuf,
    clients: Vec<Client>,
    /// Input for the terminal that it could not take yet.
    input: Vec<u8>,
    /// The terminal is still open (a closed one polls as hung up forever).
    open: bool,
    /// `master` is the write end of a container's stdin pipe, not a
    /// terminal: nothing to read from it (its output goes by the logs).
    input_only: bool,
    /// Output kept for the first client, until it comes.
    early: Option<Vec<u8>>,
}

/// What a [`Hub`] needs polled, in the order [`Hub::poll_fds`] gives them.
pub struct Ready(Vec<PollFlags>);

impl Hub {
    /// Serves `master` on the socket in container directory `dir`.
    /// With `keep_early`, output before the first client comes is kept
    /// for it (up to the backlog a client may have).
    pub fn new(dir: &Path, master: OwnedFd, keep_early: bool) -> Result<Hub> {
        let mut hub = Hub::serve(dir, master, false)?;
        hub.early = keep_early.then(Vec::new);
        Ok(hub)
    }

    /// Serves the write end of the stdin pipe of a container without a
    /// terminal (`stdin_open`): clients send input only.
    pub fn for_stdin(dir: &Path, pipe: OwnedFd) -> Result<Hub> {
        Hub::serve(dir, pipe, true)
    }

    fn serve(dir: &Path, master: OwnedFd, input_only: bool) -> Result<Hub> {
        nonblocking(&master)?;
        let socket = dir.join(SOCKET);
        let _ = std::fs::remove_file(&socket);
        let dir_fd = open_dir(dir)?;
        let listener =
            UnixListener::bind(via_fd(&dir_fd, SOCKET)).map_err(|e| Error::io(&socket, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(&socket, e))?;
        // Root's alone, as the directory it is in (ST-11).
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&socket, e))?;
        Ok(Hub {
            master: master.into(),
            listener,
            socket,
            clients: Vec::new(),
            input: Vec::new(),
            open: true,
            input_only,
            early: None,
        })
    }

    /// Descriptors to poll: the listener, each client, then the master
    /// while it is open.
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = vec![PollFd::new(&self.listener, PollFlags::IN)];
        for c in &self.clients {
            let mut f = PollFlags::IN;
            if !c.backlog.is_empty() {
                f |= PollFlags::OUT;
            }
            fds.push(PollFd::new(&c.stream, f));
        }
        if self.polls_master() {
            let mut master = PollFlags::empty();
            if !self.input_only {
                master |= PollFlags::IN;
            }
            if !self.input.is_empty() {
                master |= PollFlags::OUT;
            }
            fds.push(PollFd::new(&self.master, master));
        }
        fds
    }

    fn polls_master(&self) -> bool {
        self.open && (!self.input_only || !self.input.is_empty())
    }

    /// What a poll over [`Hub::poll_fds`] reported.
    pub fn ready(fds: &[PollFd<'_>]) -> Ready {
        Ready(fds.iter().map(PollFd::revents).collect())
    }

    /// Moves data: terminal output to `output` (the log) and the clients,
    /// client input to the terminal.
    pub fn service(&mut self, ready: &Ready, output: &mut dyn FnMut(&[u8])) {
        let master_ready = self.polls_master()
            && !self.input_only
            && ready
                .0
                .get(1 + self.clients.len())
                .is_some_and(|f| !f.is_empty());
        if master_ready {
            // Closed: every process of the container that held it is gone.
            self.open = self.drain(output);
        }
        let mut gone = Vec::new();
        for (i, c) in self.clients.iter_mut().enumerate() {
            let flags = ready.0.get(1 + i).copied().unwrap_or(PollFlags::empty());
            if flags.is_empty() {
                continue;
            }
            let mut buf = [0u8; 4096];
            match c.stream.read(&mut buf) {
                Ok(0) => gone.push(i),
                Ok(n) => {
                    c.partial.extend_from_slice(&buf[..n]);
                    frames(&mut c.partial, &mut self.input, &self.master);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => gone.push(i),
            }
            if !flush(c) {
                gone.push(i);
            }
        }
        gone.dedup();
        for i in gone.into_iter().rev() {
            self.clients.remove(i);
        }
        // After the clients polled: their readiness is by position.
        if !ready.0[0].is_empty() {
            while let Ok((stream, _)) = self.listener.accept() {
                if stream.set_nonblocking(true).is_ok() {
                    let mut c = Client {
                        stream,
                        partial: Vec::new(),
                        backlog: self.early.take().unwrap_or_default(),
                    };
                    if flush(&mut c) {
                        self.clients.push(c);
                    }
                }
            }
        }
        if !self.input.is_empty() {
            match self.master.write(&self.input) {
                Ok(n) => {
                    self.input.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    // The container closed its stdin: nobody will read more.
                    self.input.clear();
                    if self.input_only {
                        self.open = false;
                    }
                }
            }
        }
    }

    /// Reads what the terminal has; false when it is closed.
    fn drain(&mut self, output: &mut dyn FnMut(&[u8])) -> bool {
        let mut buf = [0u8; 16384];
        loop {
            match self.master.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    output(&buf[..n]);
                    if let Some(early) = self.early.as_mut()
                        && early.len() + n <= CLIENT_BACKLOG
                    {
                        early.extend_from_slice(&buf[..n]);
                    }
                    self.clients.retain_mut(|c| {
                        c.backlog.extend_from_slice(&buf[..n]);
                        c.backlog.len() <= CLIENT_BACKLOG && flush(c)
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: the last process holding the terminal closed it.
                Err(_) => return false,
            }
        }
    }

    /// Everything the terminal still has, once the container has exited.
    pub fn finish(&mut self, output: &mut dyn FnMut(&[u8])) {
        if self.open && !self.input_only {
            self.drain(output);
        }
        // A container quicker than the attachment that follows its start
        // still has its output (and exit) seen by it.
        if let Some(early) = self.early.take() {
            let mut fds = [PollFd::new(&self.listener, PollFlags::IN)];
            let wait = rustix::fs::Timespec {
                tv_sec: 5,
                tv_nsec: 0,
            };
            if poll(&mut fds, Some(&wait)).is_ok_and(|n| n > 0)
                && let Ok((stream, _)) = self.listener.accept()
            {
                self.clients.push(Client {
                    stream,
                    partial: Vec::new(),
                    backlog: early,
                });
            }
        }
        for c in &mut self.clients {
            let _ = c.stream.set_nonblocking(false);
            let _ = c.stream.write_all(&c.backlog);
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Sends what a client can take now; false when it is gone.
fn flush(c: &mut Client) -> bool {
    while !c.backlog.is_empty() {
        match c.stream.write(&c.backlog) {
            Ok(n) => {
                c.backlog.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

/// Takes the whole frames out of `partial`: input is queued for the
/// terminal, window sizes are set on it at once.
fn frames(partial: &mut Vec<u8>, input: &mut Vec<u8>, master: &std::fs::File) {
    while partial.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([partial[1], partial[2]]));
        if partial.len() < 3 + len {
            break;
        }
        let frame: Vec<u8> = partial.drain(..3 + len).collect();
        let body = &frame[3..];
        match frame[0] {
            // Beyond a megabyte the container is not reading: drop it.
            INPUT if input.len() < 1 << 20 => input.extend_from_slice(body),
            RESIZE if body.len() == 4 => {
                let size = rustix::termios::Winsize {
                    ws_row: u16::from_be_bytes([body[0], body[1]]),
                    ws_col: u16::from_be_bytes([body[2], body[3]]),
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                let _ = rustix::termios::tcsetwinsize(master, size);
            }
            _ => {}
        }
    }
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + body.len());
    out.push(kind);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&body[..body.len().min(usize::from(u16::MAX))]);
    out
}

/// A connection to the supervisor's attach socket in container directory
/// `dir`.
fn connect(dir: &Path) -> Result<UnixStream> {
    let dir_fd = open_dir(dir)?;
    UnixStream::connect(via_fd(&dir_fd, SOCKET)).map_err(|e| {
        Error::Conflict(format!(
            "attaching to {}: {e} (is the container running with a terminal or stdin_open?)",
            dir.display()
        ))
    })
}

/// For a container with `stdin_open` and no terminal: a task that sends
/// the caller's standard input to it until that ends (connected now, so
/// that a refusal is reported here).
pub fn stdin_sender(dir: &Path) -> Result<impl FnOnce() + Send + 'static> {
    let mut stream = connect(dir)?;
    Ok(move || {
        let mut input = std::io::stdin().lock();
        let mut buf = [0u8; 8192];
        while let Ok(n) = input.read(&mut buf) {
            if n == 0 || stream.write_all(&frame(INPUT, &buf[..n])).is_err() {
                break;
            }
        }
    })
}

/// Whether container directory `dir` has a terminal to attach to.
pub fn has_terminal(dir: &Path) -> bool {
    dir.join(SOCKET).exists()
}

/// Docker's `--detach-keys` syntax: `ctrl-p,ctrl-q`, `ctrl-@`, `a`.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    spec.split(',')
        .map(|k| {
            let k = k.trim();
            match k.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => {
                    let c = c.as_bytes()[0].to_ascii_lowercase();
                    match c {
                        b'a'..=b'z' => Ok(c - b'a' + 1),
                        b'@' => Ok(0),
                        b'[' => Ok(27),
                        b'\\' => Ok(28),
                        b']' => Ok(29),
                        b'^' => Ok(30),
                        b'_' => Ok(31),
                        _ => Err(Error::Conflict(format!("detach keys: unknown key {k:?}"))),
                    }
                }
                None if k.len() == 1 => Ok(k.as_bytes()[0]),
                _ => Err(Error::Conflict(format!("detach keys: unknown key {k:?}"))),
            }
        })
        .collect()
}

/// How an attachment ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The container's terminal closed: it exited.
    Exited,
    /// The detach keys were typed: the container runs on.
    Detached,
}

/// Finds the detach sequence in typed input, across reads.
struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    /// Splits `input` into what to forward and whether the sequence was
    /// completed. Bytes of a partial match are held until it breaks.
    fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// Joins the caller's standard streams to the terminal of the container in
/// `dir` until it exits or `detach_keys` are typed. With `stdin`, what is
/// typed goes to the container (the caller's terminal in raw mode).
pub fn attach(dir: &Path, stdin: bool, detach_keys: &[u8]) -> Result<Ended> {
    let mut stream = connect(dir)?;
    let input = std::io::stdin();
    let _raw = stdin.then(super::tty::RawMode::enter);
    let mut size = None;
    let mut keys = DetachKeys {
        keys: detach_keys.to_vec(),
        matched: 0,
    };
    let mut stdout = std::io::stdout();
    let mut stdin_open = stdin;
    let mut buf = [0u8; 8192];
    loop {
        // The window size is checked as often as the loop turns, and at
        // least four times a second: no SIGWINCH handler needed.
        if stdin_open {
            let now = rustix::termios::tcgetwinsize(std::io::stdout()).ok();
            if let Some(s) = now
                && size.is_none_or(|old: rustix::termios::Winsize| {
                    (old.ws_row, old.ws_col) != (s.ws_row, s.ws_col)
                })
            {
                let mut body = s.ws_row.to_be_bytes().to_vec();
                body.extend_from_slice(&s.ws_col.to_be_bytes());
                stream
                    .write_all(&frame(RESIZE, &body))
                    .map_err(|e| Error::Conflict(format!("attach: {e}")))?;
                size = Some(s);
            }
        }
        let mut fds = vec![PollFd::new(&stream, PollFlags::IN)];
        if stdin_open {
            fds.push(PollFd::new(&input, PollFlags::IN));
        }
        let quarter = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 250_000_000,
        };
        match poll(&mut fds, Some(&quarter)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::Conflict(format!("poll: {e}"))),
        }
        let output = !fds[0].revents().is_empty();
        let typed = stdin_open && !fds[1].revents().is_empty();
        drop(fds);
        if output {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return Ok(Ended::Exited),
                Ok(n) => {
                    stdout
                        .write_all(&buf[..n])
                        .and_then(|()| stdout.flush())
                        .map_err(|e| Error::Conflict(format!("attach: output: {e}")))?;
                }
            }
        }
        if typed {
            match rustix::io::read(&input, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let (forward, detach) = keys.scan(&buf[..n]);
                    if !forward.is_empty() {
                        for chunk in forward.chunks(usize::from(u16::MAX)) {
                            stream
                                .write_all(&frame(INPUT, chunk))
                                .map_err(|e| Error::Conflict(format!("attach: {e}")))?;
                        }
                    }
                    if detach {
                        return Ok(Ended::Detached);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker_writes_them() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-@,a").unwrap(), vec![0, b'a']);
        assert!(parse_detach_keys("ctrl-ab").is_err());
    }

    #[test]
    fn the_detach_sequence_is_found_across_reads_and_held_until_it_breaks() {
        let mut k = DetachKeys {
            keys: vec![16, 17],
            matched: 0,
        };
        assert_eq!(k.scan(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(k.scan(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(k.scan(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(k.scan(b"\x11rest"), (Vec::new(), true));
    }

    #[test]
    fn frames_carry_input_and_window_sizes() {
        let master = std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/ptmx")
            .unwrap();
        let mut partial = frame(INPUT, b"echo hi\n");
        partial.extend(frame(RESIZE, &[0, 40, 0, 120]));
        let mut cut = partial.split_off(5);
        let mut input = Vec::new();
        frames(&mut partial, &mut input, &master);
        assert!(input.is_empty(), "half a frame waits");
        partial.append(&mut cut);
        frames(&mut partial, &mut input, &master);
        assert_eq!(input, b"echo hi\n");
        assert!(partial.is_empty());
        let size = rustix::termios::tcgetwinsize(&master).unwrap();
        assert_eq!((size.ws_row, size.ws_col), (40, 120));
    }
}
