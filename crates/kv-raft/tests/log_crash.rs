//! A writer of the Raft log killed with SIGKILL: the reopened log holds every entry and
//! vote acknowledged (callback or return) before the kill, contiguous, each entry whole.
//!
//! A SIGKILL leaves the page cache to the kernel, which writes it out anyway: this test
//! cannot catch a callback or a return before the fdatasync. `log_model.rs` (power cuts on
//! kv-wal's in-memory disk, which drops what was not synced) and `log_faults.rs` (syncs
//! counted and failed) cover that.

mod common;

use common::{append, entry, log_id, seen, vote};
use kv_raft::LogStore;
use kv_wal::WalConfig;
use openraft::storage::RaftLogStorage;

const CHILD_ENV: &str = "KV_RAFT_LOG_CRASH_CHILD";

fn open(dir: &str) -> LogStore {
    // Small segments, so the purges below delete segments while the child runs.
    LogStore::open_with(WalConfig::new(dir).max_segment_size(4096)).unwrap()
}

/// The child: appends entries in groups, saves a new vote now and then, purges behind; each
/// acknowledged once it returned (thread 0: the last entry index; thread 1: the vote's term).
#[test]
#[ignore = "the child process of log_writer_killed_keeps_every_acknowledged_entry"]
fn crash_child() {
    let Some(args) = kv_testkit::child_args(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut store = open(&args[0]);
        let mut next = 0;
        for round in 1u64.. {
            let group = round % 7 + 1;
            append(
                &mut store,
                (next..next + group).map(|i| entry(1, i)).collect(),
            )
            .await
            .unwrap();
            next += group;
            kv_testkit::acknowledge(0, next - 1);
            if round % 10 == 0 {
                store.save_vote(&vote(round)).await.unwrap();
                kv_testkit::acknowledge(1, round);
            }
            if round % 25 == 0 && next > 40 {
                store.purge(log_id(1, next - 40)).await.unwrap();
            }
        }
    });
}

#[tokio::test]
async fn log_writer_killed_keeps_every_acknowledged_entry() {
    for kill_after in [40, 150, 400] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft");
        let path = path.to_str().unwrap();
        let mut child = kv_testkit::spawn_child("crash_child", CHILD_ENV, &[path]);
        let acks = kv_testkit::kill_after_acks(&mut child, kill_after, |_| {});
        let mut store = open(path);
        let found = seen(&mut store).await.unwrap();
        let last_acked = acks.last(0).expect("the child acknowledged entries");
        let last = found
            .entries
            .last()
            .map_or(found.purged.unwrap().0, |e| e.0);
        assert!(
            last >= last_acked,
            "entry {last_acked} was acknowledged, the log ends at {last}"
        );
        let first = found.purged.map_or(0, |p| p.0 + 1);
        let indexes: Vec<u64> = found.entries.iter().map(|e| e.0).collect();
        assert_eq!(
            indexes,
            (first..=last).collect::<Vec<_>>(),
            "a hole in the log"
        );
        if let Some(term) = acks.last(1) {
            assert!(
                found.vote >= Some(term),
                "vote {term} was acknowledged, found {:?}",
                found.vote
            );
        }
        // The reopened log goes on.
        append(&mut store, vec![entry(2, last + 1)]).await.unwrap();
    }
}
