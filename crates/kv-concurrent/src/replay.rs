//! Replay at open, spread over threads by parts of the shards.
//!
//! Recovery reads the log on one thread; applying its operations (a hash-table insert and an
//! allocation each, mostly cache misses) costs several times more than reading them. So the
//! reading thread copies each operation into a chunk kept for the key's part (a run of
//! neighbouring shards), and hands a full chunk to the worker that owns that part. A worker
//! applies a whole chunk under the locks of its part, so the part's tables stay warm in
//! cache for the chunk's length instead of every operation landing in another table. A key
//! always goes to the same shard, part and worker, and a worker applies its chunks in the
//! order they were filled, so each key's operations are applied in log order: the final
//! state is the one a sequential replay gives.

use crossbeam_channel::{bounded, Sender};
use std::ops::DerefMut;

use kv_core::{Expiry, OpRef, State};
use kv_durable::DriveReplay;

use crate::ahead::Ahead;
use crate::sharded::Sharded;

/// Bytes of operations held in chunks at once, over all shards; a chunk is handed to its
/// worker when it reaches its share.
const BUFFERED_BYTES: usize = 8 << 20;
/// Bounds on one chunk's size: big enough to amortise the lock and the hand-off, small enough
/// that few parts' chunks hold the whole buffer.
const CHUNK_BYTES: (usize, usize) = (16 << 10, 256 << 10);
/// The most parts the shards are replayed in: a part is a run of neighbouring shards with
/// one chunk, applied under all their locks. A chunk per shard would make chunks smaller
/// as shards grow in number, and their hand-offs more: with 256 shards instead of 32, W4
/// replayed 3.1-3.5 M records/s instead of 3.9-4.0 M (and 4.4-5.0 M instead of 6.3-7.1 M
/// with four puts a key).
const MAX_PARTS: usize = 32;

const PUT: u8 = 0;
const PUT_RELATIVE: u8 = 1;
const PUT_ABSOLUTE: u8 = 2;
const DELETE: u8 = 3;

/// Operations copied out of the log's buffer: `tag, key hash u64, [expiry u64], key len
/// u32, value len u32, key, value` each. The hash (by `KeyHasher::shared`) is the one the
/// reader picked the key's shard with: the worker that applies the operation looks the key
/// up with it instead of hashing it again.
#[derive(Debug, Default)]
pub(crate) struct Chunk(Vec<u8>);

impl Chunk {
    /// A chunk that holds `bytes` before it grows (a full chunk is replaced by a new one of
    /// its size, so the reader does not regrow every chunk from nothing).
    fn with_capacity(bytes: usize) -> Self {
        Chunk(Vec::with_capacity(bytes + bytes / 8))
    }

    /// Empties the chunk, keeping at most `bytes` of its memory.
    pub(crate) fn clear_keeping(&mut self, bytes: usize) {
        self.0.clear();
        self.0.shrink_to(bytes);
    }

    /// The bytes its operations take.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds `op`, whose key hashes to `hash`.
    pub(crate) fn push(&mut self, hash: u64, op: OpRef<'_>) {
        let (tag, expiry, key, value): (u8, Option<u64>, &[u8], &[u8]) = match op {
            OpRef::Put { key, value, expiry } => match expiry {
                Expiry::Never => (PUT, None, key, value),
                Expiry::AfterMillis(ms) => (PUT_RELATIVE, Some(ms), key, value),
                Expiry::AtUnixMillis(at) => (PUT_ABSOLUTE, Some(at), key, value),
            },
            OpRef::Delete { key } => (DELETE, None, key, &[]),
        };
        self.0.push(tag);
        self.0.extend_from_slice(&hash.to_le_bytes());
        if let Some(expiry) = expiry {
            self.0.extend_from_slice(&expiry.to_le_bytes());
        }
        self.0.extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.0
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.0.extend_from_slice(key);
        self.0.extend_from_slice(value);
    }

    /// Applies the chunk's operations, in order, to `shard`; returns how many puts had
    /// expired.
    pub(crate) fn apply(&self, mut shard: &mut State, now: u64) -> u64 {
        self.apply_to(std::slice::from_mut(&mut shard), |_| 0, now)
    }

    /// Applies the chunk's operations, in order, each to `states[which(hash)]`; returns
    /// how many puts had expired.
    fn apply_to<S: DerefMut<Target = State>>(
        &self,
        states: &mut [S],
        which: impl Fn(u64) -> usize,
        now: u64,
    ) -> u64 {
        let mut expired = 0;
        let mut ahead = Ahead::new();
        self.for_each(|hash, op| expired += ahead.push(states, which(hash), hash, op, now));
        expired + ahead.finish(states, now)
    }

    /// Calls `f` with every operation and its key's hash, in the order they were pushed.
    pub(crate) fn for_each<'a>(&'a self, mut f: impl FnMut(u64, OpRef<'a>)) {
        let mut rest = &self.0[..];
        while let Some((&tag, tail)) = rest.split_first() {
            rest = tail;
            let hash = u64::from_le_bytes(take(&mut rest));
            let timed = tag == PUT_RELATIVE || tag == PUT_ABSOLUTE;
            let expiry = if timed {
                u64::from_le_bytes(take(&mut rest))
            } else {
                0
            };
            let key_len = u32::from_le_bytes(take(&mut rest)) as usize;
            let value_len = u32::from_le_bytes(take(&mut rest)) as usize;
            let (key, tail) = rest.split_at(key_len);
            let (value, tail) = tail.split_at(value_len);
            rest = tail;
            f(
                hash,
                match tag {
                    DELETE => OpRef::Delete { key },
                    PUT_RELATIVE => OpRef::Put {
                        key,
                        value,
                        expiry: Expiry::AfterMillis(expiry),
                    },
                    PUT_ABSOLUTE => OpRef::Put {
                        key,
                        value,
                        expiry: Expiry::AtUnixMillis(expiry),
                    },
                    _ => OpRef::Put {
                        key,
                        value,
                        expiry: Expiry::Never,
                    },
                },
            );
        }
    }
}

/// The next `N` bytes of `rest`, which the chunk's own encoding guarantees are there.
fn take<const N: usize>(rest: &mut &[u8]) -> [u8; N] {
    let (head, tail) = rest.split_at(N);
    *rest = tail;
    head.try_into().expect("N bytes")
}

/// Replays with `workers` threads (at least two) applying, the calling thread reading.
pub(crate) fn parallel(
    state: &Sharded,
    workers: usize,
    now: u64,
    drive: &mut DriveReplay<'_>,
) -> u64 {
    let shards = state.shard_count();
    // Both are powers of two: a part is `per_part` neighbouring shards.
    let parts = shards.min(MAX_PARTS);
    let per_part = shards / parts;
    let chunk_bytes = (BUFFERED_BYTES / parts).clamp(CHUNK_BYTES.0, CHUNK_BYTES.1);
    // Enough queued chunks that the reader can run a buffer's worth ahead of a worker.
    let queued = (parts / workers).max(1) * 2;
    std::thread::scope(|s| {
        let (queues, handles): (Vec<Sender<(usize, Chunk)>>, Vec<_>) = (0..workers)
            .map(|_| {
                let (queue, chunks) = bounded::<(usize, Chunk)>(queued);
                let worker = s.spawn(move || {
                    let mut expired = 0;
                    for (part, chunk) in chunks {
                        let first = part * per_part;
                        let mut states: Vec<_> = (first..first + per_part)
                            .map(|shard| state.shard(shard).state.write())
                            .collect();
                        let which = |hash| state.shard_of_hash(hash) - first;
                        expired += chunk.apply_to(&mut states, which, now);
                    }
                    expired
                });
                (queue, worker)
            })
            .unzip();
        let mut chunks: Vec<Chunk> = (0..parts).map(|_| Chunk::default()).collect();
        drive(&mut |op| {
            let hash = state.hash(op.key());
            let part = state.shard_of_hash(hash) / per_part;
            let chunk = &mut chunks[part];
            chunk.push(hash, op);
            if chunk.0.len() >= chunk_bytes {
                let full = std::mem::replace(chunk, Chunk::with_capacity(chunk_bytes));
                // A worker only stops early by panicking, which the join below reports.
                let _ = queues[part % workers].send((part, full));
            }
        });
        for (part, chunk) in chunks.into_iter().enumerate() {
            if !chunk.0.is_empty() {
                let _ = queues[part % workers].send((part, chunk));
            }
        }
        drop(queues);
        let expired = handles
            .into_iter()
            .map(|h| h.join().expect("a replay worker panicked"))
            .sum();
        state.publish_all();
        expired
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_give_back_what_was_pushed() {
        let ops = [
            OpRef::Put {
                key: b"a",
                value: b"1",
                expiry: Expiry::Never,
            },
            OpRef::Put {
                key: b"b",
                value: b"",
                expiry: Expiry::AfterMillis(5),
            },
            OpRef::Delete { key: b"a" },
            OpRef::Put {
                key: b"",
                value: b"xyz",
                expiry: Expiry::AtUnixMillis(u64::MAX),
            },
        ];
        let mut chunk = Chunk::default();
        ops.iter()
            .zip(1u64..)
            .for_each(|(op, hash)| chunk.push(hash << 60 | hash, *op));
        let mut back = Vec::new();
        chunk.for_each(|hash, op| back.push(format!("{hash:x} {op:?}")));
        let pushed = ops
            .iter()
            .zip(1u64..)
            .map(|(op, hash)| format!("{:x} {op:?}", hash << 60 | hash));
        assert_eq!(back, pushed.collect::<Vec<_>>());
    }

    #[test]
    fn a_parallel_replay_ends_where_a_sequential_one_does() {
        use kv_core::{Change, IndexKind};
        use kv_durable::Sink;

        // Many operations per key, so that order matters; more than a chunk per worker.
        let ops: Vec<(Vec<u8>, Option<Vec<u8>>, Expiry)> = (0..60_000u32)
            .map(|i| {
                let key = format!("key{}", i % 997).into_bytes();
                match i % 7 {
                    0 => (key, None, Expiry::Never),
                    1 => (key, Some(vec![1; 300]), Expiry::AtUnixMillis(50)),
                    _ => (key, Some(i.to_le_bytes().repeat(20)), Expiry::Never),
                }
            })
            .collect();
        fn as_op(op: &(Vec<u8>, Option<Vec<u8>>, Expiry)) -> OpRef<'_> {
            match op {
                (key, Some(value), expiry) => OpRef::Put {
                    key,
                    value,
                    expiry: *expiry,
                },
                (key, None, _) => OpRef::Delete { key },
            }
        }
        // Every key's value and deadline, by key (the hash index has no order).
        let all = |s: &Sharded| -> Vec<_> {
            (0..997)
                .map(|k| {
                    let key = format!("key{k}").into_bytes();
                    s.with_entry(&key, 100, |e| (e.value().to_vec(), e.deadline()))
                })
                .collect()
        };
        // Fewer shards than parts (a part a shard), and more (several shards a part).
        let kinds = [IndexKind::Ordered, IndexKind::Hash];
        for (kind, shards) in kinds.into_iter().flat_map(|k| [(k, 8), (k, 4 * MAX_PARTS)]) {
            let sequential = Sharded::new(kind, shards);
            let mut expected_expired = 0;
            for op in &ops {
                expected_expired += u64::from(sequential.apply(as_op(op), 100) == Change::Expired);
            }
            for workers in [2, 3, 8] {
                let parallel_state = Sharded::new(kind, shards);
                let expired = parallel(&parallel_state, workers, 100, &mut |apply| {
                    ops.iter().for_each(|op| apply(as_op(op)));
                });
                assert_eq!(expired, expected_expired);
                assert_eq!(parallel_state.len(), sequential.len());
                assert_eq!(parallel_state.memory_used(), sequential.memory_used());
                assert_eq!(
                    all(&parallel_state),
                    all(&sequential),
                    "{kind:?}, {shards} shards, {workers} workers"
                );
            }
        }
    }
}
