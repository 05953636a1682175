//! `kv-wal` against the machine's limits: append with each fsync policy, batched appends,
//! and the recovery scan, each beside the limit (L1-L4 of the workload spec) it is bounded
//! by, measured in the same run.
//!
//! `cargo bench -p kv-benches --bench wal`; `KV_BENCH_SCAN_MB` sets the size of the log
//! the recovery scan reads (default 1024; 64 with `KV_BENCH_QUICK`).

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kv_wal::{FsyncPolicy, Record, Wal, WalConfig};
use kv_workloads::machine;
use kv_workloads::{key_for, value_for, KeyGen};

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory beside the build")
}

fn record(keys: &mut KeyGen, n: u64) -> Record {
    Record::put(
        key_for(keys.next_u64() % 1_000_000).to_vec(),
        value_for(n).to_vec(),
    )
}

fn limits(c: &mut Criterion) {
    let dir = bench_dir();
    let mut group = c.benchmark_group("limits");
    group.throughput(Throughput::Elements(1));
    group.bench_function("L1_fdatasync_growing", |b| {
        b.iter_custom(|iters| machine::fsync_loop(dir.path(), iters, false))
    });
    group.bench_function("L1p_fdatasync_preallocated", |b| {
        b.iter_custom(|iters| machine::fsync_loop(dir.path(), iters, true))
    });

    let size: u64 = if kv_benches::quick() {
        64 << 20
    } else {
        256 << 20
    };
    group.throughput(Throughput::Bytes(size));
    group.sample_size(10);
    group.bench_function("L2_sequential_write", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| machine::sequential_write(dir.path(), size))
                .sum()
        })
    });
    let file = machine::make_read_file(dir.path(), size);
    group.bench_function("L3_sequential_read_cached", |b| {
        b.iter(|| black_box(machine::sequential_read(&file)))
    });
    let data = vec![0x77u8; 1 << 20];
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(50);
    group.bench_function("L4_crc32c", |b| {
        b.iter(|| black_box(machine::checksum(black_box(&data))))
    });
    group.finish();
}

fn open(dir: &Path, policy: FsyncPolicy) -> Wal {
    Wal::open(WalConfig::new(dir).fsync_policy(policy))
        .expect("open the log")
        .0
}

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal");
    let mut keys = KeyGen::new(1);

    for (name, policy) in [
        ("append_os", FsyncPolicy::Os),
        ("append_always", FsyncPolicy::Always),
    ] {
        let dir = bench_dir();
        let mut wal = open(dir.path(), policy);
        let mut n = 0;
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    n += 1;
                    record(&mut keys, n)
                },
                |r| wal.append(&r).expect("append"),
                BatchSize::SmallInput,
            )
        });
    }

    // Measured the way L2 is: a fixed amount written into a fresh log, then one sync, so the
    // two figures share their page-cache and writeback conditions.
    let batch: Vec<Record> = (0..1000).map(|n| record(&mut keys, n)).collect();
    let batch_bytes: u64 = batch.iter().map(|r| r.encoded_len() as u64).sum();
    let total: u64 = if kv_benches::quick() {
        64 << 20
    } else {
        256 << 20
    };
    let batches = total / batch_bytes;
    group.throughput(Throughput::Bytes(batches * batch_bytes));
    group.sample_size(10);
    group.bench_function("append_batch_1000_os", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let dir = bench_dir();
                let mut wal = open(dir.path(), FsyncPolicy::Os);
                let started = std::time::Instant::now();
                for _ in 0..batches {
                    wal.append_batch(black_box(&batch)).expect("append");
                }
                wal.sync().expect("sync");
                elapsed += started.elapsed();
            }
            elapsed
        })
    });
    group.finish();
}

fn recovery_scan(c: &mut Criterion) {
    let default_mb = if kv_benches::quick() { 64 } else { 1024 };
    let mb: u64 = std::env::var("KV_BENCH_SCAN_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_mb);
    let dir = bench_dir();
    let config = WalConfig::new(dir.path()).fsync_policy(FsyncPolicy::Os);
    let (mut wal, _) = Wal::open(config.clone()).expect("open the log");
    let mut keys = KeyGen::new(2);
    let batch_len = 1000;
    let mut n = 0;
    while wal.current_position().segment * wal.config().max_segment_size
        + wal.current_position().offset
        < mb << 20
    {
        let batch: Vec<Record> = (0..batch_len)
            .map(|_| {
                n += 1;
                record(&mut keys, n)
            })
            .collect();
        wal.append_batch(&batch).expect("append");
    }
    wal.close().expect("close");
    let total: u64 = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Bytes(total));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if kv_benches::quick() {
        1
    } else {
        10
    }));
    group.bench_function(format!("recovery_scan_{mb}MiB"), |b| {
        b.iter(|| {
            let (wal, info) = Wal::open(config.clone()).expect("recover");
            assert_eq!(info.records, n);
            drop(wal);
        })
    });
    group.finish();
}

criterion_group!(benches, limits, appends, recovery_scan);
criterion_main!(benches);
