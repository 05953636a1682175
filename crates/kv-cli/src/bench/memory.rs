//! W5: the memory a key costs beyond its 116 payload bytes (16-byte key, 100-byte value).

use std::time::Instant;

use kv_store::WriteOptions;
use kv_workloads::spec::{self, Workload};
use kv_workloads::{resident_bytes, KEY_LEN, VALUE_LEN};

use super::report::Outcome;
use super::Run;

/// The payload of one key.
const PAYLOAD: f64 = (KEY_LEN + VALUE_LEN) as f64;

/// W5: the resident set size of the process after opening an empty store and after loading
/// the keys and closing it (closing unmaps the log's write window, whose pages would count
/// as resident otherwise); the difference per key, less the payload. Run it first: memory
/// that earlier workloads freed stays in the allocator and would hide part of the growth.
pub fn w5(run: &Run<'_>) -> Result<Outcome, kv_store::Error> {
    let keys = (spec::KEYS / run.scale).max(1);
    let store = run.open(Workload::W5)?;
    let before = resident_bytes().unwrap_or(0);
    run.step(&format!("W5: loading {keys} keys"));
    let started = Instant::now();
    spec::load(
        &store,
        spec::sequential_puts(keys, 0),
        WriteOptions::default(),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let memory_used = store.stats().memory_used_bytes;
    store.close()?;
    let after = resident_bytes().unwrap_or(0);
    run.close(store)?;
    let per_key = after.saturating_sub(before) as f64 / keys as f64;
    Ok(Outcome::new("W5", "memory per key", 1, keys, seconds)
        .with("overhead_bytes_per_key", per_key - PAYLOAD)
        .with(
            "counted_overhead_bytes_per_key",
            memory_used as f64 / keys as f64 - PAYLOAD,
        )
        .with("rss_before", before)
        .with("rss_after", after))
}
