//! The `KvStore` facade on workloads W3 (gets, 1 and 2 readers), W4 (recovery through the
//! sharded state), W5 (memory per key), W6 (mixed) and W8 (range scans) of the workload spec.
//!
//! `cargo bench -p kv-benches --bench store`. W5 is not a speed: its figure (resident bytes
//! per key above the 116 payload bytes) is printed, beside the load time criterion measures.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kv_benches::{key_for, value_for, KeyGen, KEY_LEN, VALUE_LEN};
use kv_store::{Durability, IndexKind, KvStore, Options, WriteBatch};

/// Keys loaded by W3-W8 (scaled down by `KV_BENCH_QUICK`).
fn key_count() -> u64 {
    if kv_benches::quick() {
        10_000
    } else {
        1_000_000
    }
}

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory beside the build")
}

fn open(dir: &std::path::Path, index: IndexKind, durability: Durability) -> KvStore {
    let options = Options::default().index(index).durability(durability);
    KvStore::open_with(dir, options).expect("open the store")
}

/// Loads keys `0..count` in batches of 1,000.
fn load(store: &KvStore, count: u64) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(1_000) {
        let mut batch = WriteBatch::new();
        for &n in chunk {
            batch.put(key_for(n).to_vec(), value_for(n).to_vec());
        }
        let unsynced = kv_store::WriteOptions {
            durability: Some(Durability::None),
        };
        store.write_with(batch, unsynced).expect("load");
    }
}

/// Resident set size of this process, from /proc.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn w5_memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("W5_memory");
    group.sample_size(10);
    let count = key_count();
    let dir = bench_dir();
    let before = resident_bytes();
    let store = open(dir.path(), IndexKind::Hash, Durability::None);
    load(&store, count);
    let after = resident_bytes();
    let per_key = (after - before) as f64 / count as f64;
    let accounted = store.stats().memory_used_bytes as f64 / count as f64;
    eprintln!(
        "W5 {count} keys: {per_key:.1} resident bytes per key, {:.1} above the {} payload bytes \
         (the store accounts {accounted:.1} per key)",
        per_key - (KEY_LEN + VALUE_LEN) as f64,
        KEY_LEN + VALUE_LEN
    );
    drop(store);
    group.bench_function("load_hash_index", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = bench_dir();
                let store = open(dir.path(), IndexKind::Hash, Durability::None);
                let started = Instant::now();
                load(&store, count);
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// `total` random gets over `readers` threads, 90% of them hits; returns the wall time.
fn gets(store: &KvStore, readers: u64, total: u64, seed: u64) -> Duration {
    // Drawing from 10/9 of the key space misses one time in ten.
    let space = key_count() * 10 / 9;
    let started = Instant::now();
    std::thread::scope(|s| {
        for r in 0..readers {
            let store = store.clone();
            s.spawn(move || {
                let mut keys = KeyGen::new(seed * 100 + r + 1);
                let mut hits = 0u64;
                for _ in 0..total / readers {
                    hits += u64::from(store.get(keys.key(space)).is_some());
                }
                std::hint::black_box(hits)
            });
        }
    });
    started.elapsed()
}

fn w3_get(c: &mut Criterion) {
    let mut group = c.benchmark_group("W3_get");
    group.throughput(Throughput::Elements(1));
    let dir = bench_dir();
    let store = open(dir.path(), IndexKind::Hash, Durability::None);
    load(&store, key_count());
    // A get follows at least two pointers no cache holds (the index slot, then the entry):
    // this limit, measured beside it, bounds one reader at 1 / (2 × L5).
    group.bench_function("L5_dependent_memory_access", |b| {
        b.iter_custom(kv_benches::dependent_access)
    });
    let mut round = 0;
    for readers in [1u64, 2] {
        group.bench_function(format!("{readers}_readers"), |b| {
            b.iter_custom(|iters| {
                round += 1;
                gets(&store, readers, iters.max(readers), round)
            })
        });
    }
    group.finish();
}

fn w4_recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("W4_recovery_store");
    group.sample_size(10);
    let count = key_count();
    let dir = bench_dir();
    {
        let store = open(dir.path(), IndexKind::Hash, Durability::None);
        load(&store, count);
        store.close().expect("close");
    }
    group.throughput(Throughput::Elements(count));
    group.bench_function("1M_puts", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let store = open(dir.path(), IndexKind::Hash, Durability::None);
                total += started.elapsed();
                assert_eq!(store.len() as u64, count);
                store.close().expect("close");
            }
            total
        })
    });
    group.finish();
}

fn w2_buffered_put(c: &mut Criterion) {
    let mut group = c.benchmark_group("W2_buffered_put_store");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    let puts = key_count();
    group.bench_function("1_writer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for round in 0..iters {
                let dir = bench_dir();
                let store = open(dir.path(), IndexKind::Hash, Durability::None);
                let mut keys = KeyGen::new(round + 1);
                let started = Instant::now();
                for n in 0..puts {
                    store
                        .put(keys.key(puts).to_vec(), value_for(n).to_vec())
                        .expect("put");
                }
                store.sync().expect("sync");
                total += started.elapsed() / puts as u32;
            }
            total
        })
    });
    group.finish();
}

fn w6_mixed(c: &mut Criterion) {
    let mut group = c.benchmark_group("W6_mixed");
    group.throughput(Throughput::Elements(1));
    let dir = bench_dir();
    let store = open(dir.path(), IndexKind::Hash, Durability::Sync);
    load(&store, key_count());
    let mut round = 0;
    group.bench_function("4_threads_90_get_10_durable_put", |b| {
        b.iter_custom(|iters| {
            round += 1;
            let per_thread = iters.max(4) / 4;
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..4u64 {
                    let store = store.clone();
                    s.spawn(move || {
                        let mut keys = KeyGen::new(round * 10 + t + 1);
                        for n in 0..per_thread {
                            let key = keys.key(key_count());
                            if keys.next_u64().is_multiple_of(10) {
                                store.put(key.to_vec(), value_for(n).to_vec()).expect("put");
                            } else {
                                std::hint::black_box(store.get(key));
                            }
                        }
                    });
                }
            });
            started.elapsed()
        })
    });
    let stats = store.stats();
    eprintln!(
        "W6 durable puts: p50 {} us, p99 {} us, {:.1} records per fsync",
        stats.commit_latency_p50_micros,
        stats.commit_latency_p99_micros,
        stats.records_per_fsync_ratio
    );
    group.finish();
}

fn w8_range_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("W8_range_scan");
    group.throughput(Throughput::Elements(1));
    let dir = bench_dir();
    let store = open(dir.path(), IndexKind::Ordered, Durability::None);
    let count = key_count();
    load(&store, count);
    let mut keys = KeyGen::new(8);
    group.bench_function("100_keys_from_random_start", |b| {
        b.iter(|| {
            let start = key_for(keys.next_u64() % count);
            let scanned = store
                .range(&start[..]..)
                .expect("ordered")
                .take(100)
                .count();
            std::hint::black_box(scanned)
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    w5_memory,
    w2_buffered_put,
    w3_get,
    w4_recovery,
    w6_mixed,
    w8_range_scan
);
criterion_main!(benches);
