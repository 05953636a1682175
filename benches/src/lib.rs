//! Shared pieces of the benchmarks: the machine limits of the workload spec (L1-L4), and
//! the workloads' data (16-byte keys from a seeded generator, 100-byte values).
//!
//! Every figure is reported next to the limit it is bounded by, measured in the same run,
//! because the machines are shared and absolute numbers drift.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Key length of the workloads.
pub const KEY_LEN: usize = 16;
/// Value length of the workloads.
pub const VALUE_LEN: usize = 100;

/// A seeded xorshift generator, so every run draws the same keys.
#[derive(Debug, Clone)]
pub struct KeyGen(u64);

impl KeyGen {
    /// A generator with `seed` (0 is replaced by a fixed non-zero seed).
    pub fn new(seed: u64) -> Self {
        // Spread small seeds apart; xorshift needs a non-zero state.
        KeyGen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A 16-byte key for a number drawn from `0..space`.
    pub fn key(&mut self, space: u64) -> [u8; KEY_LEN] {
        key_for(self.next_u64() % space)
    }
}

/// The 16-byte key of key number `n`: `key-` and twelve decimal digits (the low twelve).
pub fn key_for(n: u64) -> [u8; KEY_LEN] {
    let mut key = *b"key-000000000000";
    let mut rest = n;
    for digit in key[4..].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    key
}

/// A 100-byte value.
pub fn value_for(n: u64) -> [u8; VALUE_LEN] {
    let mut value = [b'v'; VALUE_LEN];
    value[..8].copy_from_slice(&n.to_le_bytes());
    value
}

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
    let chunk = vec![0x5au8; 1 << 20];
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
pub fn make_read_file(dir: &Path, bytes: u64) -> std::path::PathBuf {
    let path = dir.join("l3");
    let mut file = File::create(&path).expect("create the L3 file");
    let chunk = vec![0x3cu8; 1 << 20];
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
    let mut buf = vec![0u8; 1 << 20];
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

/// Whether to use small sizes: the short CI run (`KV_BENCH_QUICK`), or a bench binary run by
/// `cargo test`, which runs each benchmark once to check that it works (without `--bench`).
pub fn quick() -> bool {
    std::env::var_os("KV_BENCH_QUICK").is_some() || !std::env::args().any(|a| a == "--bench")
}

/// L5 (this project's addition to the spec's limits): the latency of one random memory access
/// that depends on the previous one, over a 256 MiB table (32 MiB when quick): what a lookup
/// in an index much larger than the caches pays per pointer it follows. Returns the time of
/// `steps` accesses.
pub fn dependent_access(steps: u64) -> Duration {
    static TABLE: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    let next = TABLE.get_or_init(|| {
        let slots: usize = if quick() { 4 << 20 } else { 32 << 20 };
        // A random cyclic permutation (Sattolo's shuffle), so the chase visits every slot.
        let mut next: Vec<u32> = (0..slots as u32).collect();
        let mut random = KeyGen::new(5);
        for i in (1..slots).rev() {
            let j = (random.next_u64() % i as u64) as usize;
            next.swap(i, j);
        }
        next
    });
    let started = Instant::now();
    let mut at = 0usize;
    for _ in 0..steps {
        at = next[at] as usize;
    }
    std::hint::black_box(at);
    started.elapsed()
}

/// Saves a bench's results as `<target>/kv-results/<name>.tsv` for `cargo xtask report`
/// (`target_tmpdir`: the bench's `CARGO_TARGET_TMPDIR`, inside the target directory),
/// with a first line saying when and where they were measured. Quick runs save nothing: their
/// figures are not worth a report.
pub fn save_results(target_tmpdir: &str, name: &str, header: &str, rows: &[String]) {
    if quick() {
        return;
    }
    let target = Path::new(target_tmpdir)
        .parent()
        .expect("the target directory")
        .join("kv-results");
    let _ = std::fs::create_dir_all(&target);
    let when = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut text = format!("# measured {when} on {cores} cores\n{header}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    let path = target.join(format!("{name}.tsv"));
    match std::fs::write(&path, text) {
        Ok(()) => eprintln!("results saved to {}", path.display()),
        Err(e) => eprintln!("cannot save results to {}: {e}", path.display()),
    }
}
