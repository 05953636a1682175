//! Injected I/O faults through the facade: a failed fsync stops writes and says why, a full
//! disk fails only the write involved, and nothing acknowledged is lost either way.

use std::io::ErrorKind;
use std::sync::Arc;

use kv_store::with_causes;
use kv_store::{Durability, Error, KvStore, Options};
use kv_wal::fs::fault::{Fault, FaultyFileSystem, Op};

fn options() -> Options {
    Options::default().shards(2).durability(Durability::Sync)
}

#[test]
fn a_failed_fsync_stops_writes_reads_go_on_and_reopening_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let store = KvStore::open_with(dir.path(), options().file_system(Arc::new(fs))).unwrap();
    store.put("a", "1").unwrap();
    faults.fail_once(Op::Sync, 0, Fault::Error(ErrorKind::Other));
    let err = store.put("b", "2").unwrap_err();
    assert!(matches!(err, Error::Failed(_)) && err.is_fatal(), "{err}");
    assert!(err.to_string().contains("reopen"), "{err}");
    let later = store.put("c", "3").unwrap_err();
    assert!(matches!(later, Error::Failed(_)), "never retried: {later}");
    assert_eq!(store.get("a").unwrap(), "1", "reads still work");
    assert_eq!(store.get("b"), None, "a failed write is not visible");
    let stats = store.stats();
    assert!(stats.failed);
    assert!(stats.failure.as_deref().unwrap().contains("fdatasync"));
    assert_eq!(stats.errors_total, 2);
    drop(store);
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(store.get("a").unwrap(), "1");
    assert_eq!(store.get("c"), None);
}

#[test]
fn a_full_disk_fails_the_write_involved_and_the_store_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let store = KvStore::open_with(dir.path(), options().file_system(Arc::new(fs))).unwrap();
    store.put("a", "1").unwrap();
    faults.fail_once(Op::Write, 0, Fault::DiskFull);
    let err = store.put("b", "2").unwrap_err();
    assert!(
        matches!(err, Error::StorageFull(_)) && !err.is_fatal(),
        "{err}"
    );
    store.put("c", "3").unwrap();
    store.close().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(store.keys().count(), 2);
    assert_eq!(store.get("b"), None);
}

#[test]
fn a_damaged_log_is_refused_with_a_typed_error_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options().segment_size(4096)).unwrap();
    for i in 0..200 {
        store.put(format!("key{i}"), "some value").unwrap();
    }
    store.close().unwrap();
    let first = dir.path().join(kv_store::WAL_DIR).join("000000.wal");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[1000] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();
    let err = KvStore::open_with(dir.path(), options()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("kv verify"), "{err}");
    assert_eq!(std::fs::read(&first).unwrap(), bytes, "nothing was changed");
}

#[test]
fn a_segment_that_cannot_be_created_fails_only_that_operation() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let faulty = options().segment_size(4096).file_system(Arc::new(fs));
    let store = KvStore::open_with(dir.path(), faulty).unwrap();
    store.put("a", "1").unwrap();
    // The log directory made read-only: the compaction's rotation cannot create a segment.
    faults.fail_once(Op::Open, 0, Fault::Error(ErrorKind::PermissionDenied));
    let err = store.compact().unwrap_err();
    assert!(matches!(err, Error::Compaction(_)), "{err}");
    store
        .put("b", "2")
        .expect("a failure that wrote nothing stops nothing");

    // The same when a write fills the segment and the next cannot be created.
    faults.fail_always(Op::Open, 0, Fault::Error(ErrorKind::PermissionDenied));
    let mut refused = None;
    let value = "a value of some length";
    for i in 0..200usize {
        if let Err(e) = store.put(format!("key{i}"), value) {
            refused = Some((i, e));
            break;
        }
    }
    let (i, err) = refused.expect("a write needed a new segment");
    assert!(matches!(err, Error::Io(_)) && !err.is_fatal(), "{err}");
    assert!(with_causes(&err).contains("nothing was written"), "{err}");
    assert!(
        store.put(format!("key{i}"), value).is_err(),
        "still refused"
    );
    assert_eq!(
        store.get(format!("key{i}")),
        None,
        "a refused write is not visible"
    );
    faults.clear();
    store.put(format!("key{i}"), "at last").unwrap();
    store.compact().unwrap();
    store.put("c", "3").unwrap();
    store.close().unwrap();

    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(store.get("b").unwrap(), "2");
    assert_eq!(store.get(format!("key{i}")).unwrap(), "at last");
    assert_eq!(store.get("c").unwrap(), "3");
    assert_eq!(store.len(), i + 4);
}

#[test]
fn a_failed_cut_at_close_is_not_reported_as_a_store_that_goes_on() {
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
    assert!(
        with_causes(&err).contains("every record is synced"),
        "{err}"
    );
    assert!(matches!(store.put("b", "2"), Err(Error::Closed)));
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(store.get("a").unwrap(), "1");
}

/// A store in `dir` with a few keys, compacted once on `fs`; `arm` is called just before the
/// compaction. Returns the store and the compaction's result.
fn compact_once(
    dir: &std::path::Path,
    arm: impl FnOnce(&kv_wal::fs::fault::Faults),
) -> (
    KvStore,
    kv_wal::fs::fault::Faults,
    Result<kv_compact::CompactionReport, Error>,
) {
    let (fs, faults) = FaultyFileSystem::new();
    let store = KvStore::open_with(dir, options().file_system(Arc::new(fs))).unwrap();
    for i in 0..10 {
        store.put(format!("k{i}"), "v").unwrap();
    }
    arm(&faults);
    let compacted = store.compact();
    (store, faults, compacted)
}

#[test]
fn a_failed_directory_sync_after_compaction_deleted_a_segment_stops_the_store() {
    // A clean run counts the directory syncs of the compaction; the last is the one after
    // the old segment's deletion.
    let clean = tempfile::tempdir().unwrap();
    let mut before = 0;
    let (store, faults, compacted) = compact_once(clean.path(), |f| before = f.count(Op::SyncDir));
    compacted.unwrap();
    let syncs = faults.count(Op::SyncDir) - before;
    drop(store);

    let dir = tempfile::tempdir().unwrap();
    let (store, _, compacted) = compact_once(dir.path(), |f| {
        f.fail_once(Op::SyncDir, syncs - 1, Fault::Error(ErrorKind::Other))
    });
    let err = compacted.unwrap_err();
    assert!(with_causes(&err).contains("was deleted"), "{err}");
    assert!(err.is_fatal(), "{err}");
    let later = store.put("later", "v").unwrap_err();
    assert!(matches!(later, Error::Failed(_)), "{later}");
    drop(store);
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(store.len(), 10);
    assert_eq!(store.get("k9").unwrap(), "v");
}
