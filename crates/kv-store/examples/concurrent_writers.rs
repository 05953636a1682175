//! Many threads writing durably at once: group commit makes them share fsyncs.
//!
//! `cargo run --release -p kv-store --example concurrent_writers`

use std::time::Instant;

use kv_store::{Durability, KvStore, Options};

fn main() -> Result<(), kv_store::Error> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Every put returns only once it is on stable storage.
    let store = KvStore::open_with(dir.path(), Options::default().durability(Durability::Sync))?;
    let (threads, per_thread) = (16, 500);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    store
                        .put(format!("thread{t}:key{i}"), "value")
                        .expect("a durable put");
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let stats = store.stats();
    println!(
        "{} durable puts from {threads} threads in {:.0} ms: {:.0} puts/s, {:.1} records per fsync, p99 {} us",
        store.len(),
        elapsed.as_secs_f64() * 1e3,
        store.len() as f64 / elapsed.as_secs_f64(),
        stats.records_per_fsync_ratio,
        stats.commit_latency_p99_micros,
    );
    store.close()
}
