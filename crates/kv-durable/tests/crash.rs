//! Writers killed with SIGKILL mid-load lose nothing acknowledged, in every durability mode.
//!
//! The test binary re-runs itself as the child (`crash_child`, ignored in normal runs):
//! several writer threads each write their own sequence of units (a put, or every fifth an
//! atomic batch of three puts) and print `ack <thread> <unit>` once a write returns. The
//! parent kills the child at a chosen moment and checks, per thread, that the reopened store
//! holds exactly units `0..n` with `n` past the last acknowledged one, batches whole.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use std::time::Duration;

use common::{contents, open};
use kv_core::Op;
use kv_durable::{Durability, WriteOptions};

const CHILD_ENV: &str = "KV_DURABLE_CRASH_CHILD";
const THREADS: u64 = 4;

fn durability(name: &str) -> Durability {
    match name {
        "sync" => Durability::Sync,
        "batch" => Durability::Batch(Duration::from_millis(3)),
        _ => Durability::None,
    }
}

fn unit_ops(thread: u64, i: u64) -> Vec<Op> {
    if i % 5 == 4 {
        (0..3)
            .map(|j| Op::put(format!("t{thread}-{i:06}-{j}"), format!("{i}")))
            .collect()
    } else {
        vec![Op::put(format!("t{thread}-{i:06}"), format!("{i}"))]
    }
}

#[test]
#[ignore = "the child process of the crash tests"]
fn crash_child() {
    let Some(args) = kv_testkit::child_args(CHILD_ENV) else {
        return;
    };
    let (dir, mode) = (&args[0][..], &args[1][..]);
    let (store, _) = open(Path::new(dir), durability(mode));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = store.clone();
            s.spawn(move || {
                for i in 0.. {
                    // In a batch store, some writes ask for a sync: they are appended by a
                    // system call between writes copied through the mapped window.
                    let options = if mode == "batch" && i % 3 == 0 {
                        WriteOptions::sync()
                    } else {
                        WriteOptions::default()
                    };
                    store.write(unit_ops(t, i), options).unwrap();
                    kv_testkit::acknowledge(t, i);
                }
            });
        }
    });
}

fn run_and_kill(dir: &Path, mode: &str, kill_after: u64) -> BTreeMap<u64, u64> {
    let dir = dir.display().to_string();
    let mut child = kv_testkit::spawn_child("crash_child", CHILD_ENV, &[&dir, mode]);
    kv_testkit::kill_after_acks(&mut child, kill_after, |_| {}).into_by_thread()
}

fn check(dir: &Path, acked: &BTreeMap<u64, u64>) {
    let (store, _) = open(dir, Durability::Sync);
    let live = contents(&store);
    for t in 0..THREADS {
        let mut units = 0;
        while unit_ops(t, units)
            .iter()
            .all(|op| live.contains_key(&op.key()[..]))
        {
            units += 1;
        }
        let expected: usize = (0..units).map(|i| unit_ops(t, i).len()).sum();
        let prefix = format!("t{t}-");
        let present = live
            .keys()
            .filter(|k| k.starts_with(prefix.as_bytes()))
            .count();
        assert_eq!(
            present, expected,
            "thread {t}: units beyond {units}, or half a batch, survived"
        );
        if let Some(&last) = acked.get(&t) {
            assert!(
                units > last,
                "thread {t}: unit {last} was acknowledged, {units} survived"
            );
        }
    }
}

#[test]
fn sigkill_mid_load_loses_no_acknowledged_write() {
    for (mode, kill_after) in [("sync", 300), ("batch", 3000), ("none", 6000), ("sync", 40)] {
        let dir = tempfile::tempdir().unwrap();
        let acked = run_and_kill(dir.path(), mode, kill_after);
        assert!(!acked.is_empty(), "{mode}: nothing was acknowledged");
        check(dir.path(), &acked);
    }
}
