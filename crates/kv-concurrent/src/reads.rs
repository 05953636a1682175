//! Point reads: one key, or many at once.
//!
//! A read hashes its key once: the hash picks the shard and finds the key in the shard's
//! table (both use the process's [`kv_core::KeyHasher`]). What a read hands out shares the
//! entry's allocation ([`Value`]) or is only lent under the shard's lock: no read copies a
//! value or allocates.
//!
//! A batched read ([`Sharded::get_many_with`]) lets the cache misses of many keys overlap. A
//! single read makes two or three misses one after the other (the table's control bytes,
//! its slot, the entry), and the locked instructions of the next read's lock wait for them.
//! A batch hashes all its keys first, takes the read lock of each shard it needs once, in
//! shard order (the order writers of several shards take them, so none can deadlock), then
//! finds every key's most likely entry without reading it, and only then compares the keys:
//! the misses of the whole batch are in flight together.

use kv_core::{Entry, IndexKind, State, Value};
use parking_lot::RwLockReadGuard;

use crate::sharded::Sharded;

/// The keys a batched read looks up under one set of locks: enough to keep many misses in
/// flight, few enough that a writer of one of the shards waits for little (a batch of 64
/// takes a few microseconds).
const BATCH: usize = 64;

impl Sharded {
    /// Calls `f` with the entry of `key`, under the shard's read lock, if it is live at the
    /// time `now` returns; `now` is called only when the entry has a deadline (a clock read
    /// costs a few percent of a get). `f` must not call into this state, reads included.
    #[inline]
    pub fn with_live_entry<R>(
        &self,
        key: &[u8],
        now: impl FnOnce() -> u64,
        f: impl FnOnce(&Entry) -> R,
    ) -> Option<R> {
        let hash = self.hash(key);
        let state = self.shard(self.shard_of_hash(hash)).state.read();
        let entry = state.get_hashed(hash, key)?;
        if entry.deadline().is_some_and(|deadline| deadline <= now()) {
            return None;
        }
        Some(f(entry))
    }

    /// The value of `key` if it is live at `now`, sharing the entry's allocation.
    #[inline]
    pub fn get(&self, key: &[u8], now: u64) -> Option<Value> {
        self.with_live_entry(key, || now, Value::of)
    }

    /// The value of `key` if it is live at the time `now` returns, sharing the entry's
    /// allocation; `now` is called only when the entry has a deadline.
    #[inline]
    pub fn get_live(&self, key: &[u8], now: impl FnOnce() -> u64) -> Option<Value> {
        self.with_live_entry(key, now, Value::of)
    }

    /// Calls `f(i, entry)` for every key `keys[i]`, in order, with its entry if it is live
    /// at the time `now` returns, else `None`. `now` is called at most once per batch of
    /// 64 keys, under that batch's locks, and only if an entry of the batch has a
    /// deadline: no entry is given after its deadline, however long the call.
    ///
    /// Keys are read in batches of 64, each under the read locks of the shards it touches,
    /// all held together while `f` runs for that batch: `f` must not call into this state
    /// at all, reads included (a write would wait for a lock this read holds, and a read
    /// may queue behind a writer waiting for one). Each batch sees every shard it
    /// reads at one instant, so a batch of writes applied across shards is seen whole or
    /// not at all by keys of one batch; batches are not one snapshot of the whole state.
    pub fn get_many_with<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        mut now: impl FnMut() -> u64,
        mut f: impl FnMut(usize, Option<&Entry>),
    ) {
        let mut guards: Vec<RwLockReadGuard<'_, State>> =
            Vec::with_capacity(keys.len().min(BATCH).min(self.shard_count()));
        for (batch, chunk) in keys.chunks(BATCH).enumerate() {
            // The time this batch is read at, read once under its locks if it is needed.
            let mut now_ms: Option<u64> = None;
            let n = chunk.len();
            let mut hashes = [0u64; BATCH];
            // Each key's shard and place in the batch, `shard << 8 | i`: sorted, the shards
            // in order (plain integers sort much faster than keys by a computed shard).
            let mut order = [0u32; BATCH];
            for (i, key) in chunk.iter().enumerate() {
                hashes[i] = self.hash(key.as_ref());
                order[i] = (self.shard_of_hash(hashes[i]) as u32) << 8 | i as u32;
            }
            let order = &mut order[..n];
            order.sort_unstable();
            // Each shard once, in shard order; `held[i]`: the guard of key `i`'s shard.
            let mut held = [0u8; BATCH];
            let mut last = u32::MAX;
            for &packed in order.iter() {
                let shard = packed >> 8;
                if shard != last {
                    guards.push(self.shard(shard as usize).state.read());
                    last = shard;
                }
                held[(packed & 0xff) as usize] = (guards.len() - 1) as u8;
            }
            // First every key's likely entry, reading none: the table misses overlap.
            let mut found: [Option<&Entry>; BATCH] = [None; BATCH];
            for (i, key) in chunk.iter().enumerate() {
                let state = &guards[usize::from(held[i])];
                found[i] = state.probe_hashed(hashes[i], key.as_ref());
            }
            // Then the entries, compared with their keys: the entry misses overlap.
            for (i, key) in chunk.iter().enumerate() {
                let key = key.as_ref();
                if let Some(entry) = found[i] {
                    if entry.key() != key {
                        let state = &guards[usize::from(held[i])];
                        found[i] = state.get_hashed(hashes[i], key);
                    }
                }
            }
            for (i, entry) in found[..n].iter().enumerate() {
                let live = entry.filter(|e| match e.deadline() {
                    None => true,
                    Some(deadline) => deadline > *now_ms.get_or_insert_with(&mut now),
                });
                f(batch * BATCH + i, live);
            }
            guards.clear();
        }
    }

    /// Looks `keys` up as [`get_many_with`](Self::get_many_with) does, their misses
    /// overlapping, and hands nothing out: a hint that brings their slots and entries into
    /// the CPU's caches, so that reads and writes of them soon after find them there
    /// instead of each waiting for memory in turn. Changes nothing. Only the hash index is
    /// looked up: the ordered index's lookup is a whole search, which the use would repeat.
    pub fn prefetch<K: AsRef<[u8]>>(&self, keys: &[K]) {
        if self.index_kind() != IndexKind::Hash {
            return;
        }
        // Made of what the lookups read, so that they are not optimised away.
        let mut seen = 0usize;
        // No clock: whether an entry is live does not matter to a hint.
        self.get_many_with(
            keys,
            || 0,
            |_, entry| seen = seen.wrapping_add(entry.map_or(0, |e| e.key().len())),
        );
        std::hint::black_box(seen);
    }

    /// The values of `keys`, in order, each if it is live at the time `now` returns (read
    /// once per batch at most): [`get_many_with`](Self::get_many_with), handing out
    /// [`Value`]s.
    pub fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        now: impl FnMut() -> u64,
    ) -> Vec<Option<Value>> {
        let mut values = Vec::with_capacity(keys.len());
        self.get_many_with(keys, now, |_, entry| values.push(entry.map(Value::of)));
        values
    }
}

#[cfg(test)]
mod tests {
    use kv_core::{Expiry, IndexKind, OpRef};
    use kv_durable::Sink;

    use crate::Sharded;

    #[test]
    fn prefetch_changes_nothing() {
        let state = Sharded::new(IndexKind::Hash, 4);
        let keys: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for (i, key) in keys.iter().enumerate().step_by(2) {
            let expiry = if i % 4 == 0 {
                Expiry::AtUnixMillis(10)
            } else {
                Expiry::Never
            };
            state.apply(
                OpRef::Put {
                    key,
                    value: b"v",
                    expiry,
                },
                0,
            );
        }
        let before = (
            state.len(),
            state.memory_used(),
            state.get_many(&keys, || 5),
        );
        state.prefetch(&keys);
        state.prefetch::<&[u8]>(&[]);
        let after = (
            state.len(),
            state.memory_used(),
            state.get_many(&keys, || 5),
        );
        assert_eq!(before, after);
    }

    /// A call over several batches reads the clock again for each one, so a key whose
    /// deadline passes between two batches is not given as live by the later one.
    #[test]
    fn each_batch_reads_the_clock_it_judges_deadlines_by() {
        let state = Sharded::new(IndexKind::Hash, 4);
        let keys: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for key in &keys {
            let op = OpRef::Put {
                key,
                value: b"v",
                expiry: Expiry::AtUnixMillis(1_000),
            };
            state.apply(op, 0);
        }
        // The clock moves past every deadline after the first batch has read it.
        let mut reads = 0;
        let clock = || {
            reads += 1;
            if reads == 1 {
                999
            } else {
                1_000
            }
        };
        let values = state.get_many(&keys, clock);
        let live: Vec<bool> = values.iter().map(Option::is_some).collect();
        assert!(
            live[..64].iter().all(|&l| l),
            "the first batch is read at 999"
        );
        assert!(
            live[64..].iter().all(|&l| !l),
            "later batches are read at 1,000, past every deadline"
        );
    }
}
