//! Memory and key limits: admitting writes under them, and choosing what to evict.
//!
//! A write first *reserves* what it will add (bytes and new keys) against the limits; the
//! reservation is held until the write is applied, so concurrent writers cannot together
//! overshoot a limit they each checked alone. When a reservation does not fit, the policy
//! decides: `Reject` fails the write; `Lru` and `Lfu` pick victims by sampling (a few random
//! entries per victim, the coldest of them goes, as Redis does) and delete them through the
//! log, so a reopened store holds exactly what the running one held.
//!
//! What a write adds depends on what its keys hold when it is applied, so `store.rs` sizes
//! it under the keys' lock stripes, in a mode that keeps it true until then: whatever can
//! take a key away (a delete, a put with a deadline, an eviction) holds the stripe
//! exclusively, and the sweep skips keys whose stripe is held. A put that holds its stripe
//! only shared may race other puts of its key, so under a memory limit it reserves its whole
//! entry, unless it holds the stripe exclusively (see [`Admission::needs_exclusive`]).
//!
//! A victim is deleted only if, under its stripe held exclusively, it is still the entry
//! that was sampled and nothing touched it since: a key written after it was sampled is
//! never evicted on the strength of its old recency.
//!
//! Writers blocked at the same time see the same shortfall. So that they do not each evict
//! all of it, what an eviction is about to free counts as free (from its re-check until its
//! delete is applied), and an evictor re-reads the shortfall before locking each victim,
//! stopping as soon as nothing more is needed. A round locks a few victims' stripes at most
//! ([`MAX_VICTIMS`]): they are held across the deletes' commit.
//!
//! Recency (on a logical clock that writes advance) and frequency live in a fixed table of
//! counters indexed by key hash (an access sketch), not in the entries: entries stay one allocation each, and reads only load a
//! counter (storing it when it changes). Keys that share a counter share their history,
//! which makes eviction approximate, as sampling already does.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hashbrown::{DefaultHashBuilder, HashMap};
use kv_concurrent::Sharded;
use kv_core::{Entry, Expiry, Op};
use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Limit};
use crate::options::{Eviction, MemoryLimits};

/// Entries looked at per victim (Redis's default `maxmemory-samples`).
const SAMPLES: usize = 5;
/// The most victims one eviction round deletes in one log write. Their stripes are held
/// exclusively across its commit (an fsync under `Sync`), so a round is kept small.
const MAX_VICTIMS: usize = 8;
/// Counters in the access sketch (a power of two): 256 KiB.
const SKETCH_SLOTS: usize = 1 << 16;
/// The frequency a newly written key starts from under LFU, so it is not the next victim.
const LFU_INITIAL: u32 = 5;

/// The longest a write waits, in all, for room: for other writes to release what they
/// reserved, for victims that stay unchanged long enough to be evicted, for room that other
/// writers keep taking first. Taken once per write, when it is first blocked.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(5);
/// One wait for a release; the next try comes at the latest after this.
const WAIT_SLICE: Duration = Duration::from_millis(2);

/// What a write adds to the stored data: an upper bound, exact where the write holds its
/// keys exclusively.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Growth {
    pub(crate) bytes: usize,
    pub(crate) keys: usize,
}

impl std::ops::Add for Growth {
    type Output = Growth;

    fn add(self, other: Growth) -> Growth {
        Growth {
            bytes: self.bytes + other.bytes,
            keys: self.keys + other.keys,
        }
    }
}

/// What a write adds, reserved against the limits until it is applied.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    admission: &'a Admission,
    bytes: usize,
    keys: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes == 0 && self.keys == 0 {
            return;
        }
        let admission = self.admission;
        admission
            .reserved_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
        admission
            .reserved_keys
            .fetch_sub(self.keys, Ordering::AcqRel);
        admission.wake_waiters();
    }
}

/// Room an eviction is about to free: counted as free from the victims' re-check until
/// their deletes are applied (the drop), so that writers blocked at the same time do not
/// evict it again.
#[derive(Debug)]
pub(crate) struct Evicting<'a> {
    admission: &'a Admission,
    bytes: usize,
    keys: usize,
}

impl Evicting<'_> {
    /// Counts one more victim, of `bytes`.
    pub(crate) fn add(&mut self, bytes: usize) {
        let admission = self.admission;
        admission.evicting_bytes.fetch_add(bytes, Ordering::AcqRel);
        admission.evicting_keys.fetch_add(1, Ordering::AcqRel);
        self.bytes += bytes;
        self.keys += 1;
    }
}

impl Drop for Evicting<'_> {
    fn drop(&mut self) {
        if self.keys == 0 {
            return;
        }
        let admission = self.admission;
        admission
            .evicting_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
        admission
            .evicting_keys
            .fetch_sub(self.keys, Ordering::AcqRel);
        admission.wake_waiters();
    }
}

/// An entry chosen for eviction, as it was when it was sampled.
#[derive(Debug)]
pub(crate) struct Victim {
    pub(crate) entry: Entry,
    /// Its sketch counter then: a read or write since changes it.
    score: Option<u32>,
}

/// The limits of a store and what enforcing them needs.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: MemoryLimits,
    reserved_bytes: AtomicUsize,
    reserved_keys: AtomicUsize,
    /// What evictions are about to free (see [`Evicting`]).
    evicting_bytes: AtomicUsize,
    evicting_keys: AtomicUsize,
    /// Last access (LRU: the write clock at the time) or access count (LFU) by key hash.
    sketch: Box<[AtomicU32]>,
    hasher: DefaultHashBuilder,
    /// The LRU clock: advanced by every write, read by every read. A logical clock orders
    /// accesses finer than any timer a read could afford, and reads only load it.
    clock: AtomicU32,
    random: AtomicU64,
    pub(crate) evictions: AtomicU64,
    /// Writes waiting for others to release their reservations or finish their evictions,
    /// and where they wait.
    waiters: AtomicUsize,
    released: (Mutex<()>, Condvar),
    /// Tests only: every eviction written, as (key, value sampled), and a pause between
    /// sampling victims and deleting them that widens the window a writer could slip into.
    #[cfg(test)]
    pub(crate) journal: Mutex<Vec<(bytes::Bytes, bytes::Bytes)>>,
    #[cfg(test)]
    pub(crate) pause_after_sampling: std::sync::atomic::AtomicBool,
    /// Tests only: every victim is read after it is sampled, as a reader racing the
    /// evictor would, so that no eviction round finds a victim unchanged.
    #[cfg(test)]
    pub(crate) read_victims_after_sampling: std::sync::atomic::AtomicBool,
    /// Tests only: a pause where `expire` has looked at its entry and not yet reserved.
    #[cfg(test)]
    pub(crate) pause_before_reserving: std::sync::atomic::AtomicBool,
    /// Tests only: the longest a write waits for room, in milliseconds ([`MAX_WAIT`]).
    #[cfg(test)]
    pub(crate) max_wait_ms: AtomicU64,
}

impl Admission {
    pub(crate) fn new(limits: MemoryLimits) -> Self {
        let tracks = limits.eviction != Eviction::Reject && limits != MemoryLimits::default();
        Admission {
            limits,
            reserved_bytes: AtomicUsize::new(0),
            reserved_keys: AtomicUsize::new(0),
            evicting_bytes: AtomicUsize::new(0),
            evicting_keys: AtomicUsize::new(0),
            sketch: (0..if tracks { SKETCH_SLOTS } else { 0 })
                .map(|_| AtomicU32::new(0))
                .collect(),
            hasher: DefaultHashBuilder::default(),
            clock: AtomicU32::new(1),
            random: AtomicU64::new(0x853C_49E6_748F_EA9B),
            evictions: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            released: (Mutex::new(()), Condvar::new()),
            #[cfg(test)]
            journal: Mutex::new(Vec::new()),
            #[cfg(test)]
            pause_after_sampling: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            read_victims_after_sampling: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            pause_before_reserving: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            max_wait_ms: AtomicU64::new(MAX_WAIT.as_millis() as u64),
        }
    }

    /// Whether any limit is set.
    pub(crate) fn is_limited(&self) -> bool {
        self.limits.max_keys.is_some() || self.limits.max_memory.is_some()
    }

    /// Whether memory is limited (so writes are sized in bytes).
    pub(crate) fn limits_memory(&self) -> bool {
        self.limits.max_memory.is_some()
    }

    /// Wakes the writes waiting for room. One that registers just after this load waits at
    /// most one `WAIT_SLICE` before it tries again.
    fn wake_waiters(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _released = self.released.0.lock();
            self.released.1.notify_all();
        }
    }

    /// The sketch counter of `key`, when accesses are tracked.
    #[inline]
    fn slot(&self, key: &[u8]) -> Option<&AtomicU32> {
        if self.sketch.is_empty() {
            return None;
        }
        let hash = self.hasher.hash_one(key) as usize;
        Some(&self.sketch[hash & (SKETCH_SLOTS - 1)])
    }

    /// Records an access to `key` (a read, or `written`).
    #[inline]
    pub(crate) fn touch(&self, key: &[u8], written: bool) {
        let Some(slot) = self.slot(key) else { return };
        let current = slot.load(Ordering::Relaxed);
        let next = match self.limits.eviction {
            Eviction::Reject => return,
            Eviction::Lru if written => self.clock.fetch_add(1, Ordering::Relaxed),
            Eviction::Lru => self.clock.load(Ordering::Relaxed),
            Eviction::Lfu if written => current.saturating_add(1).max(LFU_INITIAL),
            Eviction::Lfu => current.saturating_add(1),
        };
        // Loaded first so readers of a hot key do not all write its cache line.
        if next != current {
            slot.store(next, Ordering::Relaxed);
        }
    }

    /// How cold an entry with sketch value `score` is: the larger, the sooner it goes.
    fn coldness(&self, score: u32) -> u32 {
        match self.limits.eviction {
            // Ages on the write clock, which wraps: the distance back from now.
            Eviction::Lru => self.clock.load(Ordering::Relaxed).wrapping_sub(score),
            _ => u32::MAX - score,
        }
    }

    /// Halves every LFU counter, so that past popularity fades.
    pub(crate) fn decay(&self) {
        if self.limits.eviction == Eviction::Lfu {
            for slot in self.sketch.iter() {
                let count = slot.load(Ordering::Relaxed);
                slot.store(count / 2, Ordering::Relaxed);
            }
        }
    }

    /// Whether `op` must hold its key's stripe exclusively, for the size of what writes add
    /// to stay true from when it is measured until the write is applied:
    /// - a delete, or a put with a deadline (applied after its deadline, it removes the key),
    ///   may take away a key that a concurrent put counted on;
    /// - under a memory limit, a put over an existing entry is sized by that entry, which a
    ///   concurrent put of a smaller value could shrink first.
    ///
    /// Other puts hold their stripe shared and reserve as if their key were absent. Only
    /// limited stores call this; unlimited ones hold every stripe shared.
    pub(crate) fn needs_exclusive(&self, state: &Sharded, op: &Op) -> bool {
        match op {
            Op::Delete { .. } => true,
            Op::Put { expiry, .. } if *expiry != Expiry::Never => true,
            Op::Put { key, .. } => self.limits.max_memory.is_some() && state.memory_of(key) > 0,
        }
    }

    /// What `ops` add to `state`, counting no decrease: exact for a key held exclusively
    /// (`exclusive[i]` for any op `i` of it), an upper bound for the others. Called with the
    /// keys' stripes held in those modes, so nothing can take a key away before the write
    /// applies. A key written several times adds what its last op leaves (a put then a
    /// delete adds nothing), so it counts once.
    pub(crate) fn growth(&self, state: &Sharded, ops: &[Op], exclusive: &[bool]) -> Growth {
        if let ([op], [exclusive]) = (ops, exclusive) {
            return self.growth_of(state, op, *exclusive);
        }
        let mut last: HashMap<&[u8], (&Op, bool)> = HashMap::with_capacity(ops.len());
        for (op, &exclusive) in ops.iter().zip(exclusive) {
            let slot = last.entry(&op.key()[..]).or_insert((op, false));
            *slot = (op, slot.1 || exclusive);
        }
        last.values()
            .fold(Growth::default(), |sum, &(op, exclusive)| {
                sum + self.growth_of(state, op, exclusive)
            })
    }

    /// What `op`, the last op of its key in its write, adds to `state` (see `growth`).
    fn growth_of(&self, state: &Sharded, op: &Op, exclusive: bool) -> Growth {
        let Op::Put { key, value, expiry } = op else {
            return Growth::default();
        };
        let now = state.memory_of(key);
        let bytes = if self.limits_memory() {
            let new = state.memory_for(key.len(), value.len(), *expiry != Expiry::Never);
            // Shared: a concurrent put of the same key may shrink it first.
            let counted = if exclusive { now } else { 0 };
            new.saturating_sub(counted)
        } else {
            0
        };
        Growth {
            bytes,
            keys: usize::from(now == 0),
        }
    }

    /// What giving a deadline to the entry of a key `key_len` bytes long adds, whatever its
    /// value: the deadline's bytes.
    pub(crate) fn deadline_growth(&self, state: &Sharded, key_len: usize) -> Growth {
        Growth {
            bytes: state.memory_for(key_len, 0, true) - state.memory_for(key_len, 0, false),
            keys: 0,
        }
    }

    /// Reserves `growth`, counting what `held` (an earlier reservation of this write)
    /// already holds; on failure says which limit is in the way and releases `held` too.
    pub(crate) fn reserve<'a>(
        &'a self,
        state: &Sharded,
        growth: Growth,
        held: Option<Reservation<'a>>,
    ) -> Result<Reservation<'a>, Error> {
        let mut reservation = held.unwrap_or(Reservation {
            admission: self,
            bytes: 0,
            keys: 0,
        });
        if let Some(limit) = self.limits.max_memory {
            let more = growth.bytes.saturating_sub(reservation.bytes);
            take(
                &self.reserved_bytes,
                &|| state.memory_used(),
                more,
                limit,
                Limit::Memory,
                &|| self.wake_waiters(),
            )?;
            reservation.bytes += more;
        }
        if let Some(limit) = self.limits.max_keys {
            let more = growth.keys.saturating_sub(reservation.keys);
            // On failure the reservation's drop releases the bytes taken above.
            take(
                &self.reserved_keys,
                &|| state.len(),
                more,
                limit,
                Limit::Keys,
                &|| self.wake_waiters(),
            )?;
            reservation.keys += more;
        }
        Ok(reservation)
    }

    /// Waits until another write releases a reservation or finishes an eviction, or
    /// `WAIT_SLICE` passes (a release can come just before this registers), unless
    /// `deadline` has passed: `false` then.
    pub(crate) fn wait_for_release(&self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let mut guard = self.released.0.lock();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let nothing_held = [
            &self.reserved_bytes,
            &self.reserved_keys,
            &self.evicting_bytes,
            &self.evicting_keys,
        ]
        .iter()
        .all(|held| held.load(Ordering::Acquire) == 0);
        if !nothing_held {
            let slice = WAIT_SLICE.min(deadline - now);
            self.released.1.wait_for(&mut guard, slice);
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
        if nothing_held {
            // What was in the way is gone already: try again, after letting others run.
            std::thread::yield_now();
        }
        true
    }

    /// The longest a write waits for room, in all.
    pub(crate) fn max_wait(&self) -> Duration {
        #[cfg(test)]
        return Duration::from_millis(self.max_wait_ms.load(Ordering::Relaxed));
        #[cfg(not(test))]
        MAX_WAIT
    }

    /// Tests only: pauses where an evictor has chosen victims and not yet locked them, and
    /// reads them there if told to.
    pub(crate) fn after_sampling(&self, _victims: &[Victim]) {
        #[cfg(test)]
        {
            if self.pause_after_sampling.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_micros(200));
            }
            if self.read_victims_after_sampling.load(Ordering::Relaxed) {
                for victim in _victims {
                    self.touch(victim.entry.key(), false);
                }
            }
        }
    }

    /// Tests only: pauses where `expire` has looked at its entry and not yet reserved.
    pub(crate) fn before_reserving(&self) {
        #[cfg(test)]
        if self.pause_before_reserving.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Whether `victim` may still be evicted: its key holds the very entry sampled (same
    /// value and deadline) and nothing read or wrote it since. Called with its stripe held
    /// exclusively, so no write of it is in flight.
    pub(crate) fn still_victim(&self, state: &Sharded, victim: &Victim) -> bool {
        let entry = &victim.entry;
        let score = self.slot(entry.key()).map(|s| s.load(Ordering::Relaxed));
        score == victim.score
            && state.holds(entry.key(), |held| {
                held.value() == entry.value() && held.deadline() == entry.deadline()
            })
    }

    /// The memory the entry `victim` takes (what deleting it frees), without a lookup.
    pub(crate) fn memory_of_victim(state: &Sharded, victim: &Entry) -> usize {
        state.memory_for(
            victim.key().len(),
            victim.value().len(),
            victim.deadline().is_some(),
        )
    }

    /// Whether the write `blocked` describes needs more than the whole limit: no eviction
    /// can make room for it.
    pub(crate) fn never_fits(blocked: &Error) -> bool {
        matches!(*blocked, Error::LimitReached { needed, max, .. } if needed > max)
    }

    /// Whether going over a limit evicts (rather than rejects).
    pub(crate) fn evicts(&self) -> bool {
        self.limits.eviction != Eviction::Reject
    }

    fn random(&self) -> u64 {
        // splitmix64 over a shared counter: cheap, and good enough to pick samples.
        let mut z = self
            .random
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// What must still be evicted for the write `blocked` describes to fit: what is stored,
    /// reserved and needed beyond the limit, less what evictions are about to free; never
    /// more than what is stored and not being evicted (the rest is others' writes, released
    /// as they end). Zero for any other error.
    ///
    /// Room other writes reserved counts as taken: they are about to fill it, and a write
    /// that only waited for them would find it taken again by the next ones.
    ///
    /// An estimate from counters read one after the other, in the order that errs low when
    /// an eviction or a write ends meanwhile (evictions, then what is stored, then
    /// reservations): a low estimate only makes the write try again, while a high one would
    /// evict more than needed. The limits themselves are kept by `reserve`, not by this.
    pub(crate) fn shortfall(&self, state: &Sharded, blocked: &Error) -> usize {
        let Error::LimitReached {
            limit: which,
            needed,
            max: limit,
            ..
        } = *blocked
        else {
            return 0;
        };
        let (evicting, stored, reserved) = if which == Limit::Keys {
            let evicting = self.evicting_keys.load(Ordering::Acquire);
            let stored = state.len();
            (evicting, stored, self.reserved_keys.load(Ordering::Acquire))
        } else {
            let evicting = self.evicting_bytes.load(Ordering::Acquire);
            let stored = state.memory_used();
            (
                evicting,
                stored,
                self.reserved_bytes.load(Ordering::Acquire),
            )
        };
        (stored + reserved + needed)
            .saturating_sub(limit.saturating_add(evicting))
            .min(stored.saturating_sub(evicting))
    }

    /// Counts nothing yet: what an eviction round adds its victims to.
    pub(crate) fn evicting(&self) -> Evicting<'_> {
        Evicting {
            admission: self,
            bytes: 0,
            keys: 0,
        }
    }

    /// Entries to evict so that a write blocked by `blocked` fits: one per round of samples,
    /// the coldest of each (an expired entry first of all), until the [`shortfall`] is
    /// covered or [`MAX_VICTIMS`] are chosen; never a key `spared` says to keep. Empty when there is
    /// nothing to evict, or nothing more to evict than evictions in progress will free.
    ///
    /// [`shortfall`]: Self::shortfall
    pub(crate) fn victims(
        &self,
        state: &Sharded,
        now: u64,
        blocked: &Error,
        spared: &dyn Fn(&[u8]) -> bool,
    ) -> Vec<Victim> {
        let which = match blocked {
            Error::LimitReached { limit, .. } => *limit,
            _ => return Vec::new(),
        };
        let mut short = self.shortfall(state, blocked);
        let mut victims: Vec<Victim> = Vec::new();
        while short > 0 && victims.len() < MAX_VICTIMS {
            let best = (0..SAMPLES)
                .filter_map(|_| state.sample(self.random()))
                .filter(|e| !spared(e.key()))
                .filter(|e| !victims.iter().any(|v| v.entry.key() == e.key()))
                .map(|entry| {
                    let score = self.slot(entry.key()).map(|s| s.load(Ordering::Relaxed));
                    (entry, score)
                })
                .max_by_key(|(e, score)| (e.is_expired(now), self.coldness(score.unwrap_or(0))));
            let Some((entry, score)) = best else { break };
            let freed = if which == Limit::Keys {
                1
            } else {
                Self::memory_of_victim(state, &entry)
            };
            short = short.saturating_sub(freed);
            victims.push(Victim { entry, score });
        }
        victims
    }
}

/// Adds `amount` to `reserved` if `used() + reserved + amount` stays within `limit`; calls
/// `undone` when it took back a reservation others may have seen.
///
/// A write that does not fit on a plain look is refused at once: a refusal needs no
/// ordering. One that seems to fit reserves first and looks at what is used after, undoing
/// the reservation if it does not fit after all: every other write's reservation is then
/// either counted here or counts this one (the adds are ordered), and a write whose release
/// came before this add has applied what it released, so `used()` sees it. Looking and
/// then reserving with a compare-and-swap is not enough: a whole other write can reserve,
/// apply and release in between, leaving `reserved` as it was, and the swap succeeds on a
/// stale `used()` (33 keys under a limit of 32, in the tests).
///
/// While a reservation is about to be undone, another write may count it and be refused,
/// or an evictor may count it as taken. Only writes that seemed to fit make one, so a store
/// at its limit makes none; and a write refused after its own undo looks again, and tries
/// again while it seems to fit.
fn take(
    reserved: &AtomicUsize,
    used: &dyn Fn() -> usize,
    amount: usize,
    limit: usize,
    which: Limit,
    undone: &dyn Fn(),
) -> Result<(), Error> {
    /// Tries that each seemed to fit and did not: two writes racing for the last room can
    /// only keep undoing each other by chance, so this is never reached in practice.
    const TRIES: usize = 64;
    // A write that adds nothing is never refused, even over the limit (reopened with a
    // lower one, say): deletes and overwrites are how a store gets back under it.
    if amount == 0 {
        return Ok(());
    }
    let refused = |committed: usize| Error::LimitReached {
        limit: which,
        needed: amount,
        available: limit.saturating_sub(committed),
        max: limit,
    };
    for _ in 0..TRIES {
        let committed = used().saturating_add(reserved.load(Ordering::Acquire));
        if committed.saturating_add(amount) > limit {
            return Err(refused(committed));
        }
        let others = reserved.fetch_add(amount, Ordering::AcqRel);
        let committed = used().saturating_add(others);
        if committed.saturating_add(amount) <= limit {
            return Ok(());
        }
        reserved.fetch_sub(amount, Ordering::AcqRel);
        undone();
        std::thread::yield_now();
    }
    Err(refused(
        used().saturating_add(reserved.load(Ordering::Acquire)),
    ))
}

#[cfg(test)]
mod tests;
