//! Errors at the API boundary: every error a caller can meet shows its cause once (in its
//! message or as its `source()`, never both), every level of a source chain is the error
//! itself (no `Arc` in the way of `downcast_ref`), open and configuration errors are
//! kv-store's own variants, every call after `close` is `Closed`, and the key and value size
//! limits are settings.

use std::error::Error as _;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kv_store::{
    Damage, Durability, Error, Eviction, IndexKind, KvStore, Limit, Options, Setting, WriteBatch,
    WriteOptions, MAX_SHARDS, MAX_SIZE_LIMIT,
};
use kv_wal::fs::fault::{Fault, FaultyFileSystem, Op};

fn options() -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .shards(2)
        .segment_size(4096)
        .durability(Durability::Sync)
        .auto_compact(None)
        .sweep_interval(Duration::ZERO)
}

/// Words of the log's own configuration that mean nothing to a user of this crate.
const LOG_VOCABULARY: [&str; 5] = [
    "FsyncPolicy",
    "WalConfig",
    "max_segment_size",
    "SizeLimits",
    "InvalidConfig",
];

/// Checks what the crate promises of every error: walking the source chain, no message
/// repeats its source's message, every level is a concrete error of a known type (never an
/// `Arc` or other wrapper that would defeat `downcast_ref`), and no message names the log's
/// own configuration.
fn assert_well_formed(err: &Error, case: &str) {
    let mut level: &(dyn std::error::Error + 'static) = err;
    loop {
        let message = level.to_string();
        for word in LOG_VOCABULARY {
            assert!(!message.contains(word), "{case}: {word} in {message:?}");
        }
        let Some(source) = level.source() else { break };
        let cause = source.to_string();
        assert!(!cause.is_empty(), "{case}: an empty message");
        assert!(
            !message.contains(&cause),
            "{case}: {message:?} repeats its source {cause:?}"
        );
        assert!(
            source.is::<kv_wal::Error>()
                || source.is::<kv_compact::Error>()
                || source.is::<kv_durable::Error>()
                || source.is::<std::io::Error>(),
            "{case}: a source of an unknown type: {source:?}"
        );
        level = source;
    }
}

/// The error opening `dir` with `options` fails with.
fn refused(dir: &Path, options: Options, case: &str) -> Error {
    match KvStore::open_with(dir, options) {
        Ok(store) => panic!("{case}: opened, with {} keys", store.len()),
        Err(e) => e,
    }
}

/// A store in `dir` whose log spans several segments, closed.
fn several_segments(dir: &Path) {
    let store = KvStore::open_with(dir, options()).unwrap();
    for i in 0..600 {
        store.put(format!("key{i:04}"), "some value").unwrap();
    }
    store.close().unwrap();
    assert!(dir.join(kv_store::WAL_DIR).join("000002.wal").exists());
}

/// A store in `dir` compacted once (so its log no longer holds segment 0), closed.
fn compacted(dir: &Path) {
    let store = KvStore::open_with(dir, options()).unwrap();
    for i in 0..50 {
        store.put(format!("key{i:04}"), "some value").unwrap();
    }
    store.compact().unwrap();
    store.put("after", "the compaction").unwrap();
    store.close().unwrap();
}

#[test]
fn an_error_can_be_shared_across_threads_and_kept() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Error>();
}

#[test]
fn the_open_errors_are_the_stores_own_and_their_causes_reachable() {
    // Locked.
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    let err = refused(dir.path(), options(), "locked");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert_well_formed(&err, "locked");
    drop(store);

    // The directory cannot be created: a file is in the way. The causes are the log's
    // error, then the operating system's, each reached by downcasting.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let err = refused(&file.join("store"), options(), "a file in the way");
    assert!(matches!(err, Error::Open { .. }), "{err}");
    assert_well_formed(&err, "a file in the way");
    let log = err.source().unwrap().downcast_ref::<kv_wal::Error>();
    assert!(matches!(log, Some(kv_wal::Error::Io { .. })), "{log:?}");
    let io = err.source().unwrap().source().unwrap();
    assert!(io.downcast_ref::<std::io::Error>().is_some(), "{io:?}");

    // Damage in the middle of the log.
    let dir = tempfile::tempdir().unwrap();
    several_segments(dir.path());
    let first = dir.path().join(kv_store::WAL_DIR).join("000000.wal");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[1000] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();
    let err = refused(dir.path(), options(), "damaged log");
    assert!(
        matches!(
            err,
            Error::Corrupt {
                damage: Damage::Log,
                ..
            }
        ),
        "{err}"
    );
    assert_well_formed(&err, "damaged log");
    let log = err.source().unwrap().downcast_ref::<kv_wal::Error>();
    assert!(
        matches!(log, Some(kv_wal::Error::Corrupt { segment: 0, .. })),
        "{log:?}"
    );

    // A segment missing between others.
    let dir = tempfile::tempdir().unwrap();
    several_segments(dir.path());
    std::fs::remove_file(dir.path().join(kv_store::WAL_DIR).join("000001.wal")).unwrap();
    let err = refused(dir.path(), options(), "missing segment");
    assert!(
        matches!(
            err,
            Error::Corrupt {
                damage: Damage::MissingSegment { id: 1 },
                ..
            }
        ),
        "{err}"
    );
    assert_well_formed(&err, "missing segment");

    // A damaged manifest.
    let dir = tempfile::tempdir().unwrap();
    compacted(dir.path());
    let manifest = dir.path().join(kv_compact::MANIFEST);
    let mut bytes = std::fs::read(&manifest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&manifest, &bytes).unwrap();
    let err = refused(dir.path(), options(), "damaged manifest");
    assert!(
        matches!(
            err,
            Error::Corrupt {
                damage: Damage::Manifest,
                ..
            }
        ),
        "{err}"
    );
    assert_well_formed(&err, "damaged manifest");
    let compaction = err.source().unwrap().downcast_ref::<kv_compact::Error>();
    assert!(
        matches!(compaction, Some(kv_compact::Error::CorruptManifest { .. })),
        "{compaction:?}"
    );

    // A manifest written by a newer version (its magic's digit past the last this build
    // reads, the rest unknown): refused with a typed error that is not damage.
    std::fs::write(&manifest, b"KVMANIF4 written by a later format").unwrap();
    let err = refused(dir.path(), options(), "newer manifest");
    assert!(!matches!(err, Error::Corrupt { .. }), "{err}");
    let cause = err.source().unwrap().to_string();
    assert!(cause.contains("newer version of kv"), "{cause}");
    assert_well_formed(&err, "newer manifest");
    let compaction = err.source().unwrap().downcast_ref::<kv_compact::Error>();
    assert!(
        matches!(
            compaction,
            Some(kv_compact::Error::NewerManifest { version: 4, .. })
        ),
        "{compaction:?}"
    );
    assert_eq!(
        std::fs::read(&manifest).unwrap(),
        b"KVMANIF4 written by a later format",
        "left as it was"
    );

    // A missing manifest beside snapshots.
    std::fs::remove_file(&manifest).unwrap();
    let err = refused(dir.path(), options(), "missing manifest");
    assert!(
        matches!(
            err,
            Error::Corrupt {
                damage: Damage::MissingManifest,
                ..
            }
        ),
        "{err}"
    );
    assert_well_formed(&err, "missing manifest");

    // A damaged snapshot: a part cut short.
    let dir = tempfile::tempdir().unwrap();
    compacted(dir.path());
    let snapshot = dir
        .path()
        .join(kv_compact::SNAPSHOTS)
        .join("000001")
        .join("part-0000");
    let whole = std::fs::read(&snapshot).unwrap();
    assert!(!whole.is_empty());
    std::fs::write(&snapshot, &whole[..whole.len() / 2]).unwrap();
    let err = refused(dir.path(), options(), "damaged snapshot");
    assert!(
        matches!(
            err,
            Error::Corrupt {
                damage: Damage::Snapshot { id: 1 },
                ..
            }
        ),
        "{err}"
    );
    assert_well_formed(&err, "damaged snapshot");

    // An interrupted checkpoint.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(kv_compact::CHECKPOINT_MARKER), "").unwrap();
    let err = refused(dir.path(), options(), "interrupted checkpoint");
    assert!(
        matches!(
            err,
            Error::Corrupt {
                damage: Damage::IncompleteCheckpoint,
                ..
            }
        ),
        "{err}"
    );
    assert_well_formed(&err, "interrupted checkpoint");
}

#[test]
fn bad_options_are_typed_errors_before_anything_is_created() {
    let cases = [
        (options().shards(usize::MAX), Setting::Shards),
        (options().shards(MAX_SHARDS + 1), Setting::Shards),
        (
            options().durability(Durability::Batch(Duration::ZERO)),
            Setting::Durability,
        ),
        (
            options().durability(Durability::Batch(Duration::from_secs(7200))),
            Setting::Durability,
        ),
        (options().segment_size(10), Setting::SegmentSize),
        (
            options().max_key_size(MAX_SIZE_LIMIT + 1),
            Setting::MaxKeySize,
        ),
        (
            options().max_value_size(MAX_SIZE_LIMIT + 1),
            Setting::MaxValueSize,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (options, setting)) in cases.into_iter().enumerate() {
        let path = dir.path().join(i.to_string());
        let case = format!("{setting}");
        let err = refused(&path, options, &case);
        assert!(
            matches!(err, Error::InvalidOption { setting: s, .. } if s == setting),
            "{case}: {err}"
        );
        assert_well_formed(&err, &case);
        assert!(!path.exists(), "{case}: nothing is created");
    }
    // The message about durability speaks of durability.
    let err = refused(
        &dir.path().join("batch"),
        options().durability(Durability::Batch(Duration::ZERO)),
        "batch",
    );
    assert!(err.to_string().contains("Durability::"), "{err}");
}

#[test]
fn a_writes_own_batch_window_is_checked_as_the_stores_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options().durability(Durability::None)).unwrap();
    for window in [Duration::ZERO, Duration::from_secs(7200)] {
        let own = WriteOptions::default().durability(Durability::Batch(window));
        let mut batch = WriteBatch::new();
        batch.put("b", "1");
        let refusals = [
            store.put_with("p", "1", own),
            store.delete_with("p", own),
            store.write_with(batch, own),
        ];
        for refused in refusals {
            let err = refused.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidOption {
                        setting: Setting::Durability,
                        ..
                    }
                ),
                "{window:?}: {err}"
            );
            assert_well_formed(&err, "a write's window");
        }
    }
    assert!(store.is_empty(), "nothing refused was written");
    let fine = WriteOptions::default().durability(Durability::Batch(Duration::from_millis(1)));
    store.put_with("p", "1", fine).unwrap();
    assert_eq!(store.get("p").unwrap(), "1");
}

#[test]
fn the_most_shards_are_taken() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options().shards(MAX_SHARDS)).unwrap();
    store.put("k", "v").unwrap();
    assert_eq!(store.get("k").unwrap(), "v");
}

#[test]
fn write_errors_show_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let store = KvStore::open_with(dir.path(), options().file_system(Arc::new(fs))).unwrap();
    store.put("a", "1").unwrap();

    faults.fail_once(Op::Write, 0, Fault::DiskFull);
    let err = store.put("b", "2").unwrap_err();
    assert!(matches!(err, Error::StorageFull(_)), "{err}");
    assert_well_formed(&err, "disk full");

    // The log cannot start a new segment.
    faults.fail_always(Op::Open, 0, Fault::Error(ErrorKind::PermissionDenied));
    let err = (0..200)
        .find_map(|i| store.put(format!("key{i}"), "a value of some length").err())
        .expect("a write needed a new segment");
    assert!(matches!(err, Error::Io(_)), "{err}");
    assert_well_formed(&err, "no new segment");
    let io = err.source().unwrap().source().unwrap();
    assert_eq!(
        io.downcast_ref::<std::io::Error>().unwrap().kind(),
        ErrorKind::PermissionDenied
    );
    // A compaction that cannot rotate.
    let err = store.compact().unwrap_err();
    assert!(matches!(err, Error::Compaction(_)), "{err}");
    assert_well_formed(&err, "compaction");
    faults.clear();

    // A checkpoint into a directory that holds data.
    let full = tempfile::tempdir().unwrap();
    std::fs::write(full.path().join("something"), "").unwrap();
    let err = store.checkpoint(full.path()).unwrap_err();
    assert!(matches!(err, Error::Compaction(_)), "{err}");
    assert_well_formed(&err, "checkpoint");

    // A failed fsync stops the store.
    faults.fail_once(Op::Sync, 0, Fault::Error(ErrorKind::Other));
    let err = store.put("c", "3").unwrap_err();
    assert!(matches!(err, Error::Failed(_)), "{err}");
    assert_well_formed(&err, "failed fsync");
    let log = err.source().unwrap().downcast_ref::<kv_wal::Error>();
    assert!(
        matches!(log, Some(kv_wal::Error::Poisoned { .. })),
        "{log:?}"
    );
    drop(store);

    // Cutting the tail at close fails.
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let buffered = options()
        .durability(Durability::None)
        .file_system(Arc::new(fs));
    let store = KvStore::open_with(dir.path(), buffered).unwrap();
    store.put("a", "1").unwrap();
    faults.fail_once(Op::SetLen, 0, Fault::Error(ErrorKind::Other));
    let err = store.close().unwrap_err();
    assert!(matches!(err, Error::Log(_)), "{err}");
    assert_well_formed(&err, "cut at close");

    // The rest, without faults.
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options().max_keys(1, Eviction::Reject)).unwrap();
    let err = store.put(vec![b'k'; 70_000], "v").unwrap_err();
    assert!(
        matches!(err, Error::KeyTooLarge { len: 70_000, .. }),
        "{err}"
    );
    assert_well_formed(&err, "key too large");
    store.put("a", "1").unwrap();
    let err = store.put("b", "2").unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitReached {
                limit: Limit::Keys,
                needed: 1,
                available: 0,
                max: 1
            }
        ),
        "{err}"
    );
    assert_well_formed(&err, "limit");
    let memory = tempfile::tempdir().unwrap();
    let small =
        KvStore::open_with(memory.path(), options().max_memory(1, Eviction::Reject)).unwrap();
    let err = small.put("a", "1").unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitReached {
                limit: Limit::Memory,
                max: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_well_formed(&err, "memory limit");
    let unordered = tempfile::tempdir().unwrap();
    let hashed = KvStore::open_with(unordered.path(), options().index(IndexKind::Hash)).unwrap();
    let err = hashed.range::<&str>(..).err().unwrap();
    assert!(matches!(err, Error::NotOrdered), "{err}");
    assert_well_formed(&err, "not ordered");
    store.close().unwrap();
    let err = store.put("c", "3").unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
    assert_well_formed(&err, "closed");
}

#[test]
fn every_call_after_close_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let limited = options().max_keys(1, Eviction::Reject);
    let store = KvStore::open_with(dir.path(), limited).unwrap();
    store
        .put_with_ttl("k", "v", Duration::from_secs(60))
        .unwrap();
    store.close().unwrap();

    let closed = |result: Result<(), Error>, call: &str| {
        assert!(matches!(result, Err(Error::Closed)), "{call}: {result:?}");
    };
    closed(store.put("k", "w"), "put");
    let bad_window = WriteOptions::default().durability(Durability::Batch(Duration::ZERO));
    closed(
        store.put_with("k", "w", bad_window),
        "put_with of a bad window",
    );
    closed(
        store.delete_with("k", bad_window),
        "delete_with of a bad window",
    );
    closed(store.put("other", "w"), "put over the key limit");
    closed(store.put(vec![b'k'; 70_000], "w"), "put of a key too large");
    closed(
        store.put_with_ttl("k", "w", Duration::from_secs(1)),
        "put_with_ttl",
    );
    closed(store.delete("k"), "delete");
    closed(store.delete("missing"), "delete of a missing key");
    let mut batch = WriteBatch::new();
    batch.put("a", "1").delete("k");
    closed(store.write(batch), "write");
    closed(store.write(WriteBatch::new()), "write of an empty batch");
    let mut batch = WriteBatch::new();
    batch.put("a", "1");
    closed(store.write_with(batch, WriteOptions::sync()), "write_with");
    closed(
        store.expire("k", Duration::from_secs(5)).map(drop),
        "expire",
    );
    closed(
        store.expire("missing", Duration::from_secs(5)).map(drop),
        "expire of a missing key",
    );
    closed(store.persist("k").map(drop), "persist");
    closed(
        store.persist("missing").map(drop),
        "persist of a missing key",
    );
    closed(store.sync(), "sync");
    closed(store.compact().map(drop), "compact");
    let target = tempfile::tempdir().unwrap();
    closed(store.checkpoint(target.path().join("copy")), "checkpoint");
    closed(store.close(), "close again");
    // Reads of what it held still work.
    assert_eq!(store.get("k").unwrap(), "v");
}

#[test]
fn the_key_size_limit_is_a_setting() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options().max_key_size(8)).unwrap();
    store.put("12345678", "fits").unwrap();
    let err = store.put("123456789", "v").unwrap_err();
    assert!(
        matches!(err, Error::KeyTooLarge { len: 9, max: 8 }),
        "{err}"
    );
    let mut batch = WriteBatch::new();
    batch.put("a", "1").put("123456789", "v");
    let err = store.write(batch).unwrap_err();
    assert!(matches!(err, Error::KeyTooLarge { .. }), "{err}");
    assert_eq!(store.get("a"), None, "nothing of the batch was written");
    // A delete stores nothing: held only to what opening reads back.
    store.delete("123456789").unwrap();
    store.close().unwrap();

    // Above the default: keys the default would refuse are written and read back.
    let big = vec![b'k'; 100 * 1024];
    let raised = options().max_key_size(128 * 1024);
    let store = KvStore::open_with(dir.path(), raised.clone()).unwrap();
    store.put(big.clone(), "big").unwrap();
    store.close().unwrap();
    let store = KvStore::open_with(dir.path(), raised).unwrap();
    assert_eq!(store.get(&big).unwrap(), "big");
    assert_eq!(store.get("12345678").unwrap(), "fits");
}

#[test]
fn the_value_size_limit_is_a_setting_and_lowering_it_keeps_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    // Compressed values are decompressed at open against the limit: one written under the
    // default must still be read under a lower limit.
    let compressed = options().compression(kv_store::Compression::Lz4, 64);
    let store = KvStore::open_with(dir.path(), compressed.clone()).unwrap();
    let long = "x".repeat(10_000);
    store.put("long", long.clone()).unwrap();
    store.close().unwrap();

    let lowered = compressed.max_value_size(100);
    let store = KvStore::open_with(dir.path(), lowered.clone()).unwrap();
    assert_eq!(store.get("long").unwrap(), long.as_str());
    let err = store.put("k", "v".repeat(101)).unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { len: 101, max: 100 }),
        "{err}"
    );
    assert_well_formed(&err, "value too large");
    store.put("k", "v".repeat(100)).unwrap();
    store.compact().unwrap();
    store.close().unwrap();

    let store = KvStore::open_with(dir.path(), lowered).unwrap();
    assert_eq!(store.get("long").unwrap(), long.as_str());
    assert_eq!(store.get("k").unwrap().len(), 100);
}

#[test]
fn a_write_too_large_for_the_log_evicts_nothing_on_a_full_store() {
    let dir = tempfile::tempdir().unwrap();
    let limited = options().max_value_size(100).max_keys(3, Eviction::Lru);
    let store = KvStore::open_with(dir.path(), limited).unwrap();
    for key in ["a", "b", "c"] {
        store.put(key, "v").unwrap();
    }
    let err = store.put("d", "v".repeat(101)).unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    let mut batch = WriteBatch::new();
    batch.put("e", "1").put("f", "v".repeat(101));
    let err = store.write(batch).unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    // A read-modify-write whose new value is too large, of a new key and of a held one.
    let err = store
        .update_and_fetch("g", |_| Some("v".repeat(101)))
        .unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    let err = store
        .update_and_fetch("a", |old| Some([old.unwrap(), &[b'v'; 100]].concat()))
        .unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    for key in ["a", "b", "c"] {
        assert_eq!(
            store.get(key).unwrap(),
            "v",
            "{key} was evicted for nothing"
        );
    }
    assert_eq!(store.len(), 3);
}

#[test]
fn a_deadline_the_log_refuses_is_refused_before_any_room_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    store.put("big", "v".repeat(200)).unwrap();
    for i in 0..10 {
        store.put(format!("k{i}"), "v".repeat(60)).unwrap();
    }
    store.close().unwrap();
    // The value limit lowered below a value written before, and memory limited to exactly
    // what the store holds: a deadline for `big` has no room.
    let lowered = options().max_value_size(100);
    let store = KvStore::open_with(dir.path(), lowered.clone()).unwrap();
    let full = store.stats().memory_used_bytes;
    store.close().unwrap();
    for eviction in [Eviction::Reject, Eviction::Lru] {
        let limited = lowered.clone().max_memory(full, eviction);
        let store = KvStore::open_with(dir.path(), limited).unwrap();
        assert_eq!(store.stats().memory_used_bytes, full);
        let err = store.expire("big", Duration::from_secs(60)).unwrap_err();
        assert!(
            matches!(err, Error::ValueTooLarge { len: 200, max: 100 }),
            "{eviction:?}: {err}"
        );
        assert_eq!(store.stats().evictions_total, 0, "{eviction:?}");
        assert_eq!(store.len(), 11, "{eviction:?}");
        assert_eq!(store.ttl("big"), kv_store::Ttl::NoDeadline);
        store.close().unwrap();
    }
}

#[test]
fn a_key_written_under_a_higher_limit_stays_deletable_and_evictable() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    for key in ["a-long-key-1", "a-long-key-2", "a-long-key-3"] {
        store.put(key, "v").unwrap();
    }
    store.close().unwrap();
    let lowered = options().max_key_size(8);
    let store = KvStore::open_with(dir.path(), lowered.clone()).unwrap();
    let err = store.put("a-long-key-4", "v").unwrap_err();
    assert!(
        matches!(err, Error::KeyTooLarge { len: 12, max: 8 }),
        "{err}"
    );
    store.delete("a-long-key-1").unwrap();
    assert_eq!(store.get("a-long-key-1"), None);
    // Up to what opening reads back, no further.
    let err = store
        .delete(vec![b'k'; kv_wal::DEFAULT_MAX_KEY_SIZE + 1])
        .unwrap_err();
    assert!(
        matches!(err, Error::KeyTooLarge { max, .. } if max == kv_wal::DEFAULT_MAX_KEY_SIZE),
        "{err}"
    );
    store
        .delete(vec![b'k'; kv_wal::DEFAULT_MAX_KEY_SIZE])
        .unwrap();
    store.close().unwrap();
    // Evicted to make room for a new key: the eviction's delete is written.
    let limited = lowered.max_keys(2, Eviction::Lru);
    let store = KvStore::open_with(dir.path(), limited.clone()).unwrap();
    assert_eq!(store.get("a-long-key-1"), None, "the delete was durable");
    store.put("short", "v").unwrap();
    assert_eq!(store.stats().evictions_total, 1);
    assert_eq!(store.len(), 2);
    store.close().unwrap();
    let store = KvStore::open_with(dir.path(), limited).unwrap();
    assert_eq!(store.len(), 2);
    assert_eq!(store.get("short").unwrap(), "v");
}
