//! Segments closed by rotation are sealed: a segment cut short at a record boundary, emptied,
//! grown or deleted is damage that opening reports, where before it opened without a word.

mod common;

use std::path::{Path, PathBuf};

use common::{config, nth_record, reopen_records};
use kv_wal::{CorruptionKind, Decoded, Error, Position, Record, RecordKind, Wal, WalConfig};

/// Writes `n` records of the test sequence (4 KiB segments); returns the records and where
/// each starts.
fn write_log(config: &WalConfig, n: u64) -> (Vec<Record>, Vec<Position>) {
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    let mut records = Vec::new();
    let mut starts = Vec::new();
    for i in 0..n {
        let record = nth_record(i);
        starts.push(wal.append(&record).unwrap());
        records.push(record);
    }
    wal.close().unwrap();
    (records, starts)
}

fn segment(dir: &Path, id: u64) -> PathBuf {
    dir.join(kv_wal::segment::file_name(id))
}

/// A log of at least four segments.
fn sealed_log() -> (tempfile::TempDir, WalConfig, Vec<Record>, Vec<Position>) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (records, starts) = write_log(&config, 400);
    assert!(starts.last().unwrap().segment >= 3);
    (dir, config, records, starts)
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Opens `config`, expecting `Corrupt`; checks nothing changed on disk.
fn open_corrupt(config: &WalConfig) -> (u64, u64, CorruptionKind) {
    let before = snapshot(&config.dir);
    let outcome = Wal::open(config.clone());
    assert_eq!(
        snapshot(&config.dir),
        before,
        "a refused open changed files"
    );
    match outcome {
        Err(Error::Corrupt {
            segment,
            offset,
            kind,
        }) => (segment, offset, kind),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn an_older_segment_cut_at_a_record_boundary_is_corrupt_at_the_cut() {
    let (dir, config, _, starts) = sealed_log();
    // Cut segment 1 just before its last three records: every record left is whole.
    let in_one: Vec<Position> = starts.iter().copied().filter(|p| p.segment == 1).collect();
    let cut = in_one[in_one.len() - 3].offset;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment(dir.path(), 1))
        .unwrap();
    file.set_len(cut).unwrap();
    assert_eq!(
        open_corrupt(&config),
        (1, cut, CorruptionKind::SegmentLength)
    );
}

#[test]
fn a_middle_segment_emptied_is_corrupt() {
    let (dir, config, _, _) = sealed_log();
    std::fs::write(segment(dir.path(), 2), b"").unwrap();
    let (id, offset, kind) = open_corrupt(&config);
    assert_eq!((id, kind), (2, CorruptionKind::MissingOpening));
    assert_eq!(offset, 0);
}

#[test]
fn the_first_segment_emptied_is_corrupt() {
    let (dir, config, _, _) = sealed_log();
    std::fs::write(segment(dir.path(), 0), b"").unwrap();
    assert_eq!(open_corrupt(&config), (0, 0, CorruptionKind::SegmentLength));
}

#[test]
fn the_newest_segment_deleted_while_older_ones_exist_is_a_missing_segment() {
    let (dir, config, _, starts) = sealed_log();
    let newest = starts.last().unwrap().segment;
    std::fs::remove_file(segment(dir.path(), newest)).unwrap();
    match Wal::open(config) {
        Err(Error::MissingSegment { id, .. }) => assert_eq!(id, newest),
        other => panic!("expected MissingSegment, got {other:?}"),
    }
}

#[test]
fn the_newest_segment_emptied_or_zeroed_while_older_ones_exist_is_corrupt() {
    let (dir, config, _, starts) = sealed_log();
    let newest = starts.last().unwrap().segment;
    let path = segment(dir.path(), newest);
    let len = std::fs::metadata(&path).unwrap().len();
    for content in [Vec::new(), vec![0; len as usize]] {
        std::fs::write(&path, &content).unwrap();
        assert_eq!(
            open_corrupt(&config),
            (newest, 0, CorruptionKind::MissingOpening)
        );
    }
}

#[test]
fn a_sealed_segment_grown_past_its_seal_is_corrupt() {
    let (dir, config, _, _) = sealed_log();
    let path = segment(dir.path(), 1);
    let mut bytes = std::fs::read(&path).unwrap();
    let sealed_len = bytes.len() as u64;
    Record::put("extra", "record").encode_into(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        open_corrupt(&config),
        (1, sealed_len, CorruptionKind::BadSeal)
    );
}

#[test]
fn a_seal_torn_by_a_crash_during_rotation_opens_with_every_record() {
    let (dir, config, records, starts) = sealed_log();
    // The crash came after the newest segment (and its opening) was durable, before the seal
    // of the one before was: its last 40 bytes are the seal, cut short or partly written back.
    let newest = starts.last().unwrap().segment;
    let path = segment(dir.path(), newest - 1);
    let sealed = std::fs::read(&path).unwrap();
    let seal_at = sealed.len() - 40;
    for torn in [
        sealed[..seal_at].to_vec(),
        sealed[..seal_at + 17].to_vec(),
        {
            let mut zeroed = sealed.clone();
            zeroed[seal_at..seal_at + 12].fill(0);
            zeroed
        },
    ] {
        std::fs::write(&path, &torn).unwrap();
        let (read, info) = reopen_records(config.clone());
        assert_eq!(read, records);
        assert!(info.corruptions.is_empty(), "{:?}", info.corruptions);
    }
    // The same torn seal with no opening after it cannot be a crash's doing.
    std::fs::write(&path, &sealed[..seal_at + 17]).unwrap();
    let next = std::fs::read(segment(dir.path(), newest)).unwrap();
    std::fs::write(segment(dir.path(), newest), &next[40..]).unwrap();
    assert_eq!(
        open_corrupt(&config),
        (newest - 1, seal_at as u64, CorruptionKind::BadSeal)
    );
}

#[test]
fn a_crash_before_the_next_segment_opened_keeps_every_record() {
    let (dir, config, records, starts) = sealed_log();
    // The crash left the newest segment created but empty, and the one before it unsealed.
    let newest = starts.last().unwrap().segment;
    let in_newest = records.len() - starts.iter().filter(|p| p.segment == newest).count();
    std::fs::write(segment(dir.path(), newest), b"").unwrap();
    let before = std::fs::read(segment(dir.path(), newest - 1)).unwrap();
    std::fs::write(
        segment(dir.path(), newest - 1),
        &before[..before.len() - 40],
    )
    .unwrap();
    let (read, _) = reopen_records(config.clone());
    assert_eq!(read, records[..in_newest]);
    // Writing on from there, and rotating again, opens cleanly.
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    wal.append(&nth_record(1000)).unwrap();
    wal.rotate().unwrap();
    wal.append(&nth_record(1001)).unwrap();
    wal.close().unwrap();
    let (read, _) = reopen_records(config);
    assert_eq!(read.len(), in_newest + 2);
}

#[test]
fn seals_are_never_read_as_records_and_a_nori_wal_reader_sees_a_reserved_delete() {
    let (dir, config, records, _) = sealed_log();
    let (read, info) = reopen_records(config);
    assert_eq!(read, records);
    assert_eq!(info.records, records.len() as u64);
    // What a reader that ignores the reserved bits sees: the same records, plus a delete of
    // a key in kv-wal's reserved namespace at the end of each sealed segment and the start
    // of each later one.
    let bytes = std::fs::read(segment(dir.path(), 1)).unwrap();
    let mut at = 0;
    let mut deletes = Vec::new();
    while at < bytes.len() {
        let Decoded::Record(record, len) = kv_wal::decode(&bytes[at..]) else {
            panic!("segment 1 holds only records");
        };
        if record.kind() == RecordKind::Delete && record.key().starts_with(b"\0kv-wal\0") {
            deletes.push(at);
        }
        at += len;
    }
    assert_eq!(deletes, [0, bytes.len() - 40]);
}
