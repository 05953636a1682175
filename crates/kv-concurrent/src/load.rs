//! Loading a snapshot's parts at open, over one thread per core.
//!
//! A snapshot is read part by part, and its parts are independent, so several are read at
//! once: twice as many as there are workers, a round at a time, and no more than
//! [`ROUND_BYTES`] of them (a part longer than that is a round of its own). Each round is
//! two passes:
//!
//! 1. a thread per part reads it and copies its operations into a chunk per shard, in
//!    order, counting the inserts (a sequential copy, while the record is in cache);
//! 2. each worker takes whole shards: it sizes the shard's table (in the first round, for
//!    the whole load), then applies the round's operations of that shard, the round's
//!    first part's first, under one hold of the shard's lock.
//!
//! So no table grows step by step, no lock is taken per operation, each table is filled
//! while it is warm in cache, and every entry is built and inserted by the same thread while
//! its bytes are hot (building entries in pass 1 and inserting them in pass 2 meant a cache
//! miss per entry, on another thread: measured, pass 2 alone then took as long as all of
//! this). What is held at once is one round's copies, about its parts' bytes (more where
//! values were compressed), never the snapshot: rounds are bounded in bytes, and parts are
//! cut at a size (inside a shard if need be, see `kv-compact`'s `parts.rs`). A shard's
//! operations are applied in part order, within a round and across rounds, and within a
//! part in the order read: the state is the one applying the parts one after another
//! gives, however the shards are spread over the parts.

use std::sync::atomic::{AtomicUsize, Ordering};

use kv_core::OpRef;
use kv_durable::ReadPart;

use crate::replay::Chunk;
use crate::sharded::Sharded;

/// Parts read in a round, per worker: more parts than cores, so that a core whose part
/// ends first takes another instead of waiting for the round's slowest part.
const PARTS_PER_WORKER: usize = 2;

/// Bytes of parts (on disk) read in one round: four parts of `kv-compact`'s 64 MiB, what
/// two workers read. A round holds a copy of its parts' operations, so this bounds what a
/// load holds beyond the state it builds.
const ROUND_BYTES: u64 = 256 << 20;

/// One part's operations for one shard, and how many of them are puts that will insert
/// (not expired at the load's time).
type ForShard = (Chunk, usize);

/// Loads the parts, `part_bytes[i]` bytes long each, with `workers` threads (at least
/// one); returns how many puts were dropped because their deadline had passed at `now`.
pub(crate) fn parts(
    state: &Sharded,
    workers: usize,
    now: u64,
    part_bytes: &[u64],
    read: &ReadPart<'_>,
) -> u64 {
    load(state, workers, now, part_bytes, read, ROUND_BYTES).expired
}

/// What a load did.
#[derive(Debug, Default)]
struct Loaded {
    /// Puts dropped because their deadline had passed.
    expired: u64,
    /// The most bytes of operations one round held.
    most_held: usize,
    /// Rounds it took.
    rounds: usize,
}

/// The parts of each round, in order: at most `per_round`, and as many as fit in
/// `round_bytes` (at least one).
fn rounds(part_bytes: &[u64], per_round: usize, round_bytes: u64) -> Vec<std::ops::Range<usize>> {
    let mut rounds = Vec::new();
    let mut first = 0;
    while first < part_bytes.len() {
        let (mut end, mut bytes) = (first + 1, part_bytes[first]);
        while end < part_bytes.len()
            && end - first < per_round
            && bytes.saturating_add(part_bytes[end]) <= round_bytes
        {
            bytes += part_bytes[end];
            end += 1;
        }
        rounds.push(first..end);
        first = end;
    }
    rounds
}

/// [`parts`], reading at most `round_bytes` of parts a round.
fn load(
    state: &Sharded,
    workers: usize,
    now: u64,
    part_bytes: &[u64],
    read: &ReadPart<'_>,
    round_bytes: u64,
) -> Loaded {
    let shards = state.shard_count();
    let workers = workers.max(1);
    let total_bytes: u64 = part_bytes.iter().sum();
    let mut loaded = Loaded::default();
    // Each round's chunks, by part then shard; emptied and used again by the next round, so
    // that fewer copies touch fresh memory (a page fault per 4 KiB). Each keeps no more
    // than it held in its round: a shard split over many parts fills other slots in each
    // round, and memory kept everywhere would add up past the round's bound.
    let mut read_parts: Vec<Vec<ForShard>> = Vec::new();
    let rounds = rounds(part_bytes, workers * PARTS_PER_WORKER, round_bytes);
    loaded.rounds = rounds.len();
    for (r, round) in rounds.into_iter().enumerate() {
        let round_parts = round.len();
        let read_bytes: u64 = part_bytes[round.clone()].iter().sum();
        read_parts.resize_with(round_parts, || {
            (0..shards).map(|_| (Chunk::default(), 0)).collect()
        });
        // Pass 1: a worker per part, each part filed by shard.
        std::thread::scope(|s| {
            for (part, by_shard) in round.zip(read_parts.iter_mut()) {
                s.spawn(move || {
                    read(part, &mut |op| {
                        let hash = state.hash(op.key());
                        let (chunk, inserts) = &mut by_shard[state.shard_of_hash(hash)];
                        chunk.push(hash, op);
                        if let OpRef::Put { expiry, .. } = op {
                            *inserts += usize::from(expiry.deadline(now).is_none_or(|d| d > now));
                        }
                    });
                });
            }
        });
        let held = read_parts.iter().flatten().map(|(c, _)| c.len()).sum();
        loaded.most_held = loaded.most_held.max(held);
        // Pass 2: shards, each filled whole by one worker.
        let sizing = if r == 0 {
            Sizing::First {
                total_bytes,
                read_bytes,
                inserts: read_parts.iter().flatten().map(|(_, n)| n).sum(),
                shards,
            }
        } else {
            Sizing::Round
        };
        let next = AtomicUsize::new(0);
        let filed = &read_parts;
        loaded.expired += std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers.min(shards))
                .map(|_| {
                    let next = &next;
                    s.spawn(move || {
                        let mut expired = 0;
                        loop {
                            let shard = next.fetch_add(1, Ordering::Relaxed);
                            if shard >= shards {
                                return expired;
                            }
                            expired += fill(state, shard, filed, sizing, now);
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a snapshot loader panicked"))
                .sum::<u64>()
        });
        for (chunk, inserts) in read_parts.iter_mut().flatten() {
            chunk.clear_keeping(chunk.len());
            *inserts = 0;
        }
    }
    state.publish_all();
    loaded
}

/// How a round sizes a shard's table before filling it.
#[derive(Debug, Clone, Copy)]
enum Sizing {
    /// The first round, which read `read_bytes` of the load's `total_bytes` and found
    /// `inserts` puts to insert over all `shards`: size each table for the whole load at
    /// once. Growing it in a later round would rehash every entry already in it, a cache
    /// miss each (measured: a sixth of a load sized round by round).
    ///
    /// The estimate is the load's, spread evenly over the shards (keys are hashed to
    /// shards), not each shard's own share of the round: a shard may be split over many
    /// parts, so the first round may hold only some shards. It is lowered by four standard
    /// deviations, so that a table is almost never made larger than inserting one by one
    /// would make it (tables never shrink); a shard over it grows once, at its end.
    First {
        total_bytes: u64,
        read_bytes: u64,
        inserts: usize,
        shards: usize,
    },
    /// A later round: room for this round's inserts, if it lacks it.
    Round,
}

impl Sizing {
    /// The entries to reserve room for, given the shard's `inserts` of this round.
    fn reserve(self, inserts: usize) -> usize {
        match self {
            Sizing::First {
                total_bytes,
                read_bytes,
                inserts: all,
                shards,
            } if total_bytes > read_bytes && read_bytes > 0 => {
                let load = all as u128 * u128::from(total_bytes) / u128::from(read_bytes);
                let estimate = usize::try_from(load / shards.max(1) as u128).unwrap_or(usize::MAX);
                estimate.saturating_sub(4 * estimate.isqrt()).max(inserts)
            }
            _ => inserts,
        }
    }
}

/// Applies shard `shard`'s operations of one round (`read_parts`: by part, then shard),
/// part by part, after sizing its table as `sizing` says; returns how many puts had
/// expired.
fn fill(
    state: &Sharded,
    shard: usize,
    read_parts: &[Vec<ForShard>],
    sizing: Sizing,
    now: u64,
) -> u64 {
    let chunks = read_parts.iter().map(|by_shard| &by_shard[shard]);
    let inserts = chunks.clone().map(|(_, inserts)| inserts).sum();
    let mut table = state.shard(shard).state.write();
    table.reserve(sizing.reserve(inserts));
    chunks.map(|(chunk, _)| chunk.apply(&mut table, now)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_core::{Change, Expiry, IndexKind};
    use kv_durable::Sink;

    /// Parts with keys repeated within and across parts, deletes and expired puts: loading
    /// them at once ends where applying them one after another does.
    #[test]
    fn loading_parts_at_once_ends_where_applying_them_in_order_does() {
        type Op = (Vec<u8>, Option<Vec<u8>>, Expiry);
        let parts: Vec<Vec<Op>> = (0..5u32)
            .map(|part| {
                (0..3_000u32)
                    .map(|i| {
                        let key = format!("key{}", (i * 7 + part * 13) % 1_500).into_bytes();
                        match (i + part) % 9 {
                            0 => (key, None, Expiry::Never),
                            1 => (key, Some(vec![1; 40]), Expiry::AtUnixMillis(50)),
                            2 => (key, Some(vec![2; 40]), Expiry::AtUnixMillis(500)),
                            _ => (key, Some(i.to_le_bytes().repeat(5)), Expiry::Never),
                        }
                    })
                    .collect()
            })
            .collect();
        let read = |part: usize, apply: &mut kv_durable::ApplyOp<'_>| {
            for (key, value, expiry) in &parts[part] {
                apply(match value {
                    Some(value) => OpRef::Put {
                        key,
                        value,
                        expiry: *expiry,
                    },
                    None => OpRef::Delete { key },
                });
            }
        };
        let part_bytes = vec![1 << 20; parts.len()];
        let sequential = |kind| {
            let state = Sharded::new(kind, 8);
            let mut expired = 0;
            for part in 0..parts.len() {
                read(part, &mut |op| {
                    expired += u64::from(state.apply(op, 100) == Change::Expired);
                });
            }
            (state, expired)
        };
        let all = |s: &Sharded| -> Vec<_> {
            s.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, 0)
                .unwrap()
                .collect()
        };
        for workers in [1, 2, 3, 8] {
            for kind in [IndexKind::Ordered, IndexKind::Hash] {
                let (sequential, expected_expired) = sequential(kind);
                assert!(expected_expired > 0 && sequential.len() > 100);
                let loaded = Sharded::new(kind, 8);
                let expired = super::parts(&loaded, workers, 100, &part_bytes, &read);
                assert_eq!(expired, expected_expired, "{workers} workers");
                assert_eq!(loaded.len(), sequential.len());
                assert_eq!(loaded.memory_used(), sequential.memory_used());
                let entries = |s: &Sharded| {
                    let mut got = Vec::new();
                    s.for_each(0, |e| {
                        got.push((e.key().to_vec(), e.value().to_vec(), e.deadline()))
                    });
                    got.sort();
                    got
                };
                assert_eq!(
                    entries(&loaded),
                    entries(&sequential),
                    "{workers} workers, {kind:?}"
                );
            }
        }
        // Through the sink, which picks the workers.
        let (sequential, expected_expired) = sequential(IndexKind::Ordered);
        let loaded = Sharded::new(IndexKind::Ordered, 8);
        assert_eq!(loaded.load_parts(100, &part_bytes, &read), expected_expired);
        assert_eq!(all(&loaded), all(&sequential));
    }

    /// The first round sizes each table for the whole load, spread evenly over the
    /// shards, a little under the estimate; a load read in one round sizes it exactly;
    /// later rounds add only what they lack.
    #[test]
    fn the_first_round_sizes_a_table_for_the_whole_load() {
        let first = Sizing::First {
            total_bytes: 800,
            read_bytes: 200,
            inserts: 8_000,
            shards: 8,
        };
        assert_eq!(first.reserve(1_000), 4_000 - 4 * 63);
        assert_eq!(
            first.reserve(0),
            4_000 - 4 * 63,
            "a shard the first round did not see is sized from the others"
        );
        assert_eq!(
            first.reserve(8_000),
            8_000,
            "never below what the round itself inserts"
        );
        let whole = Sizing::First {
            total_bytes: 800,
            read_bytes: 800,
            inserts: 8_000,
            shards: 8,
        };
        assert_eq!(whole.reserve(1_000), 1_000);
        assert_eq!(Sizing::Round.reserve(1_000), 1_000);
    }

    /// Rounds take at most so many parts and so many bytes, a longer part alone.
    #[test]
    fn rounds_are_bounded_in_parts_and_bytes() {
        let ranges = |bytes: &[u64]| super::rounds(bytes, 4, 100);
        assert_eq!(ranges(&[10; 9]), [0..4, 4..8, 8..9]);
        assert_eq!(ranges(&[60, 30, 20, 90, 10]), [0..2, 2..3, 3..5]);
        assert_eq!(ranges(&[500, 10, 500]), [0..1, 1..2, 2..3]);
        assert_eq!(ranges(&[]), Vec::<std::ops::Range<usize>>::new());
    }

    /// A load whose parts hold one shard each, split over many parts (as `kv-compact`
    /// writes a shard larger than a part), ends where applying the parts in order does, and
    /// no round holds more operations than its bound in bytes.
    #[test]
    fn a_load_holds_at_most_a_round_of_bytes_whatever_the_shards() {
        type Op = (Vec<u8>, Option<Vec<u8>>);
        for kind in [IndexKind::Ordered, IndexKind::Hash] {
            let probe = Sharded::new(kind, 2);
            // Shard by shard, cut into parts of about 4 KiB, keys rewritten and deleted
            // within a shard across parts.
            let mut parts: Vec<Vec<Op>> = Vec::new();
            for shard in 0..probe.shard_count() {
                let mut ops: Vec<Op> = Vec::new();
                for i in 0..3_000u32 {
                    let key = format!("key{}", i % 700).into_bytes();
                    if probe.shard_of_hash(probe.hash(&key)) != shard {
                        continue;
                    }
                    ops.push(if i % 11 == 0 {
                        (key, None)
                    } else {
                        (key, Some(i.to_le_bytes().repeat(8)))
                    });
                }
                parts.extend(ops.chunks(80).map(<[Op]>::to_vec));
            }
            // Only sized, never applied: any hash does.
            let push = |chunk: &mut Chunk, (key, value): &Op| match value {
                Some(value) => chunk.push(
                    0,
                    OpRef::Put {
                        key,
                        value,
                        expiry: Expiry::Never,
                    },
                ),
                None => chunk.push(0, OpRef::Delete { key }),
            };
            // Each part's size, as the bytes its operations take in a chunk.
            let part_bytes: Vec<u64> = parts
                .iter()
                .map(|ops| {
                    let mut chunk = Chunk::default();
                    ops.iter().for_each(|op| push(&mut chunk, op));
                    chunk.len() as u64
                })
                .collect();
            let read = |part: usize, apply: &mut kv_durable::ApplyOp<'_>| {
                for (key, value) in &parts[part] {
                    apply(match value {
                        Some(value) => OpRef::Put {
                            key,
                            value,
                            expiry: Expiry::Never,
                        },
                        None => OpRef::Delete { key },
                    });
                }
            };
            let sequential = Sharded::new(kind, 2);
            for part in 0..parts.len() {
                read(part, &mut |op| {
                    sequential.apply(op, 0);
                });
            }
            let bound = 3 * part_bytes.iter().max().unwrap();
            let loaded = Sharded::new(kind, 2);
            let done = super::load(&loaded, 2, 0, &part_bytes, &read, bound);
            assert!(parts.len() > 8 && done.rounds > parts.len() / 4, "{done:?}");
            assert!(done.most_held > 0, "{done:?}");
            assert!(done.most_held as u64 <= bound, "{done:?}, bound {bound}");
            let entries = |s: &Sharded| {
                let mut got = Vec::new();
                s.for_each(0, |e| got.push((e.key().to_vec(), e.value().to_vec())));
                got.sort();
                got
            };
            assert!(sequential.len() > 100);
            assert_eq!(entries(&loaded), entries(&sequential), "{kind:?}");
            assert_eq!(loaded.memory_used(), sequential.memory_used());
        }
    }
}
