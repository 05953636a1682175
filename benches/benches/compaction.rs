//! W7 of the workload spec: compaction of 1,000,000 live keys with the log at 4× the live
//! size, while two writers run W1 (durable puts). Prints the figures the spec names beside
//! L2 measured in the same run; a plain bench binary, because one compaction is one sample.
//!
//! `cargo bench -p kv-benches --bench compaction` (`KV_BENCH_QUICK=1` for 1/100 of the keys).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kv_store::{Durability, KvStore, WriteOptions};
use kv_workloads::machine::sequential_write;
use kv_workloads::spec::{self, Workload};

fn keys() -> u64 {
    if kv_benches::quick() {
        spec::KEYS / 100
    } else {
        spec::KEYS
    }
}

/// Two W1 writers until `stop`; their put latencies, split at the moment `during` is set.
fn writers(
    store: &KvStore,
    stop: &AtomicBool,
    during: &AtomicBool,
) -> (Histogram<u64>, Histogram<u64>) {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..spec::W7_WRITERS)
            .map(|w| {
                s.spawn(move || {
                    let mut before = Histogram::<u64>::new(3).expect("histogram");
                    let mut while_compacting = before.clone();
                    let mut puts = spec::random_puts(100 + w, keys());
                    while !stop.load(Ordering::Relaxed) {
                        let (key, value) = puts.next().expect("an endless stream");
                        let started = Instant::now();
                        store.put(key.to_vec(), value.to_vec()).expect("put");
                        let us = started.elapsed().as_micros() as u64;
                        if during.load(Ordering::Relaxed) {
                            while_compacting.saturating_record(us.max(1));
                        } else {
                            before.saturating_record(us.max(1));
                        }
                    }
                    (before, while_compacting)
                })
            })
            .collect();
        let mut before = Histogram::<u64>::new(3).expect("histogram");
        let mut while_compacting = before.clone();
        for handle in handles {
            let (b, d) = handle.join().expect("writer");
            before.add(b).expect("same bounds");
            while_compacting.add(d).expect("same bounds");
        }
        (before, while_compacting)
    })
}

fn main() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory");
    let store = KvStore::open_with(dir.path(), Workload::W7.options()).expect("open");
    let unsynced = WriteOptions {
        durability: Some(Durability::None),
    };
    for round in 0..spec::W7_PUTS_PER_KEY {
        spec::load(&store, spec::sequential_puts(keys(), round), unsynced).expect("load");
    }
    store.sync().expect("sync");
    let loaded = store.stats();
    eprintln!(
        "W7: {} keys, log {:.0} MiB = {:.1}× the {:.0} MiB live",
        loaded.keys,
        loaded.log_bytes as f64 / 1048576.0,
        loaded.log_bytes as f64 / loaded.live_bytes as f64,
        loaded.live_bytes as f64 / 1048576.0
    );

    let stop = AtomicBool::new(false);
    let during = AtomicBool::new(false);
    let (report, (before, while_compacting)) = std::thread::scope(|s| {
        let load = s.spawn(|| writers(&store, &stop, &during));
        std::thread::sleep(Duration::from_secs(if kv_benches::quick() { 1 } else { 5 }));
        during.store(true, Ordering::Relaxed);
        let report = store.compact().expect("compact");
        stop.store(true, Ordering::Relaxed);
        (report, load.join().expect("writers"))
    });
    let after = store.stats();
    let l2_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory");
    let l2_bytes: u64 = if kv_benches::quick() {
        64 << 20
    } else {
        512 << 20
    };
    let l2 = l2_bytes as f64 / sequential_write(l2_dir.path(), l2_bytes).as_secs_f64();
    let snapshot_rate = after.snapshot_bytes as f64 / report.duration.as_secs_f64();
    println!("| figure | measured | target |");
    println!("| --- | --- | --- |");
    println!(
        "| compaction of {} live keys | {:.2} s, snapshot {:.0} MiB at {:.0} MiB/s = {:.2}× L2 ({:.0} MiB/s) | ≥ 0.5× L2 |",
        report.entries,
        report.duration.as_secs_f64(),
        after.snapshot_bytes as f64 / 1048576.0,
        snapshot_rate / 1048576.0,
        snapshot_rate / l2,
        l2 / 1048576.0
    );
    println!(
        "| writer p99 before / during | {} µs / {} µs = {:.2}× ({} / {} puts) | ≤ 2× |",
        before.value_at_quantile(0.99),
        while_compacting.value_at_quantile(0.99),
        while_compacting.value_at_quantile(0.99) as f64
            / before.value_at_quantile(0.99).max(1) as f64,
        before.len(),
        while_compacting.len()
    );
    println!(
        "| log + snapshot after | {:.0} MiB = {:.2}× live ({:.0} MiB before) | ≤ 1.1× live |",
        (after.log_bytes + after.snapshot_bytes) as f64 / 1048576.0,
        (after.log_bytes + after.snapshot_bytes) as f64 / after.live_bytes as f64,
        report.bytes_before as f64 / 1048576.0
    );
}
