//! Loading a snapshot's parts at open, over one thread per core.
//!
//! A snapshot is read part by part, and its parts are independent, so they are read at once.
//! Loading is two passes, each spread over the workers:
//!
//! 1. each worker reads whole parts: it decodes each operation, builds its entry (the
//!    allocation and copy every entry needs anyway) and files it under its shard, in order;
//! 2. each worker takes whole shards: it sizes the shard's table once for the entries filed
//!    under it (the counts are known now), then inserts them, part 0's first.
//!
//! So no table grows step by step, no shard's lock is taken per operation, and a shard's
//! table is filled while it is warm in cache. Within a shard, operations are applied in the
//! order of their parts and, within a part, in the order read: the state is the one applying
//! the parts one after another gives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use kv_core::{Change, Entry, OpRef};
use kv_durable::ReadPart;

use crate::sharded::Sharded;

/// One operation of a part, ready to be applied to its shard.
enum Loaded {
    /// A put: the entry to insert (its deadline may have passed: see `apply`).
    Put(Entry),
    /// A delete of this key (a snapshot holds none, but a part may).
    Delete(Box<[u8]>),
}

impl Loaded {
    fn new(op: OpRef<'_>, now: u64) -> Self {
        match op {
            OpRef::Put { key, value, expiry } => {
                Loaded::Put(Entry::new(key, value, expiry.deadline(now)))
            }
            OpRef::Delete { key } => Loaded::Delete(key.into()),
        }
    }
}

/// The operations of one part, by shard, in the order read.
type ByShard = Vec<Vec<Loaded>>;

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
    let workers = workers.clamp(1, parts.max(1));
    // Pass 1: parts, in any order, each read whole by one worker.
    let next = AtomicUsize::new(0);
    let mut read_parts: Vec<(usize, ByShard)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let next = &next;
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let part = next.fetch_add(1, Ordering::Relaxed);
                        if part >= parts {
                            return done;
                        }
                        let mut by_shard: ByShard = (0..shards).map(|_| Vec::new()).collect();
                        read(part, &mut |op| {
                            by_shard[state.shard_index(op.key())].push(Loaded::new(op, now));
                        });
                        done.push((part, by_shard));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a snapshot loader panicked"))
            .collect()
    });
    read_parts.sort_unstable_by_key(|(part, _)| *part);
    // Each shard's operations, part by part in part order.
    let mut by_shard: Vec<Vec<Vec<Loaded>>> = (0..shards)
        .map(|_| Vec::with_capacity(read_parts.len()))
        .collect();
    for (_, part) in read_parts {
        for (shard, loaded) in part.into_iter().enumerate() {
            by_shard[shard].push(loaded);
        }
    }
    // Pass 2: shards, each filled whole by one worker.
    let queue = Mutex::new(by_shard.into_iter().enumerate());
    let expired = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.min(shards))
            .map(|_| {
                let queue = &queue;
                s.spawn(move || {
                    let mut expired = 0;
                    loop {
                        let taken = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                        let Some((shard, parts)) = taken else {
                            return expired;
                        };
                        expired += fill(state, shard, parts, now);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a snapshot loader panicked"))
            .sum()
    });
    state.publish_all();
    expired
}

/// Applies a shard's operations, part by part, after sizing its table for them; returns how
/// many puts had expired.
fn fill(state: &Sharded, shard: usize, parts: Vec<Vec<Loaded>>, now: u64) -> u64 {
    let count = parts.iter().map(Vec::len).sum();
    let mut table = state.shard(shard).state.write();
    table.reserve(count);
    let mut expired = 0;
    for loaded in parts.into_iter().flatten() {
        match loaded {
            // What `State::apply` does with a put whose deadline has passed.
            Loaded::Put(entry) if entry.deadline().is_some_and(|d| d <= now) => {
                table.remove(entry.key());
                expired += 1;
            }
            Loaded::Put(entry) => {
                table.insert(entry);
            }
            Loaded::Delete(key) => {
                table.remove(&key);
            }
        }
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
}
