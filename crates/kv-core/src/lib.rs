//! The key-value state machine: operations, the in-memory index, TTL deadlines and replay.
//!
//! `kv-core` decides what the store holds. It is pure logic: no files, no threads, no clock
//! of its own (every call that cares about expiry takes "now"), so the layers above decide
//! when things happen and tests decide what time it is. `kv-durable` feeds it the log's
//! operations in order; `kv-concurrent` shards it behind locks.
//!
//! Each key's key, value and deadline live in one allocation ([`Entry`]); the index is a
//! hash table ([`IndexKind::Hash`], fastest point operations) or a B-tree
//! ([`IndexKind::Ordered`], range and prefix scans).
//!
//! ```
//! use kv_core::{Expiry, IndexKind, OpRef, State};
//!
//! let mut state = State::new(IndexKind::Ordered);
//! let now = 1_700_000_000_000;
//! state.apply(OpRef::Put { key: b"user:1", value: b"ada", expiry: Expiry::Never }, now);
//! state.apply(OpRef::Put { key: b"user:2", value: b"bob", expiry: Expiry::AfterMillis(1_000) }, now);
//! state.apply(OpRef::Delete { key: b"user:1" }, now);
//!
//! assert_eq!(state.get(b"user:2", now).unwrap().value(), b"bob");
//! assert!(state.get(b"user:2", now + 1_000).is_none(), "expired at its deadline");
//! let keys: Vec<&[u8]> = state.scan_prefix(b"user:", now)?.map(|e| e.key()).collect();
//! assert_eq!(keys, [b"user:2"]);
//! # Ok::<(), kv_core::Error>(())
//! ```

#![forbid(unsafe_code)]

mod clock;
mod entry;
mod error;
mod index;
mod op;
mod ranked;
mod replay;
mod state;
mod value;

pub use clock::{Clock, ManualClock, SystemClock};
pub use entry::Entry;
pub use error::Error;
pub use index::{Cursor, IndexKind, KeyHasher};
pub use op::{Expiry, Op, OpRef};
pub use replay::{replay, Replay, ReplayReport};
pub use state::{prefix_end, Change, State};
pub use value::Value;
