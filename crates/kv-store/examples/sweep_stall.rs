//! Writer latency while the expiry sweep runs: 1,000,000 keys with a deadline an hour away
//! (so every sweep looks at them all and removes none), one `Durability::None` writer paced
//! at 20,000 puts a second for 4 s, with the sweep every MS milliseconds (1,000, the
//! default, unless given).
//!
//! `cargo run --release -p kv-store --example sweep_stall -- hash|ordered [MS]`
use std::time::{Duration, Instant};

use kv_store::{Durability, IndexKind, KvStore, Options, WriteBatch};

#[path = "common/latencies.rs"]
mod latencies;

const KEYS: u64 = 1_000_000;

fn key(n: u64) -> Vec<u8> {
    format!("key:{:012}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % KEYS).into_bytes()
}

fn main() {
    let index = match std::env::args().nth(1).as_deref() {
        Some("ordered") => IndexKind::Ordered,
        _ => IndexKind::Hash,
    };
    let every_ms = std::env::args()
        .nth(2)
        .map_or(1000, |ms| ms.parse().expect("milliseconds"));
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .index(index)
        .durability(Durability::None)
        .auto_compact(None)
        // No rotation while measuring: it syncs the whole segment the load left unsynced,
        // a stall of its own.
        .segment_size(1 << 30)
        .sweep_interval(Duration::from_millis(every_ms));
    let store = KvStore::open_with(dir.path(), options).unwrap();
    let value = vec![b'v'; 100];
    let in_an_hour = std::time::SystemTime::now() + Duration::from_secs(3600);
    for chunk in 0..KEYS / 1000 {
        let mut batch = WriteBatch::new();
        for n in chunk * 1000..(chunk + 1) * 1000 {
            batch.put_with_deadline(key(n), value.clone(), in_an_hour);
        }
        store.write(batch).unwrap();
    }
    let mut latencies = Vec::new();
    let mut slow = Vec::new();
    let began = Instant::now();
    let mut n = KEYS;
    while began.elapsed() < Duration::from_secs(4) {
        let due = began + Duration::from_micros(50 * latencies.len() as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        n += 1;
        let start = Instant::now();
        store.put(key(n), value.clone()).unwrap();
        let took = start.elapsed();
        if took > Duration::from_millis(1) {
            slow.push(format!(
                "{}:{:.1}",
                (start - began).as_millis(),
                took.as_secs_f64() * 1e3
            ));
        }
        latencies.push(took.as_nanos() as u64);
    }
    println!("{}", latencies::summary(latencies));
    println!("puts over 1 ms (began at ms:lasted ms): {}", slow.join(" "));
}
