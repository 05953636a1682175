//! Injected I/O faults: a failed write or fsync stops the log; a full disk fails the write
//! involved and nothing acknowledged is lost.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{nth_record, reopen_records};
use kv_wal::fs::fault::{Fault, Faults, FaultyFileSystem, Op};
use kv_wal::{Error, FsyncPolicy, Record, Wal, WalConfig};

fn faulty(dir: &std::path::Path, policy: FsyncPolicy) -> (WalConfig, Faults) {
    let (fs, faults) = FaultyFileSystem::new();
    let config = WalConfig::new(dir)
        .max_segment_size(4096)
        .fsync_policy(policy)
        .file_system(Arc::new(fs));
    (config, faults)
}

fn plain(dir: &std::path::Path) -> WalConfig {
    WalConfig::new(dir).max_segment_size(4096)
}

#[test]
fn a_failed_fsync_stops_the_log_and_is_never_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
    let (mut wal, _) = Wal::open(config).unwrap();
    wal.append(&nth_record(0)).unwrap();
    faults.fail_once(Op::Sync, 0, Fault::Error(std::io::ErrorKind::Other));
    let err = wal.append(&nth_record(1)).unwrap_err();
    assert!(
        matches!(&err, Error::Poisoned { cause } if cause.contains("fdatasync")),
        "{err}"
    );
    let syncs = faults.count(Op::Sync);
    assert!(matches!(wal.sync(), Err(Error::Poisoned { .. })));
    assert!(matches!(
        wal.append(&nth_record(2)),
        Err(Error::Poisoned { .. })
    ));
    assert_eq!(
        faults.count(Op::Sync),
        syncs,
        "the failed fsync was retried"
    );
    assert!(wal.close().is_err(), "close reports the failure");
    // What reached the file is still readable; the acknowledged record is there.
    let (records, _) = reopen_records(plain(dir.path()));
    assert_eq!(records[0], nth_record(0));
    assert!(records.len() <= 2);
}

#[test]
fn a_failed_background_fsync_stops_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Batch(Duration::from_millis(5)));
    let (mut wal, _) = Wal::open(config).unwrap();
    faults.fail_always(Op::Sync, 0, Fault::Error(std::io::ErrorKind::Other));
    wal.append(&nth_record(0)).unwrap();
    let mut waited = 0;
    while wal.append(&nth_record(1)).is_ok() {
        std::thread::sleep(Duration::from_millis(5));
        waited += 1;
        assert!(waited < 400, "the flusher never failed");
    }
    let err = wal.append(&nth_record(2)).unwrap_err();
    assert!(
        matches!(&err, Error::Poisoned { cause } if cause.contains("background")),
        "{err}"
    );
}

#[test]
fn a_failed_sync_ahead_of_a_rotation_stops_the_log() {
    // Under `Os`, a segment is synced in the background each time another eighth of a
    // segment was appended: a failure there stops the log as any failed sync does, before
    // the rotation.
    const SEGMENT: u64 = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Os);
    let (mut wal, _) = Wal::open(config.max_segment_size(SEGMENT)).unwrap();
    faults.fail_always(Op::Sync, 0, Fault::Error(std::io::ErrorKind::Other));
    let mut i = 0;
    while wal.current_position().offset < SEGMENT / 8 {
        wal.append(&nth_record(i)).unwrap();
        i += 1;
    }
    assert_eq!(wal.current_position().segment, 0);
    let started = Instant::now();
    while faults.count(Op::Sync) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no sync ahead of the rotation"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut refused = None;
    while refused.is_none() && started.elapsed() < Duration::from_secs(10) {
        refused = wal.append(&nth_record(i)).err();
        std::thread::sleep(Duration::from_millis(1));
    }
    let err = refused.expect("the log went on after its sync failed");
    assert!(
        matches!(&err, Error::Poisoned { cause } if cause.contains("background")),
        "{err}"
    );
    assert!(wal.sync().is_err(), "a sync after the failure succeeded");
}

#[test]
fn a_sync_beside_a_failing_background_sync_reports_the_failure() {
    // Linux reports a failed writeback to one fdatasync of an open file: a writer's sync
    // running beside the flusher's failing one must not come back with a success.
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Batch(Duration::from_millis(1)));
    let (mut wal, _) = Wal::open(config).unwrap();
    faults.fail_once(Op::Sync, 0, Fault::SlowError { millis: 300 });
    wal.append(&nth_record(0)).unwrap();
    let started = std::time::Instant::now();
    while faults.count(Op::Sync) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no background sync"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The background sync is failing now; with the fault spent, a sync of the file itself
    // would succeed.
    let err = wal.sync().unwrap_err();
    assert!(
        matches!(&err, Error::Poisoned { cause } if cause.contains("background")),
        "{err}"
    );
}

#[test]
fn a_failed_write_stops_the_log_and_leaves_no_partial_record() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
    let (mut wal, _) = Wal::open(config).unwrap();
    for i in 0..5 {
        wal.append(&nth_record(i)).unwrap();
    }
    faults.fail_once(Op::Write, 0, Fault::TornWrite { keep: 7 });
    assert!(matches!(
        wal.append(&nth_record(5)),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(
        wal.append(&nth_record(6)),
        Err(Error::Poisoned { .. })
    ));
    drop(wal);
    let (records, info) = reopen_records(plain(dir.path()));
    assert_eq!(records, (0..5).map(nth_record).collect::<Vec<_>>());
    assert!(
        info.corruptions.is_empty(),
        "the partial bytes were cut at once"
    );
}

#[test]
fn a_full_disk_fails_only_the_writes_involved() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
    let (mut wal, _) = Wal::open(config).unwrap();
    wal.append(&nth_record(0)).unwrap();
    faults.fail_once(Op::Write, 0, Fault::DiskFull);
    let err = wal.append(&nth_record(1)).unwrap_err();
    assert!(matches!(err, Error::StorageFull { .. }), "{err}");
    assert!(err.to_string().contains("no space"));
    // Space is back: writing goes on after the acknowledged record.
    wal.append(&nth_record(2)).unwrap();
    wal.close().unwrap();
    let (records, info) = reopen_records(plain(dir.path()));
    assert_eq!(records, [nth_record(0), nth_record(2)]);
    assert!(info.corruptions.is_empty());
}

/// Appends the test sequence until an append fails; returns what was acknowledged, the
/// number of the record refused, and why.
fn append_until_error(wal: &mut Wal) -> (Vec<Record>, u64, Error) {
    let mut acknowledged = Vec::new();
    let mut i = 0;
    loop {
        match wal.append(&nth_record(i)) {
            Ok(_) => acknowledged.push(nth_record(i)),
            Err(e) => return (acknowledged, i, e),
        }
        i += 1;
    }
}

/// Once the fault is gone: 200 more appends from record `from` succeed in new segments, and
/// the reopened log holds exactly the `acknowledged` records and those.
fn goes_on_in_new_segments(
    mut wal: Wal,
    dir: &std::path::Path,
    mut acknowledged: Vec<Record>,
    from: u64,
) {
    for j in from..from + 200 {
        wal.append(&nth_record(j)).unwrap();
        acknowledged.push(nth_record(j));
    }
    assert!(
        *wal.segments().end() >= 1,
        "writing went on in new segments"
    );
    wal.close().unwrap();
    let (records, info) = reopen_records(plain(dir));
    assert_eq!(records, acknowledged);
    assert!(info.corruptions.is_empty());
}

#[test]
fn a_full_disk_when_a_segment_fills_fails_only_the_writes_until_there_is_space() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
    let (mut wal, _) = Wal::open(config).unwrap();
    faults.fail_always(Op::Open, 0, Fault::DiskFull);
    let (acknowledged, i, err) = append_until_error(&mut wal);
    assert!(matches!(err, Error::StorageFull { .. }), "{err}");
    assert_eq!(wal.segments(), 0..=0, "no segment was started");
    assert!(
        wal.append(&nth_record(i)).is_err(),
        "still full, still refused"
    );
    faults.clear();
    goes_on_in_new_segments(wal, dir.path(), acknowledged, i + 1);
}

#[test]
fn a_segment_that_cannot_be_created_fails_only_the_writes_that_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
    let (mut wal, _) = Wal::open(config).unwrap();
    // The directory made read-only: creating a file fails, nothing is made.
    faults.fail_always(
        Op::Open,
        0,
        Fault::Error(std::io::ErrorKind::PermissionDenied),
    );
    let (acknowledged, i, err) = append_until_error(&mut wal);
    assert!(
        matches!(&err, Error::SegmentNotCreated { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied),
        "{err}"
    );
    assert!(wal.rotate().is_err(), "still no segment can be made");
    assert_eq!(wal.segments(), 0..=0, "no segment was started");
    faults.clear();
    goes_on_in_new_segments(wal, dir.path(), acknowledged, i);
}

#[test]
fn a_failed_directory_fsync_when_a_segment_fills_stops_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
    let (mut wal, _) = Wal::open(config).unwrap();
    faults.fail_once(Op::SyncDir, 0, Fault::Error(std::io::ErrorKind::Other));
    let (acknowledged, i, err) = append_until_error(&mut wal);
    // The cause says what failed and why, down to the operating system's error.
    assert!(
        matches!(&err, Error::Poisoned { cause }
            if cause.contains("new segment") && cause.contains("injected fault")),
        "{err}"
    );
    let dir_syncs = faults.count(Op::SyncDir);
    for j in i..i + 3 {
        assert!(matches!(
            wal.append(&nth_record(j)),
            Err(Error::Poisoned { .. })
        ));
    }
    assert!(matches!(wal.rotate(), Err(Error::Poisoned { .. })));
    assert_eq!(
        faults.count(Op::SyncDir),
        dir_syncs,
        "the failed fsync was retried"
    );
    drop(wal);
    assert!(
        !dir.path().join("000001.wal").exists(),
        "the half-made segment was removed"
    );
    let (records, _) = reopen_records(plain(dir.path()));
    assert_eq!(records, acknowledged);
}

#[test]
fn a_half_made_segment_that_cannot_be_removed_stops_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
    let (mut wal, _) = Wal::open(config).unwrap();
    let acknowledged: Vec<Record> = (0..3).map(nth_record).collect();
    for record in &acknowledged {
        wal.append(record).unwrap();
    }
    // The next segment's file is made; writing its opening fails, and so does removing it.
    faults.fail_once(Op::Write, 0, Fault::Error(std::io::ErrorKind::Other));
    faults.fail_once(
        Op::Remove,
        0,
        Fault::Error(std::io::ErrorKind::PermissionDenied),
    );
    let err = wal.rotate().unwrap_err();
    assert!(
        matches!(&err, Error::Poisoned { cause } if cause.contains("removing it again failed")),
        "{err}"
    );
    assert!(
        dir.path().join("000001.wal").exists(),
        "the faults left the file behind"
    );
    // Stopped, not failing each later rotation on the name the leftover takes.
    assert!(matches!(wal.rotate(), Err(Error::Poisoned { .. })));
    for j in 3..6 {
        assert!(matches!(
            wal.append(&nth_record(j)),
            Err(Error::Poisoned { .. })
        ));
    }
    drop(wal);
    let (records, _) = reopen_records(plain(dir.path()));
    assert_eq!(records, acknowledged);
}

/// A log of four segments, three records each (opened on `config`); returns the records.
fn four_segments(config: WalConfig) -> (Wal, Vec<Record>) {
    let (mut wal, _) = Wal::open(config).unwrap();
    let mut written = Vec::new();
    for i in 0..12 {
        if i > 0 && i % 3 == 0 {
            wal.rotate().unwrap();
        }
        wal.append(&nth_record(i)).unwrap();
        written.push(nth_record(i));
    }
    assert_eq!(wal.segments(), 0..=3);
    (wal, written)
}

#[test]
fn a_failed_directory_sync_after_deleting_a_segment_stops_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
    let (mut wal, written) = four_segments(config);
    faults.fail_once(Op::SyncDir, 0, Fault::Error(std::io::ErrorKind::Other));
    let err = wal
        .delete_segments_before(kv_wal::Position::new(3, 0))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Poisoned { cause } if cause.contains("was deleted") && cause.contains("unknown")),
        "{err}"
    );
    assert!(!dir.path().join("000000.wal").exists());
    assert!(
        dir.path().join("000001.wal").exists(),
        "deleting went on after the failed sync"
    );
    assert_eq!(wal.segments(), 1..=3, "the deleted segment is not counted");
    let removals = faults.count(Op::Remove);
    let dir_syncs = faults.count(Op::SyncDir);
    assert!(matches!(
        wal.delete_segments_before(kv_wal::Position::new(3, 0)),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(
        wal.append(&nth_record(12)),
        Err(Error::Poisoned { .. })
    ));
    assert_eq!(
        faults.count(Op::Remove),
        removals,
        "deleted after the failure"
    );
    assert_eq!(faults.count(Op::SyncDir), dir_syncs, "the sync was retried");
    drop(wal);
    let (records, _) = reopen_records(plain(dir.path()));
    assert_eq!(records, written[3..], "no gap, nothing acknowledged lost");
}

#[test]
fn a_segment_that_cannot_be_deleted_stays_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
    let (mut wal, mut written) = four_segments(config);
    faults.fail_once(
        Op::Remove,
        1,
        Fault::Error(std::io::ErrorKind::PermissionDenied),
    );
    let err = wal
        .delete_segments_before(kv_wal::Position::new(3, 0))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Io {
                action: "delete segment",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(wal.segments(), 1..=3, "segment 0 went, 1 stayed");
    wal.append(&nth_record(12)).unwrap();
    written.push(nth_record(12));
    assert_eq!(
        wal.delete_segments_before(kv_wal::Position::new(3, 0))
            .unwrap()
            .count(),
        2
    );
    wal.close().unwrap();
    let (records, _) = reopen_records(plain(dir.path()));
    assert_eq!(records, written[9..]);
}

/// Writes the test sequence (with an atomic batch every tenth write) until an append fails;
/// returns what was acknowledged.
fn write_until_failure(config: WalConfig) -> Vec<Record> {
    let mut acknowledged = Vec::new();
    let Ok((mut wal, _)) = Wal::open(config) else {
        return acknowledged;
    };
    for i in 0..120 {
        let unit = if i % 10 == 9 {
            vec![nth_record(i), Record::put("batch-end", format!("{i}"))]
        } else {
            vec![nth_record(i)]
        };
        if wal.append_atomic(&unit).is_err() {
            break;
        }
        acknowledged.extend(unit);
    }
    acknowledged
}

#[test]
fn a_failure_at_any_write_sync_or_file_call_keeps_every_acknowledged_record() {
    let clean = tempfile::tempdir().unwrap();
    let full = write_until_failure(plain(clean.path()).fsync_policy(FsyncPolicy::Always));
    assert_eq!(full.len(), 132);

    for op in [
        Op::Write,
        Op::Sync,
        Op::SetLen,
        Op::Allocate,
        Op::Open,
        Op::SyncDir,
    ] {
        for skip in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
            faults.fail_always(op, skip, Fault::Error(std::io::ErrorKind::Other));
            let acknowledged = write_until_failure(config);
            if !dir.path().join("000000.wal").exists() {
                assert!(acknowledged.is_empty());
                continue;
            }
            let (records, _) = reopen_records(plain(dir.path()));
            assert!(
                records.len() >= acknowledged.len()
                    && records[..acknowledged.len()] == acknowledged[..],
                "{op:?} #{skip}: lost acknowledged records"
            );
            assert_eq!(
                records[..],
                full[..records.len()],
                "{op:?} #{skip}: not a prefix"
            );
        }
    }
}

#[test]
fn close_syncs_before_it_cuts_the_preallocated_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Os);
    let (mut wal, _) = Wal::open(config).unwrap();
    for i in 0..10 {
        wal.append(&nth_record(i)).unwrap();
    }
    let syncs = faults.count(Op::Sync);
    faults.fail_once(Op::SetLen, 0, Fault::Error(std::io::ErrorKind::Other));
    let err = wal.close().unwrap_err();
    assert!(
        faults.count(Op::Sync) > syncs,
        "the records were not synced: {err}"
    );
    assert!(err.to_string().contains("every record is synced"), "{err}");
    let (records, _) = reopen_records(plain(dir.path()));
    assert_eq!(records, (0..10).map(nth_record).collect::<Vec<_>>());
}

#[test]
fn sync_within_syncs_in_the_background_within_the_window_under_any_policy() {
    const WINDOW: Duration = Duration::from_millis(50);
    // Far above the window, for a loaded machine, and far below the 10 s the Batch log
    // would take by itself: a sync that came this late did not keep the window.
    const BOUND: Duration = Duration::from_secs(2);
    for policy in [FsyncPolicy::Os, FsyncPolicy::Batch(Duration::from_secs(10))] {
        let dir = tempfile::tempdir().unwrap();
        let (config, faults) = faulty(dir.path(), policy);
        let (mut wal, _) = Wal::open(config).unwrap();
        wal.append(&nth_record(0)).unwrap();
        let syncs = faults.count(Op::Sync);
        let asked = Instant::now();
        wal.sync_within(WINDOW).unwrap();
        // Waits past the Batch window, so a test that fails says when the sync came, if ever.
        while faults.count(Op::Sync) == syncs && asked.elapsed() < Duration::from_secs(12) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let took = asked.elapsed();
        assert!(faults.count(Op::Sync) > syncs, "{policy:?}: never synced");
        assert!(
            took < BOUND,
            "{policy:?}: synced {took:?} after a {WINDOW:?} window"
        );
        wal.close().unwrap();
    }
}

#[test]
fn a_file_system_off_the_allow_list_gets_no_write_window_and_appends_go_by_pwrite() {
    // ext4 is on the list; overlayfs (Docker's) and FUSE report their own type whatever
    // lies below them, so they are not.
    for (fs_type, windowed) in [(0xEF53, true), (0x794C_7630, false), (0x6573_5546, false)] {
        let dir = tempfile::tempdir().unwrap();
        let (fs, faults) = FaultyFileSystem::with_windows_as_on(fs_type);
        let config = WalConfig::new(dir.path())
            .max_segment_size(1 << 20)
            .fsync_policy(FsyncPolicy::Os)
            .file_system(Arc::new(fs));
        let (mut wal, _) = Wal::open(config).unwrap();
        for i in 0..100 {
            wal.append(&nth_record(i)).unwrap();
        }
        let writes = faults.count(Op::Write);
        if windowed {
            assert_eq!(
                writes, 0,
                "{fs_type:#x}: appends were not copied into a window"
            );
        } else {
            assert_eq!(writes, 100, "{fs_type:#x}: appends did not go by pwrite");
        }
        wal.close().unwrap();
        let (records, info) = reopen_records(plain(dir.path()));
        assert_eq!(records, (0..100).map(nth_record).collect::<Vec<_>>());
        assert!(info.corruptions.is_empty());
    }
}

#[test]
fn recovery_drops_the_cached_pages_of_the_newest_segment_before_reading_it() {
    // After a failed fdatasync the kernel keeps the pages it could not write, clean, in the
    // page cache: reading them on reopen would take them for data on disk.
    let dir = tempfile::tempdir().unwrap();
    let (config, faults) = faulty(dir.path(), FsyncPolicy::Always);
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    for i in 0..300 {
        wal.append(&nth_record(i)).unwrap();
    }
    let segments = wal.segments().count();
    assert!(segments > 1);
    drop(wal);
    assert_eq!(
        faults.count(Op::DropCache),
        0,
        "nothing dropped while writing"
    );
    let (records, _) = reopen_records(config);
    assert_eq!(records.len(), 300);
    assert_eq!(faults.count(Op::DropCache), 1, "only the newest segment's");
}
