//! Writer latency before and during a compaction: about 875,000 live keys, one writer with
//! `Durability::None` (or `Sync`) paced at 20,000 puts a second at most.
//!
//! `cargo run --release -p kv-store --example compaction_stall -- hash|ordered [DIR] [none|sync]`
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use kv_store::{Durability, IndexKind, KvStore, Options, WriteBatch};

#[path = "common/latencies.rs"]
mod latencies;

const KEYS: u64 = 1_000_000;
/// The writer's phases.
const WARMING: u8 = 0;
const BEFORE: u8 = 1;
const DURING: u8 = 2;

fn key(n: u64) -> Vec<u8> {
    format!("key:{:012}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % KEYS).into_bytes()
}

fn main() {
    let (index, index_name) = match std::env::args().nth(1).as_deref() {
        Some("ordered") => (IndexKind::Ordered, "ordered"),
        _ => (IndexKind::Hash, "hash"),
    };
    // A scratch directory under DIR (default /tmp): `/dev/shm` takes the file system's page
    // faults out of the figures.
    let parent = std::env::args().nth(2).unwrap_or_else(|| "/tmp".into());
    let dir = tempfile::tempdir_in(parent).unwrap();
    // `sync` shows what the compaction's own syncs cost a durable writer.
    let durability = match std::env::args().nth(3).as_deref() {
        Some("sync") => Durability::Sync,
        _ => Durability::None,
    };
    let options = Options::default()
        .index(index)
        .durability(durability)
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
    let compacting = std::sync::OnceLock::new();
    let (before, during, stalls, report) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let (mut before, mut during, mut stalls) = (Vec::new(), Vec::new(), Vec::new());
            let mut n = 7u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let started = Instant::now();
                store.put(key(n), value.clone()).unwrap();
                let ns = started.elapsed().as_nanos() as u64;
                match phase.load(Ordering::Relaxed) {
                    WARMING => {}
                    BEFORE => before.push(ns),
                    _ => {
                        during.push(ns);
                        if ns > 1_000_000 {
                            // When it began, in ms after the compaction did, and how long.
                            let began = compacting
                                .get()
                                .map_or(0, |t: &Instant| t.elapsed().as_nanos() as u64)
                                .saturating_sub(ns);
                            stalls.push(format!("{}:{:.1}", began / 1_000_000, ns as f64 / 1e6));
                        }
                    }
                }
                // A paced writer, as a service would be: 20k puts/s.
                while started.elapsed() < Duration::from_micros(50) {
                    std::hint::spin_loop();
                }
            }
            (before, during, stalls)
        });
        // Not measured: the first megabytes the writer appends lie in pages the load's own
        // appends already mapped, which made the writer faster than in its steady state.
        std::thread::sleep(Duration::from_secs(4));
        phase.store(BEFORE, Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(2));
        compacting.get_or_init(Instant::now);
        phase.store(DURING, Ordering::Relaxed);
        let report = store.compact().unwrap();
        stop.store(true, Ordering::Relaxed);
        let (b, d, stalls) = writer.join().unwrap();
        (b, d, stalls, report)
    });
    println!(
        "compaction: {} entries in {:.2} s",
        report.entries,
        report.duration.as_secs_f64()
    );
    println!("before: {}", latencies::summary(before));
    println!("during: {}", latencies::summary(during));
    println!(
        "puts over 1 ms during (began at ms:lasted ms): {}",
        stalls.join(" ")
    );
}
