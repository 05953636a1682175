//! Progress on standard error for the commands that can take long (import, export, compact,
//! and an open of a big store), drawn only when standard error is a terminal: in a pipe or a
//! file nothing at all is written, so scripts see the same bytes as before.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How long an open runs before it shows progress.
const OPEN_QUIET: Duration = Duration::from_secs(1);
/// How often a watched figure is read again.
const TICK: Duration = Duration::from_millis(100);

/// Whether progress is drawn at all.
fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

fn styled(bar: ProgressBar, template: &str) -> ProgressBar {
    if let Ok(style) = ProgressStyle::with_template(template) {
        // `{per_sec}` shows four decimals of a rate of millions; this is whole entries.
        let whole_per_sec = |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "{}/s", HumanCount(state.per_sec() as u64));
        };
        bar.set_style(
            style
                .with_key("whole_per_sec", whole_per_sec)
                .progress_chars("=> "),
        );
    }
    bar
}

/// A bar over `total` entries, labelled `what`; hidden off a terminal.
pub fn entries(what: &str, total: u64) -> ProgressBar {
    if !on_terminal() {
        return ProgressBar::hidden();
    }
    let bar = styled(
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
        "{prefix} {elapsed:>4} [{bar:30}] {human_pos}/{human_len} entries ({whole_per_sec}, {eta} left)",
    );
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(TICK);
    // Drawn at once, not at the first tick: even a short run shows what it did.
    bar.tick();
    bar
}

/// A bar over the bytes of an input of `total` bytes (a spinner when the size is unknown),
/// labelled `what`, with a count of entries in its message; hidden off a terminal.
pub fn input(what: &str, total: Option<u64>) -> ProgressBar {
    if !on_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => styled(
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{prefix} {elapsed:>4} [{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}) {msg}",
        ),
        None => styled(
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{prefix} {spinner} {elapsed:>4} {bytes} ({binary_bytes_per_sec}) {msg}",
        ),
    };
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(TICK);
    // Drawn at once, not at the first tick: even a short run shows what it did.
    bar.tick();
    bar
}

/// Progress of something this process cannot count from inside (an open, a compaction),
/// read again every [`TICK`] by a thread of its own, shown only once it has run `quiet`.
pub struct Watch {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    fn none() -> Self {
        Watch {
            stop: None,
            thread: None,
        }
    }

    /// Shows `bar` once `quiet` has passed, calling `update` on it every [`TICK`]. Called
    /// only on a terminal.
    fn start(
        quiet: Duration,
        bar: impl FnOnce() -> ProgressBar,
        update: impl FnMut(&ProgressBar) + Send + 'static,
    ) -> Self {
        let bar = bar();
        let mut update = update;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // Nothing is drawn if the work ends within `quiet`.
            if stopped.recv_timeout(quiet) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            bar.set_draw_target(ProgressDrawTarget::stderr());
            loop {
                update(&bar);
                bar.tick();
                if stopped.recv_timeout(TICK) != Err(RecvTimeoutError::Timeout) {
                    bar.finish_and_clear();
                    return;
                }
            }
        });
        Watch {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops and erases the progress, if any was drawn.
    pub fn finish_and_clear(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Progress of opening the store in `dir`, shown if the open takes over a second: the bytes
/// this process has read so far (the kernel's count, `rchar` of `/proc/self/io`: opening is
/// reading the log and the snapshot) against the bytes of the store's files.
pub fn opening(dir: &Path) -> Watch {
    if !on_terminal() {
        return Watch::none();
    }
    let dir = dir.to_path_buf();
    let start = bytes_read().unwrap_or(0);
    Watch::start(
        OPEN_QUIET,
        || {
            let bar = ProgressBar::with_draw_target(
                Some(bytes_under(&dir)),
                ProgressDrawTarget::hidden(),
            );
            let bar = styled(
                bar,
                "{prefix} {elapsed:>4} [{bar:30}] {bytes}/{total_bytes} read ({binary_bytes_per_sec})",
            );
            bar.set_prefix(format!("opening {}", dir.display()));
            bar
        },
        move |bar| {
            if let Some(now) = bytes_read() {
                let read = now.saturating_sub(start);
                bar.set_position(read.min(bar.length().unwrap_or(read)));
            }
        },
    )
}

/// Progress of a compaction of `entries` entries in `dir`: a spinner, with the bytes of
/// snapshot written so far.
pub fn compaction(dir: &Path, entries: u64) -> Watch {
    if !on_terminal() {
        return Watch::none();
    }
    let snapshots: PathBuf = dir.join(kv_compact::SNAPSHOTS);
    let before = bytes_under(&snapshots);
    Watch::start(
        Duration::ZERO,
        || {
            let bar = styled(
                ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
                "{prefix} {spinner} {elapsed:>4} {msg}",
            );
            bar.set_prefix(format!("compacting {entries} entries"));
            bar
        },
        move |bar| {
            let written = bytes_under(&snapshots).saturating_sub(before);
            bar.set_message(format!(
                "{} of snapshot written",
                indicatif::HumanBytes(written)
            ));
        },
    )
}

/// The bytes this process has read through system calls so far (Linux only).
fn bytes_read() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("rchar:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => bytes_under(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
