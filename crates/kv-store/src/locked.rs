//! Writes decided under their keys' stripes: what read-modify-writes (`update.rs`),
//! transactions' commits (`transaction.rs`) and several keys updated at once
//! (`update_keys.rs`) share.
//!
//! The stripes are taken in stripe order (as every writer takes them, so none deadlock),
//! exclusively for a key the caller reads (shared for one it only writes, as a plain write
//! holds it), the caller reads the keys and decides what to write, and the write is
//! reserved against the limits and committed before the stripes are released: no other
//! write of a key read can come between the read and the write. Evicting takes stripes too, so a write that must
//! make room lets go of its stripes first, makes room, and decides again from a fresh read.

use std::time::Instant;

use kv_core::Op;
use kv_durable::WriteOptions;

use crate::batch::fix_deadlines;
use crate::error::{Error, Result};
use crate::store::KvStore;
use crate::stripes::StripeGuard;

/// What a decision made under the stripes comes to.
pub(crate) enum Decision<T> {
    /// Write these operations (of keys among those locked), then answer `T`.
    Write(Vec<Op>, T),
    /// Write nothing; answer `T`.
    Done(T),
}

/// The stripes held: one, without allocating, for a single key; else each with its index,
/// in stripe order.
pub(crate) enum Held<'a> {
    One(StripeGuard<'a>),
    Many(Vec<(usize, StripeGuard<'a>)>),
}

impl Held<'_> {
    /// Lets go, having written nothing: no version is bumped.
    pub(crate) fn unwritten(self) {
        match self {
            Held::One(guard) => guard.unwritten(),
            Held::Many(guards) => guards.into_iter().for_each(|(_, g)| g.unwritten()),
        }
    }

    /// Lets go after a write to the stripes `written`, bumping their versions only (even
    /// when the write failed: whether a failed write reached the state is not for this to
    /// judge). A stripe only read is not bumped: a transaction's reads must not fail other
    /// transactions that watch the same keys. (`One`'s stripe is the one written.)
    pub(crate) fn release(self, written: &[usize]) {
        match self {
            Held::One(guard) => drop(guard),
            Held::Many(guards) => {
                for (stripe, guard) in guards {
                    if written.contains(&stripe) {
                        drop(guard);
                    } else {
                        guard.unwritten();
                    }
                }
            }
        }
    }

    /// Whether `stripe` is among those held (`Many` only).
    pub(crate) fn holds(&self, stripe: usize) -> bool {
        match self {
            Held::One(_) => false,
            Held::Many(guards) => guards.binary_search_by_key(&stripe, |(i, _)| *i).is_ok(),
        }
    }
}

impl KvStore {
    /// Holds the stripes of `keys` in stripe order, each exclusively if any of its keys says
    /// so (`true`), shared otherwise (a key only written, never read: other writers of it
    /// go on, as beside a plain write), then calls `decide` with the time and writes what
    /// it decides, before letting go. Under limits every stripe is held exclusively, so
    /// the growth the write reserves is exact. Under limits a write that
    /// does not fit lets go, makes room (evicting, never a key of the stripes of `keys`, or
    /// waiting) and calls
    /// `decide` again, so `decide` may run more than once; it must not write to this store
    /// itself (its keys are locked). Every operation `decide` returns must be of a key in
    /// `keys`: only those are sized exactly.
    pub(crate) fn write_locked<T>(
        &self,
        keys: &[(&[u8], bool)],
        options: WriteOptions,
        mut decide: impl FnMut(u64) -> Result<Decision<T>>,
    ) -> Result<T> {
        self.inner
            .counted(self.write_locked_uncounted(keys, options, &mut decide))
    }

    fn write_locked_uncounted<T>(
        &self,
        keys: &[(&[u8], bool)],
        options: WriteOptions,
        decide: &mut dyn FnMut(u64) -> Result<Decision<T>>,
    ) -> Result<T> {
        let admission = &self.inner.admission;
        // Room made in an earlier pass, kept for the next; one end to all the waiting.
        let mut room = None;
        let mut wait_until = None;
        loop {
            let held = self.hold(keys, admission.is_limited());
            let now = self.now();
            let (mut ops, answer) = match decide(now) {
                Ok(Decision::Write(ops, answer)) => (ops, answer),
                Ok(Decision::Done(answer)) => {
                    held.unwritten();
                    return Ok(answer);
                }
                Err(e) => {
                    held.unwritten();
                    return Err(e);
                }
            };
            fix_deadlines(&mut ops, now);
            // Encoded, and so checked against the log's limits, before any room is made: a
            // write the log refuses must not evict anything first. No ops: nothing to write.
            let encoded = match self.inner.durable.encode(ops, options) {
                Ok(Some(encoded)) => encoded,
                Ok(None) => {
                    held.unwritten();
                    return Ok(answer);
                }
                Err(e) => {
                    held.unwritten();
                    return Err(Error::from_write(e));
                }
            };
            let ops = encoded.ops();
            let _reservation = if admission.is_limited() {
                // Every key is held exclusively (limits): the growth is exact.
                let exclusive = vec![true; ops.len()];
                let growth = admission.growth(self.state(), ops, &exclusive);
                match admission.reserve(self.state(), growth, room.take()) {
                    Ok(reservation) => Some(reservation),
                    Err(blocked) => {
                        held.unwritten();
                        let until = *wait_until
                            .get_or_insert_with(|| Instant::now() + admission.max_wait());
                        // Never evict a key of the stripes just let go: not this write's
                        // own keys, and, for a transaction, no key whose stripe it watches
                        // (a delete there would bump the version it checks, and its own
                        // room-making would fail its commit every time).
                        let stripes = self.stripes_of(keys);
                        let spared =
                            |key: &[u8]| stripes.binary_search(&self.inner.stripe_of(key)).is_ok();
                        room = Some(self.make_room(growth, blocked, until, &spared)?);
                        continue;
                    }
                }
            } else {
                None
            };
            for op in ops {
                admission.touch(op.key(), true);
            }
            let written_stripes: Vec<usize> = match &held {
                Held::One(_) => Vec::new(),
                Held::Many(_) => ops
                    .iter()
                    .map(|op| {
                        let stripe = self.inner.stripe_of(op.key());
                        // A write of a key whose stripe is not held would not bump that
                        // stripe's version, and a transaction watching it would miss it.
                        assert!(
                            held.holds(stripe),
                            "a locked write of a key that is not among `keys`"
                        );
                        stripe
                    })
                    .collect(),
            };
            let written = self
                .inner
                .durable
                .write_encoded(encoded)
                .map_err(Error::from_write);
            // Released after the write is applied.
            held.release(&written_stripes);
            return written.map(|()| answer);
        }
    }

    /// The stripes of `keys`, each once, in stripe order.
    fn stripes_of(&self, keys: &[(&[u8], bool)]) -> Vec<usize> {
        self.inner
            .stripes_wanted(keys.iter().copied())
            .into_iter()
            .map(|(stripe, _)| stripe)
            .collect()
    }

    /// The stripes of `keys`, each once, in stripe order: exclusively where a key says so,
    /// or every one if `all_exclusive`.
    fn hold(&self, keys: &[(&[u8], bool)], all_exclusive: bool) -> Held<'_> {
        let inner = &self.inner;
        let take = |stripe: usize, exclusive: bool| {
            if exclusive || all_exclusive {
                inner.stripes[stripe].write()
            } else {
                inner.stripes[stripe].read()
            }
        };
        if let [(key, exclusive)] = keys {
            return Held::One(take(inner.stripe_of(key), *exclusive));
        }
        Held::Many(
            inner
                .stripes_wanted(keys.iter().copied())
                .into_iter()
                .map(|(i, exclusive)| (i, take(i, exclusive)))
                .collect(),
        )
    }
}
