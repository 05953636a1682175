//! W6 (90% gets, 10% durable puts, 4 threads) and W7 (durable puts while the store
//! compacts).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use kv_store::{Durability, WriteOptions};
use kv_workloads::spec::{self, Mixed, Workload, W6_THREADS, W7_WRITERS};

use super::measure::{parallel, share, Latencies};
use super::report::{Limit, Outcome};
use super::Run;

/// W6: keys loaded, then 4 threads each drawing gets (90%) and durable puts (10%).
pub fn w6(run: &Run<'_>) -> Result<Outcome, kv_store::Error> {
    let keys = (spec::KEYS / run.scale).max(1);
    let ops = (200_000 / run.scale).max(W6_THREADS);
    let store = run.open(Workload::W6)?;
    run.step(&format!("W6: loading {keys} keys"));
    spec::load(
        &store,
        spec::sequential_puts(keys, 0),
        WriteOptions::default(),
    )?;
    run.step(&format!("W6: {ops} operations, {W6_THREADS} threads"));
    let by_kind = Mutex::new((Latencies::new(), Latencies::new(), 0u64));
    let (elapsed, all) = parallel(W6_THREADS, |t, all| {
        let (mut gets, mut puts, mut put_count) = (Latencies::new(), Latencies::new(), 0);
        for op in spec::mixed(t + 31, keys).take(share(ops, W6_THREADS, t) as usize) {
            match op {
                Mixed::Put(key, value) => {
                    let (key, value) = (key.to_vec(), value.to_vec());
                    let latency = std::time::Instant::now();
                    store.put(key, value)?;
                    let latency = latency.elapsed();
                    puts.record(latency);
                    all.record(latency);
                    put_count += 1;
                }
                Mixed::Get(key) => {
                    let latency = std::time::Instant::now();
                    std::hint::black_box(store.get(key));
                    let latency = latency.elapsed();
                    gets.record(latency);
                    all.record(latency);
                }
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

/// W7: `keys` keys each written 4 times (a log 4x the live data), then 2 writers doing
/// durable puts (W1) before and while the store compacts: the compaction's time, the
/// writers' latency before and during it, and the bytes left after.
pub fn w7(run: &Run<'_>) -> Result<Outcome, kv_store::Error> {
    const WRITERS: u64 = W7_WRITERS;
    let keys = (spec::KEYS / run.scale).max(1);
    let store = run.open(Workload::W7)?;
    run.step(&format!(
        "W7: writing {keys} keys {} times",
        spec::W7_PUTS_PER_KEY
    ));
    // Loading is not what is measured: it asks for no sync of its own, then one at the end.
    let unsynced = WriteOptions {
        durability: Some(Durability::None),
    };
    for round in 0..spec::W7_PUTS_PER_KEY {
        spec::load(&store, spec::sequential_puts(keys, round), unsynced)?;
    }
    store.sync()?;
    let stored_before = {
        let stats = store.stats();
        stats.log_bytes + stats.snapshot_bytes
    };
    // W1's durable puts (the store's durability is `Sync`).
    let put = |(key, value): spec::Put| store.put(key.to_vec(), value.to_vec());

    run.step("W7: writers before compaction");
    let before_ops = (4_000 / run.scale).max(WRITERS);
    let (_, before) = parallel(WRITERS, |t, latencies| {
        for put_one in spec::random_puts(t + 41, keys).take(share(before_ops, WRITERS, t) as usize)
        {
            latencies.time(|| put(put_one))?;
        }
        Ok(())
    })?;

    run.step("W7: compacting while the writers run");
    let done = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let mut report = None;
    let (_, during) = std::thread::scope(|s| {
        let writers = s.spawn(|| {
            parallel(WRITERS, |t, latencies| {
                let mut puts = spec::random_puts(t + 51, keys);
                let mut i = 0;
                while !done.load(Ordering::Acquire) {
                    let put_one = puts.next().expect("an endless stream");
                    latencies.time(|| put(put_one))?;
                    i += 1;
                }
                written.fetch_add(i, Ordering::Relaxed);
                Ok(())
            })
        });
        let compacted = store.compact();
        done.store(true, Ordering::Release);
        report = Some(compacted);
        writers.join().expect("the W7 writers panicked")
    })?;
    let report = report.expect("compacted")?;
    let stats = store.stats();
    run.close(store)?;

    let seconds = report.duration.as_secs_f64();
    let snapshot_per_sec = stats.snapshot_bytes as f64 / seconds;
    let micros = |l: &Latencies, q| l.micros(q).map_or(serde_json::Value::Null, Into::into);
    Ok(Outcome::new(
        "W7",
        "durable put + compaction",
        WRITERS,
        written.load(Ordering::Relaxed),
        seconds,
    )
    .latencies(&during)
    .against(Limit {
        name: "L2",
        value: run.limits.l2_bytes,
        unit: "bytes/s",
        measured: snapshot_per_sec,
    })
    .with("keys", keys)
    .with("compaction_seconds", seconds)
    .with("writer_p99_before_us", micros(&before, 0.99))
    .with("writer_p99_during_us", micros(&during, 0.99))
    .with("stored_bytes_before", stored_before)
    .with("log_bytes_after", stats.log_bytes)
    .with("snapshot_bytes_after", stats.snapshot_bytes))
}
