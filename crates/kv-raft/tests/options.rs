//! Options under which replicas could apply the same entries differently, or damage could
//! open silently, are refused with a typed error; nothing is opened.

mod common;

use std::collections::BTreeSet;

use common::log_id;
use futures_util::stream;
use kv_raft::{Entry, Error, LogStore, Request, StateMachine, RAFT_LOG_DIR};
use kv_store::{Eviction, Options, RecoveryMode};
use kv_wal::WalConfig;
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, Membership, RaftSnapshotBuilder};

fn refused(options: Options) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let refused = matches!(
        StateMachine::open(dir.path(), options),
        Err(Error::InvalidOption { .. })
    );
    // Nothing was created either.
    refused && std::fs::read_dir(dir.path()).unwrap().next().is_none()
}

#[test]
fn limits_sizes_eviction_and_salvage_are_refused_by_the_state_machine() {
    assert!(refused(Options::default().max_keys(10, Eviction::Reject)));
    assert!(refused(
        Options::default().max_memory(1 << 20, Eviction::Reject)
    ));
    assert!(refused(Options::default().max_keys(10, Eviction::Lru)));
    assert!(refused(
        Options::default().max_memory(1 << 20, Eviction::Lfu)
    ));
    assert!(refused(
        Options::default().recovery_mode(RecoveryMode::Salvage)
    ));
    // A replica with a lower limit would skip entries the others apply.
    assert!(refused(Options::default().max_value_size(16)));
    assert!(refused(Options::default().max_key_size(16)));
    assert!(refused(
        Options::default().max_value_size(kv_raft::MAX_VALUE_SIZE * 2)
    ));
    assert!(!refused(Options::default()));
    assert!(!refused(
        Options::default().recovery_mode(RecoveryMode::Strict)
    ));
}

#[test]
fn salvage_is_refused_by_the_raft_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path().join(RAFT_LOG_DIR)).recovery_mode(RecoveryMode::Salvage);
    assert!(matches!(
        LogStore::open_with(config),
        Err(Error::InvalidOption { .. })
    ));
    assert!(!dir.path().join(RAFT_LOG_DIR).exists());
}

fn put(index: u64) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(Request::put(
            format!("k{index}").into_bytes(),
            vec![b'v'; 100],
        )),
    }
}

/// The copy an install opens was synced whole: a record cut at its tail is damage, not a
/// torn write to repair silently.
#[tokio::test]
async fn an_install_opens_the_copy_strictly() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = StateMachine::open(a.path(), Options::default()).unwrap();
    let voters: BTreeSet<u64> = [1].into_iter().collect();
    let mut entries = vec![Entry {
        log_id: log_id(1, 0),
        payload: EntryPayload::Membership(Membership::new_with_defaults(vec![voters], [])),
    }];
    entries.extend((1..=50).map(put));
    leader
        .apply(stream::iter(entries.into_iter().map(|e| Ok((e, None)))))
        .await
        .unwrap();
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut follower = StateMachine::open(b.path(), Options::default()).unwrap();
    // Received whole, then the store log's tail cut mid-record as a torn write leaves it.
    let data = &snapshot.snapshot;
    let mut writer = follower.inbox().receive().unwrap();
    for dir in data.dirs() {
        writer.create_dir(dir).unwrap();
    }
    let mut buf = vec![0; 1 << 16];
    let mut store_log = None;
    for (n, (path, len)) in data.files().enumerate() {
        let read = data.read_at(n, 0, &mut buf).unwrap();
        assert_eq!(read as u64, len);
        writer.write(path, 0, &buf[..read]).unwrap();
        if path.starts_with("wal") {
            store_log = Some((path.to_path_buf(), len));
        }
    }
    let (path, len) = store_log.expect("a checkpoint has a log");
    writer.write(&path, len, &[0x2a; 7]).unwrap();
    let received = writer.finish().unwrap();
    let err = follower
        .install_snapshot(&snapshot.meta, received)
        .await
        .expect_err("a damaged copy was installed");
    let err = err.into_inner().unwrap().downcast::<Error>().unwrap();
    assert!(matches!(*err, Error::Store(_)), "{err:?}");
    assert_eq!(follower.applied_state().await.unwrap().0, None);
}
