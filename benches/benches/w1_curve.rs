//! The group-commit curve: W1 (durable puts) with 1 to 64 writers, beside L1 and L1p measured
//! in the same run. Saved for `cargo xtask report`, which draws it.
//!
//! `cargo bench -p kv-benches --bench w1_curve`.

use std::time::Instant;

use kv_store::KvStore;
use kv_workloads::machine::fsync_loop;
use kv_workloads::spec::{self, Workload};

fn main() {
    let quick = kv_benches::quick();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory");
    let syncs = if quick { 50 } else { 3_000 };
    let l1 = syncs as f64 / fsync_loop(dir.path(), syncs, false).as_secs_f64();
    let l1p = syncs as f64 / fsync_loop(dir.path(), syncs, true).as_secs_f64();
    let store_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory");
    let store = KvStore::open_with(store_dir.path(), Workload::W1.options()).expect("open");
    let mut rows = Vec::new();
    println!("| writers | durable puts/s | × L1 ({l1:.0}/s) | records per fsync |");
    println!("| --- | --- | --- | --- |");
    for writers in [1u64, 2, 4, 8, 16, 32, 64] {
        let per_writer = if quick {
            10
        } else {
            (6_000 / writers).max(100)
        };
        let before = store.stats();
        let started = Instant::now();
        std::thread::scope(|s| {
            for w in 0..writers {
                let store = store.clone();
                s.spawn(move || {
                    let puts = spec::random_puts(writers * 100 + w, spec::KEYS);
                    for (key, value) in puts.take(per_writer as usize) {
                        store.put(key.to_vec(), value.to_vec()).expect("put");
                    }
                });
            }
        });
        let rate = (writers * per_writer) as f64 / started.elapsed().as_secs_f64();
        let after = store.stats();
        let per_fsync = (after.fsynced_records_total - before.fsynced_records_total) as f64
            / (after.fsyncs_total - before.fsyncs_total).max(1) as f64;
        println!(
            "| {writers} | {rate:.0} | {:.2}× | {per_fsync:.1} |",
            rate / l1
        );
        rows.push(format!("{writers}\t{rate}\t{l1}\t{l1p}\t{per_fsync}"));
    }
    kv_benches::save_results(
        env!("CARGO_TARGET_TMPDIR"),
        "w1_curve",
        "writers\tputs_per_sec\tl1\tl1p\trecords_per_fsync",
        &rows,
    );
}
