//! The Raft log ([`RaftLogStorage`]) on a kv-wal log of its own, in `DIR/raft/`.
//!
//! Every change is a record appended to the log ([`LogRecord`]): entries, the vote, the
//! committed log id, and markers for `truncate_after` and `purge`; opening replays them in
//! order, so the state after a crash is the one the durable prefix of the log describes
//! (kv-wal cuts a torn tail and refuses damage anywhere else).
//!
//! - `append` writes the entries handed over together with one write system call and hands
//!   the callback to the flusher thread, which takes every callback waiting, syncs the log
//!   once, and only then calls them: one fdatasync for every entry queued meanwhile (group
//!   commit), and no callback before its entries are durable.
//! - `save_vote`, `save_committed`, `truncate_after` and `purge` are synced before they
//!   return: a later write never depends on one that a crash could undo.
//! - `purge` writes its marker together with the current vote and committed log id (one
//!   atomic unit), then deletes only the segments before the one holding the first entry it
//!   keeps: the segments deleted hold nothing replay still needs.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds, RangeInclusive};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use kv_wal::{
    Encoded, FsyncPolicy, Position, Record, RecoveryMode, SizeLimits, Syncer, Wal, WalConfig,
};
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use parking_lot::{Condvar, Mutex};

use crate::error::{off_runtime, Error, Result};
use crate::log_record::{LogModel, LogRecord};
use crate::types::{Entry, LogId, TypeConfig, Vote};

/// Where the Raft log lives inside a node's directory.
pub const RAFT_LOG_DIR: &str = "raft";

/// The default size of the Raft log's segments: a purge frees whole segments.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// The most bytes one record of the Raft log holds (its value: an encoded entry): room for
/// an entry of the largest key and value the store accepts by default
/// ([`crate::MAX_KEY_SIZE`], [`crate::MAX_VALUE_SIZE`]) and then some, so that a request
/// that passes [`crate::Request::validate`] is never refused by the leader's log (which
/// would stop the leader).
pub const MAX_LOG_RECORD_SIZE: usize = 128 << 20;

/// The Raft log of one node. See the module docs.
#[derive(Debug)]
pub struct LogStore {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

/// A reader of the Raft log, for openraft's replication tasks: reads the entries and the
/// vote from memory.
#[derive(Debug, Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

/// Two locks, so that reads never wait for a disk: `inner` (the log file, the callbacks
/// waiting for a sync) is held by writers, across a rotation's syncs or a purge's deletions
/// at worst, never across the fdatasync that makes a write durable (taken with a [`Syncer`]
/// after the lock is released); `model` (what the log holds, which every read is served
/// from) is only ever held for a copy or an update in memory. Lock order: `inner`, then
/// `model`.
#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    model: Mutex<LogModel>,
    /// Set when the [`LogStore`] drops (its log closed, the directory released): readers
    /// still held fail from then on rather than serve a log no one writes.
    closed: AtomicBool,
    /// Wakes the flusher: callbacks are waiting, or the store is closing.
    wake: Condvar,
}

struct Inner {
    /// The log; `None` once the [`LogStore`] dropped and closed it.
    wal: Option<Wal>,
    /// Callbacks of appends written but not yet synced, oldest first.
    pending: Vec<IOFlushed<TypeConfig>>,
    stop: bool,
}

impl Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("wal", &self.wal)
            .field("pending", &self.pending.len())
            .field("stop", &self.stop)
            .finish()
    }
}

impl LogStore {
    /// Opens (creating if needed) the Raft log in `dir/raft/`.
    ///
    /// # Errors
    ///
    /// [`Error::Log`] when the log cannot be opened or is damaged; [`Error::Decode`] or
    /// [`Error::Corrupt`] for a record this crate did not write.
    pub fn open(dir: impl AsRef<Path>) -> Result<LogStore> {
        Self::open_with(
            WalConfig::new(dir.as_ref().join(RAFT_LOG_DIR)).max_segment_size(DEFAULT_SEGMENT_SIZE),
        )
    }

    /// Opens the Raft log with a kv-wal configuration of the caller's (a segment size, a file
    /// system with faults for tests). Its fsync policy is replaced (the store syncs itself),
    /// and so are its size limits: a record holds up to [`MAX_LOG_RECORD_SIZE`] bytes.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); [`Error::InvalidOption`] for [`RecoveryMode::Salvage`].
    pub fn open_with(config: WalConfig) -> Result<LogStore> {
        if config.recovery_mode == RecoveryMode::Salvage {
            // Skipping damaged records would drop entries, votes or markers silently.
            return Err(Error::InvalidOption {
                setting: "recovery_mode",
                reason: "Salvage skips damaged Raft log records without an error",
            });
        }
        let config = config.fsync_policy(FsyncPolicy::Os).limits(SizeLimits {
            max_key_size: kv_wal::DEFAULT_MAX_KEY_SIZE,
            max_value_size: MAX_LOG_RECORD_SIZE,
        });
        let mut model = LogModel::default();
        let mut failure = None;
        let (wal, _recovery) = Wal::open_with(config, Position::START, |position, record| {
            if failure.is_some() {
                return;
            }
            let decoded = record
                .value(usize::MAX)
                .map_err(|kind| Error::Corrupt(format!("a Raft log record at {position}: {kind}")))
                .and_then(|value| LogRecord::from_parts(record.key(), &value));
            match decoded {
                Ok(r) => model.apply(r, position.segment),
                Err(e) => failure = Some(e),
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                wal: Some(wal),
                pending: Vec::new(),
                stop: false,
            }),
            model: Mutex::new(model),
            closed: AtomicBool::new(false),
            wake: Condvar::new(),
        });
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("kv-raft-log-sync".into())
                .spawn(move || flush_loop(&shared))
                .map_err(|e| Error::io("start the Raft log's sync thread for", "raft", e))?
        };
        Ok(LogStore {
            shared,
            flusher: Some(flusher),
        })
    }

    /// A reader of this log (what [`RaftLogStorage::get_log_reader`] returns).
    pub fn reader(&self) -> LogReader {
        LogReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The last purged log id and the last log id.
    pub fn log_state(&self) -> (Option<LogId>, Option<LogId>) {
        let model = self.shared.model.lock();
        (model.last_purged, model.last_log_id())
    }

    /// The segments of the Raft log on disk, oldest first.
    pub fn segments(&self) -> RangeInclusive<u64> {
        match &self.shared.inner.lock().wal {
            Some(wal) => wal.segments(),
            // Closed only when the store drops: not seen through `&self`.
            None => RangeInclusive::new(1, 0),
        }
    }

    /// Appends entries and returns once they are written (not yet synced): what `append`
    /// does before it hands its callback to the flusher.
    fn write_entries(
        &self,
        entries: impl IntoIterator<Item = Entry>,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<()> {
        let mut inner = self.shared.inner.lock();
        let entries: Vec<Entry> = entries.into_iter().collect();
        if !entries.is_empty() {
            let mut encoded = Encoded::new();
            for entry in &entries {
                let record = LogRecord::entry_record(entry);
                inner.wal()?.limits().check(&record)?;
                encoded.push(&record);
            }
            let at = inner.wal()?.append_encoded_to_sync(&encoded)?;
            let mut model = self.shared.model.lock();
            for entry in entries {
                model.apply(LogRecord::Entry(entry), at.segment);
            }
        }
        inner.pending.push(callback);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Appends `records` as one atomic unit, syncs, then applies them to the model.
    fn write_synced(shared: &Shared, records: Vec<LogRecord>) -> Result<()> {
        let records = {
            let mut inner = shared.inner.lock();
            Self::write_locked(&mut inner, records)?
        };
        Self::sync_and_apply(shared, records)
    }

    /// Writes `records` as one atomic unit; returns them with where they went and a syncer.
    fn write_locked(inner: &mut Inner, records: Vec<LogRecord>) -> Result<Written> {
        let encoded: Vec<Record> = records.iter().map(LogRecord::to_record).collect();
        let wal = inner.wal()?;
        let at = wal.append_atomic(&encoded)?;
        Ok(Written {
            records,
            segment: at.segment,
            syncer: wal.syncer(),
        })
    }

    /// Syncs what [`write_locked`](Self::write_locked) wrote, with no lock held (reads and
    /// the flusher go on meanwhile), then shows it in the model: a change is visible only
    /// once durable. openraft makes these calls one at a time and waits for each, so no
    /// other write comes between the write and the model's update.
    fn sync_and_apply(shared: &Shared, written: Written) -> Result<()> {
        written.syncer.sync()?;
        let mut model = shared.model.lock();
        for record in written.records {
            model.apply(record, written.segment);
        }
        Ok(())
    }

    fn purge_synced(shared: &Shared, upto: LogId) -> Result<()> {
        let written = {
            let mut inner = shared.inner.lock();
            // The marker goes with the vote and the committed log id, so that the segments
            // deleted below hold no record replay still needs.
            let mut records = vec![LogRecord::Purge(upto)];
            {
                let model = shared.model.lock();
                if let Some(vote) = model.vote {
                    records.push(LogRecord::Vote(vote));
                }
                if let Some(committed) = model.committed {
                    records.push(LogRecord::Committed(Some(committed)));
                }
            }
            Self::write_locked(&mut inner, records)?
        };
        Self::sync_and_apply(shared, written)?;
        // Everything before the segment of the first entry kept (or the active segment, which
        // holds the marker) is superseded: older entries, markers, votes. The deletions (a
        // directory sync each) hold the writers' lock only: reads are served meanwhile.
        let deleted = {
            let mut inner = shared.inner.lock();
            let first_kept = shared
                .model
                .lock()
                .entries
                .first_key_value()
                .map(|(_, s)| s.segment);
            let wal = inner.wal()?;
            let keep_from = first_kept.unwrap_or(wal.current_position().segment);
            wal.delete_segments_before(Position::new(keep_from, 0))?
        };
        // The writers' lock released: the file system frees the segments' blocks now.
        drop(deleted);
        Ok(())
    }
}

/// Records written and not yet synced: where they went and how to sync them.
struct Written {
    records: Vec<LogRecord>,
    segment: u64,
    syncer: Syncer,
}

impl LogStore {
    /// Writes `records` and syncs them on a thread of the blocking pool: an fdatasync never
    /// holds up a thread of the runtime that runs openraft's core (and the server).
    async fn synced(&self, records: Vec<LogRecord>) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        off_runtime(move || LogStore::write_synced(&shared, records)).await
    }
}

impl Inner {
    fn wal(&mut self) -> Result<&mut Wal> {
        self.wal.as_mut().ok_or(Error::Closed)
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        self.shared.inner.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        // Readers may outlive the store (openraft's replication tasks hold clones): the log
        // is closed now, its directory lock released, and they fail from here on.
        self.shared.closed.store(true, Ordering::Release);
        if let Some(wal) = self.shared.inner.lock().wal.take() {
            // Everything acknowledged was synced already; a failure here loses nothing.
            let _ = wal.close();
        }
    }
}

/// The flusher: takes every waiting callback, syncs once, calls them.
fn flush_loop(shared: &Shared) {
    loop {
        let (callbacks, syncer) = {
            let mut inner = shared.inner.lock();
            while inner.pending.is_empty() && !inner.stop {
                shared.wake.wait(&mut inner);
            }
            if inner.pending.is_empty() {
                return;
            }
            // Every callback taken belongs to an append written before this syncer was made:
            // to its segment, or to an older one that its rotation synced.
            let syncer = inner.wal.as_ref().map(Wal::syncer);
            (std::mem::take(&mut inner.pending), syncer)
        };
        let result = match syncer {
            Some(syncer) => syncer
                .sync()
                .map_err(|e| kv_wal::with_causes(&e).to_string()),
            None => Err(Error::Closed.to_string()),
        };
        for callback in callbacks {
            callback.io_completed(result.clone().map_err(io::Error::other));
        }
    }
}

impl LogReader {
    /// The bytes of records the log holds on disk (0 once closed): what a snapshot and
    /// the purge after it would free.
    pub fn log_bytes(&self) -> u64 {
        self.shared
            .inner
            .lock()
            .wal
            .as_ref()
            .map_or(0, |wal| wal.log_bytes())
    }

    /// Refuses reads once the [`LogStore`] dropped.
    fn open(&self) -> io::Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed.into());
        }
        Ok(())
    }

    fn entries(&self, range: impl RangeBounds<u64>) -> Vec<Entry> {
        let Some(range) = inclusive(&range) else {
            return Vec::new();
        };
        let model = self.shared.model.lock();
        model
            .entries
            .range(range)
            .map(|(_, s)| s.entry.clone())
            .collect()
    }
}

/// `range` as an inclusive range of indexes, or `None` when it holds none: any bounds a
/// caller passes (`BTreeMap::range` panics on some empty ones).
fn inclusive(range: &impl RangeBounds<u64>) -> Option<std::ops::RangeInclusive<u64>> {
    let first = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let last = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (first <= last).then_some(first..=last)
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        self.open()?;
        Ok(self.entries(range))
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.open()?;
        Ok(self.shared.model.lock().vote)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        Ok(self.reader().entries(range))
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        Ok(self.shared.model.lock().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let (last_purged_log_id, last_log_id) = self.log_state();
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.synced(vec![LogRecord::Vote(*vote)]).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        self.synced(vec![LogRecord::Committed(committed)]).await
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.shared.model.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        Ok(self.write_entries(entries, callback)?)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        self.synced(vec![LogRecord::TruncateAfter(last_log_id)])
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        off_runtime(move || LogStore::purge_synced(&shared, log_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::inclusive;
    use std::ops::Bound::{Excluded, Included, Unbounded};

    #[test]
    fn any_bounds_give_an_inclusive_range_or_none() {
        assert_eq!(inclusive(&(3..7)), Some(3..=6));
        assert_eq!(inclusive(&(..)), Some(0..=u64::MAX));
        assert_eq!(inclusive(&(5..5)), None);
        assert_eq!(inclusive(&(Included(7), Excluded(3))), None);
        assert_eq!(inclusive(&(..0)), None);
        assert_eq!(inclusive(&(Excluded(5), Excluded(5))), None);
        assert_eq!(inclusive(&(Excluded(5), Included(6))), Some(6..=6));
        assert_eq!(inclusive(&(Excluded(u64::MAX), Unbounded)), None);
    }
}
