//! The floor under W2 (issue 16's "1,000,000 buffered puts/s for one writer"): what one
//! thread pays for W2's puts when nothing stands between it and the two things every put of
//! this design must do, with no lock, no log file, no group commit and no clock:
//!
//! - its record, encoded by the log's own encoder (`kv_wal::Encoded`, as a put's is),
//!   appended to a log held in memory, reserved for the whole run and so touched for the
//!   first time by the appends, as a segment's pages are;
//! - one allocation for the entry, inserted into a hash index.
//!
//! The index is either a plain `hashbrown` table of boxed entries (`table`) or this store's
//! own state machine, `kv_core::State` (`state`), whose entries also carry what TTLs and
//! memory accounting need. W2 through the store (`kv bench --workload W2 --threads 1`) is
//! held against them: what it costs beyond them is the store's layers (locks, stripes,
//! group commit, the log's files, clocks).
//!
//! `cargo run --release -p kv-workloads --example put_floor -- [table|state]`; run each in
//! a fresh process, as W2 is.

use std::hash::BuildHasher;
use std::time::Instant;

use hashbrown::hash_table::Entry as Slot;
use hashbrown::{DefaultHashBuilder, HashTable};
use kv_core::{Entry, IndexKind, State};
use kv_wal::{Compression, Encoded, Expiry};
use kv_workloads::{spec, KEY_LEN, VALUE_LEN};

fn main() {
    let index = std::env::args().nth(1).unwrap_or_else(|| "table".into());
    let puts: Vec<_> = spec::random_puts(1, spec::KEYS)
        .take(spec::W2_PUTS as usize)
        .collect();
    // Room for every record, with as much again for their headers.
    let mut log = Encoded::with_capacity(puts.len() * 2 * (KEY_LEN + VALUE_LEN));
    let append = |log: &mut Encoded, key: &[u8], value: &[u8]| {
        log.push_put(key, value, Expiry::Never, Compression::None);
    };
    let (took, keys) = match index.as_str() {
        "table" => {
            let hasher = DefaultHashBuilder::default();
            let mut table: HashTable<Box<[u8]>> = HashTable::new();
            let started = Instant::now();
            for (key, value) in &puts {
                append(&mut log, key, value);
                let entry: Box<[u8]> = [&key[..], &value[..]].concat().into_boxed_slice();
                let hash = hasher.hash_one(&key[..]);
                let is_key = |e: &[u8]| e[..KEY_LEN] == key[..];
                let rehash = |e: &[u8]| hasher.hash_one(&e[..KEY_LEN]);
                match table.entry(hash, |e| is_key(e), |e| rehash(e)) {
                    Slot::Occupied(mut slot) => *slot.get_mut() = entry,
                    Slot::Vacant(slot) => {
                        slot.insert(entry);
                    }
                }
            }
            (started.elapsed(), table.len())
        }
        "state" => {
            let mut state = State::new(IndexKind::Hash);
            let started = Instant::now();
            for (key, value) in &puts {
                append(&mut log, key, value);
                state.insert(Entry::new(key, value, None));
            }
            (started.elapsed(), state.len())
        }
        other => panic!("unknown index {other:?}: table or state"),
    };
    std::hint::black_box(&log);
    let seconds = took.as_secs_f64();
    println!(
        "{index}: {} puts ({keys} distinct keys, {} MB of log) in {seconds:.3} s = {:.2} M puts/s",
        puts.len(),
        log.as_bytes().len() / 1_000_000,
        puts.len() as f64 / seconds / 1e6
    );
}
