//! The Raft log's syncs, counted and failed with kv-wal's fault injection: one fdatasync per
//! group of entries, callbacks only after it, and every other write synced before it returns.

mod common;

use std::io::ErrorKind;
use std::sync::Arc;

use common::{append, entry, log_id, seen, vote};
use kv_raft::LogStore;
use kv_wal::fs::fault::{Fault, Faults, FaultyFileSystem, Op};
use kv_wal::WalConfig;
use openraft::storage::RaftLogStorage;

fn open(dir: &std::path::Path) -> (LogStore, Faults) {
    let (fs, faults) = FaultyFileSystem::new();
    let config = WalConfig::new(dir.join("raft")).file_system(Arc::new(fs));
    (LogStore::open_with(config).unwrap(), faults)
}

#[tokio::test]
async fn entries_appended_together_take_one_fdatasync() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, faults) = open(dir.path());
    append(&mut store, vec![entry(1, 0)]).await.unwrap();
    let before = faults.count(Op::Sync);
    append(&mut store, (1..=100).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    assert_eq!(faults.count(Op::Sync) - before, 1);
    assert_eq!(seen(&mut store).await.unwrap().entries.len(), 101);
}

#[tokio::test]
async fn a_failed_fdatasync_fails_the_append_callback_and_stops_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, faults) = open(dir.path());
    faults.fail_once(Op::Sync, 0, Fault::Error(ErrorKind::Other));
    let failed = append(&mut store, vec![entry(1, 0), entry(1, 1)]).await;
    assert!(
        failed.is_err(),
        "the callback reported success for entries never synced"
    );
    // The log is poisoned: nothing later can be acknowledged over the lost sync.
    assert!(store.save_vote(&vote(2)).await.is_err());
    assert!(append(&mut store, vec![entry(1, 2)]).await.is_err());
}

#[tokio::test]
async fn vote_truncation_purge_and_committed_are_synced_before_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, faults) = open(dir.path());
    append(&mut store, (0..10).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    let mut syncs = faults.count(Op::Sync);
    store.save_vote(&vote(1)).await.unwrap();
    assert!(
        faults.count(Op::Sync) > syncs,
        "save_vote returned before a sync"
    );
    syncs = faults.count(Op::Sync);
    store.save_committed(Some(log_id(1, 3))).await.unwrap();
    assert!(
        faults.count(Op::Sync) > syncs,
        "save_committed returned before a sync"
    );
    syncs = faults.count(Op::Sync);
    store.truncate_after(Some(log_id(1, 7))).await.unwrap();
    assert!(
        faults.count(Op::Sync) > syncs,
        "truncate_after returned before a sync"
    );
    syncs = faults.count(Op::Sync);
    store.purge(log_id(1, 2)).await.unwrap();
    assert!(
        faults.count(Op::Sync) > syncs,
        "purge returned before a sync"
    );

    // And a failed sync is an error to the caller.
    faults.fail_once(Op::Sync, 0, Fault::Error(ErrorKind::Other));
    assert!(store.save_vote(&vote(2)).await.is_err());
}

/// Readers on other tasks (openraft's replication) reading while a write of the log waits
/// on a slow disk: `ops` runs `write` on `store`, a sync of kind `op` taking 1.5 s; returns
/// the longest any read took.
async fn longest_read_during(
    store: LogStore,
    faults: &Faults,
    op: Op,
    write: impl FnOnce(LogStore) -> tokio::task::JoinHandle<LogStore>,
) -> std::time::Duration {
    use openraft::RaftLogReader;
    use std::time::{Duration, Instant};
    let mut store = store;
    let reader = store.get_log_reader().await;
    faults.fail_once(op, 0, Fault::SlowError { millis: 1500 });
    let writing = write(store);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut reader = reader.clone();
            tokio::spawn(async move {
                let mut longest = Duration::ZERO;
                for _ in 0..10 {
                    let t = Instant::now();
                    reader.read_vote().await.unwrap();
                    reader.try_get_log_entries(5..8).await.unwrap();
                    longest = longest.max(t.elapsed());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                longest
            })
        })
        .collect();
    let mut longest = Duration::ZERO;
    for r in readers {
        longest = longest.max(r.await.unwrap());
    }
    drop(writing.await.unwrap());
    longest
}

/// Before: `save_vote`, `save_committed`, `truncate_after` and `purge` held the log's one
/// lock across their fdatasync (and a purge across a directory sync per deleted segment),
/// so every read of openraft's replication tasks waited for the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_never_wait_for_a_write_s_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, faults) = open(dir.path());
    append(&mut store, (0..10).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    let longest = longest_read_during(store, &faults, Op::Sync, |mut store| {
        tokio::spawn(async move {
            // Fails after the slow sync: what matters is what readers saw meanwhile.
            let _ = store.save_vote(&vote(2)).await;
            store
        })
    })
    .await;
    assert!(longest.as_millis() < 500, "a read waited {longest:?}");

    // A purge deleting segments, each deletion followed by a directory sync.
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let config = WalConfig::new(dir.path().join("raft"))
        .file_system(Arc::new(fs))
        .max_segment_size(kv_wal::MIN_SEGMENT_SIZE);
    let mut store = LogStore::open_with(config).unwrap();
    for i in 0..40 {
        append(&mut store, vec![entry(1, i)]).await.unwrap();
    }
    assert!(store.segments().count() > 3);
    let longest = longest_read_during(store, &faults, Op::SyncDir, |mut store| {
        tokio::spawn(async move {
            let _ = store.purge(log_id(1, 30)).await;
            store
        })
    })
    .await;
    assert!(longest.as_millis() < 500, "a read waited {longest:?}");
}
