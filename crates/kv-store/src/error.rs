//! The one error type of the facade.

use std::path::PathBuf;
use std::sync::Arc;

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

    /// The log is damaged where recovery does not repair it by itself. Nothing was changed;
    /// `kv verify` shows the damage, and opening with `RecoveryMode::Salvage` keeps every
    /// valid record.
    #[error("the log of {} is damaged; nothing was changed (see `kv verify`): {source}", path.display())]
    Corrupt {
        /// The store's directory.
        path: PathBuf,
        /// What recovery found.
        #[source]
        source: Arc<kv_wal::Error>,
    },

    /// The directory could not be opened or created.
    #[error("cannot open the store at {}: {source}", path.display())]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<kv_wal::Error>,
    },

    /// The disk is full: this write was not made; earlier writes are intact and writing works
    /// again once there is space.
    #[error("the disk is full; this write was not made and earlier writes are intact")]
    StorageFull(#[source] Arc<kv_durable::Error>),

    /// A write or fsync of the log failed: the store refuses every write from now on, since
    /// whether the failed data reached the disk is unknown. Reads still work; reopen the store
    /// to recover.
    #[error("the store stopped accepting writes after a log failure; reopen it to recover")]
    Failed(#[source] Arc<kv_durable::Error>),

    /// A key or value is larger than the configured limits; nothing was written.
    #[error("{0}")]
    TooLarge(#[source] Arc<kv_durable::Error>),

    /// The log's next segment could not be created (in a directory made read-only, say):
    /// nothing was written, this operation was not done, earlier writes are intact, and the
    /// store goes on; retry once the cause is fixed.
    #[error("{0}")]
    Io(#[source] Arc<kv_durable::Error>),

    /// Another file operation of the log failed without stopping the store; the message says
    /// what was and was not done. At open: a segment left by a crashed compaction could not
    /// be deleted (nothing else was changed). From [`KvStore::close`](crate::KvStore::close):
    /// every write was synced, then cutting the log's preallocated tail failed; the store is
    /// closed all the same, and the next open reads that zero tail as free space.
    #[error("{0}")]
    Log(#[source] Arc<kv_durable::Error>),

    /// The write would take the store over its memory or key limit and the eviction policy
    /// is `Reject` (or nothing is left to evict); nothing was written.
    #[error("the write needs {needed} more {unit} but the limit of {limit} leaves {available}; nothing was written")]
    LimitReached {
        /// "bytes" or "keys".
        unit: &'static str,
        /// What the write needs.
        needed: usize,
        /// What is left under the limit.
        available: usize,
        /// The configured limit.
        limit: usize,
    },

    /// Compaction, a checkpoint, or loading a snapshot at open failed. A failed compaction
    /// changed nothing the store depends on; the store goes on with its old snapshot and log.
    #[error("{0}")]
    Compaction(#[source] Arc<kv_compact::Error>),

    /// Range and prefix scans need the ordered index (`Options::index(IndexKind::Ordered)`).
    #[error("range and prefix scans need a store opened with the ordered index")]
    NotOrdered,

    /// The store was closed.
    #[error("the store is closed")]
    Closed,
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Sorts an error of the durable layer met while writing.
    pub(crate) fn from_write(e: kv_durable::Error) -> Self {
        match e {
            kv_durable::Error::StorageFull(_) => Error::StorageFull(Arc::new(e)),
            kv_durable::Error::TooLarge(_) => Error::TooLarge(Arc::new(e)),
            kv_durable::Error::Io(_) => Error::Io(Arc::new(e)),
            kv_durable::Error::Log(_) => Error::Log(Arc::new(e)),
            kv_durable::Error::Closed => Error::Closed,
            other => Error::Failed(Arc::new(other)),
        }
    }

    /// Sorts an error of a compaction or a checkpoint: one refused because the store was
    /// closed is [`Error::Closed`].
    pub(crate) fn from_compaction(e: kv_compact::Error) -> Self {
        match e {
            kv_compact::Error::Closed => Error::Closed,
            other => Error::Compaction(Arc::new(other)),
        }
    }

    /// Sorts an error met while opening the store at `path`.
    pub(crate) fn from_open(path: PathBuf, e: kv_durable::Error) -> Self {
        let kv_durable::Error::Open(source) = e else {
            return Error::from_write(e);
        };
        match &*source {
            kv_wal::Error::DirectoryLocked { .. } => Error::Locked { path },
            kv_wal::Error::Corrupt { .. } | kv_wal::Error::MissingSegment { .. } => {
                Error::Corrupt { path, source }
            }
            _ => Error::Open { path, source },
        }
    }

    /// Whether this error means the store accepts no more writes.
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Failed(_) | Error::Closed => true,
            // A compaction can stop the log on its way: a failed directory sync after it
            // deleted an old segment.
            Error::Compaction(e) => matches!(
                &**e,
                kv_compact::Error::Log(
                    kv_durable::Error::Failed(_) | kv_durable::Error::Panicked(_)
                )
            ),
            _ => false,
        }
    }
}
