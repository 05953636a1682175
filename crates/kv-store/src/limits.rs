//! Memory and key limits: admitting writes under them, and choosing what to evict.
//!
//! A write first *reserves* what it will add (bytes and new keys) against the limits; the
//! reservation is held until the write is applied, so concurrent writers cannot together
//! overshoot a limit they each checked alone. When a reservation does not fit, the policy
//! decides: `Reject` fails the write; `Lru` and `Lfu` pick victims by sampling (a few random
//! entries per victim, the coldest of them goes, as Redis does) and delete them through the
//! log, so a reopened store holds exactly what the running one held.
//!
//! Recency (on a logical clock that writes advance) and frequency live in a fixed table of
//! counters indexed by key hash (an access sketch), not in the entries: entries stay one allocation each, and reads only load a
//! counter (storing it when it changes). Keys that share a counter share their history,
//! which makes eviction approximate, as sampling already does.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use hashbrown::DefaultHashBuilder;
use kv_concurrent::Sharded;
use kv_core::{Expiry, Op};

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

/// What a write adds, reserved against the limits until it is applied.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    admission: &'a Admission,
    bytes: usize,
    keys: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.admission
            .reserved_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
        self.admission
            .reserved_keys
            .fetch_sub(self.keys, Ordering::AcqRel);
    }
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

    /// Bytes and new keys `ops` add to `state`, counting no decrease (a conservative bound).
    fn growth(&self, state: &Sharded, ops: &[Op]) -> (usize, usize) {
        let mut bytes = 0usize;
        let mut keys = 0usize;
        for op in ops {
            if let Op::Put { key, value, expiry } = op {
                let now = state.memory_of(key);
                bytes += state
                    .memory_for(key.len(), value.len(), *expiry != Expiry::Never)
                    .saturating_sub(now);
                keys += usize::from(now == 0);
            }
        }
        (bytes, keys)
    }

    /// Reserves what `ops` add, or says which limit is in the way.
    pub(crate) fn reserve(&self, state: &Sharded, ops: &[Op]) -> Result<Reservation<'_>, Error> {
        let (bytes, keys) = self.growth(state, ops);
        let mut reservation = Reservation {
            admission: self,
            bytes: 0,
            keys: 0,
        };
        if let Some(limit) = self.limits.max_memory {
            take(
                &self.reserved_bytes,
                &|| state.memory_used(),
                bytes,
                limit,
                "bytes",
            )?;
            reservation.bytes = bytes;
        }
        if let Some(limit) = self.limits.max_keys {
            // On failure the reservation's drop releases the bytes taken above.
            take(&self.reserved_keys, &|| state.len(), keys, limit, "keys")?;
            reservation.keys = keys;
        }
        Ok(reservation)
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

    /// Keys to evict so that a write blocked by `blocked` fits: one per round of samples,
    /// the coldest of each (an expired entry first of all), until enough memory and keys
    /// are freed or [`MAX_VICTIMS`] are chosen. Empty when there is nothing to evict.
    pub(crate) fn victims(&self, state: &Sharded, now: u64, blocked: &Error) -> Vec<Bytes> {
        let Error::LimitReached {
            unit,
            needed,
            limit,
            ..
        } = *blocked
        else {
            return Vec::new();
        };
        // Only what stored data takes is evicted for: the rest of the shortfall is other
        // writes' reservations, which they release as they finish.
        let stored = if unit == "keys" {
            state.len()
        } else {
            state.memory_used()
        };
        let mut short = (stored + needed).saturating_sub(limit);
        let mut victims: Vec<Bytes> = Vec::new();
        while short > 0 && victims.len() < MAX_VICTIMS {
            let best = (0..SAMPLES)
                .filter_map(|_| state.sample(self.random()))
                .filter(|e| !victims.iter().any(|v| v == e.key()))
                .max_by_key(|e| {
                    let expired = e.is_expired(now);
                    let score = self.slot(e.key()).map_or(0, |s| s.load(Ordering::Relaxed));
                    (expired, self.coldness(score))
                });
            let Some(entry) = best else { break };
            let freed = if unit == "keys" {
                1
            } else {
                state.memory_of(entry.key())
            };
            short = short.saturating_sub(freed);
            victims.push(Bytes::copy_from_slice(entry.key()));
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
