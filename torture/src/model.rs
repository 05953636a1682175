//! The operations a writer thread performs, and the model that checks what survived.

use std::collections::BTreeMap;
use std::time::Duration;

use kv_store::{KvStore, WriteBatch};

/// A small, seeded generator (xorshift64*), so parent and child draw the same operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Keys per thread: small, so that puts overwrite and deletes hit.
const KEYS: u64 = 300;

/// One operation of a thread's sequence.
#[derive(Debug, Clone)]
pub enum Op {
    Put(u64, Vec<u8>),
    PutTtl(u64, Vec<u8>),
    Delete(u64),
    Batch(Vec<(u64, Option<Vec<u8>>)>),
}

/// The operation sequence of one writer thread of one run.
#[derive(Debug, Clone)]
pub struct Workload {
    seed: u64,
    run: u64,
    thread: u64,
}

impl Workload {
    /// Thread `thread` of run `run` started with `seed`.
    pub fn new(seed: u64, run: u64, thread: u64) -> Self {
        Workload { seed, run, thread }
    }

    fn key(&self, k: u64) -> Vec<u8> {
        format!("r{:04}t{}k{k:03}", self.run, self.thread).into_bytes()
    }

    fn prefix(&self) -> Vec<u8> {
        format!("r{:04}t{}k", self.run, self.thread).into_bytes()
    }

    /// Operation `n` of the sequence.
    pub fn op(&self, n: u64) -> Op {
        let mut rng =
            Rng::new(self.seed ^ (self.thread << 56) ^ n.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let value = |rng: &mut Rng| {
            let len = rng.below(200) as usize;
            let byte = rng.next() as u8;
            let mut value = n.to_le_bytes().to_vec();
            value.resize(8 + len, byte);
            value
        };
        match rng.below(10) {
            0..=4 => Op::Put(rng.below(KEYS), value(&mut rng)),
            5 => Op::PutTtl(rng.below(KEYS), value(&mut rng)),
            6 | 7 => Op::Delete(rng.below(KEYS)),
            _ => Op::Batch(
                (0..1 + rng.below(6))
                    .map(|_| {
                        let key = rng.below(KEYS);
                        let value = (rng.below(4) != 0).then(|| value(&mut rng));
                        (key, value)
                    })
                    .collect(),
            ),
        }
    }
}

impl Workload {
    /// Performs operation `n` on `store` (panics on failure: the child has no other way to
    /// report one, and the parent sees it die without being killed).
    pub fn perform(&self, n: u64, store: &KvStore) {
        match self.op(n) {
            Op::Put(k, v) => store.put(self.key(k), v).expect("put"),
            Op::PutTtl(k, v) => store
                .put_with_ttl(self.key(k), v, Duration::from_secs(3600))
                .expect("put with ttl"),
            Op::Delete(k) => store.delete(self.key(k)).expect("delete"),
            Op::Batch(ops) => {
                let mut batch = WriteBatch::new();
                for (k, v) in ops {
                    match v {
                        Some(v) => batch.put(self.key(k), v),
                        None => batch.delete(self.key(k)),
                    };
                }
                store.write(batch).expect("batch");
            }
        }
    }

    /// Applies operation `n` to the model.
    fn apply(&self, n: u64, model: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
        match self.op(n) {
            Op::Put(k, v) | Op::PutTtl(k, v) => {
                model.insert(self.key(k), v);
            }
            Op::Delete(k) => {
                model.remove(&self.key(k));
            }
            Op::Batch(ops) => {
                for (k, v) in ops {
                    match v {
                        Some(v) => model.insert(self.key(k), v),
                        None => model.remove(&self.key(k)),
                    };
                }
            }
        }
    }

    fn found(&self, store: &KvStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
        store
            .scan_prefix(self.prefix())
            .expect("the ordered index")
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    /// How many of this thread's operations the store holds: the `n` such that its keys equal
    /// the model after operations `0..n`, with every acknowledged one (up to `last`) among
    /// them. An error names what broke.
    pub fn held(&self, store: &KvStore, last: Option<u64>) -> Result<u64, String> {
        let found = self.found(store);
        let first = last.map_or(0, |n| n + 1);
        let mut model = BTreeMap::new();
        for n in 0..first {
            self.apply(n, &mut model);
        }
        // The child may have finished a few operations it had no time to acknowledge.
        for extra in 0..=4 {
            if model == found {
                return Ok(first + extra);
            }
            self.apply(first + extra, &mut model);
        }
        let lost = model_diff(&found, first, self);
        Err(format!(
            "the store holds no prefix of the operations that includes the {first} acknowledged ones ({lost})"
        ))
    }

    /// Checks the store holds exactly the state after operations `0..held`.
    pub fn check_exactly(&self, store: &KvStore, held: u64) -> Result<(), String> {
        let mut model = BTreeMap::new();
        for n in 0..held {
            self.apply(n, &mut model);
        }
        if self.found(store) == model {
            Ok(())
        } else {
            Err(format!(
                "run {} thread {} no longer holds its {held} operations",
                self.run, self.thread
            ))
        }
    }
}

/// A short description of how `found` differs from the model after `ops` operations.
fn model_diff(found: &BTreeMap<Vec<u8>, Vec<u8>>, ops: u64, workload: &Workload) -> String {
    let mut model = BTreeMap::new();
    for n in 0..ops {
        workload.apply(n, &mut model);
    }
    let missing = model.keys().filter(|k| !found.contains_key(*k)).count();
    let unexpected = found.keys().filter(|k| !model.contains_key(*k)).count();
    let different = model
        .iter()
        .filter(|(k, v)| found.get(*k).is_some_and(|f| f != *v))
        .count();
    format!("{missing} keys missing, {unexpected} unexpected, {different} with other values")
}
