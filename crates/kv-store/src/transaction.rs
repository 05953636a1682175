//! Optimistic transactions over several keys, with Redis's `WATCH` semantics.
//!
//! A transaction remembers, for each key it reads or watches, the version of the key's lock
//! stripe (loaded before the read) and whether the key was live. Its writes are buffered.
//! The commit holds every read, watched and written key's stripe exclusively (in stripe
//! order, as every writer takes them), checks that no version moved and that no key read
//! live has expired since, and only then writes the buffered writes as one atomic batch,
//! before letting go. Every write bumps its stripes' versions after it is applied, while it
//! still holds them (`stripes.rs`), so a write of a watched key that completed after the
//! read is always seen. A stripe is shared by unrelated keys (65,536 stripes): a write of
//! another key of the same stripe is a conflict too. That can fail a commit that need not
//! have failed, never let through one that should have.

use bytes::Bytes;
use kv_core::Op;
use kv_durable::WriteOptions;

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::into_bytes::IntoBytes;
use crate::locked::Decision;
use crate::store::KvStore;

/// Reads and buffered writes that [`commit`](Transaction::commit) applies only if no key
/// read or watched has changed since: Redis's `WATCH` ... `MULTI` ... `EXEC`.
///
/// A change is any write of the key (even one that writes the value it held, as in Redis
/// 7), its eviction, or its expiry (as in Redis from 6.0.9). Reads ([`get`](Self::get))
/// see the store, not this transaction's own buffered writes, as in Redis, where commands
/// queued after `MULTI` run at `EXEC`.
///
/// It holds a handle on the store (no borrow) and is `Send`, so a server connection can
/// keep one across requests; the store stays open while it lives. It is `Clone`: a server
/// can keep a connection's watches in one and run `EXEC`'s commands in a clone, reading
/// through it what they modify; a [`Conflict`] names the first key found changed, watched
/// keys first, so a conflict on a key only the commands read can be retried. Conflicts are detected by
/// lock stripe, which a few unrelated keys share: a write of one of those fails the commit
/// too (then retry, as after any conflict), but a real change is never missed.
///
/// [`KvStore::transaction`] runs one in a closure and retries it on conflict.
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = kv_store::KvStore::open(dir.path())?;
/// store.put("stock", "3")?;
/// let mut tx = store.begin_transaction();
/// let stock: u32 = std::str::from_utf8(&tx.get("stock").unwrap()).unwrap().parse().unwrap();
/// tx.put("stock", (stock - 1).to_string()).put("order:1", "placed");
///
/// store.put("stock", "3")?; // Another writer: any write is a change, even of the same value.
/// let conflict = tx.commit()?.unwrap_err();
/// assert_eq!(conflict.key, "stock");
/// assert!(store.get("order:1").is_none(), "a conflicting commit writes nothing");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Transaction {
    store: KvStore,
    watched: Vec<Watched>,
    writes: WriteBatch,
}

/// A key read or watched, as it was then.
#[derive(Debug, Clone)]
struct Watched {
    key: Bytes,
    /// Its stripe's version, loaded before the key was looked at.
    version: u64,
    /// Whether it held a live value.
    live: bool,
}

/// A [`Transaction`] that did not commit: a key it read or watched was written, evicted or
/// expired since (or another key sharing its lock stripe was written). Nothing was written.
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = kv_store::KvStore::open(dir.path())?;
/// let mut tx = store.begin_transaction();
/// tx.watch("k").put("k", "mine");
/// store.put("k", "theirs")?;
/// let conflict: kv_store::Conflict = tx.commit()?.unwrap_err();
/// assert_eq!(conflict.key, "k");
/// assert_eq!(store.get("k").unwrap(), "theirs");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction conflict: a key read or watched changed before the commit")]
pub struct Conflict {
    /// The first key found changed.
    pub key: Bytes,
}

impl KvStore {
    /// Starts a [`Transaction`]: read and watch keys through it, buffer writes in it, then
    /// [`commit`](Transaction::commit). It holds a handle of the store: dropping the last
    /// `KvStore` handle while a transaction is alive does not close the store nor unlock
    /// its directory (an explicit [`close`](KvStore::close) still does).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// let mut tx = store.begin_transaction();
    /// assert!(tx.get("k").is_none());
    /// tx.put("k", "created");
    /// assert!(tx.commit()?.is_ok());
    /// assert_eq!(store.get("k").unwrap(), "created");
    /// # Ok(())
    /// # }
    /// ```
    pub fn begin_transaction(&self) -> Transaction {
        Transaction {
            store: self.clone(),
            watched: Vec::new(),
            writes: WriteBatch::new(),
        }
    }

    /// Runs `f` in a new [`Transaction`] and commits what it buffered, running it again in
    /// a fresh transaction for as long as the commit finds a conflict; returns what `f`
    /// returned with the commit that succeeded.
    ///
    /// `f` may run any number of times: it should only read through the transaction and
    /// buffer writes in it (anything else it does is repeated). An `Err` from `f` abandons
    /// the transaction (nothing written) and is returned as it is; `E` can be this crate's
    /// [`Error`] or any error type that converts from it.
    ///
    /// # Errors
    ///
    /// What `f` returns, or a failed commit's error converted into `E` (see
    /// [`Transaction::commit`]).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("alice", "100")?;
    /// store.put("bob", "0")?;
    /// let balance = |v: Option<kv_store::Bytes>| -> u64 {
    ///     std::str::from_utf8(&v.unwrap()).unwrap().parse().unwrap()
    /// };
    /// let moved = store.transaction(|tx| {
    ///     let (alice, bob) = (balance(tx.get("alice")), balance(tx.get("bob")));
    ///     if alice < 30 {
    ///         return Ok::<_, kv_store::Error>(false); // nothing buffered, nothing written
    ///     }
    ///     tx.put("alice", (alice - 30).to_string()).put("bob", (bob + 30).to_string());
    ///     Ok(true)
    /// })?;
    /// assert!(moved);
    /// assert_eq!(store.get("bob").unwrap(), "30");
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction<T, E: From<Error>>(
        &self,
        mut f: impl FnMut(&mut Transaction) -> Result<T, E>,
    ) -> Result<T, E> {
        loop {
            let mut tx = self.begin_transaction();
            let answer = f(&mut tx)?;
            match tx.commit()? {
                Ok(()) => return Ok(answer),
                // Some other write completed since the reads: the store moved on, so
                // trying again makes progress.
                Err(_) => std::thread::yield_now(),
            }
        }
    }
}

impl Transaction {
    /// The live value of `key` in the store now, watching it from before the read: a
    /// change of it after this fails the commit. Sees the store, not this transaction's
    /// buffered writes.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// let mut tx = store.begin_transaction();
    /// assert_eq!(tx.get("k").unwrap(), "v");
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&mut self, key: impl IntoBytes) -> Option<Bytes> {
        let key = key.into_bytes();
        let version = self.version_of(&key);
        let value = self.store.get(&key);
        self.watched.push(Watched {
            key,
            version,
            live: value.is_some(),
        });
        value.map(Bytes::from)
    }

    /// Watches `key` without reading it (Redis's `WATCH`): a change of it from now on fails
    /// the commit.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// let mut tx = store.begin_transaction();
    /// tx.watch("k");
    /// store.put("k", "changed")?;
    /// tx.put("other", "v");
    /// assert!(tx.commit()?.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch(&mut self, key: impl IntoBytes) -> &mut Self {
        let key = key.into_bytes();
        let version = self.version_of(&key);
        let live = self.store.contains_key(&key);
        self.watched.push(Watched { key, version, live });
        self
    }

    /// Buffers: set `key` to `value` at the commit.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// let mut tx = store.begin_transaction();
    /// tx.put("k", "v");
    /// assert!(store.get("k").is_none(), "buffered until the commit");
    /// tx.commit()?.unwrap();
    /// assert_eq!(store.get("k").unwrap(), "v");
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&mut self, key: impl IntoBytes, value: impl IntoBytes) -> &mut Self {
        self.writes.put(key, value);
        self
    }

    /// Buffers: set `key` to `value` until `ttl` after the commit.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// use std::time::Duration;
    /// let mut tx = store.begin_transaction();
    /// tx.put_with_ttl("session", "token", Duration::from_secs(60));
    /// tx.commit()?.unwrap();
    /// assert!(store.ttl("session").remaining().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_with_ttl(
        &mut self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        ttl: std::time::Duration,
    ) -> &mut Self {
        self.writes.put_with_ttl(key, value, ttl);
        self
    }

    /// Buffers: remove `key` at the commit.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// let mut tx = store.begin_transaction();
    /// tx.delete("k");
    /// tx.commit()?.unwrap();
    /// assert!(store.get("k").is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete(&mut self, key: impl IntoBytes) -> &mut Self {
        self.writes.delete(key);
        self
    }

    /// Buffers every write of `batch`, after those buffered already.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// let mut batch = kv_store::WriteBatch::new();
    /// batch.put("a", "1").put("b", "2");
    /// let mut tx = store.begin_transaction();
    /// tx.write(batch);
    /// tx.commit()?.unwrap();
    /// assert_eq!(store.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn write(&mut self, batch: WriteBatch) -> &mut Self {
        self.writes.ops.extend(batch.ops);
        self
    }

    /// Writes the buffered writes as one atomic batch (as [`KvStore::write`]), if no key
    /// read or watched changed since; else writes nothing and answers the [`Conflict`].
    /// A transaction that buffered nothing only checks.
    ///
    /// # Errors
    ///
    /// What [`KvStore::write`] returns when the batch, free of conflict, could not be
    /// written. A refused batch wrote nothing; after [`Error::Failed`] the outcome is
    /// unknown: the batch, whole, may be in the log and come back when the store is
    /// reopened (it is all or nothing either way).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// let mut tx = store.begin_transaction();
    /// tx.watch("config");
    /// tx.put("config", "v2").delete("config:draft");
    /// match tx.commit()? {
    ///     Ok(()) => assert_eq!(store.get("config").unwrap(), "v2"),
    ///     Err(conflict) => println!("{} changed: read it again", String::from_utf8_lossy(&conflict.key)),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn commit(self) -> Result<Result<(), Conflict>> {
        let Transaction {
            store,
            watched,
            writes,
        } = self;
        // Every key held exclusively: a version read under it cannot move until the write.
        let mut keys: Vec<(&[u8], bool)> = watched.iter().map(|w| (&w.key[..], true)).collect();
        keys.extend(writes.ops.iter().map(|op| (&op.key()[..], true)));
        if keys.is_empty() {
            return Ok(Ok(()));
        }
        let inner = &store.inner;
        store.write_locked(&keys, WriteOptions::default(), |now| {
            // Under every stripe held exclusively: no write of these keys is in flight, and
            // each one completed has bumped its stripe.
            let changed = watched.iter().find(|w| {
                inner.stripes[inner.stripe_of(&w.key)].version() != w.version
                    || (w.live && !store.state().contains_key(&w.key, now))
            });
            if let Some(w) = changed {
                return Ok(Decision::Done(Err(Conflict { key: w.key.clone() })));
            }
            // Cloned in case room must be made and this runs again (`Bytes` clones share).
            let ops: Vec<Op> = writes.ops.clone();
            Ok(Decision::Write(ops, Ok(())))
        })
    }

    /// The version of `key`'s stripe, loaded before the key is looked at.
    fn version_of(&self, key: &[u8]) -> u64 {
        let inner = &self.store.inner;
        inner.stripes[inner.stripe_of(key)].version()
    }
}

#[cfg(test)]
mod tests;
