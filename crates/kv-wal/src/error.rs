//! The one error type of this crate.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// What [`Error::Corrupt`]'s message tells a caller to do: a front end with other words for
/// it (a command line) replaces exactly this.
pub const SALVAGE_ADVICE: &str = "open with RecoveryMode::Salvage to keep every readable record";

/// What `kv-wal` reports when an operation fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system call failed (the operating system's error is the `source()`).
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What the log was doing, as a verb phrase ("open segment", "sync").
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error the operating system returned.
        #[source]
        source: io::Error,
    },

    /// The log's next segment could not be created (in a directory made read-only, say), so
    /// the rotation failed. Nothing was made and nothing was written; the active segment is
    /// whole and synced. The log is not stopped: appends that still fit go into the active
    /// segment, and each one that needs a new segment (the active one is full) tries the
    /// rotation again and fails with this error until a segment can be created.
    #[error(
        "cannot create the next log segment {}; nothing was written, and appends that need a \
         new segment fail until one can be created",
        path.display()
    )]
    SegmentNotCreated {
        /// The segment file that could not be created.
        path: PathBuf,
        /// The error the operating system returned.
        #[source]
        source: io::Error,
    },

    /// Another handle, in this process or another one, has the directory open.
    #[error(
        "the log directory {} is already open in another handle or process; close that one first",
        path.display()
    )]
    DirectoryLocked {
        /// The log directory.
        path: PathBuf,
    },

    /// A key longer than the configured limit; nothing was written.
    #[error("key of {len} bytes exceeds the limit of {max} bytes; nothing was written")]
    KeyTooLarge {
        /// Length of the key that was refused.
        len: usize,
        /// The configured limit.
        max: usize,
    },

    /// A value longer than the configured limit; nothing was written.
    #[error("value of {len} bytes exceeds the limit of {max} bytes; nothing was written")]
    ValueTooLarge {
        /// Length of the value that was refused.
        len: usize,
        /// The configured limit.
        max: usize,
    },

    /// The log holds damage the recovery mode does not accept. Nothing was changed on disk.
    #[error(
        "the log is damaged in segment {segment} at offset {offset}: {kind}; nothing was changed \
         on disk ({SALVAGE_ADVICE})"
    )]
    Corrupt {
        /// Id of the damaged segment.
        segment: u64,
        /// Byte offset of the damage inside the segment.
        offset: u64,
        /// What is wrong there.
        kind: CorruptionKind,
    },

    /// The disk has no room for this write. The write was undone; earlier writes are intact.
    #[error("no space left on the device holding {}; the write was undone, free some space and retry", path.display())]
    StorageFull {
        /// The segment being written.
        path: PathBuf,
    },

    /// An earlier write or sync failed, so the log refuses every further write: whether that data
    /// reached the disk is unknown, and retrying an fsync can report success for lost data.
    /// Reopen the log to recover from what is on disk.
    #[error(
        "the log stopped accepting writes after an earlier failure: {cause}; reopen it to recover"
    )]
    Poisoned {
        /// The failure that stopped the log.
        cause: Arc<str>,
    },

    /// A segment between the first and the last is missing from the directory.
    #[error("segment {id} is missing from the log directory {}: records are lost; nothing was changed", dir.display())]
    MissingSegment {
        /// The id of the missing segment.
        id: u64,
        /// The log directory.
        dir: PathBuf,
    },

    /// A configuration value that cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A position that does not point into the log.
    #[error("position {0} is not in the log")]
    InvalidPosition(crate::Position),
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `error`'s message followed by each of its causes', joined as `what: why: why that`.
/// Errors here show their cause once, as their `source()`: this is how to print one whole,
/// or keep it as text (the cause a poisoned log reports, say).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut level = error.source();
    while let Some(cause) = level {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        level = cause.source();
    }
    text
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// What is wrong with a damaged record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The record's stored CRC-32C does not match its bytes.
    Checksum,
    /// The record claims to run past the end of its segment.
    Truncated,
    /// A length field is not a valid varint, or is too large to be real.
    BadLength,
    /// The compression field holds the invalid value 3.
    InvalidCompression,
    /// A compressed value does not decompress to what its header says.
    BadCompressedValue,
    /// An atomic batch that never ends before the end of its segment.
    UnterminatedBatch,
    /// A seal or opening record (`FORMAT.md`, "Seals") that is malformed, names another
    /// segment, or is out of place (an opening past offset 0, records after a seal).
    BadSeal,
    /// A segment's length or record count differs from what its seal, or the next
    /// segment's opening, says: it was cut short or grown.
    SegmentLength,
    /// The segment after a sealed one does not begin with its opening: it was emptied or
    /// replaced.
    MissingOpening,
    /// A page of zeros where records were, with records after it: pages a power cut kept
    /// out of order (in the newest segment's never-synced tail) or lost data.
    Hole,
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CorruptionKind::Checksum => "checksum mismatch",
            CorruptionKind::Truncated => "record cut short",
            CorruptionKind::BadLength => "invalid length field",
            CorruptionKind::InvalidCompression => "invalid compression type",
            CorruptionKind::BadCompressedValue => "compressed value does not decompress",
            CorruptionKind::UnterminatedBatch => "atomic batch without its end",
            CorruptionKind::BadSeal => "invalid or misplaced segment seal",
            CorruptionKind::SegmentLength => "segment length or record count differs from its seal",
            CorruptionKind::Hole => "a page of zeros where records were, with records after it",
            CorruptionKind::MissingOpening => {
                "segment after a sealed one lacks its opening record (emptied or replaced)"
            }
        })
    }
}
