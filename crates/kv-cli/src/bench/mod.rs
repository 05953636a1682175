//! `kv bench`: the workloads of the project's spec (`workloads.md`), each reported beside the
//! machine limit it is bounded by, measured in the same run. What each workload does, and
//! the limits, are defined in `kv-workloads` (the criterion benches run the same); this
//! module runs them at the spec's sizes (divided by 100 with `--quick`), times them and
//! prints the results.
//!
//! Every workload runs on a fresh store in a temporary directory under the current
//! directory (the filesystem the spec asks for), or under `$TMPDIR` when the current
//! directory is not writable; `--dir` is never touched. W5 runs first, so that memory freed
//! by other workloads cannot hide its growth.

mod measure;
mod memory;
mod mixed;
mod reads;
mod recovery;
mod report;
mod writes;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kv_store::KvStore;
use kv_workloads::{spec, MachineLimits, Workload};

use crate::cli::BenchArgs;
use crate::failure::{Failure, Outcome as CommandOutcome};
use report::Outcome;

/// The long help of `kv bench`.
pub const HELP: &str = "\
WORKLOADS (16-byte keys, 100-byte values; sizes divided by 100 with --quick)
  W1  durable puts (Durability::Sync), 1/8/64 writers, 20,000+ puts   vs L1 fsyncs/s
  W2  1,000,000 buffered puts (Durability::None) + one sync, 1/2 writers  vs L2 bytes/s
  W3  1,000,000 keys, 2,000,000 random gets (90% hits), 1/2 readers    vs L6 gets/s
      and W3-many: the same gets of one reader through get_many, 32 keys at a time
  W4  recovery: reopen a log of 1,000,000 puts, and of 4,000,000 (4 per key)  vs L3 bytes/s;
      then W4-snapshot: reopen 1,000,000 keys compacted into a snapshot   vs L3 bytes/s
  W5  memory: RSS growth per key loading 1,000,000 keys, less 116 payload bytes
  W6  4 threads, 90% get / 10% durable put over 1,000,000 keys
  W7  1,000,000 keys written 4 times; 2 durable writers before and while it compacts
                                                                 vs L2 (snapshot bytes/s)
  W8  ordered index, 1,000,000 keys, scans of 100 keys from random starts

LIMITS (measured in the same run)
  L1 write 128 B + fdatasync on a growing file; L1p the same in preallocated space;
  L2 buffered sequential writes + fsync; L3 reading a file from the page cache;
  L4 CRC-32C; L6 W3's gets by one thread from a plain std HashMap<Bytes, Bytes> of
  the same keys (measured in the W3 run, before the store is read).

JSON (--json): one object a line per workload run, with at least
  workload, threads, ops, seconds, ops_per_sec, p50_us, p99_us, limit (\"L1\", \"L2\",
  \"L3\", \"L6\" or null), limit_value, limit_unit, measured_in_limit_unit, ratio_to_limit,
  quick; plus the workload's own figures (W1 records_per_fsync, W2 bytes_per_sec,
  W3-many batch and ratio_to_single_gets,
  W4 seconds_to_open and mb_per_sec, W5 overhead_bytes_per_key, W6 get_p99_us and
  put_p99_us, W7 compaction_seconds, writer_p99_before_us, writer_p99_during_us and
  log_bytes_after, W8 keys_per_sec).
  Percentiles are null where operations are not timed one by one (W4, W5).";

/// The workloads, in the order they run.
const ORDER: [&str; 8] = ["W5", "W1", "W2", "W3", "W4", "W6", "W7", "W8"];

/// What every workload is given.
pub struct Run<'a> {
    root: &'a Path,
    /// Sizes are divided by this (100 with `--quick`).
    pub scale: u64,
    /// The limits measured in this run.
    pub limits: MachineLimits,
    progress: &'a ProgressBar,
}

impl Run<'_> {
    /// Opens a fresh store for `workload` in the run's directory, with the options the spec
    /// gives it (`Workload::options`: no automatic compaction among them).
    pub fn open(&self, workload: Workload) -> Result<KvStore, kv_store::Error> {
        let dir = self.root.join(workload.id().to_lowercase());
        let _ = std::fs::remove_dir_all(&dir);
        KvStore::open_with(dir, workload.options())
    }

    /// Closes `store` (if it is not closed yet) and deletes its directory.
    pub fn close(&self, store: KvStore) -> Result<(), kv_store::Error> {
        let path = store.path().to_path_buf();
        let closed = store.close();
        drop(store);
        let _ = std::fs::remove_dir_all(path);
        match closed {
            Ok(()) | Err(kv_store::Error::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Shows what runs now.
    pub fn step(&self, message: &str) {
        self.progress.set_message(message.to_string());
    }
}

/// Runs the workloads `args` selects and prints their results.
pub fn run(args: &BenchArgs) -> CommandOutcome {
    let selected = selected(&args.workload)?;
    let quick = args.quick || std::env::var_os("KV_BENCH_QUICK").is_some_and(|v| v != "0");
    let scale = if quick { 100 } else { 1 };
    let threads = |spec: &[u64]| args.threads.map_or_else(|| spec.to_vec(), |n| vec![n]);
    let root = scratch_dir()?;

    let runs_of = |w: &str| match w {
        "W1" => threads(&spec::W1_WRITERS).len() as u64,
        "W2" => threads(&spec::W2_WRITERS).len() as u64,
        "W3" => threads(&spec::W3_READERS).len() as u64 + 1,
        "W4" => spec::W4_PUTS_PER_KEY.len() as u64 + 1,
        "W8" => threads(&[1]).len() as u64,
        _ => 1,
    };
    let steps = 5 + selected.iter().map(|w| runs_of(w)).sum::<u64>();
    let progress = progress_bar(steps, args.json);

    let mut run = Run {
        root: root.path(),
        scale,
        limits: MachineLimits::default(),
        progress: &progress,
    };
    // W5 first of all, before even the limits: memory that anything before it allocated and
    // freed would be reused by its keys and hide part of their cost.
    let w5 = if selected.contains(&"W5") {
        run.step("W5");
        let outcome = memory::w5(&run).map_err(|e| Failure::Runtime(format!("W5: {e}")))?;
        Some(outcome)
    } else {
        None
    };
    run.limits = MachineLimits::measure(root.path(), scale, |step| {
        progress.set_message(step.to_string());
        progress.inc(1);
    });
    let mut out = std::io::stdout().lock();
    if !args.json {
        progress.suspend(|| -> std::io::Result<()> {
            header(&mut out, &run, root.path(), quick)?;
            out.flush()
        })?;
    }
    let mut printed: std::io::Result<()> = Ok(());
    let mut emit = |outcome: Outcome| {
        progress.inc(1);
        if printed.is_ok() {
            printed = progress.suspend(|| {
                if args.json {
                    writeln!(out, "{}", outcome.json(quick))?;
                } else {
                    writeln!(out, "{}", outcome.row())?;
                }
                out.flush()
            });
        }
    };
    if let Some(outcome) = w5 {
        emit(outcome);
    }
    for workload in ORDER.iter().filter(|w| selected.contains(w) && **w != "W5") {
        run.step(workload);
        let result = match *workload {
            "W1" => threads(&spec::W1_WRITERS)
                .into_iter()
                .try_for_each(|n| writes::w1(&run, n).map(&mut emit)),
            "W2" => threads(&spec::W2_WRITERS)
                .into_iter()
                .try_for_each(|n| writes::w2(&run, n).map(&mut emit)),
            "W3" => reads::w3(&run, &threads(&spec::W3_READERS), &mut emit),
            "W4" => spec::W4_PUTS_PER_KEY
                .into_iter()
                .try_for_each(|w| recovery::w4(&run, w).map(&mut emit))
                .and_then(|()| recovery::w4_snapshot(&run).map(&mut emit)),
            "W6" => mixed::w6(&run).map(&mut emit),
            "W7" => mixed::w7(&run).map(&mut emit),
            "W8" => reads::w8(&run, &threads(&[1]), &mut emit),
            _ => unreachable!("selected() returns known workloads, W5 ran first"),
        };
        result.map_err(|e| Failure::Runtime(format!("{workload}: {e}")))?;
    }
    progress.finish_and_clear();
    printed?;
    Ok(())
}

/// The workloads named by `--workload` (all when none), checked.
fn selected(names: &[String]) -> CommandOutcome<Vec<&'static str>> {
    if names.is_empty() {
        return Ok(ORDER.to_vec());
    }
    names
        .iter()
        .map(|name| {
            let upper = name.trim().to_ascii_uppercase();
            ORDER
                .iter()
                .copied()
                .find(|w| *w == upper)
                .ok_or_else(|| Failure::Usage(format!("unknown workload '{name}' (W1..W8)")))
        })
        .collect()
}

/// A temporary directory on the current directory's filesystem, or in `$TMPDIR`.
fn scratch_dir() -> CommandOutcome<tempfile::TempDir> {
    let here = tempfile::Builder::new()
        .prefix(".kv-bench-")
        .tempdir_in(PathBuf::from("."));
    match here {
        Ok(dir) => Ok(dir),
        Err(_) => tempfile::Builder::new()
            .prefix("kv-bench-")
            .tempdir()
            .map_err(|e| Failure::Runtime(format!("cannot create a bench directory: {e}"))),
    }
}

/// A bar on standard error, hidden for `--json` and when standard error is no terminal.
fn progress_bar(steps: u64, json: bool) -> ProgressBar {
    let target = if json || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(steps), target);
    if let Ok(style) = ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// The lines above the table: where, how big, and the limits.
fn header(out: &mut impl Write, run: &Run<'_>, dir: &Path, quick: bool) -> std::io::Result<()> {
    use report::number;
    let l = &run.limits;
    writeln!(
        out,
        "kv bench in {}{}",
        dir.display(),
        if quick { " (quick: sizes / 100)" } else { "" }
    )?;
    writeln!(
        out,
        "limits: L1 {} fsyncs/s, L1p {} fsyncs/s, L2 {} MB/s, L3 {} MB/s, L4 {} MB/s",
        number(l.l1_fsyncs),
        number(l.l1p_fsyncs),
        number(l.l2_bytes / 1e6),
        number(l.l3_bytes / 1e6),
        number(l.l4_bytes / 1e6)
    )?;
    writeln!(out, "{}", report::HEADER)
}
