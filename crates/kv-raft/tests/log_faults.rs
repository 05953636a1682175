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
