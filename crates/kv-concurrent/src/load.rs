//! Loading a snapshot's parts at open, over one thread per core.
//!
//! A snapshot is read part by part, and its parts are independent, so several are read at
//! once: twice as many as there are workers, a round at a time. Each round is two passes:
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
//! this). What is held at once is one round's parts, not the snapshot (parts are bounded,
//! see `kv-compact`'s `parts.rs`). Operations of one shard are applied in part order, and
//! within a part in the order read: the state is the one applying the parts one after
//! another gives.

use std::sync::atomic::{AtomicUsize, Ordering};

use kv_core::{Change, OpRef};
use kv_durable::ReadPart;

use crate::replay::Chunk;
use crate::sharded::Sharded;

/// Parts read in a round, per worker: more parts than cores, so that a core whose part
/// ends first takes another instead of waiting for the round's slowest part.
const PARTS_PER_WORKER: usize = 2;

/// One part's operations for one shard, and how many of them are puts that will insert
/// (not expired at the load's time).
type ForShard = (Chunk, usize);

/// Loads `parts` parts with `workers` threads (at least one); returns how many puts were
/// dropped because their deadline had passed at `now`.
pub(crate) fn parts(
    state: &Sharded,
    workers: usize,
    now: u64,
    parts: usize,
    read: &ReadPart<'_>,
) -> u64 {
    let shards = state.shard_count();
    let workers = workers.max(1);
    let mut expired = 0;
    // Each round's chunks, by part then shard; emptied and used again by the next round, so
    // that only the first round's copies touch fresh memory (a page fault per 4 KiB).
    let mut read_parts: Vec<Vec<ForShard>> = Vec::new();
    let per_round = workers * PARTS_PER_WORKER;
    for first in (0..parts).step_by(per_round) {
        let round = first..(first + per_round).min(parts);
        let round_parts = round.len();
        read_parts.resize_with(round_parts, || {
            (0..shards).map(|_| (Chunk::default(), 0)).collect()
        });
        // Pass 1: a worker per part, each part filed by shard.
        std::thread::scope(|s| {
            for (part, by_shard) in round.zip(read_parts.iter_mut()) {
                s.spawn(move || {
                    read(part, &mut |op| {
                        let (chunk, inserts) = &mut by_shard[state.shard_index(op.key())];
                        chunk.push(op);
                        if let OpRef::Put { expiry, .. } = op {
                            *inserts += usize::from(expiry.deadline(now).is_none_or(|d| d > now));
                        }
                    });
                });
            }
        });
        // Pass 2: shards, each filled whole by one worker.
        let sizing = if first == 0 {
            Sizing::First {
                parts,
                read: round_parts,
            }
        } else {
            Sizing::Round
        };
        let next = AtomicUsize::new(0);
        let filed = &read_parts;
        expired += std::thread::scope(|s| {
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
            chunk.clear();
            *inserts = 0;
        }
    }
    state.publish_all();
    expired
}

/// How a round sizes a shard's table before filling it.
#[derive(Debug, Clone, Copy)]
enum Sizing {
    /// The first round of `parts`, which read `read` of them: size the table for the whole
    /// load at once, from this round's share. Growing it in a later round would rehash every
    /// entry already in it, a cache miss each (measured: a sixth of a load sized round by
    /// round). The estimate is lowered by four standard deviations, so that a table is
    /// almost never made larger than inserting one by one would make it (tables never
    /// shrink); a shard over it grows once, at its end.
    First { parts: usize, read: usize },
    /// A later round: room for this round's inserts, if it lacks it.
    Round,
}

impl Sizing {
    /// The entries to reserve room for, given `inserts` of this round.
    fn reserve(self, inserts: usize) -> usize {
        match self {
            Sizing::First { parts, read } if parts > read => {
                let estimate = inserts.saturating_mul(parts) / read.max(1);
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
    let mut expired = 0;
    for (chunk, _) in chunks {
        chunk.for_each(|op| {
            if table.apply(op, now) == Change::Expired {
                expired += 1;
            }
        });
    }
    expired
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_core::{Expiry, IndexKind};
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
                let expired = super::parts(&loaded, workers, 100, parts.len(), &read);
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
        assert_eq!(loaded.load_parts(100, parts.len(), &read), expected_expired);
        assert_eq!(all(&loaded), all(&sequential));
    }

    /// The first round sizes a table for the whole load, from its share, a little under
    /// the estimate; a load read in one round sizes it exactly; later rounds add only what
    /// they lack.
    #[test]
    fn the_first_round_sizes_a_table_for_the_whole_load() {
        let first = Sizing::First { parts: 8, read: 2 };
        assert_eq!(first.reserve(1_000), 4_000 - 4 * 63);
        assert_eq!(first.reserve(0), 0);
        assert_eq!(
            first.reserve(1),
            1,
            "never below what the round itself inserts"
        );
        assert_eq!(Sizing::First { parts: 2, read: 2 }.reserve(1_000), 1_000);
        assert_eq!(Sizing::Round.reserve(1_000), 1_000);
    }
}
