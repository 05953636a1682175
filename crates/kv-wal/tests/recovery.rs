//! Recovery tells a torn tail from damage, and each mode does what it promises.

mod common;

use common::{config, nth_record, reopen_records};
use kv_wal::{CorruptionKind, DamageAction, Error, Position, Record, RecoveryMode, Wal, WalConfig};

/// Writes `n` records of the test sequence; returns the records and the end of each.
fn write_log(config: &WalConfig, n: u64) -> (Vec<Record>, Vec<Position>) {
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    let mut records = Vec::new();
    let mut ends = Vec::new();
    for i in 0..n {
        let record = nth_record(i);
        wal.append(&record).unwrap();
        records.push(record);
        ends.push(wal.current_position());
    }
    wal.close().unwrap();
    (records, ends)
}

fn segment_path(dir: &std::path::Path, id: u64) -> std::path::PathBuf {
    dir.join(kv_wal::segment::file_name(id))
}

#[test]
fn torn_write_at_every_offset_of_the_last_record_keeps_exactly_the_records_before() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path()).preallocate(false);
    let (records, ends) = write_log(&config, 40);
    let last = *ends.last().unwrap();
    let before = ends[ends.len() - 2];
    assert_eq!(
        last.segment, before.segment,
        "the last record starts its segment"
    );
    let path = segment_path(dir.path(), last.segment);
    let full = std::fs::read(&path).unwrap();

    for cut in before.offset..last.offset {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (recovered, info) = reopen_records(config.clone());
        assert_eq!(recovered, records[..records.len() - 1], "cut at {cut}");
        let torn = cut - before.offset;
        assert_eq!(info.bytes_truncated, torn, "cut at {cut}");
        assert_eq!(
            info.corruptions.len(),
            usize::from(torn > 0),
            "cut at {cut}"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), before.offset);
    }
}

#[test]
fn torn_write_into_preallocated_space_is_cut_and_the_zeros_are_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path()).preallocate(false);
    let (records, ends) = write_log(&config, 10);
    let path = segment_path(dir.path(), 0);
    let full = std::fs::read(&path).unwrap();
    let before = ends[8].offset as usize;
    // The crash kept half of the last record; the rest of the preallocated file is zeros.
    let mut torn = full[..before + (full.len() - before) / 2].to_vec();
    torn.resize(4096, 0);
    std::fs::write(&path, &torn).unwrap();

    let (recovered, info) = reopen_records(config);
    assert_eq!(recovered, records[..9]);
    assert_eq!(info.corruptions.len(), 1);
    assert_eq!(info.corruptions[0].action, DamageAction::Truncated);
    assert_eq!(info.end, Position::new(0, before as u64));
}

#[test]
fn zero_tail_alone_is_free_space_in_every_mode() {
    for mode in [
        RecoveryMode::Strict,
        RecoveryMode::TolerateTornTail,
        RecoveryMode::Salvage,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path()).preallocate(false).recovery_mode(mode);
        let (records, ends) = write_log(&config, 5);
        let path = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.resize(100_000, 0);
        std::fs::write(&path, &bytes).unwrap();
        let (recovered, info) = reopen_records(config);
        assert_eq!(recovered, records);
        assert!(info.corruptions.is_empty(), "{mode:?}");
        assert_eq!(info.bytes_truncated, 0);
        assert_eq!(info.end, ends[4]);
    }
}

/// A log of several segments with one bit flipped in the middle of segment 1.
fn log_with_flipped_bit() -> (tempfile::TempDir, WalConfig, Vec<Record>, Position) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (records, ends) = write_log(&config, 600);
    assert!(ends.last().unwrap().segment >= 3, "{:?}", ends.last());
    // Flip a bit in the key of the 5th record of segment 1.
    let in_seg1: Vec<usize> = (0..ends.len()).filter(|&i| ends[i].segment == 1).collect();
    let victim = in_seg1[5];
    let start = ends[victim - 1];
    assert_eq!(start.segment, 1);
    let path = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[start.offset as usize + 4] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    (dir, config, records, start)
}

#[test]
fn flipped_bit_in_a_middle_segment_is_refused_by_default_and_nothing_changes() {
    let (dir, config, _, damaged) = log_with_flipped_bit();
    let before: Vec<Vec<u8>> = (0..4)
        .map(|id| std::fs::read(segment_path(dir.path(), id)).unwrap())
        .collect();
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        match Wal::open(config.clone().recovery_mode(mode)) {
            Err(Error::Corrupt {
                segment,
                offset,
                kind,
            }) => {
                assert_eq!(Position::new(segment, offset), damaged);
                assert_eq!(kind, CorruptionKind::Checksum);
            }
            other => panic!("{mode:?}: expected corruption, got {other:?}"),
        }
    }
    let after: Vec<Vec<u8>> = (0..4)
        .map(|id| std::fs::read(segment_path(dir.path(), id)).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn flipped_bit_in_a_middle_segment_is_skipped_in_salvage_mode() {
    let (_dir, config, records, damaged) = log_with_flipped_bit();
    let config = config.recovery_mode(RecoveryMode::Salvage);
    let (recovered, info) = reopen_records(config);
    let lost = records
        .iter()
        .position(|r| !recovered.contains(r))
        .expect("one record is lost");
    let mut expected = records.clone();
    expected.remove(lost);
    assert_eq!(recovered, expected);
    assert_eq!(info.corruptions.len(), 1);
    let skipped = info.corruptions[0];
    assert_eq!(
        (skipped.segment, skipped.offset),
        (damaged.segment, damaged.offset)
    );
    assert_eq!(skipped.action, DamageAction::Skipped);
    assert_eq!(skipped.bytes, records[lost].encoded_len() as u64);
}

#[test]
fn damage_in_the_last_segment_followed_by_valid_records_is_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (_, ends) = write_log(&config, 5);
    let path = segment_path(dir.path(), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    // Corrupt the length field of the second record so that it claims to run to the end.
    bytes[ends[0].offset as usize] = 0xff;
    bytes[ends[0].offset as usize + 1] = 0x7f;
    std::fs::write(&path, &bytes).unwrap();
    let err = Wal::open(config).unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { segment: 0, offset, .. } if offset == ends[0].offset),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
}

#[test]
fn a_torn_atomic_batch_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path()).preallocate(false);
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    wal.append(&Record::put("before", "1")).unwrap();
    let batch_start = wal.current_position();
    let batch: Vec<Record> = (0..5)
        .map(|i| Record::put(format!("batch-{i}"), "v"))
        .collect();
    wal.append_atomic(&batch).unwrap();
    let batch_end = wal.current_position();
    wal.close().unwrap();

    let path = segment_path(dir.path(), 0);
    let full = std::fs::read(&path).unwrap();
    for cut in batch_start.offset + 1..batch_end.offset {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (recovered, info) = reopen_records(config.clone());
        assert_eq!(recovered, [Record::put("before", "1")], "cut at {cut}");
        assert_eq!(
            info.bytes_truncated,
            cut - batch_start.offset,
            "cut at {cut}"
        );
    }
    std::fs::write(&path, &full).unwrap();
    let (recovered, _) = reopen_records(config);
    assert_eq!(recovered.len(), 6);
}

#[test]
fn a_batch_that_never_ends_in_an_older_segment_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path()).preallocate(false);
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    let batch: Vec<Record> = (0..3).map(|i| Record::put(format!("b{i}"), "v")).collect();
    wal.append_atomic(&batch).unwrap();
    let end = wal.current_position();
    wal.rotate().unwrap();
    wal.append(&Record::put("later", "v")).unwrap();
    wal.close().unwrap();
    // Cut the ending record of the batch off segment 0.
    let path = segment_path(dir.path(), 0);
    let bytes = std::fs::read(&path).unwrap();
    let last_len = Record::put("b2", "v").encoded_len();
    std::fs::write(&path, &bytes[..end.offset as usize - last_len]).unwrap();

    let err = Wal::open(config.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupt {
                segment: 0,
                kind: CorruptionKind::UnterminatedBatch,
                ..
            }
        ),
        "{err}"
    );
    let (recovered, info) = reopen_records(config.recovery_mode(RecoveryMode::Salvage));
    assert_eq!(recovered, [Record::put("later", "v")]);
    assert_eq!(info.corruptions[0].action, DamageAction::Skipped);
}

#[test]
fn a_missing_middle_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (_, ends) = write_log(&config, 600);
    assert!(ends.last().unwrap().segment >= 2);
    std::fs::remove_file(segment_path(dir.path(), 1)).unwrap();
    let err = Wal::open(config).unwrap_err();
    assert!(matches!(err, Error::MissingSegment { id: 1, .. }), "{err}");
}

#[test]
fn a_torn_value_that_embeds_a_valid_record_is_still_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path())
        .preallocate(false)
        .max_segment_size(1 << 20);
    let mut embedded = Vec::new();
    Record::put("forged", "never written").encode_into(&mut embedded);
    let mut value = vec![b'.'; 500];
    value.extend_from_slice(&embedded);
    value.extend(std::iter::repeat_n(b'.', 500));
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    wal.append(&Record::put("kept", "1")).unwrap();
    let start = wal.current_position();
    wal.append(&Record::put("big", value)).unwrap();
    wal.close().unwrap();
    // The crash kept the embedded record but cut the value after it.
    let path = segment_path(dir.path(), 0);
    let bytes = std::fs::read(&path).unwrap();
    let cut = start.offset as usize + 520 + embedded.len();
    std::fs::write(&path, &bytes[..cut]).unwrap();

    let (records, info) = reopen_records(config);
    assert_eq!(records, [Record::put("kept", "1")]);
    assert_eq!(info.corruptions[0].action, DamageAction::Truncated);
}

#[test]
fn replaying_from_inside_the_last_segment_still_finds_its_real_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path()).preallocate(false);
    let (_, ends) = write_log(&config, 5);
    let full = std::fs::read(segment_path(dir.path(), 0)).unwrap();
    // A position that is not a record boundary must not make recovery cut anything.
    let inside = Position::new(0, ends[1].offset + 3);
    let mut seen = 0;
    let (wal, info) = Wal::open_with(config, inside, |_, _| seen += 1).unwrap();
    assert_eq!(info.end, ends[4]);
    assert!(info.corruptions.is_empty());
    assert_eq!(seen, 2, "only the records from the position on are visited");
    drop(wal);
    assert_eq!(std::fs::read(segment_path(dir.path(), 0)).unwrap(), full);
}

/// 22 records of 100 KiB each, every one synced before the next is written.
fn log_of_large_synced_records(config: &WalConfig) -> (Vec<Record>, Vec<Position>) {
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    let mut records = Vec::new();
    let mut starts = Vec::new();
    for i in 0..22u32 {
        let value: Vec<u8> = (0..100 * 1024u32).map(|j| (i + j) as u8 | 1).collect();
        let record = Record::put(format!("large-{i:02}"), value);
        starts.push(wal.append(&record).unwrap());
        records.push(record);
    }
    wal.close().unwrap();
    (records, starts)
}

#[test]
fn a_damaged_length_field_of_a_large_record_never_cuts_the_synced_records_after_it() {
    // The value length of record 15 (a 3-byte varint) now claims 2 MiB: past the end of the
    // data, and past a 1 MiB value limit. Either way the records after it were synced, and
    // cutting them as a torn tail would lose acknowledged writes.
    for limit in [kv_wal::DEFAULT_MAX_VALUE_SIZE, 1 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig::new(dir.path())
            .fsync_policy(kv_wal::FsyncPolicy::Always)
            .limits(kv_wal::SizeLimits {
                max_key_size: 1024,
                max_value_size: limit,
            });
        let (records, starts) = log_of_large_synced_records(&config);
        let damaged = starts[15];
        let path = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let vlen_at = damaged.offset as usize + 1;
        bytes[vlen_at..vlen_at + 3].copy_from_slice(&[0xff, 0xff, 0x7f]);
        std::fs::write(&path, &bytes).unwrap();

        match Wal::open(config.clone()) {
            Err(Error::Corrupt {
                segment, offset, ..
            }) => assert_eq!(Position::new(segment, offset), damaged, "limit {limit}"),
            other => panic!("limit {limit}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing changed");

        let (recovered, info) = reopen_records(config.recovery_mode(RecoveryMode::Salvage));
        let mut expected = records.clone();
        expected.remove(15);
        assert_eq!(recovered, expected, "limit {limit}");
        assert_eq!(info.corruptions.len(), 1);
    }
}

#[test]
fn a_stray_byte_in_the_preallocated_zeros_is_named_where_it_lies() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path()).max_segment_size(1 << 20);
    let (records, ends) = write_log(&config, 5);
    let data_end = ends.last().unwrap().offset;
    let path = segment_path(dir.path(), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, data_end);
    // Preallocated zeros, with one stray byte far past the data.
    bytes.resize(1 << 20, 0);
    let stray = data_end + 100_000;
    bytes[stray as usize] = 0x5a;
    std::fs::write(&path, &bytes).unwrap();
    match Wal::open(config.clone()) {
        Err(Error::Corrupt {
            segment, offset, ..
        }) => assert_eq!((segment, offset), (0, stray)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing changed");
    // Near the data, the same byte is cut as a torn tail, and the report names it too.
    bytes[stray as usize] = 0;
    let near = data_end + 1000;
    bytes[near as usize] = 0x5a;
    std::fs::write(&path, &bytes).unwrap();
    let (recovered, info) = reopen_records(config);
    assert_eq!(recovered, records);
    assert_eq!(info.corruptions.len(), 1);
    assert_eq!(info.corruptions[0].offset, near);
    assert_eq!(info.corruptions[0].bytes, near + 1 - data_end);
}

#[test]
fn recovery_skips_the_preallocated_zero_tail_without_reading_it() {
    use kv_wal::fs::fault::{FaultyFileSystem, Op};
    use kv_wal::fs::{FileSystem, OpenMode, StdFileSystem};
    const SEGMENT: u64 = 128 << 20;
    let dir = tempfile::tempdir().unwrap();
    // What a crash leaves: one record, then the rest of the preallocated segment.
    let file = StdFileSystem
        .open(&segment_path(dir.path(), 0), OpenMode::CreateNew)
        .unwrap();
    let mut record = Vec::new();
    nth_record(0).encode_into(&mut record);
    file.write_all_at(&record, 0).unwrap();
    file.allocate(SEGMENT).unwrap();
    if file.data_after(0).unwrap() == Some((0, SEGMENT)) {
        eprintln!("this file system reports no holes in preallocated space; nothing to check");
        return;
    }
    drop(file);
    let (fs, faults) = FaultyFileSystem::new();
    let config = WalConfig::new(dir.path()).file_system(std::sync::Arc::new(fs));
    let (wal, info) = Wal::open(config).unwrap();
    assert_eq!(info.records, 1);
    assert_eq!(info.end, Position::new(0, record.len() as u64));
    // Reading the whole 128 MiB tail took 2,048 reads of 64 KiB (93 ms in a release build).
    let reads = faults.count(Op::Read);
    assert!(reads < 64, "{reads} reads");
    drop(wal);
}

#[test]
fn pages_written_back_out_of_order_are_cut_at_the_first_hole_as_a_point_in_time() {
    use kv_wal::fs::volatile::VolatileFileSystem;
    let dir = std::path::Path::new("/log");
    let mut holes = 0;
    // Six pages or so that no sync covered, and (every eighth seed) some 90 KiB: several
    // holes, records after each, more than recovery's 64 KiB search window.
    for seed in 0..32 {
        let unsynced = if seed % 8 == 3 { 2000 } else { 100 };
        let fs = VolatileFileSystem::with_dir(dir).unwrap();
        let config = WalConfig::new(dir)
            .file_system(std::sync::Arc::new(fs.clone()))
            .fsync_policy(kv_wal::FsyncPolicy::Os)
            .max_segment_size(1 << 20);
        let (mut wal, _) = Wal::open(config.clone()).unwrap();
        let records: Vec<Record> = (0..20 + unsynced).map(nth_record).collect();
        for record in &records[..20] {
            wal.append(record).unwrap();
        }
        wal.sync().unwrap();
        // Some of the pages no sync covered are kept, in no order.
        for record in &records[20..] {
            wal.append(record).unwrap();
        }
        fs.keep_unsynced_pages(seed);
        // Each open gets the disk as the cut left it (the same pages for the same seed).
        let after_cut = |mode| {
            WalConfig::new(dir)
                .file_system(std::sync::Arc::new(fs.restart()))
                .recovery_mode(mode)
        };

        let strict_refuses = Wal::open(after_cut(RecoveryMode::Strict)).is_err();
        let mut outcomes = Vec::new();
        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Salvage] {
            let mut recovered = Vec::new();
            let (wal, info) = Wal::open_with(after_cut(mode), Position::START, |_, r| {
                recovered.push(r.to_record(usize::MAX).unwrap())
            })
            .unwrap_or_else(|e| panic!("seed {seed}, {mode:?}: {e}"));
            drop(wal);
            // Every synced record, then a prefix of the rest: never a record after a hole.
            assert!(recovered.len() >= 20, "seed {seed}: {}", recovered.len());
            assert!(
                recovered == records[..recovered.len()],
                "seed {seed}, {mode:?}"
            );
            // Whatever was cut is reported, and only the strict mode refuses it.
            assert_eq!(
                info.bytes_truncated > 0,
                strict_refuses,
                "seed {seed}, {mode:?}"
            );
            if mode == RecoveryMode::TolerateTornTail {
                holes += u64::from(info.corruptions.iter().any(|c| {
                    c.kind == CorruptionKind::Hole && c.action == DamageAction::Truncated
                }));
            }
            outcomes.push(recovered);
        }
        assert_eq!(
            outcomes[0], outcomes[1],
            "seed {seed}: salvage keeps the same prefix"
        );
        drop(wal);
    }
    assert!(holes > 0, "no seed left a hole before kept pages");
}

#[test]
fn salvage_skips_a_damaged_atomic_batch_whole_and_resumes_at_the_next_unit() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let batch = [
        Record::put("batch-a", "first of three"),
        Record::put("batch-b", "second of three"),
        Record::put("batch-c", "third of three"),
    ];
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    let mut records = Vec::new();
    for i in 0..20 {
        wal.append(&nth_record(i)).unwrap();
        records.push(nth_record(i));
    }
    let start = wal.append_atomic(&batch).unwrap();
    for i in 20..200 {
        wal.append(&nth_record(i)).unwrap();
        records.push(nth_record(i));
    }
    assert!(
        wal.current_position().segment > start.segment,
        "the batch is in an older segment"
    );
    wal.close().unwrap();
    // One bit of the first record's value: its header, flags included, still reads.
    let path = segment_path(dir.path(), start.segment);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[start.offset as usize + 12] ^= 0x04;
    std::fs::write(&path, &bytes).unwrap();

    let (recovered, info) = reopen_records(config.recovery_mode(RecoveryMode::Salvage));
    assert_eq!(recovered, records, "none of the batch, every other record");
    assert_eq!(info.corruptions.len(), 1);
    assert_eq!(info.corruptions[0].offset, start.offset);
    let batch_len: usize = batch.iter().map(Record::encoded_len).sum();
    assert_eq!(info.corruptions[0].bytes, batch_len as u64);
}

/// A log whose first segment (older, sealed) holds three records, then an atomic batch of
/// five: a small record, one of 10,000 bytes, three small ones. Returns the records outside
/// the batch, the batch and where it starts.
fn log_with_a_long_batch(config: &WalConfig) -> (Vec<Record>, Vec<Record>, Position) {
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    let mut records: Vec<Record> = (0..3).map(nth_record).collect();
    for record in &records {
        wal.append(record).unwrap();
    }
    let batch = vec![
        Record::put("batch-a", "first of five"),
        Record::put("batch-b", vec![b'v'; 10_000]),
        Record::put("batch-c", "third of five"),
        Record::put("batch-d", "fourth of five"),
        Record::put("batch-e", "fifth of five"),
    ];
    let start = wal.append_atomic(&batch).unwrap();
    wal.rotate().unwrap();
    for i in 3..6 {
        wal.append(&nth_record(i)).unwrap();
        records.push(nth_record(i));
    }
    wal.close().unwrap();
    assert_eq!(start.segment, 0);
    (records, batch, start)
}

/// Two damaged spots in one atomic batch of an older segment: a page of zeros inside its
/// long record, a flipped bit in a later record (and, with `nothing_after`, every byte after
/// that flipped as well, so nothing valid follows the second spot). Returns the offset of
/// each batch record and where the batch ends.
fn damage_the_batch_twice(
    dir: &std::path::Path,
    batch: &[Record],
    start: Position,
    nothing_after: bool,
) -> Vec<u64> {
    let mut offsets = vec![start.offset];
    for record in batch {
        offsets.push(offsets.last().unwrap() + record.encoded_len() as u64);
    }
    let path = segment_path(dir, 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let page = (offsets[1] as usize / 4096 + 1) * 4096;
    assert!(
        page + 4096 < offsets[2] as usize,
        "the page lies inside the long record"
    );
    bytes[page..page + 4096].fill(0);
    let flip_from = offsets[3] as usize + 12;
    let flip_to = if nothing_after {
        bytes.len()
    } else {
        flip_from + 1
    };
    for byte in &mut bytes[flip_from..flip_to] {
        *byte ^= 0x04;
    }
    std::fs::write(&path, &bytes).unwrap();
    offsets
}

#[test]
fn salvage_resumes_after_a_batch_damaged_in_two_places() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path()).max_segment_size(1 << 20);
    let (records, batch, start) = log_with_a_long_batch(&config);
    let offsets = damage_the_batch_twice(dir.path(), &batch, start, false);

    let strict = Wal::open(config.clone()).unwrap_err();
    assert!(
        matches!(strict, Error::Corrupt { segment: 0, .. }),
        "{strict}"
    );
    let (recovered, info) = reopen_records(config.recovery_mode(RecoveryMode::Salvage));
    assert_eq!(recovered, records, "none of the batch, every other record");
    assert_eq!(info.corruptions.len(), 1, "{:?}", info.corruptions);
    let skipped = info.corruptions[0];
    assert_eq!(skipped.segment, 0);
    assert_eq!(skipped.action, DamageAction::Skipped);
    assert_eq!(skipped.bytes, offsets[5] - offsets[0], "the whole batch");
}

#[test]
fn salvage_takes_a_batch_damaged_in_two_places_with_nothing_after_as_the_end_of_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path()).max_segment_size(1 << 20);
    let (records, batch, start) = log_with_a_long_batch(&config);
    damage_the_batch_twice(dir.path(), &batch, start, true);

    let (recovered, info) = reopen_records(config.recovery_mode(RecoveryMode::Salvage));
    assert_eq!(recovered, records, "none of the batch, every other record");
    assert!(
        info.corruptions.iter().any(|c| c.segment == 0
            && c.offset > start.offset
            && c.action == DamageAction::Skipped),
        "{:?}",
        info.corruptions
    );
}

#[test]
fn a_salvage_reader_over_a_batch_damaged_in_two_places_does_not_panic() {
    for nothing_after in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path()).max_segment_size(1 << 20);
        let (records, batch, start) = log_with_a_long_batch(&config);
        damage_the_batch_twice(dir.path(), &batch, start, nothing_after);
        // Replaying from the second segment, the open never scans the damaged one; the
        // reader does.
        let config = config.recovery_mode(RecoveryMode::Salvage);
        let (wal, _) = Wal::open_with(config, Position::new(1, 0), |_, _| {}).unwrap();
        let mut reader = wal.read_from(Position::START).unwrap();
        let read: Vec<Record> = reader
            .by_ref()
            .map(|r| r.map(|(_, record)| record))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, records, "nothing_after: {nothing_after}");
        assert!(!reader.skipped().is_empty());
    }
}
