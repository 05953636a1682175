//! The machine's limits L1-L4 of the workload spec, measured in the same run as the
//! workloads, with the functions the criterion benches use (`kv-benches`).

use std::path::Path;
use std::time::Instant;

/// One MiB: the chunk the L2 and L3 files are written in.
const MIB: u64 = 1 << 20;

/// The limits, as rates (zero until measured).
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

/// Measures every limit in `dir`, with sizes divided by `scale`; `step` is told which one
/// runs.
pub fn measure(dir: &Path, scale: u64, mut step: impl FnMut(&str)) -> MachineLimits {
    step("L1: write 128 B + fdatasync, growing file");
    let iters = (2_000 / scale).max(20);
    let l1_fsyncs = iters as f64 / kv_benches::fsync_loop(dir, iters, false).as_secs_f64();
    step("L1p: write 128 B + fdatasync, preallocated file");
    let l1p_fsyncs = iters as f64 / kv_benches::fsync_loop(dir, iters, true).as_secs_f64();
    let _ = std::fs::remove_file(dir.join("l1"));
    let _ = std::fs::remove_file(dir.join("l1p"));

    step("L2: sequential buffered write + fsync");
    let bytes = whole_mib(256 * MIB / scale);
    let l2_bytes = bytes as f64 / kv_benches::sequential_write(dir, bytes).as_secs_f64();

    step("L3: sequential read from the page cache");
    let path = kv_benches::make_read_file(dir, bytes);
    kv_benches::sequential_read(&path);
    let started = Instant::now();
    std::hint::black_box(kv_benches::sequential_read(&path));
    let l3_bytes = bytes as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);

    step("L4: CRC-32C");
    let data = vec![0x5au8; (16 * MIB / scale).max(64 * 1024) as usize];
    let rounds = 8;
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(kv_benches::checksum(std::hint::black_box(&data)));
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

/// `bytes` rounded up to whole MiB, as the L2 and L3 helpers write them.
fn whole_mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB).max(1) * MIB
}
