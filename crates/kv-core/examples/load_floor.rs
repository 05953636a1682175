//! The floor under opening a store from a snapshot (issue 16's W4-snapshot): what building
//! 1,000,000 entries and inserting them into their shards' tables costs with nothing else
//! to do. The keys and values already lie in memory, one contiguous buffer per shard as a
//! snapshot laid out by shard holds them, and each table is sized once; there is no file to
//! read, no record to parse and no checksum.
//!
//! The first round runs in a fresh process, as an open does: every page the entries and
//! tables take comes new from the kernel, which zeroes it. Later rounds reuse the memory the
//! previous round freed, which an open never can.
//!
//! `cargo run --release -p kv-core --example load_floor [THREADS] [ROUNDS]`

use std::time::Instant;

use kv_core::{Entry, IndexKind, KeyHasher, State};

const KEYS: usize = 1_000_000;
const SHARDS: usize = 32;
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let threads = args
        .next()
        .transpose()
        .expect("THREADS: a number")
        .unwrap_or(2);
    let rounds = args
        .next()
        .transpose()
        .expect("ROUNDS: a number")
        .unwrap_or(3);
    let shards = laid_out_by_shard();
    for round in 0..rounds {
        let started = Instant::now();
        let states = load(&shards, threads.max(1));
        let took = started.elapsed().as_secs_f64();
        let loaded: usize = states.iter().map(State::len).sum();
        assert_eq!(loaded, KEYS, "every key loaded once");
        let memory = if round == 0 { "fresh" } else { "reused" };
        println!(
            "round {round} ({memory} memory): {threads} threads, {took:.3} s = {:.2} M entries/s",
            KEYS as f64 / took / 1e6
        );
    }
}

/// Per shard, one buffer of its keys, each followed by its value.
fn laid_out_by_shard() -> Vec<Vec<u8>> {
    let hasher = KeyHasher::shared();
    let mut shards = vec![Vec::new(); SHARDS];
    let value = [7u8; VALUE_LEN];
    // Distinct pseudo-random keys: a xorshift generator never repeats within its period.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..KEYS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("{x:016x}");
        let shard = &mut shards[hasher.hash(key.as_bytes()) as usize % SHARDS];
        shard.extend_from_slice(key.as_bytes());
        shard.extend_from_slice(&value);
    }
    shards
}

/// Builds every shard's state, `threads` of them at a time.
fn load(shards: &[Vec<u8>], threads: usize) -> Vec<State> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|first| {
                scope.spawn(move || {
                    shards
                        .iter()
                        .skip(first)
                        .step_by(threads)
                        .map(|bytes| {
                            let mut state = State::new(IndexKind::Hash);
                            state.reserve(bytes.len() / (KEY_LEN + VALUE_LEN));
                            for record in bytes.chunks_exact(KEY_LEN + VALUE_LEN) {
                                let (key, value) = record.split_at(KEY_LEN);
                                state.insert(Entry::new(key, value, None));
                            }
                            state
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a loader thread panicked"))
            .collect()
    })
}
