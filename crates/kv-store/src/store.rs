//! The store handle.

use std::hash::BuildHasher;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::DefaultHashBuilder;
use kv_compact::{Compactor, Source};
use kv_concurrent::{default_shard_count, KeysPage, Scanner, Sharded};
use kv_core::{Entry, Expiry, Op, Value};
use kv_durable::{CompressionPolicy, Durable, EncodedWrite, OpenReport, WriteOptions};
use kv_wal::fs::{FileSystem, StdFileSystem};
use kv_wal::{Position, WalConfig};
use parking_lot::Mutex;

use crate::batch::{fix_deadlines, millis, WriteBatch};
use crate::error::{Error, Result};
use crate::into_bytes::IntoBytes;
use crate::iter::{Iter, Keys};
use crate::limits::{Admission, Growth};
use crate::maintenance::Maintenance;
use crate::options::{AutoCompact, Options};
use crate::stats::Stats;
use crate::stripes::{Stripe, StripeGuard, Stripes};
use crate::ttl::Ttl;

/// The log's directory inside the store's directory.
pub const WAL_DIR: &str = "wal";

/// Lock stripes that order read-modify-writes (`expire`, `persist`) against plain writes,
/// and, under limits, whatever takes a key away (deletes, puts with deadlines, evictions)
/// against the puts that counted on it. Those hold a stripe exclusively across a commit (an
/// fsync under `Sync`), and so does a server's pipelined block for every key it reads
/// (`KvStore::update_keys`), dozens at once: so there are enough stripes that unrelated
/// keys almost never share one. With 256, 50 clients pipelining 16 INCRs of random keys
/// each found a shared stripe with most other clients, and their commits queued one behind
/// the other: 70k INCR/s against 150-190k with 65,536 (and a p99 of 120 ms against 10).
/// Not padded to a cache line each: 16 bytes a stripe, 1 MiB in all, and two writers
/// rarely touch neighbouring stripes.
const STRIPES: usize = 1 << 16;

/// What every clone of a [`KvStore`] shares.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) durable: Durable<Sharded>,
    path: PathBuf,
    /// What the metrics call the store (`Options::name`, or the path).
    name: String,
    pub(crate) admission: Admission,
    /// A plain write holds its keys' stripes shared while it commits; `expire` and `persist`
    /// hold their key's stripe exclusively between reading the value and rewriting it, so a
    /// put in between cannot be overwritten by the old value. Under limits, a write that can
    /// take a key away holds it exclusively too, and so does an eviction from its re-check
    /// of a victim to the delete (`Admission::needs_exclusive`, `KvStore::evict`).
    /// Read-modify-writes (`update.rs`) and transactions' commits (`transaction.rs`) hold
    /// their keys' stripes exclusively; every write bumps its stripes' versions (`stripes.rs`).
    pub(crate) stripes: Stripes,
    stripe_hasher: DefaultHashBuilder,
    report: OpenReport,
    /// The store directory's lock, taken before anything in it is read or cleaned up;
    /// released by `close` or the drop.
    /// `None` once closed, and for a file system that locks nothing.
    lock: Mutex<Option<kv_wal::DirLock>>,
    compactor: Compactor,
    auto_compact: Option<AutoCompact>,
    expirations: AtomicU64,
    pub(crate) errors: AtomicU64,
    maintenance: Mutex<Option<Maintenance>>,
    /// Set first thing by `close`: every later call that writes, syncs, compacts or
    /// checkpoints is `Error::Closed`, whether or not it would reach the log (an empty batch,
    /// an oversized key, a write over a limit, `expire` of a missing key). One relaxed load
    /// per write; the log's own refusal covers a write already past this check.
    closed: AtomicBool,
}

/// An open store: a handle that any number of threads (and tokio tasks) share.
///
/// Cloning is cheap and every clone is the same store. Reads are lookups in memory and never
/// wait for the disk; writes are in the log before they are visible, and return according to
/// the store's [`Durability`](crate::Durability). [`close`](Self::close) syncs and releases the
/// directory; dropping the last handle does the same, ignoring errors.
///
/// # Errors of writes
///
/// Every call that writes (`put`, `put_with`, `put_with_ttl`, `delete`, `delete_with`,
/// `write`, `write_with`, `expire`, `persist`) fails with:
/// - [`Error::Closed`] after [`close`](Self::close), whatever the write;
/// - [`Error::InvalidOption`] for a write's own [`WriteOptions`] that the store's
///   [`Options`](crate::Options) could not hold either (a `Batch` window of zero or past
///   [`MAX_BATCH_WINDOW`](crate::MAX_BATCH_WINDOW)), before anything is written;
/// - [`Error::KeyTooLarge`] or [`Error::ValueTooLarge`] over
///   [`Options::max_key_size`](crate::Options::max_key_size) or
///   [`Options::max_value_size`](crate::Options::max_value_size) (a delete's key only
///   over what opening reads back, the larger of 64 KiB and the limit: a key written
///   under a higher limit stays deletable up to that);
/// - [`Error::LimitReached`] when the write would take the store over
///   [`Options::max_keys`](crate::Options::max_keys) or
///   [`Options::max_memory`](crate::Options::max_memory) and nothing can be evicted (or the
///   policy is `Reject`);
/// - [`Error::StorageFull`] when the disk is full, and [`Error::Io`] when the log could not
///   start a new segment: this write was not made, and the store goes on;
/// - [`Error::Failed`] when a write or fsync of the log failed, now or before: whether that
///   write reached the disk is unknown, and the store refuses every write until reopened.
///
/// A write that failed is not visible (none of its batch is).
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// use kv_store::KvStore;
///
/// let store = KvStore::open(dir.path())?;
/// store.put("fruit:apple", "red")?;
/// assert_eq!(store.get("fruit:apple").unwrap(), "red");
/// store.delete("fruit:apple")?;
/// assert!(store.get("fruit:apple").is_none());
/// store.close()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct KvStore {
    pub(crate) inner: Arc<Handles>,
}

/// What the user's handles share: the store, closed when the last of them is dropped, on
/// the dropping thread. The maintenance thread holds the store itself (briefly, while it
/// works), never one of these, so the last drop cannot be left to it: it closes only once
/// that thread is stopped (mini-redis's `DbDropGuard`), and a reopen right after the drop
/// finds the directory free.
#[derive(Debug)]
pub(crate) struct Handles(Arc<Inner>);

impl std::ops::Deref for Handles {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        // Best effort: a store already closed or failed has nothing more to do.
        let _ = self.0.close();
    }
}

impl KvStore {
    /// Opens (creating if needed) the store in directory `path` with default [`Options`],
    /// replaying its log. The log lives in `path/wal/`, so a directory written by nori-wal
    /// (only `wal/` inside) opens as it is.
    ///
    /// # Errors
    ///
    /// Those of [`open_with`](Self::open_with).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = kv_store::KvStore::open(dir.path())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<KvStore> {
        Self::open_with(path, Options::default())
    }

    /// Opens the store in `path` with `options`.
    ///
    /// # Errors
    ///
    /// Nothing was changed on disk by a failed open.
    /// - [`Error::InvalidOption`]: a setting of `options` cannot work (checked before
    ///   anything is created).
    /// - [`Error::Locked`]: another process or handle has the directory open.
    /// - [`Error::Corrupt`]: the log, the manifest or the snapshot is damaged or missing
    ///   ([`Damage`](crate::Damage) says which).
    /// - [`Error::Open`]: the directory could not be created or read (the `source()` is the
    ///   operating system's error, under the log's or the compaction's).
    /// - [`Error::Log`]: a segment left behind by a crashed compaction could not be deleted.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use kv_store::{Durability, IndexKind, KvStore, Options};
    ///
    /// let options = Options::default().durability(Durability::Sync).index(IndexKind::Ordered);
    /// let store = KvStore::open_with(dir.path(), options)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<KvStore> {
        options.validate()?;
        let path = path.as_ref().to_path_buf();
        let file_system: Arc<dyn FileSystem> = options
            .file_system
            .clone()
            .unwrap_or_else(|| Arc::new(StdFileSystem));
        let state = Sharded::new(
            options.index,
            options
                .shards
                .unwrap_or_else(|| default_shard_count(options.index)),
        );
        let compression = CompressionPolicy {
            kind: options.compression,
            threshold: options.compression_threshold,
        };
        let wal = WalConfig::new(path.join(WAL_DIR))
            .max_segment_size(options.segment_size)
            .recovery_mode(options.recovery_mode)
            .limits(options.readable_sizes())
            .file_system(Arc::clone(&file_system));
        // Lock the directory first: opening cleans up after crashed compactions, which must
        // never happen under a store that is running.
        let lock = kv_wal::fs::create_dir_all_durably(&*file_system, &path)
            .map_err(|e| kv_wal::Error::Io {
                action: "create the store directory",
                path: path.clone(),
                source: e,
            })
            .and_then(|()| file_system.lock_dir(&path))
            .map_err(|e| Error::from_open_log(path.clone(), e.into()))?;
        let compacting = |e| Error::from_open_compaction(path.clone(), e);
        let wal_dir = path.join(WAL_DIR);
        // Opening the compactor deletes nothing: the manifest is first checked against the
        // directory (its log start present, its snapshot whole, the log opened), and only
        // then is what it does not name removed, below.
        let compactor = Compactor::open(
            Arc::clone(&file_system),
            &path,
            &wal_dir,
            compression,
            wal.limits,
        )
        .map_err(compacting)?
        .with_encoders(options.compaction_threads)
        .with_rate(options.compaction_rate);
        let log_from = compactor.log_from();
        if compactor.is_recorded() {
            check_log_start(&*file_system, &path, &wal_dir, log_from.segment)?;
        }
        let started = std::time::Instant::now();
        let snapshot = compactor
            .load_snapshot(&state, options.clock.now_ms())
            .map_err(compacting)?;
        let durable_options = kv_durable::Options {
            durability: options.durability,
            compression,
            clock: Arc::clone(&options.clock),
            limits: options.sizes,
        };
        let (durable, mut report) = Durable::open(wal, log_from, state, durable_options)
            .map_err(|e| Error::from_open(path.clone(), e))?;
        // The manifest holds true: the snapshots and manifest a crash left are garbage.
        match compactor.remove_garbage() {
            Ok(()) => {}
            // `kv verify`'s file system refuses every change: the garbage stays.
            Err(kv_compact::Error::Io { source, .. }) if is_refused(&source) => {}
            Err(e) => return Err(compacting(e)),
        }
        if !compactor.is_recorded() {
            // A new store, or a log written without a manifest (nori-wal's): from now on the
            // manifest says where the log starts, so a lost first segment is found missing.
            // Written after the log's first segment exists, so a manifest always names a
            // segment that was there. Which segment a log without a manifest started at
            // cannot be known: its lowest one is taken.
            let first = *durable.log_segments().map_err(Error::from_write)?.start();
            match compactor.record_log_start(first) {
                Ok(()) => {}
                // A file system that refuses every change (`kv verify`'s) opens the log
                // as it is, as before manifests were written at creation.
                Err(kv_compact::Error::Io { source, .. }) if is_refused(&source) => {}
                Err(e) => return Err(compacting(e)),
            }
        }
        // Segments a crash left behind after a compaction switched the manifest.
        durable
            .delete_log_before(log_from.segment)
            .map_err(Error::from_write)?;
        if let Some(snapshot) = snapshot {
            report.replayed += snapshot.records;
            report.expired_dropped += snapshot.expired_dropped;
        }
        report.duration = started.elapsed();
        let inner = Arc::new(Inner {
            durable,
            name: options
                .name
                .clone()
                .unwrap_or_else(|| path.display().to_string()),
            path,
            admission: Admission::new(options.limits),
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            stripe_hasher: DefaultHashBuilder::default(),
            report,
            lock: Mutex::new(lock),
            compactor,
            auto_compact: options.auto_compact,
            expirations: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            maintenance: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        *inner.maintenance.lock() = Maintenance::start(&inner, &options);
        Ok(KvStore {
            inner: Arc::new(Handles(inner)),
        })
    }

    /// Tests only: the limits' bookkeeping (its eviction journal, its pauses).
    #[cfg(test)]
    pub(crate) fn admission(&self) -> &Admission {
        &self.inner.admission
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The store's name, the `store` label of its metrics: [`Options::name`], or the path.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// What opening found and did: records replayed, and in `recovery.corruptions` every
    /// piece of the log that was cut (a torn tail) or skipped (salvage mode), each with its
    /// segment, offset and byte count (`Display` prints it as one line). Empty when the
    /// log was whole.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = kv_store::KvStore::open(dir.path())?;
    /// for cut in &store.open_report().recovery.corruptions {
    ///     eprintln!("opening cut or skipped damage: {cut}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.report
    }

    pub(crate) fn state(&self) -> &Sharded {
        self.inner.state()
    }

    pub(crate) fn now(&self) -> u64 {
        self.inner.now_ms()
    }

    /// The value of `key`, unless it is absent or expired.
    ///
    /// The [`Value`] shares the entry's allocation with the store: a get neither copies the
    /// value nor allocates. It derefs to `[u8]`, compares with byte strings, and converts to
    /// `Bytes` (sharing the allocation) or `Vec<u8>` (a copy). It reads what the key held
    /// when it was read, whatever is written after; holding it keeps that entry allocated.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// assert_eq!(store.get("k").as_deref(), Some(&b"v"[..]));
    /// assert_eq!(store.get("k").unwrap(), "v");
    /// let bytes: kv_store::Bytes = store.get("k").unwrap().into();
    /// assert_eq!(bytes, "v");
    /// assert_eq!(store.get("missing"), None);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<Value> {
        let key = key.as_ref();
        self.inner.admission.touch(key, false);
        self.state().get_live(key, || self.now())
    }

    /// Calls `f` with the value of `key`, unless it is absent or expired, and returns what
    /// `f` returns: a read that copies nothing and touches no reference count.
    ///
    /// `f` runs while the key's shard is read-locked: it must not call this store at all,
    /// reads included (a write of a key of that shard would wait for the lock `f` holds,
    /// forever, and a read may queue behind such a writer), and it holds up writers of that
    /// shard for as long as it runs.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "value")?;
    /// assert_eq!(store.get_with("k", |v| v.len()), Some(5));
    /// assert_eq!(store.get_with("missing", |v| v.len()), None);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn get_with<R>(&self, key: impl AsRef<[u8]>, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let key = key.as_ref();
        self.inner.admission.touch(key, false);
        self.state()
            .with_live_entry(key, || self.now(), |entry| f(entry.value()))
    }

    /// The values of `keys`, in order (`None` for a key absent or expired): the same as a
    /// [`get`](Self::get) of each, faster for batches of dozens of keys (`kv bench`'s
    /// W3-many line measures by how much on your machine). The
    /// keys are hashed first, each shard's lock is taken once per batch of 64 keys, and
    /// every key's table slot is found before any entry is read, so that the memory misses
    /// of the batch overlap instead of following one another.
    ///
    /// The keys of one batch of 64 are read at one instant (an atomic write batch is seen
    /// whole or not at all by them); separate batches are not.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("a", "1")?;
    /// store.put("c", "3")?;
    /// let values = store.get_many(&["a", "b", "c"]);
    /// let values: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
    /// assert_eq!(values, [Some(&b"1"[..]), None, Some(&b"3"[..])]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Vec<Option<Value>> {
        for key in keys {
            self.inner.admission.touch(key.as_ref(), false);
        }
        self.state().get_many(keys, || self.now())
    }

    /// Calls `f(i, value)` for every key `keys[i]`, in order, with its value if it is live:
    /// [`get_many`](Self::get_many) without a reference count or a copy per value.
    ///
    /// `f` runs while the shards of up to 64 keys are read-locked: as for
    /// [`get_with`](Self::get_with), it must not call this store.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("a", "1")?;
    /// let mut lengths = Vec::new();
    /// store.get_many_with(&["a", "b"], |_, value| lengths.push(value.map(<[u8]>::len)));
    /// assert_eq!(lengths, [Some(1), None]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_many_with<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        mut f: impl FnMut(usize, Option<&[u8]>),
    ) {
        for key in keys {
            self.inner.admission.touch(key.as_ref(), false);
        }
        self.state().get_many_with(
            keys,
            || self.now(),
            |i, entry| f(i, entry.map(Entry::value)),
        );
    }

    /// Looks `keys` up together, their cache misses overlapping, and returns nothing: a
    /// hint for a caller about to read or write each of them in turn (a server answering a
    /// pipeline), whose lookups then find them in the CPU's caches instead of each waiting
    /// for memory. Changes nothing and counts no access (no [`Stats`] figure, no
    /// eviction's recency).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("a", "1")?;
    /// store.prefetch(&["a", "b"]);
    /// assert_eq!(store.get("a").unwrap(), "1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefetch<K: AsRef<[u8]>>(&self, keys: &[K]) {
        self.state().prefetch(keys);
    }

    /// Whether `key` holds a live value.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// assert!(store.contains_key("k"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> bool {
        // The clock is read only for an entry with a deadline.
        self.state()
            .with_live_entry(key.as_ref(), || self.now(), |_| ())
            .is_some()
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    ///
    /// Those of every write: see [`KvStore`](KvStore#errors-of-writes).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v1")?;
    /// store.put("k", "v2")?;
    /// assert_eq!(store.get("k").unwrap(), "v2");
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&self, key: impl IntoBytes, value: impl IntoBytes) -> Result<()> {
        self.submit(
            vec![Op::put(key.into_bytes(), value.into_bytes())],
            WriteOptions::default(),
        )
    }

    /// Sets `key` to `value` until `ttl` from now; from then on reads do not see it. The
    /// deadline is absolute: reopening the store later does not extend it.
    ///
    /// # Errors
    ///
    /// Those of every write: see [`KvStore`](KvStore#errors-of-writes).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// use std::time::Duration;
    /// store.put_with_ttl("session", "token", Duration::from_secs(60))?;
    /// assert!(store.ttl("session").remaining().unwrap() <= Duration::from_secs(60));
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_with_ttl(
        &self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        ttl: Duration,
    ) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put_with_ttl(key, value, ttl);
        self.submit(batch.ops, WriteOptions::default())
    }

    /// Removes `key` (a key that is not there is no error).
    ///
    /// # Errors
    ///
    /// Those of every write: see [`KvStore`](KvStore#errors-of-writes).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// store.delete("k")?;
    /// assert!(!store.contains_key("k"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete(&self, key: impl IntoBytes) -> Result<()> {
        self.submit(vec![Op::delete(key.into_bytes())], WriteOptions::default())
    }

    /// [`put`](Self::put) with its own durability: say, a write that returns only once it
    /// is on stable storage in a store that batches its syncs.
    ///
    /// # Errors
    ///
    /// Those of every write: see [`KvStore`](KvStore#errors-of-writes); and
    /// [`Error::InvalidOption`] for a `Batch` window of zero or past
    /// [`MAX_BATCH_WINDOW`](crate::MAX_BATCH_WINDOW), before anything is written.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use kv_store::{Durability, KvStore, Options, WriteOptions};
    /// let store = KvStore::open_with(dir.path(), Options::default().durability(Durability::None))?;
    /// store.put("draft", "x")?;
    /// store.put_with("order:1", "paid", WriteOptions::sync())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_with(
        &self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        options: WriteOptions,
    ) -> Result<()> {
        self.submit(vec![Op::put(key.into_bytes(), value.into_bytes())], options)
    }

    /// [`delete`](Self::delete) with its own durability, as [`put_with`](Self::put_with).
    ///
    /// # Errors
    ///
    /// Those of [`put_with`](Self::put_with).
    pub fn delete_with(&self, key: impl IntoBytes, options: WriteOptions) -> Result<()> {
        self.submit(vec![Op::delete(key.into_bytes())], options)
    }

    /// Writes every operation of `batch` atomically: after any crash all of them are there
    /// or none, and no reader sees some without the others.
    ///
    /// # Errors
    ///
    /// Those of every write: see [`KvStore`](KvStore#errors-of-writes).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// let mut batch = kv_store::WriteBatch::new();
    /// batch.put("a", "1").put("b", "2");
    /// store.write(batch)?;
    /// assert_eq!(store.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.submit(batch.ops, WriteOptions::default())
    }

    /// Writes `batch` atomically with its own durability (say, `WriteOptions::sync()` in a
    /// store that batches its syncs).
    ///
    /// # Errors
    ///
    /// Those of every write: see [`KvStore`](KvStore#errors-of-writes).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// let mut batch = kv_store::WriteBatch::new();
    /// batch.put("important", "yes");
    /// store.write_with(batch, kv_store::WriteOptions::sync())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_with(&self, batch: WriteBatch, options: WriteOptions) -> Result<()> {
        self.submit(batch.ops, options)
    }

    /// Writes `ops` on this thread if nothing can make it wait for the disk or for another
    /// writer (see [`Durable::try_write_now`], which checks the log's side); gives them back
    /// otherwise, for [`KvStore::submit`] to write on a thread that may wait. On this side:
    /// a store with limits may evict or wait for room (up to seconds), and a key's stripe
    /// may be held exclusively by a read-modify-write across its own commit, so both are
    /// given back.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn try_submit_now(
        &self,
        mut ops: Vec<Op>,
        options: WriteOptions,
    ) -> std::result::Result<Result<()>, Vec<Op>> {
        if !self.writes_in_place(options) {
            return Err(ops);
        }
        // Absolute deadlines from now on: given back, the ops keep the ones they got here.
        match self.prepare(&mut ops, options) {
            Ok(true) => {}
            Ok(false) => return Ok(Ok(())),
            Err(e) => return Ok(self.inner.counted(Err(e))),
        }
        let Some(stripes) = self.try_lock_stripes_shared(&ops) else {
            return Err(ops);
        };
        let result = match self.inner.durable.try_write_now(ops, options) {
            Ok(result) => result,
            Err(ops) => {
                // Given back unwritten: no version to bump (`stripes.rs`).
                stripes.unwritten();
                return Err(ops);
            }
        };
        Ok(self.inner.counted(result.map_err(Error::from_write)))
    }

    /// What every write does first, whichever way it goes on: refuses once the store is
    /// closing, and a write's own durability that the store's options could not hold either
    /// (a `Batch` window of zero or past [`MAX_BATCH_WINDOW`](crate::MAX_BATCH_WINDOW));
    /// makes relative deadlines absolute (reading the clock only when a put has one).
    /// `false` when there is nothing to write.
    fn prepare(&self, ops: &mut [Op], options: WriteOptions) -> Result<bool> {
        self.inner.refuse_if_closed()?;
        if let Some(durability) = options.durability {
            crate::options::check_durability(durability)?;
        }
        if ops.is_empty() {
            return Ok(false);
        }
        if ops
            .iter()
            .any(|op| matches!(op, Op::Put { expiry, .. } if *expiry != Expiry::Never))
        {
            fix_deadlines(ops, self.now());
        }
        Ok(true)
    }

    /// Every write goes through here: limits, stripes, then the durable layer.
    pub(crate) fn submit(&self, ops: Vec<Op>, options: WriteOptions) -> Result<()> {
        self.inner.counted(self.submit_uncounted(ops, options))
    }

    fn submit_uncounted(&self, mut ops: Vec<Op>, options: WriteOptions) -> Result<()> {
        if !self.prepare(&mut ops, options)? {
            return Ok(());
        }
        // Encoded before its stripes are taken (encoding reads nothing they guard), while a
        // single write's stripe comes into the cache.
        let single = self.fetch_stripe(&ops);
        let Some(encoded) = self
            .inner
            .durable
            .encode(ops, options)
            .map_err(Error::from_write)?
        else {
            return Ok(());
        };
        let ops = encoded.ops();
        let admission = &self.inner.admission;
        if !admission.is_limited() {
            // Released after the commit, bumping the stripes' versions for transactions'
            // WATCH (`stripes.rs`): one atomic add on the cache line the lock just took.
            let _stripes = self.lock_stripes(ops, single, &[]);
            return self.commit(encoded);
        }
        // Room made by evicting or waiting in an earlier pass, kept for the next.
        let mut room = None;
        // The end of all this write's waiting for room: set when it is first blocked, so a
        // write admitted at once reads no clock.
        let mut wait_until = None;
        // Which keys this write holds exclusively; no allocation for a single key.
        let (mut one, mut many) = ([false], Vec::new());
        loop {
            let exclusive: &[bool] = if let [op] = ops {
                one[0] = admission.needs_exclusive(self.state(), op);
                &one
            } else {
                many.clear();
                many.extend(
                    ops.iter()
                        .map(|op| admission.needs_exclusive(self.state(), op)),
                );
                &many
            };
            let stripes = self.lock_stripes(ops, single, exclusive);
            // Sized under the stripes: this is what applying the write will add (see
            // `limits.rs`). Under a memory limit that is one more lookup per key than
            // before (`needs_exclusive`), needed for the limit to hold.
            let growth = admission.growth(self.state(), ops, exclusive);
            match admission.reserve(self.state(), growth, room.take()) {
                Ok(_reservation) => return self.commit(encoded),
                Err(blocked) => {
                    // Evicting takes stripes, and waiting must not keep others' writes
                    // from finishing: let go of everything first.
                    stripes.unwritten();
                    let until =
                        *wait_until.get_or_insert_with(|| Instant::now() + admission.max_wait());
                    room = Some(self.make_room(growth, blocked, until, &|_| false)?);
                }
            }
        }
    }

    /// Writes `encoded` (its stripes held by the caller) and applies it.
    fn commit(&self, encoded: EncodedWrite) -> Result<()> {
        for op in encoded.ops() {
            self.inner.admission.touch(op.key(), true);
        }
        self.inner
            .durable
            .write_encoded(encoded)
            .map_err(Error::from_write)
    }

    /// Reserves `growth`, or, where the policy evicts, makes room for it by evicting (never
    /// a key `spared` says to keep), or by waiting for other writes to release what they reserved or
    /// to finish their evictions; `blocked` (the refusal) once `deadline` has passed.
    /// Called holding no stripe.
    pub(crate) fn make_room(
        &self,
        growth: Growth,
        mut blocked: Error,
        deadline: Instant,
        spared: &dyn Fn(&[u8]) -> bool,
    ) -> Result<crate::limits::Reservation<'_>> {
        let admission = &self.inner.admission;
        loop {
            // A write larger than the limit itself is refused before anything is evicted.
            if !admission.evicts() || Admission::never_fits(&blocked) {
                return Err(blocked);
            }
            // Every pass, whatever the last one did: victims that keep changing, or room
            // that other writes keep taking first, must not hold this write for ever.
            if Instant::now() >= deadline {
                return Err(blocked);
            }
            let victims = admission.victims(self.state(), self.now(), &blocked, spared);
            if victims.is_empty() {
                // Nothing stored stands in the way: other writes' reservations do, or
                // evictions in progress are freeing it; they end soon.
                if !admission.wait_for_release(deadline) {
                    return Err(blocked);
                }
            } else {
                admission.after_sampling(&victims);
                if self.evict(victims, &blocked)? == 0 {
                    // Every victim was written or read since it was sampled, or other
                    // evictions already free what is missing: look again.
                    std::thread::yield_now();
                }
            }
            match admission.reserve(self.state(), growth, None) {
                Ok(reservation) => return Ok(reservation),
                Err(again) => blocked = again,
            }
        }
    }

    /// Deletes, through the log, each victim still as it was sampled, while the write
    /// `blocked` describes still lacks room; returns how many.
    ///
    /// Victims are taken in stripe order (as writers take stripes, so none deadlock). Before
    /// each, the shortfall is read again: what other evictions, this one's included, are
    /// about to free counts as free, so writers blocked together do not each evict for all
    /// of them. Each victim's stripe is held exclusively from its re-check until the
    /// deletes are applied, so no write of these keys is in flight: one that slipped in
    /// after sampling changed the entry or its sketch counter, and its key is skipped.
    fn evict(&self, victims: Vec<crate::limits::Victim>, blocked: &Error) -> Result<usize> {
        let admission = &self.inner.admission;
        let state = self.state();
        let mut victims: Vec<(usize, crate::limits::Victim)> = victims
            .into_iter()
            .map(|v| (self.inner.stripe_of(v.entry.key()), v))
            .collect();
        victims.sort_by_key(|(stripe, _)| *stripe);
        // Each stripe held, and whether a delete is written under it: a stripe held only to
        // re-check victims that changed is released without a bump, so transactions that
        // watch its keys do not fail for nothing.
        let mut stripes: Vec<(StripeGuard<'_>, bool)> = Vec::with_capacity(victims.len());
        let mut locked = None;
        let mut deletes = Vec::with_capacity(victims.len());
        let mut evicting = admission.evicting();
        for (stripe, victim) in &victims {
            if admission.shortfall(state, blocked) == 0 {
                break;
            }
            if locked != Some(*stripe) {
                stripes.push((self.inner.stripes[*stripe].write(), false));
                locked = Some(*stripe);
            }
            if admission.still_victim(state, victim) {
                evicting.add(Admission::memory_of_victim(state, &victim.entry));
                deletes.push(Op::delete(Bytes::copy_from_slice(victim.entry.key())));
                if let Some((_, wrote)) = stripes.last_mut() {
                    *wrote = true;
                }
            }
        }
        let (written, unwritten): (Vec<_>, Vec<_>) =
            stripes.into_iter().partition(|(_, wrote)| *wrote);
        unwritten
            .into_iter()
            .for_each(|(guard, _)| guard.unwritten());
        if deletes.is_empty() {
            return Ok(0);
        }
        #[cfg(test)]
        admission.journal.lock().extend(
            victims
                .iter()
                .filter(|(_, v)| deletes.iter().any(|d| d.key() == v.entry.key()))
                .map(|(_, v)| {
                    (
                        Bytes::copy_from_slice(v.entry.key()),
                        Bytes::copy_from_slice(v.entry.value()),
                    )
                }),
        );
        let evicted = deletes.len();
        self.inner
            .durable
            .write(deletes, WriteOptions::default())
            .map_err(Error::from_write)?;
        // Applied: what the victims took is no longer counted in what is stored.
        drop(evicting);
        drop(written);
        admission
            .evictions
            .fetch_add(evicted as u64, Ordering::Relaxed);
        Ok(evicted)
    }

    /// The stripe of a write of one key (`None` for several), brought into the cache
    /// without waiting for it (`Stripe::fetch`): what the caller does before taking it
    /// overlaps that miss.
    fn fetch_stripe(&self, ops: &[Op]) -> Option<usize> {
        let [op] = ops else { return None };
        let stripe = self.inner.stripe_of(op.key());
        self.inner.stripes[stripe].fetch();
        Some(stripe)
    }

    /// Holds the stripes of `ops`' keys in stripe order (so two writers cannot deadlock),
    /// each exclusively if any op of it says so in `exclusive` (none if it is empty), shared
    /// otherwise. `single`: the stripe of a write of one key, from
    /// [`fetch_stripe`](Self::fetch_stripe).
    fn lock_stripes(
        &self,
        ops: &[Op],
        single: Option<usize>,
        exclusive: &[bool],
    ) -> StripeGuards<'_> {
        let stripes = &self.inner.stripes;
        if let Some(stripe) = single {
            return StripeGuards::One(hold(&stripes[stripe], exclusive.first() == Some(&true)));
        }
        let keys = ops
            .iter()
            .enumerate()
            .map(|(i, op)| (&op.key()[..], exclusive.get(i) == Some(&true)));
        StripeGuards::Many(
            self.inner
                .stripes_wanted(keys)
                .into_iter()
                .map(|(i, exclusive)| hold(&stripes[i], exclusive))
                .collect(),
        )
    }

    /// The stripes of `ops`, held shared, if none is held exclusively now.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    fn try_lock_stripes_shared(&self, ops: &[Op]) -> Option<StripeGuards<'_>> {
        let stripes = &self.inner.stripes;
        if let [op] = ops {
            let stripe = stripes[self.inner.stripe_of(op.key())].try_read()?;
            return Some(StripeGuards::One(stripe));
        }
        let wanted = self
            .inner
            .stripes_wanted(ops.iter().map(|op| (&op.key()[..], false)));
        let mut held = Vec::with_capacity(wanted.len());
        for (i, _) in wanted {
            match stripes[i].try_read() {
                Some(guard) => held.push(guard),
                None => {
                    held.into_iter().for_each(StripeGuard::unwritten);
                    return None;
                }
            }
        }
        Some(StripeGuards::Many(held))
    }

    /// Rewrites `key`'s value with the deadline `deadline` gives its current one, under its
    /// stripe held exclusively; `false` when the key is not live or `deadline` says no.
    /// `None` when the rewrite would add a deadline to an entry without one and `room` was
    /// not reserved for it (the entry changed since the caller looked): nothing is written.
    fn rewrite_deadline(
        &self,
        key: &[u8],
        room: bool,
        deadline: impl FnOnce(Option<u64>) -> Option<Expiry>,
    ) -> Result<Option<bool>> {
        let stripe = self.inner.stripes[self.inner.stripe_of(key)].write();
        let now = self.now();
        let current = self.state().with_entry(key, now, |e| {
            (Bytes::copy_from_slice(e.value()), e.deadline())
        });
        let Some((value, old)) = current else {
            stripe.unwritten();
            return Ok(Some(false));
        };
        let Some(expiry) = deadline(old) else {
            stripe.unwritten();
            return Ok(Some(false));
        };
        if old.is_none() && expiry != Expiry::Never && !room {
            stripe.unwritten();
            return Ok(None);
        }
        let op = Op::Put {
            key: Bytes::copy_from_slice(key),
            value,
            expiry,
        };
        let result = self
            .inner
            .durable
            .write(vec![op], WriteOptions::default())
            .map_err(Error::from_write);
        self.inner.counted(result).map(|()| Some(true))
    }

    /// Under a memory limit, reserves what a deadline adds to `key`'s entry if it has none
    /// (evicting if the policy says so, never `key` itself), and says whether there is room
    /// for a deadline the entry lacks: always without a memory limit (a deadline adds no
    /// key). Done before `rewrite_deadline` takes the key's stripe, since evicting takes
    /// stripes too. The entry may change in between: what is reserved is the deadline's
    /// bytes alone, all that the rewrite adds to an entry without one, whatever its value.
    fn reserve_deadline(
        &self,
        key: &[u8],
        wait_until: &mut Option<Instant>,
    ) -> Result<(bool, Option<crate::limits::Reservation<'_>>)> {
        let admission = &self.inner.admission;
        if !admission.limits_memory() {
            return Ok((true, None));
        }
        // Whether the rewrite fits the size limits, checked first, as every write is
        // (`submit_uncounted`): one the log would refuse (a value written under a larger
        // limit) must not evict anything.
        // `None` for a key absent or with a deadline already.
        let fits = self.state().with_entry(key, self.now(), |e| {
            e.deadline()
                .is_none()
                .then(|| self.inner.durable.check_put(key.len(), e.value().len()))
        });
        let Some(fits) = fits.flatten() else {
            // Absent, or it has one: `rewrite_deadline` looks again under the stripe.
            return Ok((false, None));
        };
        fits.map_err(Error::from_write)?;
        admission.before_reserving();
        let growth = admission.deadline_growth(self.state(), key.len());
        let reservation = match admission.reserve(self.state(), growth, None) {
            Ok(reservation) => reservation,
            Err(blocked) => {
                let until =
                    *wait_until.get_or_insert_with(|| Instant::now() + admission.max_wait());
                self.make_room(growth, blocked, until, &|k| k == key)?
            }
        };
        Ok((true, Some(reservation)))
    }

    /// Makes `key` expire `ttl` from now; `false` if it holds no live value.
    ///
    /// # Errors
    ///
    /// Those of every write: see [`KvStore`](KvStore#errors-of-writes) (the rewrite of the
    /// entry with its new deadline is one).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// use std::time::Duration;
    /// store.put("k", "v")?;
    /// assert!(store.expire("k", Duration::from_secs(30))?);
    /// assert!(store.ttl("k").remaining().is_some());
    /// assert!(!store.expire("missing", Duration::from_secs(30))?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn expire(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Result<bool> {
        self.inner.refuse_if_closed()?;
        let key = key.as_ref();
        let deadline = self.now().saturating_add(millis(ttl));
        // One end to all the waiting for room, across the retries below.
        let mut wait_until = None;
        loop {
            let (room, _reservation) = self
                .inner
                .counted(self.reserve_deadline(key, &mut wait_until))?;
            let set = Some(Expiry::AtUnixMillis(deadline));
            if let Some(done) = self.rewrite_deadline(key, room, |_| set)? {
                return Ok(done);
            }
            // A `persist` took the deadline away after the room was sized: size it again.
        }
    }

    /// Removes `key`'s deadline; `false` if it holds no live value or had no deadline.
    ///
    /// # Errors
    ///
    /// Those of every write: see [`KvStore`](KvStore#errors-of-writes) (the rewrite of the
    /// entry without its deadline is one).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// use std::time::Duration;
    /// store.put_with_ttl("k", "v", Duration::from_secs(30))?;
    /// assert!(store.persist("k")?);
    /// assert_eq!(store.ttl("k"), kv_store::Ttl::NoDeadline);
    /// # Ok(())
    /// # }
    /// ```
    pub fn persist(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.inner.refuse_if_closed()?;
        // Removing a deadline needs no room, so this never asks for a retry.
        let removed =
            self.rewrite_deadline(key.as_ref(), true, |old| old.map(|_| Expiry::Never))?;
        Ok(removed.unwrap_or(false))
    }

    /// The time `key` has left: [`Ttl::NoKey`] if it holds no live value,
    /// [`Ttl::NoDeadline`] if it never expires, else [`Ttl::Remaining`].
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// use kv_store::Ttl;
    /// store.put("k", "v")?;
    /// assert_eq!(store.ttl("k"), Ttl::NoDeadline);
    /// assert_eq!(store.ttl("missing"), Ttl::NoKey);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(&self, key: impl AsRef<[u8]>) -> Ttl {
        let now = self.now();
        match self.deadline_ms(key.as_ref(), now) {
            None => Ttl::NoKey,
            Some(None) => Ttl::NoDeadline,
            Some(Some(d)) => Ttl::Remaining(Duration::from_millis(d.saturating_sub(now))),
        }
    }

    /// When `key` expires: `None` when it is absent (or expired), `Some(None)` when it has no
    /// deadline. One read, as [`ttl`](Self::ttl), but absolute (`EXPIRETIME`).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// use std::time::{Duration, SystemTime};
    /// store.put("k", "v")?;
    /// assert_eq!(store.deadline("k"), Some(None));
    /// store.put_with_ttl("t", "v", Duration::from_secs(60))?;
    /// assert!(store.deadline("t").unwrap().unwrap() > SystemTime::now());
    /// assert_eq!(store.deadline("missing"), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn deadline(&self, key: impl AsRef<[u8]>) -> Option<Option<std::time::SystemTime>> {
        self.deadline_ms(key.as_ref(), self.now())
            .map(|d| d.map(crate::batch::time_of))
    }

    /// A live key's deadline in unix milliseconds, as of `now`.
    fn deadline_ms(&self, key: &[u8], now: u64) -> Option<Option<u64>> {
        self.state().with_entry(key, now, |e| e.deadline())
    }

    /// The value of `key` and its deadline, read in one lookup and judged live or not at
    /// `at` (not at the store's clock): a caller that decides at one instant (a replicated
    /// leader staging a command) sees the value and deadline of that instant together. Two
    /// lookups ([`get`](Self::get) then [`deadline`](Self::deadline)) could straddle the
    /// deadline and see a value without one.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # use std::time::{Duration, SystemTime};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// let now = SystemTime::now();
    /// store.put_with_ttl("t", "v", Duration::from_secs(60))?;
    /// let (value, deadline) = store.get_with_deadline_at("t", now).unwrap();
    /// assert_eq!(&*value, b"v");
    /// assert!(deadline.unwrap() > now);
    /// assert!(store.get_with_deadline_at("t", now + Duration::from_secs(61)).is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_with_deadline_at(
        &self,
        key: impl AsRef<[u8]>,
        at: std::time::SystemTime,
    ) -> Option<(Value, Option<std::time::SystemTime>)> {
        self.read_with_deadline(key.as_ref(), crate::batch::unix_millis(at), Value::of)
    }

    /// `value(entry)` of `key` and its deadline, read in one lookup if it is live at `now`
    /// (unix ms): a read, as [`get`](Self::get) counts one (LRU/LFU must not take the key
    /// for a cold one).
    pub(crate) fn read_with_deadline<R>(
        &self,
        key: &[u8],
        now: u64,
        value: impl FnOnce(&Entry) -> R,
    ) -> Option<(R, Option<std::time::SystemTime>)> {
        self.inner.admission.touch(key, false);
        self.state().with_entry(key, now, |e| {
            (value(e), e.deadline().map(crate::batch::time_of))
        })
    }

    /// Every live entry, as `(key, value)`, streamed: in key order with
    /// [`IndexKind::Ordered`](crate::IndexKind::Ordered) (descending from the back), shard by
    /// shard in no particular order with the hash index. The [`Iter`] owns what it reads: it
    /// may outlive this handle and move to another thread. Not a snapshot: see [`Iter`].
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("a", "1")?;
    /// store.put("b", "2")?;
    /// let mut pairs: Vec<_> = store.iter().collect();
    /// pairs.sort();
    /// assert_eq!(pairs, [("a".into(), "1".into()), ("b".into(), "2".into())]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn iter(&self) -> Iter {
        self.scan(Scanner::all(self.state()))
    }

    /// Live entries with keys in `range`, as `(key, value)`, in key order from the front and
    /// descending key order from the back (`.rev()`). The scan is streamed: it reads the store
    /// a few entries at a time and never blocks writers for long; writes made while it runs
    /// may or may not be seen (see [`Iter`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotOrdered`] unless the store keeps the ordered index.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use kv_store::{IndexKind, KvStore, Options};
    /// let store = KvStore::open_with(dir.path(), Options::default().index(IndexKind::Ordered))?;
    /// for key in ["a", "b", "c", "d"] {
    ///     store.put(key, "v")?;
    /// }
    /// let keys: Vec<_> = store.range("b".."d")?.map(|(key, _)| key).collect();
    /// assert_eq!(keys, ["b", "c"]);
    /// let last_two: Vec<_> = store.range("b"..)?.rev().take(2).map(|(key, _)| key).collect();
    /// assert_eq!(last_two, ["d", "c"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<Iter> {
        fn bound<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<&[u8]> {
            b.map(|k| k.as_ref())
        }
        let scanner = Scanner::range(
            self.state(),
            bound(range.start_bound()),
            bound(range.end_bound()),
        )
        .map_err(|_| Error::NotOrdered)?;
        Ok(self.scan(scanner))
    }

    /// Live entries whose keys start with `prefix`, in key order from the front and
    /// descending key order from the back: the same [`Iter`] as [`range`](Self::range) gives.
    ///
    /// # Errors
    ///
    /// [`Error::NotOrdered`] unless the store keeps the ordered index.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use kv_store::{IndexKind, KvStore, Options};
    /// let store = KvStore::open_with(dir.path(), Options::default().index(IndexKind::Ordered))?;
    /// store.put("user:1", "ada")?;
    /// store.put("user:2", "bob")?;
    /// store.put("team:1", "core")?;
    /// assert_eq!(store.scan_prefix("user:")?.count(), 2);
    /// assert_eq!(store.scan_prefix("user:")?.next_back().unwrap().1, "bob");
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<Iter> {
        let scanner =
            Scanner::prefix(self.state(), prefix.as_ref()).map_err(|_| Error::NotOrdered)?;
        Ok(self.scan(scanner))
    }

    /// Every live key, streamed: in key order with the ordered index, in no order with the
    /// hash index. Copies keys only; otherwise the same as [`iter`](Self::iter).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("a", "1")?;
    /// assert_eq!(store.keys().collect::<Vec<_>>(), ["a"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn keys(&self) -> Keys {
        Keys::new(self.scan(Scanner::all(self.state()).keys_only()))
    }

    /// An iterator that carries the store's shared state (not this handle, so that dropping
    /// the last handle still closes the store).
    fn scan(&self, scanner: Scanner) -> Iter {
        Iter::new(Arc::clone(&self.inner.0), scanner)
    }

    /// About `count` live keys from where `cursor` stands (`0`: the start), and the
    /// cursor of the next page (`0` once the walk is over): Redis's `SCAN`, for a store with
    /// the hash index (`None` with the ordered index, whose [`keys`](Self::keys) and
    /// [`range`](Self::range) resume from a key instead).
    ///
    /// A walk of pages, writers or not, gives every key present from its first page to its
    /// last at least once; a key written or removed meanwhile may be given or not, and a key
    /// may be given twice. A page may hold fewer keys than `count`, or none, before the
    /// walk ends (it looks at a bounded stretch of the index). A cursor means nothing to
    /// another store, or to this one reopened.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = kv_store::KvStore::open(dir.path())?;
    /// for i in 0..100 {
    ///     store.put(format!("k{i}"), "v")?;
    /// }
    /// let (mut keys, mut cursor) = (Vec::new(), 0);
    /// loop {
    ///     let page = store.keys_page(cursor, 10).expect("the hash index");
    ///     keys.extend(page.keys);
    ///     cursor = page.next;
    ///     if cursor == 0 {
    ///         break;
    ///     }
    /// }
    /// keys.sort();
    /// keys.dedup();
    /// assert_eq!(keys.len(), 100);
    /// # Ok(())
    /// # }
    /// ```
    pub fn keys_page(&self, cursor: u64, count: usize) -> Option<KeysPage> {
        self.state().keys_page(cursor, count, self.now())
    }

    /// A live key picked at random, or `None` when the store holds none (Redis's
    /// `RANDOMKEY`). Not uniform: with the hash index it is the first key from a random
    /// place of the index, so a key after a stretch of empty slots comes more often than
    /// one packed among others. Costs a few slots' look with the hash index; a walk of one
    /// shard with the ordered index.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = kv_store::KvStore::open(dir.path())?;
    /// assert_eq!(store.random_key(), None);
    /// store.put("a", "1")?;
    /// assert_eq!(store.random_key().as_deref(), Some(&b"a"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn random_key(&self) -> Option<Bytes> {
        use std::hash::{BuildHasher, Hasher};
        // A fresh `RandomState` is seeded per thread and moved on per call: a new pick
        // each time, with no generator to keep.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        self.state().random_key(seed, self.now())
    }

    /// Calls `f` with every live entry's key, value and deadline (unix ms), shard by shard,
    /// in no particular order: what export and backups walk.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8], Option<u64>)) {
        self.state()
            .for_each(self.now(), |e| f(e.key(), e.value(), e.deadline()));
    }

    /// The number of live keys.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("a", "1")?;
    /// store.put("b", "2")?;
    /// store.delete("a")?;
    /// assert_eq!(store.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.state().live_len(self.now())
    }

    /// How many entries the store holds, and how many of them carry a deadline, counting
    /// those past their deadline that the expiry sweep has not removed yet (as Redis's
    /// `INFO keyspace` counts its keys and expires): no walk of the keys, where
    /// [`len`](Self::len) walks them once any has a deadline.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("a", "1")?;
    /// store.put_with_ttl("b", "2", std::time::Duration::from_secs(60))?;
    /// assert_eq!(store.entry_counts(), (2, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn entry_counts(&self) -> (usize, usize) {
        self.state().entry_counts()
    }

    /// Whether the store holds no live key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a write with `options` may be tried on a thread that must not wait
    /// (`try_update_keys`, the async writes): not under limits, where a write may evict
    /// or wait for room, and not when it waits for its fsync.
    pub fn writes_in_place(&self, options: WriteOptions) -> bool {
        !self.inner.admission.is_limited() && self.inner.durable.returns_before_sync(options)
    }

    /// The durability its writes get unless they ask for another ([`Options::durability`]).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use kv_store::{Durability, KvStore, Options};
    /// let store = KvStore::open_with(dir.path(), Options::default().durability(Durability::Sync))?;
    /// assert_eq!(store.durability(), Durability::Sync);
    /// # Ok(())
    /// # }
    /// ```
    pub fn durability(&self) -> crate::Durability {
        self.inner.durable.options().durability
    }

    /// Makes every write so far durable (fdatasync), whatever the durability mode.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close); [`Error::Failed`] when the fsync
    /// failed (or an earlier failure had stopped the log): the store refuses every write
    /// from then on.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// store.sync()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn sync(&self) -> Result<()> {
        self.inner.refuse_if_closed()?;
        self.inner.durable.sync().map_err(Error::from_write)
    }

    /// Rewrites the live state as a snapshot and deletes the log before it, while other
    /// threads keep reading and writing. A crash at any moment of it loses nothing: the
    /// snapshot only takes over once it is complete and durable. One compaction runs at a
    /// time; a second call waits for the first.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close) (a compaction running when `close` is
    /// called stops and returns it too); [`Error::Compaction`] when it failed, having
    /// changed nothing the store depends on, unless [`Error::is_fatal`] says the log stopped
    /// on the way. After a failure whose outcome is unknown (the manifest's rename or the
    /// directory sync after it), compactions are refused until the store is reopened.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// for i in 0..100 {
    ///     store.put("counter", i.to_string())?; // 100 records, one live key
    /// }
    /// let report = store.compact()?;
    /// assert_eq!(report.entries, 1);
    /// assert!(report.bytes_after < report.bytes_before);
    /// # Ok(())
    /// # }
    /// ```
    pub fn compact(&self) -> Result<kv_compact::CompactionReport> {
        self.inner.refuse_if_closed()?;
        self.inner
            .compactor
            .compact(&StoreSource(&self.inner))
            .map_err(Error::from_compaction)
    }

    /// Writes a consistent copy of the store into `target` (a new or empty directory) while
    /// it keeps serving: open it with [`KvStore::open`] like any store. For backups.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close); [`Error::Compaction`] when `target`
    /// is not empty or a file operation failed (what was written of the copy is removed,
    /// or marked incomplete so that it never opens as a store).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let backup = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// store.checkpoint(backup.path())?;
    /// store.put("k", "after the checkpoint")?;
    /// let copy = kv_store::KvStore::open(backup.path())?;
    /// assert_eq!(copy.get("k").unwrap(), "v");
    /// # Ok(())
    /// # }
    /// ```
    pub fn checkpoint(&self, target: impl AsRef<Path>) -> Result<()> {
        self.inner.refuse_if_closed()?;
        self.inner
            .compactor
            .checkpoint(&StoreSource(&self.inner), target.as_ref())
            .map_err(Error::from_compaction)
    }

    /// [`checkpoint`](Self::checkpoint), its snapshot written as fast as the disk takes it
    /// whatever [`Options::compaction_rate`] says: for a caller that holds its own writes
    /// back until the checkpoint ends (a Raft snapshot does), where the pace would only
    /// stall them longer.
    ///
    /// # Errors
    ///
    /// As [`checkpoint`](Self::checkpoint).
    pub fn checkpoint_unpaced(&self, target: impl AsRef<Path>) -> Result<()> {
        self.inner.refuse_if_closed()?;
        self.inner
            .compactor
            .checkpoint_at(&StoreSource(&self.inner), target.as_ref(), None)
            .map_err(Error::from_compaction)
    }

    /// The store's figures now.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// let stats = store.stats();
    /// assert_eq!((stats.keys, stats.commit_records_total), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Syncs the log and releases the directory, so another process may open it. Later
    /// writes fail with [`Error::Closed`]; reads of what the store held still work.
    ///
    /// # Errors
    ///
    /// The store is closed whatever this returns. [`Error::Failed`] when the final sync
    /// failed (or an earlier failure had stopped the log); [`Error::Log`] when only cutting
    /// the log's preallocated tail failed, after every write was synced; [`Error::Closed`]
    /// when it was closed already.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// store.close()?;
    /// assert!(store.put("k", "w").is_err());
    /// let again = kv_store::KvStore::open(dir.path())?;
    /// assert_eq!(again.get("k").unwrap(), "v");
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

/// Refuses to open a log that does not hold the segment the manifest says it continues
/// from: segments were lost or come from elsewhere, and opening would either miss writes
/// or put new ones where the next open does not read them. Checked before the log is
/// opened, since opening an empty log directory creates segment 0.
fn check_log_start(fs: &dyn FileSystem, path: &Path, wal_dir: &Path, first: u64) -> Result<()> {
    let names = match fs.read_dir(wal_dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Error::Open {
                path: path.to_path_buf(),
                source: crate::error::cause(kv_wal::Error::Io {
                    action: "list the log directory",
                    path: wal_dir.to_path_buf(),
                    source: e,
                }),
            })
        }
    };
    let present = names
        .iter()
        .any(|name| kv_wal::segment::parse_file_name(name) == Some(first));
    if present {
        return Ok(());
    }
    Err(Error::from_open_log(
        path.to_path_buf(),
        kv_wal::Error::MissingSegment {
            id: first,
            dir: wal_dir.to_path_buf(),
        }
        .into(),
    ))
}

/// Whether an I/O error says the file system takes no changes at all.
fn is_refused(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

impl Inner {
    /// Stops the background thread and any compaction (waiting for one running on another
    /// thread to stop), syncs and closes the log, then releases the directory: after this,
    /// nothing of this store changes a file in it.
    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        // A compaction the maintenance thread is running stops at its next shard or pause.
        self.compactor.close();
        drop(self.maintenance.lock().take());
        let closed = self.durable.close().map_err(Error::from_write);
        drop(self.lock.lock().take());
        closed
    }

    /// The state, to read from (what an [`Iter`] reads).
    pub(crate) fn state(&self) -> &Sharded {
        self.durable.sink()
    }

    /// The store's clock, in unix ms.
    pub(crate) fn now_ms(&self) -> u64 {
        self.durable.now_ms()
    }

    /// The stripes of `keys`, each once and in stripe order (the order every writer takes
    /// them in, so none deadlock), each exclusive if any of its keys says so.
    pub(crate) fn stripes_wanted<'k>(
        &self,
        keys: impl Iterator<Item = (&'k [u8], bool)>,
    ) -> Vec<(usize, bool)> {
        let mut wanted: Vec<(usize, bool)> = keys
            .map(|(key, exclusive)| (self.stripe_of(key), exclusive))
            .collect();
        wanted.sort_unstable_by_key(|&(stripe, _)| stripe);
        // `dedup_by` hands the later of two equal neighbours first: fold it into the kept one.
        wanted.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 |= later.1;
            }
            same
        });
        wanted
    }

    /// `result`, counted in the store's errors if it is one.
    pub(crate) fn counted<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// [`Error::Closed`] once `close` has begun.
    pub(crate) fn refuse_if_closed(&self) -> Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(crate) fn stripe_of(&self, key: &[u8]) -> usize {
        self.stripe_hasher.hash_one(key) as usize & (STRIPES - 1)
    }

    /// Removes expired keys from memory (reads already skip them).
    pub(crate) fn sweep(&self) {
        let now = self.now_ms();
        let state = self.state();
        let removed = if self.admission.is_limited() {
            // A write busy with a key counted on it being there (or sized it): leave it for
            // the next sweep. Looked at under the shard's lock, so a write that takes the
            // stripe after this sees the key gone (see `limits.rs`).
            state.sweep_expired_if(now, |key| self.stripes[self.stripe_of(key)].is_free())
        } else {
            state.sweep_expired(now)
        };
        self.expirations
            .fetch_add(removed as u64, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> Stats {
        let state = self.state();
        let (log_segments, log_bytes) = self.durable.log_extent().unwrap_or((0, 0));
        Stats::from(crate::stats::Parts {
            keys: state.live_len(self.now_ms()),
            memory_used_bytes: state.memory_used(),
            live_bytes: state.entry_bytes() as u64,
            log_segments,
            log_bytes,
            snapshot_bytes: self.compactor.snapshot_bytes(),
            open: self.report.clone(),
            commit: self.durable.stats(),
            compaction: self.compactor.stats(),
            evictions: self.admission.evictions.load(Ordering::Relaxed),
            expirations: self.expirations.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        })
    }

    /// The store's name in its metrics.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Compacts if the log has outgrown the live data as the trigger says. A failure is
    /// counted in the compaction stats and retried at a later check.
    pub(crate) fn compact_if_due(&self) {
        let Some(trigger) = self.auto_compact else {
            return;
        };
        let Ok((_, log_bytes)) = self.durable.log_extent() else {
            return;
        };
        let stored = log_bytes + self.compactor.snapshot_bytes();
        let live = self.state().entry_bytes() as f64;
        if stored >= trigger.min_bytes && stored as f64 >= trigger.ratio * live {
            let _ = self.compactor.compact(&StoreSource(self));
        }
    }
}

/// The stripes a write holds while it commits: one, without allocating, for the common
/// single-key write.
enum StripeGuards<'a> {
    One(StripeGuard<'a>),
    Many(Vec<StripeGuard<'a>>),
}

impl StripeGuards<'_> {
    /// Releases the stripes without counting a write (see [`StripeGuard::unwritten`]).
    fn unwritten(self) {
        match self {
            StripeGuards::One(guard) => guard.unwritten(),
            StripeGuards::Many(guards) => guards.into_iter().for_each(StripeGuard::unwritten),
        }
    }
}

/// Holds `stripe` shared (a plain put) or exclusively (see `Admission::needs_exclusive`).
fn hold(stripe: &Stripe, exclusive: bool) -> StripeGuard<'_> {
    if exclusive {
        stripe.write()
    } else {
        stripe.read()
    }
}

/// What compaction reads from and does to the running store.
struct StoreSource<'a>(&'a Inner);

impl Source for StoreSource<'_> {
    fn rotate(&self) -> kv_durable::Result<u64> {
        Ok(self.0.durable.rotate()?.segment)
    }

    fn shards(&self) -> usize {
        self.0.state().shard_count()
    }

    fn read_shard(
        &self,
        shard: usize,
        stop: &dyn Fn() -> bool,
        f: &mut kv_compact::EntrySink<'_>,
    ) -> bool {
        /// Entries shared out under one hold of a shard's lock (a reference count each), to
        /// be read and encoded after it is released. A whole shard (440,000 entries of an
        /// ordered store on two cores) held writers 50 to 300 ms. Shared rather than copied,
        /// 4, 16 or 64 entries per hold gave a paced buffered writer the same p99 during a
        /// compaction, and 16 the fastest compaction (hash index: 0.33-0.38 s, against
        /// 0.44-0.49 s with 64); `docs/performance.md` has the figures.
        const CHUNK: usize = 16;
        let now = self.0.now_ms();
        self.0
            .state()
            .for_each_in_shard_chunked(shard, now, CHUNK, stop, |key, value, deadline| {
                f(key, value, deadline)
            })
    }

    fn delete_log_before(&self, segment: u64) -> kv_durable::Result<usize> {
        self.0.durable.delete_log_before(segment)
    }

    fn log_extent(&self) -> kv_durable::Result<(u64, u64)> {
        self.0.durable.log_extent()
    }

    fn sync_log(&self) -> kv_durable::Result<Position> {
        self.0.durable.sync()?;
        self.0.durable.log_position()
    }

    fn log_dir(&self) -> PathBuf {
        self.0.path.join(WAL_DIR)
    }
}

impl Drop for Inner {
    /// The last handle is gone: stop the background thread, then sync and release the log
    /// (best effort; a store already closed or failed has nothing more to do).
    fn drop(&mut self) {
        drop(self.maintenance.get_mut().take());
        let _ = self.durable.close();
    }
}
