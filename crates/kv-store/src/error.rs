//! The one error type of the facade.
//!
//! Each message says what happened in the store's terms and shows nothing of its cause: the
//! error of the layer below (the log's, a compaction's, the operating system's) is the
//! `source()`, reached as itself (`downcast_ref` works on it), never behind an `Arc`. What
//! a caller may act on is told by the variant and its fields (and [`Damage`], [`Limit`],
//! [`Setting`]), so matching never needs the types of the crates below.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use kv_durable::Shared;

/// The error of a lower layer behind an [`Error`]: its `source()`. Cloning it shares it.
/// It dereferences to the error itself, so `downcast_ref` works on it: the log's error is a
/// [`LogError`](crate::LogError), whose own `source()` is the operating system's
/// `std::io::Error` where there is one (an I/O error of the store's own is that at once).
pub type Cause = Shared<dyn std::error::Error + Send + Sync>;

/// What went wrong, and what the caller can do about it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process (or another handle in this one) has the directory open. Close it
    /// first; the data was not touched.
    #[error("{} is open in another process or handle; close it first (the data was not touched)", path.display())]
    Locked {
        /// The store's directory.
        path: PathBuf,
    },

    /// What is on disk is damaged or incomplete where opening does not repair it by itself.
    /// Nothing was changed. `kv verify` shows the damage; for damage in the log, opening with
    /// `Options::recovery_mode(RecoveryMode::Salvage)` keeps every valid record.
    #[error("cannot open the store at {}: {damage}; nothing was changed (see `kv verify`)", path.display())]
    Corrupt {
        /// The store's directory.
        path: PathBuf,
        /// What is damaged.
        damage: Damage,
        /// What the layer that found it says (where, and what is wrong).
        #[source]
        source: Cause,
    },

    /// An [`Options`](crate::Options) setting that cannot work, at open (nothing was opened
    /// or created), or a write's own [`WriteOptions`](crate::WriteOptions) that the
    /// store's options could not hold either (nothing was written).
    #[error("invalid option {setting}: {reason}")]
    InvalidOption {
        /// The setting.
        setting: Setting,
        /// Why it cannot work, and what can.
        reason: String,
    },

    /// The directory could not be opened or created (the `source()` says why: most often
    /// the operating system's error).
    #[error("cannot open the store at {}", path.display())]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: Cause,
    },

    /// The disk is full: this write was not made; earlier writes are intact and writing works
    /// again once there is space.
    #[error("the disk is full; this write was not made and earlier writes are intact")]
    StorageFull(#[source] Cause),

    /// A write or fsync of the log failed (or a commit panicked): the store refuses every
    /// write from now on, since whether the failed data reached the disk is unknown. Reads
    /// still work; reopen the store to recover.
    #[error("the store refuses every write until it is reopened")]
    Failed(#[source] Cause),

    /// A key longer than [`Options::max_key_size`](crate::Options::max_key_size) (a
    /// delete's: longer than opening reads back, the larger of 64 KiB and that limit);
    /// nothing was written.
    #[error("a key of {len} bytes is over the limit of {max} bytes; nothing was written")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A value longer than [`Options::max_value_size`](crate::Options::max_value_size);
    /// nothing was written.
    #[error("a value of {len} bytes is over the limit of {max} bytes; nothing was written")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The log's next segment could not be created (in a directory made read-only, say):
    /// nothing was written, this operation was not done, earlier writes are intact, and the
    /// store goes on; retry once the cause is fixed.
    #[error(
        "this operation was not done and the store goes on: the log could not start a new segment"
    )]
    Io(#[source] Cause),

    /// Another file operation of the log failed without stopping the store; the `source()`
    /// says what was and was not done. At open: a segment left by a crashed compaction could
    /// not be deleted (nothing else was changed). From [`KvStore::close`](crate::KvStore::close):
    /// every write was synced, then cutting the log's preallocated tail failed; the store is
    /// closed all the same, and the next open reads that zero tail as free space.
    #[error("a file operation of the log failed")]
    Log(#[source] Cause),

    /// The write would take the store over its memory or key limit and the eviction policy
    /// is `Reject` (or nothing is left to evict); nothing was written.
    #[error(
        "the write needs {needed} more {} but the {limit} of {max} leaves {available}; nothing \
         was written",
        limit.unit()
    )]
    LimitReached {
        /// Which limit.
        limit: Limit,
        /// What the write needs, in the limit's unit.
        needed: usize,
        /// What is left under the limit.
        available: usize,
        /// The configured limit.
        max: usize,
    },

    /// A compaction or a checkpoint failed (the `source()` says why). A failed compaction
    /// changed nothing the store depends on; the store goes on with its old snapshot and
    /// log, unless [`is_fatal`](Error::is_fatal) says the log stopped on the way.
    #[error("the compaction or checkpoint failed")]
    Compaction(#[source] Cause),

    /// Range and prefix scans need the ordered index (`Options::index(IndexKind::Ordered)`).
    #[error("range and prefix scans need a store opened with the ordered index")]
    NotOrdered,

    /// The store was closed: every call that writes, syncs, compacts or checkpoints is
    /// refused. Reads of what it held still work.
    #[error("the store is closed")]
    Closed,
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What [`Error::Corrupt`] found damaged or missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Damage {
    /// Records of the log are damaged (the `source()` names the segment and offset).
    Log,
    /// A segment of the log is missing: records are lost, or the directory was put together
    /// from different copies.
    MissingSegment {
        /// The missing segment's id.
        id: u64,
    },
    /// The manifest (`MANIFEST`, naming the current snapshot) is damaged.
    Manifest,
    /// The directory holds snapshots but no manifest, and its log no longer starts at
    /// segment 0: restore the manifest (the `source()` says how).
    MissingManifest,
    /// The current snapshot differs from what the manifest records of it.
    Snapshot {
        /// The snapshot's id.
        id: u64,
    },
    /// The directory holds a checkpoint that was interrupted before it was complete: it is
    /// not a store. Delete it and take the checkpoint again.
    IncompleteCheckpoint,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Log => f.write_str("its log is damaged"),
            Damage::MissingSegment { id } => write!(f, "segment {id} of its log is missing"),
            Damage::Manifest => f.write_str("its manifest is damaged"),
            Damage::MissingManifest => f.write_str("its manifest is missing"),
            Damage::Snapshot { id } => write!(f, "its snapshot {id} is damaged"),
            Damage::IncompleteCheckpoint => f.write_str("it holds an interrupted checkpoint"),
        }
    }
}

/// Which limit [`Error::LimitReached`] ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`Options::max_keys`](crate::Options::max_keys), counted in keys.
    Keys,
    /// [`Options::max_memory`](crate::Options::max_memory), counted in bytes.
    Memory,
}

impl Limit {
    /// The unit the limit counts in: "keys" or "bytes".
    pub fn unit(self) -> &'static str {
        match self {
            Limit::Keys => "keys",
            Limit::Memory => "bytes",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Keys => "key limit",
            Limit::Memory => "memory limit",
        })
    }
}

/// The [`Options`](crate::Options) setting an [`Error::InvalidOption`] is about, named as
/// its method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// [`Options::durability`](crate::Options::durability), or a write's own
    /// [`WriteOptions::durability`](crate::WriteOptions::durability).
    Durability,
    /// [`Options::shards`](crate::Options::shards).
    Shards,
    /// [`Options::segment_size`](crate::Options::segment_size).
    SegmentSize,
    /// [`Options::max_key_size`](crate::Options::max_key_size).
    MaxKeySize,
    /// [`Options::max_value_size`](crate::Options::max_value_size).
    MaxValueSize,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::Durability => "durability",
            Setting::Shards => "shards",
            Setting::SegmentSize => "segment_size",
            Setting::MaxKeySize => "max_key_size",
            Setting::MaxValueSize => "max_value_size",
        })
    }
}

/// `error` as a [`Cause`].
pub(crate) fn cause(error: impl std::error::Error + Send + Sync + 'static) -> Cause {
    Shared::from_arc(Arc::new(error))
}

/// The log's error a durable-layer error holds, as a [`Cause`] (the durable layer's own
/// message would only repeat the store's).
fn log_cause(error: Shared<kv_wal::Error>) -> Cause {
    let arc: Arc<dyn std::error::Error + Send + Sync> = error.into_arc();
    Shared::from_arc(arc)
}

impl Error {
    /// Sorts an error of the durable layer met while writing.
    pub(crate) fn from_write(e: kv_durable::Error) -> Self {
        match e {
            kv_durable::Error::StorageFull(log) => Error::StorageFull(log_cause(log)),
            kv_durable::Error::TooLarge(log) => match *log {
                kv_wal::Error::KeyTooLarge { len, max } => Error::KeyTooLarge { len, max },
                kv_wal::Error::ValueTooLarge { len, max } => Error::ValueTooLarge { len, max },
                _ => Error::Log(log_cause(log)),
            },
            kv_durable::Error::Io(log) => Error::Io(log_cause(log)),
            kv_durable::Error::Log(log) | kv_durable::Error::Open(log) => {
                Error::Log(log_cause(log))
            }
            kv_durable::Error::Failed(log) => Error::Failed(log_cause(log)),
            kv_durable::Error::Closed => Error::Closed,
            other => Error::Failed(cause(other)),
        }
    }

    /// Sorts an error of a compaction or a checkpoint: one refused because the store was
    /// closed is [`Error::Closed`].
    pub(crate) fn from_compaction(e: kv_compact::Error) -> Self {
        match e {
            kv_compact::Error::Closed => Error::Closed,
            other => Error::Compaction(cause(other)),
        }
    }

    /// Sorts an error of the log met while opening the store at `path`.
    pub(crate) fn from_open_log(path: PathBuf, e: Shared<kv_wal::Error>) -> Self {
        let damage = match &*e {
            kv_wal::Error::DirectoryLocked { .. } => return Error::Locked { path },
            kv_wal::Error::Corrupt { .. } => Damage::Log,
            &kv_wal::Error::MissingSegment { id, .. } => Damage::MissingSegment { id },
            _ => {
                return Error::Open {
                    path,
                    source: log_cause(e),
                }
            }
        };
        Error::Corrupt {
            path,
            damage,
            source: log_cause(e),
        }
    }

    /// Sorts an error of the durable layer met while opening the store at `path`.
    pub(crate) fn from_open(path: PathBuf, e: kv_durable::Error) -> Self {
        match e {
            kv_durable::Error::Open(log) => Error::from_open_log(path, log),
            other => Error::from_write(other),
        }
    }

    /// Sorts an error of the compactor met while opening the store at `path` (reading the
    /// manifest, loading the snapshot, cleaning up).
    pub(crate) fn from_open_compaction(path: PathBuf, e: kv_compact::Error) -> Self {
        /// Whether the log layer found damage (not an I/O error) reading a snapshot.
        fn damaged(log: Option<&kv_wal::Error>) -> bool {
            matches!(
                log,
                Some(kv_wal::Error::Corrupt { .. } | kv_wal::Error::MissingSegment { .. })
            )
        }
        let damage = match &e {
            kv_compact::Error::CorruptManifest { .. } => Damage::Manifest,
            kv_compact::Error::MissingManifest { .. } => Damage::MissingManifest,
            kv_compact::Error::IncompleteCheckpoint { .. } => Damage::IncompleteCheckpoint,
            &kv_compact::Error::CorruptSnapshot { id, .. } => Damage::Snapshot { id },
            kv_compact::Error::Snapshot { id, source } if damaged(Some(source)) => {
                Damage::Snapshot { id: *id }
            }
            kv_compact::Error::Load { id, source } if damaged(source.log_error()) => {
                Damage::Snapshot { id: *id }
            }
            kv_compact::Error::Closed => return Error::Closed,
            _ => {
                return Error::Open {
                    path,
                    source: cause(e),
                }
            }
        };
        Error::Corrupt {
            path,
            damage,
            source: cause(e),
        }
    }

    /// Whether this error means the store accepts no more writes.
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Failed(_) | Error::Closed => true,
            // A compaction can stop the log on its way: a failed directory sync after it
            // deleted an old segment.
            Error::Compaction(e) => matches!(
                e.downcast_ref::<kv_compact::Error>(),
                Some(kv_compact::Error::Log(
                    kv_durable::Error::Failed(_) | kv_durable::Error::Panicked(_)
                ))
            ),
            _ => false,
        }
    }
}
