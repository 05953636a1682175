//! The two indexes a user can choose: hashed (fastest point operations) or ordered (range and
//! prefix scans).

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::OnceLock;

use hashbrown::hash_table::{Entry as Slot, HashTable};
use hashbrown::DefaultHashBuilder;

use crate::entry::Entry;
use crate::ranked::{Probe, RankKey, Ranked};

/// Which index a state keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IndexKind {
    /// A hash table: the fastest gets and puts, no ordered scans.
    #[default]
    Hash,
    /// A B-tree: ordered range and prefix scans, somewhat slower point operations.
    Ordered,
}

/// The hash of keys: one function, seeded at random once per process, shared by every index
/// and by whoever picks a shard. So a caller that hashes a key once to pick its shard can
/// look it up in the shard's table with the same hash ([`State::get_hashed`]) instead of
/// hashing it again, and a state built anywhere in the process agrees with it.
///
/// [`State::get_hashed`]: crate::State::get_hashed
#[derive(Debug, Clone)]
pub struct KeyHasher(DefaultHashBuilder);

impl KeyHasher {
    /// The process's key hasher.
    pub fn shared() -> Self {
        static SHARED: OnceLock<KeyHasher> = OnceLock::new();
        SHARED
            .get_or_init(|| KeyHasher(DefaultHashBuilder::default()))
            .clone()
    }

    /// The hash of `key`.
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.0.hash_one(key)
    }
}

/// The splitmix64 finaliser: well-mixed bits from a counter.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Entries by key.
#[derive(Debug, Clone)]
pub(crate) enum Index {
    Hash {
        table: HashTable<Entry>,
        hasher: KeyHasher,
        /// How many inserts found the table without room to grow: each may have moved
        /// every entry to another bucket (a resize, or a rehash in place). A walk that
        /// resumes at a bucket position after releasing its lock checks this (`walk`).
        reorganised: u64,
    },
    Ordered(BTreeSet<Ranked>),
}

/// Where a walk over an index ([`State::walk`](crate::State::walk)) stands between two
/// calls, which may be made under two holds of a lock with changes in between.
///
/// A walk resumed after changes sees every entry that was in the index throughout at least
/// once; an entry inserted or removed meanwhile may be seen or not, and with the hash index
/// an entry may be seen twice (the walk starts over when the table was reorganised). So it
/// suits what replaying a log over it corrects, as a snapshot taken while writers go on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cursor {
    /// Nothing walked yet.
    #[default]
    Start,
    /// Hash index: the next bucket, in a table of `buckets` reorganised `reorganised` times.
    Bucket {
        /// The next bucket to look at.
        next: usize,
        /// The table's buckets when the walk stopped.
        buckets: usize,
        /// The table's reorganisations when the walk stopped.
        reorganised: u64,
    },
    /// Ordered index: after this key.
    After(Vec<u8>),
}

/// Bytes an index spends per entry besides the entry's own allocation, as the state accounts
/// memory. Hash: a slot is the entry's thin pointer (8 bytes) and a control byte, and the
/// table runs between 7/8 and 7/16 full, so about 14 bytes per entry on average. Ordered:
/// a 24-byte element (the pointer and 16 key bytes inline) in a node about two-thirds full,
/// plus the internal nodes.
///
/// Counted per entry, not per allocated slot, so that the figure moves with the entries
/// alone: a limit checked against it cannot be crossed by a table growing in a step.
pub(crate) const fn slot_overhead(kind: IndexKind) -> usize {
    match kind {
        IndexKind::Hash => 14,
        IndexKind::Ordered => 42,
    }
}

impl Index {
    pub(crate) fn new(kind: IndexKind) -> Self {
        match kind {
            IndexKind::Hash => Index::Hash {
                table: HashTable::new(),
                hasher: KeyHasher::shared(),
                reorganised: 0,
            },
            IndexKind::Ordered => Index::Ordered(BTreeSet::new()),
        }
    }

    pub(crate) fn kind(&self) -> IndexKind {
        match self {
            Index::Hash { .. } => IndexKind::Hash,
            Index::Ordered(_) => IndexKind::Ordered,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Index::Hash { table, .. } => table.len(),
            Index::Ordered(set) => set.len(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.get_hashed(self.hash_for(key, None), key)
    }

    /// The hash the hash index finds `key` by: `known` if the caller computed it with
    /// [`KeyHasher::shared`], else computed here; the ordered index needs none (0).
    #[inline]
    fn hash_for(&self, key: &[u8], known: Option<u64>) -> u64 {
        match self {
            Index::Hash { hasher, .. } => known.unwrap_or_else(|| hasher.hash(key)),
            Index::Ordered(_) => 0,
        }
    }

    /// [`get`](Self::get) with the key's hash already computed by [`KeyHasher::shared`]
    /// (the ordered index ignores it).
    #[inline]
    pub(crate) fn get_hashed(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        match self {
            Index::Hash { table, .. } => table.find(hash, |e| e.key() == key),
            Index::Ordered(set) => set.get(&Probe::new(key) as &dyn RankKey).map(|r| &r.entry),
        }
    }

    /// What [`get_hashed`](Self::get_hashed) would most likely find, without reading any
    /// entry: the hash index's first entry whose slot matches the hash's top bits (the key's
    /// own entry unless another matches them too, or none when the key is absent); the
    /// ordered index's lookup itself. A caller compares the key, and looks up again on a
    /// mismatch. Many keys probed first and compared after let their cache misses overlap.
    #[inline]
    pub(crate) fn probe_hashed(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        match self {
            Index::Hash { table, .. } => table.find(hash, |_| true),
            Index::Ordered(_) => self.get_hashed(hash, key),
        }
    }

    /// Inserts `entry`, returning the entry it replaced; `hash`: its key's hash by
    /// [`KeyHasher::shared`], if the caller has it.
    #[inline]
    pub(crate) fn insert(&mut self, entry: Entry, hash: Option<u64>) -> Option<Entry> {
        let hash = self.hash_for(entry.key(), hash);
        match self {
            Index::Hash {
                table,
                hasher,
                reorganised,
            } => {
                // `entry` makes room first, moving entries when there is none left (one
                // comparison per insert: needed by walks that resume at a bucket).
                if table.capacity() == table.len() {
                    *reorganised += 1;
                }
                match table.entry(hash, |e| e.key() == entry.key(), |e| hasher.hash(e.key())) {
                    Slot::Occupied(mut slot) => Some(std::mem::replace(slot.get_mut(), entry)),
                    Slot::Vacant(slot) => {
                        slot.insert(entry);
                        None
                    }
                }
            }
            Index::Ordered(set) => set.replace(Ranked::new(entry)).map(|r| r.entry),
        }
    }

    /// The hash table's buckets and reorganisations, as a [`Cursor::Bucket`] records them
    /// (`None` for the ordered index): what a caller that keeps a walk's position in a
    /// smaller form of its own checks it against.
    pub(crate) fn layout(&self) -> Option<(usize, u64)> {
        match self {
            Index::Hash {
                table, reorganised, ..
            } => Some((table.num_buckets(), *reorganised)),
            Index::Ordered(_) => None,
        }
    }

    /// Makes room for `additional` more entries at once (hash index; the ordered index has
    /// nothing to size): what a load that knows its entry count calls, so the table is sized
    /// once instead of doubling its way there. A table that has to grow counts as
    /// reorganised, as in [`insert`](Self::insert).
    pub(crate) fn reserve(&mut self, additional: usize) {
        if let Index::Hash {
            table,
            hasher,
            reorganised,
        } = self
        {
            if table.capacity() - table.len() < additional {
                *reorganised += 1;
                table.reserve(additional, |e| hasher.hash(e.key()));
            }
        }
    }

    /// Removes and returns the entry of `key` (`hash`: as for [`insert`](Self::insert)).
    #[inline]
    pub(crate) fn remove(&mut self, key: &[u8], hash: Option<u64>) -> Option<Entry> {
        let hash = self.hash_for(key, hash);
        match self {
            Index::Hash { table, .. } => table
                .find_entry(hash, |e| e.key() == key)
                .ok()
                .map(|slot| slot.remove().0),
            Index::Ordered(set) => set.take(&Probe::new(key) as &dyn RankKey).map(|r| r.entry),
        }
    }

    /// Some entry chosen by `seed`, cheaply: the first filled bucket at or after a bucket the
    /// seed picks (hash index), or the first key at or after the seed's bytes (ordered index,
    /// wrapping to the first key). Uniform enough for sampled eviction, not a fair draw.
    pub(crate) fn sample(&self, seed: u64) -> Option<&Entry> {
        match self {
            Index::Hash { table, .. } => {
                let buckets = table.num_buckets();
                if table.is_empty() || buckets == 0 {
                    return None;
                }
                // Random buckets until one is filled (a uniform draw over the entries); only
                // then, if the table is that empty, the first filled bucket after the last
                // try. Taking the first filled bucket after a random one straight away favours
                // entries that follow runs of empty buckets: measured, an LFU store then
                // evicted its hottest keys now and then.
                let mut bits = seed;
                let mut start = 0;
                for _ in 0..16 {
                    bits = bits.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    start = (mix(bits) as usize) % buckets;
                    if let Some(entry) = table.get_bucket(start) {
                        return Some(entry);
                    }
                }
                (0..buckets).find_map(|i| table.get_bucket((start + i) % buckets))
            }
            Index::Ordered(set) => {
                // A probe key between the first and last keys: their common prefix, then
                // random bytes from the range of byte values their tails use.
                let (first, last) = (&set.first()?.entry, &set.last()?.entry);
                let (lo_key, hi_key) = (first.key(), last.key());
                let common = lo_key
                    .iter()
                    .zip(hi_key)
                    .take_while(|(a, b)| a == b)
                    .count();
                let tails = lo_key[common..].iter().chain(&hi_key[common..]);
                let lo = u64::from(tails.clone().copied().min().unwrap_or(0));
                let span = u64::from(tails.copied().max().unwrap_or(u8::MAX)) - lo + 1;
                let mut probe = lo_key[..common].to_vec();
                let mut bits = seed;
                for _ in common..lo_key.len().max(hi_key.len()) {
                    bits = bits.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    probe.push((lo + mix(bits) % span) as u8);
                }
                let probe = Probe::new(&probe);
                set.range::<dyn RankKey, _>((
                    Bound::Included(&probe as &dyn RankKey),
                    Bound::Unbounded,
                ))
                .next()
                .map_or(Some(first), |r| Some(&r.entry))
            }
        }
    }

    /// Keeps only the entries `keep` says yes to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        match self {
            Index::Hash { table, .. } => table.retain(|e| keep(e)),
            Index::Ordered(set) => set.retain(|r| keep(&r.entry)),
        }
    }

    /// Every entry, in no particular order for a hash index, in key order otherwise.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = &Entry> + '_> {
        match self {
            Index::Hash { table, .. } => Box::new(table.iter()),
            Index::Ordered(set) => Box::new(set.iter().map(|r| &r.entry)),
        }
    }

    /// Calls `f` with entries from where `cursor` stands, until `f` has seen `max` entries
    /// (or the index ends); moves `cursor` past them. Returns whether the walk is complete.
    /// See [`Cursor`] for what a walk resumed later sees.
    pub(crate) fn walk(
        &self,
        cursor: &mut Cursor,
        max: usize,
        mut f: impl FnMut(&Entry) -> bool,
    ) -> bool {
        let mut seen = 0;
        match self {
            Index::Hash {
                table, reorganised, ..
            } => {
                let buckets = table.num_buckets();
                let mut next = match cursor {
                    Cursor::Bucket {
                        next,
                        buckets: then,
                        reorganised: at,
                    } if *then == buckets && at == reorganised => *next,
                    // Started, or the entries may have moved since: from the first bucket
                    // again (entries already seen are seen twice).
                    _ => 0,
                };
                // Empty buckets cost a look each: bound them too.
                let end = buckets.min(next.saturating_add(max.saturating_mul(4)));
                while next < end && seen < max {
                    if let Some(entry) = table.get_bucket(next) {
                        if f(entry) {
                            seen += 1;
                        }
                    }
                    next += 1;
                }
                *cursor = Cursor::Bucket {
                    next,
                    buckets,
                    reorganised: *reorganised,
                };
                next >= buckets
            }
            Index::Ordered(set) => {
                let after = match cursor {
                    Cursor::After(key) => Some(Probe::new(key)),
                    _ => None,
                };
                let start = match &after {
                    Some(probe) => Bound::Excluded(probe as &dyn RankKey),
                    None => Bound::Unbounded,
                };
                let mut last = None;
                let mut range = set.range::<dyn RankKey, _>((start, Bound::Unbounded));
                for ranked in range.by_ref() {
                    last = Some(&ranked.entry);
                    if f(&ranked.entry) {
                        seen += 1;
                        if seen == max {
                            break;
                        }
                    }
                }
                let done = seen < max || range.next().is_none();
                if let Some(entry) = last {
                    *cursor = Cursor::After(entry.key().to_vec());
                }
                done
            }
        }
    }

    /// Entries with keys in the range, in key order from either end; `None` for a hash index.
    /// The bounds are only read here: what is returned borrows the index alone.
    pub(crate) fn range<'a>(
        &'a self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> Option<impl DoubleEndedIterator<Item = &'a Entry> + 'a> {
        match self {
            Index::Hash { .. } => None,
            Index::Ordered(set) => {
                let (start, end) = (start.map(Probe::new), end.map(Probe::new));
                fn bound<'p>(b: &'p Bound<Probe<'_>>) -> Bound<&'p (dyn RankKey + 'p)> {
                    match b {
                        Bound::Included(p) => Bound::Included(p),
                        Bound::Excluded(p) => Bound::Excluded(p),
                        Bound::Unbounded => Bound::Unbounded,
                    }
                }
                let range = set.range::<dyn RankKey, _>((bound(&start), bound(&end)));
                Some(range.map(|r| &r.entry))
            }
        }
    }
}
