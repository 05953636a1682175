//! Entries as the ordered index keeps them: with the first bytes of the key inline.
//!
//! A B-tree search compares the sought key with several keys of each node it visits. With
//! plain entries each comparison follows the entry's pointer to its key, a cache miss once
//! the tree outgrows the caches; a 100-key scan of a million-key tree spent most of its time
//! there. With the key's first [`PREFIX`] bytes beside the pointer, comparisons read the node
//! only, and follow the pointer only when two prefixes are equal.

use std::borrow::Borrow;
use std::cmp::Ordering;

use crate::entry::Entry;

/// Key bytes kept inline.
pub(crate) const PREFIX: usize = 16;

/// The first [`PREFIX`] bytes of `key`, zero-padded.
///
/// Comparing padded prefixes, then whole keys when the prefixes are equal, orders keys exactly
/// as comparing whole keys does: keys that differ within the prefix differ at the same byte in
/// their padded prefixes (a shorter key's padding byte 0 is never above the longer key's byte
/// there, and an equal pair falls through to the whole keys).
pub(crate) fn prefix_of(key: &[u8]) -> [u8; PREFIX] {
    let mut prefix = [0u8; PREFIX];
    let len = key.len().min(PREFIX);
    prefix[..len].copy_from_slice(&key[..len]);
    prefix
}

/// What the ordered index compares: a key's padded prefix, then the key.
pub(crate) trait RankKey {
    fn prefix(&self) -> &[u8; PREFIX];
    fn key(&self) -> &[u8];
}

impl PartialEq for dyn RankKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn RankKey + '_ {}

impl PartialOrd for dyn RankKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn RankKey + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix()
            .cmp(other.prefix())
            .then_with(|| self.key().cmp(other.key()))
    }
}

/// An entry of the ordered index.
#[derive(Clone)]
pub(crate) struct Ranked {
    prefix: [u8; PREFIX],
    pub(crate) entry: Entry,
}

impl Ranked {
    pub(crate) fn new(entry: Entry) -> Self {
        Ranked {
            prefix: prefix_of(entry.key()),
            entry,
        }
    }
}

impl std::fmt::Debug for Ranked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.entry.fmt(f)
    }
}

impl RankKey for Ranked {
    fn prefix(&self) -> &[u8; PREFIX] {
        &self.prefix
    }
    fn key(&self) -> &[u8] {
        self.entry.key()
    }
}

/// A key being looked up, ranked like an entry without allocating one.
pub(crate) struct Probe<'a> {
    prefix: [u8; PREFIX],
    key: &'a [u8],
}

impl<'a> Probe<'a> {
    pub(crate) fn new(key: &'a [u8]) -> Self {
        Probe {
            prefix: prefix_of(key),
            key,
        }
    }
}

impl RankKey for Probe<'_> {
    fn prefix(&self) -> &[u8; PREFIX] {
        &self.prefix
    }
    fn key(&self) -> &[u8] {
        self.key
    }
}

impl<'a> Borrow<dyn RankKey + 'a> for Ranked {
    fn borrow(&self) -> &(dyn RankKey + 'a) {
        self
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        (self as &dyn RankKey).cmp(other as &dyn RankKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ranking_orders_keys_as_their_bytes_do(
            a in prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..20),
            b in prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..20),
        ) {
            let (ra, rb) = (Ranked::new(Entry::new(&a, b"", None)), Ranked::new(Entry::new(&b, b"", None)));
            prop_assert_eq!(ra.cmp(&rb), a.cmp(&b));
            prop_assert_eq!((&Probe::new(&a) as &dyn RankKey).cmp(&rb as &dyn RankKey), a.cmp(&b));
        }
    }
}
