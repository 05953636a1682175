//! How a store is opened: durability, index, shards, log, compression, limits, TTL sweeps.

use std::sync::Arc;
use std::time::Duration;

use kv_core::{Clock, IndexKind, SystemClock};
use kv_durable::Durability;
use kv_wal::{Compression, RecoveryMode, SizeLimits};

use crate::error::{Error, Result, Setting};

/// The most lock shards a store takes ([`Options::shards`]): 65,536. Far more than any
/// machine gains from (the default is at most 1,024), and few enough that the shards' own
/// memory (a lock and an empty index each) stays a few MiB.
pub const MAX_SHARDS: usize = 1 << 16;

/// The longest key or value [`Options::max_key_size`] and [`Options::max_value_size`]
/// accept: 4 GiB less a byte, the most a record of the log holds.
pub const MAX_SIZE_LIMIT: usize = kv_wal::MAX_FIELD_SIZE;

/// The longest window [`Durability::Batch`] accepts: an hour.
pub const MAX_BATCH_WINDOW: Duration = kv_wal::MAX_BATCH_WINDOW;

/// What a write over a memory or key limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eviction {
    /// The write fails with [`Error::LimitReached`](crate::Error::LimitReached) and changes
    /// nothing.
    #[default]
    Reject,
    /// Keys are evicted, least recently used first (approximated by sampling, as Redis does),
    /// until the write fits. Evictions are logged as deletes.
    Lru,
    /// Keys are evicted, least frequently used first (approximated by sampling, with counters
    /// that decay over time), until the write fits. Evictions are logged as deletes.
    Lfu,
}

/// When the store compacts by itself: once the log (and snapshot) exceed both `min_bytes`
/// and `ratio` times the live data, as Redis's `auto-aof-rewrite-min-size` and
/// `auto-aof-rewrite-percentage` do. Checked every sweep interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoCompact {
    /// The smallest log worth compacting (default 64 MiB).
    pub min_bytes: u64,
    /// How many times the live data the log must be (default 2).
    pub ratio: f64,
}

impl Default for AutoCompact {
    fn default() -> Self {
        AutoCompact {
            min_bytes: 64 << 20,
            ratio: 2.0,
        }
    }
}

/// Limits on what the store holds in memory. Unset limits are not enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryLimits {
    /// The most keys the store holds.
    pub max_keys: Option<usize>,
    /// The most memory the store holds, as [`Stats::memory_used`](crate::Stats) counts it:
    /// keys, values, deadlines, per-entry and index overhead.
    pub max_memory: Option<usize>,
    /// What a write over a limit does.
    pub eviction: Eviction,
}

/// The default [`Options::compaction_rate`]: 64 MiB/s.
pub const DEFAULT_COMPACTION_RATE: u64 = 64 << 20;

/// The settings of a store. Start from [`Options::default`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// use kv_store::{Compression, Durability, Eviction, IndexKind, Options};
///
/// let options = Options::default()
///     .durability(Durability::Sync)
///     .index(IndexKind::Ordered)
///     .compression(Compression::Lz4, 512)
///     .max_memory(256 << 20, Eviction::Lru)
///     .sweep_interval(Duration::from_millis(250));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) durability: Durability,
    pub(crate) index: IndexKind,
    pub(crate) shards: Option<usize>,
    pub(crate) segment_size: u64,
    pub(crate) compression: Compression,
    pub(crate) compression_threshold: usize,
    pub(crate) limits: MemoryLimits,
    pub(crate) sizes: SizeLimits,
    pub(crate) sweep_interval: Duration,
    pub(crate) metrics_interval: Duration,
    pub(crate) name: Option<String>,
    pub(crate) auto_compact: Option<AutoCompact>,
    pub(crate) compaction_threads: usize,
    pub(crate) compaction_rate: Option<u64>,
    pub(crate) recovery_mode: RecoveryMode,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) file_system: Option<Arc<dyn kv_wal::fs::FileSystem>>,
}

impl Default for Options {
    /// Batch durability with a 5 ms window, the hash index, sixteen lock shards per core,
    /// 128 MiB segments, no compression, no memory or key limits, keys up to 64 KiB and
    /// values up to 64 MiB, expired keys swept every second,
    /// compaction once the log passes 64 MiB and twice the live data, snapshots written at
    /// 64 MiB/s at most, torn tails repaired at
    /// open, metrics (feature `metrics`) published every second, named after the path.
    fn default() -> Self {
        Options {
            durability: Durability::default(),
            index: IndexKind::Hash,
            shards: None,
            segment_size: kv_wal::DEFAULT_MAX_SEGMENT_SIZE,
            compression: Compression::None,
            compression_threshold: 256,
            limits: MemoryLimits::default(),
            sizes: SizeLimits::default(),
            sweep_interval: Duration::from_secs(1),
            metrics_interval: Duration::from_secs(1),
            name: None,
            auto_compact: Some(AutoCompact::default()),
            compaction_threads: kv_compact::default_encoders(),
            compaction_rate: Some(DEFAULT_COMPACTION_RATE),
            recovery_mode: RecoveryMode::default(),
            clock: Arc::new(SystemClock),
            file_system: None,
        }
    }
}

impl Options {
    /// When writes return, relative to the disk; a write can override it with its own
    /// [`WriteOptions`](crate::WriteOptions) (`put_with`, `delete_with`, `write_with`).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The index: [`IndexKind::Hash`] (fastest point operations) or [`IndexKind::Ordered`]
    /// (range and prefix scans).
    #[must_use]
    pub fn index(mut self, index: IndexKind) -> Self {
        self.index = index;
        self
    }

    /// The number of lock shards (rounded up to a power of two, at least one); by default
    /// sixteen per core with the hash index, one per core with the ordered index (every scan
    /// visits each). More than [`MAX_SHARDS`] is refused at open
    /// ([`Error::InvalidOption`](crate::Error::InvalidOption)).
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The size at which the log starts a new segment file.
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Compresses values of at least `threshold` bytes with `kind`; smaller values, and
    /// values that would not shrink, are stored raw.
    #[must_use]
    pub fn compression(mut self, kind: Compression, threshold: usize) -> Self {
        self.compression = kind;
        self.compression_threshold = threshold;
        self
    }

    /// Limits the number of keys; `eviction` says what a write over it does.
    #[must_use]
    pub fn max_keys(mut self, keys: usize, eviction: Eviction) -> Self {
        self.limits.max_keys = Some(keys);
        self.limits.eviction = eviction;
        self
    }

    /// Limits the memory held; `eviction` says what a write over it does.
    #[must_use]
    pub fn max_memory(mut self, bytes: usize, eviction: Eviction) -> Self {
        self.limits.max_memory = Some(bytes);
        self.limits.eviction = eviction;
        self
    }

    /// The longest key a write may hold, in bytes (default 64 KiB); a longer one is
    /// [`Error::KeyTooLarge`](crate::Error::KeyTooLarge). More than [`MAX_SIZE_LIMIT`] is
    /// refused at open. Opening reads back keys up to this or the default, whichever is
    /// more: reopen with the same limit a store written with a higher one. A delete (or
    /// an eviction) is held to what opening reads back, not to this: a key written under
    /// a higher limit can still be deleted after it is lowered, if it is no longer than
    /// 64 KiB or the new limit.
    #[must_use]
    pub fn max_key_size(mut self, bytes: usize) -> Self {
        self.sizes.max_key_size = bytes;
        self
    }

    /// The longest value a write may hold, in bytes, before compression (default 64 MiB);
    /// a longer one is [`Error::ValueTooLarge`](crate::Error::ValueTooLarge). More than
    /// [`MAX_SIZE_LIMIT`] is refused at open. Opening reads back values up to this or the
    /// default, whichever is more: reopen with the same limit a store written with a higher
    /// one.
    #[must_use]
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.sizes.max_value_size = bytes;
        self
    }

    /// How often a background sweep removes expired keys from memory (reads never see them
    /// either way). `Duration::ZERO` turns the sweep off.
    #[must_use]
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// How often the store's figures are published through the `metrics` crate (feature
    /// `metrics`), whatever the sweep interval. `Duration::ZERO` publishes nothing. Without
    /// the feature, this does nothing.
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// The store's name: the `store` label of every metric it publishes, so that several
    /// stores in one process are told apart. By default, its directory's path.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// When the store compacts by itself; `None` leaves compaction to
    /// [`KvStore::compact`](crate::KvStore::compact).
    #[must_use]
    pub fn auto_compact(mut self, trigger: Option<AutoCompact>) -> Self {
        self.auto_compact = trigger;
        self
    }

    /// How many threads encode the state during a compaction, beside the one writing the
    /// snapshot. By default every core but one (at most four), which is none on two cores: a
    /// compaction is then slower but leaves the writers their latency. Below 2, none.
    #[must_use]
    pub fn compaction_threads(mut self, threads: usize) -> Self {
        self.compaction_threads = threads;
        self
    }

    /// The most bytes a second a compaction (or a checkpoint) writes its snapshot at, on
    /// average, in 256 KiB slices; `None` (or `Some(0)`) writes as fast as the disk takes it.
    ///
    /// By default 64 MiB/s: an unpaced snapshot fills the disk's queue, and every durable
    /// writer's sync waits behind it. On the README's machine (W7: 2 `Sync` writers, a
    /// 123 MB snapshot) the writers' p99 during a compaction was 12-32× its value before
    /// without a pace and 0.55-1.87× with the default (14 runs), while the compaction took
    /// 2.0 s instead of 0.37-0.55 s. The log keeps growing while a compaction runs, by what
    /// is written meanwhile, so a store written faster than this for long needs a higher
    /// rate. Raise it, or turn it off, where compactions must be fast and no writer waits on
    /// the disk (a bulk load, an offline `kv compact`).
    #[must_use]
    pub fn compaction_rate(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.compaction_rate = bytes_per_sec;
        self
    }

    /// What opening does with damage in the log.
    #[must_use]
    pub fn recovery_mode(mut self, mode: RecoveryMode) -> Self {
        self.recovery_mode = mode;
        self
    }

    /// The file layer the log writes through: the real one unless a test injects faults
    /// (`kv_wal::fs::fault::FaultyFileSystem`, behind that crate's `fault-injection` feature).
    #[must_use]
    pub fn file_system(mut self, file_system: Arc<dyn kv_wal::fs::FileSystem>) -> Self {
        self.file_system = Some(file_system);
        self
    }

    /// Where "now" comes from for TTL deadlines: the system clock unless a test injects one.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl Options {
    /// The memory and key limits set ([`max_keys`](Self::max_keys),
    /// [`max_memory`](Self::max_memory)): read by layers that must refuse some, such as a
    /// replicated store whose replicas must all apply the same writes.
    pub fn memory_limits(&self) -> MemoryLimits {
        self.limits
    }

    /// The key and value size limits set ([`max_key_size`](Self::max_key_size),
    /// [`max_value_size`](Self::max_value_size)).
    pub fn size_limits(&self) -> SizeLimits {
        self.sizes
    }

    /// The recovery mode set ([`recovery_mode`](Self::recovery_mode)).
    pub fn current_recovery_mode(&self) -> RecoveryMode {
        self.recovery_mode
    }
}

impl Options {
    /// The key and value sizes opening must read back: the defaults, or the limits set
    /// where higher, so a store written under the defaults opens under lower limits.
    pub(crate) fn readable_sizes(&self) -> SizeLimits {
        SizeLimits::default().at_least(self.sizes)
    }

    /// Refuses settings that cannot work, before anything is opened or created.
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |setting, reason: String| Err(Error::InvalidOption { setting, reason });
        if let Some(shards) = self.shards {
            if shards > MAX_SHARDS {
                return invalid(
                    Setting::Shards,
                    format!("{shards} shards are more than the {MAX_SHARDS} a store takes"),
                );
            }
        }
        check_durability(self.durability)?;
        if self.segment_size < kv_wal::MIN_SEGMENT_SIZE {
            return invalid(
                Setting::SegmentSize,
                format!(
                    "a segment of {} bytes is smaller than the {} bytes it takes to hold records",
                    self.segment_size,
                    kv_wal::MIN_SEGMENT_SIZE
                ),
            );
        }
        for (setting, bytes) in [
            (Setting::MaxKeySize, self.sizes.max_key_size),
            (Setting::MaxValueSize, self.sizes.max_value_size),
        ] {
            if bytes > MAX_SIZE_LIMIT {
                return invalid(
                    setting,
                    format!("{bytes} bytes is more than the {MAX_SIZE_LIMIT} bytes a record holds"),
                );
            }
        }
        Ok(())
    }
}

/// Refuses a `Batch` window of zero or past [`MAX_BATCH_WINDOW`], the store's or a write's
/// own ([`WriteOptions`](crate::WriteOptions)).
pub(crate) fn check_durability(durability: Durability) -> Result<()> {
    match durability {
        Durability::Batch(window) if window.is_zero() || window > MAX_BATCH_WINDOW => {
            Err(Error::InvalidOption {
                setting: Setting::Durability,
                reason: format!(
                    "a Batch window must be more than zero and at most {MAX_BATCH_WINDOW:?} \
                     (got {window:?}); Durability::Sync syncs every write, \
                     Durability::None leaves syncing to the operating system"
                ),
            })
        }
        _ => Ok(()),
    }
}
