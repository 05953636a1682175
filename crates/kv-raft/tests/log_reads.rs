//! Reads of the Raft log with any range bounds openraft's reader API accepts.

mod common;

use std::ops::Bound::{Excluded, Included, Unbounded};

use common::{append, entry};
use kv_raft::LogStore;
use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;

#[tokio::test]
async fn empty_and_reversed_ranges_read_nothing_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    append(&mut store, (0..10).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    let mut reader = store.get_log_reader().await;
    let indexes = |entries: Vec<kv_raft::Entry>| -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index()).collect()
    };
    let none: Vec<u64> = Vec::new();
    assert_eq!(
        indexes(
            reader
                .try_get_log_entries((Excluded(5), Excluded(5)))
                .await
                .unwrap()
        ),
        none
    );
    assert_eq!(
        indexes(
            reader
                .try_get_log_entries((Excluded(5), Included(5)))
                .await
                .unwrap()
        ),
        none
    );
    assert_eq!(
        indexes(
            reader
                .try_get_log_entries((Included(7), Excluded(3)))
                .await
                .unwrap()
        ),
        none
    );
    assert_eq!(
        indexes(
            reader
                .try_get_log_entries((Excluded(u64::MAX), Unbounded))
                .await
                .unwrap()
        ),
        none
    );
    assert_eq!(
        indexes(
            reader
                .try_get_log_entries((Excluded(2), Excluded(6)))
                .await
                .unwrap()
        ),
        [3, 4, 5]
    );
    assert_eq!(
        indexes(reader.try_get_log_entries(8..).await.unwrap()),
        [8, 9]
    );
}

/// Before: a reader (openraft's replication tasks hold clones) kept the log open, and its
/// directory locked, after the store dropped: a restart in the same process could not open
/// it, and the reader served a log no one wrote any more.
#[tokio::test]
async fn a_reader_outliving_its_store_fails_and_the_log_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    append(&mut store, (0..3).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    let mut reader = store.get_log_reader().await;
    assert_eq!(reader.try_get_log_entries(..).await.unwrap().len(), 3);
    drop(store);
    assert!(reader.try_get_log_entries(..).await.is_err());
    assert!(reader.read_vote().await.is_err());
    let mut store = LogStore::open(dir.path()).expect("the directory was released");
    let mut reader = store.get_log_reader().await;
    assert_eq!(reader.try_get_log_entries(..).await.unwrap().len(), 3);
}
