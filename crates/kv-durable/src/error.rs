//! The one error type of this crate.

use std::sync::Arc;

/// What `kv-durable` reports. Cloneable, because one failed group commit answers every
/// writer in the group with the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening or recovering the log failed; the data on disk was not changed.
    #[error("cannot open the store's log: {0}")]
    Open(#[source] Arc<kv_wal::Error>),

    /// The disk is full: this write was not made and changed nothing; earlier writes are
    /// intact and later writes work again once there is space.
    #[error("the disk is full; this write was not made and earlier writes are intact: {0}")]
    StorageFull(#[source] Arc<kv_wal::Error>),

    /// A write or fsync of the log failed, so the store refuses every write from now on:
    /// whether the failed data reached the disk is unknown. Reopen the store to recover.
    #[error("the store stopped accepting writes after a log failure; reopen it to recover: {0}")]
    Failed(#[source] Arc<kv_wal::Error>),

    /// A commit panicked (a bug, in this crate or in the sink), so the store refuses every
    /// write from now on: whether that group reached the log and the state is unknown. Every
    /// writer of the group, and every later one, gets this error instead of waiting forever.
    /// Reopen the store to recover.
    #[error(
        "the store stopped accepting writes after a commit panicked ({0}); reopen it to recover"
    )]
    Panicked(Arc<str>),

    /// A key or value over the configured limits; nothing was written.
    #[error("{0}")]
    TooLarge(#[source] Arc<kv_wal::Error>),

    /// The log's next segment could not be created (in a directory made read-only, say):
    /// nothing was made or written, so this operation was not done, earlier writes are intact,
    /// and the store goes on in the current segment; what needed the new segment works again
    /// once the cause is fixed.
    #[error("a file operation of the log failed and nothing was written; the store goes on: {0}")]
    Io(#[source] Arc<kv_wal::Error>),

    /// Another file operation of the log failed without stopping it; the log's error says
    /// what was and was not done. Deleting old segments: the one named, and those after it,
    /// are still there, and a later compaction or open deletes them (a failed directory sync
    /// after a deletion is [`Error::Failed`] instead). Closing: every write was synced before
    /// the preallocated tail of the newest segment could not be cut; the store is closed all
    /// the same, and the next open reads that zero tail as free space.
    #[error("a file operation of the log failed: {0}")]
    Log(#[source] Arc<kv_wal::Error>),

    /// The store was closed.
    #[error("the store is closed")]
    Closed,
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Sorts a log error into what it means for the store.
    pub(crate) fn from_log(e: kv_wal::Error) -> Self {
        match e {
            kv_wal::Error::StorageFull { .. } => Error::StorageFull(Arc::new(e)),
            kv_wal::Error::KeyTooLarge { .. } | kv_wal::Error::ValueTooLarge { .. } => {
                Error::TooLarge(Arc::new(e))
            }
            // The log stops only by poisoning itself; any other error left it whole.
            kv_wal::Error::Poisoned { .. } => Error::Failed(Arc::new(e)),
            // The one failure known to have written nothing.
            kv_wal::Error::SegmentNotCreated { .. } => Error::Io(Arc::new(e)),
            other => Error::Log(Arc::new(other)),
        }
    }
}
