//! The state split into shards by key hash, each behind its own lock.

use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use kv_core::{Change, Cursor, Entry, IndexKind, KeyHasher, Op, OpRef, State};
use kv_durable::{DriveReplay, ReadPart, Sink};
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::ahead::Ahead;
use crate::scan::{Scan, Scanner};

/// One shard: its state, and its size published for lock-free totals.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) state: RwLock<State>,
    /// `state.len()` as of the last change.
    len: AtomicUsize,
    /// `state.memory_used()` as of the last change.
    memory: AtomicUsize,
    /// `state.entry_bytes()` as of the last change.
    entry_bytes: AtomicUsize,
}

impl Shard {
    fn new(kind: IndexKind) -> Self {
        Shard {
            state: RwLock::new(State::new(kind)),
            len: AtomicUsize::new(0),
            memory: AtomicUsize::new(0),
            entry_bytes: AtomicUsize::new(0),
        }
    }

    /// Publishes the sizes of `state` (this shard's, write-locked by the caller).
    fn publish(&self, state: &State) {
        self.len.store(state.len(), Ordering::Relaxed);
        self.memory.store(state.memory_used(), Ordering::Relaxed);
        self.entry_bytes
            .store(state.entry_bytes(), Ordering::Relaxed);
    }
}

/// The key-value state split into shards by key hash, each a [`State`] behind a
/// `parking_lot` read-write lock.
///
/// Readers of different shards never touch the same lock, and a reader holds its shard only
/// for the lookup, never while a write waits for the disk (the durable layer applies a write
/// after its record is in the log). Totals (`len`, `memory_used`) are read from per-shard
/// counters without locking.
#[derive(Debug)]
pub struct Sharded {
    shards: Box<[CachePadded<Shard>]>,
    /// The process's key hasher, the one every shard's table uses too: a key is hashed once
    /// to pick its shard and find it in the shard's table.
    hasher: KeyHasher,
    kind: IndexKind,
}

/// The default shard count for an index kind.
///
/// Hash: sixteen per core, a power of two between 16 and 1024; more shards than readers keeps
/// two readers off the same lock word most of the time. Ordered: one per core, between 2 and
/// 16, because every range scan seeks every shard: measured on 1,000,000 keys, a 100-key
/// scan took 25 µs over 1 shard, 40 µs over 2, 63 µs over 8 and 122 µs over 32.
pub fn default_shard_count(kind: IndexKind) -> usize {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    match kind {
        IndexKind::Hash => (cores * 16).next_power_of_two().clamp(16, 1024),
        IndexKind::Ordered => cores.next_power_of_two().clamp(2, 16),
    }
}

impl Sharded {
    /// An empty state of `shards` shards (rounded up to a power of two, at least one).
    pub fn new(kind: IndexKind, shards: usize) -> Self {
        let count = shards.max(1).next_power_of_two();
        Sharded {
            shards: (0..count)
                .map(|_| CachePadded::new(Shard::new(kind)))
                .collect(),
            hasher: KeyHasher::shared(),
            kind,
        }
    }

    /// The index every shard keeps.
    pub fn index_kind(&self) -> IndexKind {
        self.kind
    }

    /// How many shards there are.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Publishes every shard's sizes.
    pub(crate) fn publish_all(&self) {
        for shard in self.shards.iter() {
            shard.publish(&shard.state.read());
        }
    }

    #[inline]
    fn shard_of(&self, key: &[u8]) -> usize {
        self.shard_of_hash(self.hasher.hash(key))
    }

    /// The key's hash, by the hasher of the shards' tables.
    #[inline]
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash(key)
    }

    /// The shard of a key of this hash.
    #[inline]
    pub(crate) fn shard_of_hash(&self, hash: u64) -> usize {
        // Bits 40 and up (at most sixteen of them): a shard's table picks buckets by the low
        // bits of the same hash and tells slots apart by its top seven (57-63), so the
        // shard and the bucket stay independent choices.
        (hash >> 40) as usize & (self.shards.len() - 1)
    }

    pub(crate) fn shard(&self, index: usize) -> &Shard {
        &self.shards[index]
    }

    /// Calls `f` with the entry of `key` if it is live at `now`, under the shard's read lock
    /// (`f` must not call into this state, reads included).
    #[inline]
    pub fn with_entry<R>(&self, key: &[u8], now: u64, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.with_live_entry(key, || now, f)
    }

    /// Whether `key` is live at `now`.
    pub fn contains_key(&self, key: &[u8], now: u64) -> bool {
        self.with_entry(key, now, |_| ()).is_some()
    }

    /// Entries held, counting expired entries not yet swept. Lock-free; a write in progress
    /// may or may not be counted.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.len.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries live at `now`: a full count, one shard at a time.
    pub fn live_len(&self, now: u64) -> usize {
        self.shards
            .iter()
            .map(|s| s.state.read().live_len(now))
            .sum()
    }

    /// Entries held, and how many of them carry a deadline, expired ones the sweep has not
    /// yet removed included: one read lock of each shard, no walk.
    pub fn entry_counts(&self) -> (usize, usize) {
        self.shards
            .iter()
            .fold((0, 0), |(entries, with_deadline), s| {
                let state = s.state.read();
                (entries + state.len(), with_deadline + state.with_deadline())
            })
    }

    /// Memory held, as [`State::memory_used`] accounts it, summed over the shards. Lock-free.
    pub fn memory_used(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.memory.load(Ordering::Relaxed))
            .sum()
    }

    /// Bytes of the entries themselves (keys, values, deadlines, small headers), summed over
    /// the shards: about the size of the live data. Lock-free.
    pub fn entry_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.entry_bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// Calls `f` with every entry of shard `shard` live at `now`, under that shard's read
    /// lock: what snapshots walk, one shard at a time.
    pub fn for_each_in_shard(&self, shard: usize, now: u64, f: impl FnMut(&Entry)) {
        let state = self.shards[shard].state.read();
        state.iter().filter(|e| !e.is_expired(now)).for_each(f);
    }

    /// Calls `f` with the entries of shard `shard` live at `now`, `chunk` at a time under the
    /// shard's read lock, released between chunks: a writer to the shard waits for one chunk
    /// at most, not for the whole shard (half a million entries with two ordered shards).
    ///
    /// What snapshots walk. Not a point-in-time view (see [`kv_core::Cursor`]): every entry
    /// present throughout is seen at least once; one written meanwhile may be seen or not,
    /// and, with the hash index, one may be seen twice. A snapshot taken after rotating the
    /// log is still right, since replaying the log from the rotation over it applies every
    /// write made meanwhile again, in order.
    ///
    /// Under the lock, a chunk's entries are only shared (a reference count each, whatever
    /// their size: see [`Entry`]); `f` (a snapshot's encoding, checksumming and writing)
    /// reads them after the lock is released. So a writer waits for `chunk` reference counts
    /// at most, never for a copy of a large value.
    ///
    /// `stop` is asked between chunks: when it says yes the walk ends there, and this returns
    /// `false` (the shard was not walked whole); otherwise `true`. A hash table reorganised
    /// between two chunks sends the walk back to its first bucket: after
    /// four of those (writers growing the table as fast as it is walked), the
    /// rest is walked under one hold of the lock, so that the walk, and a close waiting for
    /// it, ends.
    pub fn for_each_in_shard_chunked(
        &self,
        shard: usize,
        now: u64,
        chunk: usize,
        stop: impl Fn() -> bool,
        mut f: impl FnMut(&[u8], &[u8], Option<u64>),
    ) -> bool {
        walk_in_chunks(
            &self.shards[shard],
            chunk,
            |state, cursor, max, taken| state.walk(cursor, max, now, |e| taken.push(e.clone())),
            |taken, done| {
                for e in taken {
                    f(e.key(), e.value(), e.deadline());
                }
                done || !stop()
            },
        )
    }

    /// What one more entry of these sizes adds to [`memory_used`](Self::memory_used).
    /// Takes no lock: it depends on the index kind alone.
    pub fn memory_for(&self, key_len: usize, value_len: usize, has_deadline: bool) -> usize {
        State::memory_for_index(self.kind, key_len, value_len, has_deadline)
    }

    /// The memory the entry of `key` takes now (0 when absent), expired or not.
    pub fn memory_of(&self, key: &[u8]) -> usize {
        let state = self.shards[self.shard_of(key)].state.read();
        state
            .get_even_expired(key)
            .map_or(0, |e| state.memory_of(e))
    }

    /// Whether `key` holds an entry (expired or not) for which `f` is true, under the
    /// shard's read lock: what an evictor re-checks before deleting what it sampled.
    pub fn holds(&self, key: &[u8], f: impl FnOnce(&Entry) -> bool) -> bool {
        let state = self.shards[self.shard_of(key)].state.read();
        state.get_even_expired(key).is_some_and(f)
    }

    /// Removes entries expired at `now` for which `removable` says yes; returns how many.
    ///
    /// Each shard is looked at in chunks of `SWEEP_CHUNK` entries under its read lock, and
    /// what expired in a chunk is removed under its write lock, each key checked again there
    /// (a write may have replaced it since). A sweep that held the write lock for the whole
    /// walk stalled the shard's writers once per sweep, for as long as it took to look at
    /// every entry: 4 ms per shard of 170,000 entries (hash index), 20-33 ms per shard of
    /// 500,000 (ordered), measured with `kv-store`'s `sweep_stall` example.
    ///
    /// Entries written during a sweep, behind where it has looked, are left to the next one.
    /// `removable` is called under the write lock, so a writer that looks at a key after it
    /// said yes sees the key gone. For a caller that must leave alone keys a write is busy
    /// with (a store under limits: see `kv-store`'s `limits.rs`); the others use
    /// [`sweep_expired`](Self::sweep_expired).
    pub fn sweep_expired_if(&self, now: u64, mut removable: impl FnMut(&[u8]) -> bool) -> usize {
        let mut removed = 0;
        let mut gone: Vec<Entry> = Vec::new();
        for shard in self.shards.iter() {
            walk_in_chunks(
                shard,
                SWEEP_CHUNK,
                |state, cursor, max, expired| {
                    state.with_deadline() == 0
                        || state.walk_even_expired(cursor, max, |e| {
                            if e.is_expired(now) {
                                expired.push(e.clone());
                            }
                        })
                },
                |expired, _| {
                    // Removed a chunk per hold of the write lock, whatever the walk's was.
                    for chunk in expired.chunks(SWEEP_CHUNK) {
                        let mut state = shard.state.write();
                        for entry in chunk {
                            let key = entry.key();
                            let still = state
                                .get_even_expired(key)
                                .is_some_and(|e| e.is_expired(now));
                            if still && removable(key) {
                                gone.extend(state.remove(key));
                                removed += 1;
                            }
                        }
                        shard.publish(&state);
                    }
                    // Freed with no lock held.
                    gone.clear();
                    true
                },
            );
        }
        removed
    }

    /// Removes entries expired at `now`; returns how many. See
    /// [`sweep_expired_if`](Self::sweep_expired_if).
    pub fn sweep_expired(&self, now: u64) -> usize {
        self.sweep_expired_if(now, |_| true)
    }

    /// The key of some entry (expired or not) chosen by `seed`, a random number; `None` when
    /// every shard it tried was empty. What sampled eviction draws from.
    pub fn sample(&self, seed: u64) -> Option<Entry> {
        let count = self.shards.len();
        let first = seed as usize & (count - 1);
        (0..count).find_map(|i| {
            let state = self.shards[(first + i) & (count - 1)].state.read();
            state.sample(seed >> 10).cloned()
        })
    }

    /// Live entries with keys in the range at `now`, in key order (reverse key order from the
    /// back), merged from the shards as the iterator advances.
    ///
    /// Each shard is read a few entries at a time under its own short lock, so a long scan
    /// never blocks writers; it is not a snapshot: a write made while it runs may or may not
    /// be seen, and a batch spanning shards may be seen in part (see [`Scanner`]).
    ///
    /// # Errors
    ///
    /// [`kv_core::Error::NotOrdered`] unless the index is ordered.
    pub fn range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        now: u64,
    ) -> Result<Scan<'_>, kv_core::Error> {
        Ok(Scan::new(self, Scanner::range(self, start, end)?, now))
    }

    /// Live entries whose keys start with `prefix`, in key order (reverse key order from the
    /// back).
    ///
    /// # Errors
    ///
    /// [`kv_core::Error::NotOrdered`] unless the index is ordered.
    pub fn scan_prefix(&self, prefix: &[u8], now: u64) -> Result<Scan<'_>, kv_core::Error> {
        Ok(Scan::new(self, Scanner::prefix(self, prefix)?, now))
    }

    /// Every live entry at `now`, streamed: key order with the ordered index, shard by shard
    /// with the hash index.
    pub fn iter(&self, now: u64) -> Scan<'_> {
        Scan::new(self, Scanner::all(self), now)
    }

    /// Calls `f` with every live entry at `now`, shard by shard under each shard's read lock,
    /// in no particular order. What compaction and export walk.
    pub fn for_each(&self, now: u64, mut f: impl FnMut(&Entry)) {
        for shard in 0..self.shards.len() {
            self.for_each_in_shard(shard, now, &mut f);
        }
    }
}

/// How many times a chunked walk of a hash shard may be sent back to its first bucket by a
/// reorganised table before it walks the rest under one hold of the lock.
pub(crate) const MAX_RESTARTS: usize = 4;

/// Entries the expiry sweep looks at per hold of a shard's read lock.
pub(crate) const SWEEP_CHUNK: usize = 64;

/// Walks `shard` a chunk at a time. Under one hold of its read lock, `step` walks up to
/// `max` entries from the cursor, shares out those it wants (a reference count each) and
/// says whether the shard is done; then, with the lock released, `between` reads them, is
/// told whether the walk is done, and says whether to go on. They are released after that,
/// lock-free too (the last reference to a replaced entry frees it). Returns whether the
/// shard was walked whole. A hash table reorganised between two chunks sends the walk back
/// to its first bucket ([`restarted`]): after [`MAX_RESTARTS`] of those, the rest is walked
/// under one hold, so the walk ends.
fn walk_in_chunks(
    shard: &Shard,
    chunk: usize,
    mut step: impl FnMut(&State, &mut Cursor, usize, &mut Vec<Entry>) -> bool,
    mut between: impl FnMut(&[Entry], bool) -> bool,
) -> bool {
    let mut cursor = Cursor::default();
    let mut restarts = 0;
    let mut taken: Vec<Entry> = Vec::with_capacity(chunk.min(1024));
    loop {
        let max = if restarts >= MAX_RESTARTS {
            usize::MAX
        } else {
            chunk.max(1)
        };
        let before = cursor.clone();
        let done = step(&shard.state.read(), &mut cursor, max, &mut taken);
        if restarted(&before, &cursor) {
            restarts += 1;
        }
        let go_on = between(&taken, done);
        taken.clear();
        if done {
            return true;
        }
        if !go_on {
            return false;
        }
    }
}

/// Whether a walk step from `before` to `after` started over: the hash table it resumed in
/// was resized or rehashed since the step before.
pub(crate) fn restarted(before: &Cursor, after: &Cursor) -> bool {
    match (before, after) {
        (
            Cursor::Bucket {
                buckets,
                reorganised,
                ..
            },
            Cursor::Bucket {
                buckets: now_buckets,
                reorganised: now_reorganised,
                ..
            },
        ) => buckets != now_buckets || reorganised != now_reorganised,
        _ => false,
    }
}

impl Sink for Sharded {
    /// Spreads the replay over one thread per core (at most four) when there are at least
    /// two cores and shards: see `replay.rs`.
    fn replay(&self, now: u64, drive: &mut DriveReplay<'_>) -> u64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = cores.min(4).min(self.shards.len());
        if workers < 2 {
            let mut expired = 0;
            drive(&mut |op| expired += u64::from(self.apply(op, now) == Change::Expired));
            return expired;
        }
        crate::replay::parallel(self, workers, now, drive)
    }

    /// Reads the parts on one thread per core (at most four), then fills each shard's table,
    /// sized once: see `load.rs`.
    fn load_parts(&self, now: u64, part_bytes: &[u64], read: &ReadPart<'_>) -> u64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        crate::load::parts(self, cores.min(4), now, part_bytes, read)
    }

    #[inline]
    fn apply(&self, op: OpRef<'_>, now: u64) -> Change {
        // One hash picks the shard and finds the key in its table.
        let hash = self.hash(op.key());
        let shard = &self.shards[self.shard_of_hash(hash)];
        let mut state = shard.state.write();
        let change = state.apply_hashed(hash, op, now);
        shard.publish(&state);
        change
    }

    /// Locks every shard the batch touches (in shard order, so two batches cannot deadlock),
    /// applies, then unlocks: a point reader sees all of the batch or none of it.
    fn apply_batch(&self, ops: &[Op], now: u64) {
        // Each key hashed once: for its shard and for its table.
        let hashes: Vec<u64> = ops.iter().map(|op| self.hash(op.key())).collect();
        let mut touched: Vec<usize> = hashes.iter().map(|&h| self.shard_of_hash(h)).collect();
        touched.sort_unstable();
        touched.dedup();
        let mut guards: Vec<RwLockWriteGuard<'_, State>> = touched
            .iter()
            .map(|&i| self.shards[i].state.write())
            .collect();
        let mut ahead = Ahead::new();
        for (op, &hash) in ops.iter().zip(&hashes) {
            let at = touched
                .binary_search(&self.shard_of_hash(hash))
                .expect("every touched shard is locked");
            ahead.push(&mut guards, at, hash, op.as_ref(), now);
        }
        ahead.finish(&mut guards, now);
        for (&i, state) in touched.iter().zip(&guards) {
            self.shards[i].publish(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_core::Expiry;

    #[test]
    fn point_operations_totals_and_sweep() {
        let state = Sharded::new(IndexKind::Hash, 8);
        assert_eq!(state.shard_count(), 8);
        for i in 0..1000u32 {
            state.apply(
                OpRef::Put {
                    key: &i.to_be_bytes(),
                    value: b"value",
                    expiry: if i % 10 == 0 {
                        Expiry::AtUnixMillis(500)
                    } else {
                        Expiry::Never
                    },
                },
                0,
            );
        }
        assert_eq!(state.len(), 1000);
        assert_eq!(state.get(&7u32.to_be_bytes(), 0).unwrap(), "value");
        assert!(state.contains_key(&10u32.to_be_bytes(), 499));
        assert!(!state.contains_key(&10u32.to_be_bytes(), 500));
        let no_clock = || -> u64 { panic!("the clock was read for an entry without deadline") };
        assert_eq!(
            state.get_live(&7u32.to_be_bytes(), no_clock).unwrap(),
            "value"
        );
        assert_eq!(
            state.get_live(&10u32.to_be_bytes(), || 499).unwrap(),
            "value"
        );
        assert_eq!(state.get_live(&10u32.to_be_bytes(), || 500), None);
        assert_eq!(state.get_live(&5000u32.to_be_bytes(), no_clock), None);
        assert_eq!(state.live_len(500), 900);
        let before = state.memory_used();
        assert_eq!(state.sweep_expired(500), 100);
        assert_eq!(state.len(), 900);
        assert!(state.memory_used() < before);
        assert!(state.sample(12345).is_some());
        assert_eq!(state.iter(0).count(), 900);
    }

    #[test]
    fn a_conditional_sweep_leaves_the_keys_it_is_told_to() {
        let state = Sharded::new(IndexKind::Hash, 4);
        for i in 0..100u32 {
            let expiry = Expiry::AtUnixMillis(if i % 2 == 0 { 10 } else { 1_000 });
            state.apply(
                OpRef::Put {
                    key: &i.to_be_bytes(),
                    value: b"v",
                    expiry,
                },
                0,
            );
        }
        let busy = |key: &[u8]| u32::from_be_bytes(key.try_into().unwrap()) % 4 == 0;
        // Only expired keys are offered, and busy ones stay.
        let removed = state.sweep_expired_if(10, |key| {
            assert_eq!(u32::from_be_bytes(key.try_into().unwrap()) % 2, 0);
            !busy(key)
        });
        assert_eq!(removed, 25);
        assert_eq!(state.len(), 75);
        assert!(state.holds(&4u32.to_be_bytes(), |e| e.is_expired(10)));
        assert!(!state.holds(&2u32.to_be_bytes(), |_| true));
        assert_eq!(state.sweep_expired_if(10, |_| true), 25);
        assert_eq!(state.len(), 50);
    }

    /// A sweep over many chunks, with removals between them, removes exactly the expired
    /// entries, in either index, and leaves the totals as if they had never been written.
    #[test]
    fn a_sweep_over_many_chunks_removes_exactly_what_expired() {
        for kind in [IndexKind::Hash, IndexKind::Ordered] {
            let state = Sharded::new(kind, 2);
            let live = Sharded::new(kind, 2);
            for i in 0..5_000u32 {
                let key = i.to_be_bytes();
                let expiry = match i % 3 {
                    0 => Expiry::AtUnixMillis(10),
                    1 => Expiry::AtUnixMillis(100),
                    _ => Expiry::Never,
                };
                let op = OpRef::Put {
                    key: &key,
                    value: b"value",
                    expiry,
                };
                state.apply(op, 0);
                if i % 3 != 0 {
                    live.apply(op, 0);
                }
            }
            assert_eq!(state.sweep_expired(10), 1_667, "{kind:?}");
            assert_eq!(state.len(), live.len(), "{kind:?}");
            assert_eq!(state.entry_bytes(), live.entry_bytes(), "{kind:?}");
            assert_eq!(state.sweep_expired(10), 0, "{kind:?}");
            assert_eq!(state.sweep_expired(100), 1_667, "{kind:?}");
            assert_eq!(state.len(), 1_666, "{kind:?}");
        }
    }

    /// The sweep looks at a chunk under the read lock and removes under the write lock: a
    /// key written again in between, live now, must stay. In each round writers give every
    /// key an expired value, then a live one, while sweeps run; once a whole sweep has run
    /// after the writes, every key must hold its live value.
    #[test]
    fn the_sweep_never_removes_a_key_written_live_after_it_looked() {
        const NOW: u64 = 1_000;
        const WRITERS: u32 = 2;
        const KEYS: u32 = 2_000;
        for kind in [IndexKind::Hash, IndexKind::Ordered] {
            let state = Sharded::new(kind, 4);
            let stop = std::sync::atomic::AtomicBool::new(false);
            let sweeps = AtomicUsize::new(0);
            /// Stops the sweeper however the checks end, a failed one included.
            struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            std::thread::scope(|scope| {
                let sweeper = scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        state.sweep_expired(NOW);
                        sweeps.fetch_add(1, Ordering::SeqCst);
                    }
                });
                let _stop = Stop(&stop);
                for round in 0..30u32 {
                    let value = round.to_be_bytes();
                    let write = |w: u32, expiry: Expiry| {
                        for k in 0..KEYS {
                            let key = format!("w{w}-{k}");
                            let op = OpRef::Put {
                                key: key.as_bytes(),
                                value: &value,
                                expiry,
                            };
                            state.apply(op, 0);
                        }
                    };
                    std::thread::scope(|writers| {
                        for w in 0..WRITERS {
                            writers.spawn(move || {
                                write(w, Expiry::AtUnixMillis(NOW - 1));
                                write(w, Expiry::AtUnixMillis(NOW + 1_000));
                            });
                        }
                    });
                    // A sweep that began after the writes ended, run whole.
                    let after = sweeps.load(Ordering::SeqCst);
                    while sweeps.load(Ordering::SeqCst) < after + 2 {
                        assert!(!sweeper.is_finished(), "the sweeper stopped (it panicked)");
                        std::thread::yield_now();
                    }
                    for w in 0..WRITERS {
                        for k in 0..KEYS {
                            let key = format!("w{w}-{k}");
                            let held = state.get_live(key.as_bytes(), || NOW);
                            let held = held.unwrap_or_else(|| {
                                panic!("{kind:?} round {round}: {key} written live, then lost")
                            });
                            assert_eq!(&held[..], &value, "{kind:?} {key}");
                        }
                    }
                }
            });
        }
    }

    #[test]
    fn a_batch_is_applied_whole_across_shards() {
        let state = Sharded::new(IndexKind::Ordered, 4);
        let ops: Vec<Op> = (0..50u32).map(|i| Op::put(i.to_string(), "x")).collect();
        state.apply_batch(&ops, 0);
        assert_eq!(state.len(), 50);
        let deletes: Vec<Op> = (0..50u32).map(|i| Op::delete(i.to_string())).collect();
        state.apply_batch(&deletes, 0);
        assert!(state.is_empty());
        assert_eq!(state.memory_used(), 0, "an empty B-tree holds nothing");
    }

    /// A writer to a shard being walked for a snapshot gets in between chunks: the walk
    /// takes the shard's lock for one chunk at a time, not once for the whole shard. Once the
    /// first chunk has been handed out, a writer overwrites every value; a walk that copied
    /// the whole shard under one lock hold has only old values to hand out, a chunked one
    /// reads its later chunks after the writes (checked: with a chunk as large as the shard,
    /// this fails).
    #[test]
    fn a_chunked_walk_lets_writers_of_its_shard_in() {
        use std::sync::atomic::AtomicBool;
        use std::time::{Duration, Instant};
        const KEYS: u32 = 2000;
        const CHUNK: usize = 100;
        for kind in [IndexKind::Hash, IndexKind::Ordered] {
            let state = Sharded::new(kind, 1);
            for i in 0..KEYS {
                state.apply(put(&i.to_be_bytes()), 0);
            }
            let (started, overwritten) = (AtomicBool::new(false), AtomicBool::new(false));
            let (mut walked, mut new_values) = (0, 0);
            std::thread::scope(|s| {
                s.spawn(|| {
                    while !started.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                    for i in 0..KEYS {
                        state.apply(
                            OpRef::Put {
                                key: &i.to_be_bytes(),
                                value: b"new",
                                expiry: Expiry::Never,
                            },
                            0,
                        );
                    }
                    overwritten.store(true, Ordering::Release);
                });
                state.for_each_in_shard_chunked(
                    0,
                    0,
                    CHUNK,
                    || false,
                    |_, value, _| {
                        if !started.swap(true, Ordering::AcqRel) {
                            // The first entry handed out: let every write in before going on
                            // (bounded: a walk that still held the lock would keep them out).
                            let deadline = Instant::now() + Duration::from_secs(5);
                            while !overwritten.load(Ordering::Acquire) && Instant::now() < deadline
                            {
                                std::thread::yield_now();
                            }
                        }
                        walked += 1;
                        new_values += usize::from(value == b"new");
                    },
                );
            });
            assert!(walked >= KEYS as usize, "{kind:?}: every entry seen");
            assert!(
                new_values > 0,
                "{kind:?}: the walk saw none of the writes made after its first chunk"
            );
        }
    }

    /// A walk of a hash shard whose table writers keep reorganising (new keys in, old ones
    /// out: the tombstones fill it, and it is rehashed) ends while they go on: after a few
    /// restarts from the first bucket it walks the rest under one hold of the lock.
    #[test]
    fn a_chunked_walk_ends_while_writers_keep_reorganising_the_table() {
        use std::sync::atomic::AtomicBool;
        use std::time::{Duration, Instant};
        let state = Sharded::new(IndexKind::Hash, 1);
        // Just below the 3,584 entries a table of 4,096 buckets takes: deletes leave
        // tombstones, and the table is rehashed every few hundred writes.
        const LIVE: u64 = 3580;
        for i in 0..LIVE {
            state.apply(put(&i.to_be_bytes()), 0);
        }
        let (done, walked_in) = (AtomicBool::new(false), std::sync::Mutex::new(None));
        std::thread::scope(|s| {
            s.spawn(|| {
                // Churn for a bounded time: each new key in, the oldest out.
                let started = Instant::now();
                let mut next = LIVE;
                while !done.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(8) {
                    state.apply(put(&next.to_be_bytes()), 0);
                    state.apply(
                        OpRef::Delete {
                            key: &(next - LIVE).to_be_bytes(),
                        },
                        0,
                    );
                    next += 1;
                }
            });
            let started = Instant::now();
            let whole = state.for_each_in_shard_chunked(
                0,
                0,
                16,
                || false,
                |_, _, _| {
                    std::thread::sleep(Duration::from_micros(5));
                },
            );
            assert!(whole);
            *walked_in.lock().unwrap() = Some(started.elapsed());
            done.store(true, Ordering::Relaxed);
        });
        let took = walked_in.lock().unwrap().unwrap();
        // Without the bound on restarts, it ended only when the churn did (after 8 s).
        assert!(took < Duration::from_secs(6), "the walk took {took:?}");
    }

    /// A chunk is shared out of the shard, not copied: the values a walk hands out are the
    /// entries' own bytes, so a writer waiting for the lock waits for a few reference counts
    /// whatever the size of the values (checked: the copying walk fails this). An entry
    /// replaced while its chunk is out still reads as it was.
    #[test]
    fn a_chunked_walk_hands_out_the_entries_own_bytes() {
        const BIG: usize = 1 << 20;
        for kind in [IndexKind::Hash, IndexKind::Ordered] {
            let state = Sharded::new(kind, 1);
            for i in 0..8u8 {
                state.apply(
                    OpRef::Put {
                        key: &[i],
                        value: &vec![i; BIG],
                        expiry: Expiry::Never,
                    },
                    0,
                );
            }
            let mut seen = 0;
            state.for_each_in_shard_chunked(
                0,
                0,
                8,
                || false,
                |key, value, _| {
                    let stored = state
                        .with_entry(key, 0, |e| e.value().as_ptr())
                        .expect("the key is there");
                    assert_eq!(value.as_ptr(), stored, "{kind:?}: a copy of {key:?}");
                    // Replaced under the walk's feet: what it holds does not change.
                    state.apply(
                        OpRef::Put {
                            key,
                            value: b"new",
                            expiry: Expiry::Never,
                        },
                        0,
                    );
                    assert!(value.iter().all(|&b| b == key[0]) && value.len() == BIG);
                    seen += 1;
                },
            );
            assert_eq!(seen, 8, "{kind:?}");
        }
    }

    /// A walk asked to stop ends at the next chunk, saying it did not see the whole shard.
    #[test]
    fn a_chunked_walk_stops_between_chunks_when_asked() {
        for kind in [IndexKind::Hash, IndexKind::Ordered] {
            let state = Sharded::new(kind, 1);
            for i in 0..1000u32 {
                state.apply(put(&i.to_be_bytes()), 0);
            }
            let mut seen = 0;
            let stop = std::cell::Cell::new(false);
            let whole = state.for_each_in_shard_chunked(
                0,
                0,
                10,
                || stop.get(),
                |_, _, _| {
                    seen += 1;
                    stop.set(true);
                },
            );
            assert!(!whole, "{kind:?}");
            // One chunk, then the stop. A hash index's chunk also bounds the empty buckets
            // it looks at (four per entry asked), so it can hold fewer than asked: how many
            // depends on where this process's hasher put the keys.
            match kind {
                IndexKind::Hash => assert!((1..=10).contains(&seen), "{kind:?}: {seen}"),
                IndexKind::Ordered => assert_eq!(seen, 10, "{kind:?}"),
            }
            assert!(state.for_each_in_shard_chunked(0, 0, 10, || false, |_, _, _| {}));
        }
    }

    fn put(key: &[u8]) -> OpRef<'_> {
        OpRef::Put {
            key,
            value: b"v",
            expiry: Expiry::Never,
        }
    }
}
