//! How a log is opened: directory, segment size, fsync policy, recovery mode, limits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fs::{FileSystem, StdFileSystem};
use crate::record::{Record, RecordKind};

/// nori-wal 0.1's segment size: 128 MiB.
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 128 * 1024 * 1024;
/// The default key limit: 64 KiB.
pub const DEFAULT_MAX_KEY_SIZE: usize = 64 * 1024;
/// The default value limit: 64 MiB.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 64 * 1024 * 1024;

/// The longest key or value the log format holds: 4 GiB less a byte. A record's length
/// fields are varints with no limit of their own, but a longer one is read back as damage
/// (`record.rs`, `MAX_FIELD_LEN`), so no limit may let one be written.
pub const MAX_FIELD_SIZE: usize = u32::MAX as usize;

/// The smallest segment size accepted: room for a record's header and checksum.
pub const MIN_SEGMENT_SIZE: u64 = 64;

/// The longest `FsyncPolicy::Batch` window accepted: an hour.
pub const MAX_BATCH_WINDOW: Duration = Duration::from_secs(3600);

/// When appended records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every append, before it returns.
    Always,
    /// A background thread syncs within this window of the first unsynced append, whether or
    /// not more appends arrive: the window is an upper bound on what a power loss can take.
    Batch(Duration),
    /// Never sync; the operating system writes back when it likes. A process crash loses
    /// nothing (the bytes are in the kernel), a power loss can lose anything unsynced.
    Os,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Batch(Duration::from_millis(5))
    }
}

/// What opening a log does about damage it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// A record cut short or failing its checksum at the tail of the last segment is what a
    /// crash in mid-write leaves: it is truncated and reported. Damage anywhere else is an
    /// error naming the segment and offset, and nothing is changed.
    #[default]
    TolerateTornTail,
    /// Any damage, a torn tail included, is an error.
    Strict,
    /// Keep every valid record that can be found, skip what is damaged and report each
    /// skipped range. For inspection and repair tools.
    Salvage,
}

/// Size limits on keys and values, checked before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    /// The longest key accepted, in bytes.
    pub max_key_size: usize,
    /// The longest value accepted (before compression), in bytes.
    pub max_value_size: usize,
}

impl Default for SizeLimits {
    fn default() -> Self {
        SizeLimits {
            max_key_size: DEFAULT_MAX_KEY_SIZE,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
        }
    }
}

impl SizeLimits {
    /// Each limit raised to `other`'s where that is higher: what a reader must accept to
    /// read back whatever either allowed to be written.
    #[must_use]
    pub fn at_least(self, other: SizeLimits) -> SizeLimits {
        SizeLimits {
            max_key_size: self.max_key_size.max(other.max_key_size),
            max_value_size: self.max_value_size.max(other.max_value_size),
        }
    }

    /// Refuses limits the log format cannot honour: a key or value over
    /// [`MAX_FIELD_SIZE`] would be read back as damage.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the limit that is too high.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("max_key_size", self.max_key_size),
            ("max_value_size", self.max_value_size),
        ] {
            if value > MAX_FIELD_SIZE {
                return Err(Error::InvalidConfig(format!(
                    "{name} of {value} bytes is over the {MAX_FIELD_SIZE} bytes the log format holds"
                )));
            }
        }
        Ok(())
    }

    /// Refuses a record whose key or value is over the limits.
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooLarge`] or [`Error::ValueTooLarge`].
    pub fn check(&self, record: &Record) -> Result<()> {
        let value_len = match record.kind {
            RecordKind::Put => record.value.len(),
            RecordKind::Delete => 0,
        };
        self.check_lengths(record.key.len(), value_len)
    }

    /// Refuses a key or value length over the limits.
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooLarge`] or [`Error::ValueTooLarge`].
    pub fn check_lengths(&self, key_len: usize, value_len: usize) -> Result<()> {
        if key_len > self.max_key_size {
            return Err(Error::KeyTooLarge {
                len: key_len,
                max: self.max_key_size,
            });
        }
        if value_len > self.max_value_size {
            return Err(Error::ValueTooLarge {
                len: value_len,
                max: self.max_value_size,
            });
        }
        Ok(())
    }
}

/// Everything [`Wal::open`](crate::Wal::open) needs to know.
///
/// ```
/// use std::time::Duration;
/// use kv_wal::{FsyncPolicy, WalConfig};
///
/// let config = WalConfig::new("/tmp/my-log")
///     .max_segment_size(64 << 20)
///     .fsync_policy(FsyncPolicy::Batch(Duration::from_millis(2)));
/// assert_eq!(config.max_segment_size, 64 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// The directory holding the segments.
    pub dir: PathBuf,
    /// A segment rotates when the next append would take it past this size.
    pub max_segment_size: u64,
    /// When appends are made durable.
    pub fsync_policy: FsyncPolicy,
    /// Reserve each new segment's blocks up front, so appends change no file metadata.
    pub preallocate: bool,
    /// Copy small appends into a memory-mapped window of the preallocated segment instead of
    /// making a `pwrite` each: several times faster for appends that are not each synced.
    /// Only on file systems known to write preallocated blocks in place (ext2/3/4, XFS,
    /// tmpfs); elsewhere appends go by `pwrite` whatever this says (see
    /// [`WriteWindow`](crate::fs::WriteWindow)).
    /// Turn it off when nearly every append is followed by a sync: an `fdatasync` of mapped
    /// pages costs more than one of written pages (measured: 5,100 against 8,000 a second).
    pub write_window: bool,
    /// What opening does about damage.
    pub recovery_mode: RecoveryMode,
    /// Key and value size limits.
    pub limits: SizeLimits,
    /// The file layer; the real file system unless a test swaps in another.
    pub file_system: Arc<dyn FileSystem>,
}

impl WalConfig {
    /// The defaults, for the log in `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WalConfig {
            dir: dir.into(),
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
            fsync_policy: FsyncPolicy::default(),
            preallocate: true,
            write_window: true,
            recovery_mode: RecoveryMode::default(),
            limits: SizeLimits::default(),
            file_system: Arc::new(StdFileSystem),
        }
    }

    /// Sets the segment size.
    #[must_use]
    pub fn max_segment_size(mut self, bytes: u64) -> Self {
        self.max_segment_size = bytes;
        self
    }

    /// Sets the fsync policy.
    #[must_use]
    pub fn fsync_policy(mut self, policy: FsyncPolicy) -> Self {
        self.fsync_policy = policy;
        self
    }

    /// Turns preallocation of new segments on or off.
    #[must_use]
    pub fn preallocate(mut self, on: bool) -> Self {
        self.preallocate = on;
        self
    }

    /// Turns the memory-mapped write window on or off.
    #[must_use]
    pub fn write_window(mut self, on: bool) -> Self {
        self.write_window = on;
        self
    }

    /// Sets the recovery mode.
    #[must_use]
    pub fn recovery_mode(mut self, mode: RecoveryMode) -> Self {
        self.recovery_mode = mode;
        self
    }

    /// Sets the key and value limits.
    #[must_use]
    pub fn limits(mut self, limits: SizeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Swaps in another file layer (for fault-injection tests).
    #[must_use]
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.file_system = fs;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.limits.validate()?;
        if self.max_segment_size < MIN_SEGMENT_SIZE {
            return Err(Error::InvalidConfig(format!(
                "max_segment_size of {} bytes is too small to hold records",
                self.max_segment_size
            )));
        }
        if let FsyncPolicy::Batch(window) = self.fsync_policy {
            if window.is_zero() || window > MAX_BATCH_WINDOW {
                return Err(Error::InvalidConfig(format!(
                    "a Batch fsync window must be between zero and {MAX_BATCH_WINDOW:?} \
                     (got {window:?}); use FsyncPolicy::Always or FsyncPolicy::Os"
                )));
            }
        }
        Ok(())
    }
}
