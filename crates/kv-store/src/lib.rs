//! An embedded, durable key-value store: reads from memory, writes through a write-ahead log.
//!
//! Every write is appended to a segmented, checksummed log (the nori-wal 0.1 format) before
//! it is acknowledged and applied to an in-memory index, so reads never touch the disk and a
//! crash loses nothing that was acknowledged. Opening a directory replays its log.
//!
//! - [`KvStore`]: `Clone + Send + Sync`; `put`, `get`, `delete`, TTLs (`put_with_ttl`,
//!   `expire`, `persist`, `ttl`), atomic [`WriteBatch`]es, `len`, `sync`, `compact`,
//!   `checkpoint`, `stats`, `close`.
//! - [`Iter`]: one owned, streamed, double-ended iterator over `(key, value)` pairs, returned
//!   by `iter()` (every live entry), `range(..)` and `scan_prefix(p)` (key order, and
//!   descending with `.rev()`: these need [`IndexKind::Ordered`]); [`Keys`] (from `keys()`)
//!   is the same over keys. `Send + 'static`: it may outlive the handle and move to another
//!   thread; read in short chunks, never a snapshot, never holding writers up for long.
//! - Atomic read-modify-writes of one key, atomic against every other writer of it without
//!   a store-wide lock, keeping the key's deadline unless told otherwise:
//!   [`KvStore::update_with`] (the general form: an [`Update`] from the [`Current`] value and
//!   deadline, answering [`Updated`]), `update_and_fetch`, `fetch_and_update`,
//!   `compare_and_swap` (a mismatch is a [`CompareAndSwapError`] carrying the current
//!   value) and `remove` (answers the old value).
//! - Optimistic [`Transaction`]s with Redis's `WATCH` semantics: `begin_transaction`, then
//!   `get`/`watch` and buffered writes, then `commit`, which writes one atomic batch only if
//!   no key read or watched was written, evicted or expired since (else a [`Conflict`]);
//!   [`KvStore::transaction`] retries a closure on conflict.
//! - [`Options`]: [`Durability`] (`Sync`, `Batch(window)` — the default, 5 ms — or `None`),
//!   index kind, shard count, segment size, LZ4/Zstd compression above a size threshold,
//!   memory and key limits with `Reject`, LRU or LFU [`Eviction`], the expiry sweep, and
//!   [`AutoCompact`], when the store compacts its log by itself.
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
mod into_bytes;
mod iter;
mod limits;
mod locked;
mod maintenance;
mod options;
mod stats;
mod store;
mod stripes;
mod transaction;
mod ttl;
mod update;

pub use batch::WriteBatch;
pub use error::{Error, Result};
pub use into_bytes::IntoBytes;
pub use iter::{Iter, Keys};
pub use options::{AutoCompact, Eviction, Limits, Options};
pub use stats::Stats;
pub use store::{KvStore, WAL_DIR};
pub use transaction::{Conflict, Transaction};
pub use ttl::Ttl;
pub use update::{CompareAndSwapError, Current, TtlUpdate, Update, Updated};

pub use bytes::Bytes;
pub use kv_compact::{CompactionReport, CompactionStats};
pub use kv_core::{Clock, IndexKind, ManualClock, SystemClock};
pub use kv_durable::{CommitStats, Durability, OpenReport, WriteOptions};
pub use kv_wal::{Compression, Corruption, CorruptionKind, DamageAction, RecoveryMode};

/// The workspace README's code, run as doctests (`cargo test --doc`, part of `cargo xtask
/// ci`): its Example is a complete program, so it must compile and run as it is printed.
/// Every other block in the README is fenced with a language (`sh`, `text`) so rustdoc
/// leaves it alone.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
