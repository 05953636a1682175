//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use kv_wal::{FsyncPolicy, Position, Record, RecordKind, Wal, WalConfig};

/// A config for tests: small segments so rotation happens, syncs on every append.
pub fn config(dir: &Path) -> WalConfig {
    WalConfig::new(dir)
        .max_segment_size(4096)
        .fsync_policy(FsyncPolicy::Always)
}

/// Every record of the log, read from the start.
pub fn read_all(wal: &Wal) -> Vec<(Position, Record)> {
    wal.read_from(Position::START)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Opens the log, checks that a replay during open and a read after it agree, and returns
/// the records.
pub fn reopen_records(config: WalConfig) -> (Vec<Record>, kv_wal::RecoveryInfo) {
    let mut seen = Vec::new();
    let (wal, info) = Wal::open_with(config, Position::START, |_, r| {
        seen.push(r.to_record(usize::MAX).unwrap())
    })
    .unwrap();
    let read: Vec<Record> = read_all(&wal).into_iter().map(|(_, r)| r).collect();
    assert_eq!(seen, read, "replay during open and read_from disagree");
    wal.close().unwrap();
    (read, info)
}

/// The key -> value map that replaying `records` builds.
pub fn apply(records: &[Record]) -> BTreeMap<Bytes, Bytes> {
    let mut map = BTreeMap::new();
    for r in records {
        match r.kind {
            RecordKind::Put => {
                map.insert(r.key.clone(), r.value.clone());
            }
            RecordKind::Delete => {
                map.remove(&r.key);
            }
        }
    }
    map
}

/// Copies a fixture directory into a fresh temporary directory.
pub fn fixture(name: &str) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dst = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.path().join(entry.file_name())).unwrap();
    }
    dst
}

/// The record `i` of a deterministic test sequence.
pub fn nth_record(i: u64) -> Record {
    let key = format!("key-{:05}", i % 500);
    match i % 7 {
        3 => Record::delete(key),
        _ => Record::put(key, format!("value-{i}-{}", "x".repeat((i % 40) as usize))),
    }
}

/// Unit `i` of the crash tests' write sequence: a single put, or every tenth an atomic batch
/// of three. Keys carry the unit's index so a reader can tell where a log stops.
pub fn unit(i: u64) -> Vec<Record> {
    let value = format!("{i}-{}", "v".repeat((i % 50) as usize));
    if i % 10 == 9 {
        (0..3)
            .map(|j| Record::put(format!("{i:08}.{j}"), value.clone()))
            .collect()
    } else {
        vec![Record::put(format!("{i:08}"), value)]
    }
}

/// The index of the unit a key written by [`unit`] belongs to.
pub fn unit_index(key: &[u8]) -> u64 {
    std::str::from_utf8(&key[..8]).unwrap().parse().unwrap()
}
