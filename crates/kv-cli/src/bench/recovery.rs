//! W4: the time to open a store whose log holds (a) one put per key, (b) four, against L3;
//! and W4-snapshot: the time to open the same keys from a snapshot after a compaction.

use std::time::Instant;

use kv_store::KvStore;
use kv_workloads::spec::{self, Workload};

use super::report::{Limit, Outcome};
use super::Run;

/// W4 with `writes_per_key` puts of each key: write them one put at a time, close, then time
/// the reopening, which reads and replays the whole log.
pub fn w4(run: &Run<'_>, writes_per_key: u64) -> Result<Outcome, kv_store::Error> {
    let keys = (spec::KEYS / run.scale).max(1);
    let store = run.open(Workload::W4)?;
    run.step(&format!("W4: writing {} puts", keys * writes_per_key));
    for round in 0..writes_per_key {
        for (key, value) in spec::sequential_puts(keys, round) {
            store.put(key.to_vec(), value.to_vec())?;
        }
    }
    let what = if writes_per_key == 1 {
        "recovery, 1 put per key"
    } else {
        "recovery, 4 puts per key"
    };
    let (seconds, stats) = reopen(run, store, "W4")?;
    assert_eq!(stats.keys as u64, keys, "W4 reopened with every key");
    let bytes = stats.open_bytes_scanned;
    Ok(opened(
        run,
        Outcome::new("W4", what, 1, stats.records, seconds),
        bytes,
    )
    .with("log_bytes", bytes))
}

/// W4-snapshot: the keys of W4 written once, compacted into a snapshot (the log after it
/// empty), then the store reopened and timed: what a compacted store costs to open. Bounded
/// by reading the snapshot from the page cache (L3) and by building the index.
pub fn w4_snapshot(run: &Run<'_>) -> Result<Outcome, kv_store::Error> {
    let keys = (spec::KEYS / run.scale).max(1);
    let store = run.open(Workload::W4)?;
    run.step(&format!("W4-snapshot: writing {keys} puts and compacting"));
    for (key, value) in spec::sequential_puts(keys, 0) {
        store.put(key.to_vec(), value.to_vec())?;
    }
    store.compact()?;
    let (seconds, stats) = reopen(run, store, "W4-snapshot")?;
    assert_eq!(
        stats.keys as u64, keys,
        "W4-snapshot reopened with every key"
    );
    let bytes = stats.snapshot_bytes;
    let outcome = Outcome::new(
        "W4-snapshot",
        "open from a snapshot",
        1,
        stats.records,
        seconds,
    );
    Ok(opened(run, outcome, bytes).with("snapshot_bytes", bytes))
}

/// What a timed reopen saw.
struct Reopened {
    keys: usize,
    /// Records replayed, snapshot included.
    records: u64,
    /// Bytes the log's recovery scanned.
    open_bytes_scanned: u64,
    /// Bytes of the snapshot loaded.
    snapshot_bytes: u64,
}

/// Closes `store`, then reopens it with W4's options, timed, and closes it again: the
/// seconds the open took and what it loaded.
fn reopen(run: &Run<'_>, store: KvStore, id: &str) -> Result<(f64, Reopened), kv_store::Error> {
    let path = store.path().to_path_buf();
    store.close()?;
    drop(store);
    run.step(&format!("{id}: reopening"));
    let started = Instant::now();
    let store = KvStore::open_with(&path, Workload::W4.options())?;
    let seconds = started.elapsed().as_secs_f64();
    let stats = store.stats();
    let reopened = Reopened {
        keys: stats.keys,
        records: stats.open_replayed_records,
        open_bytes_scanned: store.open_report().recovery.bytes_scanned,
        snapshot_bytes: stats.snapshot_bytes,
    };
    run.close(store)?;
    Ok((seconds, reopened))
}

/// `outcome`, an open that read `bytes`, against L3 (and L4) with its rates.
fn opened(run: &Run<'_>, outcome: Outcome, bytes: u64) -> Outcome {
    let (seconds, records) = (outcome.seconds, outcome.ops);
    let bytes_per_sec = bytes as f64 / seconds;
    outcome
        .against(Limit {
            name: "L3",
            value: run.limits.l3_bytes,
            unit: "bytes/s",
            measured: bytes_per_sec,
        })
        .with("seconds_to_open", seconds)
        .with("records_per_sec", records as f64 / seconds)
        .with("mb_per_sec", bytes_per_sec / 1e6)
        .with("ratio_to_l4", bytes_per_sec / run.limits.l4_bytes)
}
