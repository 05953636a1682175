//! A writer killed with SIGKILL loses nothing it acknowledged.
//!
//! The test binary re-runs itself as the child: `crash_child` (ignored when run normally)
//! appends units of the sequence in `common::unit` and acknowledges each (`ack 0 <i>`, through
//! `kv_testkit::acknowledge`) after its append returns; the parent kills it at a random moment, reopens the log, and checks that it holds
//! exactly units `0..n` for some `n` at least one past the last acknowledged unit.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use common::{unit, unit_index};
use kv_wal::{DamageAction, FsyncPolicy, Position, Record, Wal, WalConfig};

const CHILD_ENV: &str = "KV_WAL_CRASH_CHILD";

fn config(dir: &Path, policy: &str, preallocate: bool) -> WalConfig {
    let policy = match policy {
        "always" => FsyncPolicy::Always,
        "batch" => FsyncPolicy::Batch(Duration::from_millis(2)),
        _ => FsyncPolicy::Os,
    };
    WalConfig::new(dir)
        .max_segment_size(256 * 1024)
        .fsync_policy(policy)
        .preallocate(preallocate)
}

#[test]
#[ignore = "the child process of the crash tests"]
fn crash_child() {
    let Some(args) = kv_testkit::child_args(CHILD_ENV) else {
        return;
    };
    let (dir, policy, prealloc) = (&args[0][..], &args[1][..], args[2] == "prealloc");
    let mut next = 0;
    let (mut wal, _) = Wal::open_with(
        config(Path::new(dir), policy, prealloc),
        Position::START,
        |_, r| next = unit_index(r.key()) + 1,
    )
    .unwrap();
    println!("start {next}");
    for i in next.. {
        wal.append_atomic(&unit(i)).unwrap();
        kv_testkit::acknowledge(0, i);
    }
}

/// Starts the child on `dir` with stdout piped.
fn spawn_child(dir: &Path, policy: &str, mode: &str) -> Child {
    let dir = dir.display().to_string();
    kv_testkit::spawn_child("crash_child", CHILD_ENV, &[&dir, policy, mode])
}

/// Runs the child on `dir` until it has acknowledged `kill_after` units more, kills it with
/// SIGKILL, and returns the last unit it acknowledged.
fn run_and_kill(dir: &Path, policy: &str, preallocate: bool, kill_after: u64) -> Option<u64> {
    let mode = if preallocate { "prealloc" } else { "plain" };
    let mut child = spawn_child(dir, policy, mode);
    kv_testkit::kill_after_acks(&mut child, kill_after, |_| {}).last(0)
}

/// Reopens the log and checks it holds units `0..n`, whole and in order, with `n` past
/// `acked`; returns `n`.
fn check_recovered(dir: &Path, acked: Option<u64>) -> (u64, kv_wal::RecoveryInfo) {
    let mut records: Vec<Record> = Vec::new();
    let (wal, info) = Wal::open_with(WalConfig::new(dir), Position::START, |_, r| {
        records.push(r.to_record(usize::MAX).unwrap())
    })
    .unwrap();
    drop(wal);
    let units = records.last().map_or(0, |r| unit_index(&r.key) + 1);
    let expected: Vec<Record> = (0..units).flat_map(unit).collect();
    assert_eq!(records, expected, "the log is not exactly units 0..{units}");
    if let Some(acked) = acked {
        assert!(
            units > acked,
            "unit {acked} was acknowledged but only {units} survived"
        );
    }
    assert!(
        info.corruptions
            .iter()
            .all(|c| c.action == DamageAction::Truncated && c.segment == info.end.segment),
        "{:?}",
        info.corruptions
    );
    (units, info)
}

#[test]
fn sigkill_loses_no_acknowledged_append_under_any_policy() {
    for (round, policy) in ["always", "batch", "os", "batch", "os", "always"]
        .iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let kill_after = [37, 900, 2500, 4000, 150, 400][round];
        let acked = run_and_kill(dir.path(), policy, round % 2 == 0, kill_after);
        assert!(acked.is_some(), "{policy}: the child acknowledged nothing");
        check_recovered(dir.path(), acked);
    }
}

#[test]
fn preallocated_log_survives_crash_reopen_append_crash() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_and_kill(dir.path(), "batch", true, 700);
    let (after_first, _) = check_recovered(dir.path(), first);
    let second = run_and_kill(dir.path(), "always", true, 300);
    assert!(
        second.unwrap() >= after_first,
        "the second run continued the log"
    );
    let (after_second, info) = check_recovered(dir.path(), second);
    assert!(after_second > after_first);
    assert_eq!(
        info.bytes_truncated,
        info.corruptions.iter().map(|c| c.bytes).sum::<u64>()
    );
}

#[test]
fn a_directory_open_in_another_process_is_refused_until_that_process_dies() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child(dir.path(), "os", "plain");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acks = kv_testkit::Acks::default();
    assert!(
        lines.any(|l| acks.record(&l.unwrap())),
        "the child is writing"
    );
    // Files beside the segments (a lock file of older versions) can be removed behind the
    // holder's back; the lock must not be in one of them.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if kv_wal::segment::parse_file_name(&name).is_none() {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let err = Wal::open(WalConfig::new(dir.path())).unwrap_err();
    assert!(
        matches!(err, kv_wal::Error::DirectoryLocked { .. }),
        "{err}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    drop(lines);
    Wal::open(WalConfig::new(dir.path())).expect("the lock died with its process");
}
