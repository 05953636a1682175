//! The log's operations behave as documented.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, nth_record, read_all, reopen_records};
use kv_wal::fs::fault::{FaultyFileSystem, Op};
use kv_wal::{Encoded, Error, FsyncPolicy, Position, Record, SizeLimits, Wal, WalConfig};

#[test]
fn reading_after_rotation_returns_every_segment_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    let records: Vec<Record> = (0..500).map(nth_record).collect();
    for record in &records {
        wal.append(record).unwrap();
    }
    assert!(wal.current_position().segment >= 3);
    let read: Vec<Record> = read_all(&wal).into_iter().map(|(_, r)| r).collect();
    assert_eq!(read, records);
    drop(wal);
    // The last write of every key wins after reopening: no stale values from old segments.
    let (reopened, info) = reopen_records(config);
    assert_eq!(reopened, records);
    assert!(info.segments_scanned >= 4);
}

#[test]
fn segments_respect_the_size_limit_and_closed_ones_hold_no_preallocated_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(dir.path())).unwrap();
    for i in 0..300 {
        wal.append(&nth_record(i)).unwrap();
    }
    let last = wal.current_position().segment;
    wal.close().unwrap();
    for id in 0..=last {
        let len = std::fs::metadata(dir.path().join(kv_wal::segment::file_name(id)))
            .unwrap()
            .len();
        assert!(len <= 4096, "segment {id} is {len} bytes");
        assert!(id == last || len > 3000, "segment {id} is {len} bytes");
    }
}

#[test]
fn positions_point_at_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(dir.path())).unwrap();
    let mut positions = vec![wal.append(&nth_record(0)).unwrap()];
    positions.extend(wal.append_batch(&[nth_record(1), nth_record(2)]).unwrap());
    positions.push(wal.append_atomic(&[nth_record(3), nth_record(4)]).unwrap());
    let read = read_all(&wal);
    let read_positions: Vec<Position> = read.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions[..3], read_positions[..3]);
    assert_eq!(positions[3], read_positions[3]);
    // Reading from a record's position starts with that record.
    let from_third: Vec<Record> = wal
        .read_from(positions[2])
        .unwrap()
        .map(|r| r.unwrap().1)
        .collect();
    assert_eq!(from_third, (2..5).map(nth_record).collect::<Vec<_>>());
    assert!(matches!(
        wal.read_from(Position::new(9, 0)),
        Err(Error::InvalidPosition(_))
    ));
}

#[test]
fn encoded_records_from_several_writers_go_out_in_one_append() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(dir.path())).unwrap();
    let mut first = Encoded::new();
    first.push(&nth_record(0));
    let mut second = Encoded::new();
    second.push_atomic(&[nth_record(1), nth_record(2)]);
    first.extend(&second);
    assert_eq!(first.records(), 3);
    wal.append_encoded(&first).unwrap();
    let read: Vec<Record> = read_all(&wal).into_iter().map(|(_, r)| r).collect();
    assert_eq!(read, (0..3).map(nth_record).collect::<Vec<_>>());
}

#[test]
fn rotate_and_delete_segments_before() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    wal.append(&nth_record(0)).unwrap();
    let start = wal.rotate().unwrap();
    // Segment 1 begins with its opening, which states how segment 0 ends.
    assert_eq!(start.segment, 1);
    assert_eq!(
        wal.rotate().unwrap(),
        start,
        "rotating an empty segment does nothing"
    );
    wal.append(&nth_record(1)).unwrap();
    wal.rotate().unwrap();
    wal.append(&nth_record(2)).unwrap();
    let deleted = wal.delete_segments_before(Position::new(2, 0)).unwrap();
    assert_eq!(deleted.count(), 2);
    assert_eq!(wal.segments(), 2..=2);
    assert!(!dir.path().join("000000.wal").exists());
    // Their names are gone, but they stay open, their blocks not yet freed, until the
    // caller drops what it got back (after its own lock).
    #[cfg(target_os = "linux")]
    {
        assert_eq!(open_deleted_segments(dir.path()), 2);
        drop(deleted);
        assert_eq!(open_deleted_segments(dir.path()), 0);
    }
    // Deleting never touches the active segment.
    assert_eq!(
        wal.delete_segments_before(Position::new(9, 0))
            .unwrap()
            .count(),
        0
    );
    wal.close().unwrap();
    let (records, _) = reopen_records(config);
    assert_eq!(records, [nth_record(2)]);
}

/// How many of this process's open files are segments of `dir` whose names were removed.
#[cfg(target_os = "linux")]
fn open_deleted_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| {
            let target = target.to_string_lossy();
            target.starts_with(&*dir.to_string_lossy()) && target.ends_with(".wal (deleted)")
        })
        .count()
}

/// Removes every file of `dir` that is not a segment (a lock file, if there is one), as a
/// user cleaning up "stale" files would.
fn remove_all_but_segments(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_file() && kv_wal::segment::parse_file_name(&name).is_none() {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

#[test]
fn removing_files_beside_the_segments_does_not_unlock_an_open_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(dir.path())).unwrap();
    wal.append(&nth_record(0)).unwrap();
    std::fs::write(dir.path().join("LOCK"), b"").unwrap();
    remove_all_but_segments(dir.path());
    let err = Wal::open(config(dir.path())).unwrap_err();
    assert!(matches!(err, Error::DirectoryLocked { .. }), "{err}");
    wal.close().unwrap();
    Wal::open(config(dir.path())).unwrap();
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(config(dir.path())).unwrap();
    let err = Wal::open(config(dir.path())).unwrap_err();
    assert!(matches!(err, Error::DirectoryLocked { .. }), "{err}");
    assert!(err.to_string().contains("already open"));
    wal.close().unwrap();
    let (wal, _) = Wal::open(config(dir.path())).unwrap();
    drop(wal);
    Wal::open(config(dir.path())).unwrap();
}

#[test]
fn oversized_keys_and_values_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let limits = SizeLimits {
        max_key_size: 8,
        max_value_size: 16,
    };
    let (mut wal, _) = Wal::open(config(dir.path()).limits(limits)).unwrap();
    wal.append(&Record::put("ok", "fine")).unwrap();
    let end = wal.current_position();
    assert!(matches!(
        wal.append(&Record::put("123456789", "v")),
        Err(Error::KeyTooLarge { len: 9, max: 8 })
    ));
    assert!(matches!(
        wal.append_atomic(&[Record::put("a", "b"), Record::put("k", vec![0; 17])]),
        Err(Error::ValueTooLarge { len: 17, max: 16 })
    ));
    assert_eq!(wal.current_position(), end);
    assert_eq!(read_all(&wal).len(), 1);
}

#[test]
fn the_default_limits_are_64_kib_keys_and_64_mib_values() {
    let limits = SizeLimits::default();
    assert!(limits.check(&Record::put(vec![0; 64 << 10], "")).is_ok());
    assert!(limits
        .check(&Record::put(vec![0; (64 << 10) + 1], ""))
        .is_err());
    assert!(limits.check(&Record::put("k", vec![0; 64 << 20])).is_ok());
    assert!(limits
        .check(&Record::put("k", vec![0; (64 << 20) + 1]))
        .is_err());
}

#[test]
fn batch_policy_syncs_within_the_window_without_further_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let window = Duration::from_millis(50);
    let config = WalConfig::new(dir.path())
        .fsync_policy(FsyncPolicy::Batch(window))
        .file_system(Arc::new(fs));
    let (mut wal, _) = Wal::open(config).unwrap();
    let syncs_before = faults.count(Op::Sync);
    let written = Instant::now();
    wal.append(&Record::put("k", "v")).unwrap();
    assert_eq!(
        faults.count(Op::Sync),
        syncs_before,
        "Batch does not sync inline"
    );
    while faults.count(Op::Sync) == syncs_before {
        assert!(
            written.elapsed() < window * 20,
            "no sync {:?} after the write",
            written.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        written.elapsed() >= window,
        "synced before the window ended"
    );
    // Idle: no more syncs while nothing is written.
    let settled = faults.count(Op::Sync);
    std::thread::sleep(window * 3);
    assert_eq!(faults.count(Op::Sync), settled);
    // Every sync since the write was the flusher's, and each one is counted.
    assert_eq!(wal.background_syncs(), settled - syncs_before);
    assert!(wal.background_syncs() >= 1);
}

#[test]
fn always_policy_syncs_every_append_and_os_policy_never_does() {
    for (policy, expected) in [(FsyncPolicy::Always, 10), (FsyncPolicy::Os, 0)] {
        let dir = tempfile::tempdir().unwrap();
        let (fs, faults) = FaultyFileSystem::new();
        let config = WalConfig::new(dir.path())
            .fsync_policy(policy)
            .file_system(Arc::new(fs));
        let (mut wal, _) = Wal::open(config).unwrap();
        let before = faults.count(Op::Sync);
        for i in 0..10 {
            wal.append(&nth_record(i)).unwrap();
        }
        assert_eq!(faults.count(Op::Sync) - before, expected, "{policy:?}");
    }
}

#[test]
fn close_cuts_the_preallocated_tail() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path()).max_segment_size(1 << 20);
    let (mut wal, _) = Wal::open(config).unwrap();
    wal.append(&Record::put("k", "v")).unwrap();
    let path = dir.path().join("000000.wal");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        1 << 20,
        "preallocated"
    );
    let end = wal.current_position();
    wal.close().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), end.offset);
}

#[test]
fn invalid_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = WalConfig::new(dir.path()).max_segment_size(10);
    assert!(matches!(Wal::open(tiny), Err(Error::InvalidConfig(_))));
    let zero_window = WalConfig::new(dir.path()).fsync_policy(FsyncPolicy::Batch(Duration::ZERO));
    assert!(matches!(
        Wal::open(zero_window),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn appends_between_zeros_written_ahead_read_back_whole() {
    // Every append a write system call into a preallocated segment, so zeros are written
    // ahead of the data a megabyte at a time; sizes vary so appends straddle that frontier.
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path())
        .max_segment_size(3 << 20)
        .write_window(false)
        .fsync_policy(FsyncPolicy::Os);
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    let mut written = Vec::new();
    for i in 0..2_000u32 {
        let record = Record::put(format!("k{i}"), vec![i as u8; (i as usize * 37) % 5_000]);
        wal.append(&record).unwrap();
        written.push(record);
        if i == 1_000 {
            // Reopen in the middle: the zeros past the tail stay free space.
            drop(wal);
            let (records, info) = reopen_records(config.clone());
            assert_eq!(records, written);
            assert!(info.corruptions.is_empty());
            wal = Wal::open(config.clone()).unwrap().0;
        }
    }
    assert!(*wal.segments().end() >= 1, "the log rotated");
    drop(wal);
    let (records, info) = reopen_records(config);
    assert_eq!(records, written);
    assert!(info.corruptions.is_empty());
}

#[test]
fn appends_in_place_says_when_an_append_would_rotate_first() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(dir.path()).fsync_policy(FsyncPolicy::Os)).unwrap();
    let mut rotations = 0;
    for i in 0..300 {
        let record = nth_record(i);
        let len = record.encoded_len() as u64;
        let in_place = wal.appends_in_place(len);
        let before = wal.current_position().segment;
        wal.append(&record).unwrap();
        let rotated = wal.current_position().segment != before;
        assert_eq!(in_place, !rotated, "record {i}");
        rotations += u32::from(rotated);
    }
    assert!(rotations >= 3, "the test crossed segments: {rotations}");
}
