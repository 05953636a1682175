//! The workloads W1-W8 of `workloads.md`: their sizes, thread counts and store options, and
//! the operations each thread performs, as streams both drivers consume.
//!
//! A stream is a thread's whole sequence, endless where the spec fixes no count: a driver
//! `take`s what its run needs. Seeds are the driver's: the same seed gives the same
//! operations, so a driver keeps its threads apart by giving each its own.

use kv_store::{Durability, IndexKind, KvStore, Options, WriteBatch, WriteOptions};

use crate::data::{key_for, value_for, KeyGen, KEY_LEN, VALUE_LEN};

/// The keys W3-W8 load (and W4 writes), and the key space W1's and W2's puts draw from.
pub const KEYS: u64 = 1_000_000;
/// W1's writer counts.
pub const W1_WRITERS: [u64; 3] = [1, 8, 64];
/// W2's puts.
pub const W2_PUTS: u64 = 1_000_000;
/// W2's writer counts.
pub const W2_WRITERS: [u64; 2] = [1, 2];
/// W3's gets.
pub const W3_GETS: u64 = 2_000_000;
/// W3's reader counts.
pub const W3_READERS: [u64; 2] = [1, 2];
/// The keys of one `get_many` in W3's batched line (`W3-many`): W3's gets of one reader,
/// looked up this many at a time.
pub const W3_BATCH: usize = 32;
/// W4's logs: one put per key, and four.
pub const W4_PUTS_PER_KEY: [u64; 2] = [1, 4];
/// W6's threads.
pub const W6_THREADS: u64 = 4;
/// W7's writers (each running W1's durable puts).
pub const W7_WRITERS: u64 = 2;
/// W7 writes every key this many times, so that the log is this many times the live data.
pub const W7_PUTS_PER_KEY: u64 = 4;
/// The keys one W8 scan reads.
pub const W8_SCAN_LEN: usize = 100;
/// Loading writes this many puts in one atomic batch.
pub const LOAD_BATCH: usize = 1_000;

/// A put of the workloads: a key and its value.
pub type Put = ([u8; KEY_LEN], [u8; VALUE_LEN]);

/// One workload of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Durable puts: each returns once its record is on stable storage.
    W1,
    /// Buffered puts, one sync at the end.
    W2,
    /// Random gets, 90% hits.
    W3,
    /// Recovery: opening a directory whose log holds one, or four, puts per key.
    W4,
    /// Memory: the resident bytes a key costs above its 116 payload bytes.
    W5,
    /// Mixed: 90% gets, 10% durable puts.
    W6,
    /// Compaction while two writers run W1.
    W7,
    /// Range scans of 100 keys from random starts.
    W8,
}

impl Workload {
    /// Its name in the spec: "W1".."W8".
    pub fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
            Workload::W6 => "W6",
            Workload::W7 => "W7",
            Workload::W8 => "W8",
        }
    }

    /// The store options the workload runs with: the durability and index the spec asks
    /// for, and no automatic compaction (it would rewrite W4's log before it is measured,
    /// race W7's own compaction, and land in the middle of any other workload).
    pub fn options(self) -> Options {
        let durability = match self {
            Workload::W1 | Workload::W6 | Workload::W7 => Durability::Sync,
            _ => Durability::None,
        };
        let index = match self {
            Workload::W8 => IndexKind::Ordered,
            _ => IndexKind::Hash,
        };
        Options::default()
            .durability(durability)
            .index(index)
            .auto_compact(None)
    }
}

/// W1's and W2's puts, and W7's writers': keys drawn at random from `0..space` by
/// `KeyGen::new(seed)`, values numbered from 0.
pub fn random_puts(seed: u64, space: u64) -> impl Iterator<Item = Put> {
    let mut keys = KeyGen::new(seed);
    (0..).map(move |n| (keys.key(space), value_for(n)))
}

/// Keys `0..keys` in order, with values numbered from `round`: what W3-W8 load (round 0),
/// and round `round` of W4's and W7's logs that write every key several times.
pub fn sequential_puts(keys: u64, round: u64) -> impl Iterator<Item = Put> {
    (0..keys).map(move |n| (key_for(n), value_for(n + round)))
}

/// W3's gets over a store holding keys `0..keys`: drawn from a space a ninth larger, so that
/// 90% of them hit.
pub fn gets(seed: u64, keys: u64) -> impl Iterator<Item = [u8; KEY_LEN]> {
    let space = keys * 10 / 9;
    let mut draw = KeyGen::new(seed);
    std::iter::repeat_with(move || draw.key(space))
}

/// One operation of W6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mixed {
    /// A get of this key.
    Get([u8; KEY_LEN]),
    /// A durable put.
    Put([u8; KEY_LEN], [u8; VALUE_LEN]),
}

/// W6's operations over keys `0..keys`: one draw picks each operation's key, and a tenth of
/// the draws are puts (values numbered by the operation's place in the stream).
pub fn mixed(seed: u64, keys: u64) -> impl Iterator<Item = Mixed> {
    let mut draw = KeyGen::new(seed);
    (0..).map(move |i| {
        let r = draw.next_u64();
        let key = key_for(r % keys);
        if r.is_multiple_of(10) {
            Mixed::Put(key, value_for(i))
        } else {
            Mixed::Get(key)
        }
    })
}

/// W8's scan starts over keys `0..keys`, drawn at random.
pub fn scan_starts(seed: u64, keys: u64) -> impl Iterator<Item = [u8; KEY_LEN]> {
    let mut draw = KeyGen::new(seed);
    std::iter::repeat_with(move || draw.key(keys))
}

/// Writes `puts` into `store` in atomic batches of [`LOAD_BATCH`], each with `options`.
///
/// # Errors
///
/// The first write that fails.
pub fn load(
    store: &KvStore,
    puts: impl IntoIterator<Item = Put>,
    options: WriteOptions,
) -> Result<(), kv_store::Error> {
    let mut puts = puts.into_iter().peekable();
    while puts.peek().is_some() {
        let mut batch = WriteBatch::new();
        for (key, value) in puts.by_ref().take(LOAD_BATCH) {
            batch.put(key.to_vec(), value.to_vec());
        }
        store.write_with(batch, options)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_of_w3s_gets_miss() {
        let keys = 9_000;
        let misses = gets(1, keys)
            .take(100_000)
            .filter(|key| key > &key_for(keys - 1))
            .count();
        assert!((9_000..11_000).contains(&misses), "{misses}");
    }

    #[test]
    fn a_tenth_of_w6s_operations_are_puts() {
        let puts = mixed(31, 1_000)
            .take(100_000)
            .filter(|op| matches!(op, Mixed::Put(..)))
            .count();
        assert!((9_000..11_000).contains(&puts), "{puts}");
    }

    #[test]
    fn loading_writes_every_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open_with(dir.path(), Workload::W3.options()).unwrap();
        load(&store, sequential_puts(2_500, 0), WriteOptions::default()).unwrap();
        assert_eq!(store.len(), 2_500);
        assert_eq!(store.get(key_for(2_499)).unwrap(), &value_for(2_499)[..]);
    }

    #[test]
    fn streams_depend_on_their_seed_only() {
        let a: Vec<_> = random_puts(7, KEYS).take(50).collect();
        assert_eq!(a, random_puts(7, KEYS).take(50).collect::<Vec<_>>());
        assert_ne!(a, random_puts(8, KEYS).take(50).collect::<Vec<_>>());
        assert_eq!(
            scan_starts(3, KEYS).take(50).collect::<Vec<_>>(),
            scan_starts(3, KEYS).take(50).collect::<Vec<_>>()
        );
    }
}
