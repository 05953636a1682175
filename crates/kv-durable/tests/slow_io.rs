//! Writers do not wait for the slowest file operation of a compaction: the sync of a large
//! segment before a rotation.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{open_with, options, Store};
use kv_durable::{Durability, Error};
use kv_wal::fs::fault::{Fault, Faults, FaultyFileSystem, Op as FsOp};
use kv_wal::WalConfig;

/// A store whose file operations `Faults` controls, with one write in it.
fn store(dir: &std::path::Path) -> (Store, Faults) {
    let (fs, faults) = FaultyFileSystem::new();
    let wal = WalConfig::new(dir).file_system(Arc::new(fs));
    let (store, _) = open_with(wal, options(Durability::None));
    store.put("a", "1").unwrap();
    (store, faults)
}

/// Runs `slow` (which makes a call of kind `op` that takes three seconds, then fails) on
/// another thread and, once that call is under way, times a put; returns what `slow`
/// returned and how long the put took.
fn put_during<T: Send>(
    store: &Store,
    faults: &Faults,
    op: FsOp,
    slow: impl FnOnce() -> T + Send,
) -> (T, Duration) {
    let calls = faults.count(op);
    faults.fail_once(op, 0, Fault::SlowError { millis: 3000 });
    std::thread::scope(|s| {
        let running = s.spawn(slow);
        while faults.count(op) == calls {
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = Instant::now();
        store.put("during", "x").unwrap();
        let took = started.elapsed();
        (running.join().unwrap(), took)
    })
}

#[test]
fn a_rotation_syncs_the_full_segment_without_holding_writers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = store(dir.path());
    let (rotated, took) = put_during(&store, &faults, FsOp::Sync, || store.rotate());
    assert!(
        took < Duration::from_secs(1),
        "a put waited {took:?} for a sync"
    );
    // The sync failed: the log stops, as after any failed sync.
    assert!(matches!(rotated, Err(Error::Failed(_))), "{rotated:?}");
    assert!(matches!(store.put("b", "2"), Err(Error::Failed(_))));
}
