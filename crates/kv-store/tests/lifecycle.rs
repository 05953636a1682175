//! Closing and dropping a store while compactions run on other threads: once `close` returns
//! or the last handle is dropped, nothing of that store changes the directory, and it can be
//! opened again at once.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::contents;

use kv_store::{AutoCompact, Durability, Error, IndexKind, KvStore, Options};

fn options() -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .shards(16)
        .segment_size(256 * 1024)
        .durability(Durability::None)
        .auto_compact(None)
        .sweep_interval(Duration::ZERO)
}

fn put_keys(store: &KvStore, model: &mut BTreeMap<Vec<u8>, Vec<u8>>, from: u32, count: u32) {
    for i in from..from + count {
        let (key, value) = (
            format!("key{i:06}"),
            format!("value-{i}-{}", "y".repeat(30)),
        );
        store.put(key.clone(), value.clone()).unwrap();
        model.insert(key.into_bytes(), value.into_bytes());
    }
}

/// Every file under `dir` with its length.
fn listing(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.insert(entry.path(), 0);
            out.extend(listing(&entry.path()));
        } else {
            out.insert(entry.path(), entry.metadata().unwrap().len());
        }
    }
    out
}

/// `close` while another thread compacts in a loop: when it returns, the compaction has
/// stopped (its files removed or its manifest switched), later ones fail with a typed
/// error, and the directory does not change any more.
#[test]
fn close_stops_a_compaction_running_on_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    let started = Instant::now();
    for round in 0..12u32 {
        let store = KvStore::open_with(dir.path(), options()).unwrap();
        put_keys(&store, &mut model, round * 500, 2000);
        let compacting = {
            let store = store.clone();
            std::thread::spawn(move || loop {
                if let Err(e) = store.compact() {
                    return e;
                }
            })
        };
        std::thread::sleep(Duration::from_millis(u64::from(round % 4) * 3));
        store.close().unwrap();
        let closed = listing(dir.path());
        let err = compacting.join().unwrap();
        assert!(matches!(err, Error::Closed), "round {round}: {err}");
        assert!(matches!(store.compact(), Err(Error::Closed)));
        let backup = tempfile::tempdir().unwrap();
        assert!(matches!(
            store.checkpoint(backup.path()),
            Err(Error::Closed)
        ));
        assert_eq!(
            listing(dir.path()),
            closed,
            "round {round}: the directory changed after close"
        );
        // Reopened at once, it holds everything and compacts.
        let again = KvStore::open_with(dir.path(), options()).unwrap();
        assert_eq!(contents(&again), model, "round {round}");
        again.compact().unwrap();
        again.close().unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// A compaction paced far below the disk's speed spends most of its time sleeping between
/// slices: `close` stops it there, well before it would have finished, and the store
/// reopens whole.
#[test]
fn close_stops_a_paced_compaction_in_its_pause() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    // About 800 KB of snapshot at 16 KiB/s: some 50 s unless stopped. One shard, so the
    // check between shards cannot be what stops it.
    let paced = || options().shards(1).compaction_rate(Some(16 << 10));
    let store = KvStore::open_with(dir.path(), paced()).unwrap();
    put_keys(&store, &mut model, 0, 12_000);
    let compacting = {
        let store = store.clone();
        std::thread::spawn(move || store.compact())
    };
    std::thread::sleep(Duration::from_millis(300));
    let closing = Instant::now();
    store.close().unwrap();
    let result = compacting.join().unwrap();
    let stopped_after = closing.elapsed();
    assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    assert!(
        stopped_after < Duration::from_secs(5),
        "the compaction went on for {stopped_after:?} after close"
    );
    let again = KvStore::open_with(dir.path(), paced()).unwrap();
    assert_eq!(contents(&again), model);
    again.close().unwrap();
}

/// Dropping the last handle while the maintenance thread compacts (on every tick here):
/// the drop closes the store before it returns, so an open right after it finds the
/// directory free, never `Locked` (before the drop waited, 1 round in 2 was).
#[test]
fn a_reopen_right_after_the_last_drop_is_not_locked() {
    let busy = || {
        options()
            .auto_compact(Some(AutoCompact {
                min_bytes: 0,
                ratio: 0.0,
            }))
            .sweep_interval(Duration::from_millis(1))
    };
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    {
        let store = KvStore::open_with(dir.path(), options()).unwrap();
        put_keys(&store, &mut model, 0, 5000);
        store.close().unwrap();
    }
    for round in 0..60u32 {
        let store = match KvStore::open_with(dir.path(), busy()) {
            Ok(store) => store,
            Err(e) => panic!("round {round}: {e}"),
        };
        put_keys(&store, &mut model, round * 10, 20);
        // Let the maintenance thread start a compaction, at varying points of it.
        std::thread::sleep(Duration::from_micros(u64::from(round % 5) * 700));
        drop(store);
    }
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
}
