//! Damage to what compaction keeps (the manifest, a snapshot) and to the start of the log is
//! refused at open, with a typed error, and nothing is deleted.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::contents;

use kv_store::{Damage, Durability, Error, IndexKind, KvStore, Options};

fn options() -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .shards(4)
        .segment_size(64 * 1024)
        .durability(Durability::None)
        .auto_compact(None)
        .sweep_interval(Duration::ZERO)
}

/// Puts `count` keys of equal-length values; returns the model.
fn put_keys(store: &KvStore, from: u32, count: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut model = BTreeMap::new();
    for i in from..from + count {
        let (key, value) = (
            format!("key{i:05}"),
            format!("value-{i:05}-{}", "x".repeat(40)),
        );
        store.put(key.clone(), value.clone()).unwrap();
        model.insert(key.into_bytes(), value.into_bytes());
    }
    model
}

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files(&entry.path()));
        } else {
            out.insert(entry.path(), std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

/// A store that compacted once and wrote after it; returns the model of what is live.
fn compacted_store(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let store = KvStore::open_with(dir, options()).unwrap();
    let mut model = put_keys(&store, 0, 50);
    store.compact().unwrap();
    model.extend(put_keys(&store, 50, 1));
    store.close().unwrap();
    model
}

/// The error opening `dir` fails with.
fn refused(dir: &Path, case: &str) -> Error {
    match KvStore::open_with(dir, options()) {
        Ok(store) => panic!("{case}: opened, with {} keys", store.len()),
        Err(e) => e,
    }
}

fn the_snapshot_segment(dir: &Path) -> PathBuf {
    dir.join("snapshots").join("000001").join("000000.wal")
}

/// The model of what `put_keys(store, from, count)` writes.
fn keys_model(from: u32, count: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (from..from + count)
        .map(|i| {
            (
                format!("key{i:05}").into_bytes(),
                format!("value-{i:05}-{}", "x".repeat(40)).into_bytes(),
            )
        })
        .collect()
}

/// What [`compacted_store`] made before snapshots were written in parts: its snapshot is a
/// log (`snapshots/000001/000000.wal`, named by a version 2 manifest). Written by that
/// version into `tests/fixtures/snapshot-as-log`, copied into `dir`; returns its model.
fn compacted_store_of_the_log_layout(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/snapshot-as-log");
    common::copy_dir(&fixture, dir);
    keys_model(0, 51)
}

#[test]
fn a_missing_manifest_is_refused_and_the_snapshot_kept() {
    let dir = tempfile::tempdir().unwrap();
    let model = compacted_store(dir.path());
    let manifest = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    let before = files(dir.path());

    let err = refused(dir.path(), "no manifest");
    let Error::Corrupt {
        damage: Damage::MissingManifest,
        source,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(
        matches!(
            source.downcast_ref(),
            Some(kv_compact::Error::MissingManifest { .. })
        ),
        "{err}"
    );
    let message = source.to_string();
    assert!(
        message.contains("no MANIFEST") && message.contains("000001"),
        "{message}"
    );
    // Nothing was deleted or changed (the lock file aside, which the open creates).
    let mut after = files(dir.path());
    after.remove(&dir.path().join("LOCK"));
    let mut before = before;
    before.remove(&dir.path().join("LOCK"));
    assert_eq!(after, before);

    // With the manifest back, every key is there.
    std::fs::write(dir.path().join("MANIFEST"), manifest).unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
}

/// Opens `dir` and expects the snapshot to be refused as damaged, leaving it as it is.
fn assert_snapshot_refused(dir: &Path, case: &str) {
    let before = files(dir);
    let err = refused(dir, case);
    let Error::Corrupt {
        damage: Damage::Snapshot { id: 1 },
        source,
        ..
    } = &err
    else {
        panic!("{case}: {err}")
    };
    assert!(
        matches!(
            source.downcast_ref(),
            Some(
                kv_compact::Error::CorruptSnapshot { id: 1, .. }
                    | kv_compact::Error::Load { id: 1, .. }
            )
        ),
        "{case}: {err}"
    );
    assert!(files(dir) == before, "{case}: the directory changed");
}

#[test]
fn a_snapshot_cut_short_or_lengthened_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = compacted_store_of_the_log_layout(dir.path());
    let segment = the_snapshot_segment(dir.path());
    let whole = std::fs::read(&segment).unwrap();
    // Every record of the snapshot has the same length (keys and values do).
    assert_eq!(whole.len() % 50, 0, "{} bytes", whole.len());
    let record = whole.len() / 50;

    for cut in [0, record, 25 * record, 49 * record] {
        std::fs::write(&segment, &whole[..cut]).unwrap();
        assert_snapshot_refused(dir.path(), &format!("cut to {cut} bytes"));
    }
    // One record more, a copy of the first: valid on its own, but not what was written.
    let mut longer = whole.clone();
    longer.extend_from_slice(&whole[..record]);
    std::fs::write(&segment, &longer).unwrap();
    assert_snapshot_refused(dir.path(), "one record more");
    // Two records swapped: same length, every record valid.
    let mut swapped = whole.clone();
    swapped[..record].copy_from_slice(&whole[record..2 * record]);
    swapped[record..2 * record].copy_from_slice(&whole[..record]);
    std::fs::write(&segment, &swapped).unwrap();
    assert_snapshot_refused(dir.path(), "two records swapped");

    std::fs::write(&segment, &whole).unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
}

/// A store that never compacted, whose log spans several segments.
fn long_log(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let store = KvStore::open_with(dir, options()).unwrap();
    let model = put_keys(&store, 0, 3000);
    store.close().unwrap();
    assert!(dir.join("wal").join("000002.wal").exists());
    model
}

fn assert_missing_segment(dir: &Path, id: u64) {
    let err = refused(dir, &format!("segment {id} missing"));
    let Error::Corrupt {
        damage: Damage::MissingSegment { id: named },
        source,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*named, id);
    assert!(
        matches!(
            source.downcast_ref(),
            Some(&kv_wal::Error::MissingSegment { id: missing, .. }) if missing == id
        ),
        "{err}"
    );
}

#[test]
fn a_lost_first_segment_of_a_store_that_never_compacted_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let model = long_log(dir.path());
    let first = dir.path().join("wal").join("000000.wal");
    let kept = std::fs::read(&first).unwrap();
    std::fs::remove_file(&first).unwrap();
    assert_missing_segment(dir.path(), 0);
    // Nothing was changed: put back, the store is whole.
    std::fs::write(&first, kept).unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
}

#[test]
fn a_log_directory_emptied_is_missing_its_first_segment() {
    let dir = tempfile::tempdir().unwrap();
    long_log(dir.path());
    for entry in std::fs::read_dir(dir.path().join("wal")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wal") {
            std::fs::remove_file(path).unwrap();
        }
    }
    assert_missing_segment(dir.path(), 0);
    // Refused before the log was opened: no new segment 0 stands in for the lost ones.
    assert!(!dir.path().join("wal").join("000000.wal").exists());
}

#[test]
fn a_log_without_a_manifest_gets_one_that_records_its_first_segment() {
    let dir = tempfile::tempdir().unwrap();
    let model = long_log(dir.path());
    // As a log written without a manifest (nori-wal's, or an earlier version's) whose first
    // segments were removed by its own retention: it opens from its lowest segment.
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    std::fs::remove_file(dir.path().join("wal").join("000000.wal")).unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    let kept = contents(&store);
    assert!(!kept.is_empty() && kept.len() < model.len());
    store.close().unwrap();
    let manifest = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    let manifest = kv_compact::Manifest::decode(&manifest).unwrap();
    assert_eq!((manifest.snapshot, manifest.log_from), (None, 1));
    // From then on its first segment is known.
    std::fs::remove_file(dir.path().join("wal").join("000001.wal")).unwrap();
    assert_missing_segment(dir.path(), 1);
}

#[test]
fn a_nori_wal_directory_opens_and_then_knows_its_first_segment() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kv-wal/tests/fixtures/nori-wal-0.1/clean/wal");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("wal")).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join("wal").join(entry.file_name())).unwrap();
    }
    let store = KvStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), 920);
    store.close().unwrap();
    let store = KvStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), 920);
    store.close().unwrap();
    std::fs::remove_file(dir.path().join("wal").join("000000.wal")).unwrap();
    assert_missing_segment(dir.path(), 0);
}

#[test]
fn open_removes_only_snapshots_the_manifest_replaced_or_never_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = compacted_store(dir.path());
    let snapshots = dir.path().join("snapshots");
    // Left by compactions that failed or crashed: an older snapshot, a newer one not yet
    // named, an unfinished one. And what is not a snapshot at all.
    for name in ["000000", "000002", "000003.tmp"] {
        std::fs::create_dir(snapshots.join(name)).unwrap();
        std::fs::write(snapshots.join(name).join("000000.wal"), b"").unwrap();
    }
    std::fs::create_dir(snapshots.join("kept by hand")).unwrap();
    std::fs::write(snapshots.join("notes.txt"), b"mine").unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
    let mut names: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["000001", "kept by hand", "notes.txt"]);
}

/// The snapshot directories in `dir`.
fn snapshot_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// `files(dir)` without the lock file, which every open creates.
fn files_but_lock(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = files(dir);
    out.remove(&dir.join("LOCK"));
    out
}

#[test]
fn an_older_manifest_restored_from_a_backup_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    let mut model = put_keys(&store, 0, 50);
    let at_creation = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    store.compact().unwrap();
    let after_first = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    model.extend(put_keys(&store, 50, 50));
    store.compact().unwrap();
    model.extend(put_keys(&store, 100, 1));
    store.close().unwrap();
    let current = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    assert_eq!(snapshot_names(dir.path()), ["000002"]);

    // Backups of the manifest from after the first compaction (it names snapshot 1, gone,
    // and a log start compacted away) and from the store's creation (no snapshot, log from
    // segment 0, gone): opening with either is refused, and snapshot 2 and the log stay
    // byte for byte.
    for (case, old) in [
        ("after the first compaction", &after_first),
        ("at creation", &at_creation),
    ] {
        std::fs::write(dir.path().join("MANIFEST"), old).unwrap();
        let before = files_but_lock(dir.path());
        refused(dir.path(), case);
        assert_eq!(files_but_lock(dir.path()), before, "{case}");
    }

    // With the current manifest back, every key is there.
    std::fs::write(dir.path().join("MANIFEST"), current).unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
}

#[test]
fn a_manifest_naming_a_missing_snapshot_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    compacted_store(dir.path());
    // Snapshot 1, the one the manifest names, moved aside as 000002: garbage by the
    // manifest's word, but the manifest is wrong about the directory, so nothing may go.
    let snapshots = dir.path().join("snapshots");
    std::fs::rename(snapshots.join("000001"), snapshots.join("000002")).unwrap();
    let before = files_but_lock(dir.path());
    refused(dir.path(), "the named snapshot missing");
    assert_eq!(files_but_lock(dir.path()), before);
}

#[test]
fn a_store_of_an_earlier_version_with_an_unfinished_first_snapshot_opens() {
    let dir = tempfile::tempdir().unwrap();
    let model = long_log(dir.path());
    // As an earlier version left it: no manifest (it wrote none at creation), and the
    // unfinished snapshot of a first compaction that crashed. Segment 0 is there, so no
    // compaction ever completed: the log is whole.
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    let unfinished = dir.path().join("snapshots").join("000001.tmp");
    std::fs::create_dir_all(&unfinished).unwrap();
    std::fs::write(unfinished.join("000000.wal"), b"partial").unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
    store.close().unwrap();
    // Opened without deleting anything.
    assert_eq!(
        std::fs::read(unfinished.join("000000.wal")).unwrap(),
        b"partial"
    );
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
}

#[test]
fn a_file_beside_the_snapshots_does_not_stand_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = long_log(dir.path());
    // A log without a manifest whose first segment its own retention removed, and a note
    // in an otherwise empty snapshots directory: no snapshot, so nothing is missing.
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    std::fs::remove_file(dir.path().join("wal").join("000000.wal")).unwrap();
    std::fs::create_dir(dir.path().join("snapshots")).unwrap();
    std::fs::write(dir.path().join("snapshots").join("notes.txt"), b"mine").unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    let kept = contents(&store);
    assert!(!kept.is_empty() && kept.len() < model.len());
    store.close().unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("snapshots").join("notes.txt")).unwrap(),
        b"mine"
    );
}

#[test]
fn a_complete_snapshot_without_a_manifest_or_segment_0_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    compacted_store(dir.path());
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    // An unfinished snapshot beside it changes nothing.
    std::fs::create_dir(dir.path().join("snapshots").join("000002.tmp")).unwrap();
    let before = files_but_lock(dir.path());
    let err = refused(dir.path(), "no manifest, no segment 0");
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
    assert_eq!(files_but_lock(dir.path()), before);
    assert_eq!(snapshot_names(dir.path()), ["000001", "000002.tmp"]);
}

#[test]
fn a_snapshot_lengthened_by_zeros_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let model = compacted_store_of_the_log_layout(dir.path());
    let segment = the_snapshot_segment(dir.path());
    let whole = std::fs::read(&segment).unwrap();
    let mut longer = whole.clone();
    longer.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&segment, &longer).unwrap();
    let err = refused(dir.path(), "zeros appended");
    let Error::Corrupt {
        damage: Damage::Snapshot { id: 1 },
        source,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(
        matches!(
            source.downcast_ref(),
            Some(kv_compact::Error::CorruptSnapshot { id: 1, .. })
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        longer,
        "the zeros were cut"
    );

    std::fs::write(&segment, &whole).unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
}

/// The store of the previous version, whose snapshot is a log, opens whole; its next
/// compaction writes the snapshot in parts (manifest version 3), which opens whole too.
#[test]
fn a_snapshot_written_as_a_log_still_opens_and_is_compacted_into_parts() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = compacted_store_of_the_log_layout(dir.path());
    let manifest = || {
        kv_compact::Manifest::decode(&std::fs::read(dir.path().join("MANIFEST")).unwrap()).unwrap()
    };
    assert_eq!(
        manifest().sum.map(|s| s.layout),
        Some(kv_compact::SnapshotLayout::Log)
    );
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
    assert_eq!(store.stats().open_replayed_records, 51);
    model.extend(put_keys(&store, 51, 10));
    store.compact().unwrap();
    store.close().unwrap();
    drop(store);
    assert_eq!(
        manifest().sum.map(|s| s.layout),
        Some(kv_compact::SnapshotLayout::Parts)
    );
    assert_eq!(snapshot_names(dir.path()), ["000002"]);
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
}

/// The part files of snapshot 1 in `dir`, in order.
fn the_snapshot_parts(dir: &Path) -> Vec<PathBuf> {
    let snapshot = dir.join("snapshots").join("000001");
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&snapshot)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("part-")
        })
        .collect();
    parts.sort();
    parts
}

/// Every way a snapshot's parts can differ from what was written is refused, with the
/// directory left as it was: a part cut short, lengthened, altered, with two records
/// swapped, swapped with another part, missing or extra, and an index damaged or missing.
#[test]
fn a_snapshot_part_damaged_missing_or_extra_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Enough data for a part per shard (a part holds at least a MiB), mostly: 8 MiB over
    // four shards. Every record the same length (keys and values are).
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..128u32 {
        let (key, value) = (format!("key{i:05}"), vec![(i % 251) as u8; 64 << 10]);
        store.put(key.clone(), value.clone()).unwrap();
        model.insert(key.into_bytes(), value);
    }
    store.compact().unwrap();
    store.close().unwrap();
    drop(store);
    let snapshot = dir.path().join("snapshots").join("000001");
    let parts = the_snapshot_parts(dir.path());
    assert!(parts.len() >= 2, "{parts:?}");
    let (part, other) = (&parts[0], &parts[1]);
    let whole = std::fs::read(part).unwrap();
    let other_whole = std::fs::read(other).unwrap();
    let kv_wal::Decoded::Record(_, record) = kv_wal::decode(&whole) else {
        panic!("a part starts with a record")
    };
    assert!(whole.len() >= 2 * record, "{} bytes", whole.len());
    let restore = || {
        std::fs::write(part, &whole).unwrap();
        std::fs::write(other, &other_whole).unwrap();
    };

    for cut in [0, record, whole.len() - record, whole.len() - 1] {
        std::fs::write(part, &whole[..cut]).unwrap();
        assert_snapshot_refused(dir.path(), &format!("part cut to {cut} bytes"));
    }
    let mut longer = whole.clone();
    longer.extend_from_slice(&whole[..record]);
    std::fs::write(part, &longer).unwrap();
    assert_snapshot_refused(dir.path(), "one record more in a part");
    let mut zeros = whole.clone();
    zeros.extend_from_slice(&[0u8; 4096]);
    std::fs::write(part, &zeros).unwrap();
    assert_snapshot_refused(dir.path(), "zeros after a part");
    let mut flipped = whole.clone();
    flipped[whole.len() / 2] ^= 1;
    std::fs::write(part, &flipped).unwrap();
    assert_snapshot_refused(dir.path(), "a bit flipped in a part");
    let mut swapped = whole.clone();
    swapped[..record].copy_from_slice(&whole[record..2 * record]);
    swapped[record..2 * record].copy_from_slice(&whole[..record]);
    std::fs::write(part, &swapped).unwrap();
    assert_snapshot_refused(dir.path(), "two records of a part swapped");
    std::fs::write(part, &other_whole).unwrap();
    std::fs::write(other, &whole).unwrap();
    assert_snapshot_refused(dir.path(), "two parts swapped");
    restore();

    std::fs::remove_file(part).unwrap();
    assert_snapshot_refused(dir.path(), "a part missing");
    restore();
    let extra = snapshot.join(format!("part-{:04}", parts.len()));
    std::fs::write(&extra, &whole).unwrap();
    assert_snapshot_refused(dir.path(), "a part more than the index lists");
    std::fs::remove_file(&extra).unwrap();

    let index = std::fs::read(snapshot.join("PARTS")).unwrap();
    let mut damaged = index.clone();
    damaged[12] ^= 1;
    std::fs::write(snapshot.join("PARTS"), &damaged).unwrap();
    assert_snapshot_refused(dir.path(), "the index damaged");
    std::fs::remove_file(snapshot.join("PARTS")).unwrap();
    assert_snapshot_refused(dir.path(), "the index missing");
    std::fs::write(snapshot.join("PARTS"), &index).unwrap();

    let store = KvStore::open_with(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), model);
}
