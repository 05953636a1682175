//! openraft purges the Raft log up to a snapshot's last log id once the snapshot is built.
//! The live store keeps its own durability (a batch window), so entries it applied but has
//! not synced would be lost in a power cut once purged, were it not that building a snapshot
//! (`KvStore::checkpoint`) syncs the live store's log first: this test holds that
//! dependency on kv-store in place.

mod common;

use std::time::Duration;

use common::log_id;
use futures_util::stream;
use kv_raft::{Entry, Request, StateMachine};
use kv_store::{Durability, Options};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder};

#[tokio::test]
async fn building_a_snapshot_syncs_every_entry_applied_to_the_live_store() {
    let dir = tempfile::tempdir().unwrap();
    // A window so long that nothing is synced by itself during the test.
    let options = Options::default().durability(Durability::Batch(Duration::from_secs(3600)));
    let mut sm = StateMachine::open(dir.path(), options).unwrap();
    let entries: Vec<Entry> = (1..=20)
        .map(|i| Entry {
            log_id: log_id(1, i),
            payload: EntryPayload::Normal(Request::put(format!("k{i}"), "v")),
        })
        .collect();
    sm.apply(stream::iter(entries.into_iter().map(|e| Ok((e, None)))))
        .await
        .unwrap();
    let store = sm.reader().store();
    let before = store.stats();
    assert_eq!(
        (before.fsyncs_total, before.background_fsyncs_total),
        (0, 0),
        "the live store synced by itself: the test shows nothing"
    );
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let after = store.stats();
    assert_eq!(after.commit_records_total, before.commit_records_total);
    assert!(
        after.fsyncs_total > before.fsyncs_total,
        "building a snapshot did not sync the live store's log: entries the snapshot holds \
         could be lost from the store by a power cut after openraft purged them"
    );
}
