//! The `KvStore` facade on workloads W3 (gets, 1 and 2 readers), W4 (recovery through the
//! sharded state), W5 (memory per key), W6 (mixed) and W8 (range scans) of the workload spec.
//!
//! `cargo bench -p kv-benches --bench store`. W5 is not a speed: its figure (resident bytes
//! per key above the 116 payload bytes) is printed, beside the load time criterion measures.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kv_store::{Durability, KvStore, WriteOptions};
use kv_workloads::machine::dependent_access;
use kv_workloads::spec::{self, Mixed, Workload};
use kv_workloads::{resident_bytes, PlainMap, KEY_LEN, VALUE_LEN};

/// Keys loaded by W3-W8 (scaled down by `KV_BENCH_QUICK`).
fn key_count() -> u64 {
    if kv_benches::quick() {
        spec::KEYS / 100
    } else {
        spec::KEYS
    }
}

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory beside the build")
}

fn open(dir: &std::path::Path, workload: Workload) -> KvStore {
    KvStore::open_with(dir, workload.options()).expect("open the store")
}

/// Loads keys `0..count`, without a sync of their own.
fn load(store: &KvStore, count: u64) {
    let unsynced = WriteOptions {
        durability: Some(Durability::None),
    };
    spec::load(store, spec::sequential_puts(count, 0), unsynced).expect("load");
}

fn w5_memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("W5_memory");
    group.sample_size(10);
    let count = key_count();
    let dir = bench_dir();
    let before = resident_bytes().unwrap_or(0);
    let store = open(dir.path(), Workload::W5);
    load(&store, count);
    let after = resident_bytes().unwrap_or(0);
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
                let store = open(dir.path(), Workload::W5);
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
    let started = Instant::now();
    std::thread::scope(|s| {
        for r in 0..readers {
            let store = store.clone();
            s.spawn(move || {
                let mut hits = 0u64;
                let keys = spec::gets(seed * 100 + r + 1, key_count());
                for key in keys.take((total / readers) as usize) {
                    hits += u64::from(store.get(key).is_some());
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
    let store = open(dir.path(), Workload::W3);
    load(&store, key_count());
    // A get follows at least two pointers no cache holds (the index slot, then the entry):
    // this limit, measured beside it, bounds one reader at 1 / (2 × L5).
    group.bench_function("L5_dependent_memory_access", |b| {
        b.iter_custom(|steps| dependent_access(steps, kv_benches::chase_slots()))
    });
    // L6, W3's limit: the same gets of one reader from a plain `HashMap<Bytes, Bytes>` of
    // the same keys (dropped before the store is read).
    {
        let map = PlainMap::load(key_count());
        let mut round = 0;
        group.bench_function("L6_plain_hashmap_1_reader", |b| {
            b.iter_custom(|iters| {
                round += 1;
                map.gets(round * 100 + 1, iters.max(1)).0
            })
        });
    }
    // The same gets of one reader through `get_many`, W3_BATCH keys at a time.
    let mut round = 0;
    group.bench_function(format!("1_reader_get_many_{}", spec::W3_BATCH), |b| {
        b.iter_custom(|iters| {
            round += 1;
            let mut draws = spec::gets(round * 100 + 1, key_count()).take(iters as usize);
            let mut batch = Vec::with_capacity(spec::W3_BATCH);
            let mut hits = 0;
            let started = Instant::now();
            loop {
                batch.clear();
                batch.extend(draws.by_ref().take(spec::W3_BATCH));
                if batch.is_empty() {
                    break;
                }
                hits += store.get_many(&batch).iter().flatten().count();
            }
            std::hint::black_box(hits);
            started.elapsed()
        })
    });
    let mut round = 0;
    for readers in spec::W3_READERS {
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
        let store = open(dir.path(), Workload::W4);
        load(&store, count);
        store.close().expect("close");
    }
    group.throughput(Throughput::Elements(count));
    group.bench_function("1M_puts", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let store = open(dir.path(), Workload::W4);
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
                let store = open(dir.path(), Workload::W2);
                let started = Instant::now();
                for (key, value) in spec::random_puts(round + 1, puts).take(puts as usize) {
                    store.put(key.to_vec(), value.to_vec()).expect("put");
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
    let store = open(dir.path(), Workload::W6);
    load(&store, key_count());
    let mut round = 0;
    group.bench_function("4_threads_90_get_10_durable_put", |b| {
        b.iter_custom(|iters| {
            round += 1;
            let threads = spec::W6_THREADS;
            let per_thread = iters.max(threads) / threads;
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    let store = store.clone();
                    s.spawn(move || {
                        let ops = spec::mixed(round * 10 + t + 1, key_count());
                        for op in ops.take(per_thread as usize) {
                            match op {
                                Mixed::Put(key, value) => {
                                    store.put(key.to_vec(), value.to_vec()).expect("put");
                                }
                                Mixed::Get(key) => {
                                    std::hint::black_box(store.get(key));
                                }
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
    let store = open(dir.path(), Workload::W8);
    let count = key_count();
    load(&store, count);
    let mut starts = spec::scan_starts(8, count);
    group.bench_function("100_keys_from_random_start", |b| {
        b.iter(|| {
            let start = starts.next().expect("an endless stream");
            let scanned = store
                .range(&start[..]..)
                .expect("ordered")
                .take(spec::W8_SCAN_LEN)
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
