//! Lock stripes: what orders writes of the same key against one another, and the versions
//! that tell a transaction whether a key it read was written since.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// One stripe: a lock, and a count of the writes made under it.
///
/// Every write holds its keys' stripes (shared or exclusively) until it is applied, and
/// bumps their versions before letting go of them (a [`StripeGuard`]'s drop). So a
/// transaction that loaded a stripe's version before reading a key, and finds it unchanged
/// holding the stripe exclusively, knows that no write of that key completed in between.
/// The counter sits beside the lock, in the cache line the write has just taken: the bump
/// is one atomic add on a line already held.
#[derive(Debug, Default)]
pub(crate) struct Stripe {
    lock: RwLock<()>,
    version: AtomicU64,
}

impl Stripe {
    /// The count of writes completed under this stripe. Acquire: a write whose bump this
    /// sees is applied before anything this thread reads next.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Starts bringing the stripe's cache line in, without waiting for it (`prefetcht0`).
    /// The stripes of a million keys are mostly out of cache, and that miss was a tenth of
    /// a buffered put's time (W2); fetched first, it overlaps the work done before the
    /// stripe is taken. (A plain load does not do: its value has to arrive before the
    /// thread goes on far.)
    pub(crate) fn fetch(&self) {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
        safe_arch::prefetch_t0(self);
    }

    /// Holds the stripe shared: many writers at once, none holding it exclusively.
    pub(crate) fn read(&self) -> StripeGuard<'_> {
        StripeGuard {
            stripe: self,
            held: Held::Shared(self.lock.read()),
            bump: true,
        }
    }

    /// Holds the stripe shared if nobody holds it exclusively now.
    pub(crate) fn try_read(&self) -> Option<StripeGuard<'_>> {
        Some(StripeGuard {
            stripe: self,
            held: Held::Shared(self.lock.try_read()?),
            bump: true,
        })
    }

    /// Holds the stripe exclusively if nobody holds it now.
    pub(crate) fn try_write(&self) -> Option<StripeGuard<'_>> {
        Some(StripeGuard {
            stripe: self,
            held: Held::Exclusive(self.lock.try_write()?),
            bump: true,
        })
    }

    /// Holds the stripe exclusively.
    pub(crate) fn write(&self) -> StripeGuard<'_> {
        StripeGuard {
            stripe: self,
            held: Held::Exclusive(self.lock.write()),
            bump: true,
        }
    }

    /// Whether nobody holds the stripe at this instant (the sweep's test).
    pub(crate) fn is_free(&self) -> bool {
        self.lock.try_write().is_some()
    }
}

/// The stripes of a store.
pub(crate) type Stripes = Box<[Stripe]>;

/// A stripe held; dropping it bumps the stripe's version (the holder may have written),
/// then releases it, unless [`unwritten`](Self::unwritten) said nothing was written.
#[derive(Debug)]
pub(crate) struct StripeGuard<'a> {
    stripe: &'a Stripe,
    #[allow(dead_code)] // Held for its drop.
    held: Held<'a>,
    bump: bool,
}

impl StripeGuard<'_> {
    /// Releases the stripe without counting a write: nothing was written under it (a
    /// write that let go to make room, a transaction that found a conflict). Bumping would
    /// only make others' transactions fail for nothing.
    pub(crate) fn unwritten(mut self) {
        self.bump = false;
    }
}

impl Drop for StripeGuard<'_> {
    fn drop(&mut self) {
        // Before the lock is released (fields drop after this): a transaction that takes
        // the stripe next sees the count of every write made under it. Release: whoever
        // sees the new count sees what was written.
        if self.bump {
            self.stripe.version.fetch_add(1, Ordering::Release);
        }
    }
}

#[derive(Debug)]
enum Held<'a> {
    Shared(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_counts_once_released_and_an_unwritten_hold_does_not() {
        let stripe = Stripe::default();
        let guard = stripe.read();
        assert_eq!(stripe.version(), 0, "counted only when released");
        drop(guard);
        assert_eq!(stripe.version(), 1);
        drop(stripe.write());
        assert_eq!(stripe.version(), 2);
        stripe.write().unwritten();
        assert_eq!(stripe.version(), 2);
        assert!(stripe.is_free());
    }
}
