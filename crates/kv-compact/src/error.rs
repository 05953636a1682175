//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

use kv_durable::Shared;

/// What compaction, checkpoints and opening a compacted directory report.
///
/// Each message says what this layer knows; the error behind it is the `source()`, never
/// repeated in the message.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed. A compaction that fails this way changed nothing the store
    /// depends on: the old snapshot and log stay in charge until the manifest is switched.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done, as a verb phrase.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Shared<io::Error>,
    },

    /// The manifest is damaged: the directory cannot be opened safely. Nothing was changed.
    #[error("the manifest {} is damaged ({reason}); nothing was changed", path.display())]
    CorruptManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The manifest is of a version this build does not know (`KVMANIF` and a digit past
    /// the last version it reads): a newer version of kv wrote it. Not damage; nothing was
    /// changed, and that newer version opens the store.
    #[error(
        "the manifest {} is of version {version}, written by a newer version of kv than this \
         one (which reads versions 1 to {known}); nothing was changed: open the store with \
         that newer version",
        path.display()
    )]
    NewerManifest {
        /// The manifest file.
        path: PathBuf,
        /// The version its magic names.
        version: u8,
        /// The newest version this build reads.
        known: u8,
    },

    /// The directory holds snapshots but no manifest, and its log no longer holds segment 0
    /// (which every compaction deletes): the manifest that says which snapshot is current,
    /// and where the log continues after it, is missing. Opening the log alone would lose
    /// what was compacted into a snapshot, so nothing is opened or changed. Restoring an
    /// older manifest is safe: an open deletes nothing until the manifest it reads is found
    /// true to the directory.
    #[error(
        "{} holds snapshots ({}) but no MANIFEST, which names the current snapshot and where \
         the log continues after it; nothing was changed. Restore MANIFEST (from a backup or \
         a copy of this directory); to open the log alone, knowingly losing what only the \
         snapshots hold, move the snapshots directory away",
        path.display(), found.join(", ")
    )]
    MissingManifest {
        /// The store's directory.
        path: PathBuf,
        /// What `snapshots/` holds.
        found: Vec<String>,
    },

    /// A snapshot the manifest names differs from what the manifest records of it: it was
    /// cut short, lengthened or altered. Nothing was changed.
    #[error("snapshot {id} ({}) is damaged: {reason}; nothing was changed", path.display())]
    CorruptSnapshot {
        /// The snapshot's id.
        id: u64,
        /// Its directory.
        path: PathBuf,
        /// What differs.
        reason: String,
    },

    /// A compaction failed at a point where whether its manifest switch reached the disk is
    /// unknown; the store refuses further compactions (and deletes nothing) until it is
    /// reopened, which reads what the disk says.
    #[error("an earlier compaction failed with an unknown outcome ({cause}); reopen the store before compacting again")]
    OutcomeUnknown {
        /// What the earlier failure was.
        cause: String,
    },

    /// The store was closed: compaction and checkpoints are refused.
    #[error("the store is closed; compaction and checkpoints are refused")]
    Closed,

    /// Writing or reading a snapshot through the log format failed.
    #[error("cannot write or read snapshot {id}")]
    Snapshot {
        /// The snapshot's id.
        id: u64,
        /// What the log layer said.
        #[source]
        source: Shared<kv_wal::Error>,
    },

    /// Loading a snapshot into the state failed.
    #[error("cannot load snapshot {id}")]
    Load {
        /// The snapshot's id.
        id: u64,
        /// What the durable layer said.
        #[source]
        source: kv_durable::Error,
    },

    /// The store's own log refused an operation compaction needs (rotating, deleting old
    /// segments).
    #[error("the store's log refused an operation of the compaction")]
    Log(#[source] kv_durable::Error),

    /// The directory holds a checkpoint that was interrupted before it was complete: it is
    /// not a store. Delete it and take the checkpoint again.
    #[error("{} holds an interrupted checkpoint, not a store; delete it and take the checkpoint again", path.display())]
    IncompleteCheckpoint {
        /// The directory.
        path: PathBuf,
    },

    /// The target of a checkpoint already holds data.
    #[error("{} is not empty; a checkpoint goes into a new or empty directory", path.display())]
    NotEmpty {
        /// The checkpoint's directory.
        path: PathBuf,
    },
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source: source.into(),
        }
    }
}
