//! The work done ahead of the writer (`ahead.rs`): a log that appends through write
//! windows has the pages ahead of its appends read into the page cache, inside the space it
//! reserved, and one that writes every append with a system call and syncs it asks for
//! nothing; a log under `FsyncPolicy::Os` syncs a segment before its rotation must, and a
//! failure of that sync stops the log. What it does never changes a record.

mod common;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kv_wal::fs::fault::FaultyFileSystem;
use kv_wal::fs::{FileSystem, OpenMode, StdFileSystem, WalFile, WriteWindow};
use kv_wal::{FsyncPolicy, Record, Wal, WalConfig};

/// The ranges the log asked to warm, with the length the file had been given then.
type Asked = Arc<Mutex<Vec<(u64, u64, u64)>>>;

#[derive(Debug)]
struct Recording {
    inner: Arc<dyn WalFile>,
    asked: Asked,
}

impl WalFile for Recording {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }
    fn data_after(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        self.inner.data_after(offset)
    }
    fn map_window(&self, offset: u64, len: usize) -> io::Result<Option<WriteWindow>> {
        self.inner.map_window(offset, len)
    }
    fn warm(&self, offset: u64, len: u64) -> io::Result<()> {
        let size = self.inner.size()?;
        self.asked
            .lock()
            .unwrap()
            .push((offset, offset + len, size));
        self.inner.warm(offset, len)
    }
}

/// Real files that map write windows whatever file system the test runs on (as on ext4),
/// and record what they are asked to warm.
#[derive(Debug)]
struct RecordingFileSystem {
    inner: FaultyFileSystem,
    asked: Asked,
}

impl FileSystem for RecordingFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn WalFile>> {
        Ok(Arc::new(Recording {
            inner: self.inner.open(path, mode)?,
            asked: Arc::clone(&self.asked),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFileSystem.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFileSystem.read_dir(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFileSystem.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        StdFileSystem.remove_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFileSystem.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdFileSystem.sync_dir(path)
    }
}

const SEGMENT: u64 = 16 << 20;

/// Appends 40,000 records of about 150 bytes (6 MB) under `policy`; returns what the log
/// asked to warm once it is closed (its warmer joined), and checks every record reads back.
/// `warms`: whether the log is expected to warm.
fn appended_under(policy: FsyncPolicy, warms: bool) -> Vec<(u64, u64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let asked = Asked::default();
    let config = WalConfig::new(dir.path())
        .max_segment_size(SEGMENT)
        .fsync_policy(policy)
        .file_system(Arc::new(RecordingFileSystem {
            inner: FaultyFileSystem::with_windows_as_on(0xEF53).0,
            asked: Arc::clone(&asked),
        }));
    let records: Vec<Record> = (0..40_000u64)
        .map(|i| Record::put(format!("key-{i:08}"), vec![i as u8; 128]))
        .collect();
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    for record in &records {
        wal.append(record).unwrap();
    }
    // The close stops the warmer, dropping a request it has not taken: give it a moment
    // to reach past the appends first.
    let reached = || {
        asked
            .lock()
            .unwrap()
            .iter()
            .any(|&(_, to, _)| to > APPENDED)
    };
    let started = Instant::now();
    while warms && !reached() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    wal.close().unwrap();
    let (read, _) = common::reopen_records(config);
    assert!(read == records, "warming changed what the log holds");
    let asked = asked.lock().unwrap().clone();
    asked
}

/// About what [`appended_under`] appends: 40,000 records of 150 bytes.
const APPENDED: u64 = 6_000_000;

#[test]
fn a_windowed_log_warms_ahead_of_its_appends_inside_its_reserved_space() {
    for policy in [
        FsyncPolicy::Os,
        FsyncPolicy::Batch(Duration::from_millis(5)),
    ] {
        let asked = appended_under(policy, true);
        assert!(!asked.is_empty(), "{policy:?}: nothing was warmed");
        for &(from, to, size) in &asked {
            assert!(from < to, "{policy:?}: an empty request {from}..{to}");
            assert!(
                to <= size && size <= SEGMENT,
                "{policy:?}: asked for {from}..{to} of a file of {size} bytes"
            );
        }
        // The requests move forward and reach past the 6 MB appended.
        let ends: Vec<u64> = asked.iter().map(|&(_, to, _)| to).collect();
        assert!(ends.windows(2).all(|w| w[0] < w[1]), "{policy:?}: {ends:?}");
        assert!(*ends.last().unwrap() > APPENDED, "{policy:?}: {ends:?}");
    }
}

#[test]
fn a_log_that_syncs_every_append_warms_nothing() {
    assert_eq!(appended_under(FsyncPolicy::Always, false), vec![]);
}

/// Appends records to `wal` until its active segment holds at least `len` bytes.
fn append_until(wal: &mut Wal, len: u64, next: &mut u64) {
    while wal.current_position().offset < len {
        wal.append(&next_record(next)).unwrap();
    }
}

/// Waits (up to 10 s) until `wal` counts `syncs` background syncs.
fn wait_for_syncs(wal: &Wal, syncs: u64) {
    let started = Instant::now();
    while wal.background_syncs() < syncs {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} background syncs, not {syncs}",
            wal.background_syncs()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The count of background syncs once it stopped changing for 200 ms.
fn settled_syncs(wal: &Wal) -> u64 {
    let mut count = wal.background_syncs();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = wal.background_syncs();
        if now == count {
            return count;
        }
        count = now;
    }
}

/// The smallest segment that is synced ahead.
const SYNCED_AHEAD: u64 = 8 << 20;

/// A new log in `dir` under `FsyncPolicy::Os`, of segments of [`SYNCED_AHEAD`] bytes.
fn buffered_log(dir: &Path) -> (Wal, WalConfig) {
    let config = WalConfig::new(dir)
        .max_segment_size(SYNCED_AHEAD)
        .fsync_policy(FsyncPolicy::Os);
    (Wal::open(config.clone()).unwrap().0, config)
}

/// The next of the records [`append_until`] appends.
fn next_record(next: &mut u64) -> Record {
    *next += 1;
    Record::put(format!("key-{:08}", *next - 1), vec![7u8; 100])
}

#[test]
fn a_buffered_log_syncs_each_eighth_of_a_segment_ahead_of_its_rotation() {
    const SEGMENT: u64 = SYNCED_AHEAD;
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, config) = buffered_log(dir.path());
    let mut next = 0;
    append_until(&mut wal, SEGMENT / 8 - 1024, &mut next);
    assert_eq!(settled_syncs(&wal), 0, "synced before an eighth");
    append_until(&mut wal, SEGMENT / 8, &mut next);
    wait_for_syncs(&wal, 1);
    append_until(&mut wal, SEGMENT - SEGMENT / 8, &mut next);
    wait_for_syncs(&wal, 2);
    assert_eq!(
        wal.current_position().segment,
        0,
        "synced only at the rotation"
    );
    // The next segment gets its own.
    while wal.current_position().segment == 0 {
        wal.append(&next_record(&mut next)).unwrap();
    }
    // Once the syncs asked for in segment 0 are done, segment 1 is synced ahead in turn.
    let synced = settled_syncs(&wal);
    append_until(&mut wal, SEGMENT / 8 - 1024, &mut next);
    assert_eq!(settled_syncs(&wal), synced, "synced before an eighth");
    append_until(&mut wal, SEGMENT / 8, &mut next);
    wait_for_syncs(&wal, synced + 1);
    wal.close().unwrap();
    let (read, _) = common::reopen_records(config);
    assert_eq!(read.len() as u64, next);
}

#[test]
fn a_buffered_log_its_writer_syncs_is_not_synced_again_in_the_background() {
    // `Durability::Sync` in kv-durable: the log is under `Os`, and the writer syncs.
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = buffered_log(dir.path());
    let mut next = 0u64;
    while wal.current_position().offset < SYNCED_AHEAD / 4 {
        for _ in 0..64 {
            wal.append(&next_record(&mut next)).unwrap();
        }
        wal.sync().unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(wal.background_syncs(), 0);
}
