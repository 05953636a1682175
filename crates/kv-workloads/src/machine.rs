//! The machine's limits, measured beside the workloads in the same run: L1-L4 of the spec,
//! this project's L5 and L6, and the resident set size W5 reads.
//!
//! Every figure is reported next to the limit it is bounded by, measured in the same run,
//! because the machines are shared and absolute numbers drift.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::data::KeyGen;
use crate::spec;

/// One MiB: the chunk the L2 and L3 files are written and read in.
const MIB: u64 = 1 << 20;

/// L1 and L1p: `iters` loops of "write 128 bytes, fdatasync" on a new file in `dir`, growing
/// it (L1) or inside space already reserved (L1p, `preallocated`).
pub fn fsync_loop(dir: &Path, iters: u64, preallocated: bool) -> Duration {
    let path = dir.join(if preallocated { "l1p" } else { "l1" });
    let _ = std::fs::remove_file(&path);
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .expect("create the L1 file");
    if preallocated {
        rustix::fs::fallocate(
            &file,
            rustix::fs::FallocateFlags::empty(),
            0,
            (iters + 1) * 128,
        )
        .expect("fallocate");
        file.sync_all().expect("sync");
    }
    let block = [0xa5u8; 128];
    let started = Instant::now();
    for i in 0..iters {
        file.write_all_at(&block, i * 128).expect("write");
        file.sync_data().expect("fdatasync");
    }
    started.elapsed()
}

/// L2: writes `bytes` in 1 MiB buffered writes to a new file, then one fsync.
pub fn sequential_write(dir: &Path, bytes: u64) -> Duration {
    let path = dir.join("l2");
    let mut file = File::create(&path).expect("create the L2 file");
    let chunk = vec![0x5au8; MIB as usize];
    let started = Instant::now();
    let mut written = 0;
    while written < bytes {
        file.write_all(&chunk).expect("write");
        written += chunk.len() as u64;
    }
    file.sync_all().expect("fsync");
    let elapsed = started.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    elapsed
}

/// Creates a file of `bytes` bytes for [`sequential_read`].
pub fn make_read_file(dir: &Path, bytes: u64) -> PathBuf {
    let path = dir.join("l3");
    let mut file = File::create(&path).expect("create the L3 file");
    let chunk = vec![0x3cu8; MIB as usize];
    let mut written = 0;
    while written < bytes {
        file.write_all(&chunk).expect("write");
        written += chunk.len() as u64;
    }
    path
}

/// L3: reads the whole file in 1 MiB reads (from the page cache once warm).
pub fn sequential_read(path: &Path) -> u64 {
    let file = File::open(path).expect("open the L3 file");
    let mut buf = vec![0u8; MIB as usize];
    let mut offset = 0;
    let mut sum = 0u64;
    loop {
        let n = file.read_at(&mut buf, offset).expect("read");
        if n == 0 {
            return sum;
        }
        sum = sum.wrapping_add(u64::from(buf[n - 1]));
        offset += n as u64;
    }
}

/// L4: one CRC-32C over `data`, with the crate the log uses.
pub fn checksum(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// L5 (this project's addition to the spec's limits): the latency of one random memory access
/// that depends on the previous one, over a table of `slots` 4-byte slots built on the first
/// call (later calls reuse it, whatever `slots` they pass): what a lookup in an index much
/// larger than the caches pays per pointer it follows. Returns the time of `steps` accesses.
pub fn dependent_access(steps: u64, slots: usize) -> Duration {
    static TABLE: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    let next = TABLE.get_or_init(|| chase_table(slots));
    let started = Instant::now();
    let mut at = 0usize;
    for _ in 0..steps {
        at = next[at] as usize;
    }
    std::hint::black_box(at);
    started.elapsed()
}

/// A random cyclic permutation of `0..slots` (Sattolo's shuffle): following it from any slot
/// visits every slot before coming back, so no chase settles in a cached loop.
fn chase_table(slots: usize) -> Vec<u32> {
    let mut next: Vec<u32> = (0..slots as u32).collect();
    let mut random = KeyGen::new(5);
    for i in (1..slots).rev() {
        let j = (random.next_u64() % i as u64) as usize;
        next.swap(i, j);
    }
    next
}

/// L6 (this project's): the recipe's own structure, a plain `std::collections::HashMap<Bytes,
/// Bytes>` holding W3's keys and values, read by one thread with W3's gets. What W3's single
/// reader is held against: a lookup in the store should cost no more than one in the plain
/// map, lock, expiry and admission bookkeeping included.
#[derive(Debug)]
pub struct PlainMap {
    map: HashMap<Bytes, Bytes>,
}

impl PlainMap {
    /// The map of keys `0..keys` with their values, as W3 loads them into the store.
    pub fn load(keys: u64) -> Self {
        let mut map = HashMap::with_capacity(keys as usize);
        for (key, value) in spec::sequential_puts(keys, 0) {
            map.insert(Bytes::copy_from_slice(&key), Bytes::copy_from_slice(&value));
        }
        PlainMap { map }
    }

    /// `count` gets of the keys [`spec::gets`] draws with `seed` (W3's draws: 90% hits);
    /// returns their time and how many hit.
    pub fn gets(&self, seed: u64, count: u64) -> (Duration, u64) {
        let started = Instant::now();
        let mut hits = 0u64;
        for key in spec::gets(seed, self.map.len() as u64).take(count as usize) {
            hits += u64::from(std::hint::black_box(self.map.get(&key[..])).is_some());
        }
        (started.elapsed(), hits)
    }
}

/// The limits L1-L4 of one run, as rates (zero until measured).
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineLimits {
    /// L1: `write 128 B; fdatasync` a second, on a growing file.
    pub l1_fsyncs: f64,
    /// L1p: the same inside preallocated space.
    pub l1p_fsyncs: f64,
    /// L2: bytes a second of large buffered writes and one fsync.
    pub l2_bytes: f64,
    /// L3: bytes a second of reading a file from the page cache.
    pub l3_bytes: f64,
    /// L4: bytes a second of CRC-32C.
    pub l4_bytes: f64,
}

impl MachineLimits {
    /// Measures L1-L4 in `dir`, with the sizes divided by `scale` (2,000 fsyncs, 256 MiB
    /// written and read, 16 MiB checksummed 8 times, at scale 1); `step` is told which one
    /// runs. The files are removed afterwards.
    pub fn measure(dir: &Path, scale: u64, mut step: impl FnMut(&str)) -> Self {
        step("L1: write 128 B + fdatasync, growing file");
        let iters = (2_000 / scale).max(20);
        let l1_fsyncs = iters as f64 / fsync_loop(dir, iters, false).as_secs_f64();
        step("L1p: write 128 B + fdatasync, preallocated file");
        let l1p_fsyncs = iters as f64 / fsync_loop(dir, iters, true).as_secs_f64();
        let _ = std::fs::remove_file(dir.join("l1"));
        let _ = std::fs::remove_file(dir.join("l1p"));

        step("L2: sequential buffered write + fsync");
        let bytes = whole_mib(256 * MIB / scale);
        let l2_bytes = bytes as f64 / sequential_write(dir, bytes).as_secs_f64();

        step("L3: sequential read from the page cache");
        let path = make_read_file(dir, bytes);
        sequential_read(&path);
        let started = Instant::now();
        std::hint::black_box(sequential_read(&path));
        let l3_bytes = bytes as f64 / started.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&path);

        step("L4: CRC-32C");
        let data = vec![0x5au8; (16 * MIB / scale).max(64 * 1024) as usize];
        let rounds = 8;
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(checksum(std::hint::black_box(&data)));
        }
        let l4_bytes = (data.len() * rounds) as f64 / started.elapsed().as_secs_f64();

        MachineLimits {
            l1_fsyncs,
            l1p_fsyncs,
            l2_bytes,
            l3_bytes,
            l4_bytes,
        }
    }
}

/// `bytes` rounded up to whole MiB, as the L2 and L3 helpers write them.
fn whole_mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB).max(1) * MIB
}

/// The resident set size of this process in bytes, from `/proc/self/statm` (W5's measure).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_is_measured_and_its_files_removed() {
        let dir = tempfile::tempdir().unwrap();
        let limits = MachineLimits::measure(dir.path(), 1_000, |_| {});
        for rate in [
            limits.l1_fsyncs,
            limits.l1p_fsyncs,
            limits.l2_bytes,
            limits.l3_bytes,
            limits.l4_bytes,
        ] {
            assert!(rate.is_finite() && rate > 0.0, "{limits:?}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_plain_map_finds_the_loaded_keys_and_misses_a_tenth() {
        let map = PlainMap::load(9_000);
        assert_eq!(map.map.len(), 9_000);
        let (elapsed, hits) = map.gets(11, 100_000);
        assert!(elapsed > Duration::ZERO);
        assert!((88_000..92_000).contains(&hits), "{hits}");
    }

    #[test]
    fn the_resident_set_is_measured() {
        assert!(resident_bytes().unwrap() > 0);
    }

    #[test]
    fn the_chase_visits_every_slot_before_it_comes_back() {
        let next = chase_table(1 << 12);
        let (mut at, mut steps) = (next[0] as usize, 1);
        while at != 0 {
            at = next[at] as usize;
            steps += 1;
        }
        assert_eq!(steps, next.len());
    }
}
