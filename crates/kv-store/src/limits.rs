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
//! Recency (on a logical clock that writes advance) and frequency live in a fixed table of
//! counters indexed by key hash (an access sketch), not in the entries: entries stay one allocation each, and reads only load a
//! counter (storing it when it changes). Keys that share a counter share their history,
//! which makes eviction approximate, as sampling already does.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hashbrown::DefaultHashBuilder;
use kv_concurrent::Sharded;
use kv_core::{Entry, Expiry, Op};
use parking_lot::{Condvar, Mutex};

use crate::error::Error;
use crate::options::{Eviction, Limits};

/// Entries looked at per victim (Redis's default `maxmemory-samples`).
const SAMPLES: usize = 5;
/// The most victims one eviction round deletes in one log write.
const MAX_VICTIMS: usize = 64;
/// Counters in the access sketch (a power of two): 256 KiB.
const SKETCH_SLOTS: usize = 1 << 16;
/// The frequency a newly written key starts from under LFU, so it is not the next victim.
const LFU_INITIAL: u32 = 5;

/// The longest a write waits, in all, for other writes to release the room it needs.
/// They release it when their commit returns, so this is only reached when the disk stalls
/// or writers keep taking the room first.
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
        // Wakes the writes waiting for room. One that registers just after this load waits
        // at most one `WAIT_SLICE` before it tries again.
        if admission.waiters.load(Ordering::SeqCst) > 0 {
            let _released = admission.released.0.lock();
            admission.released.1.notify_all();
        }
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
    limits: Limits,
    reserved_bytes: AtomicUsize,
    reserved_keys: AtomicUsize,
    /// Last access (LRU: the write clock at the time) or access count (LFU) by key hash.
    sketch: Box<[AtomicU32]>,
    hasher: DefaultHashBuilder,
    /// The LRU clock: advanced by every write, read by every read. A logical clock orders
    /// accesses finer than any timer a read could afford, and reads only load it.
    clock: AtomicU32,
    random: AtomicU64,
    pub(crate) evictions: AtomicU64,
    /// Writes waiting for others to release their reservations, and where they wait.
    waiters: AtomicUsize,
    released: (Mutex<()>, Condvar),
    /// Tests only: every eviction written, as (key, value sampled), and a pause between
    /// sampling victims and deleting them that widens the window a writer could slip into.
    #[cfg(test)]
    pub(crate) journal: Mutex<Vec<(bytes::Bytes, bytes::Bytes)>>,
    #[cfg(test)]
    pub(crate) pause_after_sampling: std::sync::atomic::AtomicBool,
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Self {
        let tracks = limits.eviction != Eviction::Reject && limits != Limits::default();
        Admission {
            limits,
            reserved_bytes: AtomicUsize::new(0),
            reserved_keys: AtomicUsize::new(0),
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
        }
    }

    /// Whether any limit is set.
    pub(crate) fn is_limited(&self) -> bool {
        self.limits.max_keys.is_some() || self.limits.max_memory.is_some()
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

    /// What `ops` add to `state`, counting no decrease: exact for an op that holds its key
    /// exclusively (`exclusive[i]`), an upper bound for the others. Called with the keys'
    /// stripes held in those modes, so nothing can take a key away before the write applies.
    pub(crate) fn growth(&self, state: &Sharded, ops: &[Op], exclusive: &[bool]) -> Growth {
        let mut growth = Growth::default();
        for (op, &exclusive) in ops.iter().zip(exclusive) {
            if let Op::Put { key, value, expiry } = op {
                let now = state.memory_of(key);
                growth.keys += usize::from(now == 0);
                if self.limits.max_memory.is_some() {
                    let new = state.memory_for(key.len(), value.len(), *expiry != Expiry::Never);
                    // Shared: a concurrent put of the same key may shrink it first.
                    let counted = if exclusive { now } else { 0 };
                    growth.bytes += new.saturating_sub(counted);
                }
            }
        }
        growth
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
                "bytes",
            )?;
            reservation.bytes += more;
        }
        if let Some(limit) = self.limits.max_keys {
            let more = growth.keys.saturating_sub(reservation.keys);
            // On failure the reservation's drop releases the bytes taken above.
            take(&self.reserved_keys, &|| state.len(), more, limit, "keys")?;
            reservation.keys += more;
        }
        Ok(reservation)
    }

    /// Waits until another write releases a reservation, or `WAIT_SLICE` passes (a release
    /// can come just before this registers), unless `deadline` has passed: `false` then.
    pub(crate) fn wait_for_release(&self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let mut guard = self.released.0.lock();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let nothing_held = self.reserved_bytes.load(Ordering::Acquire) == 0
            && self.reserved_keys.load(Ordering::Acquire) == 0;
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

    /// Tests only: pauses where an evictor has chosen victims and not yet locked them.
    pub(crate) fn after_sampling(&self) {
        #[cfg(test)]
        if self.pause_after_sampling.load(Ordering::Relaxed) {
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

    /// Whether the write `blocked` describes needs more than the whole limit: no eviction
    /// can make room for it.
    pub(crate) fn never_fits(blocked: &Error) -> bool {
        matches!(*blocked, Error::LimitReached { needed, limit, .. } if needed > limit)
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

    /// Entries to evict so that a write blocked by `blocked` fits: one per round of samples,
    /// the coldest of each (an expired entry first of all), until enough memory and keys
    /// are freed or [`MAX_VICTIMS`] are chosen. Empty when there is nothing to evict.
    ///
    /// Room other writes reserved counts as taken: they are about to fill it, and a write
    /// that only waited for them would find it taken again by the next ones.
    pub(crate) fn victims(&self, state: &Sharded, now: u64, blocked: &Error) -> Vec<Victim> {
        let Error::LimitReached {
            unit,
            needed,
            limit,
            ..
        } = *blocked
        else {
            return Vec::new();
        };
        let (stored, reserved) = if unit == "keys" {
            (state.len(), self.reserved_keys.load(Ordering::Acquire))
        } else {
            (
                state.memory_used(),
                self.reserved_bytes.load(Ordering::Acquire),
            )
        };
        // Never more than what is stored: the rest is others' writes, released as they end.
        let mut short = (stored + reserved + needed)
            .saturating_sub(limit)
            .min(stored);
        let mut victims: Vec<Victim> = Vec::new();
        while short > 0 && victims.len() < MAX_VICTIMS {
            let best = (0..SAMPLES)
                .filter_map(|_| state.sample(self.random()))
                .filter(|e| !victims.iter().any(|v| v.entry.key() == e.key()))
                .map(|entry| {
                    let score = self.slot(entry.key()).map(|s| s.load(Ordering::Relaxed));
                    (entry, score)
                })
                .max_by_key(|(e, score)| (e.is_expired(now), self.coldness(score.unwrap_or(0))));
            let Some((entry, score)) = best else { break };
            let freed = if unit == "keys" {
                1
            } else {
                state.memory_of(entry.key())
            };
            short = short.saturating_sub(freed);
            victims.push(Victim { entry, score });
        }
        victims
    }
}

/// Adds `amount` to `reserved` if `used() + reserved + amount` stays within `limit`.
///
/// The reservations are read before what is used, and both again on every retry: a write
/// that publishes its bytes and then releases its reservation is counted in one or the
/// other (possibly both, never neither).
fn take(
    reserved: &AtomicUsize,
    used: &dyn Fn() -> usize,
    amount: usize,
    limit: usize,
    unit: &'static str,
) -> Result<(), Error> {
    // A write that adds nothing is never refused, even over the limit (reopened with a
    // lower one, say): deletes and overwrites are how a store gets back under it.
    if amount == 0 {
        return Ok(());
    }
    loop {
        let current = reserved.load(Ordering::Acquire);
        let committed = used().saturating_add(current);
        if committed.saturating_add(amount) > limit {
            return Err(Error::LimitReached {
                unit,
                needed: amount,
                available: limit.saturating_sub(committed),
                limit,
            });
        }
        if reserved
            .compare_exchange_weak(
                current,
                current + amount,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
