//! The `kv-core` state split into lock shards: reads that scale across cores and never wait
//! for the disk, atomic batches across shards, and streamed ordered scans.
//!
//! [`Sharded`] hashes each key to one of N shards (a power of two, by default sixteen per
//! core for the hash index, one per core for the ordered one), each a [`kv_core::State`] behind a `parking_lot` read-write lock. It is the
//! [`kv_durable::Sink`] the durable layer applies committed writes to, so a reader holds a
//! shard only for its lookup while writers wait for their fsync elsewhere. Scans are read a
//! chunk at a time under short locks, from either end: an ordered scan is a k-way merge of
//! the shards' ranges, a scan of the hash index walks one shard after another. A
//! [`Scanner`] is a scan's position kept apart from the state, so the state's owner can carry
//! it anywhere (`kv_store::Iter`); [`Scan`] is the same over a borrowed state.
//!
//! ```
//! use std::ops::Bound;
//! use kv_concurrent::Sharded;
//! use kv_core::{IndexKind, Op};
//! use kv_durable::Sink;
//!
//! let state = Sharded::new(IndexKind::Ordered, 8);
//! state.apply_batch(&[Op::put("b", "2"), Op::put("a", "1"), Op::put("c", "3")], 0);
//! assert_eq!(state.get(b"a", 0).unwrap(), "1");
//! let keys: Vec<_> = state
//!     .range(Bound::Included(b"b"), Bound::Unbounded, 0)?
//!     .map(|(key, _value)| key)
//!     .collect();
//! assert_eq!(keys, ["b", "c"]);
//! let last = state.range(Bound::Unbounded, Bound::Unbounded, 0)?.next_back();
//! assert_eq!(last.unwrap().0, "c");
//! # Ok::<(), kv_core::Error>(())
//! ```

#![forbid(unsafe_code)]

mod ahead;
mod load;
mod pages;
mod reads;
mod replay;
mod scan;
mod sharded;

pub use pages::KeysPage;
pub use scan::{Scan, ScanItem, Scanner};
pub use sharded::{default_shard_count, Sharded};
