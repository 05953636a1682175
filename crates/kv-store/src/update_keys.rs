//! Several keys read and written as one atomic step, under their lock stripes:
//! [`KvStore::update_keys`].
//!
//! What a server needs to run a run of one client's commands (a pipeline) as one atomic
//! block whose writes share one commit: the block's keys are known before it runs, so they
//! are locked first (two-phase, in stripe order, so nothing deadlocks and nothing is ever
//! retried), read, and written as one batch before they are let go. A key the block reads
//! is held exclusively, so no other write of it comes between the read and the block's
//! write; a key it only writes is held shared, as a plain write holds it, so writers of it
//! in other blocks go on and share the same group commit.

use std::time::SystemTime;

use bytes::Bytes;
use kv_durable::WriteOptions;

use crate::batch::{fix_deadlines, WriteBatch};
use crate::error::{Error, Result};
use crate::locked::{Decision, Held};
use crate::store::KvStore;

/// How [`KvStore::update_keys`] uses a key, which decides how it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Read (and perhaps written): held exclusively, so what was read is what the key holds
    /// until the batch is applied.
    Read,
    /// Written without being read: held shared, beside other writers of it (their writes
    /// and this batch's are applied in the order they reach the log).
    Write,
}

/// The keys [`KvStore::update_keys`] holds, as its closure reads them.
#[derive(Debug)]
pub struct HeldKeys<'a> {
    store: &'a KvStore,
    now: u64,
}

impl HeldKeys<'_> {
    /// The live value of `key` and its deadline (to the millisecond), as of now. Only a key
    /// held for [`KeyUse::Read`] is sure to hold it until the batch is applied.
    pub fn get(&self, key: &[u8]) -> Option<(Bytes, Option<SystemTime>)> {
        self.store
            .read_with_deadline(key, self.now, |e| Bytes::copy_from_slice(e.value()))
    }
}

impl KvStore {
    /// Holds `keys` (each as its [`KeyUse`] says), calls `f` to read them and decide a
    /// batch, and writes the batch atomically before letting go; returns what `f` returned.
    /// No other write of a key held for [`KeyUse::Read`] comes between `f`'s reads and the
    /// batch, so the whole is one atomic step. An empty batch writes nothing.
    ///
    /// `f` may be called more than once (under limits, when room must be made, everything is
    /// read again afterwards); only its last batch is written. It runs while the keys are
    /// held: it must not write to this store (that would deadlock) and holds up other
    /// writers of them while it runs. The batch is as durable as any other write: under
    /// `Durability::Sync` the keys are held until it is synced, so readers never see it
    /// before.
    ///
    /// # Errors
    ///
    /// What [`KvStore::write`] returns. A refused batch wrote nothing; after
    /// [`Error::Failed`](crate::Error::Failed) the outcome is unknown (the batch, whole, may
    /// come back when the store is reopened).
    ///
    /// # Panics
    ///
    /// If the batch writes a key that is not in `keys`.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// use kv_store::{KeyUse, WriteBatch};
    /// store.put("hits", "41")?;
    /// // INCR hits, then SET last-seen: one atomic step, one commit.
    /// let hits = store.update_keys(
    ///     &[(&b"hits"[..], KeyUse::Read), (&b"last-seen"[..], KeyUse::Write)],
    ///     |held| {
    ///         let (value, _deadline) = held.get(b"hits").unwrap();
    ///         let hits = std::str::from_utf8(&value).unwrap().parse::<u64>().unwrap() + 1;
    ///         let mut batch = WriteBatch::new();
    ///         batch.put("hits", hits.to_string()).put("last-seen", "today");
    ///         (batch, hits)
    ///     },
    /// )?;
    /// assert_eq!(hits, 42);
    /// assert_eq!(store.get("hits").unwrap(), "42");
    /// # Ok(())
    /// # }
    /// ```
    pub fn update_keys<T>(
        &self,
        keys: &[(&[u8], KeyUse)],
        mut f: impl FnMut(&HeldKeys<'_>) -> (WriteBatch, T),
    ) -> Result<T> {
        let held: Vec<(&[u8], bool)> = keys
            .iter()
            .map(|&(key, usage)| (key, usage == KeyUse::Read))
            .collect();
        // `write_locked` checks that each key written is held when it holds several
        // stripes; one stripe it takes for its one key, unchecked, so that check is here.
        let one = match keys {
            [(key, _)] => Some(self.inner.stripe_of(key)),
            _ => None,
        };
        self.write_locked(&held, WriteOptions::default(), |now| {
            let (batch, answer) = f(&HeldKeys { store: self, now });
            if let Some(stripe) = one {
                assert!(
                    batch
                        .ops
                        .iter()
                        .all(|op| self.inner.stripe_of(op.key()) == stripe),
                    "update_keys: the batch writes a key that is not among `keys`"
                );
            }
            Ok(Decision::Write(batch.ops, answer))
        })
    }

    /// [`update_keys`](Self::update_keys), if nothing can make the calling thread wait: no
    /// key held by another writer, and a write that returns before its fsync and goes into
    /// the log at once (see [`KvStore::put_async`], which writes in place on the same
    /// terms). `None` otherwise, having written nothing (`f` may have run): then call
    /// [`update_keys`](Self::update_keys) where waiting is allowed. What an async server
    /// calls on a runtime thread under `Durability::Batch` or `None`.
    ///
    /// # Errors
    ///
    /// As [`update_keys`](Self::update_keys).
    ///
    /// # Panics
    ///
    /// As [`update_keys`](Self::update_keys).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use kv_store::{Durability, KeyUse, KvStore, Options, WriteBatch};
    /// let store = KvStore::open_with(dir.path(), Options::default().durability(Durability::None))?;
    /// let written = store.try_update_keys(&[(&b"k"[..], KeyUse::Write)], |_| {
    ///     let mut batch = WriteBatch::new();
    ///     batch.put("k", "v");
    ///     (batch, ())
    /// });
    /// assert!(matches!(written, Some(Ok(()))), "nothing else was writing");
    /// assert_eq!(store.get("k").unwrap(), "v");
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_update_keys<T>(
        &self,
        keys: &[(&[u8], KeyUse)],
        f: impl FnOnce(&HeldKeys<'_>) -> (WriteBatch, T),
    ) -> Option<Result<T>> {
        let inner = &self.inner;
        if !self.writes_in_place(WriteOptions::default()) {
            return None;
        }
        if let Err(closed) = inner.refuse_if_closed() {
            return Some(inner.counted(Err(closed)));
        }
        let wanted = inner.stripes_wanted(
            keys.iter()
                .map(|&(key, usage)| (key, usage == KeyUse::Read)),
        );
        let mut guards = Vec::with_capacity(wanted.len());
        for &(stripe, exclusive) in &wanted {
            let guard = if exclusive {
                inner.stripes[stripe].try_write()
            } else {
                inner.stripes[stripe].try_read()
            };
            match guard {
                Some(guard) => guards.push((stripe, guard)),
                None => {
                    Held::Many(guards).unwritten();
                    return None;
                }
            }
        }
        let held = Held::Many(guards);
        let now = self.now();
        let (batch, answer) = f(&HeldKeys { store: self, now });
        let mut ops = batch.ops;
        let mut written = Vec::with_capacity(ops.len());
        for op in &ops {
            let stripe = inner.stripe_of(op.key());
            assert!(
                held.holds(stripe),
                "try_update_keys: the batch writes a key that is not among `keys`"
            );
            written.push(stripe);
        }
        let result = if ops.is_empty() {
            Ok(())
        } else {
            fix_deadlines(&mut ops, now);
            for op in &ops {
                inner.admission.touch(op.key(), true);
            }
            match inner.durable.try_write_now(ops, WriteOptions::default()) {
                Ok(result) => result.map_err(Error::from_write),
                Err(_) => {
                    held.unwritten();
                    return None;
                }
            }
        };
        // As `write_locked`: only the stripes written count a write.
        held.release(&written);
        Some(inner.counted(result).map(|()| answer))
    }
}
