//! W6 (90% gets, 10% durable puts, 4 threads) and W7 (compaction under load, which cannot
//! run until the store can compact).

use kv_benches::{key_for, value_for, KeyGen};
use kv_store::{Durability, Options};
use std::sync::Mutex;

use super::measure::{load, parallel, share, Latencies};
use super::report::Outcome;
use super::Run;

/// W6's threads.
pub const W6_THREADS: u64 = 4;

/// W6: keys loaded, then 4 threads each drawing gets (90%) and durable puts (10%).
pub fn w6(run: &Run<'_>) -> Result<Outcome, kv_store::Error> {
    let keys = (1_000_000 / run.scale).max(1);
    let ops = (200_000 / run.scale).max(W6_THREADS);
    let store = run.open("w6", Options::default().durability(Durability::Sync))?;
    run.step(&format!("W6: loading {keys} keys"));
    load(&store, keys)?;
    run.step(&format!("W6: {ops} operations, {W6_THREADS} threads"));
    let by_kind = Mutex::new((Latencies::new(), Latencies::new(), 0u64));
    let (elapsed, all) = parallel(W6_THREADS, |t, all| {
        let (mut gets, mut puts, mut put_count) = (Latencies::new(), Latencies::new(), 0);
        let mut draw = KeyGen::new(t + 31);
        for i in 0..share(ops, W6_THREADS, t) {
            let r = draw.next_u64();
            let key = key_for(r % keys);
            if r.is_multiple_of(10) {
                let value = value_for(i).to_vec();
                let latency = std::time::Instant::now();
                store.put(key.to_vec(), value)?;
                let latency = latency.elapsed();
                puts.record(latency);
                all.record(latency);
                put_count += 1;
            } else {
                let latency = std::time::Instant::now();
                std::hint::black_box(store.get(key));
                let latency = latency.elapsed();
                gets.record(latency);
                all.record(latency);
            }
        }
        let mut shared = by_kind.lock().expect("no thread panicked");
        shared.0.merge(&gets);
        shared.1.merge(&puts);
        shared.2 += put_count;
        Ok(())
    })?;
    run.close(store)?;
    let (gets, puts, put_count) = by_kind.into_inner().expect("no thread panicked");
    let micros = |l: &Latencies, q| l.micros(q).map_or(serde_json::Value::Null, Into::into);
    Ok(Outcome::new(
        "W6",
        "90% get / 10% durable put",
        W6_THREADS,
        ops,
        elapsed.as_secs_f64(),
    )
    .latencies(&all)
    .with("keys", keys)
    .with("puts", put_count)
    .with("get_p50_us", micros(&gets, 0.5))
    .with("get_p99_us", micros(&gets, 0.99))
    .with("put_p50_us", micros(&puts, 0.5))
    .with("put_p99_us", micros(&puts, 0.99)))
}

/// W7 needs compaction: asks a scratch store to compact, and reports the workload skipped
/// with the store's own answer.
pub fn w7(run: &Run<'_>) -> Result<Outcome, kv_store::Error> {
    let store = run.open("w7", Options::default())?;
    let reason = match store.compact() {
        Err(e) => e.to_string(),
        Ok(()) => "the store compacts now, but kv bench does not run W7 yet".to_string(),
    };
    run.close(store)?;
    Ok(Outcome::skipped("W7", "compaction under load", 2, reason))
}
