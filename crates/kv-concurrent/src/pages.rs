//! Keys a page at a time, the position between pages kept in one number: what Redis's
//! `SCAN` cursor is (hash index only); and a key picked at random (`RANDOMKEY`).
//!
//! A cursor names a shard and, within it, where the hash table's walk stopped (a
//! [`Cursor::Bucket`]: the next bucket, and the table's size and reorganisations then).
//! The shards' count is fixed for a store's life, so the shard takes the top
//! `log2(shards)` bits; the next bucket the low [`NEXT_BITS`]; between them the table's
//! size (its log2, [`SIZE_BITS`]) and the low bits of its reorganisation count. A page
//! resumes at the bucket only if the shard's table still has that size and that count;
//! otherwise the entries may have moved, and the shard is walked again from its first
//! bucket (keys already given are given again, as `SCAN` allows). The count is kept to
//! 29 - log2(shards) bits, at least 13: a table reorganised a multiple of 8,192 times
//! between two pages of one iteration, its size unchanged, would be resumed where it is
//! not safe to, so a key could be missed. Each reorganisation is an insert that found
//! the table full: thousands of them in one shard between two pages is churn no workload
//! here comes near.
//!
//! What a walk of pages promises, writers or not (Redis's `SCAN` guarantees): every key
//! present from the first page to the last is given at least once; a key written or
//! removed meanwhile may be given or not; a key given was live when its page was read.

use bytes::Bytes;
use kv_core::Cursor;

use crate::sharded::Sharded;

/// Bits of a cursor for the next bucket of the shard's table.
const NEXT_BITS: u32 = 30;
/// Bits for the log2 of the table's buckets when the page ended.
const SIZE_BITS: u32 = 5;
/// Buckets a page looks at per key it asks for, at least: tables run between 7/16 and 7/8
/// full, and a page over a sparse stretch should still end soon.
const BUCKETS_PER_KEY: usize = 10;
/// Buckets a page may look at whatever its count.
const MIN_BUCKET_BUDGET: usize = 100;

/// One page of keys, and the cursor of the next (`0`: the walk is over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysPage {
    /// The page's keys, in no particular order.
    pub keys: Vec<Bytes>,
    /// Where the next page starts; `0` once every shard was walked.
    pub next: u64,
}

/// Where a page starts: a shard, and a position in its table (`None`: its first bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    shard: usize,
    within: Option<Within>,
}

/// A position inside a shard's table: the next bucket, the log2 of the table's buckets,
/// and its reorganisation count's low bits, as the last page left them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Within {
    next: u64,
    size: u32,
    reorganised: u64,
}

/// How a store of `shards` shards lays its cursors out.
#[derive(Debug, Clone, Copy)]
struct Layout {
    shard_bits: u32,
}

impl Layout {
    fn new(shards: usize) -> Layout {
        debug_assert!(shards.is_power_of_two() && shards <= 1 << 16);
        Layout {
            shard_bits: shards.trailing_zeros(),
        }
    }

    fn reorganised_bits(self) -> u32 {
        64 - self.shard_bits - SIZE_BITS - NEXT_BITS
    }

    fn decode(self, cursor: u64) -> Position {
        let shard = if self.shard_bits == 0 {
            0
        } else {
            (cursor >> (64 - self.shard_bits)) as usize
        };
        let next = cursor & mask(NEXT_BITS);
        let within = (next != 0).then(|| Within {
            next,
            reorganised: (cursor >> NEXT_BITS) & mask(self.reorganised_bits()),
            size: ((cursor >> (NEXT_BITS + self.reorganised_bits())) & mask(SIZE_BITS)) as u32,
        });
        Position { shard, within }
    }

    /// The cursor of `position`. Never 0 but for the start: a position inside a shard has
    /// a next bucket past 0, and one at a later shard's start has that shard's bits.
    fn encode(self, position: Position) -> u64 {
        let shard = if self.shard_bits == 0 {
            0
        } else {
            (position.shard as u64) << (64 - self.shard_bits)
        };
        let within = position.within.map_or(0, |w| {
            (u64::from(w.size) << (NEXT_BITS + self.reorganised_bits()))
                | (w.reorganised << NEXT_BITS)
                | w.next
        });
        shard | within
    }

    /// The position a walk that stopped at `next`, in a table of `buckets` buckets
    /// reorganised `reorganised` times, leaves: the count kept to the bits a cursor has
    /// for it, whether the position goes into a cursor or on to the page's next step.
    fn within(self, next: usize, buckets: usize, reorganised: u64) -> Within {
        Within {
            next: next as u64,
            size: buckets.trailing_zeros(),
            reorganised: reorganised & mask(self.reorganised_bits()),
        }
    }

    /// The walk's cursor for `within` in a table of `buckets` buckets reorganised
    /// `reorganised` times: where it stopped if the table is as it was then, else the
    /// shard's start.
    fn resume(self, within: Option<Within>, buckets: usize, reorganised: u64) -> Cursor {
        match within {
            Some(w)
                if buckets.is_power_of_two()
                    && buckets.trailing_zeros() == w.size
                    && reorganised & mask(self.reorganised_bits()) == w.reorganised =>
            {
                Cursor::Bucket {
                    next: w.next as usize,
                    buckets,
                    reorganised,
                }
            }
            _ => Cursor::Start,
        }
    }
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    }
}

impl Sharded {
    /// About `count` keys live at `now` from where `cursor` stands (`0`: the start), and
    /// the cursor of the next page: Redis's `SCAN`, over the hash index (`None` with the
    /// ordered index, whose positions are keys; see the module's documentation for what
    /// a walk of pages promises).
    ///
    /// A page looks at a bounded stretch of buckets (ten per key asked for, at least a
    /// hundred), so it may hold fewer keys than `count`, or none, before the walk ends;
    /// it holds more only when a shard's table is too large for its position to fit a
    /// cursor (over 2^30 buckets), which is then walked whole. Each shard's lock is held
    /// for one step of its walk at a time.
    pub fn keys_page(&self, cursor: u64, count: usize, now: u64) -> Option<KeysPage> {
        let count = count.max(1);
        let shards = self.shard_count();
        let layout = Layout::new(shards);
        let mut position = layout.decode(cursor);
        let mut keys = Vec::new();
        let mut budget = count.saturating_mul(BUCKETS_PER_KEY).max(MIN_BUCKET_BUDGET);
        while position.shard < shards && keys.len() < count && budget > 0 {
            let state = self.shard(position.shard).state.read();
            let (buckets, reorganised) = state.hash_layout()?;
            let mut walk = layout.resume(position.within, buckets, reorganised);
            let from = match walk {
                Cursor::Bucket { next, .. } => next,
                _ => 0,
            };
            let whole = buckets > 1 << NEXT_BITS;
            let max = if whole {
                usize::MAX
            } else {
                count - keys.len()
            };
            let done = state.walk(&mut walk, max, now, |entry| {
                keys.push(Bytes::copy_from_slice(entry.key()));
            });
            drop(state);
            let Cursor::Bucket {
                next,
                buckets,
                reorganised,
            } = walk
            else {
                unreachable!("a hash index's walk stands at a bucket");
            };
            budget = budget.saturating_sub(next.saturating_sub(from).max(1));
            position = if done {
                Position {
                    shard: position.shard + 1,
                    within: None,
                }
            } else {
                Position {
                    shard: position.shard,
                    within: Some(layout.within(next, buckets, reorganised)),
                }
            };
        }
        let next = if position.shard >= shards {
            0
        } else {
            layout.encode(position)
        };
        Some(KeysPage { keys, next })
    }
}

impl Sharded {
    /// A key live at `now`, picked by `seed`; `None` when none is. Hash index: the first
    /// live entry from a bucket picked at random in a shard picked at random (the shards
    /// after it, in turn, if that one has none), so a key after a run of empty buckets is
    /// likelier than one packed among others, as with Redis's own. Ordered index: a live
    /// entry of the shard picked at random, at a random rank (a walk of that shard).
    pub fn random_key(&self, seed: u64, now: u64) -> Option<Bytes> {
        let shards = self.shard_count();
        // A second, independent pick for the place inside the shard.
        let place = seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
        (0..shards).find_map(|step| {
            let shard = (seed as usize).wrapping_add(step) % shards;
            let state = self.shard(shard).state.read();
            let copy = |entry: &kv_core::Entry| Bytes::copy_from_slice(entry.key());
            let Some((buckets, reorganised)) = state.hash_layout() else {
                let live = state.iter().filter(|e| !e.is_expired(now)).count();
                let rank = (place % live.max(1) as u64) as usize;
                return state
                    .iter()
                    .filter(|e| !e.is_expired(now))
                    .nth(rank)
                    .map(copy);
            };
            let start = (place % buckets.max(1) as u64) as usize;
            let mut found = None;
            // From the picked bucket to the end, then from the first bucket up to it.
            let mut walk = Cursor::Bucket {
                next: start,
                buckets,
                reorganised,
            };
            while found.is_none() && !state.walk(&mut walk, 1, now, |e| found = Some(copy(e))) {}
            let mut walk = Cursor::Start;
            while found.is_none() {
                let done = state.walk(&mut walk, 1, now, |e| found = Some(copy(e)));
                let past = matches!(walk, Cursor::Bucket { next, .. } if next >= start);
                if done || past {
                    break;
                }
            }
            found
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use kv_core::{Expiry, IndexKind, OpRef};
    use kv_durable::Sink;
    use proptest::prelude::*;

    use super::*;

    fn put(state: &Sharded, key: &[u8]) {
        state.apply(
            OpRef::Put {
                key,
                value: b"v",
                expiry: Expiry::Never,
            },
            0,
        );
    }

    fn delete(state: &Sharded, key: &[u8]) {
        state.apply(OpRef::Delete { key }, 0);
    }

    /// Every key, by pages of `count` from the start.
    fn walk(state: &Sharded, count: usize) -> Vec<Bytes> {
        let mut keys = Vec::new();
        let mut cursor = 0;
        for _ in 0..1_000_000 {
            let page = state.keys_page(cursor, count, 0).unwrap();
            keys.extend(page.keys);
            cursor = page.next;
            if cursor == 0 {
                return keys;
            }
        }
        panic!("the walk did not end");
    }

    #[test]
    fn cursors_round_trip_for_every_shard_count() {
        for shards in [1usize, 2, 256, 4096, 1 << 16] {
            let layout = Layout::new(shards);
            for position in [
                Position {
                    shard: shards - 1,
                    within: None,
                },
                Position {
                    shard: shards / 2,
                    within: Some(Within {
                        next: (1 << NEXT_BITS) - 1,
                        size: 31,
                        reorganised: mask(layout.reorganised_bits()),
                    }),
                },
                Position {
                    shard: 0,
                    within: Some(Within {
                        next: 1,
                        size: 0,
                        reorganised: 0,
                    }),
                },
            ] {
                let cursor = layout.encode(position);
                assert_eq!(layout.decode(cursor), position, "{shards} shards");
                assert!(cursor != 0 || position.shard == 0 && position.within.is_none());
            }
            assert!(layout.reorganised_bits() >= 13);
        }
    }

    #[test]
    fn a_random_key_is_a_live_key_and_any_of_them_can_come() {
        for kind in [IndexKind::Hash, IndexKind::Ordered] {
            for shards in [1, 8] {
                let state = Sharded::new(kind, shards);
                assert_eq!(state.random_key(7, 0), None, "an empty store has none");
                let keys: BTreeSet<Vec<u8>> =
                    (0..40u32).map(|i| i.to_be_bytes().to_vec()).collect();
                for key in &keys {
                    put(&state, key);
                }
                // One expired key, which is never picked.
                state.apply(
                    OpRef::Put {
                        key: b"gone",
                        value: b"v",
                        expiry: Expiry::AtUnixMillis(5),
                    },
                    0,
                );
                let mut picked = BTreeSet::new();
                let mut seed = 1u64;
                for _ in 0..4_000 {
                    // xorshift: seeds spread over every bit, as a caller's random ones are.
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let key = state.random_key(seed, 10).expect("the store has live keys");
                    assert!(keys.contains(&key.to_vec()), "{kind:?}: {key:?}");
                    picked.insert(key.to_vec());
                }
                assert_eq!(picked, keys, "{kind:?}, {shards} shards: every key came");
            }
        }
    }

    #[test]
    fn a_walk_resumes_in_a_table_reorganised_more_times_than_a_cursor_counts() {
        // A long-lived shard's count passes the cursor's bits: the position a page leaves,
        // whether encoded or carried to the page's next step, still resumes there.
        let layout = Layout::new(256);
        let (buckets, reorganised) = (1 << 12, (1 << 40) + 5);
        let within = layout.within(77, buckets, reorganised);
        let resumed = Cursor::Bucket {
            next: 77,
            buckets,
            reorganised,
        };
        assert_eq!(layout.resume(Some(within), buckets, reorganised), resumed);
        let carried = layout.decode(layout.encode(Position {
            shard: 3,
            within: Some(within),
        }));
        assert_eq!(layout.resume(carried.within, buckets, reorganised), resumed);
        assert_eq!(
            layout.resume(Some(within), buckets, reorganised + 1),
            Cursor::Start,
            "reorganised since: from the shard's start"
        );
    }

    #[test]
    fn the_ordered_index_has_no_pages() {
        let state = Sharded::new(IndexKind::Ordered, 4);
        put(&state, b"a");
        assert_eq!(state.keys_page(0, 10, 0), None);
    }

    #[test]
    fn an_empty_store_is_one_empty_page() {
        for shards in [1, 16] {
            let state = Sharded::new(IndexKind::Hash, shards);
            assert_eq!(walk(&state, 10), Vec::<Bytes>::new());
        }
    }

    #[test]
    fn a_page_looks_at_a_bounded_stretch() {
        let state = Sharded::new(IndexKind::Hash, 1);
        for i in 0..10_000u32 {
            put(&state, &i.to_be_bytes());
        }
        // Emptied, the table keeps its buckets: a page of one key looks at 100 of them.
        for i in 0..10_000u32 {
            delete(&state, &i.to_be_bytes());
        }
        let page = state.keys_page(0, 1, 0).unwrap();
        assert!(page.keys.is_empty());
        assert_ne!(page.next, 0, "the walk goes on after 100 empty buckets");
    }

    #[test]
    fn a_key_present_throughout_is_given_though_the_tables_grow() {
        for shards in [1, 4] {
            let state = Sharded::new(IndexKind::Hash, shards);
            let kept: BTreeSet<Vec<u8>> = (0..400u32).map(|i| i.to_be_bytes().to_vec()).collect();
            for key in &kept {
                put(&state, key);
            }
            let reorganised = |state: &Sharded| -> u64 {
                (0..shards)
                    .map(|i| state.shard(i).state.read().hash_layout().unwrap().1)
                    .sum()
            };
            let before = reorganised(&state);
            let mut given = BTreeSet::new();
            let mut cursor = 0;
            let mut extra = 1_000_000u32;
            for _ in 0..100_000 {
                let page = state.keys_page(cursor, 7, 0).unwrap();
                given.extend(page.keys.iter().map(|k| k.to_vec()));
                // Writers between pages: new keys, enough to grow the tables twice over
                // the walk (each growth sends its shard's walk back to the start).
                for _ in 0..3 {
                    put(&state, &extra.to_be_bytes());
                    extra += 1;
                }
                cursor = page.next;
                if cursor == 0 {
                    break;
                }
            }
            assert_eq!(cursor, 0, "the walk ended");
            assert!(
                reorganised(&state) > before,
                "the tables grew during the walk"
            );
            assert!(kept.is_subset(&given), "{shards} shards");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Pages against a model: with writes (puts and deletes of other keys) between
        /// pages, every key present throughout is given, and no key absent throughout.
        #[test]
        fn pages_give_every_key_present_throughout(
            shards in prop::sample::select(vec![1usize, 2, 8]),
            initial in prop::collection::btree_set(0u16..2_000, 0..400),
            churn in prop::collection::vec((any::<bool>(), 2_000u16..4_000), 0..400),
            count in 1usize..50,
        ) {
            let state = Sharded::new(IndexKind::Hash, shards);
            let mut model: BTreeMap<u16, ()> = BTreeMap::new();
            for key in &initial {
                put(&state, &key.to_be_bytes());
                model.insert(*key, ());
            }
            let mut ever: BTreeSet<u16> = initial.clone();
            let mut churn = churn.into_iter();
            let mut given = BTreeSet::new();
            let mut cursor = 0;
            for _ in 0..100_000 {
                let page = state.keys_page(cursor, count, 0).unwrap();
                for key in page.keys {
                    given.insert(u16::from_be_bytes([key[0], key[1]]));
                }
                for (is_put, key) in churn.by_ref().take(3) {
                    if is_put {
                        put(&state, &key.to_be_bytes());
                        ever.insert(key);
                    } else {
                        delete(&state, &key.to_be_bytes());
                    }
                }
                cursor = page.next;
                if cursor == 0 {
                    break;
                }
            }
            prop_assert_eq!(cursor, 0, "the walk ended");
            prop_assert!(initial.iter().all(|k| given.contains(k)));
            prop_assert!(given.iter().all(|k| ever.contains(k)));
        }
    }
}
