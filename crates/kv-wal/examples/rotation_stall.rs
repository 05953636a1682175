//! How long a buffered writer (`FsyncPolicy::Os`) waits when its segment rotates: the
//! rotation syncs the whole segment before the next one exists, and under `Os` nothing
//! synced it before, unless the log synced it ahead (`ahead.rs`).
//!
//! `cargo run --release -p kv-wal --example rotation_stall -- DIR [SEGMENT_MIB] [SEGMENTS]`
//! appends 116-byte records (16-byte keys, 100-byte values) to a new log in `DIR` until
//! `SEGMENTS` segments of `SEGMENT_MIB` MiB (128 and 3 by default) have rotated, and prints
//! how long each rotating append took, beside the slowest other append.

use std::time::{Duration, Instant};

use kv_wal::{FsyncPolicy, Record, Wal, WalConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: rotation_stall DIR [SEGMENT_MIB] [SEGMENTS]")?;
    let segment_mib: u64 = args.next().map_or(Ok(128), |a| a.parse())?;
    let segments: u64 = args.next().map_or(Ok(3), |a| a.parse())?;
    let dir = tempfile::tempdir_in(dir)?;
    let config = WalConfig::new(dir.path())
        .max_segment_size(segment_mib << 20)
        .fsync_policy(FsyncPolicy::Os);
    let (mut wal, _) = Wal::open(config)?;
    let value = vec![7u8; 100];
    let mut slowest_other = Duration::ZERO;
    let mut appends = 0u64;
    let started = Instant::now();
    while wal.current_position().segment < segments {
        let segment = wal.current_position().segment;
        let key = format!("key-{appends:012}");
        let record = Record::put(key.into_bytes(), value.clone());
        let before = Instant::now();
        wal.append(&record)?;
        let took = before.elapsed();
        appends += 1;
        if wal.current_position().segment != segment {
            println!(
                "rotation into segment {}: the append took {:.1} ms",
                segment + 1,
                took.as_secs_f64() * 1e3
            );
        } else {
            slowest_other = slowest_other.max(took);
        }
    }
    println!(
        "{appends} appends in {:.2} s; the slowest other append took {:.2} ms; background syncs: {}",
        started.elapsed().as_secs_f64(),
        slowest_other.as_secs_f64() * 1e3,
        wal.background_syncs()
    );
    wal.close()?;
    Ok(())
}
