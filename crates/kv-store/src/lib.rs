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
//!   memory and key limits with `Reject`, LRU or LFU [`Eviction`], key and value size
//!   limits, the expiry sweep, and [`AutoCompact`], when the store compacts its log by
//!   itself. A setting that cannot work is [`Error::InvalidOption`] at open (and a write's
//!   own [`WriteOptions`] the store's could not hold, at that write).
//! - [`Error`]: one variant per thing a caller can act on ([`Damage`], [`Limit`] and
//!   [`Setting`] say more). A message says what happened and never repeats its cause: the
//!   error of the layer below is the `source()`, as itself: walk the chain of `source()`s
//!   with `downcast_ref` to reach the log's error ([`LogError`]) and, below it, the
//!   operating system's (`std::io::Error`); [`with_causes`] prints the whole chain.
//! - With the `tokio` feature (on by default): `put_async` and friends, `open_async`,
//!   `compact_async`, `checkpoint_async`: whatever waits for the disk waits on tokio's
//!   blocking pool, never on a runtime thread; a write that returns before its fsync and
//!   that nothing can hold up is written on the task's own thread (about a microsecond).
//!   Reads never wait for the disk. Every read-modify-write ([`KvStore::update_and_fetch`],
//!   [`KvStore::update_with`], [`KvStore::fetch_and_update`],
//!   [`KvStore::compare_and_swap`], [`KvStore::remove`], [`KvStore::update_keys`],
//!   [`KvStore::expire`], [`KvStore::persist`]) and transactions have no async form, nor
//!   do `put_with` and `delete_with` (`write_with_async` takes a write's own options):
//!   under `Durability::Sync` they wait for their fsync, so call them through
//!   `tokio::task::spawn_blocking`.
//! - With the `metrics` feature: the figures of [`Stats`] published through the `metrics`
//!   crate on a timer of their own ([`Options::metrics_interval`], every second by
//!   default), for any exporter: see [Metrics](#metrics).
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
//!
//! # Metrics
//!
//! [`KvStore::stats`] returns every figure below; with the `metrics` feature a background
//! thread publishes them all through the [`metrics`](https://docs.rs/metrics) crate every
//! [`Options::metrics_interval`], each described (help text and unit) and labelled
//! `store=<name>` ([`Options::name`], by default the store's path), so several stores in one
//! process are told apart. A figure has one name everywhere: the field of [`Stats`], the key
//! of `kv stats` (text and `--json`) and of the shell's `STATS`, and the metric's name after
//! `kv_`. The unit is in the name; counters end in `_total` and only grow while the store is
//! open (they start from zero at each open); the `open_` gauges describe the last open.
//!
//! | Metric | Kind | Unit | What it is |
//! | --- | --- | --- | --- |
//! | `kv_keys` | gauge | count | Live keys. |
//! | `kv_memory_used_bytes` | gauge | bytes | Memory held by keys, values, deadlines and the index, as the limits count it. |
//! | `kv_live_bytes` | gauge | bytes | Bytes of the live entries themselves (keys, values, deadlines). |
//! | `kv_log_segments` | gauge | count | Segment files the log spans. |
//! | `kv_log_bytes` | gauge | bytes | Bytes of records in the log (not its segments' preallocated space). |
//! | `kv_snapshot_bytes` | gauge | bytes | Bytes of the current snapshot (0 before the first compaction). |
//! | `kv_live_data_ratio` | gauge | ratio | Live bytes over log and snapshot bytes; compaction raises it back towards 1. |
//! | `kv_commit_groups_total` | counter | count | Groups the group commit wrote (one append each). |
//! | `kv_commit_records_total` | counter | count | Records written to the log. |
//! | `kv_commit_bytes_total` | counter | bytes | Bytes written to the log. |
//! | `kv_fsyncs_total` | counter | count | fdatasyncs made for writes that asked for one, and for `sync` calls. |
//! | `kv_fsynced_records_total` | counter | count | Records made durable by those fdatasyncs (each counts those written since the one before). |
//! | `kv_background_fsyncs_total` | counter | count | fdatasyncs made in the background: within `Batch` windows, and under `None` ahead of a segment's rotation. |
//! | `kv_records_per_fsync_ratio` | gauge | ratio | Records made durable per fdatasync asked for (by a write or a sync): what the group commit saves, when every write asks for one. |
//! | `kv_commit_latency_p50_micros` | gauge | microseconds | Commit latency, from a write's submission to its answer: median. |
//! | `kv_commit_latency_p99_micros` | gauge | microseconds | Commit latency: 99th percentile. |
//! | `kv_commit_latency_max_micros` | gauge | microseconds | Commit latency: maximum. |
//! | `kv_errors_total` | counter | count | Writes that failed (limits, full disk, log failure, closed store). |
//! | `kv_failed` | gauge | 0 or 1 | Whether the store stopped accepting writes (`Stats::failure` says why). |
//! | `kv_compactions_total` | counter | count | Compactions that completed. |
//! | `kv_compaction_failures_total` | counter | count | Compactions that failed. |
//! | `kv_evictions_total` | counter | count | Keys evicted to stay within the limits. |
//! | `kv_expirations_total` | counter | count | Expired keys removed from memory by the sweep. |
//! | `kv_open_log_records` | gauge | count | Records the log's recovery scan found at open. |
//! | `kv_open_replayed_records` | gauge | count | Records applied to the state at open, from the snapshot and the log. |
//! | `kv_open_expired_records` | gauge | count | Puts dropped at open because their deadline had passed. |
//! | `kv_open_truncated_bytes` | gauge | bytes | Bytes of a torn tail (or skipped damage) cut at open. |
//! | `kv_open_corruptions` | gauge | count | Pieces of the log cut or skipped at open (`KvStore::open_report` lists them). |
//! | `kv_open_duration_micros` | gauge | microseconds | How long opening took, recovery and replay included. |

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
mod update_keys;

pub use batch::WriteBatch;
pub use error::{Cause, Damage, Error, Limit, Result, Setting};
pub use into_bytes::IntoBytes;
pub use iter::{Iter, Keys};
pub use options::{
    AutoCompact, Eviction, MemoryLimits, Options, DEFAULT_COMPACTION_RATE, MAX_BATCH_WINDOW,
    MAX_SHARDS, MAX_SIZE_LIMIT,
};
pub use stats::{Figure, FigureKind, FigureUnit, FigureValue, Stats};
pub use store::{KvStore, WAL_DIR};
pub use transaction::{Conflict, Transaction};
pub use ttl::Ttl;
pub use update::{CompareAndSwapError, Current, TtlUpdate, Update, Updated};
pub use update_keys::{HeldKeys, KeyUse};

pub use bytes::Bytes;
pub use kv_compact::CompactionReport;
pub use kv_concurrent::KeysPage;
pub use kv_core::{prefix_end, Clock, IndexKind, ManualClock, SystemClock, Value};
pub use kv_durable::{Durability, OpenReport, WriteOptions};
pub use kv_wal::{
    with_causes, Compression, Corruption, CorruptionKind, DamageAction, Error as LogError,
    RecoveryMode,
};

/// The workspace README's code, run as doctests (`cargo test --doc`, part of `cargo xtask
/// ci`): its Example is a complete program, so it must compile and run as it is printed.
/// Every other block in the README is fenced with a language (`sh`, `text`) so rustdoc
/// leaves it alone.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
