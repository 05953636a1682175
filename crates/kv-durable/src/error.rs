//! The one error type of this crate, and [`Shared`], how an error is kept by errors that are
//! cloned.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// What `kv-durable` reports. Cloneable, because one failed group commit answers every
/// writer in the group with the same error.
///
/// Each message says what this layer knows; the log's error behind it is the `source()`,
/// never repeated in the message.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening or recovering the log failed; the data on disk was not changed.
    #[error("cannot open the log")]
    Open(#[source] Shared<kv_wal::Error>),

    /// The disk is full: this write was not made and changed nothing; earlier writes are
    /// intact and later writes work again once there is space.
    #[error("the disk is full; this write was not made and earlier writes are intact")]
    StorageFull(#[source] Shared<kv_wal::Error>),

    /// A write or fsync of the log failed, so the store refuses every write from now on:
    /// whether the failed data reached the disk is unknown. Reopen the store to recover.
    #[error("the store stopped accepting writes after a log failure; reopen it to recover")]
    Failed(#[source] Shared<kv_wal::Error>),

    /// A commit panicked (a bug, in this crate or in the sink), so the store refuses every
    /// write from now on: whether that group reached the log and the state is unknown. Every
    /// writer of the group, and every later one, gets this error instead of waiting forever.
    /// Reopen the store to recover.
    #[error(
        "the store stopped accepting writes after a commit panicked ({0}); reopen it to recover"
    )]
    Panicked(Arc<str>),

    /// A key or value over the configured limits; nothing was written.
    #[error("a key or value is over the size limits")]
    TooLarge(#[source] Shared<kv_wal::Error>),

    /// The log's next segment could not be created (in a directory made read-only, say):
    /// nothing was made or written, so this operation was not done, earlier writes are intact,
    /// and the store goes on in the current segment; what needed the new segment works again
    /// once the cause is fixed.
    #[error("this operation was not done; the store goes on")]
    Io(#[source] Shared<kv_wal::Error>),

    /// Another file operation of the log failed without stopping it; the log's error says
    /// what was and was not done. Deleting old segments: the one named, and those after it,
    /// are still there, and a later compaction or open deletes them (a failed directory sync
    /// after a deletion is [`Error::Failed`] instead). Closing: every write was synced before
    /// the preallocated tail of the newest segment could not be cut; the store is closed all
    /// the same, and the next open reads that zero tail as free space.
    #[error("a file operation of the log failed")]
    Log(#[source] Shared<kv_wal::Error>),

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
            kv_wal::Error::StorageFull { .. } => Error::StorageFull(e.into()),
            kv_wal::Error::KeyTooLarge { .. } | kv_wal::Error::ValueTooLarge { .. } => {
                Error::TooLarge(e.into())
            }
            // The log stops only by poisoning itself; any other error left it whole.
            kv_wal::Error::Poisoned { .. } => Error::Failed(e.into()),
            // The one failure known to have written nothing.
            kv_wal::Error::SegmentNotCreated { .. } => Error::Io(e.into()),
            other => Error::Log(other.into()),
        }
    }

    /// The log's error behind this one, if there is one.
    pub fn log_error(&self) -> Option<&kv_wal::Error> {
        match self {
            Error::Open(e)
            | Error::StorageFull(e)
            | Error::Failed(e)
            | Error::TooLarge(e)
            | Error::Io(e)
            | Error::Log(e) => Some(e),
            Error::Panicked(_) | Error::Closed => None,
        }
    }
}

/// An error kept by an error that is cloned (one failed commit answers every writer of its
/// group): an `Arc`, but one that hands out the error itself as the `source()`.
///
/// `Arc<E>` is an error of its own type, so a `source()` returning it would make
/// `downcast_ref::<E>()` fail. `Shared` is not an error but dereferences to `E`, so
/// thiserror's `#[source]` reaches `E` through it, and so does every caller.
pub struct Shared<E: ?Sized>(Arc<E>);

impl<E: ?Sized> Shared<E> {
    /// Shares `error` already behind an `Arc`.
    pub fn from_arc(error: Arc<E>) -> Self {
        Shared(error)
    }

    /// The `Arc` the error is kept in.
    pub fn as_arc(&self) -> &Arc<E> {
        &self.0
    }

    /// The `Arc` the error is kept in, taken out.
    pub fn into_arc(self) -> Arc<E> {
        self.0
    }
}

impl<E> From<E> for Shared<E> {
    fn from(error: E) -> Self {
        Shared(Arc::new(error))
    }
}

impl<E: ?Sized> Clone for Shared<E> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<E: ?Sized> Deref for Shared<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.0
    }
}

impl<E: ?Sized + fmt::Debug> fmt::Debug for Shared<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (*self.0).fmt(f)
    }
}

impl<E: ?Sized + fmt::Display> fmt::Display for Shared<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (*self.0).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;

    use super::*;

    #[test]
    fn the_source_of_a_shared_error_is_the_error_itself() {
        let wal = kv_wal::Error::StorageFull {
            path: "wal/000.log".into(),
        };
        let e = Error::from_log(wal).clone();
        let source = e.source().expect("a source");
        assert!(
            source.downcast_ref::<kv_wal::Error>().is_some(),
            "{source:?}"
        );
        assert!(!e.to_string().contains(&source.to_string()), "{e}");
    }

    #[test]
    fn the_chain_reaches_the_operating_systems_error() {
        let wal = kv_wal::Error::SegmentNotCreated {
            path: "wal/001.log".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        let e = Error::from_log(wal);
        let io = e
            .source()
            .and_then(|s| s.source())
            .and_then(|s| s.downcast_ref::<io::Error>())
            .expect("the io::Error two levels down");
        assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
    }
}
