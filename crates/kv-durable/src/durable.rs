//! The durable store: the log, the group commit, and the state they feed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kv_core::{Expiry, Op};
use kv_wal::{
    Compression, Encoded, FsyncPolicy, Position, Record, RecordKind, RecoveryInfo, SizeLimits, Wal,
    WalConfig,
};
use parking_lot::Mutex;

use crate::convert::{give_back, lend, op_of};
use crate::error::{Error, Result, Shared};
use crate::group_commit::{Committed, GroupCommit, Member, Unit};
use crate::options::{Durability, Options, WriteOptions};
use crate::sink::Sink;
use crate::stats::{CommitStats, Recorder};

/// What opening found and replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// What the log's recovery scan found.
    pub recovery: RecoveryInfo,
    /// Records applied to the state.
    pub replayed: u64,
    /// Puts dropped because their deadline had passed.
    pub expired_dropped: u64,
    /// How long opening took, recovery and replay included (they are one pass).
    pub duration: Duration,
}

impl std::fmt::Display for OpenReport {
    /// One line: the records replayed, the segments and bytes scanned, what was dropped or
    /// cut, and the time taken; each piece of damage found is in `recovery.corruptions`.
    ///
    /// ```
    /// use kv_core::{IndexKind, State};
    /// use kv_durable::{Durable, Options};
    /// use kv_wal::{Position, WalConfig};
    /// use parking_lot::RwLock;
    /// # fn main() -> Result<(), kv_durable::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let open = || {
    ///     let state = RwLock::new(State::new(IndexKind::Hash));
    ///     Durable::open(WalConfig::new(dir.path()), Position::START, state, Options::default())
    /// };
    /// let (store, _) = open()?;
    /// store.put("k", "v")?;
    /// store.close()?;
    /// let (_, report) = open()?;
    /// assert!(report.to_string().starts_with("replayed 1 record from 1 segment ("), "{report}");
    /// # Ok(())
    /// # }
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: u64, what: &str| {
            if n == 1 {
                format!("1 {what}")
            } else {
                format!("{n} {what}s")
            }
        };
        write!(
            f,
            "replayed {} from {} ({} bytes) in {:.1} ms",
            plural(self.replayed, "record"),
            plural(self.recovery.segments_scanned, "segment"),
            self.recovery.bytes_scanned,
            self.duration.as_secs_f64() * 1e3
        )?;
        if self.expired_dropped > 0 {
            write!(
                f,
                "; {} past their deadline dropped",
                plural(self.expired_dropped, "put")
            )?;
        }
        if self.recovery.bytes_truncated > 0 {
            write!(
                f,
                "; {} bytes of torn tail cut",
                self.recovery.bytes_truncated
            )?;
        }
        if !self.recovery.corruptions.is_empty() {
            write!(
                f,
                "; {} found",
                plural(self.recovery.corruptions.len() as u64, "damaged stretch")
            )?;
        }
        Ok(())
    }
}

/// The sizes a write is checked against.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// A put's: the store's limits.
    writes: SizeLimits,
    /// A delete's key: what the log reads back. A delete stores nothing, and a key written
    /// under a higher limit must stay deletable (and evictable) once the limit is lowered.
    reading: SizeLimits,
}

impl Limits {
    fn check(&self, record: &Record) -> kv_wal::Result<()> {
        match record.kind {
            RecordKind::Put => self.writes.check(record),
            RecordKind::Delete => self.reading.check(record),
        }
    }
}

/// A write encoded by [`Durable::encode`], not yet in the log.
#[derive(Debug)]
pub struct EncodedWrite {
    encoded: Encoded,
    ops: Vec<Op>,
    sync: bool,
    sync_within: Option<Duration>,
}

impl EncodedWrite {
    /// The write's operations.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The unit a writer submits, timed from now: a write's latency counts from when it is
    /// handed to the group commit, not from its encoding (its caller may wait for locks or
    /// for room in between, which is not the commit's time).
    fn submitted_now(self) -> Unit {
        Unit {
            encoded: self.encoded,
            ops: self.ops,
            sync: self.sync,
            sync_within: self.sync_within,
            submitted: Instant::now(),
        }
    }
}

/// The log and what is kept beside it, owned by whichever thread leads the current group.
#[derive(Debug)]
struct Log {
    wal: Wal,
    /// Where a group of several units is joined before its one append.
    joined: Encoded,
    recorder: Recorder,
}

#[derive(Debug)]
struct Inner<S> {
    log: Mutex<Option<Log>>,
    group: GroupCommit,
    sink: S,
    options: Options,
    limits: Limits,
}

/// A state made durable by a log: every write is in the log before the state shows it, and
/// reopening the directory replays the log into a fresh state.
///
/// Cloning is cheap and every clone is the same store.
#[derive(Debug)]
pub struct Durable<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Durable<S> {
    fn clone(&self) -> Self {
        Durable {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Sink> Durable<S> {
    /// Opens the log `wal` describes (its fsync policy is set from `options.durability`),
    /// replaying every record from `from` into `sink`.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] when the log cannot be opened or recovered (locked, damaged where
    /// the recovery mode does not repair, a bad configuration, an I/O error); the data on
    /// disk was not changed.
    pub fn open(
        wal: WalConfig,
        from: Position,
        sink: S,
        options: Options,
    ) -> Result<(Self, OpenReport)> {
        let started = Instant::now();
        let wal = wal
            .fsync_policy(match options.durability {
                Durability::Sync | Durability::None => FsyncPolicy::Os,
                Durability::Batch(window) => FsyncPolicy::Batch(window),
            })
            // A store that syncs every write is faster writing with system calls.
            .write_window(options.durability != Durability::Sync);
        let now = options.clock.now_ms();
        // Writes are checked against `options.limits`; the log reads back records up to
        // those or its own limits, whichever are higher, so it reads every record written.
        let limits = Limits {
            writes: options.limits,
            reading: wal.limits.at_least(options.limits),
        };
        let wal = wal.limits(limits.reading);
        let mut report = OpenReport::default();
        let (wal, replayed) = replay_log(wal, from, &sink, now)?;
        report.recovery = replayed.recovery;
        report.replayed = replayed.records;
        report.expired_dropped = replayed.expired_dropped;
        report.duration = started.elapsed();
        let inner = Inner {
            log: Mutex::new(Some(Log {
                wal,
                joined: Encoded::new(),
                recorder: Recorder::default(),
            })),
            group: GroupCommit::default(),
            sink,
            options,
            limits,
        };
        Ok((
            Durable {
                inner: Arc::new(inner),
            },
            report,
        ))
    }

    /// The state, to read from.
    pub fn sink(&self) -> &S {
        &self.inner.sink
    }

    /// The store-wide options.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The current time of the store's clock, in unix ms.
    pub fn now_ms(&self) -> u64 {
        self.inner.options.clock.now_ms()
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed; [`Error::TooLarge`] over `Options::limits`;
    /// [`Error::StorageFull`] and [`Error::Io`] when nothing was written and the store goes
    /// on; [`Error::Failed`] or [`Error::Panicked`] once the log failed or a commit
    /// panicked: every later write is refused.
    pub fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<()> {
        self.write(vec![Op::put(key, value)], WriteOptions::default())
    }

    /// Sets `key` to `value` until `ttl` from now.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed; [`Error::TooLarge`] over `Options::limits`;
    /// [`Error::StorageFull`] and [`Error::Io`] when nothing was written and the store goes
    /// on; [`Error::Failed`] or [`Error::Panicked`] once the log failed or a commit
    /// panicked: every later write is refused.
    pub fn put_with_ttl(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        ttl: Duration,
    ) -> Result<()> {
        let deadline = self
            .now_ms()
            .saturating_add(ttl.as_millis().min(u128::from(u64::MAX)) as u64);
        let op = Op::Put {
            key: key.into(),
            value: value.into(),
            expiry: Expiry::AtUnixMillis(deadline),
        };
        self.write(vec![op], WriteOptions::default())
    }

    /// Deletes `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed; [`Error::TooLarge`] over what the log reads back,
    /// not over `Options::limits` (a delete stores nothing: a key written under a higher
    /// limit stays deletable, up to the longest key the log reads back);
    /// [`Error::StorageFull`] and [`Error::Io`] when nothing was written and the store goes
    /// on; [`Error::Failed`] or [`Error::Panicked`] once the log failed or a commit
    /// panicked: every later write is refused.
    pub fn delete(&self, key: impl Into<Bytes>) -> Result<()> {
        self.write(vec![Op::delete(key)], WriteOptions::default())
    }

    /// Writes `ops` as one atomic batch: after any crash, all of them or none are there.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed; [`Error::TooLarge`] for a put over `Options::limits`
    /// or a delete over what the log reads back (see [`Durable::delete`]);
    /// [`Error::StorageFull`] and [`Error::Io`] when nothing was written and the store goes
    /// on; [`Error::Failed`] or [`Error::Panicked`] once the log failed or a commit
    /// panicked: every later write is refused.
    pub fn write(&self, ops: Vec<Op>, options: WriteOptions) -> Result<()> {
        match self.encode(ops, options)? {
            Some(encoded) => self.write_encoded(encoded),
            None => Ok(()),
        }
    }

    /// The first half of [`Durable::write`]: encodes `ops` and checks them against the
    /// limits, touching neither the log nor the state (`None` for no ops). A caller that
    /// holds locks of its own over a write can encode before taking them.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`], as for [`Durable::write`].
    pub fn encode(&self, ops: Vec<Op>, options: WriteOptions) -> Result<Option<EncodedWrite>> {
        if ops.is_empty() {
            return Ok(None);
        }
        self.encode_ops(ops, options).map(Some)
    }

    /// Whether a put of a key and value of these lengths is within the limits, checked
    /// without encoding it.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] over `Options::limits`.
    pub fn check_put(&self, key_len: usize, value_len: usize) -> Result<()> {
        self.inner
            .limits
            .writes
            .check_lengths(key_len, value_len)
            .map_err(|e| Error::TooLarge(e.into()))
    }

    /// The second half of [`Durable::write`]: writes what [`Durable::encode`] made.
    ///
    /// # Errors
    ///
    /// Those of [`Durable::write`] but [`Error::TooLarge`].
    pub fn write_encoded(&self, encoded: EncodedWrite) -> Result<()> {
        self.inner
            .group
            .submit(encoded.submitted_now(), &|group| self.commit(group))
    }

    /// Whether a write with `options` returns before its fdatasync: it does not ask for
    /// [`Durability::Sync`], itself or through the store's mode.
    pub fn returns_before_sync(&self, options: WriteOptions) -> bool {
        options.durability.unwrap_or(self.inner.options.durability) != Durability::Sync
    }

    /// Writes `ops` as [`Durable::write`] does, but only if the calling thread is not made to
    /// wait for the disk or for another writer; gives them back untouched otherwise.
    ///
    /// What can make a write wait, and what this does about each:
    /// - its own fdatasync ([`Durability::Sync`], the store's or its own): given back;
    /// - a group being committed by another writer, which may include an fdatasync (a
    ///   follower waits for it, and then for its own group, whose leader may sync): given
    ///   back unless no group is being committed, in which case this thread leads its own
    ///   write at once, alone. A group that waits for no fsync, while recent groups were
    ///   quick, is watched for up to 10 µs first, then tried once more;
    /// - the log's mutex, held by a sync or rotation for compaction (an fdatasync under it),
    ///   a deletion of old segments (unlinks and a directory sync), `close`, or a reading of
    ///   the figures: taken only if free;
    /// - a rotation (an append that does not fit the active segment syncs it, creates the
    ///   next one and syncs the directory) or a preallocation of the segment's space: given
    ///   back if the append needs either.
    ///
    /// What is left is a copy into the page cache (through the log's mapped window or one
    /// `pwrite`), the flusher's deadline set under its own short lock (the flusher syncs
    /// without it; a per-write window on a store that had no flusher starts one, once), and the state's shard locks, held by others for one operation or one
    /// chunk of a scan. The kernel may still throttle a process that dirties pages faster
    /// than the disk takes them; that pause is bounded by the kernel and met by any thread
    /// that writes to memory-mapped files.
    pub fn try_write_now(
        &self,
        ops: Vec<Op>,
        options: WriteOptions,
    ) -> std::result::Result<Result<()>, Vec<Op>> {
        if ops.is_empty() {
            return Ok(Ok(()));
        }
        if !self.returns_before_sync(options) {
            return Err(ops);
        }
        let unit = match self.encode_ops(ops, options) {
            Ok(encoded) => encoded.submitted_now(),
            Err(e) => return Ok(Err(e)),
        };
        self.inner
            .group
            .try_lead(unit, &|group| self.commit_now(group))
            .map_err(|unit| unit.ops)
    }

    /// Encodes `ops`, checked against the log's limits.
    fn encode_ops(&self, mut ops: Vec<Op>, options: WriteOptions) -> Result<EncodedWrite> {
        let compression = &self.inner.options.compression;
        let limits = &self.inner.limits;
        let mut encoded = Encoded::new();
        let checked = if let [op] = &mut ops[..] {
            // The common single write: no vector of records.
            let record = lend(op, compression);
            let checked = limits.check(&record);
            if checked.is_ok() {
                encoded.push(&record);
            }
            give_back(op, record);
            checked
        } else {
            let records: Vec<_> = ops.iter_mut().map(|op| lend(op, compression)).collect();
            let checked = records.iter().try_for_each(|record| limits.check(record));
            if checked.is_ok() {
                encoded.push_atomic(&records);
            }
            for (op, record) in ops.iter_mut().zip(records) {
                give_back(op, record);
            }
            checked
        };
        checked.map_err(|e| Error::TooLarge(e.into()))?;
        let store_wide = self.inner.options.durability;
        let durability = options.durability.unwrap_or(store_wide);
        let sync_within = match (durability, store_wide) {
            (Durability::Batch(own), Durability::Batch(store)) if own >= store => None,
            (Durability::Batch(own), _) => Some(own),
            _ => None,
        };
        Ok(EncodedWrite {
            encoded,
            ops,
            sync: durability == Durability::Sync,
            sync_within,
        })
    }

    /// Writes, syncs and applies one group. Only the group's leader calls this.
    fn commit(&self, group: &[Member]) -> Committed {
        let mut guard = self.inner.log.lock();
        let log = guard.as_mut().ok_or(Error::Closed)?;
        self.commit_locked(log, group)
    }

    /// [`Durable::commit`] of a group that asks for no fdatasync, if the log's mutex is free
    /// and the append goes into the active segment as it is: `None` (nothing written)
    /// otherwise. See [`Durable::try_write_now`].
    fn commit_now(&self, group: &[Member]) -> Option<Committed> {
        let mut guard = self.inner.log.try_lock()?;
        let Some(log) = guard.as_mut() else {
            return Some(Err(Error::Closed));
        };
        let len: usize = group.iter().map(|m| m.unit.encoded.as_bytes().len()).sum();
        if group.iter().any(|m| m.unit.sync) || !log.wal.appends_in_place(len as u64) {
            return None;
        }
        Some(self.commit_locked(log, group))
    }

    /// Appends, syncs if asked and applies `group`, the log's mutex held.
    fn commit_locked(&self, log: &mut Log, group: &[Member]) -> Committed {
        let encoded = if let [only] = group {
            &only.unit.encoded
        } else {
            log.joined.clear();
            for member in group {
                log.joined.extend(&member.unit.encoded);
            }
            &log.joined
        };
        let sync = group.iter().any(|m| m.unit.sync);
        let appended = if sync {
            log.wal.append_encoded_to_sync(encoded)
        } else {
            log.wal.append_encoded(encoded)
        };
        let records = encoded.records() as u64;
        let bytes = encoded.as_bytes().len() as u64;
        let result = appended.and_then(|_| {
            log.recorder.unsynced += records;
            if sync {
                log.wal.sync()?;
                log.recorder.count_sync();
            } else if let Some(window) = group.iter().filter_map(|m| m.unit.sync_within).min() {
                // Syncs the whole group within the shortest window any of its writes asked
                // for: the log's flusher only follows the store-wide window.
                log.wal.sync_within(window)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            let error = Error::from_log(e);
            if let Error::Failed(cause) = &error {
                log.recorder
                    .stats
                    .failed
                    .get_or_insert_with(|| cause.to_string());
            }
            return Err(error);
        }
        // Reading the clock costs as much as a small write: only TTL writes need it.
        let ops = group.iter().flat_map(|member| &member.unit.ops);
        let now = if ops
            .clone()
            .any(|op| matches!(op, Op::Put { expiry, .. } if *expiry != Expiry::Never))
        {
            self.inner.options.clock.now_ms()
        } else {
            0
        };
        for member in group {
            match &member.unit.ops[..] {
                [op] => {
                    self.inner.sink.apply(op.as_ref(), now);
                }
                batch => self.inner.sink.apply_batch(batch, now),
            }
        }
        let stats = &mut log.recorder.stats;
        stats.groups += 1;
        stats.records += records;
        stats.bytes_written += bytes;
        let finished = Instant::now();
        for member in group {
            log.recorder
                .latency(finished.duration_since(member.unit.submitted));
        }
        Ok(finished)
    }

    /// Makes every write so far durable.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed; [`Error::Failed`] when the fsync failed or an earlier
    /// failure stopped the log.
    pub fn sync(&self) -> Result<()> {
        self.sync_unlocked()?;
        let mut guard = self.inner.log.lock();
        let log = guard.as_mut().ok_or(Error::Closed)?;
        log.wal.sync().map_err(Error::from_log)?;
        log.recorder.count_sync();
        Ok(())
    }

    /// Syncs the active segment with the log's lock released, before a sync under it (a
    /// rotation's, or [`Durable::sync`]'s): under `Durability::None` or `Batch` a segment
    /// can hold tens of megabytes not yet on disk, and writers would wait for all of them on
    /// the lock (measured: 30-40 ms for a rotation after 1M buffered puts). The sync under
    /// the lock still follows, so nothing any caller relies on is weakened; it only finds
    /// little left to write.
    fn sync_unlocked(&self) -> Result<()> {
        let syncer = {
            let guard = self.inner.log.lock();
            guard.as_ref().ok_or(Error::Closed)?.wal.syncer()
        };
        syncer.sync().map_err(Error::from_log)
    }

    /// The commit path's figures.
    pub fn stats(&self) -> CommitStats {
        let mut stats = match &*self.inner.log.lock() {
            Some(log) => CommitStats {
                background_fsyncs: log.wal.background_syncs(),
                ..log.recorder.snapshot()
            },
            None => CommitStats::default(),
        };
        if let (None, Some(said)) = (&stats.failed, self.inner.group.panicked()) {
            stats.failed = Some(format!("a commit panicked: {said}"));
        }
        stats
    }

    /// Where the next record goes in the log.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed.
    pub fn log_position(&self) -> Result<Position> {
        let guard = self.inner.log.lock();
        Ok(guard.as_ref().ok_or(Error::Closed)?.wal.current_position())
    }

    /// Ends the active segment and starts a new one; returns where the next record goes
    /// (offset 0 of the new segment, or of the active one if it is still empty). Every write
    /// acknowledged before this call is in an earlier segment and applied to the sink.
    ///
    /// Refused after a commit panicked: the state may hold part of that commit's group, and
    /// a compaction starting here would snapshot it and then delete the log that holds the
    /// whole group.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed; [`Error::Panicked`] after a commit panicked;
    /// [`Error::Io`] when the new segment cannot be created; [`Error::Failed`] when a sync
    /// failed.
    pub fn rotate(&self) -> Result<Position> {
        self.inner.group.refuse_after_panic()?;
        self.sync_unlocked()?;
        let mut guard = self.inner.log.lock();
        let log = guard.as_mut().ok_or(Error::Closed)?;
        log.wal.rotate().map_err(Error::from_log)
    }

    /// Deletes the log's segments before `segment`, oldest first; returns how many.
    /// Refused after a commit panicked, as [`Durable::rotate`] is. A segment that cannot be
    /// deleted is [`Error::Log`] (it stays; the store goes on); a failed directory sync after
    /// a deletion stops the store ([`Error::Failed`]), since the deletion may or may not be
    /// durable and a later one that is would leave a gap the next open refuses.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed; [`Error::Panicked`] after a commit panicked;
    /// [`Error::Log`] or [`Error::Failed`] as said above.
    pub fn delete_log_before(&self, segment: u64) -> Result<usize> {
        self.inner.group.refuse_after_panic()?;
        let deleted = {
            let mut guard = self.inner.log.lock();
            let log = guard.as_mut().ok_or(Error::Closed)?;
            log.wal
                .delete_segments_before(Position::new(segment, 0))
                .map_err(Error::from_log)?
        };
        // Dropped with the log's mutex released: the file system frees the deleted segments'
        // blocks now, and no writer waits for it.
        Ok(deleted.count())
    }

    /// The ids of the log's first and last segments.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed.
    pub fn log_segments(&self) -> Result<std::ops::RangeInclusive<u64>> {
        let guard = self.inner.log.lock();
        Ok(guard.as_ref().ok_or(Error::Closed)?.wal.segments())
    }

    /// How many segments the log spans and how many bytes of records they hold.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed.
    pub fn log_extent(&self) -> Result<(u64, u64)> {
        let guard = self.inner.log.lock();
        let wal = &guard.as_ref().ok_or(Error::Closed)?.wal;
        let segments = wal.segments();
        Ok((segments.end() - segments.start() + 1, wal.log_bytes()))
    }

    /// Syncs and closes the log, releasing the directory; later writes fail with
    /// [`Error::Closed`]. Reads of the state still work. The log is closed whatever this
    /// returns: [`Error::Failed`] when the final sync failed (or an earlier failure had
    /// stopped the log), [`Error::Log`] when only cutting the preallocated tail failed, after
    /// every write was synced.
    ///
    /// # Errors
    ///
    /// As said above; [`Error::Closed`] when it was closed already.
    pub fn close(&self) -> Result<()> {
        let log = self.inner.log.lock().take().ok_or(Error::Closed)?;
        log.wal.close().map_err(Error::from_log)
    }
}

/// What replaying one log directory did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReplay {
    /// What the log's recovery scan found.
    pub recovery: RecoveryInfo,
    /// Records applied to the sink.
    pub records: u64,
    /// Puts dropped because their deadline had passed.
    pub expired_dropped: u64,
}

/// Opens the log `config` describes and replays it from `from` into `sink` (the sink's
/// [`Sink::replay`] decides on how many threads), in the same pass as the log's own checks.
fn replay_log<S: Sink>(
    config: WalConfig,
    from: Position,
    sink: &S,
    now: u64,
) -> Result<(Wal, LogReplay)> {
    let limits = config.limits;
    let mut damaged = None;
    let mut config = Some(config);
    let mut opened = None;
    let mut records = 0;
    let expired_dropped = sink.replay(now, &mut |apply| {
        let Some(config) = config.take() else { return };
        opened = Some(Wal::open_with(config, from, |position, record| {
            match record.compression() {
                Compression::None => apply(op_of(&record, record.stored_value())),
                _ => match record.value(limits.max_value_size) {
                    Ok(value) => apply(op_of(&record, &value)),
                    Err(kind) => {
                        damaged.get_or_insert((position, kind));
                        return;
                    }
                },
            }
            records += 1;
        }));
    });
    let (wal, recovery) = opened
        .expect("the sink's replay drives the log's recovery")
        .map_err(|e| Error::Open(e.into()))?;
    if let Some((position, kind)) = damaged {
        return Err(Error::Open(Shared::from(kv_wal::Error::Corrupt {
            segment: position.segment,
            offset: position.offset,
            kind,
        })));
    }
    Ok((
        wal,
        LogReplay {
            recovery,
            records,
            expired_dropped,
        },
    ))
}

/// Replays a whole log directory (a snapshot, say) into `sink` at time `now`, then closes it
/// without writing anything: `config`'s recovery mode decides what damage does.
///
/// # Errors
///
/// [`Error::Open`] when the log cannot be opened or holds damage its recovery mode does not
/// accept.
pub fn load_log<S: Sink>(config: WalConfig, sink: &S, now: u64) -> Result<LogReplay> {
    let (wal, replayed) = replay_log(config, Position::START, sink, now)?;
    wal.close().map_err(|e| Error::Open(e.into()))?;
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use kv_core::{IndexKind, State};
    use parking_lot::RwLock;

    use super::*;

    type Store = Durable<RwLock<State>>;

    fn open(dir: &std::path::Path, durability: Durability, segment_size: u64) -> Store {
        let wal = WalConfig::new(dir).max_segment_size(segment_size);
        let options = Options {
            durability,
            ..Options::default()
        };
        let state = RwLock::new(State::new(IndexKind::Ordered));
        Durable::open(wal, Position::START, state, options)
            .unwrap()
            .0
    }

    fn put(i: u32) -> Vec<Op> {
        vec![Op::put(format!("key-{i:05}"), format!("value-{i}"))]
    }

    #[test]
    fn a_write_that_returns_before_its_fsync_is_written_at_once() {
        for durability in [
            Durability::Batch(Duration::from_millis(5)),
            Durability::None,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path(), durability, 1 << 20);
            assert!(matches!(
                store.try_write_now(put(0), WriteOptions::default()),
                Ok(Ok(()))
            ));
            assert_eq!(store.stats().records, 1);
            assert!(store.sink().read().get(b"key-00000", 0).is_some());
        }
    }

    #[test]
    fn a_write_that_waits_for_an_fsync_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), Durability::Sync, 1 << 20);
        assert!(store
            .try_write_now(put(0), WriteOptions::default())
            .is_err());
        let batching = open(&dir.path().join("b"), Durability::None, 1 << 20);
        let given = batching.try_write_now(put(1), WriteOptions::sync());
        assert_eq!(given.unwrap_err(), put(1));
        assert_eq!(store.stats().records + batching.stats().records, 0);
    }

    #[test]
    fn a_write_is_given_back_while_the_log_is_held_or_a_group_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), Durability::None, 1 << 20);
        {
            // What a rotation or a sync for a compaction holds across its fdatasync.
            let _log = store.inner.log.lock();
            assert!(store
                .try_write_now(put(0), WriteOptions::default())
                .is_err());
        }
        // Another writer leads a group: this one would follow, and wait for it.
        let led = store.inner.group.try_lead(
            store
                .encode_ops(put(1), WriteOptions::default())
                .unwrap()
                .submitted_now(),
            &|_| {
                assert!(store
                    .try_write_now(put(2), WriteOptions::default())
                    .is_err());
                Some(store.commit(&[]))
            },
        );
        assert!(matches!(led, Ok(Ok(()))));
        assert_eq!(store.stats().records, 0, "nothing given back was written");
        assert!(matches!(
            store.try_write_now(put(3), WriteOptions::default()),
            Ok(Ok(()))
        ));
        assert_eq!(store.stats().records, 1);
    }

    #[test]
    fn a_write_that_would_start_a_segment_is_given_back_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), Durability::None, 4096);
        let mut given_back = 0;
        for i in 0..1000 {
            if let Err(ops) = store.try_write_now(put(i), WriteOptions::default()) {
                given_back += 1;
                store.write(ops, WriteOptions::default()).unwrap();
            }
        }
        let segments = store.log_segments().unwrap();
        assert!(segments.end() - segments.start() >= 3, "{segments:?}");
        assert_eq!(given_back, segments.end() - segments.start());
        store.close().unwrap();
        let reopened = open(dir.path(), Durability::None, 4096);
        assert_eq!(reopened.sink().read().len(), 1000);
    }
}
