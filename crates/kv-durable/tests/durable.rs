//! The durable store: writes, batches, TTL, durability modes, group commit, faults.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{contents, open, open_with, options};
use kv_core::{ManualClock, Op};
use kv_durable::{CompressionPolicy, Durability, Error, Options, WriteOptions};
use kv_wal::fs::fault::{Fault, FaultyFileSystem, Op as FsOp};
use kv_wal::{with_causes, Compression, WalConfig};

#[test]
fn reopening_replays_every_write_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let wal = || WalConfig::new(dir.path()).max_segment_size(8 * 1024);
    let (store, _) = open_with(wal(), options(Durability::None));
    for i in 0..2000u32 {
        store.put(format!("k{}", i % 300), format!("v{i}")).unwrap();
        if i % 7 == 0 {
            store.delete(format!("k{}", (i * 13) % 300)).unwrap();
        }
    }
    let before = contents(&store);
    drop(store);
    let (store, report) = open_with(wal(), options(Durability::None));
    assert_eq!(contents(&store), before);
    assert_eq!(report.replayed, 2000 + 286);
    assert!(report.recovery.segments_scanned > 1, "the log rotated");
}

/// Eight writers of shared keys, each write durable or not as `sync_write` says for the
/// writer and the write: the state they leave is the one the log replays to, so groups
/// reached the state in the order they reached the log, whichever thread committed them
/// (a buffered group is committed by the leader of the one before it: `combine`).
fn writers_end_in_the_state_the_log_replays_to(
    durability: Durability,
    sync_write: impl Fn(usize, u32) -> bool + Sync,
) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), durability);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (store, sync_write) = (store.clone(), &sync_write);
            s.spawn(move || {
                for i in 0..200u32 {
                    let options = if sync_write(t, i) {
                        WriteOptions::sync()
                    } else {
                        WriteOptions::default()
                    };
                    // Shared keys, so the order of the groups decides the final values.
                    let shared = Op::put(format!("shared-{}", i % 10), format!("{t}-{i}"));
                    store.write(vec![shared], options).unwrap();
                    let own = format!("own-{t}-{i}");
                    store.put(own.clone(), "x").unwrap();
                    // Applied before the put returned, whichever thread committed it.
                    let now = store.now_ms();
                    assert!(store.sink().read().get(own.as_bytes(), now).is_some());
                }
            });
        }
    });
    let live = contents(&store);
    let stats = store.stats();
    assert_eq!(stats.records, 3200);
    if durability == Durability::Sync {
        assert_eq!(stats.records_synced, 3200);
        assert!(stats.records_per_fsync() >= 1.0);
    }
    assert_eq!(live.len(), 10 + 1600);
    drop(store);
    let (reopened, _) = open(dir.path(), durability);
    assert_eq!(contents(&reopened), live);
}

#[test]
fn concurrent_writers_end_in_the_state_the_log_replays_to() {
    writers_end_in_the_state_the_log_replays_to(Durability::Sync, |_, _| false);
    writers_end_in_the_state_the_log_replays_to(Durability::None, |_, _| false);
    // Durable writes among buffered ones: a leader combining buffered groups hands on
    // the first group that waits for an fsync.
    writers_end_in_the_state_the_log_replays_to(Durability::None, |t, i| t % 2 == 0 && i % 7 == 0);
}

#[test]
fn sync_writes_share_fsyncs_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), Durability::Sync);
    std::thread::scope(|s| {
        for t in 0..16 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..100 {
                    store.put(format!("{t}-{i}"), "v").unwrap();
                }
            });
        }
    });
    let stats = store.stats();
    assert_eq!(stats.records, 1600);
    assert_eq!(
        stats.records_synced, 1600,
        "every Sync write was covered by an fsync"
    );
    assert!(
        stats.fsyncs < 1600,
        "group commit shared no fsync: {} fsyncs",
        stats.fsyncs
    );
    assert!(stats.latency_p99 >= stats.latency_p50);
}

#[test]
fn an_explicit_sync_counts_the_records_written_since_the_last_one() {
    for durability in [Durability::None, Durability::Batch(Duration::from_secs(60))] {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path(), durability);
        for i in 0..4 {
            store.put(format!("k{i}"), "v").unwrap();
        }
        store.sync().unwrap();
        store.put("k4", "v").unwrap();
        store.sync().unwrap();
        let stats = store.stats();
        assert_eq!(
            (stats.fsyncs, stats.records_synced),
            (2, 5),
            "{durability:?}"
        );
        assert_eq!(stats.records_per_fsync(), 2.5);
    }
}

#[test]
fn durability_modes_decide_the_fsyncs() {
    for (durability, per_write, expect_fsyncs) in [
        (Durability::Sync, None, true),
        (Durability::None, None, false),
        (Durability::Batch(Duration::from_millis(5)), None, false),
        (Durability::None, Some(Durability::Sync), true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path(), durability);
        let write = WriteOptions {
            durability: per_write,
        };
        for i in 0..10 {
            store
                .write(vec![Op::put(format!("{i}"), "v")], write)
                .unwrap();
        }
        assert_eq!(
            store.stats().fsyncs == 10,
            expect_fsyncs,
            "{durability:?} {per_write:?}"
        );
    }
}

#[test]
fn an_atomic_batch_larger_than_the_rest_of_a_segment_survives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let wal = || WalConfig::new(dir.path()).max_segment_size(4096);
    let (store, _) = open_with(wal(), options(Durability::Sync));
    store.put("first", vec![b'x'; 3000]).unwrap();
    let batch: Vec<Op> = (0..40)
        .map(|i| Op::put(format!("batch-{i}"), vec![b'b'; 200]))
        .collect();
    store.write(batch, WriteOptions::default()).unwrap();
    store.close().unwrap();
    let (store, report) = open_with(wal(), options(Durability::Sync));
    assert_eq!(contents(&store).len(), 41);
    assert_eq!(report.recovery.segments_scanned, 2);
}

#[test]
fn a_crash_while_writing_a_batch_keeps_none_of_it() {
    for keep in [1, 50, 400, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let (fs, faults) = FaultyFileSystem::new();
        let wal = WalConfig::new(dir.path()).file_system(Arc::new(fs));
        let (store, _) = open_with(wal, options(Durability::Sync));
        store.put("before", "1").unwrap();
        faults.fail_once(FsOp::Write, 0, Fault::TornWrite { keep });
        let batch: Vec<Op> = (0..20)
            .map(|i| Op::put(format!("b{i}"), vec![b'v'; 60]))
            .collect();
        let err = store.write(batch, WriteOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Failed(_)), "{err}");
        assert!(
            !contents(&store).contains_key(&b"b0"[..]),
            "the state never shows it"
        );
        drop(store);
        let (store, _) = open(dir.path(), Durability::Sync);
        let keys: Vec<_> = contents(&store).into_keys().collect();
        assert_eq!(keys, [b"before".to_vec()], "torn after {keep} bytes");
    }
}

#[test]
fn a_failed_fsync_stops_the_store_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let wal = WalConfig::new(dir.path()).file_system(Arc::new(fs));
    let (store, _) = open_with(wal, options(Durability::Sync));
    store.put("a", "1").unwrap();
    faults.fail_once(FsOp::Sync, 0, Fault::Error(std::io::ErrorKind::Other));
    let err = store.put("b", "2").unwrap_err();
    assert!(matches!(err, Error::Failed(_)), "{err}");
    assert!(with_causes(&err).contains("fdatasync"), "{err}");
    let later = store.put("c", "3").unwrap_err();
    assert!(matches!(later, Error::Failed(_)), "{later}");
    assert!(store.stats().failed.is_some());
    assert_eq!(contents(&store).len(), 1, "failed writes are not applied");
    drop(store);
    let (store, _) = open(dir.path(), Durability::Sync);
    assert_eq!(contents(&store).get(&b"a"[..]).unwrap(), b"1");
}

#[test]
fn a_full_disk_fails_the_write_involved_and_the_store_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let wal = WalConfig::new(dir.path()).file_system(Arc::new(fs));
    let (store, _) = open_with(wal, options(Durability::Sync));
    store.put("a", "1").unwrap();
    faults.fail_once(FsOp::Write, 0, Fault::DiskFull);
    let err = store.put("b", "2").unwrap_err();
    assert!(matches!(err, Error::StorageFull(_)), "{err}");
    store.put("c", "3").unwrap();
    drop(store);
    let (store, _) = open(dir.path(), Durability::Sync);
    let keys: Vec<_> = contents(&store).into_keys().collect();
    assert_eq!(keys, [b"a".to_vec(), b"c".to_vec()]);
}

#[test]
fn ttl_deadlines_are_absolute_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let opts = || Options {
        clock: Arc::new(clock.clone()),
        ..options(Durability::Sync)
    };
    let wal = || WalConfig::new(dir.path());
    let (store, _) = open_with(wal(), opts());
    store
        .put_with_ttl("short", "v", Duration::from_secs(10))
        .unwrap();
    store
        .put_with_ttl("long", "v", Duration::from_secs(100))
        .unwrap();
    store.put("forever", "v").unwrap();
    clock.advance(10_000);
    assert_eq!(contents(&store).len(), 2, "expired at its deadline");
    store.close().unwrap();

    clock.advance(50_000);
    let (store, report) = open_with(wal(), opts());
    assert_eq!(report.expired_dropped, 1);
    assert_eq!(contents(&store).len(), 2);
    drop(store);
    clock.advance(50_000);
    let (store, report) = open_with(wal(), opts());
    assert_eq!(report.expired_dropped, 2);
    assert_eq!(
        contents(&store).into_keys().collect::<Vec<_>>(),
        [b"forever".to_vec()]
    );
}

#[test]
fn oversized_writes_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), Durability::Sync);
    let err = store.put(vec![b'k'; 70_000], "v").unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err}");
    assert_eq!(store.stats().records, 0);
}

#[test]
fn compressed_values_replay_to_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [Compression::Lz4, Compression::Zstd] {
        let opts = || Options {
            compression: CompressionPolicy {
                kind,
                threshold: 64,
            },
            ..options(Durability::Sync)
        };
        let wal = || WalConfig::new(dir.path());
        let (store, _) = open_with(wal(), opts());
        let big = vec![b'z'; 10_000];
        store.put(format!("{kind:?}"), big.clone()).unwrap();
        store.close().unwrap();
        let (store, report) = open_with(wal(), opts());
        assert!(
            report.recovery.bytes_scanned < 2_000,
            "the value was compressed"
        );
        assert_eq!(
            contents(&store)
                .get(format!("{kind:?}").as_bytes())
                .unwrap(),
            &big
        );
        store.close().unwrap();
        std::fs::remove_dir_all(dir.path()).unwrap();
    }
}

#[test]
fn closing_refuses_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), Durability::Sync);
    store.close().unwrap();
    assert!(matches!(store.put("k", "v"), Err(Error::Closed)));
    let (reopened, _) = open(dir.path(), Durability::Sync);
    reopened.put("k", "v").unwrap();
}

/// A sink that panics on one key, standing in for a bug under a commit.
struct Fragile(parking_lot::RwLock<kv_core::State>);

impl kv_durable::Sink for Fragile {
    fn apply(&self, op: kv_core::OpRef<'_>, now: u64) -> kv_core::Change {
        assert!(op.key() != b"boom", "the sink cannot take boom");
        self.0.apply(op, now)
    }
}

#[test]
fn a_panicking_commit_answers_every_writer_and_stops_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Fragile(parking_lot::RwLock::new(kv_core::State::new(
        kv_core::IndexKind::Hash,
    )));
    let wal = WalConfig::new(dir.path()).max_segment_size(64 * 1024);
    let (store, _) = kv_durable::Durable::open(
        wal,
        kv_wal::Position::START,
        sink,
        options(Durability::Sync),
    )
    .unwrap();
    store.put("before", "1").unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for i in 0..50u32 {
                    let key = if t == 3 && i == 10 {
                        "boom".to_string()
                    } else {
                        format!("k{t}-{i}")
                    };
                    answers.push(store.put(key, "v"));
                }
                done.send(()).unwrap();
                answers
            })
        })
        .collect();
    drop(done);
    for _ in 0..8 {
        finished
            .recv_timeout(Duration::from_secs(30))
            .expect("a writer still waits for its group after the panic");
    }
    let answers: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(
        matches!(&answers[3][10], Err(Error::Panicked(said)) if said.contains("boom")),
        "{:?}",
        answers[3][10]
    );
    // After its first error, a writer never succeeds again.
    for (t, answers) in answers.iter().enumerate() {
        let first_error = answers.iter().position(Result::is_err).unwrap_or(50);
        assert!(
            answers[first_error..]
                .iter()
                .all(|a| matches!(a, Err(Error::Panicked(_)))),
            "writer {t}: {answers:?}"
        );
    }
    assert!(matches!(store.put("after", "1"), Err(Error::Panicked(_))));
    // No compaction may start: it would snapshot a state that may hold part of a group.
    assert!(matches!(store.rotate(), Err(Error::Panicked(_))));
    assert!(matches!(
        store.delete_log_before(1),
        Err(Error::Panicked(_))
    ));
    let failed = store
        .stats()
        .failed
        .expect("the stats say the store failed");
    assert!(failed.contains("panicked"), "{failed}");
    drop(store);
    // What was acknowledged before the panic is in the log.
    let (reopened, _) = open(dir.path(), Durability::Sync);
    let live = contents(&reopened);
    assert_eq!(live.get(&b"before"[..]), Some(&b"1".to_vec()));
    for (t, answers) in answers.iter().enumerate() {
        for (i, answer) in answers.iter().enumerate() {
            if answer.is_ok() {
                assert!(live.contains_key(format!("k{t}-{i}").as_bytes()));
            }
        }
    }
}

#[test]
fn a_per_write_batch_window_is_honoured_whatever_the_store_mode() {
    use kv_wal::fs::volatile::VolatileFileSystem;
    let window = Duration::from_millis(50);
    for store_mode in [
        Durability::Sync,
        Durability::None,
        Durability::Batch(Duration::from_secs(600)),
    ] {
        let dir = std::path::Path::new("/store");
        let disk = VolatileFileSystem::with_dir(dir).unwrap();
        let wal = |fs: &VolatileFileSystem| {
            WalConfig::new(dir)
                .max_segment_size(64 * 1024)
                .file_system(Arc::new(fs.clone()))
        };
        let (store, _) = open_with(wal(&disk), options(store_mode));
        store
            .write(vec![Op::put("plain", "1")], WriteOptions::default())
            .unwrap();
        let batched = WriteOptions {
            durability: Some(Durability::Batch(window)),
        };
        store
            .write(vec![Op::put("windowed", "2")], batched)
            .unwrap();
        // Well past the window, the power goes.
        std::thread::sleep(window * 6);
        if store_mode != Durability::Sync {
            let stats = store.stats();
            assert!(stats.background_fsyncs >= 1, "{store_mode:?}: {stats:?}");
            assert_eq!(stats.fsyncs, 0, "{store_mode:?}: no write asked for a sync");
        }
        let after_cut = disk.restart();
        drop(store);
        let (reopened, _) = open_with(wal(&after_cut), options(store_mode));
        let survived = contents(&reopened);
        assert_eq!(
            survived.get(&b"windowed"[..]).map(Vec::as_slice),
            Some(&b"2"[..]),
            "{store_mode:?}: a write synced within {window:?} was lost at a power cut"
        );
        assert!(
            survived.contains_key(&b"plain"[..]),
            "{store_mode:?}: what came before it is synced with it"
        );
    }
}

#[test]
fn a_failed_cut_at_close_says_every_write_was_synced_and_the_store_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let wal = WalConfig::new(dir.path()).file_system(Arc::new(fs));
    let (store, _) = open_with(wal, options(Durability::None));
    store.put("a", "1").unwrap();
    faults.fail_once(FsOp::SetLen, 0, Fault::Error(std::io::ErrorKind::Other));
    let err = store.close().unwrap_err();
    assert!(matches!(err, Error::Log(_)), "{err}");
    assert!(
        with_causes(&err).contains("every record is synced"),
        "{err}"
    );
    assert!(!err.to_string().contains("goes on"), "{err}");
    assert!(matches!(store.put("b", "2"), Err(Error::Closed)));
    drop(store);
    let (store, _) = open(dir.path(), Durability::Sync);
    assert_eq!(contents(&store).get(&b"a"[..]).unwrap(), b"1");
}

/// A store whose log spans segments 0 to 3, with key `k{i}` in segment `i`.
fn four_segments(wal: WalConfig) -> common::Store {
    let (store, _) = open_with(wal, options(Durability::Sync));
    for i in 0..4 {
        if i > 0 {
            store.rotate().unwrap();
        }
        store.put(format!("k{i}"), "v").unwrap();
    }
    assert_eq!(store.log_segments().unwrap(), 0..=3);
    store
}

#[test]
fn a_failed_directory_sync_after_deleting_old_segments_stops_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let store = four_segments(WalConfig::new(dir.path()).file_system(Arc::new(fs)));
    faults.fail_once(FsOp::SyncDir, 0, Fault::Error(std::io::ErrorKind::Other));
    let err = store.delete_log_before(3).unwrap_err();
    assert!(matches!(err, Error::Failed(_)), "{err}");
    assert!(
        with_causes(&err).contains("whether the deletion is durable"),
        "{err}"
    );
    let later = store.put("later", "v").unwrap_err();
    assert!(matches!(later, Error::Failed(_)), "{later}");
    assert!(matches!(store.delete_log_before(3), Err(Error::Failed(_))));
    drop(store);
    let (store, _) = open(dir.path(), Durability::Sync);
    let keys: Vec<_> = contents(&store).into_keys().collect();
    // Segment 0 went; deleting stopped at the failure, so there is no gap.
    assert_eq!(keys, [b"k1".to_vec(), b"k2".to_vec(), b"k3".to_vec()]);
}

#[test]
fn a_segment_that_cannot_be_deleted_is_reported_as_such_and_the_store_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let store = four_segments(WalConfig::new(dir.path()).file_system(Arc::new(fs)));
    faults.fail_once(
        FsOp::Remove,
        0,
        Fault::Error(std::io::ErrorKind::PermissionDenied),
    );
    let err = store.delete_log_before(3).unwrap_err();
    assert!(matches!(err, Error::Log(_)), "{err}");
    assert!(with_causes(&err).contains("cannot delete segment"), "{err}");
    store.put("later", "v").unwrap();
    assert_eq!(store.delete_log_before(3).unwrap(), 3);
    assert_eq!(store.log_segments().unwrap(), 3..=3);
}
