//! A segmented, checksummed write-ahead log that reads and writes the nori-wal 0.1 format.
//!
//! `kv-wal` is the bottom layer of the store: it knows bytes, records and segment files, and
//! nothing of keys' meaning. Records are appended to numbered segment files (`000000.wal`,
//! `000001.wal`, ...), each record carrying a CRC-32C; opening a log scans every record,
//! cuts a write torn by a crash off the end, and refuses damage anywhere else instead of
//! silently dropping data. `FORMAT.md` next to this crate's manifest documents the bytes.
//!
//! What it is not: an index (reads of a key go through the layers above), or async (all I/O
//! is blocking `std::fs`). Limits: keys up to 64 KiB and values up to 64 MiB by default
//! ([`SizeLimits`]); one process at a time per directory ([`Error::DirectoryLocked`]).
//!
//! ```
//! use kv_wal::{FsyncPolicy, Record, Wal, WalConfig, Position};
//!
//! # fn main() -> Result<(), kv_wal::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let config = WalConfig::new(dir.path()).fsync_policy(FsyncPolicy::Always);
//!
//! let (mut wal, _recovery) = Wal::open(config.clone())?;
//! wal.append(&Record::put("apple", "red"))?;
//! wal.append_atomic(&[Record::put("pear", "green"), Record::delete("apple")])?;
//! wal.close()?;
//!
//! let (wal, recovery) = Wal::open(config)?;
//! assert_eq!(recovery.records, 3);
//! let keys: Vec<_> = wal
//!     .read_from(Position::START)?
//!     .map(|item| item.map(|(_, record)| record.key))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(keys, ["apple", "pear", "apple"]);
//! # Ok(())
//! # }
//! ```

mod ahead;
mod compression;
mod config;
mod cursor;
mod damage;
mod encoded;
mod error;
mod flusher;
pub mod fs;
mod lock;
mod position;
mod reader;
mod record;
mod recovery;
mod seal;
mod seal_check;
pub mod segment;
mod syncer;
mod varint;
mod wal;

pub use compression::Compression;
pub use config::{
    FsyncPolicy, RecoveryMode, SizeLimits, WalConfig, DEFAULT_MAX_KEY_SIZE,
    DEFAULT_MAX_SEGMENT_SIZE, DEFAULT_MAX_VALUE_SIZE, MAX_BATCH_WINDOW, MAX_FIELD_SIZE,
    MIN_SEGMENT_SIZE,
};
pub use encoded::Encoded;
pub use error::{with_causes, CorruptionKind, Error, Result, SALVAGE_ADVICE};
pub use lock::DirLock;
pub use position::Position;
pub use reader::WalReader;
pub use record::{decode, Decoded, Expiry, Record, RecordKind, RecordRef};
pub use recovery::{Corruption, DamageAction, RecoveryInfo};
pub use syncer::Syncer;
pub use wal::{DeletedSegments, Wal};
