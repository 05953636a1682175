//! Binds the `kv-core` state machine to the `kv-wal` log: group commit, durability modes,
//! atomic batches.
//!
//! Every write is encoded on the writer's thread, appended to the log with the writes of
//! every other writer waiting at that moment (one `pwrite` and, when asked for, one
//! `fdatasync` per group), and only then applied to the state, in log order. Opening
//! replays the log into the state in the same pass that checks it. The state is any
//! [`Sink`]: a locked [`kv_core::State`] here, the sharded state of `kv-concurrent` above.
//!
//! Durability per store and per write ([`Durability`]): `Sync` returns after fdatasync;
//! `Batch(window)` (the default, 5 ms) returns once the record is in the operating system
//! and a background sync makes it durable within the window; `None` never syncs. A process
//! crash loses nothing acknowledged in any mode. A failed write or fsync stops the store
//! ([`Error::Failed`]); a full disk fails only the writes involved ([`Error::StorageFull`]).
//!
//! ```
//! use kv_core::{IndexKind, Op, State};
//! use kv_durable::{Durable, Options, WriteOptions};
//! use kv_wal::{Position, WalConfig};
//! use parking_lot::RwLock;
//!
//! # fn main() -> Result<(), kv_durable::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let open = || {
//!     let state = RwLock::new(State::new(IndexKind::Hash));
//!     Durable::open(WalConfig::new(dir.path()), Position::START, state, Options::default())
//! };
//! let (store, _) = open()?;
//! store.put("apple", "red")?;
//! store.write(vec![Op::put("pear", "green"), Op::delete("apple")], WriteOptions::sync())?;
//! let now = store.now_ms();
//! assert_eq!(store.sink().read().get(b"pear", now).unwrap().value(), b"green");
//! store.close()?;
//!
//! let (store, report) = open()?;
//! assert_eq!(report.replayed, 3);
//! assert!(store.sink().read().get(b"apple", now).is_none());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod convert;
mod durable;
mod error;
mod group_commit;
mod options;
mod sink;
mod stats;

pub use convert::op_of;
pub use durable::{load_log, Durable, EncodedWrite, LogReplay, OpenReport};
pub use error::{Error, Result, Shared};
pub use options::{CompressionPolicy, Durability, Options, WriteOptions};
pub use sink::{ApplyOp, DriveReplay, ReadPart, Sink};
pub use stats::CommitStats;
