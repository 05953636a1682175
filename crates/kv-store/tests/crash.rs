//! A store killed with SIGKILL mid-load loses nothing acknowledged, through the facade: puts,
//! TTL puts, deletes inside atomic batches, from several threads, in each durability mode,
//! and with compactions running back to back while it is killed.
//!
//! The test binary re-runs itself as the child (`crash_child`, ignored in normal runs). Each
//! writer thread performs its own deterministic sequence of units and prints `ack <thread>
//! <unit>` when one returns. After the kill, each thread's keys in the reopened store must
//! equal the state after some prefix of its units that includes every acknowledged one:
//! nothing acknowledged lost, no batch in part, nothing that was never written.

use std::collections::BTreeMap;
use std::path::Path;

use std::time::Duration;

use kv_store::{Durability, IndexKind, KvStore, Options, WriteBatch};

const CHILD_ENV: &str = "KV_STORE_CRASH_CHILD";
const THREADS: u64 = 3;

fn options(mode: &str) -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .shards(8)
        .segment_size(256 * 1024)
        .auto_compact(None)
        .durability(match mode.trim_end_matches("+compact") {
            "sync" => Durability::Sync,
            "batch" => Durability::Batch(Duration::from_millis(2)),
            _ => Durability::None,
        })
}

/// Keys of writer `thread` of run number `run` (a thread id per run: `run * THREADS + t`).
fn key(thread: u64, unit: u64) -> String {
    format!("t{thread}:{unit:07}")
}

/// Unit `unit` of `thread`: a put; every third a TTL put (an hour); every fifth an atomic
/// batch that puts this unit's key, a second key, and deletes the key of unit `unit - 3`.
fn perform(store: &KvStore, thread: u64, unit: u64) {
    let value = format!("v{unit}");
    if unit % 5 == 4 {
        let mut batch = WriteBatch::new();
        batch
            .put(key(thread, unit), value.clone())
            .put(format!("{}-b", key(thread, unit)), value)
            .delete(key(thread, unit - 3));
        store.write(batch).unwrap();
    } else if unit % 3 == 2 {
        store
            .put_with_ttl(key(thread, unit), value, Duration::from_secs(3600))
            .unwrap();
    } else {
        store.put(key(thread, unit), value).unwrap();
    }
}

/// The model's effect of `unit`.
fn model(state: &mut BTreeMap<String, String>, thread: u64, unit: u64) {
    let value = format!("v{unit}");
    state.insert(key(thread, unit), value.clone());
    if unit % 5 == 4 {
        state.insert(format!("{}-b", key(thread, unit)), value);
        state.remove(&key(thread, unit - 3));
    }
}

#[test]
#[ignore = "the child process of the crash tests"]
fn crash_child() {
    let Some(args) = kv_testkit::child_args(CHILD_ENV) else {
        return;
    };
    let (dir, mode) = (&args[0][..], &args[1][..]);
    let run: u64 = args[2].parse().unwrap();
    let store = KvStore::open_with(dir, options(mode)).unwrap();
    std::thread::scope(|s| {
        if mode.ends_with("+compact") {
            let store = store.clone();
            s.spawn(move || loop {
                store.compact().unwrap();
                println!("compacted");
                std::thread::sleep(Duration::from_millis(2));
            });
        }
        for thread in run * THREADS..(run + 1) * THREADS {
            let store = store.clone();
            s.spawn(move || {
                for unit in 0.. {
                    perform(&store, thread, unit);
                    kv_testkit::acknowledge(thread, unit);
                }
            });
        }
    });
}

/// Runs the child until it has acknowledged `kill_after` units, kills it, and returns the last
/// acknowledged unit of each thread.
/// Also counts the compactions the child completed.
fn run_and_kill(dir: &Path, mode: &str, run: u64, kill_after: u64) -> (BTreeMap<u64, u64>, u64) {
    let (dir, run) = (dir.display().to_string(), run.to_string());
    let mut child = kv_testkit::spawn_child("crash_child", CHILD_ENV, &[&dir, mode, &run]);
    let mut compactions = 0;
    let acks = kv_testkit::kill_after_acks(&mut child, kill_after, |line| {
        compactions += u64::from(line == "compacted");
    });
    (acks.into_by_thread(), compactions)
}

fn check(dir: &Path, mode: &str, runs: &[BTreeMap<u64, u64>]) {
    let store = KvStore::open_with(dir, options(mode)).unwrap();
    let acked: BTreeMap<u64, u64> = runs.iter().flatten().map(|(t, u)| (*t, *u)).collect();
    for thread in 0..runs.len() as u64 * THREADS {
        let prefix = format!("t{thread}:");
        let found: BTreeMap<String, String> = store
            .scan_prefix(&prefix)
            .unwrap()
            .map(|(k, v)| {
                (
                    String::from_utf8(k.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect();
        let first = acked.get(&thread).map_or(0, |last| last + 1);
        let mut state = BTreeMap::new();
        let mut units = 0;
        while units < first {
            model(&mut state, thread, units);
            units += 1;
        }
        // Units past the last acknowledged one may have reached the log before the kill.
        let mut matched = state == found;
        while !matched && units < first + 64 {
            model(&mut state, thread, units);
            units += 1;
            matched = state == found;
        }
        assert!(
            matched,
            "thread {thread} ({mode}): the store holds no prefix of the units that includes \
             the {first} acknowledged ones ({} keys found)",
            found.len()
        );
    }
}

#[test]
fn sigkill_mid_load_loses_no_acknowledged_write() {
    let runs = [
        ("sync", 150),
        ("batch", 3_000),
        ("none", 7_000),
        ("batch", 20),
        ("sync+compact", 400),
        ("batch+compact", 6_000),
        ("none+compact", 9_000),
        ("batch+compact", 15_000),
    ];
    let mut compactions = 0;
    for (mode, kill_after) in runs {
        let dir = tempfile::tempdir().unwrap();
        let (first, compacted) = run_and_kill(dir.path(), mode, 0, kill_after);
        check(dir.path(), mode, std::slice::from_ref(&first));
        // Killed again after recovering: the first run's keys stay, the second's are whole.
        let (second, compacted_again) = run_and_kill(dir.path(), mode, 1, kill_after / 2 + 1);
        check(dir.path(), mode, &[first, second]);
        compactions += compacted + compacted_again;
    }
    assert!(
        compactions >= 10,
        "only {compactions} compactions ran before the kills"
    );
}
