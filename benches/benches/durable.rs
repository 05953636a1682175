//! The durable store on workloads W1 (durable puts, 1/8/64 writers), W2 (buffered puts, 1
//! and 2 writers) and W4 (recovery) of the workload spec, beside L1 measured in the same run.
//!
//! `cargo bench -p kv-benches --bench durable`. Latency percentiles and records per fsync,
//! which criterion does not report, are printed after each W1 run.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kv_core::{IndexKind, State};
use kv_durable::{Durability, Durable, Options};
use kv_wal::{Position, WalConfig};
use kv_workloads::machine::fsync_loop;
use kv_workloads::spec;
use parking_lot::RwLock;

type Store = Durable<RwLock<State>>;

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory beside the build")
}

fn open(dir: &Path, durability: Durability) -> Store {
    let options = Options {
        durability,
        ..Options::default()
    };
    let state = RwLock::new(State::new(IndexKind::Hash));
    Durable::open(WalConfig::new(dir), Position::START, state, options)
        .expect("open the store")
        .0
}

/// Runs `total` puts spread over `writers` threads; returns the wall time.
fn puts(store: &Store, writers: u64, total: u64, seed: u64) -> Duration {
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let store = store.clone();
            s.spawn(move || {
                let puts = spec::random_puts(seed * 1000 + w + 1, spec::KEYS);
                for (key, value) in puts.take((total / writers) as usize) {
                    store.put(key.to_vec(), value.to_vec()).expect("put");
                }
            });
        }
    });
    started.elapsed()
}

fn w1_durable_put(c: &mut Criterion) {
    let mut group = c.benchmark_group("W1_durable_put");
    let dir = bench_dir();
    group.throughput(Throughput::Elements(1));
    group.bench_function("L1_fdatasync_growing", |b| {
        b.iter_custom(|iters| fsync_loop(dir.path(), iters, false))
    });
    for writers in spec::W1_WRITERS {
        let dir = bench_dir();
        let store = open(dir.path(), Durability::Sync);
        let mut round = 0;
        group.bench_function(format!("{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                round += 1;
                puts(&store, writers, iters.max(writers), round)
            })
        });
        let stats = store.stats();
        eprintln!(
            "W1 {writers} writers: p50 {:?}, p99 {:?}, {:.1} records per fsync",
            stats.latency_p50,
            stats.latency_p99,
            stats.records_per_fsync()
        );
    }
    group.finish();
}

fn w2_buffered_put(c: &mut Criterion) {
    let total: u64 = if kv_benches::quick() {
        spec::W2_PUTS / 10
    } else {
        spec::W2_PUTS
    };
    let mut group = c.benchmark_group("W2_buffered_put");
    group.throughput(Throughput::Elements(total));
    group.sample_size(10);
    for writers in spec::W2_WRITERS {
        group.bench_function(format!("{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for round in 0..iters {
                    let dir = bench_dir();
                    let store = open(dir.path(), Durability::None);
                    let started = Instant::now();
                    puts(&store, writers, total, round);
                    store.sync().expect("sync");
                    elapsed += started.elapsed();
                }
                elapsed
            })
        });
    }
    group.finish();
}

fn w4_recovery(c: &mut Criterion) {
    let keys: u64 = if kv_benches::quick() {
        spec::KEYS / 10
    } else {
        spec::KEYS
    };
    let mut group = c.benchmark_group("W4_recovery");
    group.sample_size(10);
    for writes_per_key in spec::W4_PUTS_PER_KEY {
        let dir = bench_dir();
        let store = open(dir.path(), Durability::None);
        for round in 0..writes_per_key {
            for (key, value) in spec::sequential_puts(keys, round) {
                store.put(key.to_vec(), value.to_vec()).expect("put");
            }
        }
        store.close().expect("close");
        let records = keys * writes_per_key;
        group.throughput(Throughput::Elements(records));
        group.bench_function(format!("{keys}_keys_x{writes_per_key}"), |b| {
            b.iter(|| {
                let store = open(dir.path(), Durability::None);
                assert_eq!(store.sink().read().len() as u64, keys);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, w1_durable_put, w2_buffered_put, w4_recovery);
criterion_main!(benches);
