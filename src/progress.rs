//! Live progress on a terminal, as Docker Compose draws it: one line per
//! object (a network, a container, an image or one of its layers) with a
//! spinner while it is worked on, a tick or a cross when it is done, and
//! how long it took; redrawn in place ten times a second. Elsewhere (a
//! pipe, a file, `--progress plain`) berth prints plain lines instead.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cli::Global;

/// Whether progress is drawn live: `--progress tty`, or `auto` on a
/// terminal when ANSI sequences are allowed.
pub fn live(global: &Global) -> bool {
    let ansi = std::env::var("BERTH_ANSI").unwrap_or_default();
    match global.progress.as_str() {
        "tty" => ansi != "never",
        "auto" => ansi != "never" && std::io::stderr().is_terminal(),
        _ => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Working,
    Done,
    Failed,
}

struct Line {
    id: String,
    status: String,
    state: State,
    since: Instant,
    took: Option<Duration>,
}

struct Inner {
    title: String,
    lines: Vec<Line>,
    /// How many lines the last drawing took, to go back over them.
    drawn: usize,
    frame: usize,
}

/// The lines drawn, shared by the threads that report progress.
pub struct Board {
    inner: Mutex<Inner>,
    color: bool,
}

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

impl Board {
    /// An empty board headed `title` (`Running`, `Pulling` …).
    pub fn new(title: &str) -> Board {
        Board {
            inner: Mutex::new(Inner {
                title: title.to_string(),
                lines: Vec::new(),
                drawn: 0,
                frame: 0,
            }),
            color: std::env::var("NO_COLOR").is_err(),
        }
    }

    fn set(&self, id: &str, status: &str, state: State) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match inner.lines.iter_mut().find(|l| l.id == id) {
            Some(l) => {
                l.status = status.to_string();
                if l.state == State::Working && state != State::Working {
                    l.took = Some(now - l.since);
                }
                l.state = state;
            }
            None => inner.lines.push(Line {
                id: id.to_string(),
                status: status.to_string(),
                state,
                since: now,
                took: (state != State::Working).then_some(Duration::ZERO),
            }),
        }
    }

    /// `id` is being worked on: `status` says how far it is.
    pub fn working(&self, id: &str, status: &str) {
        self.set(id, status, State::Working);
    }

    /// `id` is done.
    pub fn done(&self, id: &str, status: &str) {
        self.set(id, status, State::Done);
    }

    /// `id` failed.
    pub fn failed(&self, id: &str, status: &str) {
        self.set(id, status, State::Failed);
    }

    /// Redraws the board over its last drawing.
    pub fn draw(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.frame += 1;
        let text = render(&inner, Instant::now(), self.color);
        let mut err = std::io::stderr().lock();
        if inner.drawn > 0 {
            let _ = write!(err, "\x1b[{}A", inner.drawn);
        }
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
        inner.drawn = text.lines().count();
    }

    /// Runs `work` while a thread redraws the board, then draws it a last
    /// time.
    pub fn show<T>(&self, work: impl FnOnce() -> T) -> T {
        let stop = AtomicBool::new(false);
        let out = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    self.draw();
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            let out = work();
            stop.store(true, Ordering::Relaxed);
            out
        });
        self.draw();
        out
    }
}

/// The board as text: a heading with the count of what is done, then one
/// line per object, each cleared to the end of the line.
fn render(inner: &Inner, now: Instant, color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let finished = inner
        .lines
        .iter()
        .filter(|l| l.state != State::Working)
        .count();
    let mut out = format!(
        "\x1b[2K[+] {} {finished}/{}\n",
        inner.title,
        inner.lines.len()
    );
    let width = inner.lines.iter().map(|l| l.id.len()).max().unwrap_or(0);
    for l in &inner.lines {
        let mark = match l.state {
            State::Working => paint("34", SPINNER[inner.frame % SPINNER.len()]),
            State::Done => paint("32", "✔"),
            State::Failed => paint("31", "✘"),
        };
        let took = l.took.unwrap_or(now - l.since);
        out.push_str(&format!(
            "\x1b[2K {mark} {:<width$} {:<24} {:>5.1}s\n",
            l.id,
            l.status,
            took.as_secs_f64()
        ));
    }
    out
}

/// A transfer as a bar: `[=====>     ]  1.2MB/3.4MB`.
pub fn bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let mb = |b: u64| format!("{:.1}MB", b as f64 / 1e6);
    if total == 0 {
        return mb(done);
    }
    let filled = (done.min(total) * WIDTH / total) as usize;
    let mut s = "=".repeat(filled);
    if filled < WIDTH as usize {
        s.push('>');
    }
    format!("[{s:<w$}] {}/{}", mb(done), mb(total), w = WIDTH as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_order_count_what_is_done_and_stop_their_clocks() {
        let board = Board::new("Running");
        board.working("Network p_default", "Creating");
        board.working("Container p-web-1", "Creating");
        board.done("Network p_default", "Created");
        board.failed("Container p-web-1", "Error");
        let inner = board.inner.lock().unwrap();
        let text = render(&inner, Instant::now() + Duration::from_secs(60), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "\x1b[2K[+] Running 2/2");
        assert!(lines[1].contains("✔ Network p_default") && lines[1].contains("Created"));
        assert!(lines[2].contains("✘ Container p-web-1") && lines[2].contains("Error"));
        assert!(
            lines[1].ends_with("0.0s"),
            "a finished line's clock stops: {}",
            lines[1]
        );
    }

    #[test]
    fn bars_fill_with_the_transfer() {
        assert_eq!(
            bar(1_500_000, 3_000_000),
            format!("[{:<30}] 1.5MB/3.0MB", "=".repeat(15) + ">")
        );
        assert_eq!(
            bar(3_000_000, 3_000_000),
            format!("[{}] 3.0MB/3.0MB", "=".repeat(30))
        );
        assert_eq!(bar(42, 0), "0.0MB");
    }
}
