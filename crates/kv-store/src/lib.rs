//! An embedded, durable key-value store: reads from memory, writes through a write-ahead log.
//!
//! Every write is appended to a segmented, checksummed log (the nori-wal 0.1 format) before
//! it is acknowledged and applied to an in-memory index, so reads never touch the disk and a
//! crash loses nothing that was acknowledged. Opening a directory replays its log.
//!
//! - [`KvStore`]: `Clone + Send + Sync`; `put`, `get`, `delete`, TTLs (`put_with_ttl`,
//!   `expire`, `persist`, `ttl`), atomic [`WriteBatch`]es, ordered `range` and
//!   `scan_prefix` (with [`IndexKind::Ordered`]), `len`, `sync`, `compact`, `checkpoint`,
//!   `stats`, `close`.
//! - [`Options`]: [`Durability`] (`Sync`, `Batch(window)` — the default, 5 ms — or `None`),
//!   index kind, shard count, segment size, LZ4/Zstd compression above a size threshold,
//!   memory and key limits with `Reject`, LRU or LFU [`Eviction`], key and value size
//!   limits, the expiry sweep, and [`AutoCompact`], when the store compacts its log by
//!   itself. A setting that cannot work is [`Error::InvalidOption`] at open.
//! - [`Error`]: one variant per thing a caller can act on ([`Damage`], [`Limit`] and
//!   [`Setting`] say more). A message says what happened and never repeats its cause: the
//!   error of the layer below is the `source()`, as itself (`downcast_ref` reaches the log's
//!   error and the operating system's); [`with_causes`] prints the whole chain.
//! - With the `tokio` feature (on by default): `put_async` and friends, which wait for the
//!   disk on tokio's blocking pool, never on a runtime thread.
//! - With the `metrics` feature: the figures of [`Stats`] published through the `metrics`
//!   crate every sweep interval, for any exporter.
//!
//! ```
//! use std::time::Duration;
//! use kv_store::{KvStore, WriteBatch};
//!
//! # fn main() -> Result<(), kv_store::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = KvStore::open(dir.path())?;
//! store.put("user:1", "ada")?;
//! store.put_with_ttl("session:9", "token", Duration::from_secs(3600))?;
//! let mut batch = WriteBatch::new();
//! batch.put("user:2", "bob").delete("user:1");
//! store.write(batch)?;
//! store.close()?;
//!
//! let store = KvStore::open(dir.path())?;
//! assert_eq!(store.get("user:2").unwrap(), "bob");
//! assert!(store.get("user:1").is_none());
//! assert_eq!(store.len(), 2);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "tokio")]
mod asynchronous;
mod batch;
mod error;
mod limits;
mod maintenance;
mod options;
mod stats;
mod store;

pub use batch::WriteBatch;
pub use error::{Cause, Damage, Error, Limit, Result, Setting};
pub use options::{
    AutoCompact, Eviction, MemoryLimits, Options, MAX_BATCH_WINDOW, MAX_SHARDS, MAX_SIZE_LIMIT,
};
pub use stats::Stats;
pub use store::{KvStore, WAL_DIR};

pub use bytes::Bytes;
pub use kv_compact::{CompactionReport, CompactionStats};
pub use kv_concurrent::Scan;
pub use kv_core::{Clock, IndexKind, ManualClock, SystemClock};
pub use kv_durable::{CommitStats, Durability, OpenReport, WriteOptions};
pub use kv_wal::{
    with_causes, Compression, Corruption, CorruptionKind, DamageAction, RecoveryMode,
};
