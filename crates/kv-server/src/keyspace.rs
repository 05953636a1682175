//! What the commands read and write: the store itself, or a block's view of it.
//!
//! Commands run against a [`Keyspace`], so one executor serves all: a command alone
//! against the [`KvStore`] (each read-modify-write is `update_with`, atomic against every
//! other connection); `EXEC`'s block and pipelined blocks (`block.rs`) against a [`Queued`]
//! view, which sees the block's own writes first and buffers them, so the whole block
//! commits as one atomic batch or not at all. `EXEC`'s view reads through a
//! [`Transaction`] (every key read is validated at its commit); a pipelined block's reads
//! keys that [`KvStore::update_keys`] holds for it until its batch is applied.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::execute::store_error;
use crate::reply::Reply;
use kv_store::{
    Conflict, Current, HeldKeys, KeysPage, KvStore, Transaction, Ttl, TtlUpdate, Update, Updated,
    WriteBatch,
};

/// Reads and writes of keys, as the commands need them.
pub(crate) trait Keyspace {
    /// The key's live value.
    fn get(&mut self, key: &Bytes) -> Option<Bytes>;
    /// The live values of `keys`, in order (`MGET`).
    fn get_many(&mut self, keys: &[Bytes]) -> Vec<Option<Bytes>> {
        keys.iter().map(|key| self.get(key)).collect()
    }
    /// Whether the key is live, and its deadline.
    fn ttl(&mut self, key: &Bytes) -> Ttl;
    /// An atomic read-modify-write of one key (as [`KvStore::update_with`]).
    fn update(
        &mut self,
        key: &Bytes,
        f: &mut dyn FnMut(Option<Current<'_>>) -> Update,
    ) -> kv_store::Result<Updated>;
    /// Sets the key to `value` with `ttl`, whatever it held: `SET` without a condition or
    /// `GET`. A view that can write without reading the key first does (the store's value
    /// is neither looked up nor copied); by default it is an [`update`](Self::update).
    fn put(&mut self, key: &Bytes, value: &Bytes, ttl: TtlUpdate) -> kv_store::Result<()> {
        self.update(key, &mut |_| Update::put_with(value.clone(), ttl))
            .map(|_| ())
    }
    /// Sets every pair, atomically, without deadlines.
    fn put_all(&mut self, pairs: &[(Bytes, Bytes)]) -> kv_store::Result<()>;
    /// Every live key.
    fn keys(&mut self) -> Vec<Bytes>;
    /// Calls `f` with every live key, holding none of them all at once.
    fn for_each_key(&mut self, f: &mut dyn FnMut(&Bytes));
    /// A page of about `count` live keys from `cursor`, and the next page's cursor, as
    /// [`KvStore::keys_page`] gives them (`SCAN`); `None` where the store has no pages (the
    /// ordered index). Every page of an iteration goes through this, whatever the view,
    /// so a cursor means the same to all of them.
    fn keys_page(&mut self, cursor: u64, count: usize) -> Option<KeysPage>;
    /// A live key picked at random (`RANDOMKEY`); by default from [`keys`](Self::keys).
    fn random_key(&mut self) -> Option<Bytes> {
        let keys = self.keys();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
        keys.get(nanos % keys.len().max(1)).cloned()
    }
    /// How many keys are live.
    fn len(&mut self) -> usize;
    /// Removes every key.
    fn flush(&mut self) -> kv_store::Result<()>;
    /// The key's deadline, exactly: `None` if it holds no value, `Some(None)` if it has
    /// no deadline.
    fn deadline(&mut self, key: &Bytes) -> Option<Option<SystemTime>>;
    /// The instant the view sets relative deadlines from and compares them at, in whole
    /// milliseconds as Redis keeps time: `EXPIRE k 100` then `EXPIRE k 100 GT` within
    /// one millisecond is not a later deadline. By default the clock's now.
    fn now(&self) -> SystemTime {
        truncated_now()
    }
    /// Runs `f`, which reads and writes several keys, as one atomic step: outside a
    /// block, in a transaction of its own, run again until it commits (a changed key only
    /// means another writer went first); inside `EXEC`'s block, as part of it.
    fn atomically(&mut self, f: &mut dyn FnMut(&mut dyn Keyspace) -> Reply) -> Reply;
}

impl Keyspace for KvStore {
    fn for_each_key(&mut self, f: &mut dyn FnMut(&Bytes)) {
        for key in KvStore::keys(self) {
            f(&key);
        }
    }

    fn keys_page(&mut self, cursor: u64, count: usize) -> Option<KeysPage> {
        KvStore::keys_page(self, cursor, count)
    }

    /// The store's own pick: no list of every key.
    fn random_key(&mut self) -> Option<Bytes> {
        KvStore::random_key(self)
    }

    fn deadline(&mut self, key: &Bytes) -> Option<Option<SystemTime>> {
        // One read: no stripe, no copy of the value.
        KvStore::deadline(self, key)
    }

    fn atomically(&mut self, f: &mut dyn FnMut(&mut dyn Keyspace) -> Reply) -> Reply {
        loop {
            let mut view = Queued::new(self.clone(), self.begin_transaction());
            let reply = f(&mut view);
            match view.commit() {
                Ok(Ok(())) => return reply,
                Ok(Err(_)) => continue,
                Err(error) => return store_error(&error),
            }
        }
    }

    fn get(&mut self, key: &Bytes) -> Option<Bytes> {
        // The reply copies the value into the output anyway: a copy here costs one
        // allocation, as a shared `Value` turned into `Bytes` would (`Bytes::from_owner`),
        // without writing the entry's reference count, which every reader of a hot key
        // would contend on.
        KvStore::get_with(self, key, Bytes::copy_from_slice)
    }

    fn get_many(&mut self, keys: &[Bytes]) -> Vec<Option<Bytes>> {
        // One batched lookup: the keys' memory misses overlap.
        let mut values = Vec::with_capacity(keys.len());
        KvStore::get_many_with(self, keys, |_, value| {
            values.push(value.map(Bytes::copy_from_slice));
        });
        values
    }

    fn ttl(&mut self, key: &Bytes) -> Ttl {
        KvStore::ttl(self, key)
    }

    fn update(
        &mut self,
        key: &Bytes,
        f: &mut dyn FnMut(Option<Current<'_>>) -> Update,
    ) -> kv_store::Result<Updated> {
        self.update_with(key.clone(), f)
    }

    fn put_all(&mut self, pairs: &[(Bytes, Bytes)]) -> kv_store::Result<()> {
        let mut batch = WriteBatch::new();
        for (key, value) in pairs {
            batch.put(key.clone(), value.clone());
        }
        self.write(batch)
    }

    fn keys(&mut self) -> Vec<Bytes> {
        KvStore::keys(self).collect()
    }

    fn len(&mut self) -> usize {
        KvStore::len(self)
    }

    fn flush(&mut self) -> kv_store::Result<()> {
        // One batch: all or nothing. Keys written meanwhile may survive, as in Redis, where
        // FLUSHDB's ASYNC mode has the same effect.
        let mut batch = WriteBatch::new();
        for key in KvStore::keys(self) {
            batch.delete(key);
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.write(batch)
    }
}

/// A key as a block left it: its value and deadline, or `None` if deleted.
pub(crate) type Pending = Option<(Bytes, Option<SystemTime>)>;

/// Whether a key in `state` holds a value at `now` (it has one, and no deadline passed).
fn is_live(state: &Pending, now: SystemTime) -> bool {
    state
        .as_ref()
        .is_some_and(|(_, deadline)| deadline.is_none_or(|d| d > now))
}

/// What an [`Update`] decided for a key does to a view's pending state.
pub(crate) struct Decided {
    /// The reply's old and new values.
    pub(crate) updated: Updated,
    /// The key's new state, if it changes.
    pub(crate) state: Option<Pending>,
    /// A put's time to live, when it was given relative to now (`EX`, `PX`).
    pub(crate) after: Option<Duration>,
}

/// Runs `f` on a key whose value and deadline are `current` in a view at `now` (its block's
/// pending state, else the store), and tells what it decided: the one read-modify-write of
/// every view ([`Queued`], and the replicated leader's `Staged`).
pub(crate) fn decide(
    current: Pending,
    now: SystemTime,
    f: &mut dyn FnMut(Option<Current<'_>>) -> Update,
) -> Decided {
    let update = f(current.as_ref().map(|(value, deadline)| Current {
        value,
        deadline: *deadline,
    }));
    // Moved, not cloned: the first clone of a value read from the store (a `Bytes` made
    // from a `Vec`) allocates.
    let kept = current.as_ref().and_then(|(_, deadline)| *deadline);
    let old = current.map(|(value, _)| value);
    match update {
        Update::Keep => Decided {
            updated: Updated {
                new: old.clone(),
                old,
            },
            state: None,
            after: None,
        },
        Update::Delete => Decided {
            state: old.is_some().then_some(None),
            updated: Updated { old, new: None },
            after: None,
        },
        Update::Put { value, ttl } => {
            let (deadline, after) = deadline_of(ttl, kept, now);
            Decided {
                updated: Updated {
                    old,
                    new: Some(value.clone()),
                },
                state: Some(Some((value, deadline))),
                after,
            }
        }
    }
}

/// A put's deadline given `ttl` at `now`, for a key whose deadline was `kept` (what
/// `KEEPTTL` keeps), and the time to live when it was given relative to now.
fn deadline_of(
    ttl: TtlUpdate,
    kept: Option<SystemTime>,
    now: SystemTime,
) -> (Option<SystemTime>, Option<Duration>) {
    match ttl {
        TtlUpdate::Keep => (kept, None),
        TtlUpdate::Remove => (None, None),
        TtlUpdate::After(after) => (Some(now + after), Some(after)),
        TtlUpdate::At(at) => (Some(at), None),
    }
}

/// `at` rounded down to the millisecond.
pub(crate) fn whole_millis(at: SystemTime) -> SystemTime {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    SystemTime::UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64)
}

/// Now, rounded down to the millisecond: Redis's clock for deadlines (`mstime()`), so that
/// a deadline set and compared within one millisecond (`SET k v PX 100` then
/// `PEXPIRE k 100 LT`, or `PTTL` right after) is the one Redis would compute; the store
/// keeps deadlines in milliseconds too.
pub(crate) fn truncated_now() -> SystemTime {
    whole_millis(SystemTime::now())
}

/// A view's answer to `TTL` for a key in `state` at `now`.
pub(crate) fn ttl_at(state: Pending, now: SystemTime) -> Ttl {
    match state {
        None => Ttl::NoKey,
        Some((_, None)) => Ttl::NoDeadline,
        Some((_, Some(at))) => Ttl::Remaining(at.duration_since(now).unwrap_or(Duration::ZERO)),
    }
}

/// Where a [`Queued`] view reads a key its block has not written.
enum Reads<'a> {
    /// `EXEC`: through a transaction, so every key read is validated at its commit.
    Watched(Transaction),
    /// A pipelined block: the keys, held for it by [`KvStore::update_keys`].
    Held(&'a HeldKeys<'a>),
}

/// The view a block of commands runs in (`EXEC`'s, or a pipelined run of data commands):
/// reads see the block's own pending writes first, then the store; writes are buffered, so
/// the whole block is written as one atomic batch or not at all.
pub(crate) struct Queued<'a> {
    store: KvStore,
    reads: Reads<'a>,
    writes: WriteBatch,
    /// The block's writes by key. A hashbrown map with its default (foldhash) hasher, sized
    /// for the block's keys at once: one is built per pipelined block, and std's SipHash
    /// and its growth from empty were 5% of a pipelined INCR's time.
    pending: hashbrown::HashMap<Bytes, Pending>,
}

impl<'a> Queued<'a> {
    /// `EXEC`'s view over `store`, validated (and written) through `tx`, which holds the
    /// connection's watches.
    pub(crate) fn new(store: KvStore, tx: Transaction) -> Queued<'static> {
        Queued::over(store, Reads::Watched(tx), 0)
    }

    /// A pipelined block's view, reading the keys `held` for it: `keys` of them.
    pub(crate) fn held(store: KvStore, held: &'a HeldKeys<'a>, keys: usize) -> Queued<'a> {
        Queued::over(store, Reads::Held(held), keys)
    }

    fn over(store: KvStore, reads: Reads<'a>, keys: usize) -> Queued<'a> {
        Queued {
            store,
            reads,
            writes: WriteBatch::with_capacity(keys),
            pending: hashbrown::HashMap::with_capacity(keys),
        }
    }

    /// `EXEC`: commits the block's writes as one atomic batch, unless a key read or watched
    /// changed.
    pub(crate) fn commit(self) -> kv_store::Result<Result<(), Conflict>> {
        match self.reads {
            Reads::Watched(mut tx) => {
                tx.write(self.writes);
                tx.commit()
            }
            Reads::Held(_) => {
                unreachable!("a held block hands its writes back (into_writes), never commits")
            }
        }
    }

    /// A pipelined block's writes, for [`KvStore::update_keys`] to write.
    pub(crate) fn into_writes(self) -> WriteBatch {
        self.writes
    }

    /// Records the key's new state: in the batch the block commits, and for the block's
    /// later reads. `after`: a time to live given relative to now (`EX`, `PX`), which counts
    /// from the commit, as it would outside a block.
    fn stage(&mut self, key: &Bytes, state: Pending, after: Option<Duration>) {
        let batch = &mut self.writes;
        match (&state, after) {
            (None, _) => batch.delete(key.clone()),
            (Some((value, _)), Some(after)) => {
                batch.put_with_ttl(key.clone(), value.clone(), after)
            }
            (Some((value, Some(at))), None) => {
                batch.put_with_deadline(key.clone(), value.clone(), *at)
            }
            (Some((value, None)), None) => batch.put(key.clone(), value.clone()),
        };
        self.pending.insert(key.clone(), state);
    }

    /// `stored` (keys of the store) as the block sees them: without the keys it wrote,
    /// then each key it wrote that it leaves live, once.
    fn overlay(&self, stored: impl IntoIterator<Item = Bytes>) -> Vec<Bytes> {
        let mut keys: Vec<Bytes> = stored
            .into_iter()
            .filter(|key| !self.pending.contains_key(key))
            .collect();
        let now = SystemTime::now();
        keys.extend(
            self.pending
                .iter()
                .filter(|(_, state)| is_live(state, now))
                .map(|(key, _)| key.clone()),
        );
        keys
    }

    fn pending(&self, key: &Bytes) -> Option<Pending> {
        let pending = self.pending.get(key)?;
        Some(
            pending
                .clone()
                .filter(|_| is_live(pending, SystemTime::now())),
        )
    }

    /// The key's value and deadline: the block's own, or the store's (read through the
    /// transaction, so validated at commit, or under the held key).
    fn read(&mut self, key: &Bytes) -> Pending {
        if let Some(pending) = self.pending(key) {
            return pending;
        }
        match &mut self.reads {
            Reads::Held(held) => held.get(key),
            Reads::Watched(tx) => {
                // `get` records the stripe's version before reading, so a write between it
                // and the `ttl` below fails the commit: the pair is consistent if the commit
                // succeeds.
                let value = tx.get(key.clone())?;
                // The deadline as stored, to the millisecond (not now plus what is left,
                // which a clock read between the two would shift).
                let deadline = self.store.deadline(key).flatten();
                Some((value, deadline))
            }
        }
    }
}

impl Keyspace for Queued<'_> {
    fn for_each_key(&mut self, f: &mut dyn FnMut(&Bytes)) {
        for key in self.keys() {
            f(&key);
        }
    }

    /// The store's page seen through the block ([`Queued::overlay`]): every key the block
    /// leaves live is on every page, so a key the block created is given whichever part of
    /// the walk its shard is in (again on each page of the block, as `SCAN` may give a key
    /// more than once).
    fn keys_page(&mut self, cursor: u64, count: usize) -> Option<KeysPage> {
        let mut page = self.store.keys_page(cursor, count)?;
        page.keys = self.overlay(std::mem::take(&mut page.keys));
        Some(page)
    }

    fn deadline(&mut self, key: &Bytes) -> Option<Option<SystemTime>> {
        self.read(key).map(|(_, deadline)| deadline)
    }

    fn atomically(&mut self, f: &mut dyn FnMut(&mut dyn Keyspace) -> Reply) -> Reply {
        f(self)
    }

    fn get(&mut self, key: &Bytes) -> Option<Bytes> {
        self.read(key).map(|(value, _)| value)
    }

    fn ttl(&mut self, key: &Bytes) -> Ttl {
        ttl_at(self.read(key), self.now())
    }

    fn update(
        &mut self,
        key: &Bytes,
        f: &mut dyn FnMut(Option<Current<'_>>) -> Update,
    ) -> kv_store::Result<Updated> {
        let current = self.read(key);
        let decided = decide(current, self.now(), f);
        if let Some(state) = decided.state {
            self.stage(key, state, decided.after);
        }
        Ok(decided.updated)
    }

    fn put(&mut self, key: &Bytes, value: &Bytes, ttl: TtlUpdate) -> kv_store::Result<()> {
        if ttl == TtlUpdate::Keep {
            // The deadline it keeps is the key's: read it.
            return self
                .update(key, &mut |_| Update::put_with(value.clone(), ttl))
                .map(|_| ());
        }
        let (deadline, after) = deadline_of(ttl, None, self.now());
        self.stage(key, Some((value.clone(), deadline)), after);
        Ok(())
    }

    fn put_all(&mut self, pairs: &[(Bytes, Bytes)]) -> kv_store::Result<()> {
        for (key, value) in pairs {
            self.writes.put(key.clone(), value.clone());
            self.pending
                .insert(key.clone(), Some((value.clone(), None)));
        }
        Ok(())
    }

    fn keys(&mut self) -> Vec<Bytes> {
        let stored = self.store.keys();
        self.overlay(stored)
    }

    fn len(&mut self) -> usize {
        let mut len = self.store.len();
        let now = SystemTime::now();
        for (key, state) in &self.pending {
            let was = self.store.contains_key(key);
            len = len + usize::from(is_live(state, now)) - usize::from(was);
        }
        len
    }

    fn flush(&mut self) -> kv_store::Result<()> {
        for key in self.keys() {
            self.writes.delete(key.clone());
            self.pending.insert(key, None);
        }
        Ok(())
    }
}
