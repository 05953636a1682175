//! W1 (durable puts, against L1) and W2 (buffered puts, against L2).

use std::time::Instant;

use kv_workloads::spec::{self, Workload};

use super::measure::{parallel, share};
use super::report::{Limit, Outcome};
use super::Run;

/// W1: every put returns after fdatasync; `threads` writers share fsyncs by group commit.
pub fn w1(run: &Run<'_>, threads: u64) -> Result<Outcome, kv_store::Error> {
    let total = (20_000u64.max(2_000 * threads) / run.scale).max(threads);
    let store = run.open(Workload::W1)?;
    let (elapsed, latencies) = parallel(threads, |t, latencies| {
        for (key, value) in
            spec::random_puts(t + 1, spec::KEYS).take(share(total, threads, t) as usize)
        {
            let (key, value) = (key.to_vec(), value.to_vec());
            latencies.time(|| store.put(key, value))?;
        }
        Ok(())
    })?;
    let stats = store.stats();
    run.close(store)?;
    let seconds = elapsed.as_secs_f64();
    let per_sec = total as f64 / seconds;
    Ok(
        Outcome::new("W1", "durable put (Sync)", threads, total, seconds)
            .latencies(&latencies)
            .against(Limit {
                name: "L1",
                value: run.limits.l1_fsyncs,
                unit: "fsyncs/s",
                measured: per_sec,
            })
            .with("records_per_fsync", stats.records_per_fsync_ratio)
            .with("ratio_to_l1p", per_sec / run.limits.l1p_fsyncs),
    )
}

/// W2: puts with no sync of their own, then one sync; bytes written against L2.
pub fn w2(run: &Run<'_>, threads: u64) -> Result<Outcome, kv_store::Error> {
    const SAMPLE: u64 = 8;
    let total = (spec::W2_PUTS / run.scale).max(threads);
    let store = run.open(Workload::W2)?;
    let (elapsed, latencies) = parallel(threads, |t, latencies| {
        let puts = spec::random_puts(t + 1, spec::KEYS).take(share(total, threads, t) as usize);
        for (i, (key, value)) in (0..).zip(puts) {
            let (key, value) = (key.to_vec(), value.to_vec());
            if i % SAMPLE == 0 {
                latencies.time(|| store.put(key, value))?;
            } else {
                store.put(key, value)?;
            }
        }
        Ok(())
    })?;
    let synced = Instant::now();
    store.sync()?;
    let sync = synced.elapsed();
    let seconds = (elapsed + sync).as_secs_f64();
    let bytes = store.stats().commit_bytes_total;
    run.close(store)?;
    let bytes_per_sec = bytes as f64 / seconds;
    Ok(
        Outcome::new("W2", "buffered put + 1 sync", threads, total, seconds)
            .latencies(&latencies)
            .against(Limit {
                name: "L2",
                value: run.limits.l2_bytes,
                unit: "bytes/s",
                measured: bytes_per_sec,
            })
            .with("bytes_per_sec", bytes_per_sec)
            .with("final_sync_seconds", sync.as_secs_f64())
            .with("latency_sampled", format!("1 put in {SAMPLE}")),
    )
}
