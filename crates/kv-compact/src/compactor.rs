//! The compaction procedure, the checkpoint, and cleaning up after a crash.
//!
//! Compaction, while writers go on:
//!
//! 1. rotate the log to a fresh segment S: everything acknowledged so far is before S and
//!    already applied to the state;
//! 2. write every live entry of the state into snapshot N+1, one shard at a time (entries are
//!    encoded under the shard's lock, a chunk at a time, and written after it is released);
//!    writes made meanwhile go to S and later, and replaying them over the snapshot gives the
//!    right state because applying operations is idempotent in log order. So the snapshot
//!    need not be a point in time: each key in it holds a value it had at some moment after
//!    the rotation (or is seen twice, the later value last), and every later write of that
//!    key is in S onwards;
//! 3. sync the snapshot and rename it into place;
//! 4. switch the manifest to (snapshot N+1, log from S);
//! 5. only then delete snapshot N and the segments before S.
//!
//! A crash before step 4 leaves the old manifest in charge, with everything it names intact;
//! a crash after it leaves garbage (the old snapshot, old segments, a temporary directory)
//! that the store's open removes ([`Compactor::remove_garbage`]) once it has found the
//! manifest true to the directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_durable::{CompressionPolicy, LogReplay, Sink};
use kv_wal::fs::{FileSystem, OpenMode};
use kv_wal::{segment, Encoded, Position, SizeLimits};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::manifest::{Manifest, SnapshotSum, Stage, MANIFEST_TMP};
use crate::pace::Pace;
use crate::snapshot::{self, remove_dir_all, Encoding, SnapshotWriter, SNAPSHOTS, TMP_SUFFIX};

/// A checkpoint directory holds this file until the checkpoint is complete: opening refuses
/// it meanwhile (its log alone, without the snapshot, would look like a smaller store).
pub const CHECKPOINT_MARKER: &str = "CHECKPOINT-INCOMPLETE";

/// Receives one live entry: key, value, deadline in unix ms.
pub type EntrySink<'a> = dyn FnMut(&[u8], &[u8], Option<u64>) + 'a;

/// What compaction needs from the running store. Shards are read from several threads.
pub trait Source: Sync {
    /// Rotates the log (see [`kv_durable::Durable::rotate`]); returns the new segment's id.
    ///
    /// # Errors
    ///
    /// Those of [`kv_durable::Durable::rotate`].
    fn rotate(&self) -> kv_durable::Result<u64>;
    /// The number of shards of the state.
    fn shards(&self) -> usize;
    /// Calls `f` with every live entry of shard `shard` (key, value, deadline in unix ms),
    /// under the shard's lock, which may be released and taken again between entries so
    /// that writers are not held up for a whole shard. An entry written meanwhile may be
    /// passed or not, and an entry may be passed twice: replaying the log from the rotation
    /// over the snapshot makes it right (see the module's documentation).
    ///
    /// `stop` is asked whenever the lock is released: when it says yes, the walk ends there
    /// and this returns `false` (not every entry was passed); otherwise `true`.
    fn read_shard(&self, shard: usize, stop: &dyn Fn() -> bool, f: &mut EntrySink<'_>) -> bool;
    /// Deletes the log's segments before `segment`.
    ///
    /// # Errors
    ///
    /// Those of [`kv_durable::Durable::delete_log_before`].
    fn delete_log_before(&self, segment: u64) -> kv_durable::Result<usize>;
    /// Segments and bytes the log holds.
    ///
    /// # Errors
    ///
    /// [`kv_durable::Error::Closed`] once the store is closed.
    fn log_extent(&self) -> kv_durable::Result<(u64, u64)>;
    /// Syncs the log and returns where its next record goes.
    ///
    /// # Errors
    ///
    /// Those of [`kv_durable::Durable::sync`].
    fn sync_log(&self) -> kv_durable::Result<Position>;
    /// The log's directory.
    fn log_dir(&self) -> PathBuf;
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionReport {
    /// The new snapshot's id.
    pub snapshot: u64,
    /// Records written to it: one per live entry (a few twice when a shard's hash table
    /// grew while the snapshot was read, see [`Source::read_shard`]).
    pub entries: u64,
    /// Bytes of log and snapshot before.
    pub bytes_before: u64,
    /// Bytes of log and snapshot after.
    pub bytes_after: u64,
    /// How long it took.
    pub duration: Duration,
}

impl std::fmt::Display for CompactionReport {
    /// One line: the snapshot, its entries, the bytes of log and snapshot before and after,
    /// and the time taken (as `kv compact` prints it).
    ///
    /// ```
    /// use std::time::Duration;
    /// let report = kv_compact::CompactionReport {
    ///     snapshot: 3,
    ///     entries: 2,
    ///     bytes_before: 4096,
    ///     bytes_after: 512,
    ///     duration: Duration::from_micros(1500),
    /// };
    /// assert_eq!(
    ///     report.to_string(),
    ///     "snapshot 3: 2 entries, 4096 bytes of log and snapshot before, 512 after, 1.5 ms"
    /// );
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "snapshot {}: {} entries, {} bytes of log and snapshot before, {} after, {:.1} ms",
            self.snapshot,
            self.entries,
            self.bytes_before,
            self.bytes_after,
            self.duration.as_secs_f64() * 1e3
        )
    }
}

/// Figures of the compactions since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionStats {
    /// Compactions completed.
    pub compactions: u64,
    /// Compactions that failed (the store went on with its old snapshot and log).
    pub failures: u64,
    /// The last completed compaction.
    pub last: Option<CompactionReport>,
}

/// Compaction and checkpoints for the store in one directory, and the manifest they keep.
#[derive(Debug)]
pub struct Compactor {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    compression: CompressionPolicy,
    limits: SizeLimits,
    /// The manifest in force, and whether compactions may go on; held for the whole of a
    /// compaction, so one runs at a time, and by `close`, so none runs after it.
    manifest: Mutex<Current>,
    /// Set when closing starts: a compaction running then stops at its next shard, or in
    /// its next pause (see `pace.rs`).
    closing: Arc<AtomicBool>,
    /// The most bytes a second a snapshot is written at; `None`: as fast as it can be.
    rate: Option<u64>,
    /// Bytes of the snapshot the manifest names; apart from the manifest's lock, so that
    /// stats never wait for a compaction.
    snapshot_bytes: AtomicU64,
    stats: Mutex<CompactionStats>,
    /// Threads that encode shards for a snapshot; below 2, the appending thread encodes.
    encoders: usize,
    /// Whether the directory had a manifest at open: without one, nothing is garbage.
    had_manifest: bool,
}

/// What the manifest's lock guards.
#[derive(Debug)]
struct Current {
    /// The manifest in force (the default, a plain log from segment 0, if the directory has
    /// none yet).
    manifest: Manifest,
    /// Whether `manifest` is on disk; `false` for a directory that has none yet.
    recorded: bool,
    /// Closed: compactions and checkpoints are refused.
    closed: bool,
    /// A compaction failed where whether the manifest switched is unknown: refuse further
    /// compactions (and delete nothing) until the store is reopened.
    unknown: Option<String>,
}

/// The default number of snapshot encoders: every core but one, at most four. So none on two
/// cores, where encoding beside the snapshot's writer tripled the store writers' p99 latency
/// during a compaction.
pub fn default_encoders() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1).min(4)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these leaves plain data behind, still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Compactor {
    /// Reads the manifest of `dir` (none means a plain log) and changes nothing: what a crash
    /// may have left (a half-written manifest, unfinished or superseded snapshots) is removed
    /// by [`remove_garbage`](Self::remove_garbage), once the store has checked the manifest
    /// against the directory. A manifest restored from an older backup names an older
    /// snapshot and log start; removing what it does not name before those are found
    /// missing would delete the real current snapshot.
    ///
    /// A directory that holds snapshots but no manifest is refused
    /// ([`Error::MissingManifest`]), untouched, unless `log_dir` still holds segment 0: every
    /// compaction deletes it once its manifest is durable, so then none ever completed, the
    /// log is whole, and the snapshots (left by an earlier version, which wrote no manifest
    /// at creation, after a crashed first compaction) are not needed; they are left alone.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptManifest`], [`Error::MissingManifest`] or
    /// [`Error::IncompleteCheckpoint`] as said above; [`Error::Io`] when the directory or
    /// the manifest cannot be read. Nothing is changed either way.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        log_dir: &Path,
        compression: CompressionPolicy,
        limits: SizeLimits,
    ) -> Result<Self> {
        if fs
            .open(&dir.join(CHECKPOINT_MARKER), OpenMode::Read)
            .is_ok()
        {
            return Err(Error::IncompleteCheckpoint {
                path: dir.to_path_buf(),
            });
        }
        let on_disk = Manifest::read(fs.as_ref(), dir)?;
        let Some(manifest) = on_disk else {
            // Without a manifest nothing says which snapshot is current or where the log
            // continues after it, and the log alone may be the tail of a compacted store:
            // refuse, and delete nothing, unless the log is certainly whole.
            let mut found = snapshot_names(fs.as_ref(), dir)?;
            if !found.is_empty() && !holds_first_segment(fs.as_ref(), log_dir)? {
                found.sort_unstable();
                return Err(Error::MissingManifest {
                    path: dir.to_path_buf(),
                    found,
                });
            }
            return Ok(Self::new(
                fs,
                dir,
                compression,
                limits,
                Manifest::default(),
                false,
            ));
        };
        Ok(Self::new(fs, dir, compression, limits, manifest, true))
    }

    /// Removes what the manifest makes garbage: a half-written manifest, a snapshot older
    /// than the one it names (replaced by it), and a newer or unfinished one (a compaction
    /// that failed or crashed before its manifest switch). Anything else is left alone, and
    /// so is everything when the directory had no manifest at open.
    ///
    /// Call it only once the manifest has been found true to the directory: its snapshot
    /// loaded whole and its first log segment present and opened.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when something cannot be listed or deleted; what was not deleted
    /// stays, for the next open.
    pub fn remove_garbage(&self) -> Result<()> {
        if !self.had_manifest {
            return Ok(());
        }
        let current = lock(&self.manifest);
        let tmp = self.dir.join(MANIFEST_TMP);
        match self.fs.remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", tmp, e)),
        }
        let named = current.manifest.snapshot.map(snapshot::snapshot_name);
        for name in snapshot_names(self.fs.as_ref(), &self.dir)? {
            if Some(&name) != named.as_ref() {
                remove_dir_all(self.fs.as_ref(), &self.dir.join(SNAPSHOTS).join(&name))?;
            }
        }
        Ok(())
    }

    fn new(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        compression: CompressionPolicy,
        limits: SizeLimits,
        manifest: Manifest,
        recorded: bool,
    ) -> Self {
        Compactor {
            fs,
            dir: dir.to_path_buf(),
            compression,
            limits,
            manifest: Mutex::new(Current {
                manifest,
                recorded,
                closed: false,
                unknown: None,
            }),
            closing: Arc::default(),
            rate: None,
            snapshot_bytes: AtomicU64::new(0),
            stats: Mutex::new(CompactionStats::default()),
            encoders: default_encoders(),
            had_manifest: recorded,
        }
    }

    /// Whether the directory had a manifest when it was opened (or has one since
    /// [`record_log_start`](Self::record_log_start)).
    pub fn is_recorded(&self) -> bool {
        lock(&self.manifest).recorded
    }

    /// Gives a directory that has no manifest yet (a new store, or a log written without
    /// one, such as nori-wal's) the manifest "no snapshot, log from `first_segment`", so that
    /// from now on a lost first segment is found missing instead of the log silently
    /// starting later. Does nothing if there is a manifest.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the manifest cannot be written; the directory opens as before.
    pub fn record_log_start(&self, first_segment: u64) -> Result<()> {
        let mut current = lock(&self.manifest);
        if current.recorded {
            return Ok(());
        }
        let manifest = Manifest {
            snapshot: None,
            log_from: first_segment,
            sum: None,
        };
        manifest.write(self.fs.as_ref(), &self.dir)?;
        current.manifest = manifest;
        current.recorded = true;
        Ok(())
    }

    /// Refuses compactions and checkpoints from now on. One running on another thread stops
    /// at its next shard or in its next pause (see `pace.rs`), and this waits until it has
    /// (its files removed or its manifest switched): after this returns, compaction changes
    /// nothing in the directory.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        lock(&self.manifest).closed = true;
    }

    /// Sets how many threads encode shards for a snapshot (below 2: none, the thread that
    /// writes the snapshot encodes).
    pub fn with_encoders(mut self, encoders: usize) -> Self {
        self.encoders = encoders;
        self
    }

    /// Writes snapshots at no more than `bytes_per_sec` on average (`None`: as fast as the
    /// disk takes them), in small slices: what keeps durable writers' latency during a
    /// compaction (the figures are in `pace.rs`). Checkpoints are paced too.
    pub fn with_rate(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.rate = bytes_per_sec;
        self
    }

    /// The manifest in force.
    pub fn manifest(&self) -> Manifest {
        lock(&self.manifest).manifest
    }

    /// Where replaying the log starts: after the snapshot, or its beginning.
    pub fn log_from(&self) -> Position {
        Position::new(self.manifest().log_from, 0)
    }

    /// Bytes of the current snapshot.
    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes.load(Ordering::Relaxed)
    }

    /// Loads the current snapshot, if any, into `sink` at time `now`.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptSnapshot`] when the snapshot differs from what the manifest records
    /// of it; [`Error::Load`] or [`Error::Snapshot`] when it cannot be read or replayed.
    /// Nothing is changed.
    pub fn load_snapshot<S: Sink>(&self, sink: &S, now: u64) -> Result<Option<LogReplay>> {
        let manifest = self.manifest();
        let Some(id) = manifest.snapshot else {
            return Ok(None);
        };
        let replayed = snapshot::load(
            &self.fs,
            &self.dir,
            id,
            manifest.sum,
            sink,
            now,
            self.limits,
        )?;
        let bytes = dir_bytes(self.fs.as_ref(), &snapshot::snapshot_dir(&self.dir, id))?;
        self.snapshot_bytes.store(bytes, Ordering::Relaxed);
        Ok(Some(replayed))
    }

    /// The figures of the compactions so far.
    pub fn stats(&self) -> CompactionStats {
        *lock(&self.stats)
    }

    /// Writes the live state of `source` as snapshot `id` of directory `dir`, one shard at a
    /// time, each read in chunks under short holds of its lock ([`Source::read_shard`]), and
    /// written at `rate` bytes a second at most ([`with_rate`](Self::with_rate)). Walking a million entries
    /// scattered in memory is what an unpaced snapshot waits for, so with more than two
    /// cores the shards are encoded on worker threads while this thread appends; one core is
    /// always left to the store's writers. On 2 cores it stays on this thread: measured there,
    /// encoding beside the appends took a compaction from 0.73 s to 0.41-0.52 s but the
    /// writers' p99 latency during it from 1.1× to 3.1-4.2× its value before. At most two
    /// encoded shards per worker are held in memory at once.
    fn write_snapshot(
        &self,
        source: &dyn Source,
        dir: &Path,
        id: u64,
        rate: Option<u64>,
    ) -> Result<SnapshotSum> {
        let shards = source.shards();
        let pace = Pace::new(rate, Arc::clone(&self.closing));
        let mut writer =
            SnapshotWriter::create(&self.fs, dir, id, shards, self.compression, self.limits)?
                .paced(pace);
        let encoding = writer.encoding();
        let workers = self.encoders.min(shards);
        if workers < 2 {
            // One buffer for every shard: a new one per shard, grown by doubling and then
            // freed, maps and unmaps megabytes each time, and every unmap interrupts the
            // writers' threads (TLB shootdowns).
            let mut records = Encoded::new();
            for shard in 0..shards {
                self.check_closing()?;
                self.encode_shard(source, shard, encoding, id, &mut records)?;
                writer.write(&records)?;
            }
            return writer.finish();
        }
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let (done, encoded) = sync_channel::<Result<Encoded>>(workers);
            for _ in 0..workers {
                let (done, next) = (done.clone(), &next);
                s.spawn(move || loop {
                    let shard = next.fetch_add(1, Ordering::Relaxed);
                    if shard >= shards {
                        return;
                    }
                    let mut records = Encoded::new();
                    let message = self
                        .encode_shard(source, shard, encoding, id, &mut records)
                        .map(|()| records);
                    // The writer stops receiving only after a failure it already reports.
                    if done.send(message).is_err() {
                        return;
                    }
                });
            }
            drop(done);
            for message in encoded {
                // Returning drops the receiver: the workers stop at their next send.
                self.check_closing()?;
                writer.write(&message?)?;
            }
            Ok::<(), Error>(())
        })?;
        writer.finish()
    }

    /// Replaces what `out` holds with the put records of every live entry of `shard`, for
    /// snapshot `id`. A shard whose walk stopped because the store is closing is
    /// [`Error::Closed`]: it is incomplete.
    fn encode_shard(
        &self,
        source: &dyn Source,
        shard: usize,
        encoding: Encoding,
        id: u64,
        out: &mut Encoded,
    ) -> Result<()> {
        out.clear();
        let mut failed = None;
        let closing = || self.closing.load(Ordering::Relaxed);
        let whole = source.read_shard(shard, &closing, &mut |key, value, deadline| {
            if failed.is_none() {
                failed = encoding.push(out, key, value, deadline).err();
            }
        });
        if let Some(e) = failed {
            return Err(Error::Snapshot {
                id,
                source: e.into(),
            });
        }
        if !whole {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Stops a snapshot being written when the store is closing.
    fn check_closing(&self) -> Result<()> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Takes the manifest's lock for a compaction or a checkpoint, unless they are refused.
    fn begin(&self) -> Result<std::sync::MutexGuard<'_, Current>> {
        let current = lock(&self.manifest);
        if current.closed {
            return Err(Error::Closed);
        }
        Ok(current)
    }

    /// Compacts: see the module's documentation for the steps and why a crash at any point
    /// loses nothing. Waits for a compaction already running to finish first.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed; [`Error::OutcomeUnknown`] after an earlier failure
    /// whose outcome is unknown; [`Error::Log`] when the store's log refuses a rotation or
    /// a deletion; [`Error::Io`] or [`Error::Snapshot`] when a file operation fails.
    /// Nothing the store depends on is changed, unless the log stopped on the way.
    pub fn compact(&self, source: &dyn Source) -> Result<CompactionReport> {
        let result = self.compact_once(source);
        let mut stats = lock(&self.stats);
        match &result {
            Ok(report) => {
                stats.compactions += 1;
                stats.last = Some(*report);
            }
            Err(_) => stats.failures += 1,
        }
        result
    }

    fn compact_once(&self, source: &dyn Source) -> Result<CompactionReport> {
        let started = Instant::now();
        let mut current = self.begin()?;
        if let Some(cause) = &current.unknown {
            return Err(Error::OutcomeUnknown {
                cause: cause.clone(),
            });
        }
        let (_, log_before) = source.log_extent().map_err(Error::Log)?;
        let bytes_before = log_before + self.snapshot_bytes();
        let log_from = source.rotate().map_err(Error::Log)?;
        let id = current.manifest.snapshot.map_or(1, |id| id + 1);
        let written = self
            .write_snapshot(source, &self.dir, id, self.rate)
            .and_then(|sum| {
                // The snapshot holds writes of segment S onwards that may not be on disk yet
                // (durability Batch or None): make them durable before the manifest relies on
                // the snapshot, or a power loss could keep half of an atomic batch.
                source.sync_log().map_err(Error::Log)?;
                Ok(sum)
            });
        let remove_new = || {
            // The manifest was not switched: the new snapshot is garbage, finished or not (a
            // `.tmp` is never named by a manifest). Remove it now, or the next compaction
            // could not reuse its id (a failure here is cleaned at open).
            let fs = self.fs.as_ref();
            let _ = remove_dir_all(fs, &snapshot::tmp_dir(&self.dir, id));
            let _ = remove_dir_all(fs, &snapshot::snapshot_dir(&self.dir, id));
        };
        let sum = match written {
            Ok(sum) => sum,
            Err(e) => {
                remove_new();
                return Err(e);
            }
        };
        let next = Manifest {
            snapshot: Some(id),
            log_from,
            sum: Some(sum),
        };
        match next.write_staged(self.fs.as_ref(), &self.dir) {
            Ok(()) => {}
            Err((Stage::BeforeRename, e)) => {
                remove_new();
                return Err(e);
            }
            Err((Stage::Renaming, e)) => {
                // The rename or the directory sync after it failed: the disk may hold either
                // manifest now or after a power loss, and reading it back cannot tell (a
                // page cache is not a disk). Both snapshots stay, and so do the old log
                // segments; opening again reads what the disk says and removes the loser.
                current.unknown = Some(kv_wal::with_causes(&e));
                return Err(e);
            }
        }
        let previous = std::mem::replace(&mut current.manifest, next);
        current.recorded = true;
        self.snapshot_bytes.store(sum.bytes, Ordering::Relaxed);
        // The new manifest is durable: what follows only removes what nothing refers to.
        if let Some(old) = previous.snapshot {
            remove_dir_all(self.fs.as_ref(), &snapshot::snapshot_dir(&self.dir, old))?;
        }
        source.delete_log_before(log_from).map_err(Error::Log)?;
        let (_, log_after) = source.log_extent().map_err(Error::Log)?;
        Ok(CompactionReport {
            snapshot: id,
            entries: sum.records,
            bytes_before,
            bytes_after: log_after + sum.bytes,
            duration: started.elapsed(),
        })
    }

    /// Writes a consistent, openable copy of the store into `target` (new or empty) while it
    /// keeps serving: a snapshot of the state plus the log written since the snapshot began,
    /// up to the moment the snapshot was complete, and a manifest naming them.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once closed; [`Error::NotEmpty`] when `target` holds data;
    /// [`Error::Log`], [`Error::Io`] or [`Error::Snapshot`] when an operation fails (what
    /// was written of the copy is removed, or stays marked incomplete).
    pub fn checkpoint(&self, source: &dyn Source, target: &Path) -> Result<()> {
        self.checkpoint_at(source, target, self.rate)
    }

    /// [`checkpoint`](Self::checkpoint), its snapshot written at `bytes_per_sec` (`None`: as
    /// fast as the disk takes it) whatever [`with_rate`](Self::with_rate) set: for a caller
    /// that holds writes back until the checkpoint ends, where a pace only stalls them longer.
    ///
    /// # Errors
    ///
    /// As [`checkpoint`](Self::checkpoint).
    pub fn checkpoint_at(
        &self,
        source: &dyn Source,
        target: &Path,
        bytes_per_sec: Option<u64>,
    ) -> Result<()> {
        // One compaction or checkpoint at a time: they both rotate the log. Taken first, so
        // that a closed store creates nothing in `target`.
        let _running = self.begin()?;
        let fs = self.fs.as_ref();
        match fs.read_dir(target) {
            Ok(names) if !names.is_empty() => {
                return Err(Error::NotEmpty {
                    path: target.to_path_buf(),
                })
            }
            _ => {}
        }
        let target_log = target.join(
            source
                .log_dir()
                .file_name()
                .map_or_else(|| PathBuf::from("wal"), PathBuf::from),
        );
        kv_wal::fs::create_dir_all_durably(fs, target)
            .map_err(|e| Error::io("create", target, e))?;
        let marker = target.join(CHECKPOINT_MARKER);
        fs.open(&marker, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", &marker, e))?;
        fs.sync_dir(target)
            .map_err(|e| Error::io("sync the directory", target, e))?;
        for dir in [target.join(SNAPSHOTS), target_log.clone()] {
            kv_wal::fs::create_dir_all_durably(fs, &dir)
                .map_err(|e| Error::io("create", &dir, e))?;
        }
        let log_from = source.rotate().map_err(Error::Log)?;
        let sum = self.write_snapshot(source, target, 1, bytes_per_sec)?;
        let end = source.sync_log().map_err(Error::Log)?;
        let log_dir = source.log_dir();
        for id in log_from..=end.segment {
            let name = segment::file_name(id);
            let len = (id == end.segment).then_some(end.offset);
            copy_file(fs, &log_dir.join(&name), &target_log.join(&name), len)?;
        }
        fs.sync_dir(&target_log)
            .map_err(|e| Error::io("sync the directory", &target_log, e))?;
        Manifest {
            snapshot: Some(1),
            log_from,
            sum: Some(sum),
        }
        .write(fs, target)?;
        fs.remove_file(&marker)
            .map_err(|e| Error::io("remove", &marker, e))?;
        fs.sync_dir(target)
            .map_err(|e| Error::io("sync the directory", target, e))
    }
}

/// Whether `name` in `snapshots/` is a snapshot or an unfinished one (`<id>` or `<id>.tmp`):
/// only those are ever removed.
fn is_snapshot_name(name: &str) -> bool {
    let id = name.strip_suffix(TMP_SUFFIX).unwrap_or(name);
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// The names in `dir/snapshots/` that are snapshots or unfinished ones; none if it is missing.
fn snapshot_names(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<String>> {
    let snapshots = dir.join(SNAPSHOTS);
    match fs.read_dir(&snapshots) {
        Ok(names) => Ok(names
            .into_iter()
            .filter(|name| is_snapshot_name(name))
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("list", snapshots, e)),
    }
}

/// Whether the log in `log_dir` still holds segment 0, which every compaction deletes.
fn holds_first_segment(fs: &dyn FileSystem, log_dir: &Path) -> Result<bool> {
    match fs.read_dir(log_dir) {
        Ok(names) => Ok(names
            .iter()
            .any(|name| segment::parse_file_name(name) == Some(0))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("list", log_dir, e)),
    }
}

/// Total size of the files in `dir`.
fn dir_bytes(fs: &dyn FileSystem, dir: &Path) -> Result<u64> {
    let mut total = 0;
    for name in fs.read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let path = dir.join(name);
        let file = fs
            .open(&path, OpenMode::Read)
            .map_err(|e| Error::io("open", &path, e))?;
        total += file.size().map_err(|e| Error::io("read", &path, e))?;
    }
    Ok(total)
}

/// Copies `from` to the new file `to` (its first `len` bytes, or all of it), synced.
fn copy_file(fs: &dyn FileSystem, from: &Path, to: &Path, len: Option<u64>) -> Result<()> {
    let source = fs
        .open(from, OpenMode::Read)
        .map_err(|e| Error::io("open", from, e))?;
    let len = match len {
        Some(len) => len,
        None => source.size().map_err(|e| Error::io("read", from, e))?,
    };
    let target = fs
        .open(to, OpenMode::CreateNew)
        .map_err(|e| Error::io("create", to, e))?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let want = buffer.len().min((len - at) as usize);
        let read = source
            .read_at(&mut buffer[..want], at)
            .map_err(|e| Error::io("read", from, e))?;
        if read == 0 {
            break;
        }
        target
            .write_all_at(&buffer[..read], at)
            .map_err(|e| Error::io("write", to, e))?;
        at += read as u64;
    }
    target.sync_data().map_err(|e| Error::io("sync", to, e))
}
