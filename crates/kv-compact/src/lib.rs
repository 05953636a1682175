//! Crash-safe online compaction for the kv store: snapshots of the live state, the manifest
//! that names the current one, and checkpoints.
//!
//! The log grows with every overwrite and delete. Compaction writes the live entries as a
//! snapshot while writers keep appending, then switches a small checksummed manifest (written
//! to a temporary file, synced, renamed, directory synced) to name the snapshot and the first
//! log segment after it, and only then deletes what the old manifest named. A crash at any
//! instant leaves a directory that opens to every acknowledged write. See [`Compactor`].
//!
//! Layout of a store directory:
//!
//! ```text
//! DIR/MANIFEST            current snapshot id, its sum and layout, first log segment
//!                         (absent: a plain log)
//! DIR/snapshots/000003/   the current snapshot: part files of put records and their index
//!                         (PARTS), or, written by earlier versions, a nori-wal log of puts
//! DIR/wal/                the log: segments from the manifest's first segment on
//! ```
//!
//! ```
//! use kv_compact::Manifest;
//! use kv_wal::fs::StdFileSystem;
//!
//! let dir = tempfile::tempdir().unwrap();
//! assert_eq!(Manifest::read(&StdFileSystem, dir.path())?, None);
//! let manifest = Manifest { snapshot: Some(1), log_from: 4, sum: None };
//! manifest.write(&StdFileSystem, dir.path())?;
//! assert_eq!(Manifest::read(&StdFileSystem, dir.path())?, Some(manifest));
//! # Ok::<(), kv_compact::Error>(())
//! ```

#![forbid(unsafe_code)]

mod compactor;
mod error;
mod manifest;
mod pace;
mod parts;
mod snapshot;

pub use compactor::{
    default_encoders, CompactionReport, CompactionStats, Compactor, EntrySink, Source,
    CHECKPOINT_MARKER,
};
pub use error::{Error, Result};
pub use manifest::{Manifest, SnapshotLayout, SnapshotSum, MANIFEST, MANIFEST_TMP};
pub use snapshot::{snapshot_dir, Encoding, SnapshotWriter, SNAPSHOTS};
