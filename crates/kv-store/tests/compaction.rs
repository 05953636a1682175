//! Compaction through the facade: it shrinks the log, runs while writers go on, keeps what
//! it must, and a fault at any file operation of it (a crash at that instant) loses nothing.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::contents;

use kv_store::with_causes;
use kv_store::{AutoCompact, Durability, Error, IndexKind, KvStore, ManualClock, Options};
use kv_wal::fs::fault::{Fault, FaultyFileSystem, Op};

fn options() -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .shards(4)
        .segment_size(64 * 1024)
        .durability(Durability::Sync)
        .auto_compact(None)
        .sweep_interval(Duration::ZERO)
}

/// Writes a history with overwrites, deletes and TTLs; returns the model of what is live.
fn history(store: &KvStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut model = BTreeMap::new();
    for round in 0..5u32 {
        for i in 0..200u32 {
            let key = format!("key{i:04}").into_bytes();
            let value = format!("value {round} {i}").repeat(3).into_bytes();
            store.put(key.clone(), value.clone()).unwrap();
            model.insert(key, value);
        }
    }
    for i in (0..200u32).step_by(3) {
        let key = format!("key{i:04}").into_bytes();
        store.delete(key.clone()).unwrap();
        model.remove(&key);
    }
    store
        .put_with_ttl("long-ttl", "kept", Duration::from_secs(3600))
        .unwrap();
    model.insert(b"long-ttl".to_vec(), b"kept".to_vec());
    model
}

#[test]
fn compaction_shrinks_the_log_and_reopens_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    let model = history(&store);
    let before = store.stats();
    let report = store.compact().unwrap();
    assert_eq!(
        report.entries as usize,
        model.len(),
        "deleted keys are not in the snapshot"
    );
    assert!(report.bytes_after * 3 < report.bytes_before, "{report:?}");
    let after = store.stats();
    assert!(
        after.log_bytes < before.log_bytes / 10,
        "{before:?} {after:?}"
    );
    assert!(after.live_data_ratio > 3.0 * before.live_data_ratio);
    assert_eq!(after.compactions_total, 1);
    assert_eq!(contents(&store), model);
    // Writes after the compaction land in the log after the snapshot.
    store.put("after", "compaction").unwrap();
    let mut model = model;
    model.insert(b"after".to_vec(), b"compaction".to_vec());
    store.compact().unwrap();
    store.put("after2", "second").unwrap();
    model.insert(b"after2".to_vec(), b"second".to_vec());
    store.close().unwrap();

    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
    let snapshots: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        snapshots.len(),
        1,
        "the old snapshot was removed: {snapshots:?}"
    );
}

#[test]
fn expired_keys_do_not_reach_the_snapshot_and_deadlines_stay_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let options = || options().clock(clock.clone());
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    store
        .put_with_ttl("short", "v", Duration::from_millis(10))
        .unwrap();
    store
        .put_with_ttl("long", "v", Duration::from_millis(1_000))
        .unwrap();
    store.put("forever", "v").unwrap();
    clock.advance(10);
    let report = store.compact().unwrap();
    assert_eq!(report.entries, 2);
    store.close().unwrap();
    clock.advance(989);
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(store.len(), 2);
    clock.advance(1);
    assert_eq!(store.len(), 1, "the snapshot kept the deadline");
}

#[test]
fn compaction_runs_while_writers_go_on() {
    // Inline encoding, and shards encoded by three threads beside the snapshot's writer.
    for threads in [0, 3] {
        compaction_runs_while_writers_go_on_with(threads);
    }
}

fn compaction_runs_while_writers_go_on_with(threads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let options = || options().compaction_threads(threads);
    let store = KvStore::open_with(dir.path(), options().durability(Durability::None)).unwrap();
    let models: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..3u32)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || {
                    let mut model = BTreeMap::new();
                    for i in 0..3_000u32 {
                        let key = format!("t{t}:{:03}", i % 500).into_bytes();
                        if i % 7 == 6 {
                            store.delete(key.clone()).unwrap();
                            model.remove(&key);
                        } else {
                            let value = i.to_le_bytes().repeat(8);
                            store.put(key.clone(), value.clone()).unwrap();
                            model.insert(key, value);
                        }
                    }
                    model
                })
            })
            .collect();
        for _ in 0..5 {
            store.compact().unwrap();
        }
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let model: BTreeMap<_, _> = models.into_iter().flatten().collect();
    assert_eq!(contents(&store), model);
    assert_eq!(store.stats().compactions_total, 5);
    store.close().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
}

#[test]
fn a_checkpoint_is_a_consistent_openable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    let model = history(&store);
    store.compact().unwrap();
    store.put("tail", "in the log after the snapshot").unwrap();
    let mut model = model;
    model.insert(b"tail".to_vec(), b"in the log after the snapshot".to_vec());
    store.checkpoint(backup.path()).unwrap();
    store.put("later", "not in the copy").unwrap();
    let err = store.checkpoint(backup.path()).unwrap_err();
    assert!(with_causes(&err).contains("not empty"), "{err}");
    let copy = KvStore::open_with(backup.path(), options()).unwrap();
    assert_eq!(contents(&copy), model);
    assert_eq!(store.get("later").unwrap(), "not in the copy");
}

#[test]
fn the_store_compacts_by_itself_past_the_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let trigger = AutoCompact {
        min_bytes: 256 * 1024,
        ratio: 2.0,
    };
    let options = options()
        .durability(Durability::None)
        .auto_compact(Some(trigger))
        .sweep_interval(Duration::from_millis(10));
    let store = KvStore::open_with(dir.path(), options).unwrap();
    for round in 0..40u32 {
        for i in 0..100u32 {
            store
                .put(format!("key{i}"), round.to_le_bytes().repeat(25))
                .unwrap();
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.stats().compactions_total == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never compacted: {:?}",
            store.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = store.stats();
    assert!(
        stats.log_bytes + stats.snapshot_bytes < 256 * 1024,
        "{stats:?}"
    );
    assert_eq!(store.len(), 100);
}

/// The calls of each kind a clean compaction makes, on a store holding `history`.
fn count_calls(op: Op) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let store = KvStore::open_with(dir.path(), options().file_system(Arc::new(fs))).unwrap();
    history(&store);
    let before = faults.count(op);
    store.compact().unwrap();
    faults.count(op) - before
}

#[test]
fn a_fault_at_any_file_operation_of_a_compaction_loses_nothing() {
    let kinds = [
        Op::Open,
        Op::Write,
        Op::Sync,
        Op::SetLen,
        Op::Rename,
        Op::SyncDir,
        Op::Remove,
    ];
    let mut injected = 0;
    for op in kinds {
        let calls = count_calls(op);
        for skip in 0..calls {
            let dir = tempfile::tempdir().unwrap();
            let (fs, faults) = FaultyFileSystem::new();
            let store =
                KvStore::open_with(dir.path(), options().file_system(Arc::new(fs))).unwrap();
            let mut model = history(&store);
            // First a compaction that succeeds, so the fault hits one that replaces a snapshot.
            store.compact().unwrap();
            store.put("between", "compactions").unwrap();
            model.insert(b"between".to_vec(), b"compactions".to_vec());
            faults.fail_once(op, skip, Fault::Error(std::io::ErrorKind::Other));
            let result = store.compact();
            faults.clear();
            // A failed compaction removes its unfinished snapshot too, not only a finished
            // one; a successful one leaves none.
            let unfinished: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.ends_with(".tmp"))
                .collect();
            assert!(
                unfinished.is_empty(),
                "fault at {op:?} call {skip} ({result:?}) left {unfinished:?}"
            );
            if result.is_err() {
                injected += 1;
                assert!(matches!(
                    result,
                    Err(Error::Compaction(_) | Error::Failed(_))
                ));
            }
            // Whatever the compaction managed, the store as it stands must reopen whole; a
            // store whose log failed is reopened without writing more. One whose log is
            // healthy compacts again at once: a failed compaction leaves nothing in the way.
            // Except after a fault in the manifest's rename or the directory sync after it:
            // then which manifest the disk keeps is unknown, and the store refuses to compact
            // (and so to delete anything) until it is reopened.
            if store.put("after", "the fault").is_ok() {
                model.insert(b"after".to_vec(), b"the fault".to_vec());
                match store.compact() {
                    Ok(_) => {}
                    Err(Error::Compaction(e))
                        if matches!(
                            e.downcast_ref(),
                            Some(kv_compact::Error::OutcomeUnknown { .. })
                        ) && matches!(op, Op::Rename | Op::SyncDir) => {}
                    Err(e) => panic!("compacting after a fault at {op:?} {skip}: {e}"),
                }
            }
            drop(store);
            let store = KvStore::open_with(dir.path(), options()).unwrap();
            assert_eq!(contents(&store), model, "fault at {op:?} call {skip}");
            // And it compacts again cleanly.
            store.compact().unwrap();
            drop(store);
            let store = KvStore::open_with(dir.path(), options()).unwrap();
            assert_eq!(
                contents(&store),
                model,
                "after a clean compaction ({op:?} {skip})"
            );
        }
    }
    assert!(injected > 15, "only {injected} faults hit a compaction");
}

#[test]
fn a_second_open_touches_nothing_of_a_running_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    history(&store);
    store.compact().unwrap();
    // What a compaction in progress has renamed into place but not yet named in the manifest.
    let in_progress = dir.path().join("snapshots").join("000099");
    std::fs::create_dir_all(&in_progress).unwrap();
    std::fs::write(in_progress.join("000000.wal"), b"").unwrap();
    let err = KvStore::open_with(dir.path(), options()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(
        in_progress.exists(),
        "the second open cleaned up under the first"
    );
    assert!(dir.path().join("snapshots").join("000001").exists());
}

#[test]
fn an_interrupted_checkpoint_is_refused_not_opened_as_a_smaller_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("wal")).unwrap();
    std::fs::write(dir.path().join(kv_compact::CHECKPOINT_MARKER), b"").unwrap();
    let err = KvStore::open_with(dir.path(), options()).unwrap_err();
    assert!(err.to_string().contains("interrupted checkpoint"), "{err}");
}

#[test]
fn a_manifest_whose_log_segment_is_missing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    history(&store);
    store.compact().unwrap();
    store.put("after", "compaction").unwrap();
    store.close().unwrap();
    // The log restored from an older backup: only segments before the manifest's.
    let wal = dir.path().join("wal");
    for entry in std::fs::read_dir(&wal).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wal") {
            std::fs::remove_file(path).unwrap();
        }
    }
    std::fs::write(wal.join("000000.wal"), b"").unwrap();
    let err = KvStore::open_with(dir.path(), options()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

/// A fault in the directory sync after the manifest's rename, then in reading the manifest
/// back: whether the switch reached the disk is unknown. Nothing may be deleted then (the
/// snapshot the disk's manifest names above all), and no compaction may run until a reopen
/// reads what the disk says. Every pairing of a failed directory sync with a failed open
/// after it is tried.
#[test]
fn a_compaction_with_an_unknown_outcome_deletes_nothing_and_blocks_compaction() {
    let small = || options().durability(Durability::None);
    let small_history = |store: &KvStore| {
        let mut model = BTreeMap::new();
        for i in 0..20u32 {
            let (key, value) = (format!("key{i:04}"), format!("value {i}"));
            store.put(key.clone(), value.clone()).unwrap();
            model.insert(key.into_bytes(), value.into_bytes());
        }
        model
    };
    // Every pairing is tried, up to one past the calls a compaction makes (no fault).
    let (syncs, opens) = (count_calls(Op::SyncDir) + 1, count_calls(Op::Open) + 1);
    let mut unknown = 0;
    for sync in 0..syncs {
        for open in 0..opens {
            let dir = tempfile::tempdir().unwrap();
            let (fs, faults) = FaultyFileSystem::new();
            let store = KvStore::open_with(dir.path(), small().file_system(Arc::new(fs))).unwrap();
            let mut model = small_history(&store);
            store.compact().unwrap();
            store.put("between", "compactions").unwrap();
            model.insert(b"between".to_vec(), b"compactions".to_vec());
            faults.fail_once(Op::SyncDir, sync, Fault::Error(std::io::ErrorKind::Other));
            faults.fail_once(Op::Open, open, Fault::Error(std::io::ErrorKind::Other));
            let result = store.compact();
            faults.clear();
            // A failed compaction removes its unfinished snapshot too, not only a finished
            // one; a successful one leaves none.
            let unfinished: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.ends_with(".tmp"))
                .collect();
            assert!(
                unfinished.is_empty(),
                "faults at sync_dir {sync}, open {open} ({result:?}) left {unfinished:?}"
            );
            let snapshots = || {
                let mut names: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
                names.sort();
                names
            };
            if let Err(Error::Compaction(e)) = &result {
                if e.to_string().contains("cannot sync the directory")
                    && dir.path().join("MANIFEST").exists()
                    && kv_compact::Manifest::decode(
                        &std::fs::read(dir.path().join("MANIFEST")).unwrap(),
                    )
                    .unwrap()
                    .snapshot
                        == Some(2)
                {
                    // The rename happened; the directory sync after it failed.
                    unknown += 1;
                    assert_eq!(snapshots(), ["000001", "000002"], "{sync} {open}");
                    let again = store.compact();
                    // It says why, down to the operating system's error.
                    assert!(
                        matches!(&again, Err(Error::Compaction(e))
                        if matches!(
                            e.downcast_ref(),
                            Some(kv_compact::Error::OutcomeUnknown { cause })
                                if cause.contains("injected fault")
                        )),
                        "{again:?}"
                    );
                    assert_eq!(snapshots(), ["000001", "000002"], "{sync} {open}");
                }
            }
            drop(store);
            let store = KvStore::open_with(dir.path(), small())
                .unwrap_or_else(|e| panic!("reopening after faults {sync} {open}: {e}"));
            assert_eq!(contents(&store), model, "faults {sync} {open}");
            store.compact().unwrap();
        }
    }
    assert!(unknown > 0, "no fault hit the manifest's directory sync");
}
