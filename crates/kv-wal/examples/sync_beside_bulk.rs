//! The disk's own floor under W7: how much a bulk write of another file (a snapshot, say)
//! slows small durable appends, with no store involved.
//!
//! Writers append 128 bytes and `fdatasync`, in a file whose blocks are already written (L1p),
//! for 2 s; then, while they go on, one thread writes BYTES to a new file in 64 KiB writes at
//! RATE MB/s (0: as fast as it can), with an `fdatasync` every SYNC bytes (0: once, at the
//! end). Prints the writers' latencies before and during.
//!
//! ```text
//! cargo run --release -p kv-wal --example sync_beside_bulk -- [DIR] [RATE] [SYNC] [BYTES] [WRITERS]
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .map_or(default, |a| a.parse().ok().expect("a number"))
}

fn summary(mut ns: Vec<u64>) -> String {
    if ns.is_empty() {
        return "no syncs".into();
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] / 1000;
    format!(
        "{} syncs, p50 {} us, p99 {} us, p99.9 {} us, max {} us",
        ns.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        ns[ns.len() - 1] / 1000
    )
}

fn main() -> std::io::Result<()> {
    let dir: String = arg(1, "/tmp".to_string());
    let rate: f64 = arg(2, 0.0);
    let sync_every: u64 = arg(3, 0);
    let bytes: u64 = arg(4, 123 << 20);
    let writers: u64 = arg(5, 2);

    let appends = format!("{dir}/sync_beside_bulk.appends");
    File::create(&appends)?.write_all(&vec![0; 64 << 20])?;
    let file = Arc::new(OpenOptions::new().write(true).open(&appends)?);
    file.sync_all()?;
    let (stop, during) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (file, stop, during) = (file.clone(), stop.clone(), during.clone());
            std::thread::spawn(move || {
                let (mut before, mut while_bulk) = (Vec::new(), Vec::new());
                // Each writer goes round its own share of the written 64 MiB.
                let share = (64 << 20) / writers;
                let mut at = 0;
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    let bulk = during.load(Ordering::Relaxed);
                    file.write_all_at(&[7; 128], w * share + at).unwrap();
                    file.sync_data().unwrap();
                    at = (at + 128) % (share - 128);
                    let ns = began.elapsed().as_nanos() as u64;
                    if bulk { &mut while_bulk } else { &mut before }.push(ns);
                }
                (before, while_bulk)
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(2));
    let bulk_path = format!("{dir}/sync_beside_bulk.bulk");
    let bulk = File::create(&bulk_path)?;
    let chunk = vec![1u8; 64 << 10];
    during.store(true, Ordering::Relaxed);
    let began = Instant::now();
    let (mut written, mut unsynced) = (0u64, 0u64);
    while written < bytes {
        bulk.write_all_at(&chunk, written)?;
        written += chunk.len() as u64;
        unsynced += chunk.len() as u64;
        if sync_every > 0 && unsynced >= sync_every {
            bulk.sync_data()?;
            unsynced = 0;
        }
        if rate > 0.0 {
            let due = Duration::from_secs_f64(written as f64 / (rate * 1e6));
            if let Some(early) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(early);
            }
        }
    }
    bulk.sync_data()?;
    let took = began.elapsed();
    during.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (mut before, mut while_bulk) = (Vec::new(), Vec::new());
    for thread in threads {
        let (b, d) = thread.join().expect("a writer panicked");
        before.extend(b);
        while_bulk.extend(d);
    }
    println!(
        "bulk: {:.0} MB in {:.3} s (rate {rate} MB/s, fdatasync every {sync_every} bytes)",
        bytes as f64 / 1e6,
        took.as_secs_f64()
    );
    println!("before: {}", summary(before));
    println!("during: {}", summary(while_bulk));
    std::fs::remove_file(&bulk_path)?;
    std::fs::remove_file(&appends)
}
