//! The crash torture run (`cargo xtask torture [--minutes N]`).
//!
//! The parent starts this same binary as a child (`kv-torture child DIR SEED RUN`) on one
//! store directory. The child runs writer threads, each performing a deterministic random
//! sequence of operations drawn from its seed (puts, deletes, puts with a TTL, atomic
//! batches) and printing `ack <thread> <n>` as each returns, while another thread compacts
//! at random moments. The parent kills the child with SIGKILL at a random moment, reopens the
//! directory (timing the recovery), and checks each thread's keys against a model: they must
//! equal the model after some prefix of that thread's operations that contains every
//! acknowledged one. So nothing acknowledged is lost, nothing unacknowledged appears out of
//! nowhere, and every batch is all or nothing. Earlier runs' keys are checked again each
//! time: they must never change. It repeats until the time is up.

#![forbid(unsafe_code)]

mod model;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use kv_store::{Durability, IndexKind, KvStore, Options};

use model::{Rng, Workload};

/// Writer threads in each child.
const THREADS: u64 = 3;

fn options(durability: Durability) -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .shards(8)
        .segment_size(1 << 20)
        .durability(durability)
        .auto_compact(None)
}

/// The durability of run `run`: the three modes in turn.
fn durability(run: u64) -> Durability {
    match run % 3 {
        0 => Durability::Sync,
        1 => Durability::Batch(Duration::from_millis(2)),
        _ => Durability::None,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("child") => {
            let dir = &args[1];
            let seed: u64 = args[2].parse().expect("seed");
            let run: u64 = args[3].parse().expect("run");
            child(Path::new(dir), seed, run);
            ExitCode::SUCCESS
        }
        _ => {
            let minutes: f64 = args
                .iter()
                .position(|a| a == "--minutes")
                .and_then(|at| args.get(at + 1))
                .and_then(|m| m.parse().ok())
                .unwrap_or(1.0);
            match parent(Duration::from_secs_f64(minutes * 60.0)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("kv-torture: {message}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The child: writers and a compactor until killed.
fn child(dir: &Path, seed: u64, run: u64) {
    let store = KvStore::open_with(dir, options(durability(run))).expect("open the store");
    std::thread::scope(|s| {
        let compactor = store.clone();
        s.spawn(move || {
            let mut rng = Rng::new(seed ^ 0xC0FFEE);
            loop {
                std::thread::sleep(Duration::from_millis(rng.below(40)));
                compactor.compact().expect("compact");
                println!("compacted");
            }
        });
        for thread in 0..THREADS {
            let store = store.clone();
            s.spawn(move || {
                let workload = Workload::new(seed, run, thread);
                for n in 0.. {
                    workload.perform(n, &store);
                    kv_testkit::acknowledge(thread, n);
                }
            });
        }
    });
}

/// What one killed run left to check.
struct Run {
    workload: Vec<Workload>,
    acked: BTreeMap<u64, u64>,
}

fn parent(budget: Duration) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut rng = Rng::new(started.elapsed().as_nanos() as u64 ^ std::process::id() as u64);
    // For each finished run and thread: how many of its operations the store holds.
    let mut settled: Vec<(Workload, u64)> = Vec::new();
    let (mut runs, mut acked_total, mut compactions) = (0u64, 0u64, 0u64);
    let mut recoveries: Vec<Duration> = Vec::new();
    while started.elapsed() < budget {
        let seed = rng.next();
        let mut child = Command::new(&exe)
            .args([
                "child",
                &dir.path().display().to_string(),
                &seed.to_string(),
                &runs.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start the child: {e}"))?;
        let kill_at = Instant::now() + Duration::from_millis(50 + rng.below(1_500));
        let stdout = child.stdout.take().expect("piped");
        // Read acks on a thread, so the kill happens at a time of our choosing.
        let reader = std::thread::spawn(move || {
            let mut acks = kv_testkit::Acks::default();
            let mut compactions = 0u64;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !acks.record(&line) {
                    compactions += u64::from(line == "compacted");
                }
            }
            (acks.into_by_thread(), compactions)
        });
        std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
        child.kill().map_err(|e| format!("kill the child: {e}"))?;
        let status = child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            return Err("the child exited by itself".into());
        }
        let (acked, child_compactions) = reader.join().map_err(|_| "the reader panicked")?;
        compactions += child_compactions;
        acked_total += acked.values().map(|n| n + 1).sum::<u64>();

        let opening = Instant::now();
        let store = KvStore::open_with(dir.path(), options(Durability::Sync))
            .map_err(|e| format!("run {runs}: reopening failed: {e}"))?;
        recoveries.push(opening.elapsed());
        let run = Run {
            workload: (0..THREADS).map(|t| Workload::new(seed, runs, t)).collect(),
            acked,
        };
        for (thread, workload) in run.workload.iter().enumerate() {
            let last = run.acked.get(&(thread as u64)).copied();
            let held = workload
                .held(&store, last)
                .map_err(|why| format!("run {runs}, thread {thread}: {why}"))?;
            settled.push((workload.clone(), held));
        }
        for (workload, held) in &settled {
            workload
                .check_exactly(&store, *held)
                .map_err(|why| format!("after run {runs}: an earlier run changed: {why}"))?;
        }
        store.close().map_err(|e| e.to_string())?;
        runs += 1;
    }
    recoveries.sort();
    let median = recoveries
        .get(recoveries.len() / 2)
        .copied()
        .unwrap_or_default();
    let max = recoveries.last().copied().unwrap_or_default();
    println!(
        "torture: {runs} runs, {runs} kills, {acked_total} operations acknowledged, 0 lost, \
         {compactions} compactions; recovery median {median:?}, max {max:?}"
    );
    Ok(())
}
