//! Writer latency before and during a compaction: about 875,000 live keys, one writer with
//! `Durability::None` paced at 20,000 puts a second.
//!
//! `cargo run --release -p kv-store --example compaction_stall -- hash|ordered`
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use kv_store::{Durability, IndexKind, KvStore, Options, WriteBatch};

const KEYS: u64 = 1_000_000;

fn key(n: u64) -> Vec<u8> {
    format!("key:{:012}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % KEYS).into_bytes()
}

fn summary(name: &str, mut v: Vec<u32>) {
    v.sort_unstable();
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    println!(
        "{name}: {} puts, p50 {} us, p99 {} us, p99.9 {} us, max {} us",
        v.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        v[v.len() - 1]
    );
}

fn main() {
    let (index, index_name) = match std::env::args().nth(1).as_deref() {
        Some("ordered") => (IndexKind::Ordered, "ordered"),
        _ => (IndexKind::Hash, "hash"),
    };
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let options = Options::default()
        .index(index)
        .durability(Durability::None)
        .auto_compact(None)
        .sweep_interval(Duration::ZERO);
    let store = KvStore::open_with(dir.path(), options).unwrap();
    let value = vec![b'v'; 100];
    for round in 0..2 {
        for chunk in 0..KEYS / 1000 {
            let mut batch = WriteBatch::new();
            for n in chunk * 1000..(chunk + 1) * 1000 {
                batch.put(key(n + round), value.clone());
            }
            store.write(batch).unwrap();
        }
    }
    store.sync().unwrap();
    println!("{index_name} index: {} keys loaded", store.len());
    let phase = AtomicU8::new(0);
    let stop = AtomicBool::new(false);
    let (before, during, report) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let (mut before, mut during) = (Vec::new(), Vec::new());
            let mut n = 7u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let started = Instant::now();
                store.put(key(n), value.clone()).unwrap();
                let us = started.elapsed().as_micros() as u32;
                match phase.load(Ordering::Relaxed) {
                    0 => before.push(us),
                    _ => during.push(us),
                }
                // A paced writer, as a service would be: 20k puts/s.
                while started.elapsed() < Duration::from_micros(50) {
                    std::hint::spin_loop();
                }
            }
            (before, during)
        });
        std::thread::sleep(Duration::from_secs(2));
        phase.store(1, Ordering::Relaxed);
        let report = store.compact().unwrap();
        stop.store(true, Ordering::Relaxed);
        let (b, d) = writer.join().unwrap();
        (b, d, report)
    });
    println!(
        "compaction: {} entries in {:.2} s",
        report.entries,
        report.duration.as_secs_f64()
    );
    summary("before", before);
    summary("during", during);
}
