//! The facade end to end through its synchronous API: the seed recipe's scenarios, TTLs on
//! an injected clock, limits, errors, and nori-wal directories opened as they are.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kv_store::{
    Durability, Error, Eviction, IndexKind, KvStore, Limit, ManualClock, Options, Ttl, WriteBatch,
    WriteOptions, WAL_DIR,
};

fn small(options: Options) -> Options {
    options.shards(4).segment_size(1 << 20)
}

#[test]
fn a_put_or_a_delete_with_its_own_durability_syncs_in_a_store_that_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(
        dir.path(),
        small(Options::default()).durability(Durability::None),
    )
    .unwrap();
    store.put("a", "1").unwrap();
    assert_eq!(store.stats().fsyncs_total, 0);
    store.put_with("b", "2", WriteOptions::sync()).unwrap();
    let stats = store.stats();
    assert_eq!(stats.fsyncs_total, 1);
    assert_eq!(
        stats.fsynced_records_total, 2,
        "b's fsync made a durable too"
    );
    store.delete_with("a", WriteOptions::sync()).unwrap();
    assert_eq!(store.stats().fsyncs_total, 2);
    assert_eq!(store.get("a"), None);
    assert_eq!(store.get("b").unwrap(), "2");
}

#[test]
fn put_update_delete_and_len() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path()).unwrap();
    assert!(store.is_empty());
    store.put("a", "1").unwrap();
    store.put("b", "2").unwrap();
    store.put("a", "updated").unwrap();
    assert_eq!(store.get("a").unwrap(), "updated");
    assert_eq!(store.len(), 2);
    store.delete("b").unwrap();
    store.delete("never-there").unwrap();
    assert_eq!(store.get("b"), None);
    assert_eq!(store.len(), 1);
    assert!(
        dir.path().join(WAL_DIR).is_dir(),
        "the log lives in DIR/wal"
    );
    store.close().unwrap();
}

#[test]
fn reopening_after_a_drop_without_close_keeps_every_synced_write() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = KvStore::open(dir.path()).unwrap();
        for i in 0..500 {
            store.put(format!("key{i}"), format!("value{i}")).unwrap();
        }
        store.delete("key7").unwrap();
        store.sync().unwrap();
        // Dropped without close: the drop releases the directory.
    }
    let store = KvStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), 499);
    assert_eq!(store.get("key499").unwrap(), "value499");
    assert_eq!(store.get("key7"), None, "a delete survives reopening");
    assert_eq!(store.stats().open_replayed_records, 501);
}

#[test]
fn removing_the_lock_files_does_not_let_a_second_open_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path()).unwrap();
    store.put("k", "v").unwrap();
    // What a user "cleaning up stale lock files" removes: the lock files of older versions,
    // or anything that is not data.
    for lock in [dir.path().join("LOCK"), dir.path().join("wal").join("LOCK")] {
        std::fs::write(&lock, b"").unwrap();
        std::fs::remove_file(&lock).unwrap();
    }
    // A second open in this process conflicts as another process's would: the lock is per
    // open file description.
    let Err(err) = KvStore::open(dir.path()) else {
        panic!("a second open succeeded while the store was open");
    };
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    store.put("k2", "v2").unwrap();
    store.close().unwrap();
    let again = KvStore::open(dir.path()).unwrap();
    assert_eq!(again.get("k2").unwrap(), "v2");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_until_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path()).unwrap();
    store.put("k", "v").unwrap();
    let err = KvStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("close it first"), "{err}");
    store.close().unwrap();
    assert!(matches!(store.put("k", "w"), Err(Error::Closed)));
    assert_eq!(store.get("k").unwrap(), "v", "reads work after close");
    let again = KvStore::open(dir.path()).unwrap();
    assert_eq!(again.get("k").unwrap(), "v");
}

#[test]
fn ttl_expire_persist_on_an_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let options = || {
        small(Options::default())
            .clock(clock.clone())
            .sweep_interval(Duration::ZERO)
    };
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    store
        .put_with_ttl("t", "v", Duration::from_secs(10))
        .unwrap();
    store.put("p", "v").unwrap();
    assert_eq!(store.ttl("t"), Ttl::Remaining(Duration::from_secs(10)));
    assert_eq!(store.ttl("p"), Ttl::NoDeadline);
    assert!(store.expire("p", Duration::from_secs(5)).unwrap());
    clock.advance(4_999);
    assert!(store.contains_key("p"));
    clock.advance(1);
    assert!(!store.contains_key("p"), "invisible from its deadline");
    assert_eq!(store.len(), 1);
    assert!(!store.expire("p", Duration::from_secs(5)).unwrap());
    assert!(store.persist("t").unwrap());
    assert!(!store.persist("t").unwrap(), "already persistent");
    let mut batch = WriteBatch::new();
    batch.put_with_ttl("b", "v", Duration::from_secs(1));
    store.write(batch).unwrap();
    store.close().unwrap();

    // Deadlines are absolute: reopening later does not extend them.
    clock.advance(999);
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert!(store.contains_key("b"));
    assert!(store.contains_key("t"), "persisted");
    assert!(!store.contains_key("p"));
    clock.advance(1);
    assert!(!store.contains_key("b"));
    assert_eq!(store.len(), 1);
}

#[test]
fn the_sweep_frees_the_memory_of_expired_keys() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let options = small(Options::default())
        .clock(clock.clone())
        .sweep_interval(Duration::from_millis(5));
    let store = KvStore::open_with(dir.path(), options).unwrap();
    for i in 0..100 {
        store
            .put_with_ttl(format!("k{i}"), vec![0u8; 100], Duration::from_millis(10))
            .unwrap();
    }
    let before = store.stats().memory_used_bytes;
    clock.advance(10);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.stats().expirations_total < 100 {
        assert!(std::time::Instant::now() < deadline, "the sweep never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(store.stats().memory_used_bytes < before / 10);
    assert_eq!(store.len(), 0);
}

#[test]
fn reject_refuses_writes_over_the_limits_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = small(Options::default()).max_keys(3, Eviction::Reject);
    let store = KvStore::open_with(dir.path(), options).unwrap();
    for key in ["a", "b", "c"] {
        store.put(key, "v").unwrap();
    }
    let err = store.put("d", "v").unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitReached {
                limit: Limit::Keys,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.get("d"), None);
    store.put("a", "overwrite is no new key").unwrap();
    store.delete("a").unwrap();
    store.put("d", "v").unwrap();
    assert_eq!(store.stats().errors_total, 1);

    let dir = tempfile::tempdir().unwrap();
    let options = small(Options::default()).max_memory(10_000, Eviction::Reject);
    let store = KvStore::open_with(dir.path(), options).unwrap();
    let mut written = 0;
    while store.put(format!("k{written}"), vec![1u8; 100]).is_ok() {
        written += 1;
    }
    assert!(written > 10);
    assert!(store.stats().memory_used_bytes <= 10_000);
    assert_eq!(store.len(), written);
}

#[test]
fn a_deadline_counts_against_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options = small(Options::default()).max_memory(10_000, Eviction::Reject);
    let store = KvStore::open_with(dir.path(), options).unwrap();
    let mut written = 0;
    while store.put(format!("k{written}"), "v").is_ok() {
        written += 1;
    }
    // Less than one entry's room is left, and every deadline takes some of it.
    let mut refused = None;
    for i in 0..written {
        match store.expire(format!("k{i}"), Duration::from_secs(60)) {
            Ok(set) => assert!(set),
            Err(e) => {
                assert!(matches!(e, Error::LimitReached { .. }), "{e}");
                refused = Some(i);
                break;
            }
        }
        assert!(store.stats().memory_used_bytes <= 10_000);
    }
    let refused = refused.expect("a deadline past the limit was refused");
    assert_eq!(
        store.ttl(format!("k{refused}")),
        Ttl::NoDeadline,
        "left as it was"
    );
    assert!(store.stats().memory_used_bytes <= 10_000);
    if refused > 0 {
        // Removing a deadline needs no room.
        assert!(store.persist("k0").unwrap());
    }
}

#[test]
fn lru_eviction_stays_under_the_limit_keeps_hot_keys_and_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 64 * 1024;
    let options = || small(Options::default()).max_memory(limit, Eviction::Lru);
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    for i in 0..2_000 {
        store.put(format!("key{i:05}"), vec![7u8; 200]).unwrap();
        // Key 0 is read all the time: it should survive.
        assert!(store.get("key00000").is_some(), "hot key evicted at {i}");
        assert!(store.stats().memory_used_bytes <= limit);
    }
    let stats = store.stats();
    assert!(stats.evictions_total > 1_000, "{stats:?}");
    let before: Vec<_> = {
        let mut keys: Vec<_> = store.keys().collect();
        keys.sort();
        keys
    };
    store.close().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    let mut after: Vec<_> = store.keys().collect();
    after.sort();
    assert_eq!(
        before, after,
        "evictions are logged, so the reopened store is the same"
    );
}

#[test]
fn lfu_eviction_keeps_frequently_read_keys() {
    let dir = tempfile::tempdir().unwrap();
    let options = small(Options::default()).max_keys(100, Eviction::Lfu);
    let store = KvStore::open_with(dir.path(), options).unwrap();
    for i in 0..10 {
        store.put(format!("hot{i}"), "v").unwrap();
    }
    for _ in 0..50 {
        for i in 0..10 {
            store.get(format!("hot{i}"));
        }
    }
    for i in 0..1_000 {
        store.put(format!("cold{i}"), "v").unwrap();
        assert!(store.len() <= 100);
    }
    let hot = (0..10)
        .filter(|i| store.contains_key(format!("hot{i}")))
        .count();
    assert!(hot >= 8, "only {hot} of 10 hot keys survived");
}

#[test]
fn a_value_larger_than_the_memory_limit_is_rejected_even_with_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let options = small(Options::default()).max_memory(1_000, Eviction::Lru);
    let store = KvStore::open_with(dir.path(), options).unwrap();
    store.put("small", "v").unwrap();
    let err = store.put("big", vec![0u8; 5_000]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitReached {
                limit: Limit::Memory,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn scans_need_the_ordered_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path()).unwrap();
    assert!(matches!(store.range::<&str>(..), Err(Error::NotOrdered)));
    assert!(matches!(store.scan_prefix("a"), Err(Error::NotOrdered)));
    store.close().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let options = small(Options::default()).index(IndexKind::Ordered);
    let store = KvStore::open_with(dir.path(), options).unwrap();
    for i in (0..300).rev() {
        store.put(format!("item:{i:03}"), format!("{i}")).unwrap();
    }
    store.put("other", "x").unwrap();
    let scanned: Vec<String> = store
        .range("item:100".."item:105")
        .unwrap()
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect();
    assert_eq!(
        scanned,
        ["item:100", "item:101", "item:102", "item:103", "item:104"]
    );
    assert_eq!(store.scan_prefix("item:").unwrap().count(), 300);
    assert_eq!(store.keys().count(), 301);
    assert_eq!(store.keys().next().unwrap(), "item:000");
    assert_eq!(store.keys().next_back().unwrap(), "other");
}

#[test]
fn stats_report_the_log_and_the_commit_path() {
    let dir = tempfile::tempdir().unwrap();
    let options = small(Options::default()).durability(Durability::Sync);
    let store = KvStore::open_with(dir.path(), options).unwrap();
    for i in 0..10 {
        store.put(format!("k{i}"), "value").unwrap();
    }
    store.put("k0", "again").unwrap();
    let stats = store.stats();
    assert_eq!(stats.keys, 10);
    assert_eq!(stats.commit_records_total, 11);
    assert_eq!(stats.fsyncs_total, 11);
    assert_eq!(stats.log_segments, 1);
    assert!(stats.log_bytes > stats.live_bytes);
    assert!(stats.live_data_ratio > 0.0 && stats.live_data_ratio < 1.0);
    assert!(stats.memory_used_bytes > stats.live_bytes as usize);
}

#[test]
fn a_directory_written_by_nori_wal_opens_as_it_is() {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kv-wal/tests/fixtures/nori-wal-0.1");
    let expected = std::fs::read_to_string(fixtures.join("expected.tsv")).unwrap();
    let expected: Vec<(String, String)> = expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&fixtures.join("clean"), dir.path());
    let store = KvStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), expected.len());
    for (key, value) in &expected {
        assert_eq!(store.get(key).as_deref(), Some(value.as_bytes()), "{key}");
    }
}

/// The bytes of the segment files in a closed store's log (closing cuts each to its data).
fn segment_file_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join(kv_store::WAL_DIR))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn log_bytes_counts_the_records_of_every_segment_not_their_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options::default().segment_size(4096).auto_compact(None);
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    for i in 0..1000 {
        store.put(format!("key{i}"), "v".repeat(i % 50)).unwrap();
    }
    let stats = store.stats();
    assert!(stats.log_segments > 3, "the log rotated: {stats:?}");
    store.close().unwrap();
    assert_eq!(stats.log_bytes, segment_file_bytes(dir.path()));

    let reopened = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(
        reopened.stats().log_bytes,
        stats.log_bytes,
        "after reopening"
    );
    reopened.compact().unwrap();
    reopened.put("after", "compaction").unwrap();
    let after = reopened.stats();
    assert!(after.log_bytes < 100, "{}", after.log_bytes);
    reopened.close().unwrap();
    assert_eq!(after.log_bytes, segment_file_bytes(dir.path()));
}
