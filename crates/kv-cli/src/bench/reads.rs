//! W3 (random gets, 90% hits) and W8 (range scans of 100 keys).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kv_store::WriteOptions;
use kv_workloads::spec::{self, Workload};
use kv_workloads::PlainMap;

use super::measure::{parallel, share};
use super::report::{Limit, Outcome};
use super::Run;

/// The seed of W3's thread `t`'s draws (thread 0's are L6's too).
fn w3_seed(t: u64) -> u64 {
    t + 11
}

/// W3: `keys` loaded once, then for each thread count the gets of the spec, over a key
/// space a ninth larger than the keys so that 90% of them hit. Held against L6: the same
/// gets of one thread from a plain `HashMap` of the same keys, measured first in this run
/// (and dropped before the store is read).
pub fn w3(
    run: &Run<'_>,
    threads: &[u64],
    emit: &mut dyn FnMut(Outcome),
) -> Result<(), kv_store::Error> {
    const SAMPLE: u64 = 8;
    let keys = (spec::KEYS / run.scale).max(1);
    let gets = spec::W3_GETS / run.scale;
    let store = run.open(Workload::W3)?;
    run.step(&format!("W3: loading {keys} keys"));
    spec::load(
        &store,
        spec::sequential_puts(keys, 0),
        WriteOptions::default(),
    )?;
    run.step(&format!(
        "L6: {gets} gets from a plain HashMap of {keys} keys"
    ));
    let l6 = {
        let map = PlainMap::load(keys);
        let (elapsed, _) = map.gets(w3_seed(0), gets);
        gets as f64 / elapsed.as_secs_f64()
    };
    let mut single = None;
    for &n in threads {
        run.step(&format!("W3: {gets} gets, {n} threads"));
        // Throughput from gets that time nothing, as L6's and W3-many's: a clock read is
        // ordered and would stop the gets around it from overlapping their cache misses.
        let hits = AtomicU64::new(0);
        let (elapsed, _) = parallel(n, |t, _| {
            let draws = spec::gets(w3_seed(t), keys).take(share(gets, n, t) as usize);
            let found = draws.filter(|key| store.get(key).is_some()).count();
            hits.fetch_add(found as u64, Ordering::Relaxed);
            Ok(())
        })?;
        // Latencies from a second, shorter pass in which every get is timed.
        let timed = (gets / SAMPLE).max(1);
        let (_, latencies) = parallel(n, |t, latencies| {
            let draws = spec::gets(w3_seed(t + 1_000), keys).take(share(timed, n, t) as usize);
            for key in draws {
                latencies.time(|| store.get(key));
            }
            Ok(())
        })?;
        let hit_ratio = hits.load(Ordering::Relaxed) as f64 / gets.max(1) as f64;
        let seconds = elapsed.as_secs_f64();
        if n == 1 {
            single = Some(gets as f64 / seconds);
        }
        emit(
            Outcome::new("W3", "random get, 90% hits", n, gets, seconds)
                .latencies(&latencies)
                .against(Limit {
                    name: "L6",
                    value: l6,
                    unit: "gets/s",
                    measured: gets as f64 / seconds,
                })
                .with("keys", keys)
                .with("hit_ratio", hit_ratio)
                .with(
                    "latency_sampled",
                    format!("a second pass of {timed} gets, each timed"),
                ),
        );
    }
    // The same gets of one thread through `get_many`, in batches of W3_BATCH keys.
    run.step(&format!(
        "W3-many: {gets} gets in batches of {}",
        spec::W3_BATCH
    ));
    let mut found = 0u64;
    let mut draws = spec::gets(w3_seed(0), keys).take(gets as usize);
    let mut batch = Vec::with_capacity(spec::W3_BATCH);
    let started = Instant::now();
    loop {
        batch.clear();
        batch.extend(draws.by_ref().take(spec::W3_BATCH));
        if batch.is_empty() {
            break;
        }
        found += store
            .get_many(&batch)
            .iter()
            .filter(|value| value.is_some())
            .count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut outcome = Outcome::new("W3-many", "get_many, batches of 32", 1, gets, seconds)
        .against(Limit {
            name: "L6",
            value: l6,
            unit: "gets/s",
            measured: gets as f64 / seconds,
        })
        .with("keys", keys)
        .with("batch", spec::W3_BATCH as u64)
        .with("hit_ratio", found as f64 / gets.max(1) as f64);
    if let Some(single) = single {
        outcome = outcome.with("ratio_to_single_gets", gets as f64 / seconds / single);
    }
    emit(outcome);
    run.close(store)
}

/// W8: `keys` loaded in the ordered index, then scans of 100 consecutive keys from random
/// starts.
pub fn w8(
    run: &Run<'_>,
    threads: &[u64],
    emit: &mut dyn FnMut(Outcome),
) -> Result<(), kv_store::Error> {
    let keys = (spec::KEYS / run.scale).max(1);
    let scans = (100_000 / run.scale).max(1);
    let store = run.open(Workload::W8)?;
    run.step(&format!("W8: loading {keys} keys"));
    spec::load(
        &store,
        spec::sequential_puts(keys, 0),
        WriteOptions::default(),
    )?;
    for &n in threads {
        run.step(&format!("W8: {scans} scans, {n} threads"));
        let read = AtomicU64::new(0);
        let (elapsed, latencies) = parallel(n, |t, latencies| {
            let mut count = 0;
            for start in spec::scan_starts(t + 21, keys).take(share(scans, n, t) as usize) {
                let start = start.to_vec();
                count += latencies.time(|| -> Result<_, kv_store::Error> {
                    Ok(store.range(start..)?.take(spec::W8_SCAN_LEN).count() as u64)
                })?;
            }
            read.fetch_add(count, Ordering::Relaxed);
            Ok(())
        })?;
        let seconds = elapsed.as_secs_f64();
        let keys_read = read.load(Ordering::Relaxed);
        emit(
            Outcome::new("W8", "scan of 100 keys", n, scans, seconds)
                .latencies(&latencies)
                .with("keys", keys)
                .with("keys_per_sec", keys_read as f64 / seconds),
        );
    }
    run.close(store)
}
